//! End to end against the anchor: the web appliance with apt (`include web`, `package
//! apt`) compiled with `--prefer newest` (the archive's newest packages, the host's
//! files where it has those versions installed), materialised as a chroot, and
//!
//! - compared with mmdebstrap's tree of the same packages at the same versions: every
//!   path both trees have has the same type, mode and owner (ids and names), and every
//!   path only one has is in [`ALLOWED`], with its reason;
//! - managed as a Debian system: `dpkg -V` reports only excluded paths, `dpkg --audit` is
//!   silent, `dpkg -i` of a library runs ldconfig's trigger, and `apt-get install hello`
//!   works from the host's apt sources, which the lock carries.
//!
//! Needs root (chroots, mmdebstrap's root mode), apt lists and Debian's archive (CI runs
//! `apt-get update` and installs mmdebstrap first). One compile serves every test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{Mount, example_workspace, is_root, report, succeeds};

/// The group under test: the example web appliance, manageable.
///
/// `mawk` and `usrmerge` are named because apt and appliance choose some alternatives
/// differently: for `awk` with none installed, apt takes mawk (priority `required`) and
/// appliance's resolver the first provider it meets (gawk); for `usrmerge |
/// usr-is-merged`, apt (in mmdebstrap's essential stage) the first, appliance the one
/// the host has installed (usr-is-merged, on a merged-/usr host).
const GROUP: &str = "group managed version=\"1.0\" {\n    flavors openvz\n    include web\n    package apt\n    package mawk\n    package usrmerge\n}\n";

/// Which tree holds a path the other lacks, or that both hold with other metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Theirs,
    Differs,
}

/// Every difference between the two trees that is not a bug, with its reason. A glob's
/// `*` crosses `/`.
const ALLOWED: &[(Side, &str, &str)] = &[
    (
        Side::Theirs,
        "/usr/share/{doc,info,man,locale}/*",
        "the groups exclude docs, info and manual pages, and translations",
    ),
    (
        Side::Theirs,
        "/{etc,var/lib/dpkg}/alternatives/*.gz",
        "update-alternatives makes no link to an excluded manual page",
    ),
    (
        Side::Theirs,
        "/etc/ssh/ssh_host_*",
        "host keys are secrets, made on first boot",
    ),
    (
        Side::Theirs,
        "/etc/{passwd,group,shadow,gshadow}-",
        "backups, dropped",
    ),
    (Side::Theirs, "/var/lib/dpkg/*-old", "backups, dropped"),
    (Side::Theirs, "/var/cache/debconf/*-old", "backups, dropped"),
    (
        Side::Theirs,
        "/run/*",
        "a tmpfs on every boot; the scripts' /run is the sandbox's own",
    ),
    (
        Side::Theirs,
        "/etc/apt/sources.list",
        "mmdebstrap's own apt source (the lock has the host's)",
    ),
    (
        Side::Theirs,
        "/var/lib/dpkg/arch",
        "mmdebstrap writes it for foreign architectures and chrootless builds; dpkg \
         needs none without foreign architectures",
    ),
    (
        Side::Theirs,
        "/var/{cache/apt/archives/lock,lib/apt/extended_states,lib/apt/lists/*}",
        "apt's state: mmdebstrap installs with apt-get, appliance with dpkg",
    ),
    (
        Side::Differs,
        "/var/{cache/apt/archives,lib/apt/lists}/partial",
        "apt gives its download folders to _apt (0700) when it first runs",
    ),
    (
        Side::Ours,
        "/etc/apt/sources.list.d/*",
        "the host's apt sources, for a tree with apt",
    ),
    (
        Side::Ours,
        "/etc/hosts",
        "a machine file: the loopback hosts of a template",
    ),
    (
        Side::Ours,
        "/etc/systemd/system/{appliance-ssh-hostkeys.service,ssh.service.requires,ssh.service.requires/appliance-ssh-hostkeys.service}",
        "the first-boot SSH host key unit",
    ),
    (
        Side::Ours,
        "/etc/systemd/system/getty.target.wants/console-getty.service",
        "a container's console getty",
    ),
    (
        Side::Differs,
        "/dev/*",
        "device nodes as makedev makes them (tty is root:tty, console 0600); mmdebstrap's \
         root mode makes its own, and a container gets a fresh /dev anyway",
    ),
    (
        Side::Differs,
        "/etc/{hostname,resolv.conf}",
        "mmdebstrap copies the host's with the host's mode; the lock's are the group's \
         and a placeholder",
    ),
    (
        Side::Differs,
        "/etc/machine-id",
        "mmdebstrap rewrites it empty with mode 0644; the lock's is systemd's 0444",
    ),
];

