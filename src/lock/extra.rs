//! The entries `hostfile` and `overlay` statements add to a lock, why one is refused, and
//! how they are laid over the packages' tree ([`Layers`]). Reading the host files, folders
//! and tarballs they name is the compile's business (`compile::extra`): this module does
//! no I/O.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::path::PathBuf;

use super::{FileEntry, FileKind};
use crate::archive::Problem;
use crate::excerpt::excerpt;

/// Entries for one or more statements and the contents of their regular files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// Entries in statement order; a later entry at the same path replaces an earlier one.
    pub entries: Vec<FileEntry>,
    /// The bytes of every regular file among `entries`, to store in the blob store.
    pub blobs: Vec<Vec<u8>>,
}

/// The statement an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `hostfile GLOB`.
    Hostfile(String),
    /// `overlay PATH` (as resolved against the group file).
    Overlay(PathBuf),
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Hostfile(glob) => write!(f, "hostfile `{}`", excerpt(glob)),
            Statement::Overlay(path) => write!(f, "overlay {}", path.display()),
        }
    }
}

/// Why one entry of a hostfile match or an overlay is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// What any entry of an archive or a folder may be refused for: its name, its place
    /// in the tree it is read with, its header.
    #[error(transparent)]
    Entry(#[from] Problem),
    /// A literal directory of a hostfile glob is a symlink on the host.
    #[error("is a symlink on the host; name the directory it points to instead")]
    SymlinkInGlob,
    /// A literal directory of a hostfile glob is not a directory on the host.
    #[error("is not a directory on the host")]
    NotADirectory,
    /// Devices, sockets and fifos are refused on disk (they are only data in a tarball).
    #[error("is a {0}; only files, directories and symlinks are taken from disk")]
    Special(&'static str),
    /// A directory would replace a symlink of the lock (merged /usr's `/bin -> usr/bin`),
    /// cutting off everything the link leads to.
    #[error(
        "is a directory, which would replace the symlink {} -> {} of the tree",
        excerpt(.path),
        excerpt(.target)
    )]
    DirOverSymlink {
        /// The symlink's path.
        path: String,
        /// Its link text.
        target: String,
    },
    /// Something other than a directory would replace a directory of the tree that
    /// other entries are in.
    #[error("is a {kind}, which would replace a directory of the tree that other entries are in")]
    ReplacesTreeDirectory {
        /// What the entry is.
        kind: FileKind,
    },
    /// An entry lies below a symlink or file that the tree (the packages or an earlier
    /// statement) has at an ancestor.
    #[error("would be written through {}, a {kind} of the tree", excerpt(.ancestor))]
    ThroughTree {
        /// The ancestor path.
        ancestor: String,
        /// What it is.
        kind: FileKind,
    },
}

/// Why a file is taken for a secret of the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Secret {
    /// Named like a file where a Debian system keeps secrets.
    #[error("it holds {0}")]
    Named(&'static str),
    /// Others may not read it.
    #[error("others may not read it (mode {0:04o})")]
    Private(u32),
}

