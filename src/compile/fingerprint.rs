//! A compile's fingerprint: what lets a compile whose inputs are unchanged answer from
//! the repository before reading any package source.
//!
//! It has two parts. The key is the BLAKE3 of what the recipe asks and how compile is
//! set up: this build of appliance, the recipe itself (which holds the BLAKE3 of every group
//! file read, the flavor and the `prefer` in force), the backend, `--offline`, the
//! sysroot and the pool folders, and which of the package sources exist. The inputs
//! are the identities of what compile would read, as `--if-newer` stamps record host
//! files (see [`Used`]): the package database (dpkg's status, diversions and info
//! folder, or the rpmdb), apt's lists and their folder, apt's sources and keyrings,
//! the accounts files, every pool folder and what it holds; then, once the lock is
//! made, every host path the lock describes (regular files and links by identity,
//! folders by mode and owner, which is all a lock takes of them; a folder's times
//! change whenever anything is added to it, and the lock does not depend on that).
//!
//! Files whose change time is racily close to the compile's start are checked by their
//! bytes instead (git's racy-clean rule), so a change the clock cannot show is still
//! seen; a folder cannot be, so a racy one never matches and the next compile runs.
//!
//! The archives a compile downloads into its own pool are its doing, not a change of
//! its inputs: when the pool holds exactly what it held at the start plus those
//! archives, the pool is recorded anew with them (see `downloads`); anything else
//! that changed there still counts.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Settings;
use crate::lock::{FileKind, Lock};
use crate::materialise::stamp::Used;
use crate::workspace::Recipe;

/// The sources a compile reads under the sysroot, files or folders; a folder's
/// entries are inputs too.
const SOURCES: &[&str] = &[
    "var/lib/dpkg",
    "var/lib/dpkg/status",
    "var/lib/dpkg/diversions",
    "var/lib/dpkg/info",
    "var/lib/apt/lists",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite-wal",
    "var/lib/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite-wal",
    "etc/passwd",
    "etc/group",
    "etc/apt/sources.list",
    "etc/apt/sources.list.d",
    "etc/apt/trusted.gpg",
    "etc/apt/trusted.gpg.d",
];

/// Folders whose entries are inputs one by one (the others count by their own
/// identity: dpkg rewrites its status whenever it changes `info`).
const LISTED: &[&str] = &[
    "var/lib/apt/lists",
    "etc/apt/sources.list.d",
    "etc/apt/trusted.gpg.d",
];

/// How deep a pool folder is listed: its archives, and a createrepo_c repository's
/// `repodata` beside them.
const POOL_DEPTH: usize = 2;

/// The key of `recipe` compiled with `settings` over `pool_dirs`, or `None` when the
/// recipe reads what the fingerprint does not follow (`hostfile` globs, `overlay`
/// folders and tarballs), or when this build cannot tell itself from another: such a
/// recipe is always compiled.
pub fn key(recipe: &Recipe, settings: &Settings, pool_dirs: &[PathBuf]) -> Option<String> {
    if !recipe.hostfiles.is_empty() || !recipe.overlays.is_empty() {
        return None;
    }
    let mut h = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"appliance compile fingerprint 1");
    // This build: a new one may lock another tree (capture's rules, the scripts'
    // settings), as a kept configured tree is taken only by the build that made it.
    field(super::kept::build_identity()?.as_bytes());
    // The recipe's own form: every group file's digest, the flavor, `prefer`.
    field(format!("{recipe:?}").as_bytes());
    field(format!("{:?} offline={}", settings.backend, settings.offline).as_bytes());
    field(settings.sysroot.as_os_str().as_bytes());
    field(settings.pool_dir.as_os_str().as_bytes());
    // A source or pool folder that appears or goes away changes what is read, though
    // no identity recorded for it could show that.
    let exists = |path: &Path| [u8::from(fs::symlink_metadata(path).is_ok())];
    for dir in pool_dirs {
        field(dir.as_os_str().as_bytes());
        field(&exists(dir));
    }
    for source in SOURCES {
        field(&exists(&settings.sysroot.join(source)));
    }
    Some(h.finalize().to_hex().to_string())
}

/// What a compile read, as it was at the compile's start.
pub struct Inputs {
    /// The identities of its inputs.
    used: Used,
    /// The pool folder the compile downloads into, and its entries' names then: what
    /// the compile adds there itself is told apart from what anyone else does.
    pool: (PathBuf, BTreeSet<OsString>),
}

