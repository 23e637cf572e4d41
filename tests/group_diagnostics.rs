//! Group statements whose mistakes used to pass silently or without a place, end to end
//! through the binary: a `paths` glob that matches nothing (and one that only matches
//! through merged /usr's links), a `remove` that removes nothing, and a `package`
//! request the packages cannot meet. Over a fake Debian sysroot with merged /usr, and,
//! for the RPM resolver, the RPM world (which needs root).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{FakePackage, appliance, fake_sysroot, fake_workspace, is_root};

fn packages() -> Vec<FakePackage> {
    let mut packages = common::core_packages(&[("/usr/bin/bashbug", "#!fake bashbug\n")]);
    packages.extend([
        FakePackage::new("coreutils", "9.1-1")
            .depends("libc6")
            .file("/bin/ls", "fake ls\n"),
        FakePackage::new("mawk", "1.3.4-1").file("/usr/bin/mawk", "fake mawk\n"),
        FakePackage::new("libssl3", "3.0.8-1"),
        FakePackage::new("nginx-light", "1.22.1-9")
            .depends("libc6, libssl3 (>= 3.0.9)")
            .file("/usr/sbin/nginx", "fake nginx\n"),
    ]);
    packages
}

/// A container flavor of this test's own, beside the project's three.
const SMALL: &str = "flavor small { arch x86_64; use small=#true kernel=#false; format openvz }";

/// A workspace over a fake sysroot; `groups` are (name, text) of group files.
struct World {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    sysroot: PathBuf,
}

impl World {
    fn new(groups: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let sysroot = dir.path().join("sysroot");
        fake_sysroot(&sysroot, &packages());
        fake_workspace(&ws, groups);
        fs::write(ws.join("flavors/small.kdl"), SMALL).unwrap();
        World {
            _dir: dir,
            ws,
            sysroot,
        }
    }

    fn group(&self, name: &str, text: &str) {
        fs::write(self.ws.join(format!("groups/{name}.kdl")), text).unwrap();
    }

    /// `appliance --sysroot SYSROOT compile GROUP.kdl`: whether it succeeded, stdout
    /// and stderr.
    fn compile(&self, group: &str) -> (bool, String, String) {
        let file = format!("groups/{group}.kdl");
        let sysroot = self.sysroot.to_str().unwrap();
        let out = appliance(&self.ws, &["--sysroot", sysroot, "compile", &file]);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    }

    /// Compiles `group`, which must succeed: its stderr.
    fn compiles(&self, group: &str) -> String {
        let (ok, stdout, stderr) = self.compile(group);
        assert!(ok, "{stdout}{stderr}");
        stderr
    }

    /// Compiles `group`, which must fail without storing anything: its stderr.
    fn refused(&self, group: &str) -> String {
        let (ok, stdout, stderr) = self.compile(group);
        assert!(!ok, "{stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            !self.ws.join("store/repo.sqlite").exists(),
            "a refused compile stored"
        );
        stderr
    }

