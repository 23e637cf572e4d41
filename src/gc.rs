//! The store's garbage: blobs, pool archives, files kept unpacked from archives and
//! cached images that no kept revision uses ([`InUse`]), swept once `appliance rm` or
//! `appliance gc` has removed revisions' rows; and the lock on the store that keeps a
//! compile's bytes from being swept before its revision is stored.
//!
//! Order makes a killed run harmless: rows first (one transaction), then files, each
//! removal whole or not begun as far as any reader can tell. A blob or archive goes by
//! one `unlink`; an image is first renamed to a temporary of its own (held, so no other
//! cleaner takes it), then its stamp goes, then the tree: a run killed midway leaves a
//! stale temporary that the next sweep or build removes, never half an image under
//! its name.
//!
//! Sizes are the files' lengths.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::materialise;
use crate::repo::{BlobStore, InUse, RepoError};
use crate::scratch::{self, Temp, remove_tree};
use crate::source::dpkg::deb::DebError;
use crate::source::dpkg::pool::Pool;

/// What makes taking the store's lock, or sweeping it, fail.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The blob store could not be listed, or a blob removed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The pool's archives could not be surveyed.
    #[error(transparent)]
    Deb(Box<DebError>),
    /// A file or folder of the store could not be read, locked or removed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl From<DebError> for GcError {
    fn from(err: DebError) -> GcError {
        GcError::Deb(Box::new(err))
    }
}

/// Results of the store's lock and sweep.
pub type Result<T, E = GcError> = std::result::Result<T, E>;

/// A lock on the store, taken on the workspace folder that holds it (`flock` on the
/// folder itself, so nothing is created, not even `store/` by a compile refused before
/// it writes anything): compile and import hold it shared from before they download an
/// archive or write a blob until their revision is stored; a sweep holds it
/// exclusively, so it never sees their bytes before the revision that uses them.
#[derive(Debug)]
pub struct StoreLock {
    _held: File,
}

impl StoreLock {
    /// Takes the shared lock on the workspace folder `workspace`, waiting for a sweep to
    /// finish.
    pub fn shared(workspace: &Path) -> Result<StoreLock> {
        let folder = open_folder(workspace)?;
        folder.lock_shared().map_err(io_error(workspace))?;
        Ok(StoreLock { _held: folder })
    }

    /// Takes the exclusive lock on the workspace folder `workspace`; when a compile
    /// holds it, calls `waiting` once, then waits for it.
    pub fn exclusive(workspace: &Path, waiting: impl FnOnce()) -> Result<StoreLock> {
        let folder = open_folder(workspace)?;
        if folder.try_lock().is_err() {
            waiting();
            folder.lock().map_err(io_error(workspace))?;
        }
        Ok(StoreLock { _held: folder })
    }
}

/// Opens the folder `dir` as a descriptor to lock.
fn open_folder(dir: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(io_error(dir))
}

/// How many files of one kind a sweep removed, and their bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their total length in bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What a sweep removed (or, dry, would remove).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Blobs of `store/blobs/`.
    pub blobs: Tally,
    /// Package archives of `store/pool/`.
    pub archives: Tally,
    /// Files materialise kept unpacked from archives, in `store/unpacked/`.
    pub unpacked: Tally,
    /// Cached images of `store/images/`.
    pub images: Tally,
}

impl Swept {
    /// The bytes of everything swept.
    pub fn bytes(&self) -> u64 {
        self.blobs.bytes + self.archives.bytes + self.unpacked.bytes + self.images.bytes
    }
}

/// The folder of `store` where `appliance boot` caches images.
pub fn images_dir(store: &Path) -> PathBuf {
    store.join("images")
}

/// The lock file `appliance boot` holds while it builds the image `name` of `images`,
/// which a sweep holds while it removes it.
pub fn image_lock(images: &Path, name: &str) -> PathBuf {
    images.join(format!(".{name}.lock"))
}

/// Removes from `store` (with `dry_run`, only counts) every blob, `.deb` archive of
/// `store/pool/`, file kept in `store/unpacked/` and image of `store/images/` that
/// `used` does not name. What cannot be
/// read as one of them (a foreign file, an archive that does not open, an image without
/// a stamp) is kept. The caller holds the [`StoreLock`] exclusively.
pub fn sweep(store: &Path, used: &InUse, dry_run: bool) -> Result<Swept> {
    Ok(Swept {
        blobs: blobs(&store.join("blobs"), used, dry_run)?,
        archives: archives(&store.join("pool"), used, dry_run)?,
        // Laid out as the blob store, and named by the same digests.
        unpacked: blobs(&store.join("unpacked"), used, dry_run)?,
        images: images(&images_dir(store), used, dry_run)?,
    })
}

fn blobs(dir: &Path, used: &InUse, dry_run: bool) -> Result<Tally> {
    let store = if dry_run || !dir.is_dir() {
        BlobStore::existing(dir)
    } else {
        // Opening removes what killed compiles left.
        BlobStore::open(dir)?
    };
    let mut tally = Tally::default();
    for (digest, bytes) in store.list()? {
        if used.digests.contains(&digest) {
            continue;
        }
        tally.add(bytes);
        if !dry_run {
            store.remove(&digest)?;
        }
    }
    Ok(tally)
}

