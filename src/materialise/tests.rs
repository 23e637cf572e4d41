//! End-to-end tests of [`materialise`]: a fake sysroot in a tempdir and a lock built in
//! code whose digests the tests compute.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::plan::tests::{entry, file, link, lock_of};
use super::*;
use crate::lock::{FileEntry, FileKind};

const MTIME: u64 = 1_234_567;
/// `cap_net_raw=ep`, as `setcap` stores it.
const PING_CAPS: &str = "0100000200200000000000000000000000000000";
const LONG_DIR: &str = "/usr/share/a-directory-name-long-enough-that-with-its-file-the-path-exceeds-the-ustar-name-field";

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn owned(mut e: FileEntry, uid: u32, user: &str) -> FileEntry {
    e.uid = uid;
    e.gid = uid;
    e.user = user.to_string();
    e.group = user.to_string();
    e
}

fn with_mode(mut e: FileEntry, mode: u32) -> FileEntry {
    e.mode = mode;
    e
}

/// Content of every regular file of the test lock, by path.
fn contents() -> Vec<(String, Vec<u8>)> {
    vec![
        ("/etc/hostname".into(), b"web\n".to_vec()),
        ("/etc/empty".into(), Vec::new()),
        ("/usr/bin/tool".into(), b"#!/bin/sh\necho tool\n".to_vec()),
        ("/usr/bin/ping".into(), b"\x7fELF ping".to_vec()),
        ("/usr/share/ro/file".into(), b"read only".to_vec()),
        (format!("{LONG_DIR}/file"), b"long".to_vec()),
        ("/home/user/.profile".into(), b"PATH=/bin\n".to_vec()),
    ]
}

/// A lock exercising every kind: a setuid file, a hardlink that sorts before its target,
/// a relative symlink, a capability, a read-only directory, a long path, a fifo, a device
/// and a non-root owner.
fn test_lock() -> Lock {
    let mut files = vec![
        entry("/", FileKind::Dir),
        entry("/etc", FileKind::Dir),
        entry("/usr", FileKind::Dir),
        entry("/usr/bin", FileKind::Dir),
        entry("/usr/share", FileKind::Dir),
        with_mode(entry("/usr/share/ro", FileKind::Dir), 0o555),
        entry(LONG_DIR, FileKind::Dir),
        entry("/home", FileKind::Dir),
        with_mode(
            owned(entry("/home/user", FileKind::Dir), 1000, "user"),
            0o700,
        ),
        entry("/var", FileKind::Dir),
        entry("/dev", FileKind::Dir),
        link("/usr/bin/a-alias", FileKind::Hardlink, "/usr/bin/tool"),
        link("/usr/bin/sh", FileKind::Symlink, "tool"),
        entry("/var/fifo", FileKind::Fifo),
        FileEntry {
            device: Some((1, 3)),
            mode: 0o666,
            ..entry("/dev/null", FileKind::Char)
        },
    ];
    for (path, content) in contents() {
        let mut f = file(&path, &content);
        match path.as_str() {
            "/usr/bin/tool" => f.mode = 0o4755,
            "/usr/bin/ping" => {
                f.mode = 0o755;
                f.caps = Some(PING_CAPS.to_string());
            }
            "/home/user/.profile" => f = owned(f, 1000, "user"),
            _ => {}
        }
        files.push(f);
    }
    lock_of(files)
}

