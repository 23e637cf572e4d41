//! `appliance gc` and `appliance rm` end to end through the binary, over a store whose
//! packages all come from archives in `store/pool/` (the sysroot's dpkg database is
//! empty), so a lock's bytes are the pool's and the blob store's alone: after a
//! collection, every kept revision still materialises with `--sysroot` an empty folder.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{World, build_deb, snapshot};

const OPENVZ: &str = "[!kernel,openvz is: x86_64]";

/// Revision 1: bash and mawk.
const FIRST: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
    package mawk
    file "/etc/hostname" mode=0o644 content="one\n"
}
"#;

/// Revision 2: coreutils instead of mawk, another hostname.
const SECOND: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
    package coreutils
    file "/etc/hostname" mode=0o644 content="two\n"
}
"#;

/// Revision 3: the pool's newer bash, another hostname.
const THIRD: &str = r#"group base version="1.0" {
    flavors openvz
    prefer newest
    package bash
    package coreutils
    file "/etc/hostname" mode=0o644 content="three\n"
}
"#;

/// A program's bytes: its name, padded past a file-system block, since materialise
/// keeps unpacked only the files of packages whose files average a block or more.
fn program(name: &str) -> String {
    format!("{name}\n{}\n", "#".repeat(4096))
}

/// Builds `name_version_amd64.deb` into the store's pool; returns its path.
fn pooled(w: &World, name: &str, version: &str, files: &[(&str, &str)]) -> PathBuf {
    let build = w.dir.path().join("debs");
    fs::create_dir_all(&build).unwrap();
    build_deb(&build, name, version, files, &[], &[]);
    let file = format!("{name}_{version}_amd64.deb");
    let pool = w.ws.join("store/pool");
    fs::create_dir_all(&pool).unwrap();
    fs::copy(build.join(&file), pool.join(&file)).unwrap();
    pool.join(file)
}

fn compile(w: &World, group: &str) {
    fs::write(w.ws.join("groups/base.kdl"), group).unwrap();
    w.ok(&["compile", "groups/base.kdl", "--offline"]);
}

/// The store's pool archives, by name.
struct Archives {
    old_bash: PathBuf,
    mawk: PathBuf,
}

/// A world whose store holds revisions 1, 2 and 3 of `base` for openvz, every package
/// from `store/pool/`.
fn three_revisions() -> (World, Archives) {
    let w = World::new(&[], &[("base", FIRST)]);
    let old_bash = pooled(
        &w,
        "bash",
        "5.2-1",
        &[("/usr/bin/bash", &program("old bash"))],
    );
    let mawk = pooled(&w, "mawk", "1.3-1", &[("/usr/bin/mawk", &program("mawk"))]);
    pooled(&w, "coreutils", "9.1-1", &[("/usr/bin/ls", &program("ls"))]);
    compile(&w, FIRST);
    compile(&w, SECOND);
    pooled(
        &w,
        "bash",
        "5.2-2",
        &[("/usr/bin/bash", &program("new bash"))],
    );
    compile(&w, THIRD);
    (w, Archives { old_bash, mawk })
}

/// The revisions `list` shows, as `VERSION-REVISION`.
fn revisions(w: &World) -> Vec<String> {
    (w.ok(&["list"]).lines())
        .map(|line| {
            line.split(OPENVZ)
                .next()
                .unwrap()
                .trim_start_matches("base=")
                .to_string()
        })
        .collect()
}

/// Materialises `version` as a tarball with `--sysroot` an empty folder; returns its
/// BLAKE3.
fn tarball(w: &World, version: &str) -> String {
    let empty = w.dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let out = format!("{version}.tar");
    let mut args = vec!["--sysroot", empty.to_str().unwrap()];
    args.extend(common::materialise_revision("base", version, &out));
    let mut command = common::command(&w.ws, &args);
    command.env("TMPDIR", &w.tmp);
    common::succeeds(command);
    let digest = common::digest(&w.ws.join(&out));
    fs::remove_file(w.ws.join(&out)).unwrap();
    fs::remove_file(w.ws.join(format!(".{out}.appliance-stamp"))).unwrap();
    digest
}

/// Builds a chroot of `version` where `appliance boot` caches images, as `name`.
fn cached_image(w: &World, version: &str, name: &str) -> PathBuf {
    let out = format!("store/images/{name}");
    let mut args = common::materialise_revision("base", version, &out);
    args.extend(["--format", "chroot"]);
    w.ok(&args);
    w.ws.join(out)
}

