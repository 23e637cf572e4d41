//! The gather stage: the chosen packages' file entries (installed ones scanned on the
//! host, the others as their archives say), their dpkg records with the maintainer
//! scripts, and the unpacked dpkg database the configure stage starts from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use md5::Digest;

use super::error::{CompileError, Result};
use super::fetch::{Fetched, MASTER_GROUP};
use super::read_once::ReadOnce;
use crate::lock::{FileEntry, FileKind};
use crate::progress::Progress;
use crate::source::dpkg::catalog::Catalog;
use crate::source::dpkg::scan::{Scan, scan_installed};
use crate::system::{self, PackageRecord};

/// The chosen packages' file entries with the bytes that only archives hold.
#[derive(Default)]
pub struct Tree {
    /// Sorted by path.
    pub entries: Vec<FileEntry>,
    /// What the user should know about the tree (modified conffiles).
    pub warnings: Vec<String>,
    /// Bytes compile reads that the host does not hold at the entry's path (archive
    /// files, packaged conffiles), by path.
    pub contents: HashMap<String, Vec<u8>>,
    /// Paths whose locked bytes are a packaged conffile replacing the host's modified
    /// one: kept in the blob store, since the host cannot supply them.
    pub pristine: Vec<String>,
    /// Paths dpkg lists that the host lacks: (package, path).
    pub missing: Vec<(String, String)>,
}

impl Tree {
    /// The entry at `path`, if the tree has one.
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        let at = self.entries.binary_search_by(|e| e.path.as_str().cmp(path));
        at.ok().map(|at| &self.entries[at])
    }

    /// The bytes of `entry` of the tree: compile's copy when it read them from an
    /// archive (or took a packaged conffile), else the host file under `sysroot` at the
    /// entry's origin (a diverted file's real place). A hard link's are its target's.
    pub fn bytes(&self, sysroot: &Path, entry: &FileEntry) -> std::io::Result<Vec<u8>> {
        let path = match entry.kind {
            FileKind::Hardlink => entry.target.as_deref().unwrap_or(&entry.path),
            _ => &entry.path,
        };
        match self.contents.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None => {
                let at = entry.origin.as_deref().unwrap_or(path);
                std::fs::read(sysroot.join(at.trim_start_matches('/')))
            }
        }
    }
}

/// What the chosen packages bring: their files and their dpkg records.
pub struct Gathered<'a> {
    /// Their files.
    pub tree: Tree,
    /// Their dpkg records, installed packages first.
    pub records: Vec<PackageRecord<'a>>,
}

/// The scan of the installed packages `chosen` (indices into `catalog.installed`), made
/// now unless this compile made it already.
fn scan(
    read: &ReadOnce,
    sysroot: &Path,
    catalog: &Catalog,
    chosen: &[usize],
    progress: &Progress,
) -> Result<Arc<Scan>> {
    let mut key = chosen.to_vec();
    key.sort_unstable();
    key.dedup();
    let scan = (read.scans).get_or_make(key, || {
        scan_installed(sysroot, &catalog.installed, chosen, progress)
    })?;
    Ok(scan)
}

