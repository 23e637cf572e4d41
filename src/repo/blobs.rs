//! The blob store: file contents addressed by their BLAKE3 digest.
//!
//! Layout: `<dir>/<first two hex chars>/<full hex digest>`. A blob appears by rename of a
//! fully written and synced temporary file beside it (`.<digest>.tmp-<pid>-<n>`), so a
//! reader never sees a partial blob, even after a crash; opening the store removes the
//! temporaries that killed runs left (see [`crate::scratch`]). A store in scratch, which
//! its run removes, is not synced: nothing reads it after a crash.
//!
//! The store is private to its owner: folders 0700, blobs 0600. It holds copies of files
//! others may not read (`secret=#true` statements, a 0600 file of an overlay tarball,
//! a `file` with `mode=0o600`); one rule for every blob keeps a private source private
//! however the bytes got in, and appliance reads the blobs as the user that wrote them
//! (SQLite already needs the repository's folder writable by its readers). Opening the
//! store narrows a `blobs/` folder an older appliance left open to others.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{RepoError, create_folder};
use crate::io_pool::in_io_pool;
use crate::scratch::{self, Temp};

/// The permissions of the store's folders: its owner's alone (see the module
/// documentation).
const PRIVATE_FOLDER: u32 = 0o700;

/// Length of a BLAKE3 digest in hex.
const DIGEST_HEX_LEN: usize = 64;

/// Content-addressed storage for bytes no host file or package archive can supply
/// (group `file` contents, host files copied at compile time, overlays); opened with
/// [`BlobStore::open_copies`], for the files materialise keeps unpacked from archives.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    /// Whether each blob reaches the disk before its name appears: not for scratch.
    durable: bool,
}

impl BlobStore {
    /// Opens the blob store rooted at `dir` (normally `store/blobs/`), creating the folder
    /// and removing the temporaries of killed runs.
    pub fn open(dir: &Path) -> Result<BlobStore, RepoError> {
        BlobStore::open_as(dir, true)
    }

    /// Opens a store of copies of bytes another source holds (`store/unpacked/`, the
    /// files of package archives) as [`BlobStore::open`] does, but unsynced: every read
    /// of a copy is checked, and one missing or torn by a crash only sends its reader
    /// back to the source.
    pub fn open_copies(dir: &Path) -> Result<BlobStore, RepoError> {
        BlobStore::open_as(dir, false)
    }

