//! The lock: every package at one exact version and every file with its digest.
//!
//! A lock is pure data. Its canonical serialisation is deterministic JSON (fields in
//! declaration order, packages and files sorted), and its id is the BLAKE3 of that.

mod assemble;
mod backend;
mod container;
pub mod extra;
mod merkle;
pub mod path;
mod present;

mod trim;
mod why;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use assemble::{AssembleError, Exclusion, Parts, Subtrees, assemble, has_wildcard};
pub use backend::Backend;
pub use container::Container;
pub use merkle::merkle_root;
pub use present::{file_json, lock_json};
pub use trim::{TrimError, trim};
pub use why::{Chain, NotInLock, Why, why};

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

/// What a package marks a file as besides its content: documentation or a license.
/// Directories are never marked, so a kept license never loses its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Documentation {
    /// rpm's `%doc` (rpmbuild also marks manual and info pages so); on Debian, what
    /// policy puts below `/usr/share/doc`, `/usr/share/man` and `/usr/share/info`.
    Doc,
    /// rpm's `%license`; on Debian, a package's `/usr/share/doc/NAME/copyright`.
    License,
}

impl Documentation {
    /// Both marks, to map stored text back without trusting it.
    pub const ALL: [Documentation; 2] = [Documentation::Doc, Documentation::License];

    /// The lower-case name used in the lock and in the repository.
    pub fn as_str(self) -> &'static str {
        match self {
            Documentation::Doc => "doc",
            Documentation::License => "license",
        }
    }

    /// The mark Debian policy gives the entry at `path` of `kind`: dpkg records none, so
    /// where a file lies is what says it is documentation.
    pub fn of_debian_path(path: &str, kind: FileKind) -> Option<Documentation> {
        if kind == FileKind::Dir {
            return None;
        }
        if let Some(rest) = path.strip_prefix("/usr/share/doc/") {
            let license = rest
                .split_once('/')
                .is_some_and(|(_, name)| name == "copyright");
            return Some(if license {
                Documentation::License
            } else {
                Documentation::Doc
            });
        }
        let documentation = ["/usr/share/man/", "/usr/share/info/"];
        (documentation.iter().any(|dir| path.starts_with(dir))).then_some(Documentation::Doc)
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
    /// The modification time the package database records for a regular file (rpm's
    /// `FILEMTIMES`), so that `rpm -V` finds the output as the package left it; `None`
    /// for everything else, which outputs stamp with the run's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u32>,
    /// Whether the package marks the file as documentation or a license text, which
    /// `exclude docs=#true` and `exclude licenses=#true` drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<Documentation>,
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
            mtime: None,
            documentation: None,
        }
    }

    /// The mtime an output gives this entry: the package's, else `run`'s (the
    /// `SOURCE_DATE_EPOCH` of the materialise).
    pub fn mtime_or(&self, run: u64) -> u64 {
        self.mtime.map_or(run, u64::from)
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
    /// Pulled in by a `Depends` or `Pre-Depends` (rpm: a `Requires`) of another package.
    Dependency {
        /// The name of the package that pulled it in first.
        of: String,
        /// The names of every other locked package that depends on it, sorted. Left out
        /// of the canonical form when empty, so locks stored before it existed load and
        /// keep their ids.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        also: Vec<String>,
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
            Reason::Dependency { of, also } if also.is_empty() => write!(f, "dependency of {of}"),
            Reason::Dependency { of, also } => {
                write!(f, "dependency of {of}, {}", also.join(", "))
            }
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
    /// The rest of a container's config (`env`, `run-as`, `workdir`, `expose`, `label`,
    /// `entrypoint`); left out of the canonical form when empty.
    #[serde(default, skip_serializing_if = "Container::is_empty")]
    pub container: Container,
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
            container: Container::default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_documentation_is_where_policy_puts_it() {
        let mark = |path: &str| Documentation::of_debian_path(path, FileKind::File);
        assert_eq!(mark("/usr/share/doc/bash/README"), Some(Documentation::Doc));
        assert_eq!(
            mark("/usr/share/doc/bash/copyright"),
            Some(Documentation::License)
        );
        // Only a package's own copyright file is its license.
        assert_eq!(
            mark("/usr/share/doc/bash/x/copyright"),
            Some(Documentation::Doc)
        );
        assert_eq!(
            mark("/usr/share/man/man1/bash.1.gz"),
            Some(Documentation::Doc)
        );
        assert_eq!(
            mark("/usr/share/info/bash.info.gz"),
            Some(Documentation::Doc)
        );
        assert_eq!(mark("/usr/share/doc-base/bash"), None);
        assert_eq!(mark("/usr/bin/bash"), None);
        let folder = Documentation::of_debian_path("/usr/share/doc/bash", FileKind::Dir);
        assert_eq!(folder, None);
    }
}
