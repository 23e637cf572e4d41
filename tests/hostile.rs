//! Hostile input never escapes or panics, end to end through the binary.
//!
//! Tarball overlays and pool `.deb`s are built here byte by byte (headers written raw,
//! so names the `tar` crate's builder would refuse get in): `..` and absolute names,
//! symlink-then-write tricks, hard links out of the archive, devices and fifos, a
//! header claiming a terabyte, archives cut short, duplicated paths, NUL and long
//! names. For each, compile either fails with an error naming the archive and entry
//! and changes nothing at all (the repository included), or takes the entry as the
//! legal thing it is, and then materialising it as a chroot and as a tar writes
//! nothing outside OUT. A canary folder beside OUT, the sysroot and the rest of the
//! test's folder are compared before and after every step.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{FakePackage, Snapshot, appliance, fake_sysroot, fake_workspace, snapshot};
use md5::Digest;

/// Where a symlink of a hostile archive points when it tries to reach the host's /etc:
/// the file the trick would create there, checked never to appear.
const HOST_CANARY: &str = "/etc/appliance-hostile-canary";

const GOOD: &str = r#"group good version="1.0" {
    flavors openvz
    package bash
}
"#;

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    ws: PathBuf,
    sysroot: PathBuf,
    canary: PathBuf,
}

impl World {
    /// A sysroot with bash installed, a workspace whose `good` group is compiled (so
    /// the repository exists and holds a lock), and a canary folder beside the outputs.
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let ws = root.join("ws");
        let sysroot = root.join("sysroot");
        fake_sysroot(
            &sysroot,
            &[FakePackage::new("bash", "5.2.15-2+b2").file("/bin/bash", "#!fake bash\n")],
        );
        fake_workspace(&ws, &[("good", GOOD)]);
        // Beside every OUT (ws/out-*): where `..` from OUT's root would land.
        let canary = ws.join("canary");
        fs::create_dir_all(&canary).unwrap();
        fs::write(canary.join("keep"), "canary\n").unwrap();
        fs::create_dir_all(ws.join("debs")).unwrap();
        let w = World {
            _dir: dir,
            root,
            ws,
            sysroot,
            canary,
        };
        let out = w.run(&["compile", "groups/good.kdl"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        w
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--sysroot", self.sysroot.to_str().unwrap()];
        all.extend_from_slice(args);
        appliance(&self.ws, &all)
    }

    /// The whole test folder but the outputs (`ws/out-*`, and the stamp materialise
    /// keeps beside each, `ws/.out-*.appliance-stamp`), which only materialise writes.
    fn everything(&self) -> Snapshot {
        let mut all = snapshot(&self.root);
        all.retain(|p, _| {
            let p = p.to_string_lossy();
            !p.starts_with("ws/out-") && !p.starts_with("ws/.out-")
        });
        all
    }

    /// Everything but the outputs and the store: what no step may ever change.
    fn outside(&self) -> Snapshot {
        let mut all = self.everything();
        all.retain(|p, _| !p.starts_with("ws/store"));
        all
    }

    /// Compiles group `name` (written as `text`) with the pool, expecting an error that
    /// contains each of `wanted`; checks it changed nothing anywhere. Returns stderr.
    fn refused(&self, name: &str, text: &str, wanted: &[&str]) -> String {
        self.write_group(name, text);
        let before = self.everything();
        let out = self.run(&["compile", &format!("groups/{name}.kdl"), "--pool", "debs"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        for w in wanted {
            assert!(stderr.contains(w), "{name}: wanted {w:?} in:\n{stderr}");
        }
        // Shown with --nocapture: the errors users get, case by case.
        eprintln!("{name}: {}", stderr.trim_end());
        assert_eq!(
            before,
            self.everything(),
            "{name}: the failed compile changed files"
        );
        self.host_untouched();
        stderr
    }

    /// Compiles group `name`, which must succeed, then materialises it as a chroot and
    /// as a tar, each of which must write nothing outside its OUT. Returns the chroot.
    fn accepted(&self, name: &str, text: &str) -> PathBuf {
        self.write_group(name, text);
        let outside = self.outside();
        let out = self.run(&["compile", &format!("groups/{name}.kdl"), "--pool", "debs"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert_eq!(
            outside,
            self.outside(),
            "{name}: compile wrote outside the store"
        );
        let chroot = self.ws.join(format!("out-{name}"));
        let tar = self.ws.join(format!("out-{name}.tar"));
        for (format, out) in [("chroot", &chroot), ("tar", &tar)] {
            let run = self.materialise(name, format, out, &[]);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(run.status.success(), "{name} as {format}: {stderr}");
            assert_eq!(
                outside,
                self.outside(),
                "{name}: {format} wrote outside OUT"
            );
        }
        self.host_untouched();
        chroot
    }

    /// Runs `materialise` of group `name`'s openvz lock as `format` into `out`, taking
    /// archives from the folders `pools` (relative to the workspace) too.
    fn materialise(
        &self,
        name: &str,
        format: &str,
        out: &Path,
        pools: &[&str],
    ) -> std::process::Output {
        let mut args = vec![
            "materialise",
            name,
            "--flavor",
            "openvz",
            "--format",
            format,
            "-o",
            out.to_str().unwrap(),
        ];
        for pool in pools {
            args.extend(["--pool", pool]);
        }
        self.run(&args)
    }

    fn clear_pool(&self) {
        for old in fs::read_dir(self.ws.join("debs")).unwrap() {
            fs::remove_file(old.unwrap().path()).unwrap();
        }
    }

    fn write_group(&self, name: &str, text: &str) {
        fs::write(self.ws.join(format!("groups/{name}.kdl")), text).unwrap();
    }

    fn host_untouched(&self) {
        assert!(
            !Path::new(HOST_CANARY).exists(),
            "{HOST_CANARY} was written"
        );
        assert_eq!(
            fs::read_to_string(self.canary.join("keep")).unwrap(),
            "canary\n"
        );
        assert_eq!(fs::read_dir(&self.canary).unwrap().count(), 1);
        assert!(!self.root.join("escape").exists() && !self.ws.join("escape").exists());
    }

    /// Puts an overlay tarball into the workspace; returns the group using it.
    fn overlay(&self, file: &str, bytes: &[u8]) -> String {
        let dir = self.ws.join("overlays");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), bytes).unwrap();
        let name = group_name(file);
        format!(
            "group {name} version=\"1.0\" {{\n    flavors openvz\n    package bash\n    overlay \"../overlays/{file}\"\n}}\n"
        )
    }

    /// Puts package `evil` into the pool as `file`; returns the group that asks for it.
    fn evil_deb(&self, file: &str, bytes: &[u8]) -> String {
        // One hostile archive at a time: the pool scan opens every `.deb` there.
        self.clear_pool();
        fs::write(self.ws.join("debs").join(file), bytes).unwrap();
        let name = group_name(file);
        format!(
            "group {name} version=\"1.0\" {{\n    flavors openvz\n    package bash\n    package evil\n}}\n"
        )
    }
}

/// A group name for an input file: its stem with only letters, digits and `-`.
fn group_name(file: &str) -> String {
    let stem = file.split('.').next().unwrap();
    stem.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// One tar entry, written with its header fields as given (nothing is validated).
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    mode: u32,
    /// The size the header declares.
    size: u64,
    data: Vec<u8>,
    link: Vec<u8>,
    device: (u32, u32),
    /// A PAX `path` record put before the header (long or NUL-holding names).
    pax_path: Option<Vec<u8>>,
}

fn raw(name: &str, kind: tar::EntryType) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        mode: if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        },
        size: 0,
        data: Vec::new(),
        link: Vec::new(),
        device: (0, 0),
        pax_path: None,
    }
}

