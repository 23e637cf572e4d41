//! Package archives as a byte source: a locked package's `.deb` or `.rpm` (as its lock's
//! backend says), found in the pool folders (or their createrepo_c repositories),
//! unpacked once per run into a scratch folder beside OUT whose files are named by their
//! BLAKE3 (laid out as the blob store is), so a file is then read (and checked) like any
//! other source; small files stay in memory (up to a budget) instead. Only contents the
//! lock holds are unpacked. When the run is given a folder to keep them in
//! (`store/unpacked`), the unpacked files the lock holds are copied there too, so that
//! later runs read them instead of decompressing the archive again: those of packages
//! whose files average a file-system block at least ([`KEPT_AVERAGE_MIN`]).
//!
//! Every archive claiming the package's name, version and arch is a candidate, in pool
//! order; the first that holds the locked bytes supplies them, so a junk or shadowing
//! archive earlier in the pool (an earlier `--pool`, a name that sorts first) costs an
//! unpacking, never the output. Nothing is scanned or unpacked unless some file needs
//! it: a lock the host supplies whole never looks at the pool.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::excerpt::excerpt;
use crate::lock::Backend;
use crate::lock::{Lock, LockedPackage};
use crate::repo::{BlobStore, blob_path};
use crate::source::dpkg::deb::{DebArchive, DebError};
use crate::source::dpkg::pool::Pool;
use crate::source::rpm::catalog::RpmCatalog;
use crate::source::rpm::{RpmArchive, RpmPackage};

use super::plan::Expected;

/// A `.deb`'s files at most this large are read into memory and hashed first, so one
/// the lock does not hold (documentation a group excludes) never becomes a scratch file.
const SIFTED_MAX: u64 = 1 << 20;

/// How many bytes of small files one run keeps in memory rather than in scratch files:
/// making and removing thousands of files costs more than the bytes (a 50,000-file
/// lock's archives hold 20 MB), and beyond this they go to the scratch folder.
const HELD_BUDGET: u64 = 64 << 20;

/// A package's files are kept unpacked across runs only when its files in the lock
/// average at least this many bytes, a file-system block: a copy of a smaller file
/// costs a whole block and an inode, and thousands of small files are read faster from
/// their archive than one by one from a folder (for 20,000 files of 330 bytes, copies
/// took 12 times their bytes on disk and made a chroot slower).
const KEPT_AVERAGE_MIN: u64 = 4096;

/// Small files unpacked into memory, by BLAKE3 (hex), and their bytes in all.
#[derive(Default)]
struct InMemory {
    files: HashMap<String, Arc<[u8]>>,
    bytes: u64,
}

/// What an archive supplies for a file.
pub(crate) enum Unpacked {
    /// Its unpacked copy in the scratch folder.
    File(PathBuf),
    /// Its bytes, held in memory: they are what the digest they are found by was
    /// computed from.
    Held(Arc<[u8]>),
}

/// One archive's unpacking: done once, by whichever thread needs it first; then
/// whether it succeeded.
type Unpacking = OnceLock<Result<(), Unavailable>>;

/// Why the archives do not supply a file.
#[derive(Debug, Clone)]
pub(crate) enum Unavailable {
    /// No archive has it as locked: the reason, as a drift report says it.
    Drift(String),
    /// Writing the scratch folder beside OUT failed (a full disk...): an error of the
    /// output, not of the sources. Shared, since every file of the archive gets it.
    Scratch(Arc<io::Error>),
}

