//! End to end on the real machine: `groups/web.kdl` (nginx, ssh, certificates, systemd)
//! compiled with packages the host does not have, fetched from apt's lists, run in a
//! chroot, and made into an OpenVZ template that is checked entry by entry. Needs apt
//! lists and Debian's archive (CI runs `apt-get update` first) and, for the chroot, root.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::{
    Booted, differing_paths, digest, example_workspace, fake_workspace, is_root, lock_id, ok,
};

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
    // A second compile in a fresh store (its pool copied: the same archives, no
    // download) configures again and must lock the same tree.
    let fresh = tempfile::tempdir().unwrap();
    example_workspace(fresh.path());
    std::fs::create_dir(fresh.path().join("store")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(ws.join("store/pool"))
        .arg(fresh.path().join("store/pool"))
        .status()
        .unwrap();
    assert!(copied.success());
    let again = ok(
        fresh.path(),
        &["compile", "groups/web.kdl", "--flavor", "openvz"],
    );
    assert_eq!(
        lock_id(&compiled),
        lock_id(&again),
        "two compiles in fresh stores differ at {:?}",
        differing_paths((ws, "1.0-1"), (fresh.path(), "1.0-1"), "web", "openvz")
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

    openvz_template_fits_a_container(ws);
}

#[test]
fn a_second_service_gets_its_account_and_runs() {
    if !is_root() {
        eprintln!("skipped: booting a container needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // redis-server's postinst makes its user through a variable (`USER="redis"`).
    let group = "group cache version=\"1.0\" {\n    flavors openvz\n    package systemd-sysv\n    package redis-server\n    exclude \"/usr/share/doc/*\" \"/usr/share/man/*\"\n}\n";
    fake_workspace(ws, &[("cache", group)]);
    ok(ws, &["compile", "groups/cache.kdl"]);
    ok(
        ws,
        &[
            "materialise",
            "cache",
            "--flavor",
            "openvz",
            "--format",
            "chroot",
            "-o",
            "root",
        ],
    );
    let root = ws.join("root");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("redis:")), "{passwd}");
    let booted = Booted::start(&root);
    booted.is_running();
    assert_eq!(
        booted.inside(&["systemctl", "is-active", "redis-server"]),
        "active\n"
    );
    let pong = booted.net(&[
        "bash",
        "-c",
        "exec 3<>/dev/tcp/127.0.0.1/6379; printf 'PING\\r\\n' >&3; head -c 7 <&3",
    ]);
    assert_eq!(pong, "+PONG\r\n");
}

/// One member of a template: its header fields and, for a regular file, its bytes.
struct Member {
    kind: tar::EntryType,
    uname: Vec<u8>,
    gname: Vec<u8>,
    link: Option<String>,
    content: Vec<u8>,
}

fn members(template: &Path) -> BTreeMap<String, Member> {
    let file = std::fs::File::open(template).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let path = name
            .trim_start_matches('.')
            .trim_end_matches('/')
            .to_string();
        members.insert(
            if path.is_empty() {
                "/".to_string()
            } else {
                path
            },
            Member {
                kind: header.entry_type(),
                uname: header.username_bytes().unwrap_or_default().to_vec(),
                gname: header.groupname_bytes().unwrap_or_default().to_vec(),
                link,
                content,
            },
        );
    }
    members
}

