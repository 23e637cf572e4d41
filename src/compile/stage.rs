//! The stage: the chosen packages' files, unconfigured, written into scratch as a tree
//! whose owners are the sandbox's ids, for the configure stage to run in.
//!
//! The tree is written the way materialise writes a chroot, from the same kind of lock
//! (the packages' entries and a dpkg database that says every package is unpacked), so
//! its bytes are checked against their digests as any output's are. The scratch is a
//! locked temporary in the store: a compile killed while it configures leaves a folder
//! that the next compile removes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::{CompileError, Result};
use crate::confine::IdShift;
use crate::lock::Lock;
use crate::materialise::{self, Sources};
use crate::repo::BlobStore;
use crate::scratch::{self, Temp};

/// The stem of the scratch folders in the store.
const STEM: &str = "configure";

/// A staged tree and the scratch it lives in (removed when this is dropped).
pub struct Staged {
    /// The tree.
    pub root: PathBuf,
    /// Where the configure stage writes what the scripts print.
    pub log: PathBuf,
    /// The ids the tree is owned by.
    pub ids: IdShift,
    /// What staging could not do (devices not made...).
    pub warnings: Vec<String>,
    _scratch: Temp,
}

/// Writes `lock` into a fresh scratch folder in `store`, taking bytes from the host
/// under `sysroot`, the archives in `pools`, and `blobs` (what compile made).
pub fn stage(
    store: &Path,
    sysroot: &Path,
    pools: Vec<PathBuf>,
    lock: &Lock,
    blobs: &[Vec<u8>],
) -> Result<Staged> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CompileError::Io { path, source }
    };
    std::fs::create_dir_all(store).map_err(io(store))?;
    scratch::remove_stale(store, |stem| stem == STEM);
    let temp = Temp::dir(store, OsStr::new(STEM), 0o700).map_err(io(store))?;
    // The bytes compile made, laid out as the store's own blobs, for materialise to find.
    let blob_dir = temp.path.join("blobs");
    BlobStore::scratch(&blob_dir)?.put_all(blobs)?;
    let root = temp.path.join("root");
    let unpacked = temp.path.join("archives");
    for dir in [&root, &unpacked] {
        std::fs::create_dir(dir).map_err(io(dir))?;
    }
    let sources = Sources {
        sysroot: sysroot.to_path_buf(),
        pool: pools,
        blobs: Some(blob_dir),
        // Staging never writes the store's copies of unpacked archives (a compile that
        // fails leaves the store as it found it); materialise keeps them.
        unpacked: None,
    };
    let ids = IdShift::DEFAULT;
    // Root of a user namespace may not make device nodes: they are skipped, and capture
    // keeps their locked entries, so the lock is the same whoever staged it.
    let (_, warnings) = materialise::stage(lock, &sources, &root, &unpacked, ids)?;
    Ok(Staged {
        log: temp.path.join("configure.log"),
        root,
        ids,
        warnings,
        _scratch: temp,
    })
}
