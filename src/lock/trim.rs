//! `paths` trimming, smith's microcontainer idea: a tree cut down to the paths a group
//! names and what they need to run. That is the ELF interpreter and the shared
//! libraries each kept program links, found as the dynamic linker finds them (RPATH,
//! RUNPATH with `$ORIGIN`, the tree's `ld.so.conf` folders, the default folders), the
//! NSS modules glibc loads by name at run time, every symlink on the way to a kept
//! path and every parent folder.
//!
//! Entries no package owns (accounts, `/dev`, the machine files, the group's own
//! `file`, `hostfile` and `overlay` entries) stay, except dpkg's database, which would
//! describe packages whose files are gone; such a symlink stays when what it points at
//! does, and so does any symlink to a kept folder (`/bin -> usr/bin`).
//!
//! A glob names paths as the tree holds them, and also as its symlinked folders lead
//! it: with merged /usr, `/bin/bash` (Debian's own name) keeps `/usr/bin/bash` and the
//! `/bin` link. A glob that matches nothing either way is an error: it is a typo, or
//! names what no package of the tree has, and the tree would silently lack it.

use std::collections::{BTreeSet, HashMap};
use std::io;

use goblin::elf::Elf;

use super::path::ancestors;
use super::{AssembleError, FileEntry, FileKind, Lock, Subtrees, has_wildcard};

/// Why a tree could not be trimmed.
#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    /// A glob matches no path of the tree, as written or through the tree's symlinks.
    #[error("paths: `{glob}` matches nothing in the tree")]
    NoMatch {
        /// The glob's position among the globs trimmed to.
        index: usize,
        /// The glob.
        glob: String,
        /// Where a near miss would be: the deepest folder the glob's start leads to
        /// through the tree's symlinks (`/usr/bin` for `/bin/bsh`).
        folder: String,
        /// The name the glob gives next, which that folder lacks, when it is no
        /// wildcard (`bsh`).
        missing: Option<String>,
        /// The names in `folder`, when `missing` is one.
        names: Vec<String>,
    },
    /// A glob, or its form through the tree's symlinks, is not a valid glob.
    #[error(transparent)]
    Glob(#[from] AssembleError),
    /// A kept program links a library that no entry of the lock supplies.
    #[error("paths: {object} needs {library}, which the lock does not have (looked in {})", .searched.join(", "))]
    MissingLibrary {
        /// The program or library that needs it.
        object: String,
        /// The library's name as the program asks for it.
        library: String,
        /// The folders searched, in order.
        searched: Vec<String>,
    },
    /// A kept ELF file could not be parsed.
    #[error("paths: {path} looks like ELF but cannot be read as such: {reason}")]
    BadElf {
        /// The file.
        path: String,
        /// The parser's reason.
        reason: String,
    },
    /// A kept file's bytes could not be read.
    #[error("paths: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The system's error.
        source: io::Error,
    },
}

/// Folders the dynamic linker searches after the cache (glibc's trusted folders).
const DEFAULT_DIRS: &[&str] = &["/lib", "/usr/lib", "/lib64", "/usr/lib64"];

/// How many symlinks one path may pass through, as Linux allows (`ELOOP`).
const MAX_LINKS: usize = 40;

