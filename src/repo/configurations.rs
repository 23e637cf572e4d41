//! Configured trees kept across compiles, by the digest of the configure job that made
//! them (see `compile::as_root`), so a compile that asks for the same tree again takes
//! it instead of running the packages' scripts. The repository only keeps and finds
//! the encoded trees; a tree goes when the revision made from it does.

use rusqlite::{OptionalExtension, params};

use super::{RepoError, Repository, SqlContext};

impl Repository {
    /// The tree kept for configure job `job`, as [`Repository::keep_configured`] was
    /// given it.
    pub fn configured(&self, job: &str) -> Result<Option<Vec<u8>>, RepoError> {
        self.conn
            .query_row(
                "SELECT tree FROM configurations WHERE job = ?1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .doing(&self.path, || format!("reading the configured tree {job}"))
    }

    /// Keeps `tree`, made by configure job `job`, until the revision a compile stores
    /// from it ([`Repository::made_from`]) is removed; one no revision was stored from
    /// goes with the next `gc`.
    pub fn keep_configured(&self, job: &str, tree: &[u8]) -> Result<(), RepoError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO configurations (job, lock, tree) VALUES (?1, NULL, ?2)",
                params![job, tree],
            )
            .doing_on(&self.conn, &self.path, || {
                format!("keeping the configured tree {job}")
            })?;
        Ok(())
    }

    /// Records that the latest revision holding `lock_id` was made from the tree of
    /// configure job `job`, which is kept as long as that revision is. A tree no
    /// longer kept records nothing.
    pub fn made_from(&self, lock_id: &str, job: &str) -> Result<(), RepoError> {
        self.conn
            .execute(
                "UPDATE configurations
                 SET lock = (SELECT MAX(id) FROM locks WHERE lock_id = ?1)
                 WHERE job = ?2",
                params![lock_id, job],
            )
            .doing_on(&self.conn, &self.path, || {
                format!("recording the configured tree of lock {lock_id}")
            })?;
        Ok(())
    }
}