/// Writes the sysroot holding every file of [`test_lock`].
fn write_sysroot(sysroot: &Path) {
    for (path, content) in contents() {
        let host = sysroot.join(&path[1..]);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(host, content).unwrap();
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    sources: Sources,
    lock: Lock,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sources = Sources {
            sysroot: dir.path().join("sysroot"),
            pool: Vec::new(),
            blobs: None,
            unpacked: None,
        };
        write_sysroot(&sources.sysroot);
        fs::create_dir(dir.path().join("outs")).unwrap();
        Fixture {
            dir,
            sources,
            lock: test_lock(),
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("outs").join(name)
    }

    fn run(
        &self,
        format: &Format,
        out: &Path,
        opts: &Options,
    ) -> Result<Outcome, MaterialiseError> {
        materialise(&self.lock, "lock-1", &self.sources, format, out, opts)
    }

    /// Names in the output directory, OUT and its stamp included.
    fn outs(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.dir.path().join("outs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn opts() -> Options {
    Options {
        mtime: MTIME,
        ..Options::default()
    }
}

#[test]
fn check_lock_applies_the_plan_rules_without_writing() {
    check_lock(&test_lock()).unwrap();
    let mut dir = entry("/a", FileKind::Symlink);
    dir.target = Some("/etc".into());
    let bad = lock_of(vec![dir, file("/a/passwd", b"x")]);
    let err = check_lock(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid lock entry /a/passwd: its parent /a is a symlink, not a directory"
    );
}

#[test]
fn format_follows_the_flag_then_the_extension() {
    let choose = |name, out: &str| Format::choose(name, Path::new(out)).unwrap();
    assert_eq!(choose(None, "a/out"), Format::Chroot);
    assert_eq!(choose(None, "out.tar"), Format::Tar(Compression::None));
    assert_eq!(choose(None, "out.tar.gz"), Format::Tar(Compression::Gzip));
    assert_eq!(choose(None, "out.tgz"), Format::Tar(Compression::Gzip));
    assert_eq!(choose(None, "out.tar.xz"), Format::Tar(Compression::Xz));
    assert_eq!(choose(None, "out.txz"), Format::Tar(Compression::Xz));
    assert_eq!(choose(None, "out.tar.zst"), Format::Tar(Compression::Zstd));
    assert_eq!(choose(None, "out.tzst"), Format::Tar(Compression::Zstd));
    assert_eq!(choose(None, "out.gz"), Format::Chroot);
    assert_eq!(choose(Some("tar"), "out"), Format::Tar(Compression::None));
    assert_eq!(
        choose(Some("tar"), "o.tar.xz"),
        Format::Tar(Compression::Xz)
    );
    assert_eq!(choose(Some("chroot"), "o.tar.gz"), Format::Chroot);
    let err = Format::choose(Some("zip"), Path::new("o")).unwrap_err();
    assert!(err.to_string().contains("`zip`"), "{err}");
}

#[test]
fn a_compressed_tar_extension_appliance_does_not_write_is_refused() {
    for (out, compression) in [
        ("x.tar.bz2", "bzip2"),
        ("x.TBZ2", "bzip2"),
        ("x.tar.lz4", "lz4"),
        ("x.tar.lzma", "lzma"),
        ("x.tar.Z", "compress"),
    ] {
        for name in [None, Some("tar"), Some("openvz")] {
            let err = Format::choose(name, Path::new(out))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{out}: ")), "{err}");
            assert!(err.contains(compression), "{err}");
            assert!(err.contains(".tar.zst"), "{err}");
        }
        // A folder format says what OUT is; its name is the user's.
        assert_eq!(
            Format::choose(Some("chroot"), Path::new(out)).unwrap(),
            Format::Chroot
        );
    }
}

#[test]
fn each_format_has_its_own_default_output_and_says_what_it_wrote() {
    let named = |format: Format| {
        let out = format.default_output("web-openvz");
        (out.to_string_lossy().into_owned(), format.to_string())
    };
    assert_eq!(
        named(Format::Chroot),
        ("web-openvz".into(), "chroot".into())
    );
    assert_eq!(
        named(Format::Tar(Compression::None)),
        ("web-openvz.tar".into(), "tar, uncompressed".into())
    );
    assert_eq!(
        named(Format::Tar(Compression::Zstd)),
        ("web-openvz.tar.zst".into(), "tar, zstd".into())
    );
    assert_eq!(
        named(Format::Image(Disk::Qcow2)),
        ("web-openvz.image".into(), "image, qcow2 disk".into())
    );
    assert_eq!(
        named(Format::Oci(Tag::default())),
        ("web-openvz.oci".into(), "oci, tag latest".into())
    );
    // A default name is read back as the format it was made for.
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let out = Format::Tar(compression).default_output("w");
        assert_eq!(
            Format::choose(None, &out).unwrap(),
            Format::Tar(compression)
        );
    }
}

fn decompress(bytes: &[u8], compression: Compression) -> Vec<u8> {
    let mut plain = Vec::new();
    match compression {
        Compression::None => plain.extend_from_slice(bytes),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut plain)
                .unwrap();
        }
        Compression::Xz => {
            liblzma::read::XzDecoder::new(bytes)
                .read_to_end(&mut plain)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::Decoder::new(bytes)
                .unwrap()
                .read_to_end(&mut plain)
                .unwrap();
        }
    }
    plain
}