/// Trims `lock` to the paths `globs` name (absolute globs, a folder with its subtree)
/// and what they need; `content` gives a file entry's bytes. A glob that matches
/// nothing is an error naming its position in `globs`.
pub fn trim(
    lock: &mut Lock,
    globs: &[String],
    content: impl Fn(&FileEntry) -> io::Result<Vec<u8>>,
) -> Result<(), TrimError> {
    let tree = Tree::new(&lock.files);
    // Each glob as written, and as the tree's symlinked folders lead it; `owner[k]` is
    // the glob pattern `k` stands for.
    let walks: Vec<Walk> = globs.iter().map(|g| tree.through_links(g)).collect();
    let mut patterns = Vec::new();
    let mut owner = Vec::new();
    for (i, (glob, walk)) in globs.iter().zip(&walks).enumerate() {
        patterns.push(glob.clone());
        owner.push(i);
        if walk.glob != *glob {
            patterns.push(walk.glob.clone());
            owner.push(i);
        }
    }
    let paths = Subtrees::new(&patterns)?;
    let matching: Vec<Vec<usize>> = (lock.files.iter()).map(|e| paths.which(&e.path)).collect();
    let mut matched = vec![false; globs.len()];
    matching
        .iter()
        .flatten()
        .for_each(|&k| matched[owner[k]] = true);
    if let Some(index) = matched.iter().position(|m| !m) {
        return Err(tree.no_match(index, &globs[index], &walks[index]));
    }
    let search = tree.library_dirs(&content)?;
    let mut kept = vec![false; lock.files.len()];
    let mut queue: Vec<usize> = Vec::new();
    for (i, entry) in lock.files.iter().enumerate() {
        let named = !matching[i].is_empty();
        let unowned = entry.package.is_none()
            && entry.kind != FileKind::Symlink
            && !entry.path.starts_with("/var/lib/dpkg/");
        if named || unowned || is_nss(&entry.path) {
            queue.push(i);
        }
    }
    while let Some(i) = queue.pop() {
        if std::mem::replace(&mut kept[i], true) {
            continue;
        }
        let entry = &lock.files[i];
        match entry.kind {
            FileKind::Hardlink => {
                queue.extend(entry.target.as_deref().and_then(|t| tree.index(t)));
            }
            FileKind::Symlink => {
                let (links, found) = tree.resolve(&entry.path);
                queue.extend(links);
                queue.extend(found);
            }
            FileKind::File => {
                for needed in tree.needs(entry, &content, &search)? {
                    queue.extend(needed);
                }
            }
            _ => {}
        }
    }
    keep_parents(&tree, &mut kept);
    // A symlink to a kept folder (merged /usr's `/bin`) stays, and so does one no
    // package owns (an alternative) that leads to something kept.
    for (i, entry) in lock.files.iter().enumerate() {
        if entry.kind == FileKind::Symlink && !kept[i] {
            let (links, found) = tree.resolve(&entry.path);
            let wanted = |f: usize| {
                kept[f] && (entry.package.is_none() || lock.files[f].kind == FileKind::Dir)
            };
            if found.is_some_and(wanted) {
                kept[i] = true;
                links.into_iter().for_each(|l| kept[l] = true);
            }
        }
    }
    keep_parents(&tree, &mut kept);
    let mut keep = kept.into_iter();
    lock.files.retain(|_| keep.next().unwrap_or(false));
    Ok(())
}

/// Marks the parent folders of every kept entry.
fn keep_parents(tree: &Tree, kept: &mut [bool]) {
    let parents: Vec<usize> = (0..tree.files.len())
        .filter(|&i| kept[i])
        .flat_map(|i| ancestors(&tree.files[i].path))
        .filter_map(|p| tree.index(p))
        .collect();
    parents.into_iter().for_each(|p| kept[p] = true);
}

/// glibc's NSS modules and their configuration: loaded by name, never linked.
fn is_nss(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path == "/etc/nsswitch.conf"
        || (path.starts_with("/usr/lib/") && name.starts_with("libnss_") && name.contains(".so"))
}

/// Where a glob's literal start leads through the tree's symlinks.
struct Walk {
    /// The glob with that start replaced by where it leads (the glob itself when no
    /// symlink is on the way).
    glob: String,
    /// The deepest entry reached, when the tree has `/`.
    reached: Option<usize>,
    /// The first component the walk did not reach, when it is no wildcard.
    missing: Option<String>,
}

/// The lock's entries by path, for resolving paths as the kernel would.
struct Tree<'a> {
    files: &'a [FileEntry],
    by_path: HashMap<&'a str, usize>,
}