/// A hostfile or overlay statement cannot be turned into entries.
#[derive(Debug, thiserror::Error)]
pub enum ExtraError {
    /// The glob does not compile.
    #[error("hostfile `{glob}` is not a valid glob: {message}")]
    BadGlob {
        /// The glob as written.
        glob: String,
        /// What globset said.
        message: String,
    },
    /// The glob matches no path under the sysroot.
    #[error("hostfile `{glob}` matches nothing under {}", sysroot.display())]
    NoMatch {
        /// The glob as written.
        glob: String,
        /// The host root searched.
        sysroot: PathBuf,
    },
    /// The overlay path is neither a folder nor a tarball with a known extension.
    #[error(
        "overlay {}: not a folder or a tarball (.tar, .tar.gz, .tgz, .tar.xz, .tar.zst)",
        path.display()
    )]
    NotAnOverlay {
        /// The overlay path.
        path: PathBuf,
    },
    /// A host file or folder cannot be examined or read.
    #[error("{statement}: cannot read {}: {source}", path.display())]
    Io {
        /// The statement being compiled.
        statement: Statement,
        /// The host path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The tarball cannot be decoded (corrupt, truncated, bad compression).
    #[error("{statement}: cannot read the tarball {}: {source}", after_entry(.after.as_deref()))]
    Tar {
        /// The statement being compiled.
        statement: Statement,
        /// The last entry read in full, if any.
        after: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// A file the statement would copy is a secret, and the statement does not say it
    /// may take secrets (`secret=#true`).
    #[error("{statement} would copy {path}, a secret: {why}")]
    Secret {
        /// The statement being compiled.
        statement: Statement,
        /// The file: its path under the sysroot (hostfile) or on disk (folder overlay).
        path: String,
        /// Why it is taken for a secret.
        why: Secret,
    },
    /// One entry is refused.
    #[error("{statement}: entry `{}` {reason}", excerpt(.entry))]
    Refused {
        /// The statement being compiled.
        statement: Statement,
        /// The entry: its path in the appliance, or its raw name in a tarball.
        entry: String,
        /// Why.
        reason: Refusal,
    },
}

fn after_entry(after: Option<&str>) -> String {
    match after {
        Some(entry) => format!("after entry `{entry}`"),
        None => "at its first entry".to_string(),
    }
}

/// The kind and link text of every path the lock holds so far, so that statements can be
/// layered over the packages and each other.
#[derive(Debug, Default)]
pub struct Layers {
    /// Sorted, so that what lies below a path is one range.
    paths: BTreeMap<String, (FileKind, Option<String>)>,
}

impl Layers {
    /// The layers starting from `entries` (the packages' and the generated system
    /// files').
    pub fn new<'e>(entries: impl IntoIterator<Item = &'e FileEntry>) -> Layers {
        let mut layers = Layers::default();
        layers.record(entries);
        layers
    }

    fn record<'e>(&mut self, entries: impl IntoIterator<Item = &'e FileEntry>) {
        for e in entries {
            self.paths
                .insert(e.path.clone(), (e.kind, e.target.clone()));
        }
    }

    /// Whether some path lies below `path`.
    fn has_below(&self, path: &str) -> bool {
        let below = format!("{path}/");
        (self.paths.range(below.clone()..).next()).is_some_and(|(p, _)| p.starts_with(&below))
    }

    /// Lays `extra`, made by `statement`, over what is there. Refused, since the tree
    /// could no longer be written:
    /// - a directory in place of a symlink: the overlay's `bin/` would turn merged
    ///   /usr's `/bin` link into a directory holding only the overlay's files;
    /// - anything else in place of a directory that other entries are in (a symlink
    ///   `usr -> /etc` would hang the packages' files below a link to anywhere);
    /// - an entry below a symlink or file of the tree, unless `extra` makes that
    ///   ancestor a directory itself (`bin/tool` would be written through `/bin`).
    pub fn add(&mut self, statement: &Statement, extra: &Extra) -> Result<(), ExtraError> {
        let refused = |e: &FileEntry, reason| ExtraError::Refused {
            statement: statement.clone(),
            entry: e.path.clone(),
            reason,
        };
        let own_dirs: HashSet<&str> = (extra.entries.iter())
            .filter(|e| e.kind == FileKind::Dir)
            .map(|e| e.path.as_str())
            .collect();
        for e in &extra.entries {
            if let Some((FileKind::Symlink, target)) = self.paths.get(&e.path)
                && e.kind == FileKind::Dir
            {
                let target = target.clone().unwrap_or_default();
                let path = e.path.clone();
                return Err(refused(e, Refusal::DirOverSymlink { path, target }));
            }
            // Generated files come without their parent directories' entries: what
            // lies below the path is what counts.
            if e.kind != FileKind::Dir && self.has_below(&e.path) {
                return Err(refused(e, Refusal::ReplacesTreeDirectory { kind: e.kind }));
            }
            let through = (e.path.match_indices('/').map(|(i, _)| &e.path[..i]))
                .filter(|a| !a.is_empty() && !own_dirs.contains(a))
                .find_map(|a| match self.paths.get(a) {
                    Some((kind, _)) if *kind != FileKind::Dir => Some((a, *kind)),
                    _ => None,
                });
            if let Some((ancestor, kind)) = through {
                let ancestor = ancestor.to_string();
                return Err(refused(e, Refusal::ThroughTree { ancestor, kind }));
            }
        }
        self.record(&extra.entries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_may_not_write_through_or_cut_off_the_tree() {
        // Found by the hostile tests: both got into a lock that only the materialiser
        // then refused, with no word of the overlay.
        let mut bin = FileEntry::directory("/bin");
        bin.kind = FileKind::Symlink;
        bin.target = Some("usr/bin".into());
        let tree = [
            FileEntry::directory("/usr"),
            FileEntry::directory("/usr/bin"),
            FileEntry {
                kind: FileKind::File,
                ..FileEntry::directory("/usr/bin/bash")
            },
            bin,
        ];
        let statement = Statement::Overlay("o.tar".into());
        let extra = |entries: Vec<FileEntry>| Extra {
            entries,
            blobs: vec![],
        };
        let file = |path: &str| FileEntry {
            kind: FileKind::File,
            ..FileEntry::directory(path)
        };
        let link = |path: &str, target: &str| FileEntry {
            kind: FileKind::Symlink,
            target: Some(target.into()),
            ..FileEntry::directory(path)
        };
        let refused = |entries| {
            let mut layers = Layers::new(&tree);
            layers
                .add(&statement, &extra(entries))
                .unwrap_err()
                .to_string()
        };
        let err = refused(vec![file("/bin/tool")]);
        assert!(
            err.contains("overlay o.tar: entry `/bin/tool` would be written through /bin, a symlink of the tree"),
            "{err}"
        );
        let err = refused(vec![file("/usr/bin/bash/x")]);
        assert!(
            err.contains("through /usr/bin/bash, a file of the tree"),
            "{err}"
        );
        let err = refused(vec![link("/usr", "/etc")]);
        assert!(
            err.contains("entry `/usr` is a symlink, which would replace a directory of the tree that other entries are in"),
            "{err}"
        );
        // What stays legal: a file replacing a file or an empty directory, a symlink
        // replacing a symlink, an entry below a file the statement makes a directory.
        let mut layers = Layers::new(tree.iter().chain(&[FileEntry::directory("/srv")]));
        let fine = vec![
            file("/usr/bin/bash"),
            file("/srv"),
            link("/bin", "usr/local/bin"),
            FileEntry::directory("/srv"),
            file("/srv/x"),
        ];
        layers.add(&statement, &extra(fine)).unwrap();
        // What the layers now hold counts for the next statement.
        let err = layers
            .add(&statement, &extra(vec![file("/srv/x/y")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("through /srv/x, a file of the tree"), "{err}");
    }

    #[test]
    fn a_directory_may_not_replace_a_symlink() {
        let mut bin = FileEntry::directory("/bin");
        bin.kind = FileKind::Symlink;
        bin.target = Some("usr/bin".into());
        let mut layers = Layers::new(&[FileEntry::directory("/"), bin]);
        let statement = Statement::Overlay("o".into());
        let file = FileEntry {
            kind: FileKind::File,
            ..FileEntry::directory("/bin")
        };
        let over_link = Extra {
            entries: vec![file],
            blobs: vec![],
        };
        layers.add(&statement, &over_link).unwrap();
        let dir = Extra {
            entries: vec![FileEntry::directory("/bin")],
            blobs: vec![],
        };
        // The file replaced the link, so a directory may now replace the file.
        layers.add(&statement, &dir).unwrap();

        let mut lib = FileEntry::directory("/lib");
        lib.kind = FileKind::Symlink;
        lib.target = Some("usr/lib".into());
        let mut layers = Layers::new(&[lib]);
        let dir = Extra {
            entries: vec![FileEntry::directory("/lib")],
            blobs: vec![],
        };
        let err = layers.add(&statement, &dir).unwrap_err().to_string();
        assert!(
            err.contains("overlay o: entry `/lib` is a directory, which would replace the symlink /lib -> usr/lib"),
            "{err}"
        );
    }
}