/// The archives of one materialise run.
pub(crate) struct Archives<'a> {
    /// Folders of `.deb` files, in preference order.
    dirs: &'a [PathBuf],
    /// The lock's packages by name.
    packages: HashMap<&'a str, &'a LockedPackage>,
    /// Where unpacked files go (a private folder beside OUT, removed with the run).
    scratch: PathBuf,
    /// Which kind of archive the lock's packages come in.
    backend: Backend,
    /// The pool, surveyed the first time an archive is wanted.
    pool: OnceLock<Result<Surveyed, String>>,
    /// The lock's file contents (BLAKE3, hex): only these are unpacked.
    wanted: HashSet<&'a str>,
    /// Small files unpacked into memory.
    held: Mutex<InMemory>,
    /// Per archive path: its unpacking.
    unpacked: Mutex<HashMap<PathBuf, Arc<Unpacking>>>,
    /// Names the partial files of every unpacking, which run on several threads.
    partials: AtomicU64,
    /// Where unpacked files are kept across runs, if anywhere.
    kept_in: Option<&'a Path>,
    /// The packages whose files are kept there ([`KEPT_AVERAGE_MIN`]).
    keeps: HashSet<&'a str>,
    /// That folder as a store of copies, opened the first time a file is kept; `None`
    /// when it cannot be (the run goes on without keeping).
    kept: OnceLock<Option<BlobStore>>,
}