fn blob(w: &World, content: &str) -> PathBuf {
    stored_at(w, "blobs", &blake3::hash(content.as_bytes()).to_hex())
}

/// Where the store's content-addressed `folder` (`blobs`, `unpacked`) holds `digest`.
fn stored_at(w: &World, folder: &str, digest: &str) -> PathBuf {
    w.ws.join("store")
        .join(folder)
        .join(&digest[..2])
        .join(digest)
}

/// Every file of the store's content-addressed `folder`, with its length.
fn stored(w: &World, folder: &str) -> BTreeMap<String, u64> {
    let (names, others) = common::blob_store(&w.ws.join("store").join(folder));
    assert!(others.is_empty(), "{others:?}");
    (names.into_iter())
        .map(|name| {
            let len = len(&stored_at(w, folder, &name));
            (name, len)
        })
        .collect()
}

/// A size as `gc` prints it.
fn size(bytes: u64) -> String {
    appliance::history::size_change(i128::from(bytes)).replacen('+', "", 1)
}

fn len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn tree_len(path: &Path) -> u64 {
    let meta = fs::symlink_metadata(path).unwrap();
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    fs::read_dir(path)
        .unwrap()
        .map(|e| tree_len(&e.unwrap().path()))
        .sum()
}

#[test]
fn gc_keeps_the_newest_revisions_and_what_they_use() {
    let (w, archives) = three_revisions();
    assert_eq!(revisions(&w), ["1.0-1", "1.0-2", "1.0-3"]);
    let before = tarball(&w, "1.0-3");
    let old_image = cached_image(&w, "1.0-1", "base-old");
    let new_image = cached_image(&w, "1.0-3", "base-openvz");
    let blobs = [blob(&w, "one\n"), blob(&w, "two\n")];
    for path in blobs.iter().chain([&archives.old_bash, &archives.mawk]) {
        assert!(path.exists(), "{}", path.display());
    }
    let freed_archives = len(&archives.old_bash) + len(&archives.mawk);
    let freed_image = tree_len(&old_image);
    let blobs_before = stored(&w, "blobs");
    // The files materialise kept unpacked from the archives: revision 1's bash and mawk
    // (the image), revision 3's bash (the tarball), coreutils' ls.
    let unpacked_before = stored(&w, "unpacked");
    let kept = |name: &str| {
        let content = program(name);
        stored_at(&w, "unpacked", &blake3::hash(content.as_bytes()).to_hex())
    };
    for name in ["old bash", "mawk", "new bash", "ls"] {
        assert!(kept(name).is_file(), "{name} was not kept unpacked");
    }
    // What compile read of each archive, kept for the next compile of the same bytes.
    let read_of = |archive: &Path| -> bool {
        let repo = rusqlite::Connection::open(w.ws.join("store/repo.sqlite")).unwrap();
        let path = archive.as_os_str().as_encoded_bytes();
        let rows: i64 = (repo.query_row(
            "SELECT count(*) FROM archive_reads WHERE path = ?1",
            [path],
            |row| row.get(0),
        ))
        .unwrap();
        rows == 1
    };
    assert!(read_of(&archives.old_bash) && read_of(&archives.mawk));

    let printed = w.ok(&["gc", "--keep", "1"]);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 3, "{printed}");
    assert!(
        lines[0].starts_with(&format!("removed base=1.0-1{OPENVZ}  ")),
        "{printed}"
    );
    assert!(
        lines[1].starts_with(&format!("removed base=1.0-2{OPENVZ}  ")),
        "{printed}"
    );
    // Their hostnames, and what configuring made differently (dpkg's status).
    let after = stored(&w, "blobs");
    let gone: Vec<_> = (blobs_before.iter())
        .filter(|(name, _)| !after.contains_key(*name))
        .collect();
    assert!(gone.len() > 2, "{gone:?}");
    let freed_blobs: u64 = gone.iter().map(|(_, len)| **len).sum();
    let unpacked_after = stored(&w, "unpacked");
    let unpacked_gone: Vec<_> = (unpacked_before.iter())
        .filter(|(name, _)| !unpacked_after.contains_key(*name))
        .collect();
    let freed_unpacked: u64 = unpacked_gone.iter().map(|(_, len)| **len).sum();
    assert!(!kept("old bash").exists() && !kept("mawk").exists());
    assert!(kept("new bash").is_file() && kept("ls").is_file());
    assert_eq!(
        lines[2],
        format!(
            "removed 2 revisions, {} blobs ({}), 2 archives ({}), {} unpacked files ({}), \
             1 image ({}); {} in all",
            gone.len(),
            size(freed_blobs),
            size(freed_archives),
            unpacked_gone.len(),
            size(freed_unpacked),
            size(freed_image),
            size(freed_blobs + freed_archives + freed_unpacked + freed_image)
        ),
        "{printed}"
    );
    assert_eq!(revisions(&w), ["1.0-3"]);
    for path in blobs
        .iter()
        .chain([&archives.old_bash, &archives.mawk, &old_image])
    {
        assert!(!path.exists(), "{} stayed", path.display());
    }
    let old_stamp = w.ws.join("store/images/.base-old.appliance-stamp");
    assert!(!old_stamp.exists());
    // The reads of the archives removed went with them.
    assert!(!read_of(&archives.old_bash) && !read_of(&archives.mawk));
    assert!(new_image.is_dir() && blob(&w, "three\n").exists());
    // The kept revision's bytes are all still in the store.
    assert_eq!(tarball(&w, "1.0-3"), before);
    common::verified_revisions(&w.ws.join("store/repo.sqlite"));

    // Nothing more to collect; the newest always stays.
    let again = w.ok(&["gc", "--keep", "1"]);
    assert_eq!(
        again,
        "removed 0 revisions, 0 blobs (0 B), 0 archives (0 B), 0 unpacked files (0 B), \
         0 images (0 B); 0 B in all\n"
    );
    let refused = w.command(&["gc", "--keep", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("'0' for '--keep <N>'"),
        "{err}"
    );
    assert_eq!(revisions(&w), ["1.0-3"]);
}

