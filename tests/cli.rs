//! End to end through the binary, in a hermetic world: a fake sysroot with a dpkg
//! database and merged /usr, and a fake workspace, both built by `common`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;

use appliance::materialise::{Compression, Format, Options, Sources, materialise};
use appliance::repo::Repository;
use common::{
    FakePackage, appliance, build_deb, digest, fails, fake_sysroot, fake_workspace, is_root, ok,
};

const OPENVZ: &str = "[!kernel,openvz is: x86_64]";

fn packages() -> Vec<FakePackage> {
    let mut packages = common::core_packages(&[("/usr/share/doc/bash/README", "docs\n")]);
    packages.extend([
        FakePackage::new("coreutils", "9.1-1")
            .depends("libc6 (>= 2.34)")
            .file("/bin/ls", "fake ls\n"),
        FakePackage::new("libssl3", "3.0.8-1"),
        FakePackage::new("nginx-light", "1.22.1-9")
            .depends("libc6, libssl3 (>= 3.0.9)")
            .file("/usr/sbin/nginx", "fake nginx\n"),
        FakePackage::new("mawk", "1.3.4-1")
            .extra("Provides: awk\n")
            .file("/usr/bin/mawk", "fake mawk\n"),
        FakePackage::new("linux-image-6.1.0-9-amd64", "6.1.27-1")
            .extra("Provides: linux-image\n")
            .file("/boot/vmlinuz-6.1.0-9-amd64", "fake kernel\n"),
        FakePackage::new("linux-image-amd64", "6.1.27-1").depends("linux-image-6.1.0-9-amd64"),
    ]);
    packages
}

const BASE: &str = r#"group base version="1.0" {
    summary "fake base"
    flavors openvz
    package bash
    package awk when=openvz
    exclude "/usr/share/doc/*"
    file "/etc/hostname" content="fake\n"
}
"#;

struct World {
    _dir: tempfile::TempDir,
    ws: std::path::PathBuf,
    sysroot: std::path::PathBuf,
}