impl<'a> Tree<'a> {
    fn new(files: &'a [FileEntry]) -> Tree<'a> {
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.as_str(), i))
            .collect();
        Tree { files, by_path }
    }

    fn index(&self, path: &str) -> Option<usize> {
        self.by_path.get(path).copied()
    }

    /// Follows `path` through the tree's symlinks: the symlinks passed and the entry it
    /// ends at, if that exists.
    fn resolve(&self, path: &str) -> (Vec<usize>, Option<usize>) {
        let mut links = Vec::new();
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut at = String::new();
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    at.truncate(at.rfind('/').unwrap_or(0));
                    continue;
                }
                _ => {}
            }
            let next = format!("{at}/{part}");
            let Some(i) = self.index(&next) else {
                return (links, None);
            };
            let entry = &self.files[i];
            if entry.kind != FileKind::Symlink {
                at = next;
                continue;
            }
            if links.len() == MAX_LINKS {
                return (links, None);
            }
            links.push(i);
            let target = entry.target.as_deref().unwrap_or("");
            if target.starts_with('/') {
                at.clear();
            }
            pending.extend(components(target).rev().map(str::to_string));
        }
        (links, self.index(if at.is_empty() { "/" } else { &at }))
    }

    /// Follows the components of `glob` before its first wildcard through the tree's
    /// symlinks, as far as the tree has them: `/bin/ba*` leads to `/usr/bin/ba*` when
    /// `/bin` links to `usr/bin`. A symlink last is followed too, so `/bin` leads to
    /// `/usr/bin` and its subtree.
    fn through_links(&self, glob: &str) -> Walk {
        let parts: Vec<&str> = components(glob).collect();
        let literal = parts.iter().take_while(|c| !has_wildcard(c)).count();
        let mut at = String::new();
        let mut reached = self.index("/");
        let mut followed = 0;
        for part in &parts[..literal] {
            let Some(i) = self.resolve(&format!("{at}/{part}")).1 else {
                break;
            };
            at = self.files[i].path.trim_end_matches('/').to_string();
            reached = Some(i);
            followed += 1;
        }
        // The part reached is a path of the tree, whose names may hold glob syntax.
        let mut led = globset::escape(&at);
        for part in &parts[followed..] {
            led = format!("{led}/{part}");
        }
        Walk {
            glob: if followed == 0 { glob.to_string() } else { led },
            reached,
            missing: (followed < literal).then(|| parts[followed].to_string()),
        }
    }

    /// The error for glob `index`, `glob`, which matches nothing: with the folder its
    /// walk reached and, when it lacks a name the glob gives, the names it has.
    fn no_match(&self, index: usize, glob: &str, walk: &Walk) -> TrimError {
        let folder = walk
            .reached
            .map_or("/", |i| self.files[i].path.as_str())
            .to_string();
        let names = match &walk.missing {
            Some(_) => {
                let inside = |path: &'a str| {
                    let (parent, name) = path.rsplit_once('/')?;
                    let parent = if parent.is_empty() { "/" } else { parent };
                    (parent == folder && !name.is_empty()).then(|| name.to_string())
                };
                self.files.iter().filter_map(|e| inside(&e.path)).collect()
            }
            None => Vec::new(),
        };
        TrimError::NoMatch {
            index,
            glob: glob.to_string(),
            folder,
            missing: walk.missing.clone(),
            names,
        }
    }

    /// The folders libraries are looked for in after RPATH and RUNPATH: those the
    /// tree's `ld.so.conf` names (following `include`), then the default ones.
    fn library_dirs(
        &self,
        content: &impl Fn(&FileEntry) -> io::Result<Vec<u8>>,
    ) -> Result<Vec<String>, TrimError> {
        let mut dirs = Vec::new();
        let mut confs = vec!["/etc/ld.so.conf".to_string()];
        let mut read = BTreeSet::new();
        while let Some(conf) = confs.pop() {
            let Some(i) = self.file(&conf) else { continue };
            if !read.insert(conf.clone()) {
                continue;
            }
            let text = read_file(&self.files[i], content)?;
            let mut included = Vec::new();
            for line in String::from_utf8_lossy(&text).lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let Some(pattern) = line.strip_prefix("include ") {
                    included.extend(self.matching(pattern.trim()));
                } else if line.starts_with('/') {
                    dirs.push(line.to_string());
                }
            }
            // Read in the order ld.so.conf names them: the stack pops the last first.
            confs.extend(included.into_iter().rev());
        }
        dirs.extend(DEFAULT_DIRS.iter().map(|d| d.to_string()));
        Ok(dirs)
    }

    /// Paths of the tree matching a glob from an `include` line, sorted.
    fn matching(&self, pattern: &str) -> Vec<String> {
        let Ok(glob) = globset::Glob::new(pattern) else {
            return Vec::new();
        };
        let matcher = glob.compile_matcher();
        let mut found: Vec<String> = (self.files.iter())
            .filter(|e| matcher.is_match(&e.path))
            .map(|e| e.path.clone())
            .collect();
        found.sort();
        found
    }

    /// The entry a path leads to when it is a regular file (or a hardlink to one).
    fn file(&self, path: &str) -> Option<usize> {
        let (_, found) = self.resolve(path);
        found.filter(|&i| matches!(self.files[i].kind, FileKind::File | FileKind::Hardlink))
    }

    /// For an ELF file: its interpreter and every library it links, each as the
    /// symlinks passed and the file reached. Anything else needs nothing.
    fn needs(
        &self,
        entry: &FileEntry,
        content: &impl Fn(&FileEntry) -> io::Result<Vec<u8>>,
        search: &[String],
    ) -> Result<Vec<Vec<usize>>, TrimError> {
        if entry.size < 4 {
            return Ok(Vec::new());
        }
        let bytes = read_file(entry, content)?;
        if !bytes.starts_with(b"\x7fELF") {
            return Ok(Vec::new());
        }
        let elf = Elf::parse(&bytes).map_err(|e| TrimError::BadElf {
            path: entry.path.clone(),
            reason: e.to_string(),
        })?;
        let origin = entry.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        let expand = |dirs: &[&str]| -> Vec<String> {
            dirs.iter()
                .flat_map(|d| d.split(':'))
                .filter(|d| !d.is_empty())
                .map(|d| d.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
                .collect()
        };
        // RPATH counts only when there is no RUNPATH, as ld.so does it.
        let mut dirs = if elf.runpaths.is_empty() {
            expand(&elf.rpaths)
        } else {
            Vec::new()
        };
        dirs.extend(expand(&elf.runpaths));
        dirs.extend(search.iter().cloned());

        let mut needs = Vec::new();
        let mut reach = |path: &str| -> bool {
            let (mut links, found) = self.resolve(path);
            match found.filter(|&i| self.files[i].kind != FileKind::Dir) {
                Some(i) => {
                    links.push(i);
                    needs.push(links);
                    true
                }
                None => false,
            }
        };
        if let Some(interpreter) = elf.interpreter {
            reach(interpreter);
        }
        for library in &elf.libraries {
            let found = if library.contains('/') {
                reach(library)
            } else {
                dirs.iter().any(|dir| reach(&format!("{dir}/{library}")))
            };
            if !found {
                return Err(TrimError::MissingLibrary {
                    object: entry.path.clone(),
                    library: library.to_string(),
                    searched: dirs,
                });
            }
        }
        Ok(needs)
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

fn read_file(
    entry: &FileEntry,
    content: &impl Fn(&FileEntry) -> io::Result<Vec<u8>>,
) -> Result<Vec<u8>, TrimError> {
    content(entry).map_err(|source| TrimError::Read {
        path: entry.path.clone(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_of(files: Vec<FileEntry>) -> Lock {
        Lock::of_files(files)
    }

    fn dir(path: &str) -> FileEntry {
        FileEntry {
            package: Some("pkg".into()),
            ..FileEntry::directory(path)
        }
    }

    fn file(path: &str, content: &[u8]) -> FileEntry {
        FileEntry {
            kind: FileKind::File,
            size: content.len() as u64,
            digest: Some(blake3::hash(content).to_hex().to_string()),
            ..dir(path)
        }
    }

    fn link(path: &str, target: &str, package: Option<&str>) -> FileEntry {
        FileEntry {
            kind: FileKind::Symlink,
            target: Some(target.into()),
            package: package.map(str::to_string),
            ..FileEntry::directory(path)
        }
    }

    #[test]
    fn resolve_follows_relative_absolute_and_dotdot_links() {
        let files = vec![
            FileEntry::directory("/"),
            link("/bin", "usr/bin", None),
            dir("/usr"),
            dir("/usr/bin"),
            file("/usr/bin/mawk", b"m"),
            link("/usr/bin/awk", "/etc/alternatives/awk", Some("pkg")),
            dir("/etc"),
            dir("/etc/alternatives"),
            link("/etc/alternatives/awk", "../../usr/bin/mawk", None),
            link("/loop", "loop", None),
        ];
        let tree = Tree::new(&files);
        let (links, found) = tree.resolve("/bin/awk");
        assert_eq!(found, tree.index("/usr/bin/mawk"));
        let passed: Vec<&str> = links.iter().map(|&i| files[i].path.as_str()).collect();
        assert_eq!(passed, ["/bin", "/usr/bin/awk", "/etc/alternatives/awk"]);
        assert_eq!(tree.resolve("/loop/x").1, None);
        assert_eq!(tree.resolve("/usr/bin/none").1, None);
    }

    #[test]
    fn unowned_entries_stay_but_dpkg_state_and_dangling_links_go() {
        let mut lock = lock_of(vec![
            FileEntry::directory("/"),
            dir("/etc"),
            FileEntry {
                kind: FileKind::File,
                ..FileEntry::directory("/etc/passwd")
            },
            link("/etc/gone", "/usr/share/doc", None),
            dir("/usr"),
            dir("/usr/share"),
            dir("/usr/share/doc"),
            file("/usr/share/doc/README", b"docs"),
            file("/usr/share/keep", b"kept"),
            dir("/var"),
            dir("/var/lib"),
            dir("/var/lib/dpkg"),
            FileEntry {
                kind: FileKind::File,
                ..FileEntry::directory("/var/lib/dpkg/status")
            },
        ]);
        let paths = ["/usr/share/keep".to_string()];
        trim(&mut lock, &paths, |e| Ok(e.path.as_bytes().to_vec())).unwrap();
        let left: Vec<&str> = lock.files.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            left,
            [
                "/",
                "/etc",
                "/etc/passwd",
                "/usr",
                "/usr/share",
                "/usr/share/keep"
            ]
        );
    }

    #[test]
    fn a_program_whose_library_is_missing_is_an_error_naming_both() {
        // This test's own executable: a real ELF that links libc.
        let program = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut lock = lock_of(vec![
            FileEntry::directory("/"),
            dir("/usr"),
            dir("/usr/bin"),
            file("/usr/bin/prog", &program),
        ]);
        let paths = ["/usr/bin/prog".to_string()];
        let err = trim(&mut lock, &paths, |_| Ok(program.clone())).unwrap_err();
        let TrimError::MissingLibrary {
            object, searched, ..
        } = &err
        else {
            panic!("expected a missing library, got {err}");
        };
        assert_eq!(object, "/usr/bin/prog");
        assert!(searched.contains(&"/usr/lib64".to_string()), "{err}");
    }

    /// A merged-/usr tree: `/bin` and `/sbin` link into `/usr`.
    fn merged_usr() -> Vec<FileEntry> {
        vec![
            FileEntry::directory("/"),
            link("/bin", "usr/bin", Some("base-files")),
            link("/sbin", "/usr/sbin", Some("base-files")),
            dir("/usr"),
            dir("/usr/bin"),
            file("/usr/bin/bash", b"bash"),
            file("/usr/bin/sh", b"sh"),
            file("/usr/bin/ls", b"ls"),
            file("/usr/bin/[", b"test"),
            dir("/usr/sbin"),
            file("/usr/sbin/nginx", b"nginx"),
        ]
    }

    fn trimmed(globs: &[&str]) -> Result<Vec<String>, TrimError> {
        let mut lock = lock_of(merged_usr());
        let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
        trim(&mut lock, &globs, |e| Ok(e.path.as_bytes().to_vec()))?;
        Ok(lock.files.into_iter().map(|e| e.path).collect())
    }

    #[test]
    fn globs_are_followed_through_symlinked_folders() {
        let tree = merged_usr();
        let tree = Tree::new(&tree);
        let led = |glob: &str| tree.through_links(glob).glob;
        assert_eq!(led("/bin/bash"), "/usr/bin/bash");
        assert_eq!(led("/bin/ba*"), "/usr/bin/ba*");
        assert_eq!(led("/sbin"), "/usr/sbin");
        assert_eq!(led("/usr/bin/bash"), "/usr/bin/bash");
        assert_eq!(led("/bin/bsh"), "/usr/bin/bsh");
        assert_eq!(led("**/bash"), "**/bash");
        // Where the walk leads is a name of the tree, taken literally.
        let odd = [
            FileEntry::directory("/"),
            link("/cfg", "srv/a[1]", None),
            dir("/srv"),
            dir("/srv/a[1]"),
        ];
        let odd = Tree::new(&odd);
        assert_eq!(odd.through_links("/cfg/*").glob, "/srv/a[[]1[]]/*");

        // Debian's own name keeps the file and the link on the way.
        for glob in ["/bin/bash", "/bin/ba*", "/usr/bin/bash"] {
            let kept = trimmed(&[glob]).unwrap();
            assert_eq!(kept, ["/", "/bin", "/usr", "/usr/bin", "/usr/bin/bash"]);
        }
        // A symlinked folder named takes the folder's subtree.
        let kept = trimmed(&["/sbin"]).unwrap();
        assert_eq!(kept, ["/", "/sbin", "/usr", "/usr/sbin", "/usr/sbin/nginx"]);
    }

    #[test]
    fn a_glob_that_matches_nothing_names_itself_and_the_near_names() {
        let err = trimmed(&["/usr/sbin/nginx", "/bin/bsh"]).unwrap_err();
        let TrimError::NoMatch {
            index,
            glob,
            folder,
            missing,
            names,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*index, glob.as_str()), (1, "/bin/bsh"));
        assert_eq!(
            (folder.as_str(), missing.as_deref()),
            ("/usr/bin", Some("bsh"))
        );
        assert_eq!(names, &["[", "bash", "ls", "sh"]);
        assert_eq!(
            err.to_string(),
            "paths: `/bin/bsh` matches nothing in the tree"
        );
        // A wildcard that matches nothing has no name to miss.
        let err = trimmed(&["/usr/bin/zz*"]).unwrap_err();
        assert!(
            matches!(&err, TrimError::NoMatch { folder, missing: None, names, .. }
                if folder == "/usr/bin" && names.is_empty()),
            "{err:?}"
        );
        let err = trimmed(&["/opt/app/*"]).unwrap_err();
        assert!(
            matches!(&err, TrimError::NoMatch { folder, missing: Some(m), .. }
                if folder == "/" && m == "opt"),
            "{err:?}"
        );
    }

    #[test]
    fn nss_modules_are_kept_by_name() {
        assert!(is_nss("/usr/lib/x86_64-linux-gnu/libnss_files.so.2"));
        assert!(is_nss("/etc/nsswitch.conf"));
        assert!(!is_nss("/usr/lib/x86_64-linux-gnu/libc.so.6"));
    }
}
