//! The blob store: file contents addressed by their BLAKE3 digest.
//!
//! Layout: `<dir>/<first two hex chars>/<full hex digest>`. A blob appears by rename of a
//! fully written and synced temporary file beside it, so a reader never sees a partial
//! blob, even after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::RepoError;

/// Length of a BLAKE3 digest in hex.
const DIGEST_HEX_LEN: usize = 64;

/// Distinguishes temporary files of concurrent `put`s within one process; the process
/// id in the name separates processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Content-addressed storage for bytes no host file or package archive can supply
/// (group `file` contents, host files copied at compile time, overlays).
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
}

impl BlobStore {
    /// Opens the blob store rooted at `dir` (normally `store/blobs/`), creating the folder.
    pub fn open(dir: &Path) -> Result<BlobStore, RepoError> {
        fs::create_dir_all(dir).map_err(|source| RepoError::Io {
            path: dir.to_path_buf(),
            doing: "creating the blob store folder",
            source,
        })?;
        Ok(BlobStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Stores `bytes` and returns their BLAKE3 digest, lower-case hex. Storing bytes that
    /// are already present writes nothing.
    pub fn put(&self, bytes: &[u8]) -> Result<String, RepoError> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        let path = self.path(&digest);
        if path.is_file() {
            return Ok(digest);
        }
        let shard = path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(shard).map_err(|source| RepoError::Io {
            path: shard.to_path_buf(),
            doing: "creating a blob folder",
            source,
        })?;
        let temp = shard.join(format!(
            ".{digest}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(&temp, bytes).and_then(|()| fs::rename(&temp, &path));
        if let Err(source) = written {
            // Best effort: the temp name is ours alone, and the error below matters more.
            let _ = fs::remove_file(&temp);
            return Err(RepoError::Io {
                path,
                doing: "writing a blob",
                source,
            });
        }
        Ok(digest)
    }

    /// Where the blob with `digest` lives (whether or not it is stored).
    ///
    /// A string that is not a 64-character lower-case hex digest, such as one from a
    /// tampered lock, maps to a path inside the store that `put` never writes, so it can
    /// never point outside the store.
    pub fn path(&self, digest: &str) -> PathBuf {
        let valid = digest.len() == DIGEST_HEX_LEN
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return self.dir.join("invalid-digest");
        }
        self.dir.join(&digest[..2]).join(digest)
    }
}

/// Writes `bytes` to a new file at `path` and syncs it, so a rename publishes it whole.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file: File = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

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
