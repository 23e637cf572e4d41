//! The fetch stage: where each chosen package's files come from. Installed packages
//! are read on the host later; the others' archives are taken from the pool or
//! downloaded from apt's lists into it, and read once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};

use md5::Digest;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::Settings;
use super::error::Result;
use super::kept::{self, build_identity};
use super::read_once::ReadOnce;
use crate::lock::{FileEntry, FileKind};
use crate::materialise::stamp::Identity;
use crate::progress::Stage;
use crate::repo::ArchiveRead;
use crate::resolve::Resolution;
use crate::source::dpkg::Conffile;
use crate::source::dpkg::apt::{self, AptError, AptGet};
use crate::source::dpkg::catalog::{Catalog, Provenance};
use crate::source::dpkg::deb::{DebArchive, KeptBytes, canonical_usrmerge};
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
/// have installed, and reads it unless `read` holds it already, or keeps what an
/// earlier compile read of the same archive; `every_file` keeps all their bytes (the
/// recipe trims to `paths`). `stage` shows what is being done.
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
/// Unless `every_file` (whose reads keep every file's bytes), the data of an archive
/// the repository holds a read of (of the same bytes, by this build) is not read again,
/// and the reads made are given `read` to keep there.
fn read_archives(
    read: &ReadOnce,
    paths: &[&Path],
    every_file: bool,
) -> Result<Vec<Arc<ArchivePackage>>> {
    let keeping = read.kept.zip(build_identity()).filter(|_| !every_file);
    let (memo, to_keep) = (&read.archives, &read.to_keep);
    // The bytes of each archive this compile has not read yet as they are now, then
    // what was read of them before.
    let seeing = keeping.is_some();
    let seen: Vec<Option<Seen>> = (paths.par_iter())
        .map(|path| {
            let unread = seeing && !memo.has(&(path.to_path_buf(), every_file));
            unread.then(|| Seen::now(path)).flatten()
        })
        .collect();
    let mut found = Vec::with_capacity(paths.len());
    for (path, seen) in paths.iter().zip(&seen) {
        found.push(match (keeping, seen) {
            (Some((repo, build)), Some(seen)) => repo
                .archive_read(path, &seen.archive, build)?
                .and_then(|read| kept::decode::<DataRead>(&read)),
            _ => None,
        });
    }
    let archives = (paths.par_iter().zip(seen).zip(found))
        .map(|((path, seen), found)| {
            memo.get_or_make((path.to_path_buf(), every_file), || {
                let archive = DebArchive::open(path)?;
                // Taken only if the archive opened is still the one hashed.
                let still = |seen: &Option<Seen>| seen.as_ref().is_some_and(|s| s.unchanged(path));
                let data = match found.filter(|_| still(&seen)) {
                    Some(data) => data,
                    None => {
                        let data = DataRead::of(&archive, every_file)?;
                        // Kept only if the archive stayed the one hashed while it was read.
                        if still(&seen)
                            && let Some(seen) = seen
                            && data.keeps_little()
                            && let Some(read) = kept::encode(&data)
                        {
                            (to_keep.lock().unwrap_or_else(PoisonError::into_inner)).push(
                                ArchiveRead {
                                    path: path.to_path_buf(),
                                    archive: seen.archive,
                                    read,
                                },
                            );
                        }
                        data
                    }
                };
                Ok(ArchivePackage::new(archive, data))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(archives)
}

/// An archive as it was seen before its data was read: the BLAKE3 of its bytes, and
/// the identity of its file, which must not change while it is read.
struct Seen {
    archive: String,
    identity: Identity,
}

impl Seen {
    /// The archive at `path` as it is now; `None` if it cannot be read (its read will
    /// tell why).
    fn now(path: &Path) -> Option<Seen> {
        let file = std::fs::File::open(path).ok()?;
        let identity = Identity::from(&file.metadata().ok()?);
        let digest = blake3::Hasher::new().update_reader(file).ok()?.finalize();
        Some(Seen {
            archive: digest.to_hex().to_string(),
            identity,
        })
    }

    /// Whether the file at `path` is still the one seen: a file written while it was
    /// read could hold other bytes than those hashed.
    fn unchanged(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|meta| Identity::from(&meta) == self.identity)
    }
}

/// What reading an archive's data gives: its entries, and the bytes of the files kept.
#[derive(Serialize, Deserialize)]
struct DataRead {
    entries: Vec<FileEntry>,
    contents: KeptBytes,
}

/// The most file bytes a kept read holds: the repository keeps what compile found in
/// an archive, not its files (a read keeps every file's bytes when the archive has no
/// md5sums, whose sums compile then computes).
const KEPT_BYTES: usize = 1 << 20;

impl DataRead {
    /// Whether the bytes it holds are few enough to keep in the repository.
    fn keeps_little(&self) -> bool {
        self.contents.values().map(Vec::len).sum::<usize>() <= KEPT_BYTES
    }

    /// Reads the data of `archive`, keeping the bytes of the files compile reads; with
    /// `every_file`, of all of them (trimming to `paths` reads any file that may be a
    /// program).
    fn of(archive: &DebArchive, every_file: bool) -> Result<DataRead> {
        let conffile_paths: BTreeSet<&str> = archive.conffiles.iter().map(String::as_str).collect();
        let sums_missing = archive.md5sums.is_empty();
        let (entries, contents) = archive.entries_keeping(|path| {
            every_file
                || sums_missing
                || conffile_paths.contains(path)
                || canonical_usrmerge(path) == MASTER_GROUP
        })?;
        Ok(DataRead { entries, contents })
    }
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
    /// The package of `archive`, whose data read `data`.
    fn new(archive: DebArchive, data: DataRead) -> ArchivePackage {
        let conffile_paths: BTreeSet<&str> = archive.conffiles.iter().map(String::as_str).collect();
        let sums_missing = archive.md5sums.is_empty();
        let DataRead {
            entries: raw,
            contents,
        } = data;
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
        ArchivePackage {
            archive,
            listed,
            entries,
            contents,
            stanza,
            conffiles,
            md5sums,
        }
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
    use crate::repo::Repository;
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

    /// The kept read of the archive at `path`, as the repository has it.
    fn kept_read(repo: &Repository, path: &Path) -> Option<DataRead> {
        let digest = Seen::now(path).unwrap().archive;
        let build = build_identity().unwrap();
        (repo.archive_read(path, &digest, build).unwrap()).and_then(|r| kept::decode(&r))
    }

    /// What a compile reads of an archive's data is kept, and the next compile takes it
    /// for the same bytes (shown by a kept read altered in the repository), not for an
    /// archive replaced at the same path, nor when every file's bytes are asked for.
    #[test]
    fn an_archive_s_read_is_kept_for_the_next_compile_of_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(&dir.path().join("repo.sqlite")).unwrap();
        let path = dir.path().join("hello_1.0_amd64.deb");
        std::fs::write(&path, simple_deb("hello", "1.0")).unwrap();
        let read = |every_file| {
            let read = ReadOnce::kept_in(&repo);
            let archives = read_archives(&read, &[&path], every_file).unwrap();
            read.keep().unwrap();
            archives[0].entries.clone()
        };
        let first = read(false);
        let mut kept = kept_read(&repo, &path).expect("the read is kept");
        // Altered where only the kept read can take it from.
        let altered = "0".repeat(64);
        for entry in &mut kept.entries {
            if entry.digest.is_some() {
                entry.digest = Some(altered.clone());
            }
        }
        let archive = Seen::now(&path).unwrap().archive;
        let encoded = kept::encode(&kept).unwrap();
        let read_again = [ArchiveRead {
            path: path.clone(),
            archive,
            read: encoded,
        }];
        repo.keep_archive_reads(&read_again, build_identity().unwrap())
            .unwrap();
        let digests = |entries: &[FileEntry]| -> Vec<Option<String>> {
            entries.iter().map(|e| e.digest.clone()).collect()
        };
        let taken = read(false);
        assert!(digests(&taken).contains(&Some(altered.clone())));
        assert_eq!(
            digests(&read(true)),
            digests(&first),
            "every file: read again"
        );
        // Other bytes at the same path: read, and kept in place of the old read.
        std::fs::write(&path, simple_deb("hello", "2.0")).unwrap();
        let replaced = read(false);
        assert!(!digests(&replaced).contains(&Some(altered)));
        let kept = kept_read(&repo, &path).expect("the new read is kept");
        assert_eq!(
            digests(&kept.entries),
            digests(
                &DataRead::of(&DebArchive::open(&path).unwrap(), false)
                    .unwrap()
                    .entries
            )
        );
    }
}
