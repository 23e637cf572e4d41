//! What compile read of pool archives, kept across compiles by each archive's path and
//! the BLAKE3 of its bytes (see `compile::fetch`): a compile that reads the same
//! archive again takes what the last read found instead of decompressing and hashing
//! its data. The repository only keeps and finds the encoded reads.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::{RepoError, Repository, SqlContext};

/// One read to keep: of the archive at `path`, whose bytes have the BLAKE3 `archive`.
pub struct ArchiveRead {
    /// Where the archive is.
    pub path: PathBuf,
    /// The BLAKE3 (hex) of its bytes when read.
    pub archive: String,
    /// What was read, encoded by compile.
    pub read: Vec<u8>,
}

impl Repository {
    /// The read kept for the archive at `path` if it was of the archive `archive` (the
    /// BLAKE3 of its bytes) and made by `build`.
    pub fn archive_read(
        &self,
        path: &Path,
        archive: &str,
        build: &str,
    ) -> Result<Option<Vec<u8>>, RepoError> {
        self.conn
            .query_row(
                "SELECT read FROM archive_reads WHERE path = ?1 AND archive = ?2 AND build = ?3",
                params![path.as_os_str().as_bytes(), archive, build],
                |row| row.get(0),
            )
            .optional()
            .doing(&self.path, || {
                format!("reading what was read of {}", path.display())
            })
    }

    /// Keeps `reads`, made by `build`, each in place of what its path had, in one
    /// transaction.
    pub fn keep_archive_reads(&self, reads: &[ArchiveRead], build: &str) -> Result<(), RepoError> {
        let doing = || "keeping what was read of the archives".to_string();
        let tx = (self.conn.unchecked_transaction()).doing(&self.path, doing)?;
        for read in reads {
            tx.execute(
                "INSERT OR REPLACE INTO archive_reads (path, archive, build, read) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    read.path.as_os_str().as_bytes(),
                    read.archive,
                    build,
                    read.read
                ],
            )
            .doing_on(&tx, &self.path, doing)?;
        }
        tx.commit().doing_on(&self.conn, &self.path, doing)
    }

    /// Forgets the reads of archives no longer at their path; returns how many.
    pub fn forget_archive_reads_gone(&self) -> Result<usize, RepoError> {
        let doing = || "forgetting what was read of archives gone".to_string();
        let paths: Vec<Vec<u8>> = {
            let mut stmt =
                (self.conn.prepare("SELECT path FROM archive_reads")).doing(&self.path, doing)?;
            let rows = stmt
                .query_map([], |row| row.get(0))
                .doing(&self.path, doing)?;
            rows.collect::<rusqlite::Result<_>>()
                .doing(&self.path, doing)?
        };
        let mut forgotten = 0;
        for path in paths {
            let there = Path::new(std::ffi::OsStr::from_bytes(&path));
            // Only an archive known to be gone: one that cannot be examined may be back.
            if there
                .symlink_metadata()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            {
                forgotten += (self.conn)
                    .execute("DELETE FROM archive_reads WHERE path = ?1", [&path])
                    .doing_on(&self.conn, &self.path, doing)?;
            }
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read is found by its path, archive and build alone, replaced by the next read
    /// of its path, and forgotten once its archive is gone.
    #[test]
    fn reads_are_found_by_archive_and_build_and_go_with_their_archive() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(&dir.path().join("repo.sqlite")).unwrap();
        let [kept, gone] = ["kept.deb", "gone.deb"].map(|name| dir.path().join(name));
        for path in [&kept, &gone] {
            std::fs::write(path, b"archive").unwrap();
        }
        let read = |path: &Path, archive: &str, read: &[u8]| ArchiveRead {
            path: path.to_path_buf(),
            archive: archive.to_string(),
            read: read.to_vec(),
        };
        let reads = [read(&kept, "a1", b"first"), read(&gone, "b1", b"other")];
        repo.keep_archive_reads(&reads, "build 1").unwrap();
        let found = |path: &Path, archive: &str, build: &str| {
            repo.archive_read(path, archive, build).unwrap()
        };
        assert_eq!(
            found(&kept, "a1", "build 1").as_deref(),
            Some(&b"first"[..])
        );
        assert_eq!(found(&kept, "a1", "build 2"), None, "another build's");
        assert_eq!(found(&kept, "b1", "build 1"), None, "another archive's");
        repo.keep_archive_reads(&[read(&kept, "a2", b"second")], "build 2")
            .unwrap();
        assert_eq!(found(&kept, "a1", "build 1"), None, "replaced");
        assert_eq!(
            found(&kept, "a2", "build 2").as_deref(),
            Some(&b"second"[..])
        );
        std::fs::remove_file(&gone).unwrap();
        assert_eq!(repo.forget_archive_reads_gone().unwrap(), 1);
        assert_eq!(found(&gone, "b1", "build 1"), None);
        assert!(found(&kept, "a2", "build 2").is_some());
    }
}
