//! The lock: every package at one exact version and every file with its digest.
//!
//! A lock is pure data. Its canonical serialisation is deterministic JSON (fields in
//! declaration order, packages and files sorted), and its id is the BLAKE3 of that.

mod assemble;
pub mod extra;
mod merkle;
pub mod path;
pub mod scan;
mod trim;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::source::backend::Backend;

pub use assemble::{AssembleError, Parts, Subtrees, assemble};
pub use merkle::merkle_root;
pub use trim::{TrimError, trim};

/// The kind of a filesystem entry in a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file with content.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; `target` holds the link text.
    Symlink,
    /// A hard link to another regular file of the lock; `target` holds that path.
    Hardlink,
    /// A character device; `device` holds (major, minor).
    Char,
    /// A block device; `device` holds (major, minor).
    Block,
    /// A named pipe.
    Fifo,
}

impl FileKind {
    /// The kind the file-type bits of a `st_mode` (`mode & 0o170000`) name, as archives
    /// and rpm headers store them; `None` for a socket or nothing known. A hard link is
    /// never one: it is a file that shares its inode.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o020000 => FileKind::Char,
            0o060000 => FileKind::Block,
            0o010000 => FileKind::Fifo,
            _ => return None,
        })
    }

    /// The lower-case name used in the lock and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Hardlink => "hardlink",
            FileKind::Char => "char",
            FileKind::Block => "block",
            FileKind::Fifo => "fifo",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One path of the appliance tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute path inside the appliance, normalised, e.g. `/usr/bin/bash`.
    pub path: String,
    /// What kind of entry this is.
    pub kind: FileKind,
    /// Permission bits including set-id and sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Owner name from the source system's passwd (empty when unknown).
    pub user: String,
    /// Group name from the source system's group file (empty when unknown).
    pub group: String,
    /// Size in bytes of a regular file's content; 0 otherwise.
    pub size: u64,
    /// BLAKE3 of a regular file's content, lower-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Symlink text, or the path a hardlink points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Device numbers (major, minor) of a char or block device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<(u32, u32)>,
    /// The raw `security.capability` xattr, lower-case hex (e.g. ping's `cap_net_raw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<String>,
    /// The package that owns the path; `None` for group files and synthesised entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Whether the package declares the path a conffile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub conffile: bool,
    /// Where the bytes live on the host when that differs from `path` (a dpkg diversion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl FileEntry {
    /// A root-owned `0755` directory with no package: the parent of a group file that no
    /// package provides, or a test fixture to build on.
    pub fn directory(path: &str) -> FileEntry {
        FileEntry {
            path: path.to_string(),
            kind: FileKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: "root".to_string(),
            group: "root".to_string(),
            size: 0,
            digest: None,
            target: None,
            device: None,
            caps: None,
            package: None,
            conffile: false,
            origin: None,
        }
    }
}

/// Why a package is in a lock (Conary's reason strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Reason {
    /// Named by a `package` statement of `group`; `via` is the include chain from the
    /// compiled group down to `group` (empty when named in the compiled group itself).
    Named {
        /// The group whose file names the package.
        group: String,
        /// Groups that included it, outermost first.
        via: Vec<String>,
    },
    /// Pulled in by a `Depends` or `Pre-Depends` of another package.
    Dependency {
        /// The depending package's name.
        of: String,
    },
    /// `Essential: yes`: Debian packages may rely on it without declaring it.
    Essential,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Named { group, via } if via.is_empty() => write!(f, "named in group {group}"),
            Reason::Named { group, via } => {
                write!(
                    f,
                    "named in group {group}, included through {}",
                    via.join(" -> ")
                )
            }
            Reason::Dependency { of } => write!(f, "dependency of {of}"),
            Reason::Essential => f.write_str("essential"),
        }
    }
}

/// A package pinned by a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedPackage {
    /// Package name.
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Debian architecture.
    pub arch: String,
    /// Where the package came from (`installed`, `pool`, `aptlist`).
    pub source: String,
    /// Why it is in the lock.
    pub reason: Reason,
}

/// What a lock was compiled from, so a stale lock can be detected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Inputs {
    /// Each group file read (workspace-relative path) with its BLAKE3.
    pub group_files: Vec<(String, String)>,
    /// The version of the resolver rules that produced the lock.
    pub resolver: u32,
    /// The package manager whose packages the lock holds; left out for dpkg.
    #[serde(default, skip_serializing_if = "Backend::is_dpkg")]
    pub backend: Backend,
}

/// A compiled group for one flavor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Group name.
    pub group: String,
    /// Group version (`1.0`).
    pub version: String,
    /// Canonical flavor string, `[!kernel,openvz is: x86_64]`.
    pub flavor: String,
    /// What it was compiled from.
    pub inputs: Inputs,
    /// The command for container outputs (`cmd` in the group).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// The kernel modules an image of the lock loads at boot (`module` statements), in
    /// first-mention order; their dependencies are found when the image is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// Packages, sorted by name then arch.
    pub packages: Vec<LockedPackage>,
    /// Files, sorted by path.
    pub files: Vec<FileEntry>,
}

#[cfg(test)]
impl Lock {
    /// A lock of group `test` holding just `files` (sorted), for tests of what reads locks.
    pub(crate) fn of_files(mut files: Vec<FileEntry>) -> Lock {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Lock {
            group: "test".to_string(),
            version: "1.0".to_string(),
            flavor: "[is: x86_64]".to_string(),
            inputs: Inputs::default(),
            cmd: Vec::new(),
            modules: Vec::new(),
            packages: Vec::new(),
            files,
        }
    }
}

impl Lock {
    /// Puts packages and files in canonical order. Call before serialising or hashing.
    pub fn normalise(&mut self) {
        self.packages
            .sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// The canonical serialisation: compact JSON in a fixed field order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serialising plain structs, strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The lock id: BLAKE3 of the canonical serialisation, lower-case hex.
    pub fn id(&self) -> String {
        blake3::hash(&self.canonical_bytes()).to_hex().to_string()
    }

    /// The Merkle root of the file tree (see [`merkle_root`]).
    pub fn merkle_root(&self) -> String {
        merkle_root(&self.files)
    }

    /// The file entry at `path`, if any (files are sorted, so this is a binary search).
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The human address of the lock at a revision: `web=1.0-3[xen is: x86_64]`.
    pub fn address(&self, revision: u32) -> String {
        format!(
            "{}={}-{}{}",
            self.group, self.version, revision, self.flavor
        )
    }
}
