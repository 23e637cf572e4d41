//! What the command line writes besides its results, end to end through the binary:
//! OUT's names and compressions and the line saying what was written, standard error
//! closed or broken, and progress by `-v`, `-q` and whether stderr is a terminal.

mod common;

use std::fs;
use std::process::{Command, Output, Stdio};

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

/// Runs `args` in `w` with stderr a pipe whose reader is gone, as in
/// `appliance ... 2>&1 | head -1` once head has its line.
fn with_broken_stderr(w: &World, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut command = w.command(args);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(writer);
    command.output().unwrap()
}

#[test]
fn a_broken_standard_error_loses_its_lines_but_not_the_command() {
    let w = world();
    // The compile warns (the closure has no dpkg, so the tree is not configured) and
    // still stores its lock; the warning is what cannot be written.
    let compiled = with_broken_stderr(&w, &["compile", "groups/base.kdl"]);
    assert!(compiled.status.success(), "{compiled:?}");
    assert!(
        String::from_utf8_lossy(&compiled.stdout).contains(" stored: "),
        "{compiled:?}"
    );
    let stderr = w
        .command(&["compile", "groups/base.kdl"])
        .output()
        .unwrap()
        .stderr;
    assert!(
        String::from_utf8_lossy(&stderr).contains("warning: group base is not configured"),
        "the warning the broken pipe lost is no longer there to lose"
    );
    // A failure's report cannot be written either: the exit code still says so.
    let failed = with_broken_stderr(&w, &["materialise", "nope", "--flavor", "openvz"]);
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    // `2>&-`: no stderr at all.
    let sysroot = w.sysroot.to_str().unwrap();
    let closed = common::through(
        &["sh", "-c", "exec \"$@\" 2>&-", "sh"],
        &w.ws,
        &["--sysroot", sysroot, "compile", "groups/base.kdl"],
    )
    .env("TMPDIR", &w.tmp)
    .output()
    .unwrap();
    assert!(closed.status.success(), "{closed:?}");
    let built = with_broken_stderr(
        &w,
        &["materialise", "base", "--flavor", "openvz", "-o", "b.tar"],
    );
    assert!(built.status.success(), "{built:?}");
    assert!(w.ws.join("b.tar").is_file());
}

/// The lines of `text`, progress or not: anything that is neither a warning nor its
/// indented continuation.
fn progress_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|line| !line.starts_with("warning: ") && !line.starts_with("  "))
        .collect()
}

#[test]
fn progress_off_a_terminal_is_a_line_per_stage_with_v_and_nothing_otherwise() {
    let w = world();
    // stderr is a pipe here, not a terminal.
    let stderr = |args: &[&str]| {
        let out = w.command(args).stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let verbose = stderr(&["compile", "groups/base.kdl", "-v"]);
    let stages = progress_lines(&verbose);
    for stage in [
        "compile: read ",
        "compile base[openvz]: resolve 2 packages (",
        "compile base[openvz]: fetch 0 archives (",
        "compile base[openvz]: gather ",
        "compile base[openvz]: assemble ",
        "compile base[openvz]: store (",
    ] {
        assert!(
            stages
                .iter()
                .any(|line| line.starts_with(stage) && line.ends_with(" s)")),
            "no `{stage}` line in:\n{verbose}"
        );
    }
    // Without -v, and with -q, the warnings (the tree is not configured: no dpkg) are
    // all there is.
    for args in [
        &["compile", "groups/base.kdl"][..],
        &["-q", "compile", "groups/base.kdl"],
    ] {
        let said = stderr(args);
        assert!(progress_lines(&said).is_empty(), "{args:?}:\n{said}");
        assert!(
            said.contains("warning: group base is not configured"),
            "{said}"
        );
    }
    let quiet = stderr(&[
        "materialise",
        "base",
        "--flavor",
        "openvz",
        "-q",
        "-o",
        "q.tar",
    ]);
    assert_eq!(quiet, "");
    // As clap refuses any usage error: exit code 2.
    let both = w
        .command(&["compile", "groups/base.kdl", "-v", "-q"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("'--verbose' cannot be used with '--quiet'"),
        "{both:?}"
    );
}

/// Progress on a terminal: util-linux's `script` gives the run a pseudo-terminal, whose
/// output (stderr's, stdout going to /dev/null) comes back on script's stdout.
#[test]
fn a_terminal_shows_stages_and_bars_unless_quiet() {
    let w = world();
    let binary = env!("CARGO_BIN_EXE_appliance");
    let sysroot = w.sysroot.to_str().unwrap();
    let run = |flag: &str| {
        let line =
            format!("'{binary}' --sysroot '{sysroot}' {flag} compile groups/base.kdl >/dev/null");
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(&w.ws)
            .env("TMPDIR", &w.tmp)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).replace('\r', "")
    };
    let quiet = run("-q");
    let plain = run("");
    eprintln!("PLAIN {plain:?}");
    assert!(
        quiet.contains("warning: group base is not configured"),
        "{quiet}"
    );
    assert!(progress_lines(&quiet).is_empty(), "{quiet:?}");
    // The terminal is one: -v's lines come back through it.
    let verbose = run("-v");
    assert!(
        verbose.contains("compile base[openvz]: resolve 2 packages ("),
        "{verbose:?}"
    );
}