/// The openvz flavor's default format: a template vzctl takes, checked as a container
/// needs it, unpacked as vzctl does, where nginx's configuration still tests good.
fn openvz_template_fits_a_container(ws: &Path) {
    let cache = ws.join("template-cache");
    std::fs::create_dir(&cache).unwrap();
    let made = ok(
        ws,
        &[
            "materialise",
            "web",
            "--flavor",
            "openvz",
            "-o",
            "template-cache",
        ],
    );
    let template = cache.join("debian-12-x86_64-web.tar.gz");
    assert!(template.is_file(), "{made}");

    let members = members(&template);
    for (path, m) in &members {
        assert!(
            m.uname.is_empty() && m.gname.is_empty(),
            "{path}: owners must be numeric only"
        );
        assert!(
            !path.starts_with("/boot")
                && !path.starts_with("/usr/lib/modules/")
                && path != "/usr/lib/modules"
                && path != "/vmlinuz",
            "{path}: a container has no kernel"
        );
        assert!(
            !path.starts_with("/etc/ssh/ssh_host_"),
            "{path}: a shared host key"
        );
        if path.starts_with("/var/log/") && m.kind == tar::EntryType::Regular {
            assert!(m.content.is_empty(), "{path}: logs start empty");
        }
    }
    let text = |path: &str| {
        let m = members
            .get(path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        String::from_utf8(m.content.clone()).unwrap()
    };
    for line in text("/etc/fstab").lines().filter(|l| !l.starts_with('#')) {
        let source = line.split_whitespace().next().unwrap();
        assert!(
            !source.starts_with("/dev/") && !source.contains('='),
            "fstab mounts a block device: {line}"
        );
    }
    assert_eq!(text("/etc/machine-id"), "");
    assert!(text("/etc/hosts").contains("127.0.0.1\tlocalhost"));
    assert!(members.contains_key("/etc/resolv.conf"));
    assert!(text("/etc/systemd/system/appliance-ssh-hostkeys.service").contains("ssh-keygen -A"));
    let getty = &members["/etc/systemd/system/getty.target.wants/console-getty.service"];
    assert_eq!(
        getty.link.as_deref(),
        Some("/lib/systemd/system/console-getty.service")
    );
    assert!(
        members.contains_key("/usr/sbin/init"),
        "vzctl starts /sbin/init"
    );

    // vzctl unpacks templates with numeric owners and modes as they are.
    let root = ws.join("container");
    std::fs::create_dir(&root).unwrap();
    let untar = Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(&template)
        .arg("-C")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        untar.status.success(),
        "{}",
        String::from_utf8_lossy(&untar.stderr)
    );
    let nginx = Command::new("chroot")
        .arg(&root)
        .args(["nginx", "-t"])
        .output()
        .unwrap();
    assert!(
        nginx.status.success(),
        "{}",
        String::from_utf8_lossy(&nginx.stderr)
    );
    let first_key = {
        let booted = Booted::start(&root);
        booted.is_running();
        assert!(
            booted
                .net(&["curl", "-s", "http://127.0.0.1/"])
                .contains("Welcome to nginx!"),
            "nginx does not answer"
        );
        let banner = booted.net(&["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/22; head -1 <&3"]);
        assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
        booted.inside(&["sshd", "-t"]);
        let id = booted.inside(&["su", "-s", "/bin/sh", "nobody", "-c", "id"]);
        assert!(id.starts_with("uid=65534(nobody)"), "{id}");
        booted.inside(&[
            "openssl",
            "verify",
            "-CAfile",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/ssl/certs/ISRG_Root_X1.pem",
        ]);
        std::fs::read(root.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap()
    };
    // A second container of the same template makes keys of its own on its first boot.
    let second = ws.join("container-2");
    std::fs::create_dir(&second).unwrap();
    let untar = Command::new("tar")
        .args(["--numeric-owner", "-xpzf"])
        .arg(&template)
        .arg("-C")
        .arg(&second)
        .status()
        .unwrap();
    assert!(untar.success());
    Booted::start(&second).is_running();
    let second_key = std::fs::read(second.join("etc/ssh/ssh_host_ed25519_key.pub")).unwrap();
    assert_ne!(first_key, second_key, "two containers share a host key");

    ok(
        ws,
        &[
            "materialise",
            "web",
            "--flavor",
            "openvz",
            "-o",
            "again.tar.gz",
        ],
    );
    assert_eq!(
        digest(&template),
        digest(&ws.join("again.tar.gz")),
        "byte-identical"
    );
}
