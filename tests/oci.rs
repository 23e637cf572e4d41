//! End to end on the real machine: `groups/web.kdl` compiled for openvz (nginx, ssh and
//! certificates fetched from apt's lists), materialised as an OCI image layout, and read
//! back by the real `skopeo` and `umoci` (Debian packages `skopeo` and `umoci`). Needs
//! apt lists and Debian's archive, as tests/web.rs does; unpacks rootless when not root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use common::{example_workspace, is_root, ok};

/// Runs a host tool, failing the test with its stderr (or with the package to install).
fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install the Debian package `{tool}`"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every file under `dir` (relative path -> bytes).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

#[test]
fn web_as_an_oci_image_reads_back_with_skopeo_and_unpacks_with_umoci() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    let compiled = ok(ws, &["compile", "groups/web.kdl", "--flavor", "openvz"]);
    assert!(
        compiled.contains("web=1.0-1[!kernel,openvz is: x86_64]"),
        "{compiled}"
    );
    let shown: Value =
        serde_json::from_str(&ok(ws, &["show", "web", "--flavor", "openvz", "--json"])).unwrap();
    let cmd = &shown["lock"]["cmd"];
    assert_eq!(
        *cmd,
        serde_json::json!(["/usr/sbin/nginx", "-g", "daemon off;"])
    );

    let materialise = |out: &str| {
        let start = Instant::now();
        let said = ok(
            ws,
            &[
                "materialise",
                "web",
                "--flavor",
                "openvz",
                "--format",
                "oci",
                "-o",
                out,
            ],
        );
        let took = start.elapsed();
        let size: usize = tree(&ws.join(out)).values().map(Vec::len).sum();
        eprintln!("{said}  {out}: {size} bytes in {took:.2?}");
        ws.join(out)
    };
    let layout = materialise("web-oci");
    let again = materialise("web-oci-again");
    let first = tree(&layout);
    assert!(first.contains_key(Path::new("index.json")));
    assert_eq!(first.len(), 5, "oci-layout, index.json and three blobs");
    assert!(first == tree(&again), "two runs gave different layouts");

    let image = format!("oci:{}:latest", layout.display());
    let inspect: Value = serde_json::from_str(&run("skopeo", &["inspect", &image])).unwrap();
    assert_eq!(inspect["Architecture"], "amd64", "{inspect}");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Created"], "1970-01-01T00:00:00Z");
    let layers = inspect["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{inspect}");
    let layer = layers[0].as_str().unwrap().strip_prefix("sha256:").unwrap();
    assert!(first.contains_key(&Path::new("blobs/sha256").join(layer)));

    let config: Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &image])).unwrap();
    assert_eq!(config["config"]["Cmd"], *cmd, "{config}");
    assert_eq!(config["architecture"], "amd64");

    let bundle = ws.join("bundle");
    let from = format!("{}:latest", layout.display());
    let bundle_arg = bundle.to_str().unwrap();
    let mut unpack = vec!["unpack", "--image", &from, bundle_arg];
    if !is_root() {
        unpack.insert(1, "--rootless");
    }
    run("umoci", &unpack);
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("usr/sbin/nginx").is_file());
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"], *cmd, "{runtime}");
    // The runtime brings /dev's nodes; the layer brings the rest of /dev.
    assert!(fs::symlink_metadata(rootfs.join("dev/null")).is_err());
    assert_eq!(
        fs::read_link(rootfs.join("dev/fd")).unwrap(),
        Path::new("/proc/self/fd")
    );
}
