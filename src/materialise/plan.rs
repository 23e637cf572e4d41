//! Validation of a lock into a [`Plan`] that the output formats can follow blindly.
//!
//! Everything an output could trip over is checked here, before anything is written:
//! paths, parents, link targets, digests, device numbers and capabilities. The formats
//! then only match on [`Body`] and never re-check the lock.

use std::collections::HashMap;

use crate::excerpt::excerpt;
use crate::lock::path::{self, PathProblem};
use crate::lock::{FileEntry, FileKind, Lock};

use super::MaterialiseError;

/// Why a lock entry was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockProblem {
    /// The path does not start with `/`.
    #[error("the path is not absolute")]
    NotAbsolute,
    /// The path has an empty, `.` or `..` component or a trailing `/`.
    #[error("the path is not normalised (empty, `.` or `..` component, or trailing `/`)")]
    NotNormalised,
    /// The path holds what no output can: a newline, a name or a whole path too long
    /// for a filesystem.
    #[error("the path {0}")]
    Unholdable(PathProblem),
    /// A string of the entry holds a NUL byte, which no filesystem or tar header accepts.
    #[error("its {field} contains a NUL byte")]
    Nul {
        /// Which field: path, target, user, group or origin.
        field: &'static str,
    },
    /// Two entries share the path.
    #[error("the path appears more than once")]
    Duplicate,
    /// The parent directory has no entry in the lock.
    #[error("its parent {} is not in the lock", excerpt(.parent))]
    NoParent {
        /// The missing parent path.
        parent: String,
    },
    /// The parent is not a directory; writing through it could leave the output.
    #[error("its parent {} is a {kind}, not a directory", excerpt(.parent))]
    ParentNotDir {
        /// The parent path.
        parent: String,
        /// What the parent is instead.
        kind: FileKind,
    },
    /// The root entry `/` is not a directory.
    #[error("the root must be a directory, not a {kind}")]
    RootNotDir {
        /// What the root is instead.
        kind: FileKind,
    },
    /// The mode has bits above the permission, set-id and sticky bits.
    #[error("mode {mode:#o} has bits beyond 0o7777")]
    BadMode {
        /// The mode as locked.
        mode: u32,
    },
    /// A regular file without a digest cannot be checked, so it cannot be written.
    #[error("a file needs a digest")]
    NoDigest,
    /// The digest is not a BLAKE3 in hex.
    #[error("digest `{}` is not 64 hex digits", excerpt(.digest))]
    BadDigest {
        /// The digest as locked.
        digest: String,
    },
    /// A symlink or hardlink without a target (or with an empty one).
    #[error("a {kind} needs a non-empty target")]
    NoTarget {
        /// Symlink or hardlink.
        kind: FileKind,
    },
    /// A hardlink points outside the lock.
    #[error("hardlink target {} is not in the lock", excerpt(.target))]
    LinkTargetMissing {
        /// The target path.
        target: String,
    },
    /// A hardlink points at something that is not a regular file of the lock.
    #[error("hardlink target {} is a {kind}, not a file", excerpt(.target))]
    LinkTargetNotFile {
        /// The target path.
        target: String,
        /// What the target is instead.
        kind: FileKind,
    },
    /// A device node without (valid) device numbers.
    #[error("a {kind} device needs device numbers below 2097152")]
    BadDevice {
        /// Char or block.
        kind: FileKind,
    },
    /// The capabilities are not hex.
    #[error("capabilities `{}` are not hex", excerpt(.caps))]
    BadCaps {
        /// The capabilities as locked.
        caps: String,
    },
    /// Capabilities on an entry that cannot carry them.
    #[error("a {kind} cannot carry capabilities")]
    CapsOnKind {
        /// The entry's kind.
        kind: FileKind,
    },
    /// A hardlink's capabilities contradict its target's (they share one inode).
    #[error(
        "its capabilities differ from those of its hardlink target {}",
        excerpt(.target)
    )]
    LinkCapsDiffer {
        /// The target path.
        target: String,
    },
    /// The origin, where the bytes live on the host, is not a normalised absolute path.
    #[error("origin `{}` is not a normalised absolute path", excerpt(.origin))]
    BadOrigin {
        /// The origin as locked.
        origin: String,
    },
}

