//! Scanning host files into lock entries.
//!
//! The dpkg lists name paths as packages ship them, which is not always where they live:
//! merged /usr makes `/bin/bash` really `/usr/bin/bash`, and diversions move packaged
//! bytes aside. The scan turns the chosen packages' listings into entries describing a
//! tree that works when materialised: real locations, the symlinks that lead there,
//! every parent directory, and each path once.

use crate::no_follow::hash;
use crate::progress::Progress;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{DpkgDatabase, DpkgError, InstalledPackage};
use crate::lock::{Documentation, FileEntry, FileKind};
use crate::source::accounts::{Accounts, AccountsError};

/// How many symlinks one path may cross, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: u32 = 40;

/// Read size for hashing: large enough for BLAKE3's SIMD paths to work on many chunks.
const HASH_BUFFER: usize = 256 * 1024;

/// Why the installed files could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// `etc/passwd` or `etc/group` of the sysroot cannot be read.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// A chosen package's list of what it owns cannot be read.
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
    /// A host path needed by the scan cannot be examined or read.
    #[error("cannot read {} ({}): {source}", path.display(), owner(package.as_deref()))]
    Io {
        /// The host path (sysroot included).
        path: PathBuf,
        /// The package whose file it is, `None` for parents and crossed symlinks.
        package: Option<String>,
        /// The underlying error.
        source: io::Error,
    },
    /// Resolving a path crossed more than [`MAX_LINKS`] symlinks (usually a loop).
    #[error(
        "too many levels of symbolic links resolving {path} ({})",
        owner(Some(package))
    )]
    SymlinkLoop {
        /// The path being resolved, as inside the sysroot.
        path: String,
        /// The package that lists it.
        package: String,
    },
    /// A path is a socket or another kind a lock cannot describe.
    #[error("{} ({}) is a socket or other unsupported file type", path.display(), owner(package.as_deref()))]
    Unsupported {
        /// The host path.
        path: PathBuf,
        /// The package whose file it is.
        package: Option<String>,
    },
    /// A parent that the tree needs as a directory is something else on the host.
    #[error("{path} is needed as a directory (parent of {child}) but is a {kind} on the host")]
    NotADirectory {
        /// The parent, as inside the sysroot.
        path: String,
        /// The entry that needs it.
        child: String,
        /// What the host has there.
        kind: FileKind,
    },
    /// A chosen index does not name a package of the database.
    #[error("no installed package at index {0} of the dpkg database")]
    UnknownPackage(usize),
}

fn owner(package: Option<&str>) -> String {
    match package {
        Some(p) => format!("package {p}"),
        None => "no package".to_string(),
    }
}

/// The result of scanning installed packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// One entry per path, sorted by path, starting with `/`.
    pub entries: Vec<FileEntry>,
    /// `(package, listed path)` for listed paths absent on the host (dpkg `path-exclude`
    /// in container images drops documentation, for instance), sorted.
    pub missing: Vec<(String, String)>,
}

/// Scans the files of `chosen` (indices into `db.packages`) under `sysroot` into lock
/// entries.
///
/// Listed paths are placed at their real location (parents resolved through symlinks
/// inside the sysroot, the last component taken as is) and the symlinks crossed become
/// entries too. A path diverted by a package other than its owner is emitted at the
/// diversion target when the diverter is chosen, else at the listed path with `origin`
/// naming where the bytes are. Packages claim paths in name order; unlisted parents
/// come from the host unowned; files sharing an inode after the first path become hard
/// links. Paths absent on the host are reported in [`Scan::missing`]. The hashing is
/// shown on `progress`.
pub(crate) fn scan_installed(
    sysroot: &Path,
    db: &DpkgDatabase,
    chosen: &[usize],
    progress: &Progress,
) -> Result<Scan, ScanError> {
    // With the sysroot's own symlinks resolved, `lstat` of `/` is the root directory.
    let sysroot = sysroot.canonicalize().map_err(|source| ScanError::Io {
        path: sysroot.to_path_buf(),
        package: None,
        source,
    })?;
    let accounts = Accounts::read(&sysroot)?;
    let mut packages = chosen
        .iter()
        .map(|&i| db.packages.get(i).ok_or(ScanError::UnknownPackage(i)))
        .collect::<Result<Vec<_>, _>>()?;
    packages.sort_by(|a, b| {
        (&a.package.name, &a.package.arch).cmp(&(&b.package.name, &b.package.arch))
    });
    packages.dedup_by(|a, b| std::ptr::eq(*a, *b));

    let candidates = candidates(&sysroot, db, &packages)?;
    // On a cold tree the scan waits on the disk, not the CPU.
    crate::io_pool::in_io_pool(|| build(&sysroot, &accounts, candidates, progress))
}

