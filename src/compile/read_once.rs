//! What one compile reads once for all its recipes: a group's flavors mostly choose the
//! same packages, whose archives and host files need reading once (xen's and kvm's
//! trees take the same, and openvz's most of them). What archives hold is also kept
//! in the repository for the compiles after it.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use super::fetch::ArchivePackage;
use crate::repo::{ArchiveRead, RepoError, Repository};
use crate::source::dpkg::scan::Scan;

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

    /// Keeps in the repository what this compile read of archives: called once the
    /// compile has made its locks, so that a compile that fails writes none.
    pub fn keep(self) -> Result<(), RepoError> {
        let to_keep = (self.to_keep.into_inner()).unwrap_or_else(PoisonError::into_inner);
        match (self.kept, super::kept::build_identity()) {
            (Some(repo), Some(build)) if !to_keep.is_empty() => {
                repo.keep_archive_reads(&to_keep, build)
            }
            _ => Ok(()),
        }
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