/// What an item is and what writing it needs, checked.
#[derive(Debug)]
pub(crate) enum Body<'a> {
    /// A directory.
    Dir,
    /// A regular file whose bytes must have this size and digest.
    File(Expected),
    /// A symlink with this (never followed) text.
    Symlink(&'a str),
    /// A hard link to another item, a [`Body::File`].
    Hardlink {
        /// The index of the target item.
        target: usize,
        /// The target's content, which this path shares.
        content: Expected,
    },
    /// A char or block device.
    Device {
        /// Block device rather than char device.
        block: bool,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// The size and BLAKE3 a file's bytes must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the content.
    pub digest: blake3::Hash,
}

/// One lock entry other than the root, ready to write.
#[derive(Debug)]
pub(crate) struct Item<'a> {
    /// The entry as locked (path, mode, owners, package).
    pub entry: &'a FileEntry,
    /// What to write.
    pub body: Body<'a>,
    /// Raw `security.capability` value. Only files and hardlinks carry one, and a
    /// hardlink's equals its target's, so formats apply it through the file alone.
    pub caps: Option<Vec<u8>>,
}

/// A validated lock: the root directory and every other entry in path order.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The root directory: the lock's `/` entry, or `0755 root:root` when it has none.
    pub root: FileEntry,
    /// Every other entry, sorted by path, so parents come before their children.
    pub items: Vec<Item<'a>>,
}

impl<'a> Plan<'a> {
    /// Checks every entry of `lock`; the first bad entry (in path order) is the error.
    pub fn new(lock: &'a Lock) -> Result<Plan<'a>, MaterialiseError> {
        let mut entries: Vec<&FileEntry> = lock.files.iter().collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(pair) = entries.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(refuse(pair[1], LockProblem::Duplicate));
        }

        let root = match entries.first() {
            Some(first) if first.path == "/" => {
                check_common(first).map_err(|p| refuse(first, p))?;
                if first.kind != FileKind::Dir {
                    return Err(refuse(first, LockProblem::RootNotDir { kind: first.kind }));
                }
                let root = (*first).clone();
                entries.remove(0);
                root
            }
            _ => implicit_root(),
        };

        let index: HashMap<&str, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.as_str(), i))
            .collect();

        let mut items = Vec::with_capacity(entries.len());
        for entry in &entries {
            items.push(check_entry(entry, &entries, &index)?);
        }
        // Capabilities of a hardlink live on the shared inode, written through its target;
        // decoded above, compared here once every target has been decoded.
        for (entry, item) in entries.iter().zip(&items) {
            if let Body::Hardlink { target, .. } = item.body
                && entry.caps.is_some()
                && item.caps != items[target].caps
            {
                let target = items[target].entry.path.clone();
                return Err(refuse(entry, LockProblem::LinkCapsDiffer { target }));
            }
        }
        Ok(Plan { root, items })
    }

    /// The bytes of content the output holds (each hardlinked inode once).
    pub fn content_bytes(&self) -> u64 {
        self.items
            .iter()
            .map(|item| match &item.body {
                Body::File(expected) => expected.size,
                _ => 0,
            })
            .fold(0, u64::saturating_add)
    }

    /// The entry at `path` and its content, when it is a regular file or a hardlink.
    pub fn file_content(&self, path: &str) -> Option<(&'a FileEntry, Expected)> {
        let at = (self.items)
            .binary_search_by(|item| item.entry.path.as_str().cmp(path))
            .ok()?;
        let item = &self.items[at];
        match item.body {
            Body::File(content) | Body::Hardlink { content, .. } => Some((item.entry, content)),
            _ => None,
        }
    }

    /// The regular file items (their indices) and their contents, in path order: each
    /// hardlinked inode once.
    pub fn files(&self) -> Vec<(usize, Expected)> {
        (self.items.iter().enumerate())
            .filter_map(|(i, item)| match item.body {
                Body::File(expected) => Some((i, expected)),
                _ => None,
            })
            .collect()
    }
}