/// A path the lock will hold, before the host is examined.
struct Candidate<'a> {
    /// The owning package; `None` for crossed symlinks no chosen package lists.
    package: Option<&'a str>,
    /// The path as the package lists it, for the `missing` report.
    listed: &'a str,
    /// Where the bytes are on the host when not at the entry's own path (diversions).
    origin: Option<String>,
    /// The listed path is one of the package's (non-obsolete) conffiles.
    conffile: bool,
}

/// Maps every listed path of `packages` (sorted by name) to its real location; the first
/// package to claim a location keeps it. Crossed symlinks are added unowned.
fn candidates<'a>(
    sysroot: &Path,
    db: &'a DpkgDatabase,
    packages: &[&'a InstalledPackage],
) -> Result<BTreeMap<String, Candidate<'a>>, ScanError> {
    let chosen: HashSet<&str> = packages.iter().map(|p| p.package.name.as_str()).collect();
    let diversions: HashMap<&str, _> = db.diversions.iter().map(|d| (d.from.as_str(), d)).collect();
    let mut resolver = Resolver {
        sysroot,
        dirs: HashMap::new(),
        crossed: BTreeSet::new(),
    };
    let mut out = BTreeMap::new();
    for installed in packages {
        let name = installed.package.name.as_str();
        let conffiles: HashSet<&str> = installed
            .conffiles
            .iter()
            .filter(|c| !c.obsolete)
            .map(|c| c.path.as_str())
            .collect();
        for listed in &installed.owned()?.files {
            let diversion = diversions
                .get(listed.as_str())
                .filter(|d| d.by.as_deref() != Some(name));
            let (path, origin) = match diversion {
                None => (resolver.locate(listed, name)?, None),
                Some(d) => {
                    let to = resolver.locate(&d.to, name)?;
                    if d.by.as_deref().is_some_and(|by| chosen.contains(by)) {
                        // The diverter's own file takes the listed path in the tree.
                        (to, None)
                    } else {
                        let path = resolver.locate(listed, name)?;
                        let origin = (to != path).then_some(to);
                        (path, origin)
                    }
                }
            };
            if path == "/" {
                // The root is the sysroot's own and always unowned.
                continue;
            }
            out.entry(path).or_insert(Candidate {
                package: Some(name),
                listed,
                origin,
                conffile: conffiles.contains(listed.as_str()),
            });
        }
    }
    for link in resolver.crossed {
        out.entry(link).or_insert(Candidate {
            package: None,
            listed: "",
            origin: None,
            conffile: false,
        });
    }
    Ok(out)
}

/// Resolves directories through symlinks inside a sysroot, remembering each directory
/// (thousands of files share a few parents) and every symlink crossed.
struct Resolver<'a> {
    sysroot: &'a Path,
    /// Directory as written -> its real location.
    dirs: HashMap<String, String>,
    /// Real locations of the symlinks followed.
    crossed: BTreeSet<String>,
}

impl Resolver<'_> {
    /// The real location of `path`: parents resolved, the last component kept as is.
    fn locate(&mut self, path: &str, package: &str) -> Result<String, ScanError> {
        let (parent, name) = split(path);
        match name {
            "" | "." | ".." => self.directory(path, 0, package),
            _ => Ok(join(&self.directory(parent, 0, package)?, name)),
        }
    }

    /// The real location of directory `dir` (absolute, possibly holding `.`, `..`,
    /// empty components and symlinks), `depth` links having been followed to reach it.
    /// Components absent on the host are kept literally.
    fn directory(&mut self, dir: &str, depth: u32, package: &str) -> Result<String, ScanError> {
        if dir == "/" {
            return Ok("/".to_string());
        }
        if let Some(real) = self.dirs.get(dir) {
            return Ok(real.clone());
        }
        let (parent, name) = split(dir);
        let parent = self.directory(parent, depth, package)?;
        let real = match name {
            "" | "." => parent,
            // `..` of the real parent, and of `/` is `/`: never above the sysroot.
            ".." => split(&parent).0.to_string(),
            _ => {
                let candidate = join(&parent, name);
                let host = host_path(self.sysroot, &candidate);
                let io_error = |source| ScanError::Io {
                    path: host.clone(),
                    package: Some(package.to_string()),
                    source,
                };
                match fs::symlink_metadata(&host) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if depth >= MAX_LINKS {
                            return Err(ScanError::SymlinkLoop {
                                path: dir.to_string(),
                                package: package.to_string(),
                            });
                        }
                        let target = link_text(&host).map_err(io_error)?;
                        let next = if target.starts_with('/') {
                            target
                        } else {
                            join(&parent, &target)
                        };
                        self.crossed.insert(candidate);
                        self.directory(&next, depth + 1, package)?
                    }
                    Ok(_) => candidate,
                    Err(e) if is_absent(&e) => candidate,
                    Err(e) => return Err(io_error(e)),
                }
            }
        };
        self.dirs.insert(dir.to_string(), real.clone());
        Ok(real)
    }
}