#[test]
fn tar_is_byte_identical_across_runs_for_every_compression() {
    let fx = Fixture::new();
    let mut plain_tar = None;
    for (compression, ext) in [
        (Compression::None, "tar"),
        (Compression::Gzip, "tar.gz"),
        (Compression::Xz, "tar.xz"),
        (Compression::Zstd, "tar.zst"),
    ] {
        let first = fx.out(&format!("one.{ext}"));
        let second = fx.out(&format!("two.{ext}"));
        let format = Format::choose(None, &first).unwrap();
        assert_eq!(format, Format::Tar(compression));
        let outcome = fx.run(&format, &first, &opts()).unwrap();
        assert!(outcome.built);
        fx.run(&format, &second, &opts()).unwrap();
        let bytes = fs::read(&first).unwrap();
        assert_eq!(
            bytes,
            fs::read(&second).unwrap(),
            "{ext} differs between runs"
        );
        // Every compression wraps the very same tar stream.
        let plain = decompress(&bytes, compression);
        match &plain_tar {
            None => plain_tar = Some(plain),
            Some(expected) => assert!(*expected == plain, "{ext} holds another tar"),
        }
    }
}

/// What the tests check of one archive member.
#[derive(Debug)]
pub(crate) struct Member {
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub user: String,
    pub mtime: u64,
    pub link: Option<String>,
    pub device: Option<(u32, u32)>,
    pub caps: Option<Vec<u8>>,
    pub content: Vec<u8>,
}

fn read_tar(path: &Path) -> Vec<(String, Member)> {
    members_of(fs::File::open(path).unwrap())
}

/// The members of a plain tar stream, in archive order, for every format's tests.
pub(crate) fn members_of(stream: impl Read) -> Vec<(String, Member)> {
    let mut archive = tar::Archive::new(stream);
    let mut members = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let caps = entry.pax_extensions().unwrap().and_then(|mut pax| {
            pax.find_map(|record| {
                let record = record.unwrap();
                (record.key().unwrap() == "SCHILY.xattr.security.capability")
                    .then(|| record.value_bytes().to_vec())
            })
        });
        let header = entry.header().clone();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let kind = header.entry_type();
        let device = (kind.is_character_special() || kind.is_block_special()).then(|| {
            (
                header.device_major().unwrap().unwrap(),
                header.device_minor().unwrap().unwrap(),
            )
        });
        members.push((
            name,
            Member {
                kind,
                mode: header.mode().unwrap(),
                uid: header.uid().unwrap(),
                user: header.username().unwrap().unwrap_or_default().to_string(),
                mtime: header.mtime().unwrap(),
                link,
                device,
                caps,
                content,
            },
        ));
    }
    members
}