fn dir(name: &str) -> Raw {
    raw(name, tar::EntryType::Directory)
}

fn file(name: &str, content: &str) -> Raw {
    Raw {
        size: content.len() as u64,
        data: content.as_bytes().to_vec(),
        ..raw(name, tar::EntryType::Regular)
    }
}

fn symlink(name: &str, target: &str) -> Raw {
    Raw {
        link: target.as_bytes().to_vec(),
        mode: 0o777,
        ..raw(name, tar::EntryType::Symlink)
    }
}

fn hardlink(name: &str, target: &str) -> Raw {
    Raw {
        link: target.as_bytes().to_vec(),
        ..raw(name, tar::EntryType::Link)
    }
}

fn device(name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Raw {
    Raw {
        device: (major, minor),
        mode: 0o600,
        ..raw(name, kind)
    }
}

/// A tar of `entries`, their names and link texts copied into the header as bytes.
fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if let Some(path) = &e.pax_path {
            b.append_pax_extensions([("path", path.as_slice())])
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(e.size);
        if matches!(e.kind, tar::EntryType::Char | tar::EntryType::Block) {
            h.set_device_major(e.device.0).unwrap();
            h.set_device_minor(e.device.1).unwrap();
        }
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..e.name.len()].copy_from_slice(&e.name);
        gnu.linkname = [0; 100];
        gnu.linkname[..e.link.len()].copy_from_slice(&e.link);
        h.set_cksum();
        b.append(&h, e.data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(bytes).unwrap();
    xz.finish().unwrap()
}

/// Appends an `ar` member as dpkg-deb writes it.
fn ar_member(ar: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    let header = format!(
        "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
        0,
        0,
        0,
        "100644",
        bytes.len()
    );
    assert_eq!(header.len(), 60);
    ar.extend_from_slice(header.as_bytes());
    ar.extend_from_slice(bytes);
    if bytes.len() % 2 == 1 {
        ar.push(b'\n');
    }
}

/// Package `evil` 1.0 with `data` (a tar) as `data.tar.xz`.
fn deb(data: &[u8]) -> Vec<u8> {
    named_deb("evil", data)
}

/// Package `name` 1.0 with `data` (a tar) as `data.tar.xz`.
fn named_deb(name: &str, data: &[u8]) -> Vec<u8> {
    control_deb(&control(name, "1.0", "amd64", ""), data)
}

/// The control file of package `name` at `version` for `arch`, with `fields` (whole
/// lines) before its description.
fn control(name: &str, version: &str, arch: &str, fields: &str) -> String {
    format!(
        "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{fields}\
        Maintainer: t <t@example.org>\nDescription: hostile\n"
    )
}

/// A package whose control file is `control`, with `data` (a tar) as `data.tar.xz`.
fn control_deb(control: &str, data: &[u8]) -> Vec<u8> {
    package_deb(&[("control", control)], data)
}

/// A package whose control member holds `files` (name, text), with `data` (a tar) as
/// `data.tar.xz`.
fn package_deb(files: &[(&str, &str)], data: &[u8]) -> Vec<u8> {
    let mut members = vec![dir("./")];
    members.extend(
        files
            .iter()
            .map(|(name, text)| file(&format!("./{name}"), text)),
    );
    let control_tar = tar_bytes(&members);
    let mut ar = b"!<arch>\n".to_vec();
    ar_member(&mut ar, "debian-binary", b"2.0\n");
    ar_member(&mut ar, "control.tar.gz", &gzip(&control_tar));
    ar_member(&mut ar, "data.tar.xz", &xz(data));
    ar
}

/// A data member's usual start: `./`, `./usr/`, `./usr/share/`.
fn tree(mut rest: Vec<Raw>) -> Vec<Raw> {
    let mut all = vec![dir("./"), dir("./usr/"), dir("./usr/share/")];
    all.append(&mut rest);
    all
}

#[test]
fn hostile_overlay_names_and_links_are_refused() {
    let w = World::new();
    let canary = w.canary.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<Raw>, Vec<String>)> = vec![
        (
            "dotdot.tar",
            vec![file("../escape", "x")],
            vec!["entry `../escape` has a `..` component".into()],
        ),
        (
            "dotdot-inner.tar",
            vec![dir("etc/"), file("etc/../../escape", "x")],
            vec!["entry `etc/../../escape` has a `..` component".into()],
        ),
        (
            "absolute.tar",
            vec![file("/etc/appliance-hostile-canary", "x")],
            vec!["entry `/etc/appliance-hostile-canary` is an absolute name".into()],
        ),
        (
            "through-etc.tar",
            vec![
                symlink("a", "/etc"),
                file("a/appliance-hostile-canary", "x"),
            ],
            vec![
                "entry `a/appliance-hostile-canary` would be written through /a, a symlink of the archive"
                    .into(),
            ],
        ),
        (
            "through-dotdot.tar",
            vec![symlink("up", ".."), file("up/escape", "x")],
            vec!["entry `up/escape` would be written through /up, a symlink".into()],
        ),
        (
            "through-canary.tar",
            vec![symlink("c", &canary), dir("c/"), file("c/keep", "overwritten\n")],
            // `c/` is a directory replacing the overlay's own symlink: taken; `c/keep`
            // is then written into that directory, not through the link.
            vec![],
        ),
        (
            "hardlink-absolute.tar",
            vec![hardlink("passwd", "/etc/passwd")],
            vec!["entry `passwd` is a hard link to `/etc/passwd`, which is not an earlier regular file of the archive".into()],
        ),
        (
            "hardlink-dotdot.tar",
            vec![hardlink("x", "../canary/keep")],
            vec!["entry `x` is a hard link to `../canary/keep`".into()],
        ),
        (
            "hardlink-missing.tar",
            vec![hardlink("x", "not/in/archive")],
            vec!["entry `x` is a hard link to `not/in/archive`".into()],
        ),
        (
            "hardlink-to-dir.tar",
            vec![dir("d/"), hardlink("x", "d")],
            vec!["entry `x` is a hard link to `d`".into()],
        ),
        (
            "relink.tar",
            vec![file("f", "1"), hardlink("h", "f"), file("f", "2")],
            vec!["entry `f` replaces a file that earlier hard links of the archive point at".into()],
        ),
        (
            "dir-replaced.tar",
            vec![dir("d/"), file("d/x", "1"), symlink("d", "/etc")],
            vec!["entry `d` replaces a directory that earlier entries of the archive are in".into()],
        ),
        (
            "nul.tar",
            vec![Raw {
                pax_path: Some(b"etc/a\0b".to_vec()),
                ..file("etc/ab", "x")
            }],
            vec!["contains a NUL byte".into()],
        ),
        // What the shared member reader refuses in a `.deb` too.
        (
            "root-file.tar",
            vec![file("./", "x")],
            vec!["entry `./` is the root of the tree but not a directory".into()],
        ),
        (
            "through-file.tar",
            vec![file("f", "x"), file("f/g", "y")],
            vec!["entry `f/g` would be written through /f, a file of the archive".into()],
        ),
        (
            "hardlink-later.tar",
            vec![hardlink("h", "later"), file("later", "x")],
            vec!["entry `h` is a hard link to `later`, which is not an earlier regular file".into()],
        ),
        (
            "sparse.tar",
            vec![raw("s", tar::EntryType::GNUSparse)],
            // The tar crate reads a GNU sparse header's map before we see its type.
            vec!["cannot read the tarball at its first entry".into()],
        ),
    ];
    for (name, entries, wanted) in cases {
        let group = w.overlay(name, &tar_bytes(&entries));
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        if wanted.is_empty() {
            let chroot = w.accepted(&group_name(name), &group);
            let keep = chroot.join("c/keep");
            assert!(fs::symlink_metadata(&keep).unwrap().is_file());
            assert_eq!(fs::read_to_string(keep).unwrap(), "overwritten\n");
        } else {
            let mut all = vec![name];
            all.extend(wanted);
            w.refused(&group_name(name), &group, &all);
        }
    }
}