/// The inputs a compile is about to read, recorded as they are at its start.
pub fn inputs(settings: &Settings, pool_dirs: &[PathBuf]) -> Inputs {
    let used = Used::starting_now();
    for source in SOURCES {
        used.input(&settings.sysroot.join(source));
    }
    for dir in LISTED {
        listing(&used, &settings.sysroot.join(dir), 1);
    }
    for dir in pool_dirs {
        listing(&used, dir, POOL_DEPTH);
    }
    let names = names(&settings.pool_dir).unwrap_or_default();
    Inputs {
        used,
        pool: (settings.pool_dir.clone(), names),
    }
}

/// The names of the entries of `dir`.
fn names(dir: &Path) -> Option<BTreeSet<OsString>> {
    let entries = fs::read_dir(dir).ok()?;
    entries.map(|e| e.ok().map(|e| e.file_name())).collect()
}

/// Takes the archives the compile downloaded (`downloaded`, with those of the other
/// recipes of its batch) as its pool folder's own: the folder is recorded anew when
/// what it holds now is exactly what it held at the start and those, each archive as
/// it is now. Anything else that changed there still counts as changed.
fn downloads(inputs: Inputs, downloaded: &[PathBuf]) -> Used {
    let Inputs {
        used,
        pool: (dir, mut expected),
    } = inputs;
    let ours: Vec<&PathBuf> = (downloaded.iter())
        .filter(|path| path.parent() == Some(dir.as_path()))
        .collect();
    if ours.is_empty() {
        return used;
    }
    for path in ours {
        if let Some(name) = path.file_name() {
            expected.insert(name.to_owned());
        }
        used.reinput(path, true);
    }
    // The identity first, then the names: an entry added after it was taken makes it
    // differ next time, and one added before shows among the names.
    used.reinput(&dir, true);
    if names(&dir).as_ref() != Some(&expected) {
        used.reinput(&dir, false);
    }
    used
}

/// Records `dir` and its entries, `depth` levels down.
fn listing(used: &Used, dir: &Path, depth: usize) {
    used.input(dir);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        used.input(&path);
        if depth > 1 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            listing(used, &path, depth - 1);
        }
    }
}

/// A folder of the lock as the host has it: path, permission bits, owner, group.
type Folder = (String, u32, u32, u32);

/// What the repository keeps to answer a compile: the inputs and the lock's host
/// paths ([`Used::encode`]), and the lock's folders the host supplied, as JSON.
pub struct Recorded {
    /// Identities of what was read, and of the host files the lock describes.
    pub inputs: Vec<u8>,
    /// The lock's folders as the host has them.
    pub folders: String,
}

/// Adds the host paths `lock` describes to the compile's `inputs`, after the lock is
/// made from them, and the archives its batch `downloaded` into its pool. `None` when a
/// folder of the lock changed on the host during the compile: what the lock holds of
/// it cannot be told from what the host has now.
pub fn record(
    inputs: Inputs,
    downloaded: &[PathBuf],
    sysroot: &Path,
    lock: &Lock,
) -> Option<Recorded> {
    let used = downloads(inputs, downloaded);
    let mut folders: Vec<Folder> = Vec::new();
    for entry in &lock.files {
        let at = entry.origin.as_deref().unwrap_or(&entry.path);
        let host = sysroot.join(at.trim_start_matches('/'));
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        match entry.kind {
            // The target's entry covers it.
            FileKind::Hardlink => {}
            FileKind::Dir => {
                let found = (meta.mode() & 0o7777, meta.uid(), meta.gid());
                if meta.is_dir() && found == (entry.mode & 0o7777, entry.uid, entry.gid) {
                    folders.push((
                        host.to_string_lossy().into_owned(),
                        found.0,
                        found.1,
                        found.2,
                    ));
                } else if used.is_racy(&meta) {
                    return None;
                }
                // Otherwise the lock did not take this folder from the host.
            }
            _ => {
                let digest = (entry.digest.as_deref())
                    .and_then(|hex| blake3::Hash::from_hex(hex).ok())
                    .filter(|_| meta.is_file());
                used.result_entry(&host, &meta, digest);
            }
        }
    }
    Some(Recorded {
        inputs: used.encode(),
        folders: serde_json::to_string(&folders).ok()?,
    })
}