impl<'a> Archives<'a> {
    /// Archives for the packages of `lock`, looked for in `dirs`; files are unpacked
    /// into `scratch`, an existing empty folder, and copied into `kept_in` if given.
    pub(crate) fn new(
        lock: &'a Lock,
        dirs: &'a [PathBuf],
        scratch: &Path,
        kept_in: Option<&'a Path>,
    ) -> Archives<'a> {
        let mut packages = HashMap::new();
        for package in &lock.packages {
            packages.entry(package.name.as_str()).or_insert(package);
        }
        Archives {
            dirs,
            packages,
            wanted: (lock.files.iter())
                .filter_map(|f| f.digest.as_deref())
                .collect(),
            held: Mutex::new(InMemory::default()),
            backend: lock.inputs.backend,
            scratch: scratch.to_path_buf(),
            pool: OnceLock::new(),
            unpacked: Mutex::new(HashMap::new()),
            partials: AtomicU64::new(0),
            kept_in,
            // A run that keeps nothing (compile's staging) need not weigh the packages.
            keeps: kept_in.map_or_else(HashSet::new, |_| worth_keeping(lock)),
            kept: OnceLock::new(),
        }
    }

    /// Where an earlier run kept the file of `package` whose content is `expected`,
    /// when that package's files are kept; it may be missing, or not hold those bytes.
    pub(crate) fn kept_copy(&self, package: &str, expected: &Expected) -> Option<PathBuf> {
        let dir = self.kept_in.filter(|_| self.keeps.contains(package))?;
        Some(blob_path(dir, expected.digest.to_hex().as_str()))
    }

    /// The unpacked copy of the file of `package` whose content is `expected`, with the
    /// file name of the archive that held it: the first candidate archive, in pool
    /// order, that has it. Otherwise why none could supply it, each candidate's reason
    /// as a drift report says it.
    pub(crate) fn file(
        &self,
        package: &str,
        expected: &Expected,
    ) -> Result<(Unpacked, String), Unavailable> {
        let locked = self
            .packages
            .get(package)
            .ok_or_else(|| format!("package {} is not in the lock", excerpt(package)))?;
        let pool = self
            .pool
            .get_or_init(|| Surveyed::survey(self.backend, self.dirs))
            .as_ref()
            .map_err(|e| format!("pool: {e}"))?;
        let hex = expected.digest.to_hex();
        let path = blob_path(&self.scratch, hex.as_str());
        let mut tried = Vec::new();
        for archive in pool.candidates(locked) {
            let name = file_name(archive.path());
            match self.unpacking(archive) {
                Ok(()) => {
                    if let Some(bytes) = self.held_bytes(hex.as_str()) {
                        return Ok((Unpacked::Held(bytes), name));
                    }
                    if path.is_file() {
                        return Ok((Unpacked::File(path), name));
                    }
                    tried.push(format!("archive {name}: no file with the locked content"));
                }
                Err(Unavailable::Drift(why)) => tried.push(why),
                Err(scratch) => return Err(scratch),
            }
        }
        if tried.is_empty() {
            let mut why = format!(
                "no archive of {} {} ({}) in the pool folders",
                excerpt(&locked.name),
                excerpt(&locked.version),
                excerpt(&locked.arch)
            );
            if let Some((count, first)) = pool.unreadable() {
                why += &format!(" ({count} unreadable archives skipped, the first: {first})");
            }
            tried.push(why);
        }
        Err(Unavailable::Drift(tried.join("; ")))
    }

    /// Unpacks `archive` unless this run already did (or is doing) it.
    fn unpacking(&self, archive: Candidate) -> Result<(), Unavailable> {
        let once = {
            let mut unpacked = self
                .unpacked
                .lock()
                .map_err(|_| Unavailable::Drift("the archive cache was poisoned".to_string()))?;
            Arc::clone(unpacked.entry(archive.path().to_path_buf()).or_default())
        };
        once.get_or_init(|| {
            let unpacked = match archive {
                Candidate::Deb(deb) => self.unpack_deb(deb),
                Candidate::Rpm(path, package) => self.unpack_rpm(path, package),
            };
            unpacked.map_err(|e| match e {
                // Only the scratch folder is written to.
                Unpack::Scratch(source) => Unavailable::Scratch(Arc::new(source)),
                Unpack::Archive(why) => {
                    Unavailable::Drift(format!("archive {}: {why}", file_name(archive.path())))
                }
            })
        })
        .clone()
    }

    /// Unpacks every regular file of `archive` by content.
    fn unpack_deb(&self, archive: &DebArchive) -> Result<(), Unpack> {
        let keeping = self.keeps.contains(archive.package.name.as_str());
        let unpacked = archive.for_each_file(|file| {
            let entry = file.path().to_string();
            let scratch = |source| DebError::Write {
                path: archive.path.clone(),
                entry: entry.clone(),
                source,
            };
            if file.size() > SIFTED_MAX {
                return self.keep(keeping, |out| file.copy_to(out), scratch);
            }
            let mut bytes = Vec::new();
            let digest = file.copy_to(&mut bytes)?;
            if !self.wanted.contains(digest.as_str()) || self.hold(keeping, &digest, &bytes) {
                return Ok(());
            }
            self.keep(
                keeping,
                |out| {
                    out.write_all(&bytes).map_err(&scratch)?;
                    Ok(digest)
                },
                scratch,
            )
        });
        unpacked.map_err(|e| match e {
            DebError::Write { source, .. } => Unpack::Scratch(source),
            other => Unpack::Archive(other.to_string()),
        })
    }

    /// Unpacks every regular file of `package`'s `.rpm` at `path` by content (each
    /// checked against the header's digest as it is read; the archive against its
    /// repository's metadata first, when that listed it).
    fn unpack_rpm(&self, path: &Path, package: &RpmPackage) -> Result<(), Unpack> {
        let archive =
            RpmArchive::open_as(path, package).map_err(|e| Unpack::Archive(e.to_string()))?;
        let keeping = self.keeps.contains(package.name.as_str());
        let mut failed = None;
        let unpacked = archive.for_each_file(|_, bytes| {
            let digest = blake3::hash(bytes).to_hex();
            let wanted = self.wanted.contains(digest.as_str());
            if failed.is_none() && wanted && !self.hold(keeping, digest.as_str(), bytes) {
                let write = |out: &mut dyn io::Write| {
                    out.write_all(bytes).map_err(Unpack::Scratch)?;
                    Ok(digest.to_string())
                };
                // Kept aside: the reader's error type has no room for the scratch's.
                failed = self.keep(keeping, write, Unpack::Scratch).err();
            }
            Ok(())
        });
        match (failed, unpacked) {
            (Some(failed), _) => Err(failed),
            (None, Err(e)) => Err(Unpack::Archive(e.to_string())),
            (None, Ok(())) => Ok(()),
        }
    }

    /// Keeps the bytes of a small file whose BLAKE3 is `digest` in memory, unless they
    /// are too large or the budget is spent; whether it did. With `keeping`, they are
    /// also kept across runs.
    fn hold(&self, keeping: bool, digest: &str, bytes: &[u8]) -> bool {
        let size = bytes.len() as u64;
        if size > SIFTED_MAX {
            return false;
        }
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.files.contains_key(digest) {
            return true;
        }
        if held.bytes + size > HELD_BUDGET {
            return false;
        }
        held.files.insert(digest.to_string(), Arc::from(bytes));
        held.bytes += size;
        drop(held);
        if keeping {
            self.keep_across_runs(digest, |out| io::Write::write_all(out, bytes));
        }
        true
    }

    /// The held bytes whose BLAKE3 is `digest`, if any.
    fn held_bytes(&self, digest: &str) -> Option<Arc<[u8]>> {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.files.get(digest).cloned()
    }

    /// Writes one file with `write` (which returns its BLAKE3) into the scratch folder,
    /// named by that digest and laid out as the blob store is: one flat folder of a big
    /// lock's files (50,000) makes every lookup in it slower. With `keeping`, the file
    /// is also kept across runs.
    fn keep<E>(
        &self,
        keeping: bool,
        write: impl FnOnce(&mut dyn io::Write) -> Result<String, E>,
        scratch: impl Fn(io::Error) -> E,
    ) -> Result<(), E> {
        let n = self.partials.fetch_add(1, Ordering::Relaxed);
        let partial = self.scratch.join(format!(".partial-{n}"));
        let mut out = File::create(&partial).map_err(&scratch)?;
        let digest = write(&mut out)?;
        let path = blob_path(&self.scratch, &digest);
        if let Some(shard) = path.parent() {
            fs::create_dir_all(shard).map_err(&scratch)?;
        }
        fs::rename(&partial, &path).map_err(scratch)?;
        if keeping {
            self.keep_across_runs(&digest, |out| {
                io::copy(&mut File::open(&path)?, out).map(drop)
            });
        }
        Ok(())
    }

    /// Copies the unpacked file whose BLAKE3 is `digest`, written by `write`, into the
    /// folder kept across runs, when the lock holds it and that folder has no copy yet.
    /// Best effort: a copy that could not be made (a full disk) only means the next run
    /// unpacks the archive again, and every copy is checked whenever it is read.
    fn keep_across_runs(&self, digest: &str, write: impl FnOnce(&mut File) -> io::Result<()>) {
        if !self.wanted.contains(digest) {
            return;
        }
        let kept = self
            .kept
            .get_or_init(|| BlobStore::open_copies(self.kept_in?).ok());
        if let Some(kept) = kept {
            let _ = kept.put_as(digest, write);
        }
    }
}