#[test]
fn overlays_cannot_reach_through_the_packages_links() {
    let w = World::new();
    // The packages' merged-/usr link /bin -> usr/bin: a file below it, with no
    // directory entry of the overlay's own, would be written through the link.
    let group = w.overlay("under-bin.tar", &tar_bytes(&[file("bin/tool", "x")]));
    w.refused(
        "under-bin",
        &group,
        &["under-bin.tar: entry `/bin/tool` would be written through /bin, a symlink of the tree"],
    );
    // An overlay symlink in place of a package directory would hang the packages'
    // files below a link to the host's /etc.
    let group = w.overlay("usr-link.tar", &tar_bytes(&[symlink("usr", "/etc")]));
    w.refused(
        "usr-link",
        &group,
        &["usr-link.tar: entry `/usr` is a symlink, which would replace a directory of the tree"],
    );
    // The same for the generated system files: /etc holds passwd, group, hosts...
    let group = w.overlay("etc-link.tar", &tar_bytes(&[symlink("etc", "/etc")]));
    w.refused(
        "etc-link",
        &group,
        &["etc-link.tar: entry `/etc` is a symlink, which would replace a directory of the tree"],
    );
    // Replacing a generated file is what overlays are for.
    let group = w.overlay(
        "etc-file.tar",
        &tar_bytes(&[dir("etc/"), file("etc/hosts", "127.0.0.1 web\n")]),
    );
    let chroot = w.accepted("etc-file", &group);
    assert_eq!(
        fs::read_to_string(chroot.join("etc/hosts")).unwrap(),
        "127.0.0.1 web\n"
    );
}

