//! `overlay` and `hostfile` end to end: compile a group that uses both against a fake
//! sysroot, then materialise a chroot from the lock and the blob store.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use common::{FakePackage, appliance, fails, fake_sysroot, fake_workspace, ok, write_file};

/// The folder overlay holds a 0600 file, so it says `secret=#true`; the tarball's 0640
/// member needs no say-so: a tarball's members are the user's own, packed on purpose.
const GROUP: &str = r#"group web version="1.0" {
    flavors openvz
    package bash
    hostfile "/etc/ssl/certs/*.pem"
    overlay "../overlays/web" secret=#true
    overlay "../overlays/extra.tar.gz"
}
"#;

/// A GNU header with every numeric field set.
fn header(kind: tar::EntryType, mode: u32, owner: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(owner);
    h.set_gid(owner);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A gzipped tarball with a www-data-owned file in a directory of its own.
fn extra_tarball(path: &Path) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o750, 33, 0);
    builder.append_data(&mut dir, "srv/www/", &b""[..]).unwrap();
    let mut page = header(tar::EntryType::Regular, 0o640, 33, 6);
    builder
        .append_data(&mut page, "srv/www/index.html", &b"<html>"[..])
        .unwrap();
    fs::write(path, gzip(&builder.into_inner().unwrap())).unwrap();
}

