//! End to end on the real machine: the example `groups/base.kdl` compiled from this
//! host's own dpkg database and materialised. The chroot check needs root (CI is root);
//! run as another user, that one check says it skipped.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{digest, example_workspace, is_root, ok};

#[test]
fn base_from_the_host_runs_bash_in_a_chroot_and_tars_reproducibly() {
    if !Path::new("/var/lib/dpkg/status").exists() {
        panic!("this test needs a Debian host with a dpkg database");
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    let compiled = ok(ws, &["compile", "groups/base.kdl", "--flavor", "openvz"]);
    assert!(
        compiled.contains("base=1.0-1[!kernel,openvz is: x86_64] stored"),
        "{compiled}"
    );
    let again = ok(ws, &["compile", "groups/base.kdl", "--flavor", "openvz"]);
    assert!(again.contains("unchanged"), "{again}");

    ok(ws, &common::materialise("base", "chroot", "root"));
    let root = ws.join("root");
    assert!(root.join("usr/bin/bash").is_file());
    assert_eq!(
        fs::read_link(root.join("bin")).unwrap(),
        Path::new("usr/bin")
    );
    if is_root() {
        let out = Command::new("chroot")
            .arg(&root)
            .args(["/bin/bash", "-c", "ls / && echo ok"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.lines().last() == Some("ok"),
            "chroot failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("usr"), "{stdout}");

        // The tree is a managed Debian system: dpkg knows exactly the locked packages and
        // finds every packaged file intact but for the ones the group excluded.
        let lock: serde_json::Value =
            serde_json::from_str(&ok(ws, &["show", "base", "--flavor", "openvz", "--json"]))
                .unwrap();
        let locked = lock["lock"]["packages"].as_array().unwrap().len();
        let inside = |script: &str| {
            let out = Command::new("chroot")
                .arg(&root)
                .args(["/bin/bash", "-c", script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.stderr.is_empty(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let installed = inside("dpkg -l | grep '^ii'");
        assert_eq!(installed.lines().count(), locked, "{installed}");
        for line in inside("dpkg -V").lines() {
            let excluded = ["/usr/share/doc/", "/usr/share/man/", "/usr/share/info/"]
                .iter()
                .any(|p| line.contains(p));
            assert!(line.starts_with("missing") && excluded, "dpkg -V: {line}");
        }
        // base-passwd's preinst made the accounts (no `passwd` package here turns shadow
        // passwords on); no password is set.
        assert!(inside("getent passwd root").starts_with("root:*:0:0:"));
        assert_eq!(inside("readlink -f /usr/bin/awk"), "/usr/bin/mawk\n");
        assert_eq!(inside("echo 1 2 | awk '{print $2}'"), "2\n");
        assert_eq!(
            inside("echo x > /dev/null && head -c 3 /dev/zero | wc -c"),
            "3\n"
        );
        assert!(!root.join("etc/shadow").exists());
    } else {
        eprintln!("skipped the chroot run: it needs root");
    }

    ok(
        ws,
        &[
            "materialise",
            "base",
            "--flavor",
            "openvz",
            "-o",
            "a.tar.zst",
        ],
    );
    ok(
        ws,
        &[
            "materialise",
            "base",
            "--flavor",
            "openvz",
            "-o",
            "b.tar.zst",
        ],
    );
    assert_eq!(digest(&ws.join("a.tar.zst")), digest(&ws.join("b.tar.zst")));
}

#[test]
fn minimal_is_a_small_tree_that_runs_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    ok(ws, &["compile", "groups/minimal.kdl", "--flavor", "openvz"]);
    let show = |group: &str| -> serde_json::Value {
        serde_json::from_str(&ok(ws, &["show", group, "--flavor", "openvz", "--json"])).unwrap()
    };
    ok(ws, &["compile", "groups/base.kdl", "--flavor", "openvz"]);
    let (minimal, base) = (show("minimal"), show("base"));
    let count = |v: &serde_json::Value, what: &str| v["lock"][what].as_array().unwrap().len();
    assert!(
        count(&minimal, "packages") < count(&base, "packages") / 2,
        "minimal has {} packages, base {}",
        count(&minimal, "packages"),
        count(&base, "packages")
    );
    let names: Vec<&str> = minimal["lock"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"bash") && !names.contains(&"perl-base"),
        "{names:?}"
    );
    ok(ws, &common::materialise("minimal", "chroot", "root"));
    if is_root() {
        let out = Command::new("chroot")
            .arg(ws.join("root"))
            .args(["/bin/bash", "-c", "ls /usr/bin/ls && echo ok"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "/usr/bin/ls\nok\n");
    }
}

#[test]
fn paths_trim_a_tree_to_a_program_and_what_it_links() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    fs::write(
        ws.join("groups/micro.kdl"),
        "group micro version=\"1.0\" {\n    flavors openvz\n    package bash\n    paths \"/usr/bin/bash\"\n}\n",
    )
    .unwrap();
    ok(ws, &["compile", "groups/micro.kdl"]);
    let lock: serde_json::Value =
        serde_json::from_str(&ok(ws, &["show", "micro", "--flavor", "openvz", "--json"])).unwrap();
    let paths: Vec<&str> = lock["lock"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for needed in [
        "/usr/bin/bash",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libtinfo.so.6",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/lib64",
        "/bin",
        "/etc/passwd",
        "/usr/lib/x86_64-linux-gnu/libnss_files.so.2",
    ] {
        assert!(paths.contains(&needed), "{needed} missing from {paths:?}");
    }
    for gone in ["/usr/bin/ls", "/usr/bin/dpkg", "/var/lib/dpkg/status"] {
        assert!(!paths.contains(&gone), "{gone} should be trimmed");
    }
    assert!(paths.len() < 150, "{} entries: {paths:?}", paths.len());

    ok(ws, &common::materialise("micro", "chroot", "root"));
    if is_root() {
        let out = Command::new("chroot")
            .arg(ws.join("root"))
            .args(["/bin/bash", "-c", "echo $((6 * 7))"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "42\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
