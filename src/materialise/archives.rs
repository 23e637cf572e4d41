//! Package archives as a byte source: a locked package's `.deb`, found in the pool
//! folders, unpacked once per run into a scratch folder beside OUT whose files are named
//! by their BLAKE3, so a file is then read (and checked) like any other source.
//!
//! Every archive claiming the package's name, version and arch is a candidate, in pool
//! order; the first that holds the locked bytes supplies them, so a junk or shadowing
//! archive earlier in the pool (an earlier `--pool`, a name that sorts first) costs an
//! unpacking, never the output. Nothing is scanned or unpacked unless some file needs
//! it: a lock the host supplies whole never looks at the pool.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::excerpt;
use crate::lock::{Lock, LockedPackage};
use crate::source::deb::{DebArchive, DebError};
use crate::source::pool::Pool;

use super::plan::Expected;

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
    /// The pool, surveyed the first time an archive is wanted.
    pool: OnceLock<Result<Pool, String>>,
    /// Per archive path: its unpacking.
    unpacked: Mutex<HashMap<PathBuf, Arc<Unpacking>>>,
    /// Names the partial files of every unpacking, which run on several threads.
    partials: AtomicU64,
}

impl<'a> Archives<'a> {
    /// Archives for the packages of `lock`, looked for in `dirs`; files are unpacked
    /// into `scratch`, an existing empty folder.
    pub(crate) fn new(lock: &'a Lock, dirs: &'a [PathBuf], scratch: &Path) -> Archives<'a> {
        let mut packages = HashMap::new();
        for package in &lock.packages {
            packages.entry(package.name.as_str()).or_insert(package);
        }
        Archives {
            dirs,
            packages,
            scratch: scratch.to_path_buf(),
            pool: OnceLock::new(),
            unpacked: Mutex::new(HashMap::new()),
            partials: AtomicU64::new(0),
        }
    }

    /// The unpacked copy of the file of `package` whose content is `expected`, with the
    /// file name of the archive that held it: the first candidate archive, in pool
    /// order, that has it. Otherwise why none could supply it, each candidate's reason
    /// as a drift report says it.
    pub(crate) fn file(
        &self,
        package: &str,
        expected: &Expected,
    ) -> Result<(PathBuf, String), Unavailable> {
        let locked = self
            .packages
            .get(package)
            .ok_or_else(|| format!("package {} is not in the lock", excerpt(package)))?;
        let pool = self
            .pool
            .get_or_init(|| Pool::survey(self.dirs).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| format!("pool: {e}"))?;
        let path = self.scratch.join(expected.digest.to_hex().as_str());
        let mut tried = Vec::new();
        for archive in pool.candidates(&locked.name, &locked.version, &locked.arch) {
            let name = file_name(archive);
            match self.unpacking(archive) {
                Ok(()) if path.is_file() => return Ok((path, name)),
                Ok(()) => tried.push(format!("archive {name}: no file with the locked content")),
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
            if let Some(first) = pool.unreadable.first() {
                why += &format!(
                    " ({} unreadable .deb skipped, the first: {first})",
                    pool.unreadable.len()
                );
            }
            tried.push(why);
        }
        Err(Unavailable::Drift(tried.join("; ")))
    }

    /// Unpacks `archive` unless this run already did (or is doing) it.
    fn unpacking(&self, archive: &DebArchive) -> Result<(), Unavailable> {
        let once = {
            let mut unpacked = self
                .unpacked
                .lock()
                .map_err(|_| Unavailable::Drift("the archive cache was poisoned".to_string()))?;
            Arc::clone(unpacked.entry(archive.path.clone()).or_default())
        };
        once.get_or_init(|| {
            self.unpack_archive(archive).map_err(|e| match e {
                // Only the scratch folder is written to.
                DebError::Write { source, .. } => Unavailable::Scratch(Arc::new(source)),
                other => Unavailable::Drift(format!("archive {}: {other}", file_name(archive))),
            })
        })
        .clone()
    }

    /// Unpacks every regular file of `archive` by content.
    fn unpack_archive(&self, archive: &DebArchive) -> Result<(), DebError> {
        archive.for_each_file(|file| {
            let entry = file.path().to_string();
            let failed = |source| DebError::Write {
                path: archive.path.clone(),
                entry: entry.clone(),
                source,
            };
            let n = self.partials.fetch_add(1, Ordering::Relaxed);
            let partial = self.scratch.join(format!(".partial-{n}"));
            let mut out = File::create(&partial).map_err(failed)?;
            let digest = file.copy_to(&mut out)?;
            fs::rename(&partial, self.scratch.join(digest)).map_err(failed)
        })
    }
}

/// How a drift report names an archive: its file name.
fn file_name(archive: &DebArchive) -> String {
    (archive.path.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

impl From<String> for Unavailable {
    fn from(why: String) -> Unavailable {
        Unavailable::Drift(why)
    }
}