impl World {
    fn new(groups: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let sysroot = dir.path().join("sysroot");
        fake_sysroot(&sysroot, &packages());
        fake_workspace(&ws, groups);
        World {
            _dir: dir,
            ws,
            sysroot,
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["--sysroot", self.sysroot.to_str().unwrap()];
        all.extend_from_slice(args);
        all
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.ws, &self.args(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        fails(&self.ws, &self.args(args))
    }

    /// Runs `args`, which must succeed, and returns what it said on standard error.
    fn stderr(&self, args: &[&str]) -> String {
        let out = appliance(&self.ws, &self.args(args));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    }

    fn out(&self, name: &str) -> std::path::PathBuf {
        self.ws.join(name)
    }
}

/// `appliance show ... | head`: a reader that closes the pipe ends the command quietly
/// and successfully, as ripgrep does, never `error: -: Broken pipe`.
#[test]
fn a_closed_standard_output_ends_the_command_quietly_and_materialize_is_materialise() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    for args in [
        &["show", "base", "--flavor", "openvz", "--files"][..],
        &["list", "--json"],
    ] {
        // The reader is gone before the command writes a byte.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = common::command(&w.ws, &w.args(args));
        let out = command.stdout(writer).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
    // The American spelling is the same command.
    let tar = w.out("us.tar");
    w.ok(&[
        "materialize",
        "base",
        "--flavor",
        "openvz",
        "-o",
        tar.to_str().unwrap(),
    ]);
    assert!(tar.is_file());
}

#[test]
fn compile_is_stored_once_and_recompile_is_unchanged() {
    let w = World::new(&[("base", BASE)]);
    let first = w.ok(&["compile", "groups/base.kdl"]);
    assert!(
        first.contains(&format!("base=1.0-1{OPENVZ} stored")),
        "{first}"
    );
    let again = w.ok(&["compile", "groups/base.kdl"]);
    assert!(
        again.contains(&format!("base=1.0-1{OPENVZ} unchanged")),
        "{again}"
    );
    let list = w.ok(&["list"]);
    assert_eq!(list.lines().count(), 1, "{list}");

    // A changed result is the next revision; the old one stays loadable.
    let changed = BASE.replace("package bash", "package bash\n    package coreutils");
    fs::write(w.ws.join("groups/base.kdl"), changed).unwrap();
    let second = w.ok(&["compile", "groups/base.kdl"]);
    assert!(
        second.contains(&format!("base=1.0-2{OPENVZ} stored")),
        "{second}"
    );
    let old = w.ok(&["show", "base", "--flavor", "openvz", "--version", "1.0-1"]);
    assert!(!old.contains("coreutils"), "{old}");
    let new = w.ok(&["show", "base", "--flavor", OPENVZ]);
    assert!(new.contains("coreutils 9.1-1"), "{new}");
}

#[test]
fn lock_follows_merged_usr_excludes_and_reasons() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let files = w.ok(&["show", "base", "--flavor", "openvz", "--files"]);
    assert!(files.contains("/usr/bin/bash  (bash)"), "{files}");
    assert!(files.contains("/bin -> usr/bin"), "{files}");
    assert!(!files.contains("/usr/share/doc/bash/README"), "{files}");
    assert!(files.contains("/etc/hostname"), "{files}");
    // awk is virtual: mawk provides it; essential base-files comes in on its own.
    assert!(files.contains("mawk 1.3.4-1"), "{files}");
    assert!(
        files.contains("base-files 12.4+deb12u5 amd64 [installed] essential"),
        "{files}"
    );
    let why = w.ok(&["why", "libc6", "--group", "base", "--flavor", "openvz"]);
    assert!(why.starts_with("base -> bash -> libc6\n"), "{why}");
    let json: serde_json::Value =
        serde_json::from_str(&w.ok(&["show", "base", "--flavor", "openvz", "--json"])).unwrap();
    let bash = json["lock"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "/usr/bin/bash")
        .unwrap();
    assert_eq!(
        bash["digest"].as_str().unwrap(),
        digest(&w.sysroot.join("usr/bin/bash"))
    );
}

#[test]
fn tarballs_are_byte_identical_and_chroot_is_complete() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    for ext in ["tar", "tar.gz", "tar.xz", "tar.zst"] {
        let a = format!("a.{ext}");
        let b = format!("b.{ext}");
        // The openvz flavor's own format takes .tar.gz and .tar.xz: ask for a plain tar.
        w.ok(&[
            "materialise",
            "base",
            "--flavor",
            "openvz",
            "--format",
            "tar",
            "-o",
            &a,
        ]);
        w.ok(&[
            "materialise",
            "--flavor",
            "openvz",
            "--format",
            "tar",
            "-o",
            &b,
        ]);
        assert_eq!(
            digest(&w.out(&a)),
            digest(&w.out(&b)),
            "{ext} differs between runs"
        );
    }
    let listing = std::process::Command::new("tar")
        .args(["-tvf", w.out("a.tar").to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(listing.contains("root/root"), "{listing}");
    assert!(listing.contains("./usr/bin/bash"), "{listing}");

    w.ok(&common::materialise("base", "chroot", "tree"));
    let tree = w.out("tree");
    assert_eq!(
        fs::read_to_string(tree.join("bin/bash")).unwrap(),
        "#!fake bash\n"
    );
    assert_eq!(
        fs::read_link(tree.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    assert_eq!(
        fs::read_to_string(tree.join("etc/hostname")).unwrap(),
        "fake\n"
    );
    assert!(!tree.join("usr/share/doc/bash").exists());
}

#[test]
fn drift_is_refused_naming_the_file_and_writes_nothing() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    fs::write(w.sysroot.join("usr/bin/bash"), "#!evil bash\n").unwrap();
    let err = w.fails(&[
        "materialise",
        "base",
        "--flavor",
        "openvz",
        "-o",
        "out.tar.zst",
    ]);
    assert!(err.contains("/usr/bin/bash"), "{err}");
    assert!(err.contains("bash"), "{err}");
    assert!(!w.out("out.tar.zst").exists());
    let err = w.fails(&common::materialise("base", "chroot", "tree"));
    assert!(err.contains("/usr/bin/bash"), "{err}");
    let leftovers: Vec<_> = fs::read_dir(&w.ws)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tree") || n.contains("out.tar"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn verify_reports_every_drifted_host_path_with_its_package() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let clean = w.ok(&["verify", "base", "--flavor", "openvz"]);
    assert!(clean.contains("host paths match the lock"), "{clean}");

    let host = |p: &str| w.sysroot.join(p);
    fs::write(host("usr/bin/bash"), "#!evil bash\n").unwrap();
    fs::remove_file(host("etc/debian_version")).unwrap();
    fs::set_permissions(host("usr/bin/mawk"), fs::Permissions::from_mode(0o700)).unwrap();
    let libc = host("usr/lib/x86_64-linux-gnu/libc.so.6");
    fs::remove_file(&libc).unwrap();
    fs::create_dir(&libc).unwrap();
    if is_root() {
        std::os::unix::fs::lchown(host("usr/bin/mawk"), Some(1), Some(1)).unwrap();
    }
    // The pool still has bash's archive: materialise can take the locked bytes there.
    let debs = w.ws.join("debs");
    fs::create_dir(&debs).unwrap();
    build_deb(
        &debs,
        "bash",
        "5.2.15-2+b2",
        &[("/bin/bash", "#!fake bash\n")],
        &[],
        &[],
    );

    let args = w.args(&["verify", "base", "--flavor", "openvz", "--pool", "debs"]);
    let out = appliance(&w.ws, &args);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(
        lines[0].starts_with("/etc/debian_version (package base-files): missing")
            && lines[0].contains("nothing else supplies it"),
        "{report}"
    );
    assert_eq!(
        lines[1],
        "/usr/bin/bash (package bash): content differs; materialise takes it from its package's archive in the pool"
    );
    assert!(
        lines[2].starts_with("/usr/bin/mawk (package mawk):"),
        "{report}"
    );
    assert!(
        lines[2].contains("wrong mode (lock: 0755, host: 0700)"),
        "{report}"
    );
    if is_root() {
        assert!(
            lines[2].contains("wrong owner (lock: 0:0, host: 1:1)"),
            "{report}"
        );
    }
    assert!(
        lines[3].starts_with(
            "/usr/lib/x86_64-linux-gnu/libc.so.6 (package libc6): not a regular file (a directory)"
        ),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 of ")
            && stderr.contains("host paths differ from base=1.0-1[!kernel,openvz is: x86_64]"),
        "{stderr}"
    );

    let out = appliance(
        &w.ws,
        &w.args(&["verify", "base", "--flavor", "openvz", "--json"]),
    );
    assert_eq!(out.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: Vec<&str> = (rows.as_array().unwrap().iter())
        .map(|r| r["package"].as_str().unwrap())
        .collect();
    assert_eq!(packages, ["base-files", "bash", "mawk", "libc6"]);
}

#[test]
fn an_unreadable_host_file_is_reported_never_taken_as_empty() {
    if !is_root() {
        eprintln!("skipped: the unreadable case runs appliance as nobody, which needs root");
        return;
    }
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    fs::set_permissions(
        w.sysroot.join("usr/bin/bash"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    // nobody reads the workspace and writes its store and outputs.
    let top = w.ws.parent().unwrap();
    std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(top)
        .status()
        .unwrap();
    fs::set_permissions(
        w.sysroot.join("usr/bin/bash"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_appliance"))
            .args(w.args(args))
            .current_dir(&w.ws)
            .output()
            .unwrap()
    };
    let out = as_nobody(&["verify", "base", "--flavor", "openvz"]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("/usr/bin/bash (package bash): unreadable: Permission denied"),
        "{report}"
    );
    let out = as_nobody(&common::materialise("base", "chroot", "tree"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/usr/bin/bash (package bash): unreadable"),
        "{err}"
    );
    assert!(!w.out("tree").exists(), "no tree with an empty bash");
}

#[test]
fn bad_input_is_a_clear_error_and_changes_nothing() {
    let w = World::new(&[
        ("base", BASE),
        (
            "broken",
            "group broken version=\"1.0\" {\n    package bash\n    package (\n}\n",
        ),
        (
            "typo",
            "group typo version=\"1.0\" {\n    flavors openvz\n    package bsh\n}\n",
        ),
        (
            "flag",
            "group flag version=\"1.0\" {\n    flavors openvz\n    when opnvz { package bash; }\n}\n",
        ),
        (
            "unsat",
            "group unsat version=\"1.0\" {\n    flavors openvz\n    package nginx-light\n}\n",
        ),
        (
            "loop",
            "group loop version=\"1.0\" {\n    flavors openvz\n    include loop2\n}\n",
        ),
        (
            "loop2",
            "group loop2 version=\"1.0\" {\n    include loop\n}\n",
        ),
        (
            "stmt",
            "group stmt version=\"1.0\" {\n    flavors openvz\n    pakage bash\n}\n",
        ),
        (
            "v1",
            "group v1 version=\"1.0\" {\n    flavors openvz\n    hostfile \"/etc/x\" secret=true\n}\n",
        ),
    ]);
    w.ok(&["compile", "groups/base.kdl"]);
    let before = w.ok(&["list"]);

    let err = w.fails(&["compile", "groups/broken.kdl"]);
    assert!(err.contains("groups/broken.kdl:3:"), "{err}");
    let err = w.fails(&["compile", "groups/typo.kdl"]);
    assert!(err.contains("bsh") && err.contains("bash"), "{err}");
    let err = w.fails(&["compile", "groups/flag.kdl"]);
    assert!(
        err.contains("groups/flag.kdl:3:10") && err.contains("openvz"),
        "{err}"
    );
    let err = w.fails(&["compile", "groups/unsat.kdl"]);
    assert!(
        err.contains("unsat -> nginx-light -> libssl3 (>= 3.0.9)") && err.contains("3.0.8-1"),
        "{err}"
    );
    let err = w.fails(&["compile", "groups/loop.kdl"]);
    assert!(err.contains("loop -> loop2 -> loop"), "{err}");
    let err = w.fails(&["compile", "groups/stmt.kdl"]);
    assert!(err.contains("pakage") && err.contains("package"), "{err}");
    let err = w.fails(&["compile", "groups/v1.kdl"]);
    assert!(
        err.contains("groups/v1.kdl:3:30") && err.contains("KDL v2 writes `#true`"),
        "{err}"
    );
    let err = w.fails(&["compile", "groups/base.kdl", "--flavor", "opnvz"]);
    assert!(err.contains("openvz"), "{err}");
    // A typo inside a canonical string names no flavor that exists: refused, not stored.
    let canonical = "[!kernel,opnvz is: x86_64]";
    let err = w.fails(&["compile", "groups/base.kdl", "--flavor", canonical]);
    assert!(
        err.contains("unknown flag `opnvz` in flavor `[!kernel,opnvz is: x86_64]`")
            && err.contains("did you mean `openvz`?"),
        "{err}"
    );
    let err = w.fails(&["materialise", "nope", "--flavor", "openvz"]);
    assert!(err.contains("base"), "{err}");
    let err = w.fails(&["why", "libc7", "--group", "base", "--flavor", "openvz"]);
    assert!(err.contains("libc6"), "{err}");

    assert_eq!(w.ok(&["list"]), before);
}

#[test]
fn a_kernel_is_refused_where_the_flavor_has_none() {
    let w = World::new(&[(
        "vm",
        "group vm version=\"1.0\" {\n    flavors openvz kvm\n    package bash\n    package linux-image-amd64\n}\n",
    )]);
    let err = w.fails(&["compile", "groups/vm.kdl", "--flavor", "openvz"]);
    assert!(
        err.contains("groups/vm.kdl:4:5: package linux-image-amd64 brings a kernel (linux-image-6.1.0-9-amd64)")
            && err.contains("vm -> linux-image-amd64 -> linux-image-6.1.0-9-amd64")
            && err.contains("when kernel"),
        "{err}"
    );
    assert!(
        !w.ws.join("store").exists(),
        "a refused compile wrote a repository"
    );

    // A kernel flavor takes it; its lock is no OpenVZ template.
    w.ok(&["compile", "groups/vm.kdl", "--flavor", "kvm"]);
    let err = w.fails(&[
        "materialise",
        "vm",
        "--flavor",
        "kvm",
        "--format",
        "openvz",
        "-o",
        "t.tar.gz",
    ]);
    assert!(
        err.contains("/boot/vmlinuz-6.1.0-9-amd64 (package linux-image-6.1.0-9-amd64)")
            && err.contains("boots no kernel"),
        "{err}"
    );
    assert!(!w.ws.join("t.tar.gz").exists());
}

#[test]
fn if_newer_skips_a_current_output() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    w.ok(&["materialise", "--flavor", "openvz", "-o", "a.tar"]);
    let again = || {
        w.ok(&[
            "materialise",
            "--flavor",
            "openvz",
            "-o",
            "a.tar",
            "--if-newer",
        ])
    };
    let first = again();
    assert!(first.contains("up to date"), "{first}");
    // A host file it was built from, chmod'ed, is no longer what it was built from.
    let used = w.sysroot.join("etc/debian_version");
    fs::set_permissions(&used, fs::Permissions::from_mode(0o600)).unwrap();
    let rebuilt = again();
    assert!(rebuilt.contains("entries"), "{rebuilt}");
    let current = again();
    assert!(current.contains("up to date"), "{current}");
}

#[test]
fn help_has_examples() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        "compile",
        "materialise",
        "boot",
        "verify",
        "list",
        "show",
        "flavors",
        "why",
    ] {
        let out = appliance(dir.path(), &[cmd, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Example:"),
            "{cmd}: {text}"
        );
    }
}

#[test]
fn boot_refuses_bad_forwards_before_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    fake_workspace(dir.path(), &[]);
    let boot = |forwards: &[&str]| {
        let mut args = vec!["boot", "web", "--flavor", "kvm"];
        for forward in forwards {
            args.extend(["--forward", forward]);
        }
        fails(dir.path(), &args)
    };
    let err = boot(&["8080"]);
    assert!(
        err.contains("bad --forward `8080`: no `:` between the ports (write HOST:GUEST"),
        "{err}"
    );
    let err = boot(&["8080:99999"]);
    assert!(
        err.contains("the guest port `99999` is not a port from 1 to 65535"),
        "{err}"
    );
    let err = boot(&["8080:80", "8080:443"]);
    assert!(
        err.contains("--forward 8080:80 and --forward 8080:443 both take host port 8080"),
        "{err}"
    );
    // Good forwards get as far as the repository, which is missing here.
    let err = boot(&["8080:80", "8443:443"]);
    assert!(err.contains("appliance compile"), "{err}");
}

#[test]
fn configure_statements_need_a_tree_with_dpkg() {
    let w = World::new(&[(
        "acct",
        "group acct version=\"1.0\" {\n    flavors openvz\n    package bash\n    debconf \"a a/b string c\"\n    user app\n}\n",
    )]);
    let err = w.fails(&["compile", "groups/acct.kdl"]);
    assert!(
        err.contains(
            "groups/acct.kdl:4:13: `debconf` needs a configured tree, and group acct's closure \
             has no dpkg to configure it: add `package dpkg`"
        ),
        "{err}"
    );
    assert!(!w.ws.join("store").exists(), "nothing is stored");
}

#[test]
fn a_failed_compile_writes_no_repository() {
    let w = World::new(&[(
        "unsat",
        "group unsat version=\"1.0\" {\n    flavors openvz\n    package nginx-light\n    file \"/etc/motd\" content=\"hi\\n\"\n}\n",
    )]);
    w.fails(&["compile", "groups/unsat.kdl"]);
    assert!(
        !w.ws.join("store").exists(),
        "a failed compile created store/"
    );
}

#[test]
fn concurrent_materialise_with_a_lock_file_builds_once() {
    let w = World::new(&[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let repo = Repository::open_read_only(&w.ws.join("store/repo.sqlite")).unwrap();
    let stored = repo.load("base", OPENVZ, None).unwrap();
    // What the CLI reads from: the stamp's request names the sysroot, not the pools.
    let sources = Sources {
        sysroot: w.sysroot.clone(),
        pool: vec![w.ws.join("store/pool")],
        blobs: Some(w.ws.join("store/blobs")),
        unpacked: Some(w.ws.join("store/unpacked")),
    };
    const N: usize = 8;
    for (name, format, cli_format) in [
        ("root", Format::Chroot, "chroot"),
        ("same.tar.gz", Format::Tar(Compression::Gzip), "tar"),
    ] {
        let reference = w.out(&format!("reference-{name}"));
        let reference_arg = reference.to_str().unwrap();
        w.ok(&[
            "materialise",
            "--flavor",
            "openvz",
            "--format",
            cli_format,
            "-o",
            reference_arg,
        ]);

        let outs = w.out(&format!("outs-{cli_format}"));
        fs::create_dir(&outs).unwrap();
        let out = outs.join(name);
        let lock_file = outs.join("build.lock");
        let (out_arg, lock_arg) = (out.to_str().unwrap(), lock_file.to_str().unwrap());
        let args = w.args(&[
            "materialise",
            "--flavor",
            "openvz",
            "--format",
            cli_format,
            "-o",
            out_arg,
            "--if-newer",
            "--lock",
            lock_arg,
        ]);
        let start = Barrier::new(N + 1);
        let (processes, threads) = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..N)
                .map(|_| {
                    let opts = Options {
                        if_newer: true,
                        lock_file: Some(lock_file.clone()),
                        ..Options::default()
                    };
                    let (start, stored, sources, out, format) =
                        (&start, &stored, &sources, &out, &format);
                    scope.spawn(move || {
                        start.wait();
                        materialise(&stored.lock, &stored.lock_id, sources, format, out, &opts)
                    })
                })
                .collect();
            let children: Vec<_> = (0..N)
                .map(|_| {
                    Command::new(env!("CARGO_BIN_EXE_appliance"))
                        .args(&args)
                        .current_dir(&w.ws)
                        .env_remove("SOURCE_DATE_EPOCH")
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            start.wait();
            let threads: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let processes: Vec<_> = children
                .into_iter()
                .map(|c| c.wait_with_output().unwrap())
                .collect();
            (processes, threads)
        });
        let mut built = 0;
        for process in &processes {
            let stdout = String::from_utf8_lossy(&process.stdout);
            assert!(
                process.status.success(),
                "{name}: {stdout}{}",
                String::from_utf8_lossy(&process.stderr)
            );
            if stdout.contains("entries") {
                built += 1;
            } else {
                assert!(stdout.contains("up to date"), "{name}: {stdout}");
            }
        }
        for thread in threads {
            let outcome = thread.unwrap_or_else(|e| panic!("{name}: {e}"));
            built += usize::from(outcome.built);
        }
        assert_eq!(built, 1, "{name}: one build among {} runs", 2 * N);
        assert_eq!(snapshot(&out), snapshot(&reference), "{name}");
        let mut left: Vec<String> = fs::read_dir(&outs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let stamp = format!(".{name}.appliance-stamp");
        assert_eq!(left, [stamp.as_str(), "build.lock", name], "{name}");
    }
}

/// Everything about a file or tree that an output promises: for each path, its type
/// and mode, owners, mtime, and content, link target or device number.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let what = if meta.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            children.sort();
            pending.extend(children);
            String::new()
        } else if meta.is_symlink() {
            fs::read_link(&path).unwrap().display().to_string()
        } else if meta.is_file() {
            digest(&path)
        } else {
            // A device or a fifo: reading it could block or never end.
            format!("device {}", meta.rdev())
        };
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        // A tarball's own mtime is when it was written; its bytes are the promise.
        let mtime = if path == root && meta.is_file() {
            String::new()
        } else {
            meta.mtime().to_string()
        };
        entries.insert(
            relative,
            format!(
                "{:o} {}:{} {mtime} {what}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
            ),
        );
    }
    entries
}

#[test]
fn unconfigured_trees_carry_dpkg_state_never_host_secrets() {
    // The fake packages have no dpkg to configure them: the tree is locked with dpkg's
    // database as an installed system, and nothing of the host's accounts.
    let w = World::new(&[("base", BASE)]);
    fs::write(
        w.sysroot.join("etc/shadow"),
        "root:$6$hostsecret:19000:0:99999:7:::\n",
    )
    .unwrap();
    let out = appliance(&w.ws, &w.args(&["compile", "groups/base.kdl"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not configured: its closure has no dpkg"),
        "{stderr}"
    );
    w.ok(&common::materialise("base", "chroot", "tree"));
    let tree = w.out("tree");
    let status = fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap();
    let names: Vec<&str> = status
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .collect();
    assert_eq!(names, ["base-files", "bash", "libc6", "mawk"], "{status}");
    assert!(
        status.contains("Status: install ok installed\n"),
        "{status}"
    );
    assert_eq!(
        fs::read_to_string(tree.join("var/lib/dpkg/info/bash.list")).unwrap(),
        "/.\n/bin\n/bin/bash\n/usr\n/usr/share\n/usr/share/doc\n/usr/share/doc/bash\n/usr/share/doc/bash/README\n"
    );
    assert!(!tree.join("etc/shadow").exists());
    w.ok(&["materialise", "base", "--flavor", "openvz", "-o", "t.tar"]);
    assert!(
        !fs::read(w.out("t.tar"))
            .unwrap()
            .windows(10)
            .any(|b| b == b"hostsecret")
    );
}

#[test]
fn modified_conffiles_are_reported_and_taken_pristine_from_the_pool() {
    const PRISTINE: &str = "setting = 1\n";
    let md5 = "6bc5aa55a24a9d663f97616fed018e1a";
    let w = World::new(&[("base", BASE)]);
    // The fake dpkg database says base-files' /etc/issue was installed with PRISTINE's
    // MD5, and the admin has since edited it.
    let status = w.sysroot.join("var/lib/dpkg/status");
    let text = fs::read_to_string(&status).unwrap().replacen(
        "Package: base-files\n",
        &format!("Package: base-files\nConffiles:\n /etc/issue {md5}\n"),
        1,
    );
    fs::write(&status, text).unwrap();
    let list = w.sysroot.join("var/lib/dpkg/info/base-files.list");
    let listed = fs::read_to_string(&list).unwrap() + "/etc/issue\n";
    fs::write(&list, listed).unwrap();
    fs::write(w.sysroot.join("etc/issue"), "edited by the admin\n").unwrap();

    let out = appliance(&w.ws, &w.args(&["compile", "groups/base.kdl"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("conffile /etc/issue of base-files was modified on the host: the lock takes the host's version"),
        "{stderr}"
    );

    let pool = w.ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "base-files",
        "12.4+deb12u5",
        &[("/etc/issue", PRISTINE), ("/etc/debian_version", "12.5\n")],
        &["/etc/issue"],
        &[],
    );
    let out = appliance(
        &w.ws,
        &w.args(&["compile", "groups/base.kdl", "--pool", "debs"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the lock takes the packaged version"),
        "{stderr}"
    );
    w.ok(&common::materialise("base", "chroot", "tree"));
    assert_eq!(
        fs::read_to_string(w.out("tree/etc/issue")).unwrap(),
        PRISTINE
    );
}

/// Writes an apt list for `site_dists_SUITE_main_binary-amd64_Packages` under the
/// sysroot describing the archive at `deb` as `name=version`.
fn apt_list(sysroot: &Path, suite: &str, name: &str, version: &str, deb: &Path) {
    let bytes = fs::read(deb).unwrap();
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let lists = sysroot.join("var/lib/apt/lists");
    fs::create_dir_all(&lists).unwrap();
    fs::write(
        lists.join(format!("site_dists_{suite}_main_binary-amd64_Packages")),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\nDescription: test\n\
             Filename: pool/main/{name}.deb\nSize: {}\nSHA256: {sha256}\n",
            bytes.len()
        ),
    )
    .unwrap();
}

#[test]
fn stale_packages_are_reported_and_prefer_newest_takes_the_candidates() {
    let w = World::new(&[("base", BASE)]);
    // The archive has a security update of bash, and the pool holds it, so nothing is
    // downloaded.
    let pool = w.ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "bash",
        "5.2.15-2+b9",
        &[("/bin/bash", "#!new bash\n")],
        &[],
        &[],
    );
    let deb = pool.join("bash_5.2.15-2+b9_amd64.deb");
    apt_list(&w.sysroot, "bookworm-security", "bash", "5.2.15-2+b9", &deb);
    let compile = |extra: &[&str]| {
        let mut args = vec!["compile", "groups/base.kdl", "--pool", "debs", "--offline"];
        args.extend_from_slice(extra);
        w.stderr(&args)
    };
    let show = || w.ok(&["show", "base", "--flavor", "openvz"]);

    // By default the host's versions, and the one behind apt's lists is reported.
    let stderr = compile(&[]);
    assert!(
        stderr.contains(
            "warning: 1 locked packages are older than apt's lists' candidates (1 security \
             updates; compile --prefer newest takes the candidates): \
             bash 5.2.15-2+b2 -> 5.2.15-2+b9 (security)\n"
        ),
        "{stderr}"
    );
    let lock = show();
    assert!(
        lock.contains("bash 5.2.15-2+b2 amd64 [installed]"),
        "{lock}"
    );
    // -v gives a row per package.
    let stderr = compile(&["-v"]);
    assert!(
        stderr.contains("takes the candidates):\n  bash 5.2.15-2+b2 -> 5.2.15-2+b9 (security)\n"),
        "{stderr}"
    );

    // --prefer newest: the newest of each name, from the pool rather than apt's lists
    // at an equal version; nothing is stale.
    let stderr = compile(&["--prefer", "newest"]);
    assert!(!stderr.contains("older than"), "{stderr}");
    let lock = show();
    assert!(lock.contains("bash 5.2.15-2+b9 amd64 [pool]"), "{lock}");

    // The group's statement does the same, and the flag replaces it.
    let fresh = BASE.replace("package bash", "prefer newest\n    package bash");
    fs::write(w.ws.join("groups/base.kdl"), fresh).unwrap();
    compile(&[]);
    assert!(show().contains("bash 5.2.15-2+b9 amd64 [pool]"));
    compile(&["--prefer", "installed"]);
    assert!(show().contains("bash 5.2.15-2+b2 amd64 [installed]"));
    let bad = BASE.replace("package bash", "prefer latest\n    package bash");
    fs::write(w.ws.join("groups/base.kdl"), bad).unwrap();
    let err = w.fails(&["compile", "groups/base.kdl"]);
    assert!(
        err.contains("groups/base.kdl:4:12: `latest` is no preference"),
        "{err}"
    );
}

#[test]
fn a_host_package_with_altered_files_is_taken_from_its_archive_or_refused() {
    let w = World::new(&[("base", BASE)]);
    // What ssl-cert does to openssl's folder: a statoverride, and the host's file as it
    // says. The lock must have bash's own metadata, which only its archive holds.
    let bash = w.sysroot.join("usr/bin/bash");
    std::os::unix::fs::chown(&bash, Some(0), Some(33)).unwrap();
    fs::set_permissions(&bash, fs::Permissions::from_mode(0o4750)).unwrap();
    let overrides = w.sysroot.join("var/lib/dpkg/statoverride");
    fs::write(&overrides, "root www-data 4750 /bin/bash\n").unwrap();
    let err = w.fails(&["compile", "groups/base.kdl", "--offline"]);
    assert!(
        err.contains(
            "the host's bash 5.2.15-2+b2 has altered files (/bin/bash: a statoverride makes \
             it root:www-data 4750), so the lock must take the package from its archive, and \
             neither a pool nor apt's lists hold bash: put bash_5.2.15-2+b2_amd64.deb in a \
             pool (--pool DIR), or run apt-get update"
        ),
        "{err}"
    );
    assert!(!w.ws.join("store/repo.sqlite").exists());

    let pool = packaged_bash(&w);
    let deb = pool.join("bash_5.2.15-2+b2_amd64.deb");
    let compile = || w.stderr(&["compile", "groups/base.kdl", "--pool", "debs", "--offline"]);
    let bash_entry = || {
        let bash = locked_bash(&w);
        (
            u32::from_str_radix(bash["mode"].as_str().unwrap(), 8).unwrap(),
            bash["gid"].as_u64().unwrap(),
        )
    };
    let stderr = compile();
    assert!(
        stderr.contains(
            "warning: the host's bash 5.2.15-2+b2 has altered files (/bin/bash: a statoverride \
             makes it root:www-data 4750); the lock takes that version from the pool"
        ),
        "{stderr}"
    );
    // dpkg-deb keeps the mode the test wrote (0644) and --root-owner-group's root.
    assert_eq!(bash_entry(), (0o644, 0));

    // An owner no static Debian account has is a script's doing too (chown drops the
    // setuid bit).
    fs::remove_file(&overrides).unwrap();
    std::os::unix::fs::chown(&bash, Some(4242), Some(0)).unwrap();
    let stderr = compile();
    assert!(
        stderr.contains(
            "(/bin/bash: the host has it owned by 4242:root (4242:0), mode 0750, ids a script \
             made); the lock takes that version from the pool"
        ),
        "{stderr}"
    );
    assert_eq!(bash_entry(), (0o644, 0));
    // No archive of the host's version: the lock says which one it took instead.
    fs::remove_file(&deb).unwrap();
    build_deb(
        &pool,
        "bash",
        "5.2.15-2+b9",
        &[("/bin/bash", "#!newer bash\n")],
        &[],
        &[],
    );
    let stderr = compile();
    assert!(
        stderr.contains("no archive holds that version: the lock takes 5.2.15-2+b9 from the pool"),
        "{stderr}"
    );
    // Known only from apt's lists, offline: refused, saying how to get the archive.
    let listed = w.ws.join("listed.deb");
    fs::rename(pool.join("bash_5.2.15-2+b9_amd64.deb"), &listed).unwrap();
    apt_list(&w.sysroot, "bookworm", "bash", "5.2.15-2+b9", &listed);
    let err = w.fails(&["compile", "groups/base.kdl", "--offline"]);
    assert!(
        err.contains(
            "and --offline forbids downloading bash=5.2.15-2+b9 from apt's lists: put \
             bash_5.2.15-2+b2_amd64.deb in a pool (--pool DIR), or drop --offline"
        ),
        "{err}"
    );
}

#[test]
fn a_host_package_whose_bytes_changed_is_taken_from_its_archive_or_refused() {
    let w = World::new(&[("base", BASE)]);
    // Files changed within two seconds are not stamped (their times might not show the
    // next change): past that, this compile keeps the stamps of the packages it found
    // unchanged, and the next must still see what changes after it.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    w.ok(&["compile", "groups/base.kdl", "--offline"]);
    let stored = w.ok(&["list"]);
    // What a tool that updates itself in place does (npm rewriting nodejs's files): the
    // bytes are no longer the ones dpkg unpacked, and the lock must not pass them off as
    // bash's, which no archive could supply on another machine.
    let bash = w.sysroot.join("usr/bin/bash");
    fs::write(&bash, "#!bash the host patched\n").unwrap();
    let err = w.fails(&["compile", "groups/base.kdl", "--offline"]);
    assert!(
        err.contains(
            "the host's bash 5.2.15-2+b2 has altered files (/bin/bash: its bytes differ from \
             the MD5 dpkg recorded), so the lock must take the package from its archive, and \
             neither a pool nor apt's lists hold bash: put bash_5.2.15-2+b2_amd64.deb in a \
             pool (--pool DIR), or run apt-get update"
        ),
        "{err}"
    );
    assert_eq!(w.ok(&["list"]), stored);

    packaged_bash(&w);
    let stderr = w.stderr(&["compile", "groups/base.kdl", "--pool", "debs", "--offline"]);
    assert!(
        stderr.contains(
            "warning: the host's bash 5.2.15-2+b2 has altered files (/bin/bash: its bytes \
             differ from the MD5 dpkg recorded); the lock takes that version from the pool"
        ),
        "{stderr}"
    );
    let packaged = blake3::hash(b"#!packaged bash\n").to_hex().to_string();
    assert_eq!(locked_bash(&w)["digest"], packaged.as_str());
}

/// The pool folder `debs` of the workspace, holding bash at the host's version as
/// packaged (`#!packaged bash`).
fn packaged_bash(w: &World) -> PathBuf {
    let pool = w.ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "bash",
        "5.2.15-2+b2",
        &[("/bin/bash", "#!packaged bash\n")],
        &[],
        &[],
    );
    pool
}

/// `/usr/bin/bash` of base's openvz lock, as `show --json` gives it.
fn locked_bash(w: &World) -> serde_json::Value {
    let show = w.ok(&["show", "base", "--flavor", "openvz", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&show).unwrap();
    let files = json["lock"]["files"].as_array().unwrap();
    let bash = files.iter().find(|f| f["path"] == "/usr/bin/bash");
    bash.unwrap().clone()
}
