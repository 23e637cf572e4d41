//! The fetch stage: where each chosen package's files come from. Installed packages
//! are read on the host later; the others' archives are taken from the pool or
//! downloaded from apt's lists into it, and read once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use md5::Digest;
use rayon::prelude::*;

use super::Settings;
use super::error::Result;
use super::read_once::ReadOnce;
use crate::lock::{FileEntry, FileKind};
use crate::progress::Stage;
use crate::resolve::Resolution;
use crate::source::dpkg::Conffile;
use crate::source::dpkg::apt::{self, AptError, AptGet};
use crate::source::dpkg::catalog::{Catalog, Provenance};
use crate::source::dpkg::deb::{DebArchive, canonical_usrmerge};
use crate::system::{self, PackageRecord};

/// base-passwd's master of `/etc/group`, which fixes the `tty` group of `/dev`.
pub const MASTER_GROUP: &str = "/usr/share/base-passwd/group.master";

/// The chosen packages, by where their files come from.
pub struct Fetched {
    /// Indices into the catalog's installed packages.
    pub installed: Vec<usize>,
    /// The others, read from their archives.
    pub archives: Vec<Arc<ArchivePackage>>,
    /// The archives of those known from apt's lists, in the pool: downloaded now, or
    /// by an earlier compile.
    pub downloaded: Vec<PathBuf>,
}

impl Fetched {
    /// The folders the archives are in, for the stage to take their bytes from.
    pub fn pools(&self) -> Vec<PathBuf> {
        let mut pools: Vec<PathBuf> = (self.archives.iter())
            .filter_map(|a| a.archive.path.parent().map(Path::to_path_buf))
            .collect();
        pools.sort();
        pools.dedup();
        pools
    }
}

/// Finds or downloads the archive of every package of `resolution` the host does not
/// have installed, and reads it unless `read` holds it already; `every_file` keeps all
/// their bytes (the recipe trims to `paths`). `stage` shows what is being done.
pub fn fetch(
    settings: &Settings,
    catalog: &Catalog,
    resolution: &Resolution,
    every_file: bool,
    read: &ReadOnce,
    stage: &Stage,
) -> Result<Fetched> {
    let mut installed = Vec::new();
    // Where each archive is, in the resolution's order: the pool's, or the index of a
    // package apt must download, all of which are fetched in one go.
    let mut places = Vec::new();
    let mut from_apt = Vec::new();
    for chosen in &resolution.chosen {
        match catalog.provenance(chosen.index) {
            Provenance::Installed(i) => installed.push(i),
            Provenance::Pool(i) => places.push(Place::Pool(&catalog.pool.archives[i].path)),
            Provenance::Apt(i) => {
                let wanted = &catalog.apt.packages[i];
                if settings.offline {
                    return Err(AptError::Offline {
                        name: wanted.package.name.clone(),
                        version: wanted.package.version.clone(),
                    }
                    .into());
                }
                places.push(Place::Download(from_apt.len()));
                from_apt.push(wanted);
            }
        }
    }
    if !from_apt.is_empty() {
        stage.status(format_args!("downloading {} archives", from_apt.len()));
    }
    let downloaded = apt::fetch(&from_apt, &settings.pool_dir, &AptGet)?;
    let paths: Vec<&Path> = (places.into_iter())
        .map(|place| match place {
            Place::Pool(path) => path,
            Place::Download(i) => &downloaded[i],
        })
        .collect();
    stage.status(format_args!("reading {} archives", paths.len()));
    let archives = read_archives(read, &paths, every_file)?;
    Ok(Fetched {
        installed,
        archives,
        downloaded,
    })
}

/// The archives at `paths`, in order, each read unless this compile read it already;
/// side by side, one a core, since each one's data is decompressed and hashed whole.
fn read_archives(
    read: &ReadOnce,
    paths: &[&Path],
    every_file: bool,
) -> Result<Vec<Arc<ArchivePackage>>> {
    (paths.par_iter())
        .map(|path| {
            (read.archives).get_or_make((path.to_path_buf(), every_file), || {
                ArchivePackage::read(DebArchive::open(path)?, every_file)
            })
        })
        .collect()
}

/// Where a chosen package's archive is before it is read.
enum Place<'a> {
    /// In a pool folder.
    Pool(&'a Path),
    /// Downloaded: its index among the archives apt fetches.
    Download(usize),
}