/// The entries of the chosen packages: installed ones scanned on the host, archive ones
/// as their archives say, and their records. One entry per path, installed first; merged
/// /usr's top-level links are added when archives bring `/usr/bin` and friends and
/// nothing else did.
pub fn gather<'a>(
    sysroot: &Path,
    catalog: &'a Catalog,
    fetched: &'a Fetched,
    read: &ReadOnce,
    progress: &Progress,
) -> Result<Gathered<'a>> {
    let (installed, archives) = (&fetched.installed, &fetched.archives);
    let scan = scan(read, sysroot, catalog, installed, progress)?;
    let mut entries: BTreeMap<String, FileEntry> = (scan.entries.iter())
        .map(|e| (e.path.clone(), e.clone()))
        .collect();
    let mut contents = HashMap::new();
    for package in archives {
        for entry in &package.entries {
            if entries.contains_key(&entry.path) {
                continue;
            }
            if let Some(bytes) = package.contents.get(&entry.path) {
                contents.insert(entry.path.clone(), bytes.clone());
            }
            entries.insert(entry.path.clone(), entry.clone());
        }
    }
    let (warnings, pristine) =
        pristine_conffiles(sysroot, catalog, installed, &mut entries, &mut contents)?;
    if !archives.is_empty() {
        for top in ["bin", "sbin", "lib", "lib64"] {
            let usr = format!("/usr/{top}");
            let link = format!("/{top}");
            if entries.get(&usr).is_some_and(|e| e.kind == FileKind::Dir)
                && !entries.contains_key(&link)
            {
                entries.insert(
                    link.clone(),
                    FileEntry {
                        kind: FileKind::Symlink,
                        mode: 0o777,
                        target: Some(format!("usr/{top}")),
                        ..FileEntry::directory(&link)
                    },
                );
            }
        }
    }
    let tree = Tree {
        entries: entries.into_values().collect(),
        contents,
        pristine,
        missing: scan.missing.clone(),
        warnings,
    };
    Ok(Gathered {
        tree,
        records: records(catalog, fetched)?,
    })
}

/// The dpkg records of the chosen packages, installed ones first. When dpkg is among
/// them the tree will be configured, and each record carries its maintainer scripts and
/// the other `info/` files dpkg keeps.
fn records<'a>(catalog: &'a Catalog, fetched: &'a Fetched) -> Result<Vec<PackageRecord<'a>>> {
    let mut records: Vec<PackageRecord> = (fetched.installed.iter())
        .map(|&i| PackageRecord::try_from(&catalog.installed.packages[i]))
        .collect::<Result<_, _>>()?;
    records.extend(fetched.archives.iter().map(|a| a.record()));
    if !records.iter().any(|r| r.name == "dpkg") {
        return Ok(records);
    }
    let (installed, archived) = records.split_at_mut(fetched.installed.len());
    for (record, &i) in installed.iter_mut().zip(&fetched.installed) {
        let package = &catalog.installed.packages[i];
        for name in crate::source::dpkg::INFO_FILES {
            if let Some(text) = package.info_file(name)? {
                record.info.push((name, text));
            }
        }
    }
    for (record, archive) in archived.iter_mut().zip(&fetched.archives) {
        for name in crate::source::dpkg::INFO_FILES {
            if let Some(text) = archive.archive.info_file(name) {
                record.info.push((name, text.to_vec()));
            }
        }
    }
    Ok(records)
}

/// Conffiles the host has modified (their MD5 differs from the one dpkg recorded) are
/// taken as packaged when the package's archive at the same version is in the pool, and
/// kept as the host has them otherwise; either way the user is told. Returns the
/// warnings and the paths that took the packaged bytes.
fn pristine_conffiles(
    sysroot: &Path,
    catalog: &Catalog,
    installed: &[usize],
    entries: &mut BTreeMap<String, FileEntry>,
    contents: &mut HashMap<String, Vec<u8>>,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut pristine_paths = Vec::new();
    for &i in installed {
        let installed = &catalog.installed.packages[i];
        let p = &installed.package;
        let mut archive_files: Option<HashMap<String, Vec<u8>>> = None;
        for conffile in installed.conffiles.iter().filter(|c| !c.obsolete) {
            let host = sysroot.join(conffile.path.trim_start_matches('/'));
            let bytes = match std::fs::read(&host) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(CompileError::Io { path: host, source }),
            };
            if hex::encode(md5::Md5::digest(&bytes)) == conffile.md5 {
                continue;
            }
            let Some(entry) = entries.get_mut(&conffile.path) else {
                continue;
            };
            if archive_files.is_none() {
                archive_files = match catalog.pool.find(&p.name, &p.version, &p.arch) {
                    Some(archive) => {
                        let conffiles: BTreeSet<&str> = installed
                            .conffiles
                            .iter()
                            .map(|c| c.path.as_str())
                            .collect();
                        Some(archive.entries_keeping(|path| conffiles.contains(path))?.1)
                    }
                    None => Some(HashMap::new()),
                };
            }
            match archive_files.as_ref().and_then(|f| f.get(&conffile.path)) {
                Some(pristine) => {
                    entry.size = pristine.len() as u64;
                    entry.digest = Some(blake3::hash(pristine).to_hex().to_string());
                    contents.insert(conffile.path.clone(), pristine.clone());
                    pristine_paths.push(conffile.path.clone());
                    warnings.push(format!(
                        "conffile {} of {} was modified on the host: the lock takes the packaged version",
                        conffile.path, p.name
                    ));
                }
                None => warnings.push(format!(
                    "conffile {} of {} was modified on the host: the lock takes the host's version (put {}_{}_{}.deb in a pool to take the packaged one)",
                    conffile.path, p.name, p.name, p.version, p.arch
                )),
            }
        }
    }
    Ok((warnings, pristine_paths))
}