/// The root used when a lock has no `/` entry: what every distribution ships.
fn implicit_root() -> FileEntry {
    FileEntry::directory("/")
}

fn refuse(entry: &FileEntry, problem: LockProblem) -> MaterialiseError {
    MaterialiseError::InvalidLock {
        path: entry.path.clone(),
        problem,
    }
}

/// Checks what every entry, the root included, must satisfy.
fn check_common(entry: &FileEntry) -> Result<(), LockProblem> {
    check_path(&entry.path)?;
    for (field, value) in [
        ("user", Some(&entry.user)),
        ("group", Some(&entry.group)),
        ("target", entry.target.as_ref()),
        ("origin", entry.origin.as_ref()),
    ] {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(LockProblem::Nul { field });
        }
    }
    if entry.mode > 0o7777 {
        return Err(LockProblem::BadMode { mode: entry.mode });
    }
    Ok(())
}

/// Accepts `/` and `/a/b`; refuses relative paths, `//`, `.`, `..`, a trailing `/`, NUL,
/// and what [`path::check`] refuses.
fn check_path(path: &str) -> Result<(), LockProblem> {
    match path::check(path) {
        Err(PathProblem::Nul) => return Err(LockProblem::Nul { field: "path" }),
        Err(problem) => return Err(LockProblem::Unholdable(problem)),
        Ok(()) => {}
    }
    let rest = path.strip_prefix('/').ok_or(LockProblem::NotAbsolute)?;
    if !rest.is_empty()
        && rest
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(LockProblem::NotNormalised);
    }
    Ok(())
}

/// The parent of a validated absolute path other than `/`.
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn check_entry<'a>(
    entry: &'a FileEntry,
    entries: &[&'a FileEntry],
    index: &HashMap<&str, usize>,
) -> Result<Item<'a>, MaterialiseError> {
    let bad = |problem| refuse(entry, problem);
    check_common(entry).map_err(bad)?;
    if let Some(origin) = &entry.origin
        && (check_path(origin).is_err() || origin == "/")
    {
        return Err(bad(LockProblem::BadOrigin {
            origin: origin.clone(),
        }));
    }
    let up = parent(&entry.path);
    if up != "/" {
        let Some(&i) = index.get(up) else {
            return Err(bad(LockProblem::NoParent {
                parent: up.to_string(),
            }));
        };
        if entries[i].kind != FileKind::Dir {
            return Err(bad(LockProblem::ParentNotDir {
                parent: up.to_string(),
                kind: entries[i].kind,
            }));
        }
    }

    let body = match entry.kind {
        FileKind::Dir => Body::Dir,
        FileKind::Fifo => Body::Fifo,
        FileKind::File => Body::File(content(entry).map_err(bad)?),
        FileKind::Symlink => Body::Symlink(target_of(entry).map_err(bad)?),
        FileKind::Hardlink => {
            let target = target_of(entry).map_err(bad)?;
            let Some(&i) = index.get(target) else {
                return Err(bad(LockProblem::LinkTargetMissing {
                    target: target.to_string(),
                }));
            };
            if entries[i].kind != FileKind::File {
                return Err(bad(LockProblem::LinkTargetNotFile {
                    target: target.to_string(),
                    kind: entries[i].kind,
                }));
            }
            // A bad digest is the target's fault, so it is reported at the target.
            let content = content(entries[i]).map_err(|p| refuse(entries[i], p))?;
            Body::Hardlink { target: i, content }
        }
        FileKind::Char | FileKind::Block => {
            // The ustar header holds 7 octal digits per number; Linux needs far fewer.
            const LIMIT: u32 = 0o7777777;
            match entry.device {
                Some((major, minor)) if major <= LIMIT && minor <= LIMIT => Body::Device {
                    block: entry.kind == FileKind::Block,
                    major,
                    minor,
                },
                _ => return Err(bad(LockProblem::BadDevice { kind: entry.kind })),
            }
        }
    };

    let caps = match &entry.caps {
        None => None,
        Some(_) if !matches!(entry.kind, FileKind::File | FileKind::Hardlink) => {
            return Err(bad(LockProblem::CapsOnKind { kind: entry.kind }));
        }
        Some(hex) => {
            Some(hex::decode(hex).map_err(|_| bad(LockProblem::BadCaps { caps: hex.clone() }))?)
        }
    };
    Ok(Item { entry, body, caps })
}

