//! Removing revisions (`appliance rm` and `appliance gc`), and what the revisions left
//! use: the digests, packages and lock ids that decide which blobs, pool archives and
//! cached images the store must keep.
//!
//! Rows go in one immediate transaction, the rows only the removed revisions held with
//! them (package file lists no other lock shares, a group, version or flavor left with
//! no lock), so a run killed at any point leaves every revision whole or gone. The
//! files the rows described are the caller's to remove afterwards: a file whose rows
//! are gone is garbage the next collection finds, never the other way round.

use std::collections::{BTreeMap, HashSet};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{Located, RepoError, Repository, SqlContext, address, by_version};

/// What the revisions a repository keeps use from the store: anything else in it is
/// garbage.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InUse {
    /// The BLAKE3 digest (hex) of every regular file of every kept lock, packaged or
    /// not: the blob store holds only what compile made, but a blob named by a kept
    /// digest may be the one source of those bytes, so every such blob stays.
    pub digests: HashSet<String>,
    /// Every package of every kept lock as (name, version, arch): its archive is where
    /// materialise takes its files from when the host lacks them.
    pub packages: HashSet<(String, String, String)>,
    /// The lock ids of the kept revisions: an output built from one is still current.
    pub lock_ids: HashSet<String>,
}

/// The rows a removed revision may leave unreferenced, in an order that keeps every
/// foreign key satisfied.
const ORPHANS: &[&str] = &[
    "DELETE FROM package_files WHERE package NOT IN (SELECT package FROM lock_packages)",
    "DELETE FROM packages WHERE id NOT IN (SELECT package FROM lock_packages)",
    "DELETE FROM group_versions WHERE id NOT IN (SELECT group_version FROM locks)",
    "DELETE FROM groups WHERE id NOT IN (SELECT group_id FROM group_versions)",
    "DELETE FROM flavors WHERE id NOT IN (SELECT flavor FROM locks)",
    // Trees no stored revision was made from: their compiles failed or were killed.
    "DELETE FROM configurations WHERE lock IS NULL",
];

impl Repository {
    /// The one revision `spec` names of `group` for the canonical `flavor`: it must say
    /// `VERSION-REVISION`. `None`, or a spec that names a stored version (whose latest
    /// revision [`Repository::load`] would take), is [`RepoError::Inexact`] with the
    /// revisions it could mean; a spec naming nothing stored is the error
    /// [`Repository::load`] gives.
    pub fn exact(
        &self,
        group: &str,
        flavor: &str,
        spec: Option<&str>,
    ) -> Result<Located, RepoError> {
        // Unknown group or flavor: the errors loading gives.
        let revisions = self.history(group, Some(flavor))?;
        let version = match spec {
            None => None,
            Some(spec) if revisions.iter().any(|r| r.version == spec) => Some(spec),
            Some(spec) => return self.locate_id(group, flavor, Some(spec)),
        };
        let mut candidates: Vec<_> = (revisions.into_iter())
            .filter(|r| version.is_none_or(|v| r.version == v))
            .collect();
        candidates
            .sort_by(|a, b| by_version(&a.version, &b.version).then(a.revision.cmp(&b.revision)));
        Err(RepoError::Inexact {
            path: self.path.clone(),
            candidates: (candidates.iter())
                .map(|r| address(&r.group, &r.version, r.revision, &r.flavor))
                .collect(),
        })
    }

    /// The revisions beyond the newest `keep` of each group and flavor, newest being
    /// the order [`Repository::load`] picks by (version in dpkg order, then revision),
    /// so the lock a bare `materialise` takes is never among them. A `keep` of 0 counts
    /// as 1.
    pub fn surplus(&self, keep: usize) -> Result<Vec<Located>, RepoError> {
        let mut by_address: BTreeMap<(String, String), Vec<Located>> = BTreeMap::new();
        for r in self.summaries()? {
            by_address
                .entry((r.group.clone(), r.flavor.clone()))
                .or_default()
                .push(Located {
                    group: r.group,
                    flavor: r.flavor,
                    version: r.version,
                    revision: r.revision,
                    lock_id: r.lock_id,
                });
        }
        let mut surplus = Vec::new();
        for mut revisions in by_address.into_values() {
            revisions.sort_by(|a, b| {
                by_version(&a.version, &b.version).then(a.revision.cmp(&b.revision))
            });
            let beyond = revisions.len().saturating_sub(keep.max(1));
            surplus.extend(revisions.into_iter().take(beyond));
        }
        Ok(surplus)
    }