/// The compiled group: a workspace whose store holds its lock, and the lock's packages.
struct Compiled {
    ws: PathBuf,
    /// The host root the compile read.
    sysroot: PathBuf,
    /// Every (name, version) of the lock.
    packages: BTreeMap<String, String>,
    /// The packages the groups name.
    named: Vec<String>,
    /// Every path of the lock.
    paths: BTreeSet<String>,
    _dir: tempfile::TempDir,
}

impl Compiled {
    /// `appliance ARGS...` in the workspace, reading the compile's sysroot.
    fn ok(&self, args: &[&str]) -> String {
        let mut all = vec!["--sysroot", self.sysroot.to_str().unwrap()];
        all.extend_from_slice(args);
        succeeds(common::command(&self.ws, &all))
    }

    /// A fresh chroot of the lock, at `ws/NAME`.
    fn chroot(&self, name: &str) -> PathBuf {
        self.ok(&common::materialise("managed", "chroot", name));
        self.ws.join(name)
    }
}

/// The one compile every test shares; `None` when not root.
fn compiled() -> Option<&'static Compiled> {
    static COMPILED: OnceLock<Option<Compiled>> = OnceLock::new();
    COMPILED
        .get_or_init(|| {
            if !is_root() {
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let ws = dir.path().join("ws");
            example_workspace(&ws);
            fs::write(ws.join("groups/managed.kdl"), GROUP).unwrap();
            let sysroot = PathBuf::from("/");
            let mut compiled = Compiled {
                ws,
                sysroot,
                packages: BTreeMap::new(),
                named: Vec::new(),
                paths: BTreeSet::new(),
                _dir: dir,
            };
            let made = compiled.ok(&["compile", "groups/managed.kdl", "--prefer", "newest"]);
            report(&format!("anchor: {made}"));
            let shown =
                compiled.ok(&["show", "managed", "--flavor", "openvz", "--json", "--files"]);
            let lock: serde_json::Value = serde_json::from_str(&shown).unwrap();
            for p in lock["lock"]["packages"].as_array().unwrap() {
                let name = p["name"].as_str().unwrap().to_string();
                if p["reason"]["kind"] == "named" {
                    compiled.named.push(name.clone());
                }
                let version = p["version"].as_str().unwrap().to_string();
                compiled.packages.insert(name, version);
            }
            for f in lock["lock"]["files"].as_array().unwrap() {
                compiled
                    .paths
                    .insert(f["path"].as_str().unwrap().to_string());
            }
            Some(compiled)
        })
        .as_ref()
}

/// Runs `script` with `/bin/sh` chrooted in `root`; returns stdout and stderr together.
fn inside(root: &Path, script: &str) -> String {
    let out = Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {text}");
    text
}