/// The size and decoded digest of a file entry.
fn content(entry: &FileEntry) -> Result<Expected, LockProblem> {
    let hex = entry.digest.as_deref().ok_or(LockProblem::NoDigest)?;
    let digest = blake3::Hash::from_hex(hex).map_err(|_| LockProblem::BadDigest {
        digest: hex.to_string(),
    })?;
    Ok(Expected {
        size: entry.size,
        digest,
    })
}

fn target_of(entry: &FileEntry) -> Result<&str, LockProblem> {
    entry
        .target
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(LockProblem::NoTarget { kind: entry.kind })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A lock holding `files` (sorted), for tests of every output format.
    pub(crate) fn lock_of(files: Vec<FileEntry>) -> Lock {
        Lock::of_files(files)
    }

    /// An entry of `kind` at `path`, root-owned, mode 0755 (dirs) or 0644.
    pub(crate) fn entry(path: &str, kind: FileKind) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            kind,
            mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
            package: Some("pkg".to_string()),
            ..implicit_root()
        }
    }

    /// A file entry whose digest and size are those of `content`.
    pub(crate) fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            size: content.len() as u64,
            digest: Some(blake3::hash(content).to_hex().to_string()),
            ..entry(path, FileKind::File)
        }
    }

    /// A symlink or hardlink entry at `path` pointing at `target`.
    pub(crate) fn link(path: &str, kind: FileKind, target: &str) -> FileEntry {
        FileEntry {
            target: Some(target.to_string()),
            mode: 0o777,
            ..entry(path, kind)
        }
    }

    fn problem(lock: &Lock) -> (String, LockProblem) {
        match Plan::new(lock) {
            Err(MaterialiseError::InvalidLock { path, problem }) => (path, problem),
            other => panic!("expected an invalid lock, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_lock_without_root_and_sorts_it() {
        let mut lock = lock_of(vec![
            entry("/usr", FileKind::Dir),
            file("/usr/b", b"b"),
            link("/usr/a", FileKind::Hardlink, "/usr/b"),
        ]);
        lock.files.reverse();
        let plan = Plan::new(&lock).unwrap();
        let paths: Vec<_> = plan.items.iter().map(|i| i.entry.path.as_str()).collect();
        assert_eq!(paths, ["/usr", "/usr/a", "/usr/b"]);
        assert!(matches!(
            plan.items[1].body,
            Body::Hardlink { target: 2, .. }
        ));
        assert_eq!(plan.root.mode, 0o755);
        assert_eq!(plan.files().len(), 1);
        assert_eq!(plan.content_bytes(), 1);
    }

    #[test]
    fn refuses_paths_that_are_not_normalised() {
        for bad in ["/usr/../etc", "/usr/./x", "/usr//x", "/usr/", "usr"] {
            let lock = lock_of(vec![entry("/usr", FileKind::Dir), file(bad, b"x")]);
            let (path, problem) = problem(&lock);
            assert_eq!(path, bad);
            let expected = if bad == "usr" {
                LockProblem::NotAbsolute
            } else {
                LockProblem::NotNormalised
            };
            assert_eq!(problem, expected, "{bad}");
        }
    }

    #[test]
    fn refuses_writing_through_a_symlink_parent() {
        let lock = lock_of(vec![
            entry("/etc", FileKind::Dir),
            link("/lib", FileKind::Symlink, "/etc"),
            file("/lib/x", b"x"),
        ]);
        assert_eq!(
            problem(&lock),
            (
                "/lib/x".to_string(),
                LockProblem::ParentNotDir {
                    parent: "/lib".to_string(),
                    kind: FileKind::Symlink
                }
            )
        );
    }

    #[test]
    fn refuses_missing_parents_and_bad_hardlinks() {
        let lock = lock_of(vec![file("/usr/x", b"x")]);
        assert!(matches!(problem(&lock).1, LockProblem::NoParent { parent } if parent == "/usr"));

        let lock = lock_of(vec![link("/x", FileKind::Hardlink, "/etc/shadow")]);
        assert!(matches!(
            problem(&lock).1,
            LockProblem::LinkTargetMissing { .. }
        ));

        let lock = lock_of(vec![
            link("/s", FileKind::Symlink, "/x"),
            link("/x", FileKind::Hardlink, "/s"),
        ]);
        assert!(matches!(
            problem(&lock).1,
            LockProblem::LinkTargetNotFile {
                kind: FileKind::Symlink,
                ..
            }
        ));
    }

    #[test]
    fn refuses_bad_fields() {
        let mut no_digest = file("/x", b"x");
        no_digest.digest = None;
        assert_eq!(problem(&lock_of(vec![no_digest])).1, LockProblem::NoDigest);

        let mut bad_digest = file("/x", b"x");
        bad_digest.digest = Some("zz".to_string());
        assert!(matches!(
            problem(&lock_of(vec![bad_digest])).1,
            LockProblem::BadDigest { .. }
        ));

        let mut caps_on_dir = entry("/d", FileKind::Dir);
        caps_on_dir.caps = Some("00".to_string());
        assert!(matches!(
            problem(&lock_of(vec![caps_on_dir])).1,
            LockProblem::CapsOnKind { .. }
        ));

        let mut bad_caps = file("/x", b"x");
        bad_caps.caps = Some("xyz".to_string());
        assert!(matches!(
            problem(&lock_of(vec![bad_caps])).1,
            LockProblem::BadCaps { .. }
        ));

        let mut link_caps = link("/a", FileKind::Hardlink, "/b");
        link_caps.caps = Some("01".to_string());
        assert!(matches!(
            problem(&lock_of(vec![link_caps, file("/b", b"b")])).1,
            LockProblem::LinkCapsDiffer { .. }
        ));

        let no_device = entry("/null", FileKind::Char);
        assert!(matches!(
            problem(&lock_of(vec![no_device])).1,
            LockProblem::BadDevice { .. }
        ));

        let mut mode = file("/x", b"x");
        mode.mode = 0o100644;
        assert!(matches!(
            problem(&lock_of(vec![mode])).1,
            LockProblem::BadMode { .. }
        ));

        let mut nul = file("/x", b"x");
        nul.user = "ro\0ot".to_string();
        assert_eq!(
            problem(&lock_of(vec![nul])).1,
            LockProblem::Nul { field: "user" }
        );

        let mut origin = file("/x", b"x");
        origin.origin = Some("/../etc/shadow".to_string());
        assert!(matches!(
            problem(&lock_of(vec![origin])).1,
            LockProblem::BadOrigin { .. }
        ));

        let root = file("/", b"");
        assert!(matches!(
            problem(&lock_of(vec![root])).1,
            LockProblem::RootNotDir { .. }
        ));

        let dup = lock_of(vec![file("/x", b"x"), file("/x", b"y")]);
        assert_eq!(problem(&dup), ("/x".to_string(), LockProblem::Duplicate));
    }
}
