//! Compressed outputs are made in parallel: end to end through the binary, a `.tar.gz`
//! (fixed blocks), a `.tar.zst` (zstd's workers) and an OCI layout made on 1, 2 and 8
//! threads are the same bytes, and each tarball unpacks to the plain tarball.

mod common;

use std::process::Command;

use common::{World, bulky_packages, digest, names};

const GROUP: &str = r#"group big version="1.0" {
    flavors openvz
    package bash
    package bulk
}
"#;

/// Materialises `big` as `format` to `out` with rayon limited to `threads`.
fn materialise_on(w: &World, threads: usize, format: &str, out: &str) {
    let mut command = w.command(&common::materialise("big", format, out));
    command.env("RAYON_NUM_THREADS", threads.to_string());
    common::succeeds(command);
}

#[test]
fn compressed_outputs_do_not_depend_on_the_thread_count() {
    // About 6 MB of content: dozens of 128 KiB blocks, so every thread gets some.
    let w = World::new(&bulky_packages(), &[("big", GROUP)]);
    w.ok(&["compile", "groups/big.kdl"]);

    let tarballs: Vec<String> = [1, 2, 8]
        .iter()
        .map(|&threads| {
            let out = format!("t{threads}.tar.gz");
            materialise_on(&w, threads, "tar", &out);
            digest(&w.ws.join(out))
        })
        .collect();
    assert_eq!(tarballs[0], tarballs[1], "1 and 2 threads differ");
    assert_eq!(tarballs[0], tarballs[2], "1 and 8 threads differ");

    let zstd: Vec<String> = [1, 2, 8]
        .iter()
        .map(|&threads| {
            let out = format!("t{threads}.tar.zst");
            materialise_on(&w, threads, "tar", &out);
            digest(&w.ws.join(out))
        })
        .collect();
    assert_eq!(zstd[0], zstd[1], ".tar.zst on 1 and 2 threads differs");
    assert_eq!(zstd[0], zstd[2], ".tar.zst on 1 and 8 threads differs");

    let tested = Command::new("gzip")
        .arg("-t")
        .arg(w.ws.join("t8.tar.gz"))
        .status()
        .unwrap();
    assert!(tested.success(), "gzip -t refused the tarball");
    materialise_on(&w, 2, "tar", "plain.tar");
    let unpacked = Command::new("gzip")
        .arg("-dc")
        .arg(w.ws.join("t8.tar.gz"))
        .output()
        .unwrap();
    assert!(unpacked.status.success());
    assert!(
        unpacked.stdout == std::fs::read(w.ws.join("plain.tar")).unwrap(),
        "gunzip of the .tar.gz is not the plain tarball"
    );
    let unzstd = Command::new("zstd")
        .args(["-dcq"])
        .arg(w.ws.join("t8.tar.zst"))
        .output()
        .unwrap();
    assert!(unzstd.status.success(), "zstd -d refused the tarball");
    assert!(
        unzstd.stdout == unpacked.stdout,
        "unzstd of the .tar.zst is not the plain tarball"
    );

    // Blobs are named by their SHA-256, the gzipped layer's among them.
    let layouts: Vec<Vec<String>> = [1, 8]
        .iter()
        .map(|&threads| {
            let out = format!("oci{threads}");
            materialise_on(&w, threads, "oci", &out);
            names(&w.ws.join(out).join("blobs/sha256"))
        })
        .collect();
    assert_eq!(
        layouts[0], layouts[1],
        "OCI layouts on 1 and 8 threads differ"
    );
}