#[test]
fn hostile_overlay_sizes_and_truncations_are_clear_errors() {
    let w = World::new();
    let whole = tar_bytes(&[dir("etc/"), file("etc/motd", &"m".repeat(2000))]);
    let huge = tar_bytes(&[Raw {
        size: 1 << 40,
        ..file("big", "only a few bytes")
    }]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "huge.tar",
            huge,
            "entry `big` is truncated: the header says 1099511627776 bytes",
        ),
        // 512 bytes of `etc/` and 300 of the next header.
        (
            "mid-header.tar",
            whole[..812].to_vec(),
            "after entry `etc/`",
        ),
        (
            "mid-data.tar",
            whole[..1500].to_vec(),
            "entry `etc/motd` is truncated",
        ),
        (
            "no-end.tar",
            whole[..whole.len() - 1024].to_vec(),
            "without the end-of-archive blocks",
        ),
        (
            "mid-xz.tar.xz",
            {
                let x = xz(&whole);
                x[..x.len() / 2].to_vec()
            },
            "cannot read the tarball",
        ),
        (
            "mid-gz.tar.gz",
            {
                let g = gzip(&whole);
                g[..g.len() - 10].to_vec()
            },
            "cannot read the tarball",
        ),
        ("garbage.tar.zst", b"not zstd at all".to_vec(), "overlay"),
    ];
    for (name, bytes, wanted) in cases {
        let group = w.overlay(name, &bytes);
        w.refused(&group_name(name), &group, &[name, wanted]);
    }
}

#[test]
fn legal_overlay_oddities_are_represented_safely() {
    let w = World::new();
    let long = "n".repeat(200);
    let entries = vec![
        dir("dev/"),
        device("dev/null2", tar::EntryType::Char, 1, 3),
        device("dev/loop9", tar::EntryType::Block, 7, 9),
        raw("dev/pipe", tar::EntryType::Fifo),
        dir("etc/"),
        // The same path twice: the later entry wins, as in GNU tar's extraction.
        file("etc/motd", "first\n"),
        file("etc/motd", "second\n"),
        Raw {
            pax_path: Some(format!("etc/{long}").into_bytes()),
            ..file("etc/short", "long name\n")
        },
        // A symlink may point anywhere: its text is data, never followed.
        symlink("etc/host-passwd", "/etc/passwd"),
        symlink("etc/up", "../../.."),
    ];
    let group = w.overlay("oddities.tar", &tar_bytes(&entries));
    let chroot = w.accepted("oddities", &group);
    assert_eq!(
        fs::read_to_string(chroot.join("etc/motd")).unwrap(),
        "second\n"
    );
    assert_eq!(
        fs::read_to_string(chroot.join(format!("etc/{long}"))).unwrap(),
        "long name\n"
    );
    assert_eq!(
        fs::read_link(chroot.join("etc/host-passwd")).unwrap(),
        Path::new("/etc/passwd")
    );
    let pipe = fs::symlink_metadata(chroot.join("dev/pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    if common::is_root() {
        let null = fs::symlink_metadata(chroot.join("dev/null2")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        let lo = fs::symlink_metadata(chroot.join("dev/loop9")).unwrap();
        assert!(lo.file_type().is_block_device());
    }
    // The tar output holds them as what they are, whoever runs it.
    let tar = fs::read(w.ws.join("out-oddities.tar")).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut kinds = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        kinds.insert(path, entry.header().entry_type());
    }
    assert_eq!(
        kinds.get("./dev/null2"),
        Some(&tar::EntryType::Char),
        "{kinds:?}"
    );
    assert_eq!(kinds.get("./dev/loop9"), Some(&tar::EntryType::Block));
    assert_eq!(kinds.get("./dev/pipe"), Some(&tar::EntryType::Fifo));
}

#[test]
fn hostile_pool_debs_are_refused_with_the_archive_and_entry_named() {
    let w = World::new();
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "dotdot.deb",
            tree(vec![file("./usr/../../escape", "x")]),
            "entry ./usr/../../escape: has a `..` component",
        ),
        (
            "absolute.deb",
            tree(vec![file("/etc/appliance-hostile-canary", "x")]),
            "entry /etc/appliance-hostile-canary: is an absolute name",
        ),
        (
            "through-etc.deb",
            tree(vec![
                symlink("./usr/share/a", "/etc"),
                file("./usr/share/a/appliance-hostile-canary", "x"),
            ]),
            "entry ./usr/share/a/appliance-hostile-canary: would be written through /usr/share/a, a symlink",
        ),
        (
            "through-dotdot.deb",
            tree(vec![
                symlink("./usr/share/up", "../../.."),
                file("./usr/share/up/escape", "x"),
            ]),
            "entry ./usr/share/up/escape: would be written through /usr/share/up, a symlink",
        ),
        (
            "hardlink-out.deb",
            tree(vec![hardlink("./usr/share/pw", "/etc/passwd")]),
            "entry ./usr/share/pw: is a hard link to `/etc/passwd`, which is not an earlier regular file of the archive",
        ),
        (
            "hardlink-dotdot.deb",
            tree(vec![hardlink("./usr/share/pw", "../../etc/passwd")]),
            "entry ./usr/share/pw: is a hard link to `../../etc/passwd`",
        ),
        (
            "hardlink-missing.deb",
            tree(vec![hardlink("./usr/share/x", "./usr/share/none")]),
            "is a hard link to `./usr/share/none`, which is not an earlier regular file",
        ),
        (
            "duplicate.deb",
            tree(vec![file("./usr/share/f", "1"), file("./usr/share/f", "2")]),
            "entry ./usr/share/f: appears twice in the archive",
        ),
        (
            "huge.deb",
            tree(vec![Raw {
                size: 1 << 40,
                ..file("./usr/share/big", "a few bytes")
            }]),
            "entry ./usr/share/big: is truncated",
        ),
        // What the shared member reader refuses in an overlay tarball too.
        (
            "root-file.deb",
            vec![file("./", "x")],
            "entry ./: is the root of the tree but not a directory",
        ),
        (
            "through-file.deb",
            tree(vec![
                file("./usr/share/f", "x"),
                file("./usr/share/f/g", "y"),
            ]),
            "entry ./usr/share/f/g: would be written through /usr/share/f, a file of the archive",
        ),
        (
            "hardlink-to-dir.deb",
            tree(vec![hardlink("./usr/share/x", "./usr/share")]),
            "entry ./usr/share/x: is a hard link to `./usr/share`, which is not an earlier regular file",
        ),
        (
            "hardlink-later.deb",
            tree(vec![
                hardlink("./usr/share/x", "./usr/share/later"),
                file("./usr/share/later", "x"),
            ]),
            "entry ./usr/share/x: is a hard link to `./usr/share/later`",
        ),
        (
            "nul.deb",
            tree(vec![Raw {
                pax_path: Some(b"./usr/share/a\0b".to_vec()),
                ..file("./usr/share/ab", "x")
            }]),
            "contains a NUL byte",
        ),
    ];
    for (name, entries, wanted) in cases {
        let group = w.evil_deb(name, &deb(&tar_bytes(&entries)));
        w.refused(&group_name(name), &group, &[name, wanted]);
    }
}