/// Whether everything a [`Recorded`]'s `inputs` and `folders` describe is as it was:
/// the compile it was recorded for would make the same lock now.
pub fn holds(inputs: &[u8], folders: &str) -> bool {
    let Ok(folders) = serde_json::from_str::<Vec<Folder>>(folders) else {
        return false;
    };
    let same_folder = |(path, mode, uid, gid): &Folder| {
        fs::symlink_metadata(path).is_ok_and(|meta| {
            meta.is_dir() && (meta.mode() & 0o7777, meta.uid(), meta.gid()) == (*mode, *uid, *gid)
        })
    };
    folders.iter().all(same_folder) && Used::unchanged(inputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Backend;
    use crate::progress::{Reporter, Verbosity};

    fn settings(sysroot: &Path) -> Settings {
        Settings {
            sysroot: sysroot.to_path_buf(),
            pool_dir: sysroot.join("pool"),
            offline: true,
            scratch: sysroot.join("scratch"),
            backend: Backend::Dpkg,
            report: Reporter::new(Verbosity::Quiet),
        }
    }

    fn recorded(settings: &Settings, pools: &[PathBuf]) -> Recorded {
        Recorded {
            inputs: inputs(settings, pools).used.encode(),
            folders: "[]".into(),
        }
    }

    // Everything here was just made, so racy: files are checked by their bytes,
    // folders by their entries' names, and nothing needs a sleep.
    #[test]
    fn inputs_hold_until_a_list_changes_or_a_pool_gains_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("var/lib/apt/lists")).unwrap();
        fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        fs::create_dir_all(root.join("pool")).unwrap();
        let list = root.join("var/lib/apt/lists/x_Packages");
        fs::write(&list, "Package: a\n").unwrap();
        fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        let settings = settings(root);
        let pools = vec![root.join("pool")];
        let before = recorded(&settings, &pools);
        assert!(holds(&before.inputs, &before.folders));
        fs::write(root.join("pool/a_1_all.deb"), "!<arch>\n").unwrap();
        assert!(!holds(&before.inputs, &before.folders));
        let before = recorded(&settings, &pools);
        assert!(holds(&before.inputs, &before.folders));
        fs::write(&list, "Package: b\n").unwrap();
        assert!(!holds(&before.inputs, &before.folders));
    }

    #[test]
    fn archives_a_compile_downloaded_are_its_own_and_no_one_else_s() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("pool")).unwrap();
        fs::write(root.join("pool/old_1_all.deb"), "!<arch>\n").unwrap();
        let settings = settings(root);
        let pools = vec![root.join("pool")];
        let holds_now = |used: Used| Used::unchanged(&used.encode());

        let start = inputs(&settings, &pools);
        let ours = root.join("pool/a_1_all.deb");
        fs::write(&ours, "!<arch>\na\n").unwrap();
        assert!(holds_now(downloads(start, std::slice::from_ref(&ours))));

        // Another archive came in beside the compile's own: that one was never read.
        let start = inputs(&settings, &pools);
        let also = root.join("pool/b_1_all.deb");
        fs::write(&also, "!<arch>\nb\n").unwrap();
        fs::write(root.join("pool/theirs_1_all.deb"), "!<arch>\n").unwrap();
        assert!(!holds_now(downloads(start, &[also])));

        // One that went away is a change too.
        let start = inputs(&settings, &pools);
        let more = root.join("pool/c_1_all.deb");
        fs::write(&more, "!<arch>\nc\n").unwrap();
        fs::remove_file(root.join("pool/old_1_all.deb")).unwrap();
        assert!(!holds_now(downloads(start, &[more])));
    }

    #[test]
    fn a_source_that_appears_changes_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let settings = settings(root);
        let ws_dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(ws_dir.path().join("groups")).unwrap();
        fs::write(
            ws_dir.path().join("groups/g.kdl"),
            "group g version=\"1\" { package hello }",
        )
        .unwrap();
        let ws = crate::workspace::Workspace::discover(ws_dir.path(), None).unwrap();
        let flavor = crate::lang::Flavor::parse_canonical("[is: x86_64]").unwrap();
        let recipe = ws.recipe(&ws.group_file("g").unwrap(), &flavor).unwrap();
        let before = key(&recipe, &settings, &[]);
        assert!(before.is_some());
        assert_eq!(key(&recipe, &settings, &[]), before);
        fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        assert_ne!(key(&recipe, &settings, &[]), before);
    }
}
