//! Putting a lock together: package entries, what `exclude` leaves out, and group files.

use std::collections::{BTreeMap, HashMap};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::{Container, Documentation, FileEntry, FileKind, Inputs, Lock, LockedPackage};
use crate::excerpt::excerpt;

/// A lock could not be assembled from its parts.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// An `exclude` or `paths` pattern is not a valid glob.
    #[error("pattern `{pattern}` is not a valid glob: {message}")]
    BadGlob {
        /// The pattern as written in the group.
        pattern: String,
        /// What globset said.
        message: String,
    },
    /// A group file would sit below a path that is not a directory in the lock.
    #[error(
        "file {} cannot be added: its parent {} is a {kind} in the lock",
        excerpt(.path),
        excerpt(.parent)
    )]
    ParentNotDir {
        /// The group file's path.
        path: String,
        /// The offending ancestor.
        parent: String,
        /// What the ancestor is.
        kind: FileKind,
    },
}

/// Everything a lock is made of, before it is put in canonical form.
pub struct Parts {
    /// Group name.
    pub group: String,
    /// Group version.
    pub version: String,
    /// Canonical flavor string.
    pub flavor: String,
    /// What the lock was compiled from.
    pub inputs: Inputs,
    /// Container command.
    pub cmd: Vec<String>,
    /// The rest of the container config.
    pub container: Container,
    /// Kernel modules images load at boot.
    pub modules: Vec<String>,
    /// The chosen packages with their reasons.
    pub packages: Vec<LockedPackage>,
    /// Entries of the chosen packages (one per path, sorted, parents present).
    pub package_entries: Vec<FileEntry>,
    /// What the group's `exclude` statements leave out of the package entries.
    pub excludes: Exclusion,
    /// Group `file` entries; they replace package entries at the same path.
    pub group_files: Vec<FileEntry>,
}

/// Builds the lock: applies excludes, keeps hard links pointing at kept files, adds group
/// files (with root-owned parent directories where none exist), and normalises.
pub fn assemble(parts: Parts) -> Result<Lock, AssembleError> {
    let excludes = &parts.excludes;
    let mut kept: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut excluded: HashMap<String, FileEntry> = HashMap::new();
    for entry in parts.package_entries {
        if excludes.drops(&entry) {
            excluded.insert(entry.path.clone(), entry);
        } else {
            kept.insert(entry.path.clone(), entry);
        }
    }
    relink_orphaned_hardlinks(&mut kept, &excluded);
    for file in parts.group_files {
        add_parents(&mut kept, &file.path)?;
        kept.insert(file.path.clone(), file);
    }
    let mut lock = Lock {
        group: parts.group,
        version: parts.version,
        flavor: parts.flavor,
        inputs: parts.inputs,
        cmd: parts.cmd,
        container: parts.container,
        modules: parts.modules,
        packages: parts.packages,
        files: kept.into_values().collect(),
    };
    lock.normalise();
    Ok(lock)
}

/// What a group leaves out of its tree: the paths its `exclude` globs match (a
/// directory with its subtree) and the files marked as documentation it names.
pub struct Exclusion {
    paths: Subtrees,
    marks: Vec<Documentation>,
    /// Whether directories stay, empty of what is left out: see
    /// [`Exclusion::keeping_directories`].
    directories_stay: bool,
}

impl Exclusion {
    /// The exclusion of `globs` and of files with one of `marks`; a bad glob is an error
    /// naming it.
    pub fn new(globs: &[String], marks: Vec<Documentation>) -> Result<Exclusion, AssembleError> {
        Ok(Exclusion {
            paths: Subtrees::new(globs)?,
            marks,
            directories_stay: false,
        })
    }

    /// This exclusion, but every directory stays (what it held is left out): a tree
    /// configured before the exclusion is applied to it, so that a script may still
    /// make a link there (update-alternatives puts `java.1.gz` in
    /// `/usr/share/man/man1`, and fails when the folder is gone).
    pub fn keeping_directories(self) -> Exclusion {
        Exclusion {
            directories_stay: true,
            ..self
        }
    }

    /// Whether `entry` is left out.
    pub fn drops(&self, entry: &FileEntry) -> bool {
        if self.directories_stay && entry.kind == FileKind::Dir {
            return false;
        }
        self.drops_path(&entry.path)
            || (entry.documentation).is_some_and(|mark| self.marks.contains(&mark))
    }

    /// Whether whatever lies at `path` is left out, whatever it is marked.
    pub fn drops_path(&self, path: &str) -> bool {
        self.paths.matches(path)
    }
}

/// Path globs where a matching directory takes its subtree: a group's `exclude` globs,
/// and its `paths`.
pub struct Subtrees(GlobSet);