#[test]
fn a_pool_package_cannot_write_through_another_packages_symlink() {
    let w = World::new();
    w.clear_pool();
    // Each archive alone is fine; together one's file lies below the other's link.
    let link = tree(vec![symlink("./usr/share/a", "/etc")]);
    let under = tree(vec![file("./usr/share/a/appliance-hostile-canary", "x")]);
    let pool = w.ws.join("debs");
    fs::write(
        pool.join("link.deb"),
        named_deb("evil-link", &tar_bytes(&link)),
    )
    .unwrap();
    fs::write(
        pool.join("under.deb"),
        named_deb("evil-under", &tar_bytes(&under)),
    )
    .unwrap();
    let group = "group pair version=\"1.0\" {\n    flavors openvz\n    package bash\n    package evil-link\n    package evil-under\n}\n";
    w.refused(
        "pair",
        group,
        &[
            "the compiled tree cannot be materialised",
            "entry /usr/share/a/appliance-hostile-canary (package evil-under)",
            "its parent /usr/share/a is a symlink, not a directory",
        ],
    );
}

#[test]
fn truncated_pool_debs_are_clear_errors() {
    let w = World::new();
    let whole = deb(&tar_bytes(&tree(vec![file(
        "./usr/share/f",
        &"content ".repeat(4000),
    )])));
    // Where data.tar.xz starts: after the magic and two members.
    let data_at = whole.len() - {
        let last = xz(&tar_bytes(&tree(vec![file(
            "./usr/share/f",
            &"content ".repeat(4000),
        )])));
        last.len() + last.len() % 2
    };
    let mid_xz = {
        // The member's bytes cut in half, its header saying so: a consistent `ar`
        // around an xz stream that stops.
        let data = xz(&tar_bytes(&tree(vec![file(
            "./usr/share/f",
            &"content ".repeat(4000),
        )])));
        let mut ar = whole[..data_at - 60].to_vec();
        ar_member(&mut ar, "data.tar.xz", &data[..data.len() / 2]);
        ar
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "mid-ar-header.deb",
            whole[..data_at - 30].to_vec(),
            "damaged package archive: truncated member header",
        ),
        (
            "mid-member.deb",
            whole[..data_at + 10].to_vec(),
            "damaged package archive: member data.tar.xz is truncated",
        ),
        ("mid-xz.deb", mid_xz, "cannot read member data.tar.xz"),
        // As an overlay's: a data.tar cut after a whole entry, at a block boundary.
        (
            "no-end.deb",
            {
                let data = tar_bytes(&tree(vec![file("./usr/share/f", "x")]));
                deb(&data[..data.len() - 1024])
            },
            "cannot read member data.tar.xz: it ends without the end-of-archive blocks",
        ),
        (
            "sparse.deb",
            deb(&tar_bytes(&tree(vec![raw(
                "./usr/share/s",
                tar::EntryType::GNUSparse,
            )]))),
            "cannot read member data.tar.xz",
        ),
        ("magic-only.deb", b"!<arch>\n".to_vec(), "no members"),
        ("empty.deb", Vec::new(), "damaged package archive"),
    ];
    for (name, bytes, wanted) in cases {
        let group = w.evil_deb(name, &bytes);
        w.refused(&group_name(name), &group, &[name, wanted]);
    }
}