/// A chosen package that comes from an archive, read once.
pub struct ArchivePackage {
    /// The archive.
    pub archive: DebArchive,
    /// Paths as dpkg lists them (the archive's names, `/` left out).
    listed: Vec<String>,
    /// Entries at their merged-/usr paths.
    pub entries: Vec<FileEntry>,
    /// Bytes of the files compile itself reads (conffiles, base-passwd's group master),
    /// by merged-/usr path; the rest stays in the archive.
    pub contents: HashMap<String, Vec<u8>>,
    /// The status stanza dpkg would write after installing it.
    stanza: String,
    conffiles: Vec<Conffile>,
    /// The archive's md5sums, or, when it ships none, the ones dpkg computes as it
    /// unpacks (`dpkg --audit` calls a package without them broken).
    md5sums: BTreeMap<String, String>,
}

impl ArchivePackage {
    /// Reads the archive, keeping the bytes compile reads; with `every_file`, all of
    /// them (trimming to `paths` reads any file that may be a program).
    fn read(archive: DebArchive, every_file: bool) -> Result<ArchivePackage> {
        let conffile_paths: BTreeSet<&str> = archive.conffiles.iter().map(String::as_str).collect();
        let sums_missing = archive.md5sums.is_empty();
        let (raw, contents) = archive.entries_keeping(|path| {
            every_file
                || sums_missing
                || conffile_paths.contains(path)
                || canonical_usrmerge(path) == MASTER_GROUP
        })?;
        // Debian's md5sums leave conffiles out; dpkg records their MD5 in `Conffiles`.
        let conffile_md5: HashMap<&str, String> = contents
            .iter()
            .filter(|(path, _)| conffile_paths.contains(path.as_str()))
            .map(|(path, bytes)| (path.as_str(), hex::encode(md5::Md5::digest(bytes))))
            .collect();
        let listed = raw
            .iter()
            .filter(|e| e.path != "/")
            .map(|e| e.path.clone())
            .collect();
        let entries = raw
            .into_iter()
            .map(|mut e| {
                e.path = canonical_usrmerge(&e.path);
                if e.kind == FileKind::Hardlink {
                    e.target = e.target.map(|t| canonical_usrmerge(&t));
                }
                e
            })
            .collect();
        let conffiles: Vec<Conffile> = archive
            .conffiles
            .iter()
            .map(|path| Conffile {
                path: path.clone(),
                md5: conffile_md5
                    .get(path.as_str())
                    .cloned()
                    .unwrap_or_else(|| "newconffile".to_string()),
                obsolete: false,
            })
            .collect();
        let stanza = system::installed_stanza(&archive.control, &conffiles);
        let md5sums = if sums_missing {
            (contents.iter())
                .map(|(path, bytes)| (path.clone(), hex::encode(md5::Md5::digest(bytes))))
                .collect()
        } else {
            archive.md5sums.clone()
        };
        let contents = contents
            .into_iter()
            .map(|(path, bytes)| (canonical_usrmerge(&path), bytes))
            .collect();
        Ok(ArchivePackage {
            archive,
            listed,
            entries,
            contents,
            stanza,
            conffiles,
            md5sums,
        })
    }

    /// What the dpkg database of the tree says of it.
    pub fn record(&self) -> PackageRecord<'_> {
        let p = &self.archive.package;
        PackageRecord {
            name: &p.name,
            arch: &p.arch,
            multi_arch_same: p.multi_arch == crate::source::dpkg::MultiArch::Same,
            stanza: &self.stanza,
            files: &self.listed,
            md5sums: &self.md5sums,
            conffiles: &self.conffiles,
            info: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::dpkg::deb::testing::simple_deb;

    #[test]
    fn an_archive_is_read_once_a_compile_for_each_way_of_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hello_1.0_amd64.deb");
        std::fs::write(&path, simple_deb("hello", "1.0")).unwrap();
        let read = ReadOnce::default();
        let first = read_archives(&read, &[&path], false).unwrap();
        // Gone from the pool: only what the first read kept can answer now.
        std::fs::remove_file(&path).unwrap();
        let again = read_archives(&read, &[&path, &path], false).unwrap();
        assert!(Arc::ptr_eq(&first[0], &again[0]));
        assert!(Arc::ptr_eq(&first[0], &again[1]));
        assert!(
            read_archives(&read, &[&path], true).is_err(),
            "keeping every file's bytes is another read"
        );
    }
}