/// The packages of `lock` whose regular files average [`KEPT_AVERAGE_MIN`] bytes or
/// more.
fn worth_keeping(lock: &Lock) -> HashSet<&str> {
    let mut files: HashMap<&str, (u64, u64)> = HashMap::new();
    for file in &lock.files {
        if let (Some(package), Some(_)) = (&file.package, &file.digest) {
            let (count, bytes) = files.entry(package.as_str()).or_default();
            *count += 1;
            *bytes += file.size;
        }
    }
    (files.into_iter())
        .filter(|(_, (count, bytes))| *bytes >= count * KEPT_AVERAGE_MIN)
        .map(|(package, _)| package)
        .collect()
}

/// Why an archive could not be unpacked.
enum Unpack {
    /// The scratch folder could not be written.
    Scratch(io::Error),
    /// The archive is unreadable or damaged: why.
    Archive(String),
}

/// An archive that may hold a locked package's files: a `.deb` the survey read already,
/// or an `.rpm` (its path, and the package the survey saw there), read when unpacked.
#[derive(Clone, Copy)]
enum Candidate<'p> {
    /// A `.deb`.
    Deb(&'p DebArchive),
    /// An `.rpm`.
    Rpm(&'p Path, &'p RpmPackage),
}

impl Candidate<'_> {
    /// The archive file.
    fn path(&self) -> &Path {
        match self {
            Candidate::Deb(deb) => &deb.path,
            Candidate::Rpm(path, _) => path,
        }
    }
}

/// The pool folders' archives of the lock's kind.
enum Surveyed {
    /// `.deb` files.
    Deb(Pool),
    /// `.rpm` files and createrepo_c repositories.
    Rpm(RpmCatalog),
}