#[test]
fn legal_deb_devices_and_fifos_are_represented_safely() {
    let w = World::new();
    let entries = tree(vec![
        dir("./usr/share/dev/"),
        device("./usr/share/dev/null2", tar::EntryType::Char, 1, 3),
        raw("./usr/share/dev/pipe", tar::EntryType::Fifo),
        symlink("./usr/share/host", "/etc/passwd"),
    ]);
    let group = w.evil_deb("devices.deb", &deb(&tar_bytes(&entries)));
    let chroot = w.accepted("devices", &group);
    assert!(
        fs::symlink_metadata(chroot.join("usr/share/dev/pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert_eq!(
        fs::read_link(chroot.join("usr/share/host")).unwrap(),
        Path::new("/etc/passwd")
    );
    if common::is_root() {
        let null = fs::symlink_metadata(chroot.join("usr/share/dev/null2")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
    }
}

#[test]
fn pool_control_fields_must_follow_dpkgs_rules() {
    let w = World::new();
    let data = tar_bytes(&tree(vec![file("./usr/share/evil", "x")]));
    // A group cannot name `--foo`: it arrives through a Depends. Its archive is refused
    // whether or not anything needs it, naming the archive, the field and the value.
    let depends = control("evil", "1.0", "amd64", "Depends: --foo\n");
    let group = w.evil_deb("via-depends.deb", &control_deb(&depends, &data));
    let dashes = control_deb(&control("--foo", "1.0", "amd64", ""), &data);
    fs::write(w.ws.join("debs/foo.deb"), dashes).unwrap();
    w.refused(
        "via-depends",
        &group,
        &[
            "debs/foo.deb:control:1: package --foo: Package: bad package name `--foo`: \
           must start with a lowercase letter or a digit",
        ],
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "depends.deb",
            depends.clone(),
            "depends.deb:control:4: package evil: Depends: malformed relation `--foo`: \
             bad package name `--foo`",
        ),
        (
            "version.deb",
            control("evil", "1.0 beta; rm -rf /", "amd64", ""),
            "version.deb:control:2: package evil: Version: bad version `1.0 beta; rm -rf /`: \
             version string has embedded spaces",
        ),
        (
            "epoch.deb",
            control("evil", "a:1.0", "amd64", ""),
            "Version: bad version `a:1.0`: epoch in version is not number",
        ),
        (
            "arch.deb",
            control("evil", "1.0", "amd_64", ""),
            "arch.deb:control:3: package evil: Architecture: bad architecture `amd_64`",
        ),
        (
            "relation-version.deb",
            control("evil", "1.0", "amd64", "Depends: bash (>= x1)\n"),
            "Depends: malformed relation `bash (>= x1)`: bad version `x1`: \
             version number does not start with digit",
        ),
        (
            "relation-arch.deb",
            control("evil", "1.0", "amd64", "Pre-Depends: bash:AMD64\n"),
            "Pre-Depends: malformed relation `bash:AMD64`: bad architecture `AMD64`",
        ),
        (
            "provides.deb",
            control("evil", "1.0", "amd64", "Provides: Evil_Thing\n"),
            "Provides: malformed relation `Evil_Thing`: bad package name `Evil_Thing`",
        ),
        // What dpkg writes itself once it has installed the package.
        (
            "status.deb",
            control("evil", "1.0", "amd64", "Status: install ok installed\n"),
            "status.deb:control:4: package evil: field Status is not allowed in a control file",
        ),
        (
            "conffiles.deb",
            control(
                "evil",
                "1.0",
                "amd64",
                "Conffiles:\n /etc/passwd 0123456789abcdef0123456789abcdef\n",
            ),
            "field Conffiles is not allowed in a control file",
        ),
        (
            "hyphen.deb",
            control("evil", "1.0", "amd64", "-Evil: x\n"),
            "hyphen.deb:control:4: package evil: field name `-Evil` starts with a hyphen",
        ),
    ];
    for (name, control, wanted) in cases {
        let group = w.evil_deb(name, &control_deb(&control, &data));
        w.refused(&group_name(name), &group, &[wanted]);
    }
}

#[test]
fn a_huge_value_is_quoted_on_a_short_line() {
    let w = World::new();
    let data = tar_bytes(&tree(vec![file("./usr/share/evil", "x")]));
    // A valid name no package has (the resolver's chain quotes it), and an invalid one
    // (the control file's error quotes it).
    for (name, needed) in [
        ("huge.deb", "a".repeat(70_000)),
        ("huge-invalid.deb", "A".repeat(70_000)),
    ] {
        let fields = format!("Depends: {needed}\n");
        let deb = control_deb(&control("evil", "1.0", "amd64", &fields), &data);
        let group = w.evil_deb(name, &deb);
        let stderr = w.refused(&group_name(name), &group, &["... (70000 bytes)"]);
        let longest = stderr.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 500, "{name}: a line of {longest} bytes");
    }
}

#[test]
fn names_no_filesystem_or_dpkg_can_hold_are_refused_at_compile() {
    let w = World::new();
    let long = "x".repeat(256);
    let deep = format!(
        "./usr/share/{}f",
        format!("{}/", "d".repeat(200)).repeat(21)
    );
    let named = |path: String| Raw {
        pax_path: Some(path.into_bytes()),
        ..file("./usr/share/short", "x")
    };
    let cases: Vec<(&str, Vec<Raw>, &str)> = vec![
        (
            "newline.deb",
            tree(vec![file("./usr/share/evil\n/bin", "x")]),
            "entry ./usr/share/evil\\n/bin: contains a newline, which dpkg's file lists cannot hold",
        ),
        (
            "long-name.deb",
            tree(vec![named(format!("./usr/share/{long}"))]),
            "has a component of 256 bytes",
        ),
        ("deep.deb", tree(vec![named(deep)]), "is 4233 bytes long"),
    ];
    for (name, entries, wanted) in cases {
        let group = w.evil_deb(name, &deb(&tar_bytes(&entries)));
        w.refused(&group_name(name), &group, &[name, wanted]);
    }
    // Overlays, as a tarball and as a folder.
    let group = w.overlay(
        "long-name.tar",
        &tar_bytes(&[Raw {
            pax_path: Some(format!("srv/{long}").into_bytes()),
            ..file("srv-x", "x")
        }]),
    );
    w.refused(
        "long-name",
        &group,
        &[
            "long-name.tar: entry `srv/xxxx",
            "` has a component of 256 bytes",
        ],
    );
    let group = w.overlay("newline.tar", &tar_bytes(&[file("etc/evil\nmotd", "x")]));
    w.refused(
        "newline",
        &group,
        &["newline.tar: entry `etc/evil\\nmotd` contains a newline"],
    );
    let folder = w.ws.join("overlays/folder/etc");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("evil\nmotd"), "x").unwrap();
    let group = "group folder version=\"1.0\" {\n    flavors openvz\n    package bash\n    \
                 overlay \"../overlays/folder\"\n}\n";
    w.refused(
        "folder",
        group,
        &["overlays/folder: entry `/etc/evil\\nmotd` contains a newline"],
    );
    // A `file` statement.
    let group = format!(
        "group file-long version=\"1.0\" {{\n    flavors openvz\n    package bash\n    \
         file \"/srv/{long}\" content=\"x\"\n}}\n"
    );
    w.refused("file-long", &group, &["has a component of 256 bytes"]);
    // Host files.
    fs::create_dir_all(w.sysroot.join("srv")).unwrap();
    fs::write(w.sysroot.join("srv/evil\nname"), "x").unwrap();
    let group = "group host version=\"1.0\" {\n    flavors openvz\n    package bash\n    \
                 hostfile \"/srv/*\"\n}\n";
    w.refused(
        "host",
        group,
        &["hostfile `/srv/*`: entry `/srv/evil\\nname` contains a newline"],
    );
}