struct World {
    _dir: tempfile::TempDir,
    ws: std::path::PathBuf,
    sysroot: std::path::PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let sysroot = dir.path().join("sysroot");
        fake_sysroot(
            &sysroot,
            &[FakePackage::new("bash", "5.2.15-2+b2").file("/bin/bash", "#!fake bash\n")],
        );
        write_file(&sysroot.join("etc/ssl/certs/ca.pem"), "CA\n", 0o644);
        write_file(&sysroot.join("etc/ssl/certs/other.crt"), "no\n", 0o644);
        symlink("ca.pem", sysroot.join("etc/ssl/certs/root.pem")).unwrap();
        write_file(&sysroot.join("etc/motd"), "the host's motd\n", 0o644);
        fake_workspace(&ws, &[("web", GROUP)]);
        let web = ws.join("overlays/web");
        write_file(&web.join("etc/motd"), "welcome\n", 0o644);
        write_file(&web.join("etc/app/secret"), "s3cret\n", 0o600);
        fs::set_permissions(web.join("etc/app"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("/etc/app/secret", web.join("etc/app/current")).unwrap();
        extra_tarball(&ws.join("overlays/extra.tar.gz"));
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
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn overlays_and_hostfiles_reach_the_chroot() {
    let w = World::new();
    ok(&w.ws, &w.args(&["compile", "groups/web.kdl"]));
    let files = ok(
        &w.ws,
        &w.args(&["show", "web", "--flavor", "openvz", "--files"]),
    );
    assert!(
        files.contains("file     0640 www-data:www-data          6 /srv/www/index.html"),
        "{files}"
    );
    assert!(
        files.contains("/etc/ssl/certs/root.pem -> ca.pem"),
        "{files}"
    );
    assert!(!files.contains("other.crt"), "{files}");

    // The lock does not need the overlays or the host's copies any more: the blob
    // store has their bytes.
    fs::remove_dir_all(w.ws.join("overlays")).unwrap();
    fs::write(w.sysroot.join("etc/ssl/certs/ca.pem"), "changed\n").unwrap();
    ok(
        &w.ws,
        &w.args(&common::materialise("web", "chroot", "tree")),
    );
    let tree = w.ws.join("tree");
    assert_eq!(
        fs::read_to_string(tree.join("etc/motd")).unwrap(),
        "welcome\n"
    );
    assert_eq!(
        fs::read_to_string(tree.join("etc/app/secret")).unwrap(),
        "s3cret\n"
    );
    assert_eq!(mode(&tree.join("etc/app/secret")), 0o600);
    assert_eq!(mode(&tree.join("etc/app")), 0o700);
    assert_eq!(
        fs::read_link(tree.join("etc/app/current")).unwrap(),
        Path::new("/etc/app/secret")
    );
    assert_eq!(
        fs::read_to_string(tree.join("etc/ssl/certs/ca.pem")).unwrap(),
        "CA\n"
    );
    assert_eq!(
        fs::read_link(tree.join("etc/ssl/certs/root.pem")).unwrap(),
        Path::new("ca.pem")
    );
    assert!(!tree.join("etc/ssl/certs/other.crt").exists());
    assert_eq!(
        fs::read_to_string(tree.join("srv/www/index.html")).unwrap(),
        "<html>"
    );
    assert_eq!(mode(&tree.join("srv/www/index.html")), 0o640);
    assert_eq!(mode(&tree.join("srv/www")), 0o750);
    assert_eq!(
        fs::read_to_string(tree.join("bin/bash")).unwrap(),
        "#!fake bash\n"
    );
}

#[test]
fn a_hostile_overlay_fails_the_compile_and_stores_nothing() {
    let w = World::new();
    let mut builder = tar::Builder::new(Vec::new());
    let mut link = header(tar::EntryType::Symlink, 0o777, 0, 0);
    builder.append_link(&mut link, "etc", "/etc").unwrap();
    let mut file = header(tar::EntryType::Regular, 0o644, 0, 2);
    builder
        .append_data(&mut file, "etc/passwd", &b"x\n"[..])
        .unwrap();
    fs::write(
        w.ws.join("overlays/extra.tar.gz"),
        gzip(&builder.into_inner().unwrap()),
    )
    .unwrap();
    let err = fails(&w.ws, &w.args(&["compile", "groups/web.kdl"]));
    assert!(
        err.contains("extra.tar.gz: entry `etc/passwd` would be written through /etc, a symlink"),
        "{err}"
    );
    assert!(!w.ws.join("store/blobs").exists());

    // A folder overlay may not write through the packages' merged-/usr links either.
    extra_tarball(&w.ws.join("overlays/extra.tar.gz"));
    write_file(&w.ws.join("overlays/web/bin/tool"), "x\n", 0o755);
    let err = fails(&w.ws, &w.args(&["compile", "groups/web.kdl"]));
    assert!(
        err.contains(
            "entry `/bin` is a directory, which would replace the symlink /bin -> usr/bin"
        ),
        "{err}"
    );
    fs::remove_dir_all(w.ws.join("overlays/web/bin")).unwrap();

    let missing = GROUP.replace("*.pem", "*.key");
    fs::write(w.ws.join("groups/web.kdl"), missing).unwrap();
    let out = appliance(&w.ws, &w.args(&["compile", "groups/web.kdl"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hostfile `/etc/ssl/certs/*.key` matches nothing"),
        "{err}"
    );
}

#[test]
fn a_hostfile_path_that_is_not_normalised_is_refused_at_the_statement() {
    let w = World::new();
    let unnormalised = GROUP.replace("/etc/ssl/certs/*.pem", "/etc/ssl/../ssl/certs/*.pem");
    fs::write(w.ws.join("groups/web.kdl"), unnormalised).unwrap();
    let err = fails(&w.ws, &w.args(&["compile", "groups/web.kdl"]));
    assert!(
        err.contains(
            "groups/web.kdl:4:14: `hostfile` path `/etc/ssl/../ssl/certs/*.pem` is not normalised"
        ),
        "{err}"
    );
    assert!(err.contains("write \"/etc/ssl/certs/*.pem\""), "{err}");
    assert!(!w.ws.join("store").exists());
}

#[test]
fn a_group_with_apt_gets_the_hosts_apt_sources_under_its_own_statements() {
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let packages = [
        FakePackage::new("apt", "2.6.1").file("/etc/apt/apt.conf.d/01autoremove", "APT {};\n"),
        FakePackage::new("debian-archive-keyring", "2023.3").file(keyring, "packaged key"),
    ];
    let group = "group managed version=\"1.0\" {\n    flavors openvz\n    package apt\n    \
                 package debian-archive-keyring\n    \
                 file \"/etc/apt/sources.list\" mode=0o644 content=\"deb http://mine b c\\n\"\n    \
                 exclude \"/etc/apt/sources.list.d/private.list\"\n}\n";
    let plain = "group plain version=\"1.0\" {\n    flavors openvz\n    package debian-archive-keyring\n}\n";
    let world = common::World::new(&packages, &[("managed", group), ("plain", plain)]);
    let sysroot = &world.sysroot;
    let debian = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n\
                  Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
    let third = "deb [signed-by=/etc/apt/keyrings/third.asc] http://third b c\n";
    for (path, text, mode) in [
        ("etc/apt/sources.list.d/debian.sources", debian, 0o644),
        ("etc/apt/sources.list.d/third.list", third, 0o644),
        ("etc/apt/keyrings/third.asc", "third key", 0o644),
        (
            "etc/apt/sources.list.d/private.list",
            "deb https://u:p@x b c\n",
            0o600,
        ),
        (
            "etc/apt/sources.list.d/old.list.save",
            "deb http://old b c\n",
            0o644,
        ),
        ("etc/apt/sources.list", "deb http://host b c\n", 0o644),
    ] {
        write_file(&sysroot.join(path), text, mode);
    }
    world.ok(&["compile", "groups/managed.kdl", "groups/plain.kdl"]);

    let files = |group: &str| -> std::collections::BTreeMap<String, serde_json::Value> {
        let shown = world.ok(&["show", group, "--flavor", "openvz", "--json", "--files"]);
        let lock: serde_json::Value = serde_json::from_str(&shown).unwrap();
        (lock["lock"]["files"].as_array().unwrap().iter())
            .map(|f| (f["path"].as_str().unwrap().to_string(), f.clone()))
            .collect()
    };
    let managed = files("managed");
    let digest = |text: &str| blake3::hash(text.as_bytes()).to_hex().to_string();
    for (path, text) in [
        ("/etc/apt/sources.list.d/debian.sources", debian),
        ("/etc/apt/sources.list.d/third.list", third),
        ("/etc/apt/keyrings/third.asc", "third key"),
        // The group's own `file` wins over the host's.
        ("/etc/apt/sources.list", "deb http://mine b c\n"),
    ] {
        let entry = &managed[path];
        assert_eq!(
            entry["digest"].as_str(),
            Some(digest(text).as_str()),
            "{path}"
        );
        assert!(
            entry["package"].is_null() && entry["user"] == "root",
            "{entry}"
        );
    }
    // The packaged keyring stays the package's; what apt does not read, and what the
    // group excludes (a source others may not read, refused otherwise), stay out.
    assert_eq!(managed[keyring]["package"], "debian-archive-keyring");
    assert!(!managed.contains_key("/etc/apt/sources.list.d/old.list.save"));
    assert!(!managed.contains_key("/etc/apt/sources.list.d/private.list"));
    // A tree without apt gets none.
    assert!(
        !files("plain")
            .keys()
            .any(|p| p.starts_with("/etc/apt/sources"))
    );

    // Without the exclude, the private source is refused by name, with the fix.
    let group = group.replace("exclude \"/etc/apt/sources.list.d/private.list\"", "");
    fs::write(world.ws.join("groups/managed.kdl"), group).unwrap();
    let err = world.fails(&["compile", "groups/managed.kdl"]);
    assert!(
        err.contains("/etc/apt/sources.list.d/private.list") && err.contains("secret=#true"),
        "{err}"
    );
}