/// Materialise keeps what it unpacks from archives in `store/unpacked/` and reads it
/// there next time, checked: with the pool gone the same tarball comes from the kept
/// copies alone; a kept copy that is not the locked content is never taken (drift when
/// nothing else has the bytes), and the next run that unpacks the archive replaces it.
#[test]
fn materialise_keeps_what_it_unpacks_and_checks_it_when_read() {
    let (w, _) = three_revisions();
    let newest = tarball(&w, "1.0-3");
    let new_bash = program("new bash");
    let kept = stored_at(&w, "unpacked", &blake3::hash(new_bash.as_bytes()).to_hex());
    assert_eq!(fs::read_to_string(&kept).unwrap(), new_bash);
    assert!(stored(&w, "unpacked").len() >= 2, "bash and ls");

    let pool = w.ws.join("store/pool");
    let away = w.ws.join("pool-away");
    fs::rename(&pool, &away).unwrap();
    assert_eq!(tarball(&w, "1.0-3"), newest, "the kept copies alone");

    // Same length, other bytes: only the digest tells.
    fs::write(&kept, program("evil bas")).unwrap();
    let empty = w.dir.path().join("empty");
    let mut args = vec!["--sysroot", empty.to_str().unwrap()];
    args.extend(common::materialise_revision("base", "1.0-3", "bad.tar"));
    let err = common::refused(common::command(&w.ws, &args));
    assert!(
        err.contains("/usr/bin/bash (package bash)") && err.contains("no archive of bash"),
        "{err}"
    );
    assert!(!w.ws.join("bad.tar").exists());

    fs::rename(&away, &pool).unwrap();
    assert_eq!(tarball(&w, "1.0-3"), newest, "the archive, once more");
    assert_eq!(
        fs::read_to_string(&kept).unwrap(),
        new_bash,
        "the bad copy was replaced"
    );
}