/// Package `evil` 1.0 whose one file, `/usr/share/evil`, holds `content`.
fn evil_holding(content: &str) -> Vec<u8> {
    deb(&tar_bytes(&tree(vec![file("./usr/share/evil", content)])))
}

#[test]
fn junk_and_shadowing_archives_first_in_the_pool_do_not_stop_materialise() {
    let w = World::new();
    let group = w.evil_deb("genuine.deb", &evil_holding("genuine\n"));
    w.write_group("genuine", &group);
    let out = w.run(&["compile", "groups/genuine.kdl", "--pool", "debs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // After the compile, archives that sort first: one no reader takes, one that holds
    // the same package with other bytes.
    let debs = w.ws.join("debs");
    fs::write(debs.join("0-junk.deb"), b"!<arch>\nnot a package").unwrap();
    fs::write(debs.join("1-shadow.deb"), evil_holding("shadow!\n")).unwrap();
    let materialised = |out: &str, pools: &[&str]| {
        let chroot = w.ws.join(out);
        let run = w.materialise("genuine", "chroot", &chroot, pools);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{out}: {stderr}");
        fs::read_to_string(chroot.join("usr/share/evil")).unwrap()
    };
    assert_eq!(materialised("out-one-pool", &["debs"]), "genuine\n");
    // The same with the shadowing archive in a pool folder given first.
    let junk = w.ws.join("junk");
    fs::create_dir(&junk).unwrap();
    fs::rename(debs.join("0-junk.deb"), junk.join("0-junk.deb")).unwrap();
    fs::rename(debs.join("1-shadow.deb"), junk.join("1-shadow.deb")).unwrap();
    assert_eq!(
        materialised("out-two-pools", &["junk", "debs"]),
        "genuine\n"
    );
    w.host_untouched();
}

#[test]
fn two_different_archives_of_one_package_are_named_in_a_warning() {
    let w = World::new();
    let group = w.evil_deb("a.deb", &evil_holding("genuine\n"));
    w.write_group("a", &group);
    let debs = w.ws.join("debs");
    fs::write(debs.join("b.deb"), evil_holding("shadow!\n")).unwrap();
    // A copy of the same bytes is no news.
    fs::copy(debs.join("a.deb"), debs.join("c.deb")).unwrap();
    let out = w.run(&["compile", "groups/a.kdl", "--pool", "debs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("b.deb"))
        .unwrap_or_else(|| panic!("no warning naming b.deb in:\n{stderr}"));
    assert!(
        warning.contains("debs/a.deb") && warning.contains("debs/b.deb"),
        "{warning}"
    );
    assert!(warning.contains("evil 1.0 (amd64)"), "{warning}");
    assert!(!stderr.contains("c.deb"), "{stderr}");
}

#[test]
fn junk_in_apt_lists_is_skipped_unless_a_package_needs_it() {
    let w = World::new();
    let lists = w.sysroot.join("var/lib/apt/lists");
    fs::create_dir_all(&lists).unwrap();
    let stanza = |name: &str, version: &str, fields: &str| {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{fields}\
             Filename: pool/{name}.deb\nSize: 1\nSHA256: {}\n",
            "ab".repeat(32)
        )
    };
    let list = [
        stanza("unused", "1.0 beta", ""),
        stanza("Bad_Name", "1.0", ""),
        stanza("needed", "2.0", "Depends: bash (>= y)\n"),
    ]
    .join("\n");
    fs::write(lists.join("junk_dists_x_main_binary-amd64_Packages"), list).unwrap();
    // Nothing needs them: left out, with a warning naming the first.
    let data = tar_bytes(&tree(vec![file("./usr/share/evil", "x")]));
    let group = w.evil_deb("unneeded.deb", &deb(&data));
    w.write_group("unneeded", &group);
    let out = w.run(&[
        "compile",
        "groups/unneeded.kdl",
        "--pool",
        "debs",
        "--offline",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: apt's lists hold 3 stanzas dpkg would refuse") &&
        stderr.contains("junk_dists_x_main_binary-amd64_Packages:2: package unused: Version: bad version `1.0 beta`"),
        "{stderr}"
    );
    // A package that needs one: refused, naming the list, the line, the field, the value.
    let fields = "Depends: needed\n";
    let group = w.evil_deb(
        "needs.deb",
        &control_deb(&control("evil", "1.0", "amd64", fields), &data),
    );
    w.refused(
        "needs",
        &group,
        &[
            "needs -> evil -> needed: ",
            "junk_dists_x_main_binary-amd64_Packages:18: package needed: Depends: \
             malformed relation `bash (>= y)`: bad version `y`",
        ],
    );
}

#[test]
fn dpkg_query_reads_every_database_compile_makes_from_pool_packages() {
    if Command::new("dpkg-query")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("no dpkg-query on this machine: skipped");
        return;
    }
    let w = World::new();
    // A `Multi-Arch: same` library with a conffile, and a program that needs it.
    let library = control(
        "libevil1",
        "2:1.0-1+b1",
        "amd64",
        "Multi-Arch: same\nDepends: bash\n",
    );
    let library = package_deb(
        &[("control", &library), ("conffiles", "/etc/evil.conf\n")],
        &tar_bytes(&[
            dir("./"),
            dir("./etc/"),
            file("./etc/evil.conf", "setting=1\n"),
            dir("./usr/"),
            dir("./usr/lib/"),
            file("./usr/lib/libevil.so.1", "not really a library\n"),
        ]),
    );
    let data = tar_bytes(&tree(vec![file("./usr/share/evil", "x")]));
    let program = |fields: &str| {
        let text = control("evil", "1.0~rc1-1", "amd64", fields);
        control_deb(&text, &data)
    };
    let good = program("Depends: libevil1 (>= 2:1.0), bash | dash\n");
    // Each case is a pool (its archives by file name): compile refuses it, or
    // dpkg-query reads what it built.
    type Pool<'a> = Vec<(&'a str, Vec<u8>)>;
    let cases: Vec<(&str, Pool)> = vec![
        (
            "good",
            vec![("libevil1.deb", library.clone()), ("evil.deb", good)],
        ),
        (
            "spaces",
            vec![(
                "evil.deb",
                control_deb(&control("evil", "1.0 beta", "amd64", ""), &data),
            )],
        ),
        (
            "same-all",
            vec![(
                "evil.deb",
                control_deb(&control("evil", "1.0", "all", "Multi-Arch: same\n"), &data),
            )],
        ),
        (
            "conffiles-field",
            vec![(
                "evil.deb",
                program("Conffiles:\n /etc/passwd 0123456789abcdef0123456789abcdef\n"),
            )],
        ),
        (
            "dashes",
            vec![
                ("evil.deb", program("Depends: --foo\n")),
                (
                    "foo.deb",
                    control_deb(&control("--foo", "1", "amd64", ""), &data),
                ),
            ],
        ),
    ];
    let mut read = Vec::new();
    for (name, debs) in cases {
        w.clear_pool();
        for (file, bytes) in debs {
            fs::write(w.ws.join("debs").join(file), bytes).unwrap();
        }
        let group =
            format!("group {name} version=\"1.0\" {{\n    flavors openvz\n    package evil\n}}\n");
        w.write_group(name, &group);
        let out = w.run(&["compile", &format!("groups/{name}.kdl"), "--pool", "debs"]);
        if !out.status.success() {
            continue;
        }
        let chroot = w.ws.join(format!("out-{name}"));
        let run = w.materialise(name, "chroot", &chroot, &["debs"]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{name}: {stderr}");
        let admindir = format!("--admindir={}", chroot.join("var/lib/dpkg").display());
        let query = |args: &[&str]| {
            let out = Command::new("dpkg-query")
                .arg(&admindir)
                .args(args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                out.status.success(),
                "{name}: dpkg-query {args:?}: {stderr}"
            );
            assert!(
                !stderr.contains("error"),
                "{name}: dpkg-query {args:?}: {stderr}"
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let format = "${Package}:${Architecture} ${Version} ${db:Status-Abbrev}\n";
        read.push((name, query(&["-W", "-f", format])));
        if name == "good" {
            assert_eq!(
                query(&["-L", "libevil1"]),
                "/.\n/etc\n/etc/evil.conf\n/usr\n/usr/lib\n/usr/lib/libevil.so.1\n"
            );
            let md5 = hex::encode(md5::Md5::digest(b"setting=1\n"));
            assert_eq!(
                query(&["-W", "-f", "${Conffiles}", "libevil1"]),
                format!(" /etc/evil.conf {md5}")
            );
        }
    }
    assert_eq!(
        read,
        [(
            "good",
            "bash:amd64 5.2.15-2+b2 ii \n\
             evil:amd64 1.0~rc1-1 ii \n\
             libevil1:amd64 2:1.0-1+b1 ii \n"
                .to_string()
        )]
    );
}