/// Splits an absolute path into parent and last component; `/` splits into `/` and "".
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) | None => ("/", path.trim_start_matches('/')),
        Some(i) => (&path[..i], &path[i + 1..]),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Where path `path` of the tree is on the host.
fn host_path(sysroot: &Path, path: &str) -> PathBuf {
    sysroot.join(path.trim_start_matches('/'))
}

/// Errors meaning "not there": the path or one of its parents does not exist.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn link_text(host: &Path) -> io::Result<String> {
    fs::read_link(host)?
        .into_os_string()
        .into_string()
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "symlink target is not valid UTF-8",
            )
        })
}

/// What `lstat` and friends say about one path.
struct Found {
    kind: FileKind,
    mode: u32,
    uid: u32,
    gid: u32,
    target: Option<String>,
    device: Option<(u32, u32)>,
    caps: Option<String>,
    nlink: u64,
    /// `st_size`, for progress before a file is hashed (the lock takes the bytes read).
    size: u64,
    /// (st_dev, st_ino), to find hard links.
    inode: (u64, u64),
}

/// Examines `host` without following a final symlink; `None` when it is absent.
fn inspect(host: &Path, package: Option<&str>) -> Result<Option<Found>, ScanError> {
    let io_error = |source| ScanError::Io {
        path: host.to_path_buf(),
        package: package.map(str::to_string),
        source,
    };
    let meta = match fs::symlink_metadata(host) {
        Ok(meta) => meta,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let file_type = meta.file_type();
    let device = Some((libc::major(meta.rdev()), libc::minor(meta.rdev())));
    let (kind, target, device) = if file_type.is_file() {
        (FileKind::File, None, None)
    } else if file_type.is_dir() {
        (FileKind::Dir, None, None)
    } else if file_type.is_symlink() {
        (
            FileKind::Symlink,
            Some(link_text(host).map_err(io_error)?),
            None,
        )
    } else if file_type.is_char_device() {
        (FileKind::Char, None, device)
    } else if file_type.is_block_device() {
        (FileKind::Block, None, device)
    } else if file_type.is_fifo() {
        (FileKind::Fifo, None, None)
    } else {
        return Err(ScanError::Unsupported {
            path: host.to_path_buf(),
            package: package.map(str::to_string),
        });
    };
    let caps = match kind {
        FileKind::File => capability(host).map_err(io_error)?,
        _ => None,
    };
    Ok(Some(Found {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        target,
        device,
        caps,
        nlink: meta.nlink(),
        size: meta.len(),
        inode: (meta.dev(), meta.ino()),
    }))
}

/// The `security.capability` xattr as hex; filesystems without xattrs have none.
pub(crate) fn capability(host: &Path) -> io::Result<Option<String>> {
    match xattr::get(host, "security.capability") {
        Ok(value) => Ok(value.map(hex::encode)),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Examines the candidates, adds their parents, marks hard links and hashes files.
fn build(
    sysroot: &Path,
    accounts: &Accounts,
    candidates: BTreeMap<String, Candidate<'_>>,
    progress: &Progress,
) -> Result<Scan, ScanError> {
    let candidates: Vec<(String, Candidate)> = candidates.into_iter().collect();
    let found: Vec<Result<Option<Found>, ScanError>> = candidates
        .par_iter()
        .map(|(path, c)| {
            let source = c.origin.as_deref().unwrap_or(path);
            inspect(&host_path(sysroot, source), c.package)
        })
        .collect();

    let entry = |path: String, found: Found, c: Option<&Candidate>| FileEntry {
        documentation: Documentation::of_debian_path(&path, found.kind),
        path,
        kind: found.kind,
        mode: found.mode,
        uid: found.uid,
        gid: found.gid,
        user: accounts.user(found.uid).to_string(),
        group: accounts.group(found.gid).to_string(),
        size: if found.kind == FileKind::File {
            found.size
        } else {
            0
        },
        digest: None,
        target: found.target,
        device: found.device,
        caps: found.caps,
        package: c.and_then(|c| c.package).map(str::to_string),
        conffile: c.is_some_and(|c| c.conffile),
        origin: c.and_then(|c| c.origin.clone()),
        mtime: None,
    };
    let mut entries = BTreeMap::new();
    let mut links = Vec::new();
    let mut missing = Vec::new();
    for ((path, c), found) in candidates.iter().zip(found) {
        match (found?, c.package) {
            (Some(found), _) => {
                if found.kind == FileKind::File && found.nlink > 1 {
                    links.push((path.clone(), found.inode));
                }
                entries.insert(path.clone(), entry(path.clone(), found, Some(c)));
            }
            (None, Some(package)) => missing.push((package.to_string(), c.listed.to_string())),
            (None, None) => {
                // A symlink crossed moments ago has vanished: the host changed under us.
                return Err(ScanError::Io {
                    path: host_path(sysroot, path),
                    package: None,
                    source: io::ErrorKind::NotFound.into(),
                });
            }
        }
    }

    let mut parents: BTreeMap<String, String> = BTreeMap::new();
    parents.insert("/".to_string(), "/".to_string());
    for path in entries.keys() {
        let mut child = path.as_str();
        while child != "/" {
            let parent = split(child).0;
            if entries.contains_key(parent) {
                break;
            }
            parents
                .entry(parent.to_string())
                .or_insert_with(|| child.to_string());
            child = parent;
        }
    }
    for (path, child) in parents {
        let host = host_path(sysroot, &path);
        let found = inspect(&host, None)?.ok_or_else(|| ScanError::Io {
            path: host.clone(),
            package: None,
            source: io::ErrorKind::NotFound.into(),
        })?;
        if found.kind != FileKind::Dir {
            return Err(ScanError::NotADirectory {
                path,
                child,
                kind: found.kind,
            });
        }
        entries.insert(path.clone(), entry(path, found, None));
    }

    // `links` is in path order, so the first path seen of an inode is the one kept.
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for (path, inode) in links {
        if let Some(target) = first.get(&inode) {
            if let Some(e) = entries.get_mut(&path) {
                e.kind = FileKind::Hardlink;
                e.size = 0;
                e.target = Some(target.clone());
            }
        } else {
            first.insert(inode, path);
        }
    }

    let mut entries: Vec<FileEntry> = entries.into_values().collect();
    let files = entries.iter().filter(|e| e.kind == FileKind::File);
    progress.phase(
        "hashing",
        files.clone().count(),
        files.map(|e| e.size).sum(),
    );
    let hashed: Vec<Result<(), ScanError>> = entries
        .par_iter_mut()
        .filter(|e| e.kind == FileKind::File)
        .map_init(
            || vec![0u8; HASH_BUFFER],
            |buffer, e| {
                let source = e.origin.as_deref().unwrap_or(&e.path);
                let host = host_path(sysroot, source);
                let (size, digest) = hash(&host, buffer).map_err(|source| ScanError::Io {
                    path: host,
                    package: e.package.clone(),
                    source,
                })?;
                e.size = size;
                e.digest = Some(digest);
                progress.entry(size);
                Ok(())
            },
        )
        .collect();
    hashed.into_iter().collect::<Result<(), _>>()?;
    missing.sort();
    Ok(Scan { entries, missing })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Origin;
    use crate::source::dpkg::Package;
    use crate::source::dpkg::{Conffile, Diversion, Owned};
    use std::ffi::CString;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A fake sysroot in a tempdir.
    struct Root(tempfile::TempDir);

    impl Root {
        fn new() -> Root {
            Root(tempfile::tempdir().unwrap())
        }

        fn host(&self, path: &str) -> PathBuf {
            self.0.path().join(path.trim_start_matches('/'))
        }

        fn file(&self, path: &str, content: &[u8]) -> &Root {
            let host = self.host(path);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            fs::write(host, content).unwrap();
            self
        }

        fn dir(&self, path: &str) -> &Root {
            fs::create_dir_all(self.host(path)).unwrap();
            self
        }

        fn link(&self, path: &str, target: &str) -> &Root {
            let host = self.host(path);
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            symlink(target, host).unwrap();
            self
        }

        fn scan(&self, db: &DpkgDatabase, chosen: &[usize]) -> Result<Scan, ScanError> {
            scan_installed(self.0.path(), db, chosen, &Progress::hidden())
        }
    }

    fn package(name: &str, files: &[&str]) -> InstalledPackage {
        InstalledPackage::owning(
            Package::bare(name, "1.0", "amd64", Origin::Installed),
            Owned {
                files: files.iter().map(|f| f.to_string()).collect(),
                md5sums: BTreeMap::new(),
                list_path: PathBuf::from(format!("/var/lib/dpkg/info/{name}.list")),
            },
        )
    }

    fn db(packages: Vec<InstalledPackage>) -> DpkgDatabase {
        DpkgDatabase {
            packages,
            diversions: Vec::new(),
        }
    }

    fn entry<'a>(scan: &'a Scan, path: &str) -> &'a FileEntry {
        scan.entries
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("no entry {path} in {:#?}", scan.entries))
    }

    fn has(scan: &Scan, path: &str) -> bool {
        scan.entries.iter().any(|e| e.path == path)
    }

    fn digest(bytes: &[u8]) -> Option<String> {
        Some(blake3::hash(bytes).to_hex().to_string())
    }

    /// The invariants every scan must hold: sorted unique paths from `/`, parents present.
    fn check_tree(scan: &Scan) {
        assert_eq!(scan.entries[0].path, "/");
        assert_eq!(scan.entries[0].kind, FileKind::Dir);
        assert_eq!(scan.entries[0].package, None);
        for pair in scan.entries.windows(2) {
            assert!(
                pair[0].path < pair[1].path,
                "{} then {}",
                pair[0].path,
                pair[1].path
            );
        }
        for e in &scan.entries[1..] {
            let parent = split(&e.path).0;
            let parent = entry(scan, parent);
            assert_eq!(parent.kind, FileKind::Dir, "parent of {}", e.path);
        }
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn merged_usr_paths_resolve_to_real_locations_with_their_links() {
        let root = Root::new();
        root.file("usr/bin/x", b"x binary")
            .file("usr/lib/libx.so", b"library")
            .file("usr/sbin/tool", b"tool")
            .link("bin", "usr/bin")
            .link("lib", "usr/lib")
            .link("sbin", "/usr/sbin");
        let db = db(vec![package(
            "a",
            &["/bin", "/bin/x", "/lib/libx.so", "/sbin/tool"],
        )]);
        let scan = root.scan(&db, &[0]).unwrap();
        check_tree(&scan);

        let x = entry(&scan, "/usr/bin/x");
        assert_eq!(x.kind, FileKind::File);
        assert_eq!(x.package.as_deref(), Some("a"));
        assert_eq!(x.size, 8);
        assert_eq!(x.digest, digest(b"x binary"));
        assert_eq!(entry(&scan, "/usr/lib/libx.so").digest, digest(b"library"));
        assert_eq!(entry(&scan, "/usr/sbin/tool").digest, digest(b"tool"));

        let bin = entry(&scan, "/bin");
        assert_eq!(bin.kind, FileKind::Symlink);
        assert_eq!(bin.target.as_deref(), Some("usr/bin"));
        assert_eq!(
            bin.package.as_deref(),
            Some("a"),
            "listed link keeps its owner"
        );
        let lib = entry(&scan, "/lib");
        assert_eq!(lib.kind, FileKind::Symlink);
        assert_eq!(lib.package, None, "crossed but unlisted link is unowned");
        assert_eq!(entry(&scan, "/sbin").target.as_deref(), Some("/usr/sbin"));

        assert!(scan.entries.iter().all(|e| !e.path.starts_with("/bin/")));
        let usr_bin = entry(&scan, "/usr/bin");
        assert_eq!(
            (usr_bin.kind, usr_bin.package.as_deref()),
            (FileKind::Dir, None)
        );
        assert!(scan.missing.is_empty());
    }

    #[test]
    fn relative_links_never_climb_above_the_sysroot() {
        let root = Root::new();
        root.file("usr/share/f", b"shared")
            .link("usr/lib/up", "../../../../../usr/share");
        let db = db(vec![package("a", &["/usr/lib/up/f"])]);
        let scan = root.scan(&db, &[0]).unwrap();
        check_tree(&scan);
        assert_eq!(entry(&scan, "/usr/share/f").digest, digest(b"shared"));
        assert_eq!(entry(&scan, "/usr/lib/up").kind, FileKind::Symlink);
        assert!(!has(&scan, "/usr/lib/up/f"));
    }

    #[test]
    fn symlink_loops_are_an_error_naming_path_and_package() {
        let root = Root::new();
        root.link("a", "b").link("b", "/a");
        let db = db(vec![package("looper", &["/a/x"])]);
        let err = root.scan(&db, &[0]).unwrap_err().to_string();
        assert!(err.contains("symbolic links"), "{err}");
        assert!(err.contains("/a"), "{err}");
        assert!(err.contains("package looper"), "{err}");
    }

    /// `x` ships /usr/bin/tool, which `by` diverts to /usr/bin/tool.real.
    fn diverted(by: Option<&str>) -> (Root, DpkgDatabase) {
        let root = Root::new();
        root.file("usr/bin/tool", b"diverter's tool")
            .file("usr/bin/tool.real", b"x's tool")
            .link("bin", "usr/bin");
        let db = DpkgDatabase {
            packages: vec![
                package("x", &["/usr/bin/tool"]),
                package("d", &["/usr/bin/tool"]),
            ],
            diversions: vec![Diversion {
                from: "/usr/bin/tool".to_string(),
                to: "/bin/tool.real".to_string(),
                by: by.map(str::to_string),
            }],
        };
        (root, db)
    }

    #[test]
    fn diversion_with_diverter_chosen_keeps_both_files() {
        let (root, db) = diverted(Some("d"));
        let scan = root.scan(&db, &[0, 1]).unwrap();
        check_tree(&scan);
        let tool = entry(&scan, "/usr/bin/tool");
        assert_eq!(tool.package.as_deref(), Some("d"));
        assert_eq!(tool.digest, digest(b"diverter's tool"));
        assert_eq!(tool.origin, None);
        let real = entry(&scan, "/usr/bin/tool.real");
        assert_eq!(real.package.as_deref(), Some("x"));
        assert_eq!(real.digest, digest(b"x's tool"));
        assert_eq!(real.origin, None);
    }

    #[test]
    fn diversion_without_diverter_reads_the_diverted_bytes_at_the_listed_path() {
        for by in [Some("d"), None] {
            let (root, db) = diverted(by);
            let scan = root.scan(&db, &[0]).unwrap();
            check_tree(&scan);
            let tool = entry(&scan, "/usr/bin/tool");
            assert_eq!(tool.package.as_deref(), Some("x"), "diverter {by:?}");
            assert_eq!(tool.origin.as_deref(), Some("/usr/bin/tool.real"));
            assert_eq!(tool.digest, digest(b"x's tool"));
            assert_eq!(tool.size, 8);
            assert!(!has(&scan, "/usr/bin/tool.real"));
        }
    }

    #[test]
    fn hard_links_point_at_the_first_path() {
        let root = Root::new();
        root.file("usr/bin/b", b"same inode")
            .file("usr/bin/lonely", b"one listed link");
        fs::hard_link(root.host("usr/bin/b"), root.host("usr/bin/a")).unwrap();
        fs::hard_link(root.host("usr/bin/b"), root.host("usr/bin/c")).unwrap();
        fs::hard_link(root.host("usr/bin/lonely"), root.host("usr/lonely")).unwrap();
        let db = db(vec![package(
            "a",
            &["/usr/bin/c", "/usr/bin/b", "/usr/bin/a", "/usr/bin/lonely"],
        )]);
        let scan = root.scan(&db, &[0]).unwrap();
        check_tree(&scan);
        let a = entry(&scan, "/usr/bin/a");
        assert_eq!(a.kind, FileKind::File);
        assert_eq!(a.digest, digest(b"same inode"));
        for path in ["/usr/bin/b", "/usr/bin/c"] {
            let e = entry(&scan, path);
            assert_eq!(e.kind, FileKind::Hardlink, "{path}");
            assert_eq!(e.target.as_deref(), Some("/usr/bin/a"));
            assert_eq!((e.size, e.digest.as_deref()), (0, None));
        }
        let lonely = entry(&scan, "/usr/bin/lonely");
        assert_eq!(
            lonely.kind,
            FileKind::File,
            "its other link is not in the scan"
        );
        assert_eq!(lonely.digest, digest(b"one listed link"));
    }

    #[test]
    fn owners_are_recorded_by_id_and_name() {
        let root = Root::new();
        // SAFETY: geteuid and getegid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        root.file(
            "etc/passwd",
            format!("# comment\n+::::::\ntester:x:{uid}:{gid}::/:/bin/sh\nowner:x:4321:4322::/:\nalias:x:4321:1::/:\n").as_bytes(),
        )
        .file("etc/group", format!("testers:x:{gid}:\nowners:x:4322:\n").as_bytes())
        .file("srv/mine", b"mine")
        .file("srv/theirs", b"theirs")
        .file("srv/nobodys", b"nobody's");
        let db = db(vec![package(
            "a",
            &["/srv/mine", "/srv/theirs", "/srv/nobodys"],
        )]);

        let accounts = Accounts::read(root.0.path()).unwrap();
        assert_eq!(accounts.user(4321), "owner", "first name for an id wins");
        assert_eq!(accounts.group(4322), "owners");
        assert_eq!(accounts.user(77777), "");

        let owned_by_root = is_root();
        if owned_by_root {
            std::os::unix::fs::chown(root.host("srv/theirs"), Some(4321), Some(4322)).unwrap();
            std::os::unix::fs::chown(root.host("srv/nobodys"), Some(77777), Some(77778)).unwrap();
        }
        let scan = root.scan(&db, &[0]).unwrap();
        let mine = entry(&scan, "/srv/mine");
        assert_eq!((mine.uid, mine.gid), (uid, gid));
        assert_eq!(
            (mine.user.as_str(), mine.group.as_str()),
            ("tester", "testers")
        );
        if owned_by_root {
            let theirs = entry(&scan, "/srv/theirs");
            assert_eq!((theirs.uid, theirs.gid), (4321, 4322));
            assert_eq!(
                (theirs.user.as_str(), theirs.group.as_str()),
                ("owner", "owners")
            );
            let nobodys = entry(&scan, "/srv/nobodys");
            assert_eq!((nobodys.uid, nobodys.user.as_str()), (77777, ""));
            assert_eq!(nobodys.group, "");
        } else {
            eprintln!("not root: chown to foreign owners skipped");
        }
    }

    #[test]
    fn conffiles_are_marked_unless_obsolete() {
        let root = Root::new();
        root.file("etc/a.conf", b"a")
            .file("etc/b.conf", b"b")
            .file("etc/c", b"c");
        let mut pkg = package("a", &["/etc", "/etc/a.conf", "/etc/b.conf", "/etc/c"]);
        pkg.conffiles = vec![
            Conffile {
                path: "/etc/a.conf".into(),
                md5: "0cc175b9c0f1b6a831c399e269772661".into(),
                obsolete: false,
            },
            Conffile {
                path: "/etc/b.conf".into(),
                md5: "92eb5ffee6ae2fec3ad71c777531578f".into(),
                obsolete: true,
            },
        ];
        let scan = root.scan(&db(vec![pkg]), &[0]).unwrap();
        assert!(entry(&scan, "/etc/a.conf").conffile);
        assert!(!entry(&scan, "/etc/b.conf").conffile);
        assert!(!entry(&scan, "/etc/c").conffile);
        assert!(!entry(&scan, "/etc").conffile);
    }

    #[test]
    fn absent_paths_are_reported_missing_not_errors() {
        let root = Root::new();
        root.file("usr/bin/tool", b"tool")
            .file("etc/file", b"not a dir");
        let db = db(vec![package(
            "a",
            &[
                "/usr/bin/tool",
                "/usr/share/doc/a",
                "/usr/share/doc/a/copyright",
                "/etc/file/sub",
            ],
        )]);
        let scan = root.scan(&db, &[0]).unwrap();
        check_tree(&scan);
        assert_eq!(
            scan.missing,
            [
                ("a".to_string(), "/etc/file/sub".to_string()),
                ("a".to_string(), "/usr/share/doc/a".to_string()),
                ("a".to_string(), "/usr/share/doc/a/copyright".to_string()),
            ]
        );
        assert!(!has(&scan, "/usr/share/doc/a"));
        assert!(!has(&scan, "/usr/share"), "no parents for absent paths");
        assert!(has(&scan, "/usr/bin/tool"));
    }

    #[test]
    fn shared_paths_keep_the_first_package_in_name_order_and_parents_are_synthesised() {
        let root = Root::new();
        root.file("opt/deep/er/shared", b"shared")
            .file("etc/b-only", b"b");
        let db = db(vec![
            package("b", &["/etc", "/etc/b-only", "/opt/deep/er/shared"]),
            package("a", &["/etc", "/opt/deep/er/shared"]),
        ]);
        let scan = root.scan(&db, &[0, 1, 0]).unwrap();
        check_tree(&scan);
        assert_eq!(entry(&scan, "/etc").package.as_deref(), Some("a"));
        assert_eq!(entry(&scan, "/etc/b-only").package.as_deref(), Some("b"));
        assert_eq!(
            entry(&scan, "/opt/deep/er/shared").package.as_deref(),
            Some("a")
        );
        for parent in ["/opt", "/opt/deep", "/opt/deep/er"] {
            let e = entry(&scan, parent);
            assert_eq!(
                (e.kind, e.package.as_deref()),
                (FileKind::Dir, None),
                "{parent}"
            );
        }
        let paths: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/",
                "/etc",
                "/etc/b-only",
                "/opt",
                "/opt/deep",
                "/opt/deep/er",
                "/opt/deep/er/shared"
            ]
        );
    }

    #[test]
    fn special_files_and_mode_bits() {
        let root = Root::new();
        root.file("usr/bin/su", b"su").dir("run");
        fs::set_permissions(root.host("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::set_permissions(root.host("run"), fs::Permissions::from_mode(0o1777)).unwrap();
        let fifo =
            CString::new(root.host("run/pipe").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: `fifo` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let null =
            CString::new(root.host("run/null").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: `null` is a valid NUL-terminated path.
        let made_device =
            unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0;
        let db = db(vec![package(
            "a",
            &["/usr/bin/su", "/run", "/run/pipe", "/run/null"],
        )]);
        let scan = root.scan(&db, &[0]).unwrap();
        assert_eq!(entry(&scan, "/usr/bin/su").mode, 0o4755);
        assert_eq!(entry(&scan, "/run").mode, 0o1777);
        let pipe = entry(&scan, "/run/pipe");
        assert_eq!(
            (pipe.kind, pipe.mode, pipe.size),
            (FileKind::Fifo, 0o600, 0)
        );
        if made_device {
            let null = entry(&scan, "/run/null");
            assert_eq!((null.kind, null.device), (FileKind::Char, Some((1, 3))));
        } else {
            eprintln!("mknod not permitted: device part skipped");
            assert_eq!(scan.missing, [("a".to_string(), "/run/null".to_string())]);
        }
    }

    #[test]
    fn file_capabilities_are_recorded_as_hex() {
        let root = Root::new();
        root.file("usr/bin/ping", b"ping")
            .file("usr/bin/plain", b"plain");
        // VFS_CAP_REVISION_2 with the effective flag, permitted = cap_net_raw (bit 13).
        let caps = [
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let db = db(vec![package("a", &["/usr/bin/ping", "/usr/bin/plain"])]);
        let set = is_root()
            && xattr::set(root.host("usr/bin/ping"), "security.capability", &caps).is_ok();
        let scan = root.scan(&db, &[0]).unwrap();
        assert_eq!(entry(&scan, "/usr/bin/plain").caps, None);
        if set {
            assert_eq!(
                entry(&scan, "/usr/bin/ping").caps.as_deref(),
                Some("0100000200200000000000000000000000000000")
            );
        } else {
            eprintln!("cannot set security.capability here (not root or no xattrs): skipped");
        }
    }

    #[test]
    fn io_errors_name_the_path_and_the_package() {
        let root = Root::new();
        root.dir("usr");
        let long = format!("/usr/{}/f", "n".repeat(300));
        let db = db(vec![package("longname", &[&long])]);
        let err = root.scan(&db, &[0]).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        assert!(err.contains("nnnn"), "{err}");
        assert!(err.contains("package longname"), "{err}");

        if !is_root() {
            root.file("etc/secret", b"secret");
            fs::set_permissions(root.host("etc/secret"), fs::Permissions::from_mode(0o000))
                .unwrap();
            let db = DpkgDatabase {
                packages: vec![package("locked", &["/etc/secret"])],
                diversions: Vec::new(),
            };
            let err = root.scan(&db, &[0]).unwrap_err().to_string();
            assert!(err.contains("etc/secret"), "{err}");
            assert!(err.contains("package locked"), "{err}");
        }
    }

    #[test]
    fn unknown_package_index_is_an_error() {
        let root = Root::new();
        let err = root.scan(&db(Vec::new()), &[3]).unwrap_err();
        assert!(matches!(err, ScanError::UnknownPackage(3)), "{err}");
    }

    #[test]
    fn scans_a_database_read_from_the_sysroot() {
        let root = Root::new();
        root.file(
            "var/lib/dpkg/status",
            b"Package: libz\nStatus: install ok installed\nArchitecture: amd64\n\
              Multi-Arch: same\nVersion: 1.2\n",
        )
        .file(
            "var/lib/dpkg/info/libz:amd64.list",
            b"/.\n/lib\n/lib/libz.so.1\n",
        )
        .file("usr/lib/libz.so.1", b"zlib")
        .link("lib", "usr/lib");
        let db = DpkgDatabase::read(root.0.path()).unwrap();
        let scan = root.scan(&db, &[0]).unwrap();
        check_tree(&scan);
        let paths: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/", "/lib", "/usr", "/usr/lib", "/usr/lib/libz.so.1"]
        );
        assert_eq!(entry(&scan, "/usr/lib/libz.so.1").digest, digest(b"zlib"));
        assert_eq!(entry(&scan, "/lib").package.as_deref(), Some("libz"));
    }
}