#[test]
fn tar_holds_the_locks_names_owners_modes_and_links() {
    let fx = Fixture::new();
    let out = fx.out("out.tar");
    let outcome = fx
        .run(&Format::Tar(Compression::None), &out, &opts())
        .unwrap();
    assert_eq!(
        outcome.files,
        fx.lock.files.len() - 1,
        "every entry but the root"
    );
    let total: u64 = contents().iter().map(|(_, c)| c.len() as u64).sum();
    assert_eq!(outcome.bytes, total);

    let members = read_tar(&out);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.trim_end_matches('/').to_string());
    assert_eq!(names, sorted, "members in lock order");
    assert_eq!(names[0], "./");
    assert!(names.contains(&"./usr/bin/"));
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|(n, m)| (n.as_str(), m)).collect();
    assert_eq!(by_name.len(), fx.lock.files.len());

    for (name, member) in &by_name {
        assert_eq!(member.mtime, MTIME, "{name}");
    }
    let tool = by_name["./usr/bin/a-alias"];
    assert_eq!(
        tool.kind,
        tar::EntryType::Regular,
        "first path of the inode has the bytes"
    );
    assert_eq!(tool.content, b"#!/bin/sh\necho tool\n");
    assert_eq!(
        (tool.mode, tool.uid, tool.user.as_str()),
        (0o4755, 0, "root")
    );
    let hardlink = by_name["./usr/bin/tool"];
    assert_eq!(hardlink.kind, tar::EntryType::Link);
    assert_eq!(hardlink.link.as_deref(), Some("./usr/bin/a-alias"));
    let symlink = by_name["./usr/bin/sh"];
    assert_eq!(symlink.kind, tar::EntryType::Symlink);
    assert_eq!(symlink.link.as_deref(), Some("tool"));

    let ro = by_name["./usr/share/ro/"];
    assert_eq!((ro.kind, ro.mode), (tar::EntryType::Directory, 0o555));
    let profile = by_name["./home/user/.profile"];
    assert_eq!((profile.uid, profile.user.as_str()), (1000, "user"));
    let null = by_name["./dev/null"];
    assert_eq!(
        (null.kind, null.device, null.mode),
        (tar::EntryType::Char, Some((1, 3)), 0o666)
    );
    assert_eq!(by_name["./var/fifo"].kind, tar::EntryType::Fifo);
    let ping = by_name["./usr/bin/ping"];
    assert_eq!(ping.caps, Some(hex::decode(PING_CAPS).unwrap()));
    let long = format!(".{LONG_DIR}/file");
    assert!(long.len() > 100);
    assert_eq!(
        by_name[long.as_str()].content,
        b"long",
        "long name through PAX"
    );
}