fn archives(pool: &Path, used: &InUse, dry_run: bool) -> Result<Tally> {
    let found = Pool::survey(&[pool.to_path_buf()])?;
    let mut tally = Tally::default();
    for archive in found.archives.iter().chain(&found.shadowed) {
        let p = &archive.package;
        if (used.packages).contains(&(p.name.clone(), p.version.clone(), p.arch.clone())) {
            continue;
        }
        let meta = fs::symlink_metadata(&archive.path).map_err(io_error(&archive.path))?;
        tally.add(meta.len());
        if !dry_run {
            fs::remove_file(&archive.path).map_err(io_error(&archive.path))?;
        }
    }
    Ok(tally)
}

fn images(dir: &Path, used: &InUse, dry_run: bool) -> Result<Tally> {
    let mut tally = Tally::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(tally),
        Err(source) => return Err(io_error(dir)(source)),
    };
    let mut hidden = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_error(dir))?.file_name();
        if name.as_bytes().starts_with(b".") {
            hidden.push(name);
            continue;
        }
        let Some(text) = name.to_str() else { continue };
        let out = dir.join(&name);
        // No stamp or claim that reads: not known to be ours, or being made.
        let unused = || {
            let built = materialise::built_from(&out);
            !built.is_empty() && !built.iter().any(|id| used.lock_ids.contains(id))
        };
        if !unused() {
            continue;
        }
        if dry_run {
            tally.add(tree_size(&out));
            continue;
        }
        // A boot building it holds this lock; decided again once it is ours.
        let lock = image_lock(dir, text);
        let Some(_building) = hold_creating(&lock) else {
            continue;
        };
        if unused() {
            tally.add(tree_size(&out));
            remove_output(dir, &name, &out).map_err(io_error(&out))?;
        }
    }
    if !dry_run {
        // What killed sweeps and builds left: temporaries, and stamps of no output.
        scratch::remove_stale(dir, |stem| stem.as_bytes().starts_with(b"."));
        for name in hidden {
            remove_orphan(dir, &name).map_err(io_error(&dir.join(&name)))?;
        }
    }
    Ok(tally)
}

/// Opens `path`, made if missing, and locks it unless another holds it.
fn hold_creating(path: &Path) -> Option<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Removes the output `out` (`dir/name`), then its stamp and claim (see the module
/// documentation for the order).
fn remove_output(dir: &Path, name: &OsStr, out: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(out)?;
    let mut stem = OsStr::new(".").to_os_string();
    stem.push(name);
    // Held before the rename, so the tree is locked under the temporary's name too.
    let _held = scratch::try_hold(out);
    let temp = if meta.is_dir() {
        Temp::dir(dir, &stem, 0o700)?
    } else {
        Temp::file(dir, &stem, 0o600)?.0
    };
    // Over the fresh, empty temporary: one step.
    fs::rename(out, &temp.path)?;
    for path in materialise::beside(out) {
        remove_file(&path)?;
    }
    remove_tree(&temp.path)
}

/// Removes the stamp or claim `dir/name` (`.OUT.SUFFIX`) when the output it is beside
/// is gone.
fn remove_orphan(dir: &Path, name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    let Some(dot) = bytes
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&dot| dot > 1)
    else {
        return Ok(());
    };
    let path = dir.join(name);
    let out = dir.join(OsStr::from_bytes(&bytes[1..dot]));
    if materialise::beside(&out).contains(&path) && fs::symlink_metadata(&out).is_err() {
        remove_file(&path)?;
    }
    Ok(())
}

/// Removes a file; one already gone is fine.
fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The length of the regular files under `path` (itself, when it is one); symlinks are
/// not followed.
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    (fs::read_dir(path).into_iter().flatten().flatten())
        .map(|entry| tree_size(&entry.path()))
        .sum()
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> GcError + '_ {
    move |source| GcError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_sweep_waits_for_the_compiles_holding_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().to_path_buf();
        let compile = StoreLock::shared(&store).unwrap();
        let other = StoreLock::shared(&store).unwrap();
        let (tell, told) = mpsc::channel();
        let sweep = {
            let store = store.clone();
            std::thread::spawn(move || {
                let waited = std::cell::Cell::new(false);
                let held = StoreLock::exclusive(&store, || waited.set(true)).unwrap();
                tell.send(waited.get()).unwrap();
                held
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(told.try_recv().is_err(), "the sweep did not wait");
        drop((compile, other));
        assert!(told.recv().unwrap(), "the sweep did not say it waits");
        let held = sweep.join().unwrap();
        // A sweep in turn keeps a compile from starting.
        let folder = open_folder(&store).unwrap();
        assert!(folder.try_lock_shared().is_err());
        drop(held);
        assert!(folder.try_lock_shared().is_ok());
    }
}
