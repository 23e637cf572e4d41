//! What the command line writes besides its results, end to end through the binary:
//! OUT's names and compressions and the line saying what was written, standard error
//! closed or broken, and progress by `-v`, `-q` and whether stderr is a terminal.

mod common;

use std::fs;

use common::{FakePackage, World};

const GROUP: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
}
"#;

/// A world with group `base`, not yet compiled.
fn world() -> World {
    World::new(
        &[
            FakePackage::new("base-files", "12.4+deb12u5")
                .essential()
                .file("/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            FakePackage::new("bash", "5.2.15-2+b2")
                .depends("base-files")
                .file("/bin/bash", "#!fake bash\n"),
        ],
        &[("base", GROUP)],
    )
}

#[test]
fn a_compressed_tar_extension_appliance_does_not_write_is_refused_naming_out() {
    let w = world();
    w.ok(&["compile", "groups/base.kdl"]);
    for (out, format) in [
        ("x.tar.bz2", Some("tar")),
        ("x.tar.bz2", None),
        ("x.tbz2", Some("tar")),
        ("x.tar.lz4", None),
        ("x.tar.lzma", Some("openvz")),
    ] {
        let mut args = vec!["materialise", "base", "--flavor", "openvz", "-o", out];
        if let Some(format) = format {
            args.extend(["--format", format]);
        }
        let err = w.fails(&args);
        assert!(err.starts_with(&format!("error: {out}: ")), "{err}");
        assert!(err.contains(".tar.gz"), "{err}");
        assert!(err.contains(".tar.zst"), "{err}");
        assert!(!w.ws.join(out).exists(), "{out} was written");
    }
}

#[test]
fn each_format_has_its_own_default_output_and_the_line_says_what_was_written() {
    let w = world();
    w.ok(&["compile", "groups/base.kdl"]);
    let materialise = |format: &str| {
        w.ok(&[
            "materialise",
            "base",
            "--flavor",
            "openvz",
            "--format",
            format,
        ])
    };
    // The tar and the chroot of one lock no longer take the same name.
    let tar = materialise("tar");
    assert!(
        tar.contains(" -> base-openvz.tar (tar, uncompressed): "),
        "{tar}"
    );
    assert!(tar.contains(" entries, "), "{tar}");
    let chroot = materialise("chroot");
    assert!(chroot.contains(" -> base-openvz (chroot): "), "{chroot}");
    let oci = materialise("oci");
    assert!(
        oci.contains(" -> base-openvz.oci (oci, tag latest): "),
        "{oci}"
    );
    assert!(w.ws.join("base-openvz.tar").is_file());
    assert!(w.ws.join("base-openvz/usr/bin/bash").is_file());
    assert!(w.ws.join("base-openvz.oci/index.json").is_file());
    // The flavor's own format keeps vzctl's template name.
    let openvz = w.ok(&["materialise", "base", "--flavor", "openvz"]);
    assert!(
        openvz.contains(" -> debian-12-x86_64-base.tar.gz (openvz, gzip): "),
        "{openvz}"
    );
    let zstd = w.ok(&[
        "materialise",
        "base",
        "--flavor",
        "openvz",
        "-o",
        "b.tar.zst",
    ]);
    assert!(zstd.contains(" -> b.tar.zst (tar, zstd): "), "{zstd}");
    assert_eq!(
        &fs::read(w.ws.join("b.tar.zst")).unwrap()[..4],
        b"\x28\xb5\x2f\xfd"
    );
}