#[test]
fn gc_dry_run_changes_nothing_and_json_says_what_went() {
    let (w, _) = three_revisions();
    // The default keeps two.
    let store = w.ws.join("store");
    let before = snapshot(&store);
    let dry = w.ok(&["gc", "--dry-run"]);
    assert_eq!(snapshot(&store), before, "a dry run changed the store");
    assert!(
        dry.starts_with(&format!("would remove base=1.0-1{OPENVZ}  ")),
        "{dry}"
    );

    let json: serde_json::Value = serde_json::from_str(&w.ok(&["gc", "--json"])).unwrap();
    assert_eq!(json["dry_run"], false, "{json}");
    let removed = json["revisions"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{json}");
    assert_eq!(
        removed[0]["address"],
        format!("base=1.0-1{OPENVZ}"),
        "{json}"
    );
    assert_eq!(removed[0]["lock_id"].as_str().unwrap().len(), 64, "{json}");
    assert_eq!(json["archives"]["count"], 1, "{json}");
    // Nothing was materialised, so nothing was kept unpacked.
    for key in ["images", "unpacked"] {
        assert_eq!(
            json[key],
            serde_json::json!({"count": 0, "bytes": 0}),
            "{json}"
        );
    }
    let [blobs, archives, _] = ["blobs", "archives", "images"].map(|k| {
        (
            json[k]["count"].as_u64().unwrap(),
            json[k]["bytes"].as_u64().unwrap(),
        )
    });
    assert!(blobs.0 >= 1, "{json}");
    assert_eq!(
        json["bytes"].as_u64().unwrap(),
        blobs.1 + archives.1,
        "{json}"
    );
    // The dry run said exactly what the run did.
    let said = format!(
        "would remove 1 revision, {} blobs ({}), 1 archive ({}), 0 unpacked files (0 B), \
         0 images (0 B); {} in all\n",
        blobs.0,
        size(blobs.1),
        size(archives.1),
        size(blobs.1 + archives.1)
    );
    assert!(dry.ends_with(&said), "{dry}\n{said}");
    assert_eq!(revisions(&w), ["1.0-2", "1.0-3"]);
    tarball(&w, "1.0-2");
}

#[test]
fn rm_removes_exactly_the_revision_named() {
    let (w, archives) = three_revisions();
    let store = w.ws.join("store");
    let before = snapshot(&store);
    for (reference, says) in [
        ("base", "could mean: base=1.0-1"),
        (
            "base=1.0",
            "it names no exact revision (GROUP=VERSION-REVISION)",
        ),
        ("base=1.0-9", "revisions: 1, 2, 3"),
        ("base=2.0-1", "versions: 1.0"),
        ("web=1.0-1", "holds no group `web`"),
        ("base=1.0-1[kvm]", "never compiled for flavor"),
        ("base=", "is no lock reference"),
    ] {
        let err = w.fails(&["rm", reference]);
        assert!(err.contains(says), "{reference}: {err}");
        assert!(
            err.contains(&format!("`{reference}`")),
            "{reference}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{reference}: {err}");
        assert_eq!(snapshot(&store), before, "{reference} changed the store");
    }
    let err = w.fails(&["rm", "base=1.0"]);
    assert!(
        err.contains(&format!(
            "could mean: base=1.0-1{OPENVZ}, base=1.0-2{OPENVZ}, base=1.0-3{OPENVZ}"
        )),
        "{err}"
    );

    // Revision 1 alone used mawk and the first hostname.
    let printed = w.ok(&["rm", "base=1.0-1", "--flavor", "openvz"]);
    assert!(
        printed.starts_with(&format!("removed base=1.0-1{OPENVZ}  ")),
        "{printed}"
    );
    assert!(
        printed.contains("removed 1 revision, ")
            && printed.contains(" blobs (")
            && printed.contains(", 1 archive ("),
        "{printed}"
    );
    assert_eq!(revisions(&w), ["1.0-2", "1.0-3"]);
    assert!(!archives.mawk.exists() && !blob(&w, "one\n").exists());
    assert!(archives.old_bash.exists(), "revision 2 still uses it");
    let json: serde_json::Value =
        serde_json::from_str(&w.ok(&["rm", &format!("base=1.0-2{OPENVZ}"), "--json"])).unwrap();
    assert_eq!(
        json["revisions"][0]["address"],
        format!("base=1.0-2{OPENVZ}"),
        "{json}"
    );
    assert_eq!(json["archives"]["count"], 1, "{json}");
    assert_eq!(revisions(&w), ["1.0-3"]);
    tarball(&w, "1.0-3");
    // The last revision goes with its group.
    w.ok(&["rm", "base=1.0-3"]);
    assert_eq!(w.ok(&["list"]), "");
    let err = w.fails(&["rm", "base=1.0-3"]);
    assert!(err.contains("holds no group `base`; it is empty"), "{err}");
    common::verified_revisions(&w.ws.join("store/repo.sqlite"));
}

#[test]
fn gc_and_rm_want_a_repository() {
    let w = World::new(&[], &[("base", FIRST)]);
    for args in [&["gc"][..], &["rm", "base=1.0-1"]] {
        let err = w.fails(args);
        assert!(err.contains("run `appliance compile` first"), "{err}");
        assert!(!w.ws.join("store/repo.sqlite").exists());
    }
}