    /// Removes `revisions` and every row only they held, in one transaction: all of
    /// them or, on any error, none. A revision that is no longer stored (another run
    /// removed it) is passed over.
    pub fn remove(&mut self, revisions: &[Located]) -> Result<(), RepoError> {
        let path = &self.path;
        let doing = || "removing revisions".to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .doing(path, doing)?;
        for r in revisions {
            let row: Option<i64> = tx
                .query_row(
                    "SELECT l.id FROM locks l
                     JOIN group_versions gv ON gv.id = l.group_version
                     JOIN groups g ON g.id = gv.group_id
                     JOIN flavors f ON f.id = l.flavor
                     WHERE g.name = ?1 AND gv.version = ?2 AND f.canonical = ?3
                     AND l.revision = ?4",
                    params![r.group, r.version, r.flavor, r.revision],
                    |row| row.get(0),
                )
                .optional()
                .doing_on(&tx, path, || format!("finding {}", r.address()))?;
            let Some(row) = row else { continue };
            for table in [
                "fingerprints",
                "configurations",
                "lock_files",
                "lock_packages",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE lock = ?1"), [row])
                    .doing_on(&tx, path, || format!("removing {}", r.address()))?;
            }
            tx.execute("DELETE FROM locks WHERE id = ?1", [row])
                .doing_on(&tx, path, || format!("removing {}", r.address()))?;
        }
        for sql in ORPHANS {
            tx.execute(sql, [])
                .doing_on(&tx, path, || "removing rows no revision uses".into())?;
        }
        tx.commit().doing_on(&self.conn, path, doing)
    }

    /// What every stored revision but `excluded` uses (see [`InUse`]); reading the
    /// rows, not loading the locks, so even a revision whose rows no longer hash to its
    /// id keeps what it names.
    pub fn in_use(&self, excluded: &[Located]) -> Result<InUse, RepoError> {
        let doing = || "reading what the kept revisions use".to_string();
        let excluded: HashSet<String> = excluded.iter().map(Located::address).collect();
        let mut used = InUse::default();
        let mut packages = HashSet::new();
        let rows = {
            let mut stmt = (self.conn.prepare(
                "SELECT l.id, g.name, gv.version, l.revision, f.canonical, l.lock_id
                 FROM locks l
                 JOIN group_versions gv ON gv.id = l.group_version
                 JOIN groups g ON g.id = gv.group_id
                 JOIN flavors f ON f.id = l.flavor",
            ))
            .doing(&self.path, doing)?;
            let rows = stmt.query_map([], |r| {
                let address = address(
                    &r.get::<_, String>(1)?,
                    &r.get::<_, String>(2)?,
                    r.get(3)?,
                    &r.get::<_, String>(4)?,
                );
                Ok((r.get::<_, i64>(0)?, address, r.get::<_, String>(5)?))
            });
            rows.and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
                .doing(&self.path, doing)?
        };
        for (row, address, lock_id) in rows {
            if excluded.contains(&address) {
                continue;
            }
            used.lock_ids.insert(lock_id);
            let strings = |sql: &str, owner: i64| self.strings(sql, [owner]);
            let digests = strings(
                "SELECT digest FROM lock_files WHERE lock = ?1 AND digest IS NOT NULL",
                row,
            );
            used.digests.extend(digests.doing(&self.path, doing)?);
            let mut stmt = (self.conn.prepare_cached(
                "SELECT p.id, p.name, p.version, p.arch FROM lock_packages lp
                 JOIN packages p ON p.id = lp.package WHERE lp.lock = ?1",
            ))
            .doing(&self.path, doing)?;
            let held = stmt
                .query_map([row], |r| {
                    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
                })
                .and_then(Iterator::collect::<rusqlite::Result<Vec<(i64, _)>>>)
                .doing(&self.path, doing)?;
            for (id, package) in held {
                used.packages.insert(package);
                packages.insert(id);
            }
        }
        for id in packages {
            let digests = self.strings(
                "SELECT digest FROM package_files WHERE package = ?1 AND digest IS NOT NULL",
                [id],
            );
            used.digests.extend(digests.doing(&self.path, doing)?);
        }
        Ok(used)
    }
}