impl Subtrees {
    /// Compiles the globs; a bad one is an error naming it.
    pub fn new(patterns: &[String]) -> Result<Subtrees, AssembleError> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            let glob = Glob::new(pattern).map_err(|e| AssembleError::BadGlob {
                pattern: pattern.clone(),
                message: e.kind().to_string(),
            })?;
            builder.add(glob);
        }
        builder
            .build()
            .map(Subtrees)
            .map_err(|e| AssembleError::BadGlob {
                pattern: patterns.join(" "),
                message: e.to_string(),
            })
    }

    /// Whether `path` or one of its ancestors matches (an excluded directory takes
    /// everything below it, or its children would be orphans).
    pub fn matches(&self, path: &str) -> bool {
        !self.0.is_empty() && subtree_roots(path).any(|p| self.0.is_match(p))
    }

    /// The positions of the patterns that `path` or one of its ancestors matches, in
    /// order.
    pub fn which(&self, path: &str) -> Vec<usize> {
        let mut found: Vec<usize> = subtree_roots(path)
            .flat_map(|p| self.0.matches(p))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// `path` and its ancestors, nearest first, without `/`: the subtrees it lies in.
fn subtree_roots(path: &str) -> impl Iterator<Item = &str> {
    let own = (path != "/").then_some(path);
    own.into_iter().chain(super::path::ancestors(path))
}

/// Whether a component of a glob holds glob syntax (a wildcard, a class, an
/// alternation or an escape), rather than naming one entry.
pub fn has_wildcard(component: &str) -> bool {
    component.contains(['*', '?', '[', '{', '\\'])
}

/// When the first path of a hard-link set is excluded, the first kept link becomes the
/// file and the others point at it, so no kept entry links to something absent.
fn relink_orphaned_hardlinks(
    kept: &mut BTreeMap<String, FileEntry>,
    excluded: &HashMap<String, FileEntry>,
) {
    let mut promoted: HashMap<String, String> = HashMap::new();
    let orphans: Vec<String> = kept
        .values()
        .filter(|e| e.kind == FileKind::Hardlink)
        .filter(|e| e.target.as_ref().is_some_and(|t| excluded.contains_key(t)))
        .map(|e| e.path.clone())
        .collect();
    for path in orphans {
        let Some(entry) = kept.get_mut(&path) else {
            continue;
        };
        let Some(old_target) = entry.target.clone() else {
            continue;
        };
        match promoted.get(&old_target) {
            Some(new_target) => entry.target = Some(new_target.clone()),
            None => {
                if let Some(original) = excluded.get(&old_target) {
                    entry.kind = FileKind::File;
                    entry.size = original.size;
                    entry.digest = original.digest.clone();
                    entry.origin = original.origin.clone();
                    entry.target = None;
                    promoted.insert(old_target, path);
                }
            }
        }
    }
}

fn add_parents(kept: &mut BTreeMap<String, FileEntry>, path: &str) -> Result<(), AssembleError> {
    let mut ancestors = Vec::new();
    let mut current = path;
    while let Some(i) = current.rfind('/') {
        current = if i == 0 { "/" } else { &current[..i] };
        ancestors.push(current.to_string());
        if current == "/" {
            break;
        }
    }
    for parent in ancestors.into_iter().rev() {
        match kept.get(&parent) {
            Some(entry) if entry.kind == FileKind::Dir => {}
            Some(entry) => {
                return Err(AssembleError::ParentNotDir {
                    path: path.to_string(),
                    parent,
                    kind: entry.kind,
                });
            }
            None => {
                kept.insert(parent.clone(), FileEntry::directory(&parent));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, digest: &str) -> FileEntry {
        FileEntry {
            kind: FileKind::File,
            mode: 0o644,
            size: 3,
            digest: Some(digest.into()),
            package: Some("pkg".into()),
            ..FileEntry::directory(path)
        }
    }

    fn parts(entries: Vec<FileEntry>, excludes: &[&str], group_files: Vec<FileEntry>) -> Parts {
        Parts {
            group: "g".into(),
            version: "1".into(),
            flavor: "[is: x86_64]".into(),
            inputs: Inputs::default(),
            cmd: vec![],
            container: Container::default(),
            modules: vec![],
            packages: vec![],
            package_entries: entries,
            excludes: Exclusion::new(
                &excludes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                Vec::new(),
            )
            .unwrap(),
            group_files,
        }
    }

    fn paths(lock: &Lock) -> Vec<&str> {
        lock.files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn excluding_a_directory_takes_its_subtree() {
        let entries = vec![
            FileEntry::directory("/"),
            FileEntry::directory("/usr"),
            FileEntry::directory("/usr/share"),
            FileEntry::directory("/usr/share/doc"),
            FileEntry::directory("/usr/share/doc/bash"),
            file("/usr/share/doc/bash/README", "aa"),
            file("/usr/share/bashrc", "bb"),
        ];
        let lock = assemble(parts(entries.clone(), &["/usr/share/doc/*"], vec![])).unwrap();
        assert_eq!(
            paths(&lock),
            [
                "/",
                "/usr",
                "/usr/share",
                "/usr/share/bashrc",
                "/usr/share/doc"
            ]
        );
        // The tree a compile configures keeps the folders, for scripts to link into.
        let mut staging = parts(entries, &["/usr/share/doc/*"], vec![]);
        staging.excludes = staging.excludes.keeping_directories();
        assert_eq!(
            paths(&assemble(staging).unwrap()),
            [
                "/",
                "/usr",
                "/usr/share",
                "/usr/share/bashrc",
                "/usr/share/doc",
                "/usr/share/doc/bash"
            ]
        );
    }

    #[test]
    fn marks_drop_the_files_they_name_and_never_a_folder() {
        let marked = |path: &str, mark| FileEntry {
            documentation: Some(mark),
            ..file(path, "aa")
        };
        let entries = vec![
            FileEntry::directory("/"),
            FileEntry::directory("/doc"),
            marked("/doc/README", Documentation::Doc),
            marked("/doc/COPYING", Documentation::License),
            file("/doc/keep", "bb"),
        ];
        let with = |marks: Vec<Documentation>| {
            let mut parts = parts(entries.clone(), &[], vec![]);
            parts.excludes = Exclusion::new(&[], marks).unwrap();
            paths(&assemble(parts).unwrap()).join(" ")
        };
        assert_eq!(with(vec![]), "/ /doc /doc/COPYING /doc/README /doc/keep");
        assert_eq!(
            with(vec![Documentation::Doc]),
            "/ /doc /doc/COPYING /doc/keep"
        );
        assert_eq!(with(Documentation::ALL.to_vec()), "/ /doc /doc/keep");
    }

    #[test]
    fn hardlink_to_excluded_file_is_promoted() {
        let mut link_a = file("/usr/bin/b", "");
        link_a.kind = FileKind::Hardlink;
        link_a.digest = None;
        link_a.size = 0;
        link_a.target = Some("/usr/share/a".into());
        let mut link_b = link_a.clone();
        link_b.path = "/usr/bin/c".into();
        let entries = vec![
            FileEntry::directory("/"),
            FileEntry::directory("/usr"),
            FileEntry::directory("/usr/bin"),
            link_a,
            link_b,
            FileEntry::directory("/usr/share"),
            file("/usr/share/a", "cafe"),
        ];
        let lock = assemble(parts(entries, &["/usr/share/a"], vec![])).unwrap();
        let b = lock.file("/usr/bin/b").unwrap();
        assert_eq!(
            (b.kind, b.digest.as_deref(), b.size),
            (FileKind::File, Some("cafe"), 3)
        );
        let c = lock.file("/usr/bin/c").unwrap();
        assert_eq!(
            (c.kind, c.target.as_deref()),
            (FileKind::Hardlink, Some("/usr/bin/b"))
        );
    }

    #[test]
    fn group_files_replace_and_get_parents() {
        let entries = vec![FileEntry::directory("/"), file("/hostname", "old")];
        let mut hostname = file("/etc/hostname", "new");
        hostname.package = None;
        let replaced = file("/hostname", "new");
        let lock = assemble(parts(entries, &[], vec![hostname, replaced])).unwrap();
        assert_eq!(paths(&lock), ["/", "/etc", "/etc/hostname", "/hostname"]);
        assert_eq!(
            lock.file("/hostname").unwrap().digest.as_deref(),
            Some("new")
        );
        assert_eq!(lock.file("/etc").unwrap().mode, 0o755);
    }

    #[test]
    fn group_file_under_a_symlink_is_refused() {
        let mut link = FileEntry::directory("/bin");
        link.kind = FileKind::Symlink;
        link.target = Some("usr/bin".into());
        let entries = vec![FileEntry::directory("/"), link];
        let err = assemble(parts(entries, &[], vec![file("/bin/x", "aa")])).unwrap_err();
        assert!(
            err.to_string().contains("parent /bin is a symlink"),
            "{err}"
        );
    }

    #[test]
    fn bad_glob_is_named() {
        let err = Exclusion::new(&["/usr/[share".to_string()], vec![])
            .err()
            .unwrap();
        assert!(err.to_string().contains("/usr/[share"), "{err}");
    }
}