    /// The paths of the stored lock of `group` for flavor `small`.
    fn paths(&self, group: &str) -> Vec<String> {
        let sysroot = self.sysroot.to_str().unwrap();
        let args = [
            "--sysroot",
            sysroot,
            "show",
            group,
            "--flavor",
            "small",
            "--json",
        ];
        let lock: serde_json::Value = serde_json::from_str(&common::ok(&self.ws, &args)).unwrap();
        (lock["lock"]["files"].as_array().unwrap().iter())
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A group `micro` for flavor `small` with bash and coreutils, trimmed to `paths`.
fn micro(paths: &str) -> String {
    format!(
        "group micro version=\"1.0\" {{\n    flavors small\n    package bash\n    package coreutils\n    paths {paths}\n}}\n"
    )
}

#[test]
fn paths_follow_merged_usr_links_and_a_glob_matching_nothing_fails_at_it() {
    // Debian's own name for bash, through the tree's `/bin -> usr/bin`, and a glob
    // through it, keep bash and the link, as the tree's own name does.
    for paths in ["\"/bin/bash\"", "\"/bin/ba*\"", "\"/usr/bin/bash\""] {
        let w = World::new(&[("micro", &micro(paths))]);
        w.compiles("micro");
        let kept = w.paths("micro");
        for path in ["/usr/bin/bash", "/bin", "/etc/hosts"] {
            assert!(
                kept.contains(&path.to_string()),
                "{paths}: {path}: {kept:?}"
            );
        }
        for gone in ["/usr/bin/ls", "/etc/debian_version"] {
            assert!(
                !kept.contains(&gone.to_string()),
                "{paths}: {gone}: {kept:?}"
            );
        }
        // `ba*` takes bashbug too; the names alone do not.
        let bashbug = kept.contains(&"/usr/bin/bashbug".to_string());
        assert_eq!(bashbug, paths.contains('*'), "{paths}: {kept:?}");
    }

    // A typo, written second in its statement: refused at that glob, with the excerpt
    // of the line and the nearest names the tree has.
    let w = World::new(&[("micro", &micro("\"/usr/bin/bash\" \"/bin/bsh\""))]);
    let err = w.refused("micro");
    assert!(
        err.contains(
            "groups/micro.kdl:5:27: `paths` glob `/bin/bsh` matches nothing in the tree for \
             flavor [!kernel,small is: x86_64]"
        ),
        "{err}"
    );
    assert!(
        err.contains("paths \"/usr/bin/bash\" \"/bin/bsh\""),
        "{err}"
    );
    assert!(err.contains("matches nothing"), "{err}");
    assert!(
        err.contains("did you mean `/usr/bin/bash`? the tree has no /usr/bin/bsh"),
        "{err}"
    );

    // In an included group, the error names that group's file.
    w.group(
        "trim",
        "group trim version=\"1\" {\n    paths \"/usr/bin/nothing-*\"\n}\n",
    );
    w.group(
        "micro",
        &micro("\"/bin/bash\"").replace("    paths", "    include trim\n    paths"),
    );
    let err = w.refused("micro");
    assert!(
        err.contains(
            "groups/trim.kdl:2:11: `paths` glob `/usr/bin/nothing-*` matches nothing in the tree"
        ),
        "{err}"
    );
    assert!(err.contains("nothing in /usr/bin matches it"), "{err}");
}

#[test]
fn a_hostfile_glob_matching_nothing_fails_at_its_statement() {
    let w = World::new(&[(
        "host",
        "group host version=\"1\" {\n    flavors small\n    package bash\n    hostfile \"/etc/nothing-*.conf\"\n}\n",
    )]);
    let err = w.refused("host");
    assert!(
        err.contains("groups/host.kdl:4:5: hostfile `/etc/nothing-*.conf` matches nothing under"),
        "{err}"
    );
    assert!(err.contains("hostfile \"/etc/nothing-*.conf\""), "{err}");
}

#[test]
fn a_remove_that_removes_nothing_is_a_warning_once_or_per_flavor() {
    const BASE: &str = "group base version=\"1\" {\n    package bash\n    package mawk when=openvz\n    package coreutils\n}\n";
    const WEB: &str = "group web version=\"1.0\" {\n    flavors openvz small\n    include base\n    remove emacs\n    remove mawk\n    remove coreutils\n}\n";
    let w = World::new(&[("base", BASE), ("web", WEB)]);
    let stderr = w.compiles("web");
    // Nothing asks for emacs in either flavor: said once, without a flavor.
    let emacs = "warning: groups/web.kdl:4:12: remove emacs: no package in web needs it, so it removes nothing\n";
    assert_eq!(stderr.matches(emacs).count(), 1, "{stderr}");
    // mawk is asked for in openvz only: the remove is idle in small alone.
    let mawk = "warning: groups/web.kdl:5:12: remove mawk: no package in web [small] needs it, so it removes nothing\n";
    assert_eq!(stderr.matches(mawk).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("remove mawk").count(), 1, "{stderr}");
    // coreutils is asked for everywhere: removed, no warning.
    assert!(!stderr.contains("remove coreutils"), "{stderr}");
    assert!(w.paths("web").contains(&"/usr/bin/bash".to_string()));
    assert!(!w.paths("web").contains(&"/usr/bin/ls".to_string()));
}

#[test]
fn an_unmet_package_request_fails_at_its_statement() {
    let web = |body: &str| {
        format!("group web version=\"1.0\" {{\n    flavors small\n    package bash\n{body}}}\n")
    };
    // A misspelled name: the statement, its line, and the nearest names.
    let w = World::new(&[("web", &web("    package bsh\n"))]);
    let err = w.refused("web");
    assert!(
        err.contains("groups/web.kdl:4:5: web -> bsh: no such package (did you mean bash"),
        "{err}"
    );
    assert!(err.contains("package bsh"), "{err}");
    assert!(err.contains("asked for here"), "{err}");

    // A version no source has.
    w.group("web", &web("    package coreutils version=\">= 99\"\n"));
    let err = w.refused("web");
    assert!(
        err.contains("groups/web.kdl:4:5: web -> coreutils (>= 99): only 9.1-1 available"),
        "{err}"
    );
    assert!(err.contains("package coreutils version=\">= 99\""), "{err}");

    // A dependency deep in the chain fails: the statement that began the chain, in
    // the included group's file.
    w.group(
        "base",
        "group base version=\"1\" {\n    package mawk\n    package nginx-light\n}\n",
    );
    w.group("web", &web("    include base\n"));
    let err = w.refused("web");
    assert!(
        err.contains(
            "groups/base.kdl:3:5: web -> nginx-light -> libssl3 (>= 3.0.9): only 3.0.8-1 available"
        ),
        "{err}"
    );
    assert!(err.contains("needs libssl3 (>= 3.0.9)"), "{err}");
}

/// The RPM resolver's requests point at their statements too, and its idle removes
/// are warned about the same way.
#[test]
fn rpm_requests_and_removes_are_located() {
    if !is_root() {
        eprintln!("skipped: the RPM world needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    common::example_workspace(ws);
    let world = common::rpm_world::rpm_world().copy_to(&ws.join("world"));
    let group = |body: &str| {
        let text = format!("group boxed version=\"1.0\" {{\n    package busybox\n{body}}}\n");
        fs::write(ws.join("groups/boxed.kdl"), text).unwrap();
    };
    let compile = |ws: &Path| {
        let args = [
            "--sysroot",
            world.sysroot.to_str().unwrap(),
            "compile",
            "groups/boxed.kdl",
            "--flavor",
            "openvz",
            "--pool",
            world.repo.to_str().unwrap(),
        ];
        appliance(ws, &args)
    };
    group("    package busybx\n");
    let out = compile(ws);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "groups/boxed.kdl:3:5: boxed -> busybx: no such package (did you mean busybox"
        ),
        "{err}"
    );
    assert!(
        !ws.join("store/repo.sqlite").exists(),
        "a refused compile stored"
    );

    group("    remove emacs\n");
    let out = compile(ws);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: groups/boxed.kdl:3:12: remove emacs: no package in boxed needs it, so it removes nothing"),
        "{err}"
    );
}