/// The dpkg database of the chosen packages, each `unpacked` or not, with a minimal
/// `/dev`: what the packages' files need around them to be a tree dpkg can configure.
pub fn unpacked_system(
    catalog: &Catalog,
    records: &[PackageRecord],
    tree: &Tree,
    sysroot: &Path,
    unpacked: system::Unpacked,
) -> Result<system::Generated> {
    let mut generated = system::dpkg_state(records, &catalog.installed.diversions, unpacked);
    // /dev/tty and the ptys belong to group tty, whose id base-passwd's master fixes.
    let master = (tree.entry(MASTER_GROUP))
        .map(|entry| tree.bytes(sysroot, entry))
        .transpose()
        .map_err(CompileError::io_at(
            &sysroot.join(MASTER_GROUP.trim_start_matches('/')),
        ))?;
    let tty = master.and_then(|m| system::group_id(&String::from_utf8_lossy(&m), "tty"));
    generated.extend(system::dev(tty));
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Origin;
    use crate::source::dpkg::apt::AptLists;
    use crate::source::dpkg::pool::Pool;
    use crate::source::dpkg::{DpkgDatabase, InstalledPackage, Owned, Package};

    #[test]
    fn the_host_is_scanned_once_a_compile_for_each_set_of_packages() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("usr/share/a/file");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "a").unwrap();
        let owning = |name: &str, files: &[&str]| {
            InstalledPackage::owning(
                Package::bare(name, "1", "amd64", Origin::Installed),
                Owned {
                    files: files.iter().map(|f| f.to_string()).collect(),
                    md5sums: BTreeMap::new(),
                    list_path: format!("/var/lib/dpkg/info/{name}.list").into(),
                },
            )
        };
        let installed = DpkgDatabase {
            packages: vec![
                owning(
                    "a",
                    &["/usr", "/usr/share", "/usr/share/a", "/usr/share/a/file"],
                ),
                owning("b", &["/usr"]),
            ],
            diversions: Vec::new(),
        };
        let pool = Pool {
            archives: Vec::new(),
            shadowed: Vec::new(),
            unreadable: Vec::new(),
        };
        let catalog = Catalog::new(installed, pool, AptLists::default(), Path::new("/nowhere"));
        let read = ReadOnce::default();
        let progress = Progress::hidden();
        let first = (scan(&read, root.path(), &catalog, &[0, 1], &progress)).unwrap();
        assert!(first.entries.iter().any(|e| e.path == "/usr/share/a/file"));
        // Gone from the host: only what the first scan made can answer now.
        std::fs::remove_file(&file).unwrap();
        let again = (scan(&read, root.path(), &catalog, &[1, 0, 1], &progress)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = (scan(&read, root.path(), &catalog, &[0], &progress)).unwrap();
        assert!(!other.entries.iter().any(|e| e.path == "/usr/share/a/file"));
    }
}