    fn open_as(dir: &Path, durable: bool) -> Result<BlobStore, RepoError> {
        create_folder(dir, PRIVATE_FOLDER)
            .map_err(|source| RepoError::io(dir, "creating the blob store folder", source))?;
        let mode = fs::metadata(dir)
            .map_err(|source| RepoError::io(dir, "examining the blob store folder", source))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_FOLDER)).map_err(
                |source| RepoError::io(dir, "making the blob store folder private", source),
            )?;
        }
        let store = BlobStore {
            dir: dir.to_path_buf(),
            durable,
        };
        store.remove_stale();
        Ok(store)
    }

    /// A new blob store at `dir` inside a scratch folder its run removes when done: what
    /// it holds never has to survive a crash, so it is not synced.
    pub fn scratch(dir: &Path) -> Result<BlobStore, RepoError> {
        create_folder(dir, PRIVATE_FOLDER)
            .map_err(|source| RepoError::io(dir, "creating the blob store folder", source))?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
            durable: false,
        })
    }

    /// The blob store at `dir` as it is, for reading and listing: nothing is made,
    /// narrowed or cleaned up, unlike [`BlobStore::open`], and a missing folder is a
    /// store without blobs.
    pub fn existing(dir: &Path) -> BlobStore {
        BlobStore {
            dir: dir.to_path_buf(),
            durable: true,
        }
    }

    /// Every blob stored under its final name, with its length in bytes; temporaries
    /// and anything else in the folders are not blobs. No store is no blob.
    pub fn list(&self) -> Result<Vec<(String, u64)>, RepoError> {
        let listing = |dir: &Path| match fs::read_dir(dir) {
            Ok(entries) => Ok(entries.flatten().collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(RepoError::io(dir, "listing the blob store", source)),
        };
        let mut blobs = Vec::new();
        for shard in listing(&self.dir)? {
            for blob in listing(&shard.path())? {
                let Some(digest) = blob.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let placed = is_digest(&digest) && shard.file_name() == OsStr::new(&digest[..2]);
                match blob.metadata() {
                    Ok(meta) if placed && meta.is_file() => blobs.push((digest, meta.len())),
                    _ => {}
                }
            }
        }
        Ok(blobs)
    }

    /// Removes the blob `digest` (gone already is fine), and its shard folder when that
    /// leaves it empty.
    pub fn remove(&self, digest: &str) -> Result<(), RepoError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RepoError::io(&path, "removing a blob", e));
            }
            _ => {}
        }
        // A shard still holding anything stays: remove_dir refuses it.
        if let Some(shard) = path.parent() {
            let _ = fs::remove_dir(shard);
        }
        Ok(())
    }

    /// Removes the stale temporaries of every shard; returns how many went.
    fn remove_stale(&self) -> usize {
        let Ok(shards) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let temp_of_blob = |stem: &OsStr| {
            stem.to_str()
                .and_then(|s| s.strip_prefix('.'))
                .is_some_and(is_digest)
        };
        shards
            .flatten()
            .filter(|shard| shard.file_type().is_ok_and(|t| t.is_dir()))
            .map(|shard| scratch::remove_stale(&shard.path(), temp_of_blob))
            .sum()
    }

    /// Stores `bytes` and returns their BLAKE3 digest, lower-case hex. Storing bytes that
    /// are already present writes nothing.
    pub fn put(&self, bytes: &[u8]) -> Result<String, RepoError> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        self.put_as(&digest, |file| file.write_all(bytes))?;
        Ok(digest)
    }

    /// Stores what `write` writes as the blob `digest`, which the caller computed from
    /// those very bytes, unless that blob is present.
    pub fn put_as(
        &self,
        digest: &str,
        write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
    ) -> Result<(), RepoError> {
        let path = self.path(digest);
        if path.is_file() {
            return Ok(());
        }
        let shard = path.parent().unwrap_or(&self.dir);
        create_folder(shard, PRIVATE_FOLDER)
            .map_err(|source| RepoError::io(shard, "creating a blob folder", source))?;
        let put = || -> std::io::Result<()> {
            let (temp, mut file) = Temp::file(shard, OsStr::new(&format!(".{digest}")), 0o600)?;
            write(&mut file)?;
            // Synced before the rename publishes it, so the name never holds less.
            if self.durable {
                file.sync_all()?;
            }
            fs::rename(&temp.path, &path)?;
            temp.keep();
            Ok(())
        };
        // A failed write drops its temporary, which removes it.
        put().map_err(|source| RepoError::io(&path, "writing a blob", source))
    }

    /// Stores every one of `contents`, side by side: each put waits on its own sync,
    /// and the disk takes many at once (a compile stores hundreds of small files).
    pub fn put_all(&self, contents: &[Vec<u8>]) -> Result<(), RepoError> {
        in_io_pool(|| {
            contents
                .par_iter()
                .try_for_each(|bytes| self.put(bytes).map(drop))
        })
    }

    /// Moves every one of `digests` from `spool`, a store of scratch on the same
    /// filesystem whose bytes were checked as they were written, into this store, unless
    /// it is here already: synced first when this store is durable, then renamed into
    /// place (copied where the rename cannot cross filesystems). A digest neither store
    /// holds is an error.
    pub fn take_from(&self, spool: &BlobStore, digests: &[String]) -> Result<(), RepoError> {
        let take = |digest: &String| -> Result<(), RepoError> {
            let path = self.path(digest);
            if path.is_file() {
                return Ok(());
            }
            let from = spool.path(digest);
            let io = |source| RepoError::io(&from, "taking a blob into the store", source);
            if self.durable {
                fs::File::open(&from)
                    .and_then(|f| f.sync_all())
                    .map_err(io)?;
            }
            let shard = path.parent().unwrap_or(&self.dir);
            create_folder(shard, PRIVATE_FOLDER)
                .map_err(|source| RepoError::io(shard, "creating a blob folder", source))?;
            match fs::rename(&from, &path) {
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => self.put_as(digest, |file| {
                    std::io::copy(&mut fs::File::open(&from)?, file).map(drop)
                }),
                moved => moved.map_err(io),
            }
        };
        in_io_pool(|| digests.par_iter().try_for_each(take))
    }

    /// Where the blob with `digest` lives (whether or not it is stored).
    ///
    /// A string that is not a 64-character lower-case hex digest, such as one from a
    /// tampered lock, maps to a path inside the store that `put` never writes, so it can
    /// never point outside the store.
    pub fn path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }
}

/// Where the blob with `digest` lives in a blob store rooted at `dir`:
/// `<dir>/<first two hex digits>/<hex>`. The one statement of the layout, for the store
/// and for whoever reads it (materialise takes bytes from it by path alone).
pub fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    if !is_digest(digest) {
        return dir.join("invalid-digest");
    }
    dir.join(&digest[..2]).join(digest)
}

