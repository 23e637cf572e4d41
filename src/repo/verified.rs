//! Which installed packages compile found holding the bytes dpkg unpacked, kept across
//! compiles by sysroot and package with the stamp of their files as they were then (see
//! `source::dpkg::verify`): a later compile that finds the same stamp need not read
//! and hash the package's files again. The repository only keeps and finds the stamps.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::params;

use super::{RepoError, Repository, SqlContext};

/// One installed package found unchanged.
pub struct Verified {
    /// The sysroot it is installed in.
    pub sysroot: PathBuf,
    /// `name:arch`.
    pub package: String,
    /// The stamp of its files when they were checked.
    pub stamp: String,
}

impl Repository {
    /// The stamps kept for the packages installed in `sysroot`, by `name:arch`.
    pub fn verified(&self, sysroot: &Path) -> Result<HashMap<String, String>, RepoError> {
        let doing = || {
            format!(
                "reading the packages of {} found unchanged",
                sysroot.display()
            )
        };
        let mut stmt = (self.conn)
            .prepare("SELECT package, stamp FROM verified WHERE sysroot = ?1")
            .doing(&self.path, doing)?;
        let rows = stmt
            .query_map([sysroot.as_os_str().as_bytes()], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .doing(&self.path, doing)?;
        rows.collect::<rusqlite::Result<_>>()
            .doing(&self.path, doing)
    }

    /// Keeps `found`, each in place of what its package had, in one transaction.
    pub fn keep_verified(&self, found: &[Verified]) -> Result<(), RepoError> {
        let doing = || "keeping the packages found unchanged".to_string();
        let tx = (self.conn.unchecked_transaction()).doing(&self.path, doing)?;
        for verified in found {
            tx.execute(
                "INSERT OR REPLACE INTO verified (sysroot, package, stamp) VALUES (?1, ?2, ?3)",
                params![
                    verified.sysroot.as_os_str().as_bytes(),
                    verified.package,
                    verified.stamp
                ],
            )
            .doing_on(&tx, &self.path, doing)?;
        }
        tx.commit().doing_on(&self.conn, &self.path, doing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_is_found_by_its_sysroot_and_replaced_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(&dir.path().join("repo.sqlite")).unwrap();
        let found = |sysroot: &str, stamp: &str| Verified {
            sysroot: PathBuf::from(sysroot),
            package: "bash:amd64".into(),
            stamp: stamp.into(),
        };
        repo.keep_verified(&[found("/", "one"), found("/srv/root", "other")])
            .unwrap();
        repo.keep_verified(&[found("/", "two")]).unwrap();
        let kept = repo.verified(Path::new("/")).unwrap();
        assert_eq!(kept, HashMap::from([("bash:amd64".into(), "two".into())]));
        let elsewhere = repo.verified(Path::new("/srv/root")).unwrap();
        assert_eq!(elsewhere["bash:amd64"], "other");
        assert!(repo.verified(Path::new("/none")).unwrap().is_empty());
    }
}
