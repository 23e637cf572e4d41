//! The stage: the chosen packages' files, unconfigured, written into scratch as a tree
//! whose owners are the sandbox's ids, for the configure stage to run in.
//!
//! The tree is written the way materialise writes a chroot, from the same kind of lock
//! (the packages' entries and a dpkg database that says every package is unpacked), so
//! its bytes are checked against their digests as any output's are. The scratch is a
//! locked temporary in the store: a compile killed while it configures leaves a folder
//! that the next compile removes. The folder is a tmpfs where the tree fits in memory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::{CompileError, Result};
use super::in_memory::Tmpfs;
use crate::confine::IdShift;
use crate::lock::Lock;
use crate::materialise::{self, Sources};
use crate::repo::BlobStore;
use crate::scratch::{self, Temp};

/// The stem of the scratch folders in the store.
const STEM: &str = "configure";

/// The scratch folder a job's tree is staged in: in the store, in memory when given
/// room, removed when this is dropped.
pub struct Scratch {
    /// The tmpfs over `temp`, unmounted before `temp` is removed (fields drop in order).
    tmpfs: Option<Tmpfs>,
    temp: Temp,
}

impl Scratch {
    /// A fresh scratch folder in `store`, once the ones killed compiles left are removed;
    /// with a tmpfs of `room` bytes over it where one can be mounted (see
    /// [`in_memory`](super::in_memory)), else on disk.
    pub fn new(store: &Path, room: Option<u64>) -> Result<Scratch> {
        std::fs::create_dir_all(store).map_err(CompileError::io_at(store))?;
        scratch::remove_stale(store, |stem| stem == STEM);
        let temp = Temp::dir(store, OsStr::new(STEM), 0o700).map_err(CompileError::io_at(store))?;
        let tmpfs = room.and_then(|size| Tmpfs::mount(&temp.path, size).ok());
        Ok(Scratch { tmpfs, temp })
    }

    /// Whether it is in memory and what was written filled it.
    pub fn is_full(&self) -> bool {
        self.tmpfs.as_ref().is_some_and(Tmpfs::is_full)
    }
}

/// A staged tree in a [`Scratch`].
pub struct Staged {
    /// The tree.
    pub root: PathBuf,
    /// Where the configure stage writes what the scripts print.
    pub log: PathBuf,
    /// The ids the tree is owned by.
    pub ids: IdShift,
    /// What staging could not do (devices not made...).
    pub warnings: Vec<String>,
}

/// Writes `lock` into `scratch`, taking bytes from the host under `sysroot`, the
/// archives in `pools`, and `blobs` (what compile made).
pub fn stage(
    scratch: &Scratch,
    sysroot: &Path,
    pools: Vec<PathBuf>,
    lock: &Lock,
    blobs: &[Vec<u8>],
) -> Result<Staged> {
    let at = &scratch.temp.path;
    // The bytes compile made, laid out as the store's own blobs, for materialise to find.
    let blob_dir = at.join("blobs");
    BlobStore::scratch(&blob_dir)?.put_all(blobs)?;
    let root = at.join("root");
    let unpacked = at.join("archives");
    for dir in [&root, &unpacked] {
        std::fs::create_dir(dir).map_err(CompileError::io_at(dir))?;
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
        log: at.join("configure.log"),
        root,
        ids,
        warnings,
    })
}