/// Whether `text` is a 64-character lower-case hex digest, as blobs are named.
fn is_digest(text: &str) -> bool {
    text.len() == DIGEST_HEX_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many contents at once, some the same, in the store and in a scratch store: each
    /// is stored once under its digest, and no temporary is left beside it.
    #[test]
    fn put_all_stores_every_content_once() {
        let dir = tempfile::tempdir().unwrap();
        let contents: Vec<Vec<u8>> = (0..300u32)
            .map(|n| format!("content {}\n", n % 200).into_bytes())
            .collect();
        for store in [
            BlobStore::open(&dir.path().join("blobs")).unwrap(),
            BlobStore::scratch(&dir.path().join("scratch")).unwrap(),
        ] {
            store.put_all(&contents).unwrap();
            let mut listed = store.list().unwrap();
            listed.sort();
            let mut wanted: Vec<(String, u64)> = (contents.iter())
                .map(|c| (blake3::hash(c).to_hex().to_string(), c.len() as u64))
                .collect();
            wanted.sort();
            wanted.dedup();
            assert_eq!(listed, wanted);
            for content in &contents {
                let digest = blake3::hash(content).to_hex();
                assert_eq!(&fs::read(store.path(digest.as_str())).unwrap(), content);
            }
            let files = (fs::read_dir(&store.dir).unwrap().flatten())
                .flat_map(|shard| fs::read_dir(shard.path()).unwrap().flatten())
                .count();
            assert_eq!(files, 200, "only the blobs");
        }
    }

    /// Blobs are moved from a spool into the store, those it holds already left in the
    /// spool; one neither holds is an error that names it.
    #[test]
    fn take_from_moves_what_the_store_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let spool = BlobStore::scratch(&dir.path().join("spool")).unwrap();
        let old = store.put(b"old").unwrap();
        let new = spool.put(b"new").unwrap();
        assert_eq!(spool.put(b"old").unwrap(), old);
        store
            .take_from(&spool, &[old.clone(), new.clone()])
            .unwrap();
        assert_eq!(fs::read(store.path(&new)).unwrap(), b"new");
        assert!(!spool.path(&new).exists() && spool.path(&old).exists());
        let none = blake3::hash(b"none").to_hex().to_string();
        let err = store
            .take_from(&spool, std::slice::from_ref(&none))
            .unwrap_err();
        assert!(err.to_string().contains(&none), "{err}");
        assert!(!store.path(&none).exists());
    }

    #[test]
    fn put_stores_under_the_digest_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let digest = store.put(b"hello\n").unwrap();
        assert_eq!(digest, blake3::hash(b"hello\n").to_hex().to_string());
        let path = store.path(&digest);
        assert_eq!(
            path,
            dir.path().join("blobs").join(&digest[..2]).join(&digest)
        );
        assert_eq!(fs::read(&path).unwrap(), b"hello\n");
    }

    #[test]
    fn put_is_idempotent_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let first = store.put(b"same bytes").unwrap();
        let second = store.put(b"same bytes").unwrap();
        assert_eq!(first, second);
        let shard: Vec<_> = fs::read_dir(dir.path().join(&first[..2]))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(shard, vec![std::ffi::OsString::from(&first)]);
    }

    #[test]
    fn opening_removes_what_killed_puts_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"kept").unwrap();
        let shard = dir.path().join(&digest[..2]);
        let dead = crate::scratch::dead_pid();
        let stale = shard.join(format!(".{digest}.tmp-{dead}-0"));
        fs::write(&stale, b"ke").unwrap();
        let foreign = shard.join(format!(".notadigest.tmp-{dead}-0"));
        fs::write(&foreign, b"").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert!(!stale.exists());
        assert!(foreign.exists());
        assert_eq!(fs::read(store.path(&digest)).unwrap(), b"kept");
    }

    #[test]
    fn the_store_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("store/blobs");
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        let store = BlobStore::open(&blobs).unwrap();
        let digest = store.put(b"a key\n").unwrap();
        assert_eq!(mode(&blobs), 0o700);
        assert_eq!(mode(&blobs.join(&digest[..2])), 0o700);
        assert_eq!(mode(&store.path(&digest)), 0o600);
        // A folder an older appliance made 0755 is narrowed, which hides its 0644 blobs.
        fs::set_permissions(&blobs, fs::Permissions::from_mode(0o755)).unwrap();
        BlobStore::open(&blobs).unwrap();
        assert_eq!(mode(&blobs), 0o700);
    }

    #[test]
    fn empty_content_is_a_blob_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = store.put(b"").unwrap();
        assert_eq!(fs::read(store.path(&digest)).unwrap(), b"");
    }

    #[test]
    fn hostile_digests_stay_inside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        for bad in [
            "",
            "a",
            "../../etc/passwd",
            &"A".repeat(64),
            &"0".repeat(63),
        ] {
            let path = store.path(bad);
            assert!(path.starts_with(dir.path()), "{bad:?} -> {path:?}");
            assert!(!path.exists(), "{bad:?} -> {path:?}");
        }
    }

    #[test]
    fn write_failure_names_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = blake3::hash(b"x").to_hex().to_string();
        // A file where the shard folder should be makes the write fail.
        fs::write(dir.path().join(&digest[..2]), b"").unwrap();
        let err = store.put(b"x").unwrap_err();
        assert!(err.to_string().contains(&digest[..2]), "{err}");
    }
}
