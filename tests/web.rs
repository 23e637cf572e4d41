//! End to end on the real machine: `groups/web.kdl` (nginx, ssh, certificates) compiled
//! with packages the host does not have, fetched from apt's lists, and run in a chroot.
//! Needs apt lists and Debian's archive (CI runs `apt-get update` first) and, for the
//! chroot, root.

mod common;

use std::process::Command;

use common::{example_workspace, is_root, ok};

#[test]
fn web_appliance_serves_config_users_dpkg_and_alternatives() {
    if !is_root() {
        eprintln!("skipped: the web appliance test runs nginx in a chroot, which needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    let compiled = ok(ws, &["compile", "groups/web.kdl", "--flavor", "openvz"]);
    assert!(
        compiled.contains("web=1.0-1[!kernel,openvz is: x86_64] stored"),
        "{compiled}"
    );
    let again = ok(ws, &["compile", "groups/web.kdl", "--flavor", "openvz"]);
    assert!(
        again.contains("unchanged"),
        "a recompile must reuse the fetched archives: {again}"
    );
    let lock: serde_json::Value =
        serde_json::from_str(&ok(ws, &["show", "web", "--flavor", "openvz", "--json"])).unwrap();
    let packages = lock["lock"]["packages"].as_array().unwrap();
    let nginx = packages
        .iter()
        .find(|p| p["name"] == "nginx-light")
        .unwrap();
    if Command::new("dpkg")
        .args(["-s", "nginx-light"])
        .output()
        .unwrap()
        .status
        .success()
    {
        eprintln!("nginx-light is installed on this host: it comes from there");
    } else {
        assert_eq!(nginx["source"], "aptlist", "{nginx}");
    }

    ok(
        ws,
        &[
            "materialise",
            "web",
            "--flavor",
            "openvz",
            "--format",
            "chroot",
            "-o",
            "web",
        ],
    );
    let root = ws.join("web");
    let inside = |script: &str| {
        let out = Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(inside("nginx -t").contains("test is successful"));
    assert!(inside("getent passwd www-data").starts_with("www-data:x:33:33:"));
    // openssh-server's postinst makes sshd with adduser; the lock carries the account.
    let sshd = inside("getent passwd sshd");
    assert!(
        sshd.starts_with("sshd:x:") && sshd.contains(":/run/sshd:/usr/sbin/nologin"),
        "{sshd}"
    );
    let installed = inside("dpkg -l | grep '^ii'");
    assert_eq!(installed.lines().count(), packages.len(), "{installed}");
    for line in inside("dpkg -V").lines() {
        let excluded = [
            "/usr/share/doc/",
            "/usr/share/man/",
            "/usr/share/info/",
            "/usr/share/locale/",
        ]
        .iter()
        .any(|p| line.contains(p));
        assert!(line.starts_with("missing") && excluded, "dpkg -V: {line}");
    }
    assert!(inside("ls -l /usr/bin/awk").contains("/usr/bin/awk -> /etc/alternatives/awk"));
    assert_eq!(inside("readlink -f /usr/bin/awk"), "/usr/bin/mawk\n");
    // The locked ld.so.cache is the one libc-bin's trigger would write inside.
    let locked = std::fs::read(root.join("etc/ld.so.cache")).unwrap();
    inside("ldconfig -C /tmp/ld.so.cache");
    assert!(locked == std::fs::read(root.join("tmp/ld.so.cache")).unwrap());
    assert!(inside("ldconfig -p").contains("libssl.so.3 (libc6,x86-64)"));
}
