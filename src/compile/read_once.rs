//! What one compile reads once for all its recipes: a group's flavors mostly choose the
//! same packages, whose archives and host files need reading once (xen's and kvm's
//! trees take the same, and openvz's most of them), and whose installed files need
//! checking against dpkg's MD5s once. What archives hold, and which installed packages
//! were found unchanged, is also kept in the repository for the compiles after it.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use super::fetch::ArchivePackage;
use crate::repo::{ArchiveRead, RepoError, Repository, Verified};
use crate::source::dpkg::scan::Scan;
use crate::source::dpkg::verify::{self, Changed};
use crate::source::dpkg::{DpkgDatabase, DpkgError};

/// What one compile has read, for every recipe that asks for the same again.
#[derive(Default)]
pub struct ReadOnce<'r> {
    /// Each archive read, by its path and whether every file's bytes were kept.
    pub(super) archives: Memo<(PathBuf, bool), ArchivePackage>,
    /// Each scan of the host's files, by the installed packages scanned (sorted).
    pub(super) scans: Memo<Vec<usize>, Scan>,
    /// Where what archives hold is kept across compiles.
    pub(super) kept: Option<&'r Repository>,
    /// The archives read by this compile, to keep there once it succeeds.
    pub(super) to_keep: Mutex<Vec<ArchiveRead>>,
    /// What it found of the installed packages' files.
    checks: Checks,
}

/// What one compile finds of whether the installed packages' files are still the ones
/// dpkg unpacked; safe to ask from several threads.
#[derive(Default)]
pub(super) struct Checks {
    /// The first file each package's host changed, by its index in the host's database.
    changes: Memo<usize, Option<Changed>>,
    /// The stamps of the sysroot's packages the repository saw unchanged.
    seen: OnceLock<HashMap<String, String>>,
    /// The packages this compile found unchanged, to keep there once it succeeds.
    to_keep: Mutex<Vec<Verified>>,
}

impl<'r> ReadOnce<'r> {
    /// Also takes what `repo` keeps of archives, and keeps there what is read of them
    /// ([`ReadOnce::keep`]).
    pub fn kept_in(repo: &'r Repository) -> ReadOnce<'r> {
        ReadOnce {
            kept: Some(repo),
            ..ReadOnce::default()
        }
    }

    /// What this compile finds of the files of the packages installed in `sysroot`
    /// (the same for all its recipes), with what the repository kept of them read now.
    pub(super) fn checks(&self, sysroot: &Path) -> Result<&Checks, RepoError> {
        if self.checks.seen.get().is_none() {
            let seen = match self.kept {
                Some(repo) => repo.verified(sysroot)?,
                None => HashMap::new(),
            };
            let _ = self.checks.seen.set(seen);
        }
        Ok(&self.checks)
    }

    /// Keeps in the repository what this compile read of archives, and the installed
    /// packages it found unchanged: called once the compile has made its locks, so that
    /// a compile that fails writes none.
    pub fn keep(self) -> Result<(), RepoError> {
        let Some(repo) = self.kept else {
            return Ok(());
        };
        let verified = (self.checks.to_keep.into_inner()).unwrap_or_else(PoisonError::into_inner);
        if !verified.is_empty() {
            repo.keep_verified(&verified)?;
        }
        let to_keep = (self.to_keep.into_inner()).unwrap_or_else(PoisonError::into_inner);
        match super::kept::build_identity() {
            Some(build) if !to_keep.is_empty() => repo.keep_archive_reads(&to_keep, build),
            _ => Ok(()),
        }
    }
}

impl Checks {
    /// The first file of installed package `index` of `db` that the host under `sysroot`
    /// changed since dpkg unpacked it ([`verify::first_changed`]): looked for once a
    /// compile, and not at all when the repository saw the package's files as they are
    /// now ([`verify::stamp`]) and unchanged.
    pub(super) fn changed(
        &self,
        sysroot: &Path,
        db: &DpkgDatabase,
        index: usize,
    ) -> Result<Arc<Option<Changed>>, DpkgError> {
        self.changes.get_or_make(index, || {
            let installed = &db.packages[index];
            let p = &installed.package;
            let package = format!("{}:{}", p.name, p.arch);
            // Taken before the bytes are read: a change while they are moves the stamp.
            let files = verify::checked(sysroot, installed, &db.diversions)?;
            let stamp = verify::stamp(installed, &files, SystemTime::now())?;
            let seen = self.seen.get().and_then(|seen| seen.get(&package));
            if stamp.is_some() && seen == stamp.as_ref() {
                return Ok(None);
            }
            let changed = verify::first_changed(&files)?;
            if let (None, Some(stamp)) = (&changed, stamp) {
                (self.to_keep.lock())
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Verified {
                        sysroot: sysroot.to_path_buf(),
                        package,
                        stamp,
                    });
            }
            Ok(changed)
        })
    }
}

/// Values made once, by key; safe to ask from several threads.
pub(super) struct Memo<K, V>(Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Memo<K, V> {
        Memo(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, V> Memo<K, V> {
    /// Whether the value of `key` was made.
    pub(super) fn has(&self, key: &K) -> bool {
        (self.0.lock().unwrap_or_else(PoisonError::into_inner)).contains_key(key)
    }

    /// The value of `key`, made by `make` unless it was made already. A failure is not
    /// kept: the next to ask tries again. Two threads asking for one new key at once may
    /// both make it; the value is the same, and the first kept serves every later ask.
    pub(super) fn get_or_make<E>(
        &self,
        key: K,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        // A thread that panicked holding the lock left the map whole: inserts are atomic.
        let known = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(value) = known().get(&key) {
            return Ok(Arc::clone(value));
        }
        let made = Arc::new(make()?);
        Ok(Arc::clone(known().entry(key).or_insert(made)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_made_once_by_key_and_a_failure_is_not_kept() {
        let memo: Memo<&str, String> = Memo::default();
        let first = memo.get_or_make("a", || Ok::<_, ()>("made".to_string()));
        let again = memo.get_or_make("a", || Err(()));
        assert!(Arc::ptr_eq(&first.unwrap(), &again.unwrap()));
        assert!(memo.get_or_make("b", || Err(())).is_err());
        let b = memo.get_or_make("b", || Ok::<_, ()>("second try".to_string()));
        assert_eq!(*b.unwrap(), "second try");
    }
}