#[test]
fn chroot_reproduces_the_tree() {
    let fx = Fixture::new();
    let out = fx.out("root");
    let outcome = fx.run(&Format::Chroot, &out, &opts()).unwrap();
    assert!(outcome.built);
    assert_eq!(fx.outs(), [".root.appliance-stamp", "root"]);

    for (path, content) in contents() {
        assert_eq!(fs::read(out.join(&path[1..])).unwrap(), content, "{path}");
    }
    assert_eq!(
        fs::read_link(out.join("usr/bin/sh")).unwrap(),
        Path::new("tool")
    );
    let tool = fs::metadata(out.join("usr/bin/tool")).unwrap();
    let alias = fs::metadata(out.join("usr/bin/a-alias")).unwrap();
    assert_eq!(tool.ino(), alias.ino(), "hardlinks share an inode");
    assert_eq!(tool.nlink(), 2);
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::metadata(out.join("usr/share/ro")).unwrap().mode() & 0o7777,
        0o555
    );
    assert_eq!(fs::metadata(&out).unwrap().mode() & 0o7777, 0o755);
    assert!(
        fs::metadata(out.join("var/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );

    for file in fx.lock.files.iter() {
        let path = out.join(file.path.trim_start_matches('/'));
        if file.kind == FileKind::Char && !as_root() {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.mtime(), MTIME as i64, "mtime of {}", file.path);
    }

    if !as_root() {
        eprintln!("not root: skipping the owner, capability and device checks of the chroot");
        assert!(outcome.warnings.iter().any(|w| w.contains("/dev/null")));
        return;
    }
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let profile = fs::metadata(out.join("home/user/.profile")).unwrap();
    assert_eq!((profile.uid(), profile.gid()), (1000, 1000));
    let home = fs::metadata(out.join("home/user")).unwrap();
    assert_eq!((home.uid(), home.mode() & 0o7777), (1000, 0o700));
    assert_eq!(tool.uid(), 0);
    let null = fs::metadata(out.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    match xattr::get(out.join("usr/bin/ping"), "security.capability") {
        Ok(caps) => assert_eq!(caps, Some(hex::decode(PING_CAPS).unwrap())),
        Err(e) => eprintln!("filesystem keeps no security xattrs ({e}): capability check skipped"),
    }
}

#[test]
fn a_second_build_replaces_the_tree_and_leaves_nothing_else() {
    let mut fx = Fixture::new();
    let out = fx.out("root");
    fx.run(&Format::Chroot, &out, &opts()).unwrap();
    fs::write(fx.sources.sysroot.join("etc/hostname"), b"db\n").unwrap();
    let hostname = fx
        .lock
        .files
        .iter_mut()
        .find(|f| f.path == "/etc/hostname")
        .unwrap();
    *hostname = file("/etc/hostname", b"db\n");
    fx.run(&Format::Chroot, &out, &opts()).unwrap();
    assert_eq!(fs::read(out.join("etc/hostname")).unwrap(), b"db\n");
    assert_eq!(fx.outs(), [".root.appliance-stamp", "root"]);
}

#[test]
fn drift_lists_every_bad_file_and_leaves_out_alone() {
    for format in [Format::Chroot, Format::Tar(Compression::Gzip)] {
        let fx = Fixture::new();
        let out = fx.out("out");
        fx.run(&format, &out, &opts()).unwrap();
        let before = fx.outs();
        let snapshot = |p: &Path| match format {
            Format::Chroot => fs::read(p.join("etc/hostname")).unwrap(),
            _ => fs::read(p).unwrap(),
        };
        let old = snapshot(&out);

        let root = &fx.sources.sysroot;
        fs::write(root.join("etc/hostname"), b"db!\n").unwrap();
        fs::remove_file(root.join("usr/bin/ping")).unwrap();
        fs::remove_file(root.join("usr/bin/tool")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", root.join("usr/bin/tool")).unwrap();

        let err = fx.run(&format, &out, &opts()).unwrap_err();
        let MaterialiseError::Drift { files, .. } = &err else {
            panic!("expected drift, got {err}");
        };
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/etc/hostname", "/usr/bin/ping", "/usr/bin/tool"]);
        let text = err.to_string();
        assert!(
            text.starts_with("3 files differ from the lock:\n"),
            "{text}"
        );
        for line in [
            "/etc/hostname (package pkg): content differs",
            "/usr/bin/ping (package pkg): missing",
            "/usr/bin/tool (package pkg): not a regular file (a symlink)",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        assert_eq!(snapshot(&out), old, "{format:?}: OUT changed");
        assert_eq!(fx.outs(), before, "{format:?}: temporaries left behind");
    }
}

#[test]
fn a_tar_of_many_windows_holds_every_file_and_reports_drift_from_all_of_them() {
    // More files than one read-ahead window takes, and one larger than a window, which
    // is checked ahead but streamed (and checked again) while written.
    let dir = tempfile::tempdir().unwrap();
    let sysroot = dir.path().join("sysroot");
    let mut wanted: Vec<(String, Vec<u8>)> = (0..700)
        .map(|n| (format!("/f/{n:04}"), format!("file {n}\n").into_bytes()))
        .collect();
    let big: Vec<u8> = (0..9 << 20).map(|n: u32| (n % 251) as u8).collect();
    wanted.push(("/g/big".to_string(), big));
    let mut entries = vec![entry("/f", FileKind::Dir), entry("/g", FileKind::Dir)];
    for (path, content) in &wanted {
        entries.push(file(path, content));
        let host = sysroot.join(&path[1..]);
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(host, content).unwrap();
    }
    let lock = lock_of(entries);
    let sources = Sources {
        sysroot: sysroot.clone(),
        pool: Vec::new(),
        blobs: None,
        unpacked: None,
    };
    let out = dir.path().join("out.tar");
    let format = Format::Tar(Compression::None);
    materialise(&lock, "lock-1", &sources, &format, &out, &opts()).unwrap();
    let members: BTreeMap<String, Vec<u8>> = (read_tar(&out).into_iter())
        .map(|(name, member)| (name, member.content))
        .collect();
    for (path, content) in &wanted {
        assert_eq!(members.get(&format!(".{path}")), Some(content), "{path}");
    }

    fs::write(sysroot.join("f/0000"), b"FILE 0\n").unwrap();
    fs::remove_file(sysroot.join("f/0699")).unwrap();
    fs::write(sysroot.join("g/big"), b"small").unwrap();
    let err = materialise(&lock, "lock-1", &sources, &format, &out, &opts()).unwrap_err();
    let MaterialiseError::Drift { files, .. } = &err else {
        panic!("expected drift, got {err}");
    };
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/f/0000", "/f/0699", "/g/big"]);
}

#[test]
fn a_blob_stands_in_for_a_host_file_that_differs() {
    for format in [Format::Chroot, Format::Tar(Compression::None)] {
        let mut fx = Fixture::new();
        let blobs = fx.dir.path().join("blobs");
        let wanted = b"web\n";
        let hex = blake3::hash(wanted).to_hex();
        let path = crate::repo::blob_path(&blobs, hex.as_str());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, wanted).unwrap();
        fx.sources.blobs = Some(blobs);
        fs::write(fx.sources.sysroot.join("etc/hostname"), b"WEB\n").unwrap();

        let out = fx.out("out");
        fx.run(&format, &out, &opts()).unwrap();
        let got = match format {
            Format::Chroot => fs::read(out.join("etc/hostname")).unwrap(),
            _ => {
                read_tar(&out)
                    .into_iter()
                    .find(|(n, _)| n == "./etc/hostname")
                    .unwrap()
                    .1
                    .content
            }
        };
        assert_eq!(got, wanted, "{format:?}");
    }
}

#[test]
fn hostile_locks_are_refused_before_anything_is_written() {
    let fx = Fixture::new();
    let out = fx.dir.path().join("never/out");
    let hostile = [
        (
            "/lib/x",
            lock_of(vec![
                entry("/etc", FileKind::Dir),
                link("/lib", FileKind::Symlink, "/etc"),
                file("/lib/x", b"x"),
            ]),
        ),
        (
            "/usr/../x",
            lock_of(vec![entry("/usr", FileKind::Dir), file("/usr/../x", b"x")]),
        ),
        (
            "/x",
            lock_of(vec![link("/x", FileKind::Hardlink, "/etc/shadow")]),
        ),
    ];
    for (bad, lock) in hostile {
        for format in [Format::Chroot, Format::Tar(Compression::None)] {
            let err = materialise(&lock, "id", &fx.sources, &format, &out, &opts()).unwrap_err();
            assert!(
                matches!(&err, MaterialiseError::InvalidLock { path, .. } if path == bad),
                "{err}"
            );
            assert!(err.to_string().contains(bad), "{err}");
            assert!(
                !fx.dir.path().join("never").exists(),
                "something was written"
            );
        }
    }
}

#[test]
fn if_newer_rebuilds_when_the_request_or_a_host_file_it_read_changes() {
    for format in [Format::Chroot, Format::Tar(Compression::Zstd)] {
        let fx = Fixture::new();
        let out = fx.out("out");
        let opts = Options {
            if_newer: true,
            ..opts()
        };
        let built = |lock_id: &str, opts: &Options| {
            materialise(&fx.lock, lock_id, &fx.sources, &format, &out, opts)
                .unwrap()
                .built
        };
        assert!(built("lock-1", &opts));
        assert!(!built("lock-1", &opts), "{format:?}");
        assert!(is_current("lock-1", &fx.sources, &format, &out, MTIME));

        // Another lock id, or another mtime, is another request.
        assert!(built("lock-2", &opts));
        assert!(!built("lock-2", &opts));
        let later = Options {
            mtime: MTIME + 1,
            ..opts.clone()
        };
        assert!(built("lock-2", &later));
        assert!(!built("lock-2", &later));

        // A host file that was read, replaced by a file of the same bytes, is another
        // file: the output is checked against it by a build.
        let hostname = fx.sources.sysroot.join("etc/hostname");
        fs::write(hostname.with_extension("new"), b"web\n").unwrap();
        fs::rename(hostname.with_extension("new"), &hostname).unwrap();
        assert!(built("lock-2", &later), "{format:?}");
        assert!(!built("lock-2", &later));

        // Without the host files it read, it cannot be current, nor be built.
        fs::remove_dir_all(&fx.sources.sysroot).unwrap();
        let gone = materialise(&fx.lock, "lock-2", &fx.sources, &format, &out, &later);
        assert!(
            matches!(gone, Err(MaterialiseError::Drift { .. })),
            "{gone:?}"
        );
    }
}

#[test]
fn files_from_the_blob_store_are_covered_by_the_lock_id() {
    let mut fx = Fixture::new();
    let blobs = fx.dir.path().join("blobs");
    fx.sources.blobs = Some(blobs.clone());
    // Every file comes from the blob store: the host has none of them.
    for (_, content) in contents() {
        let hex = blake3::hash(&content).to_hex();
        let path = crate::repo::blob_path(&blobs, hex.as_str());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    fs::remove_dir_all(&fx.sources.sysroot).unwrap();
    fs::create_dir(&fx.sources.sysroot).unwrap();
    let out = fx.out("out.tar");
    let opts = Options {
        if_newer: true,
        ..opts()
    };
    let format = Format::Tar(Compression::None);
    assert!(fx.run(&format, &out, &opts).unwrap().built);
    // A host file appearing where the lock has one changes nothing the build read.
    write_sysroot(&fx.sources.sysroot);
    assert!(!fx.run(&format, &out, &opts).unwrap().built);
}

#[test]
fn concurrent_runs_sharing_a_lock_file_build_once() {
    let fx = Fixture::new();
    let out = fx.out("out.tar.gz");
    let opts = Options {
        if_newer: true,
        lock_file: Some(fx.dir.path().join("outs/out.lock")),
        ..opts()
    };
    let builds: usize = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| fx.run(&Format::Tar(Compression::Gzip), &out, &opts)))
            .collect();
        runs.into_iter()
            .map(|run| usize::from(run.join().unwrap().unwrap().built))
            .sum()
    });
    assert_eq!(builds, 1);
    assert_eq!(
        fx.outs(),
        [".out.tar.gz.appliance-stamp", "out.lock", "out.tar.gz"]
    );
}

#[test]
fn a_lock_file_excludes_other_threads_of_this_process() {
    // File::lock is flock(2), whose locks belong to an open file description: each
    // `hold` opens its own, so a second holder in this process waits as another
    // process would (an fcntl lock would not: it belongs to the process).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.lock");
    let out = dir.path().join("out");
    let held = hold(&path, &out).unwrap();
    let try_other = || {
        let other = File::options().read(true).write(true).open(&path).unwrap();
        other.try_lock()
    };
    assert!(matches!(try_other(), Err(fs::TryLockError::WouldBlock)));
    std::thread::scope(|scope| {
        let in_thread = scope.spawn(try_other).join().unwrap();
        assert!(matches!(in_thread, Err(fs::TryLockError::WouldBlock)));
    });
    drop(held);
    std::thread::scope(|scope| {
        scope.spawn(|| hold(&path, &out).unwrap()).join().unwrap();
    });
}

#[test]
fn refuses_to_replace_the_sysroot() {
    let fx = Fixture::new();
    let err = fx
        .run(&Format::Chroot, &fx.sources.sysroot, &opts())
        .unwrap_err();
    assert!(
        matches!(err, MaterialiseError::UnsafeOutput { .. }),
        "{err}"
    );
    assert!(fx.sources.sysroot.join("etc/hostname").exists());
}

#[test]
fn a_run_killed_before_its_stamp_leaves_an_out_it_may_replace() {
    for format in [Format::Chroot, Format::Tar(Compression::None)] {
        let fx = Fixture::new();
        let out = fx.out("out");
        fx.run(&format, &out, &opts()).unwrap();
        // What a run does up to its death right after installing: the claim, then OUT
        // exchanged for a new build (the stamp still names the old OUT).
        let target = Target::new(&out).unwrap();
        let request = Stamp::request("lock-2", &format, MTIME, &fx.sources.sysroot);
        let build = || match format {
            Format::Chroot => {
                let temp = target.temp_dir().unwrap();
                fs::write(temp.path.join("new"), b"new").unwrap();
                temp
            }
            _ => {
                let (temp, mut file) = target.temp_file().unwrap();
                std::io::Write::write_all(&mut file, b"new").unwrap();
                temp
            }
        };
        let temp = build();
        request.claim(&target.claim(), &temp.path).unwrap();
        target.install(temp, &mut Vec::new()).unwrap();
        fx.run(&format, &out, &opts()).unwrap();
        assert_eq!(fx.outs(), [".out.appliance-stamp", "out"], "{format:?}");

        // Without the claim, the new OUT would be nobody's.
        target.install(build(), &mut Vec::new()).unwrap();
        let err = fx.run(&format, &out, &opts()).unwrap_err();
        assert!(matches!(err, MaterialiseError::Foreign { .. }), "{err}");
    }
}

#[test]
fn a_run_killed_after_its_stamp_leaves_no_claim_once_out_is_found_current() {
    let format = Format::Tar(Compression::None);
    let fx = Fixture::new();
    let out = fx.out("out");
    let opts = Options {
        if_newer: true,
        ..opts()
    };
    fx.run(&format, &out, &opts).unwrap();
    let target = Target::new(&out).unwrap();
    let request = Stamp::request("lock-1", &format, MTIME, &fx.sources.sysroot);
    // A live run's claim names its temporary: it stays while OUT is current.
    let (live, _) = target.temp_file().unwrap();
    request.claim(&target.claim(), &live.path).unwrap();
    assert!(!fx.run(&format, &out, &opts).unwrap().built);
    assert!(target.claim().exists());
    drop(live);
    // Killed between its stamp and removing its claim: the claim names the stamped OUT.
    request.claim(&target.claim(), &out).unwrap();
    assert!(!fx.run(&format, &out, &opts).unwrap().built);
    assert_eq!(fx.outs(), [".out.appliance-stamp", "out"]);
    // The same where `materialise --if-newer` asks before it loads the lock.
    request.claim(&target.claim(), &out).unwrap();
    assert!(is_current("lock-1", &fx.sources, &format, &out, MTIME));
    assert_eq!(fx.outs(), [".out.appliance-stamp", "out"]);
}

#[test]
fn permissions_survive_a_read_only_tree_being_replaced() {
    let fx = Fixture::new();
    let out = fx.out("root");
    fx.run(&Format::Chroot, &out, &opts()).unwrap();
    assert_eq!(
        fs::metadata(out.join("usr/share/ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );
    let outcome = fx.run(&Format::Chroot, &out, &opts()).unwrap();
    assert!(
        outcome.warnings.iter().all(|w| !w.contains("previous")),
        "{:?}",
        outcome.warnings
    );
    assert_eq!(fx.outs(), [".root.appliance-stamp", "root"]);
}

#[test]
fn a_lock_the_host_supplies_never_reads_the_pool() {
    let mut fx = Fixture::new();
    // Scanning this pool would fail: the archive is not a .deb.
    let pool = fx.dir.path().join("pool");
    fs::create_dir(&pool).unwrap();
    fs::write(pool.join("broken_1_amd64.deb"), b"not an archive").unwrap();
    fx.sources.pool = vec![pool];
    for (format, name) in [
        (Format::Chroot, "root"),
        (Format::Tar(Compression::None), "t.tar"),
    ] {
        fx.run(&format, &fx.out(name), &opts()).unwrap();
    }
    // The scratch folder for unpacked archives is gone with the run.
    assert_eq!(
        fx.outs(),
        [
            ".root.appliance-stamp",
            ".t.tar.appliance-stamp",
            "root",
            "t.tar"
        ]
    );
}