impl Surveyed {
    /// Surveys `dirs` for `backend`'s archives.
    fn survey(backend: Backend, dirs: &[PathBuf]) -> Result<Surveyed, String> {
        match backend {
            Backend::Dpkg => Pool::survey(dirs)
                .map(Surveyed::Deb)
                .map_err(|e| e.to_string()),
            Backend::Rpm => Ok(Surveyed::Rpm(RpmCatalog::archives(dirs))),
        }
    }

    /// The archives of exactly `package`, in pool order.
    fn candidates<'s>(&'s self, package: &'s LockedPackage) -> Vec<Candidate<'s>> {
        let (name, version, arch) = (&package.name, &package.version, &package.arch);
        match self {
            Surveyed::Deb(pool) => (pool.candidates(name, version, arch))
                .map(Candidate::Deb)
                .collect(),
            Surveyed::Rpm(catalog) => (catalog.candidates(name, version, arch))
                .filter_map(|p| Some(Candidate::Rpm(p.archive.as_deref()?, p)))
                .collect(),
        }
    }

    /// How many archives could not be read, and the first's reason.
    fn unreadable(&self) -> Option<(usize, String)> {
        match self {
            Surveyed::Deb(pool) => {
                (pool.unreadable.first()).map(|e| (pool.unreadable.len(), e.to_string()))
            }
            Surveyed::Rpm(catalog) => (catalog.unreadable.first()).map(|(path, why)| {
                (
                    catalog.unreadable.len(),
                    format!("{}: {why}", path.display()),
                )
            }),
        }
    }
}

/// How a drift report names an archive: its file name.
fn file_name(archive: &Path) -> String {
    (archive.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

impl From<String> for Unavailable {
    fn from(why: String) -> Unavailable {
        Unavailable::Drift(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileEntry;
    use crate::materialise::plan::tests::{file, lock_of};

    #[test]
    fn only_packages_whose_files_average_a_block_are_kept_unpacked() {
        let of = |package: &str, path: &str, size: usize| FileEntry {
            package: Some(package.to_string()),
            ..file(path, &vec![b'x'; size])
        };
        let lock = lock_of(vec![
            // 4,096 bytes on average: kept.
            of("big", "/usr/bin/big", 8000),
            of("big", "/etc/big.conf", 192),
            // Many small files, as a TeX set or generated packages have: not kept.
            of("small", "/usr/share/small/a", 330),
            of("small", "/usr/share/small/b", 330),
            of("small", "/usr/share/small/huge", 5000),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let archives = Archives::new(&lock, &[], dir.path(), Some(dir.path()));
        let expected = Expected {
            size: 1,
            digest: blake3::hash(b"x"),
        };
        assert!(archives.kept_copy("big", &expected).is_some());
        assert_eq!(archives.kept_copy("small", &expected), None);
        assert_eq!(archives.kept_copy("absent", &expected), None);
        let unkept = Archives::new(&lock, &[], dir.path(), None);
        assert_eq!(unkept.kept_copy("big", &expected), None);
    }

    #[test]
    fn small_files_are_held_until_the_budget_is_spent() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_of(Vec::new());
        let archives = Archives::new(&lock, &[], dir.path(), None);
        let small = vec![7u8; 1 << 20];
        let digest = blake3::hash(&small).to_hex();
        assert!(archives.hold(false, digest.as_str(), &small));
        assert_eq!(
            archives.held_bytes(digest.as_str()).as_deref(),
            Some(&small[..])
        );
        // Held once, whoever unpacks it again.
        assert!(archives.hold(false, digest.as_str(), &small));
        assert_eq!(archives.held.lock().unwrap().bytes, 1 << 20);

        let large = vec![1u8; (1 << 20) + 1];
        assert!(!archives.hold(false, "large", &large));
        for n in 1..64 {
            assert!(archives.hold(false, &format!("file-{n}"), &small), "{n}");
        }
        assert!(!archives.hold(false, "over-budget", &small));
        assert!(archives.held_bytes("over-budget").is_none());
    }
}