#[test]
fn the_tree_matches_mmdebstrap_of_the_same_packages() {
    let Some(compiled) = compiled() else {
        eprintln!("skipped: mmdebstrap's root mode and the chroot need root");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("mmdebstrap");
    let mut mmdebstrap = Command::new("mmdebstrap");
    mmdebstrap
        .args(["--mode=root", "--variant=essential", "--quiet"])
        .arg(format!("--include={}", compiled.named.join(",")))
        .arg("bookworm")
        .arg(&theirs)
        .env("SOURCE_DATE_EPOCH", "0");
    succeeds(mmdebstrap);

    // The same packages at the same versions, or the comparison means nothing: the
    // archive may have moved between the two runs.
    let query = inside(&theirs, "dpkg-query -W -f '${Package} ${Version}\\n'");
    let anchor: BTreeMap<String, String> = (query.lines())
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let names: BTreeSet<&String> = compiled.packages.keys().chain(anchor.keys()).collect();
    let versions: Vec<String> = (names.into_iter())
        .filter(|n| compiled.packages.get(*n) != anchor.get(*n))
        .map(|n| {
            let v = |m: &BTreeMap<String, String>| m.get(n).map_or("-", String::as_str).to_string();
            format!(
                "{n}: ours {}, mmdebstrap {}",
                v(&compiled.packages),
                v(&anchor)
            )
        })
        .collect();
    assert!(
        versions.is_empty(),
        "the two trees hold different packages or versions (did the archive move between \
         the runs?):\n{}",
        versions.join("\n")
    );

    let ours = compiled.chroot("anchor-ours");
    let (ours, theirs) = (Tree::read(&ours), Tree::read(&theirs));
    let allowed: Vec<(Side, globset::GlobMatcher, &str)> = (ALLOWED.iter())
        .map(|(side, glob, why)| {
            (
                *side,
                globset::Glob::new(glob).unwrap().compile_matcher(),
                *why,
            )
        })
        .collect();
    let mut unexplained = Vec::new();
    let mut explained: BTreeMap<&str, usize> = BTreeMap::new();
    let mut note = |side: Side, path: &str, what: String| {
        let reason = (allowed.iter())
            .find(|(s, glob, _)| *s == side && glob.is_match(path))
            .map(|(_, _, why)| *why);
        match reason {
            Some(why) => *explained.entry(why).or_default() += 1,
            None => unexplained.push(format!("{side:?} {path}: {what}")),
        }
    };
    let paths: BTreeSet<&String> = ours.entries.keys().chain(theirs.entries.keys()).collect();
    for path in paths {
        match (ours.entries.get(path), theirs.entries.get(path)) {
            (Some(o), Some(t)) if ours.describe(o) != theirs.describe(t) => note(
                Side::Differs,
                path,
                format!(
                    "ours {}, mmdebstrap {}",
                    ours.describe(o),
                    theirs.describe(t)
                ),
            ),
            (Some(o), None) => note(Side::Ours, path, ours.describe(o)),
            (None, Some(t)) => note(Side::Theirs, path, theirs.describe(t)),
            _ => {}
        }
    }
    for (why, count) in &explained {
        report(&format!("anchor: {count} paths: {why}"));
    }
    assert!(
        unexplained.is_empty(),
        "{} differences from mmdebstrap's tree have no reason in ALLOWED:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}

/// A tree's metadata: every path below its root with (type, mode, uid, gid), and its
/// own account names.
struct Tree {
    entries: BTreeMap<String, (u32, u32, u32)>,
    users: BTreeMap<u32, String>,
    groups: BTreeMap<u32, String>,
}

impl Tree {
    fn read(root: &Path) -> Tree {
        let mut entries = BTreeMap::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for item in fs::read_dir(&dir).unwrap() {
                let path = item.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    todo.push(path.clone());
                }
                let name = format!("/{}", path.strip_prefix(root).unwrap().display());
                entries.insert(name, (meta.mode(), meta.uid(), meta.gid()));
            }
        }
        let names = |file: &str| {
            (fs::read_to_string(root.join(file)).unwrap().lines())
                .filter_map(|l| {
                    let fields: Vec<&str> = l.split(':').collect();
                    Some((fields.get(2)?.parse().ok()?, fields[0].to_string()))
                })
                .collect()
        };
        Tree {
            entries,
            users: names("etc/passwd"),
            groups: names("etc/group"),
        }
    }

    /// An entry's type and mode, and its owners by id and by this tree's names.
    fn describe(&self, &(mode, uid, gid): &(u32, u32, u32)) -> String {
        let name = |names: &BTreeMap<u32, String>, id| names.get(&id).cloned().unwrap_or_default();
        format!(
            "{:o} {uid}({}):{gid}({})",
            mode,
            name(&self.users, uid),
            name(&self.groups, gid)
        )
    }
}

#[test]
fn the_dpkg_database_inside_is_complete_and_apt_works() {
    let Some(compiled) = compiled() else {
        eprintln!("skipped: the chroot needs root");
        return;
    };
    // The host's apt sources are in the lock, as group files.
    let shown = compiled.ok(&["show", "managed", "--flavor", "openvz", "--json", "--files"]);
    let lock: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let files = lock["lock"]["files"].as_array().unwrap();
    let sources: Vec<&serde_json::Value> = (files.iter())
        .filter(|f| {
            let path = f["path"].as_str().unwrap();
            path == "/etc/apt/sources.list"
                || (path.starts_with("/etc/apt/sources.list.d/")
                    && (path.ends_with(".list") || path.ends_with(".sources")))
        })
        .collect();
    assert!(!sources.is_empty(), "the lock has no apt sources");
    for f in &sources {
        let path = f["path"].as_str().unwrap();
        let host = compiled.sysroot.join(path.trim_start_matches('/'));
        assert_eq!(
            f["digest"].as_str(),
            Some(common::digest(&host).as_str()),
            "{path}"
        );
        assert!(f["package"].is_null(), "{path}");
    }

    let root = compiled.chroot("managed");
    // dpkg finds every packaged file intact but the ones the group excluded.
    for line in inside(&root, "dpkg -V").lines() {
        let path = line.rsplit(' ').next().unwrap();
        assert!(
            line.starts_with("missing") && !compiled.paths.contains(path),
            "dpkg -V: {line}"
        );
    }
    assert_eq!(inside(&root, "dpkg --audit"), "");

    // A library's package activates ldconfig's trigger, which dpkg runs at once.
    let scratch = tempfile::tempdir().unwrap();
    let (source, library) = (scratch.path().join("a.c"), scratch.path().join("a.so"));
    fs::write(&source, "int anchor(void) { return 1; }\n").unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-shared", "-fPIC", "-Wl,-soname,libanchor.so.1", "-o"])
        .args([&library, &source]);
    succeeds(cc);
    common::build_deb(
        &root.join("tmp"),
        "libanchor1",
        "1.0",
        &[(
            "/usr/lib/x86_64-linux-gnu/libanchor.so.1.0",
            fs::read(&library).unwrap(),
        )],
        &[],
        &[
            ("triggers", "activate-noawait ldconfig\n"),
            ("shlibs", "libanchor 1 libanchor1\n"),
        ],
    );
    assert!(!inside(&root, "ldconfig -p").contains("libanchor.so.1"));
    inside(&root, "dpkg -i /tmp/libanchor1_1.0_amd64.deb");
    assert!(
        inside(&root, "ldconfig -p").contains("libanchor.so.1 (libc6,x86-64)"),
        "ldconfig's trigger did not run"
    );
    assert!(
        fs::read_link(root.join("usr/lib/x86_64-linux-gnu/libanchor.so.1")).is_ok(),
        "ldconfig made no link for the soname"
    );
    assert_eq!(inside(&root, "dpkg --audit"), "");

    // apt finds the archive through the host's sources and keyrings, and installs.
    let resolv = root.join("etc/resolv.conf");
    let _dns = Mount::bind(Path::new("/etc/resolv.conf"), &resolv);
    inside(&root, "apt-get -q update && apt-get -q install -y hello");
    assert!(inside(&root, "hello").contains("Hello, world!"));
    assert!(inside(&root, "dpkg -s hello").contains("Status: install ok installed"));
}
