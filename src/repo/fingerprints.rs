//! The fingerprints of compiles: per recipe, the lock its last compile made and what
//! that compile read (see `compile::fingerprint`), so a compile whose inputs are all as
//! they were answers with that lock. The repository only keeps and finds them.

use rusqlite::{OptionalExtension, params};

use super::{Located, RepoError, Repository, SqlContext};

/// What the repository holds for a recipe's fingerprint key, with the lock it names
/// when that lock is still the latest revision of its group version and flavor.
pub struct Fingerprinted {
    /// The lock.
    pub located: Located,
    /// How many packages and files it holds.
    pub counts: (usize, usize),
    /// The identities of what its compile read, as `compile::fingerprint` encoded them.
    pub inputs: Vec<u8>,
    /// The lock's folders the host supplied, as `compile::fingerprint` encoded them.
    pub folders: String,
    /// The compile's warnings about this lock, and about its sources.
    pub warnings: (Vec<String>, Vec<String>),
}

/// What a compile leaves for its recipe's fingerprint key.
pub struct Fingerprint<'a> {
    /// The key (`compile::fingerprint::key`).
    pub key: &'a str,
    /// The lock made, as stored.
    pub located: &'a Located,
    /// See [`Fingerprinted::inputs`].
    pub inputs: &'a [u8],
    /// See [`Fingerprinted::folders`].
    pub folders: &'a str,
    /// See [`Fingerprinted::counts`].
    pub counts: (usize, usize),
    /// See [`Fingerprinted::warnings`].
    pub warnings: (&'a [String], &'a [String]),
}

impl Repository {
    /// What the repository holds for fingerprint `key`: `None` when nothing, or when
    /// its lock is no longer the latest revision (a compile would store a new one).
    pub fn fingerprinted(&self, key: &str) -> Result<Option<Fingerprinted>, RepoError> {
        let path = &self.path;
        let doing = || format!("reading the fingerprint {key}");
        let found = self
            .conn
            .query_row(
                "SELECT g.name, gv.version, f.canonical, l.revision, l.lock_id,
                        fp.inputs, fp.folders, fp.warnings, fp.batch_warnings,
                        fp.packages, fp.files,
                        (SELECT MAX(m.revision) FROM locks m
                         WHERE m.group_version = l.group_version AND m.flavor = l.flavor)
                 FROM fingerprints fp
                 JOIN locks l ON l.id = fp.lock
                 JOIN group_versions gv ON gv.id = l.group_version
                 JOIN groups g ON g.id = gv.group_id
                 JOIN flavors f ON f.id = l.flavor
                 WHERE fp.recipe = ?1",
                [key],
                |r| {
                    let located = Located {
                        group: r.get(0)?,
                        version: r.get(1)?,
                        flavor: r.get(2)?,
                        revision: r.get(3)?,
                        lock_id: r.get(4)?,
                    };
                    let texts: (String, String) = (r.get(7)?, r.get(8)?);
                    let latest: u32 = r.get(11)?;
                    let counts: (i64, i64) = (r.get(9)?, r.get(10)?);
                    Ok((located, r.get(5)?, r.get(6)?, texts, latest, counts))
                },
            )
            .optional()
            .doing(path, doing)?;
        let Some((located, inputs, folders, texts, latest, counts)) = found else {
            return Ok(None);
        };
        let warnings = match (
            serde_json::from_str(&texts.0),
            serde_json::from_str(&texts.1),
        ) {
            (Ok(lock), Ok(batch)) => (lock, batch),
            // Rows no appliance wrote: compile again, and the record is written anew.
            _ => return Ok(None),
        };
        if located.revision != latest {
            return Ok(None);
        }
        let count = |n: i64| usize::try_from(n).unwrap_or_default();
        let counts = (count(counts.0), count(counts.1));
        Ok(Some(Fingerprinted {
            counts,
            located,
            inputs,
            folders,
            warnings,
        }))
    }

    /// Records what a compile made for its fingerprint key, replacing what the key
    /// named before. A lock no longer stored (removed meanwhile) records nothing.
    pub fn record_fingerprint(&mut self, fp: &Fingerprint) -> Result<(), RepoError> {
        let path = &self.path;
        let l = fp.located;
        let doing = || format!("recording the fingerprint of {}", l.address());
        let json = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT OR REPLACE INTO fingerprints
                     (recipe, lock, packages, files, inputs, folders, warnings, batch_warnings)
                 SELECT ?1, l.id, ?10, ?11, ?2, ?3, ?4, ?5 FROM locks l
                 JOIN group_versions gv ON gv.id = l.group_version
                 JOIN groups g ON g.id = gv.group_id
                 JOIN flavors f ON f.id = l.flavor
                 WHERE g.name = ?6 AND gv.version = ?7 AND f.canonical = ?8
                 AND l.revision = ?9",
                params![
                    fp.key,
                    fp.inputs,
                    fp.folders,
                    json(fp.warnings.0),
                    json(fp.warnings.1),
                    l.group,
                    l.version,
                    l.flavor,
                    l.revision,
                    fp.counts.0 as i64,
                    fp.counts.1 as i64
                ],
            )
            .doing_on(&self.conn, path, doing)?;
        Ok(())
    }
}
