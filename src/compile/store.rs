//! The store stage: a compiled lock and exactly the bytes it needs from the blob store,
//! written once every recipe of a compile has succeeded.

use std::collections::HashSet;
use std::path::PathBuf;

use super::error::Result;
use super::removes::Removes;
use crate::lock::Lock;
use crate::repo::{BlobStore, Repository, Stored};
use crate::source::dpkg::catalog::Stale;

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
    /// Keeps of `blobs` only those `lock` points at: the stage's own that configuration
    /// replaced (the unpacked status) are not kept.
    pub fn new(
        lock: Lock,
        blobs: Vec<Vec<u8>>,
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
        Compiled {
            lock,
            missing,
            warnings,
            blobs,
            configured,
            stale: Vec::new(),
            removes,
            downloaded: Vec::new(),
            made_from: None,
        }
    }

    /// Writes the bytes, then the lock: a lock is never stored without its blobs.
    pub fn store(&self, repo: &mut Repository, blobs: &BlobStore) -> Result<Stored> {
        blobs.put_all(&self.blobs)?;
        let stored = repo.store(&self.lock)?;
        if let Some(job) = &self.made_from {
            repo.made_from(&stored.lock_id, job)?;
        }
        Ok(stored)
    }
}
