//! The store stage: a compiled lock and exactly the bytes it needs from the blob store,
//! written once every recipe of a compile has succeeded.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::{CompileError, Result};
use super::removes::Removes;
use crate::lock::Lock;
use crate::repo::{BlobStore, Repository, Stored};
use crate::scratch::{self, Temp};
use crate::source::dpkg::catalog::Stale;

/// The stem of spool folders in the store.
const SPOOL_STEM: &str = ".spool";

/// Where the bytes configuration made wait, from capture until the store stage takes
/// those a lock needs into the blob store: a scratch blob store in the store folder
/// (`.spool.tmp-PID-N`), on the blob store's filesystem so each is renamed into place,
/// not copied. It goes, with whatever the locks did not need, when the compile ends;
/// the ones killed compiles left go when the next compile makes its own. A configured
/// tree an earlier compile made and the repository kept has its bytes in the blob
/// store instead, which is where [`Spool::read`] looks next.
pub struct Spool {
    /// The folder, removed when dropped.
    temp: Temp,
    /// The folder as a blob store.
    spooled: BlobStore,
    /// The store's own blob store.
    store: BlobStore,
}

impl Spool {
    /// A new spool in the folder `store` (made if need be) for the blob store at
    /// `blobs`.
    pub fn new(store: &Path, blobs: &Path) -> Result<Spool> {
        crate::repo::create_folder(store, 0o755).map_err(CompileError::io_at(store))?;
        scratch::remove_stale(store, |stem| stem == SPOOL_STEM);
        let temp =
            Temp::dir(store, OsStr::new(SPOOL_STEM), 0o700).map_err(CompileError::io_at(store))?;
        Ok(Spool {
            spooled: BlobStore::scratch(&temp.path)?,
            temp,
            store: BlobStore::existing(blobs),
        })
    }

    /// The spool's folder, where a configure job's capture puts the bytes.
    pub fn dir(&self) -> &Path {
        &self.temp.path
    }

    /// Whether every one of `digests` is in the spool or the blob store: a configured
    /// tree kept in the repository is taken only while its bytes are.
    pub fn holds(&self, digests: &[String]) -> bool {
        (digests.iter()).all(|d| self.spooled.path(d).is_file() || self.store.path(d).is_file())
    }

    /// The bytes of `digest`: the spool's, else the blob store's.
    pub fn read(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        match std::fs::read(self.spooled.path(digest)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::read(self.store.path(digest))
            }
            read => read,
        }
    }
}

/// A lock ready to store, with the bytes its generated and archive entries point at.
pub struct Compiled {
    /// The lock.
    pub lock: Lock,
    /// Paths dpkg lists that the host lacks: (package, path).
    pub missing: Vec<(String, String)>,
    /// Things the user should know about the lock.
    pub warnings: Vec<String>,
    /// Contents for the blob store.
    pub blobs: Vec<Vec<u8>>,
    /// Digests of contents for the blob store that are in the compile's [`Spool`].
    pub spooled: Vec<String>,
    /// How long the packages' maintainer scripts ran, when they did.
    pub configured: Option<std::time::Duration>,
    /// The locked packages older than apt's candidates (dpkg locks only).
    pub stale: Vec<Stale>,
    /// The group's `remove` statements, for warnings about those that removed nothing.
    pub removes: Removes,
    /// The archives taken from apt's lists into the pool (fetched now or found there).
    pub downloaded: Vec<PathBuf>,
    /// The digest of the configure job whose tree the lock was made from, if any: the
    /// tree is kept as long as the revision that stores this lock.
    pub made_from: Option<String>,
}

impl Compiled {
    /// Keeps of `blobs` and `spooled` only those `lock` points at: the stage's own that
    /// configuration replaced (the unpacked status) are not kept, nor the bytes of
    /// configured files the group excludes or replaces.
    pub fn new(
        lock: Lock,
        blobs: Vec<Vec<u8>>,
        spooled: Vec<String>,
        missing: Vec<(String, String)>,
        warnings: Vec<String>,
        configured: Option<std::time::Duration>,
        removes: Removes,
    ) -> Compiled {
        let wanted: HashSet<&str> = (lock.files.iter())
            .filter_map(|e| e.digest.as_deref())
            .collect();
        let mut seen = HashSet::new();
        let blobs = (blobs.into_iter())
            .filter(|b| {
                let digest = blake3::hash(b);
                wanted.contains(digest.to_hex().as_str()) && seen.insert(digest)
            })
            .collect();
        let spooled = (spooled.into_iter())
            .filter(|d| wanted.contains(d.as_str()))
            .collect();
        Compiled {
            lock,
            missing,
            warnings,
            blobs,
            spooled,
            configured,
            stale: Vec::new(),
            removes,
            downloaded: Vec::new(),
            made_from: None,
        }
    }

    /// Writes the bytes, then the lock: a lock is never stored without its blobs. The
    /// spooled ones are taken from `spool`.
    pub fn store(&self, repo: &mut Repository, blobs: &BlobStore, spool: &Spool) -> Result<Stored> {
        blobs.put_all(&self.blobs)?;
        blobs.take_from(&spool.spooled, &self.spooled)?;
        let stored = repo.store(&self.lock)?;
        if let Some(job) = &self.made_from {
            repo.made_from(&stored.lock_id, job)?;
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spool reads its own bytes first, then the blob store's, holds a set only when
    /// one of them has each, and goes when dropped; the one a killed compile left goes
    /// when the next spool is made.
    #[test]
    fn a_spool_reads_its_bytes_then_the_stores_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        let blobs = BlobStore::open(&store_dir.join("blobs")).unwrap();
        let stored = blobs.put(b"stored").unwrap();
        // What a compile killed with pid 999999999 left.
        let left_dir = store_dir.join(".spool.tmp-999999999-0");
        std::fs::create_dir_all(left_dir.join("ab")).unwrap();
        let spool = Spool::new(&store_dir, &store_dir.join("blobs")).unwrap();
        assert!(!left_dir.exists(), "a killed compile's spool stayed");
        let spooled = spool.spooled.put(b"spooled").unwrap();
        let missing = blake3::hash(b"missing").to_hex().to_string();
        assert_eq!(spool.read(&spooled).unwrap(), b"spooled");
        assert_eq!(spool.read(&stored).unwrap(), b"stored");
        assert!(spool.read(&missing).is_err());
        assert!(spool.holds(&[spooled.clone(), stored.clone()]));
        assert!(!spool.holds(&[spooled, missing]));
        let at = spool.dir().to_path_buf();
        drop(spool);
        assert!(!at.exists());
    }
}
