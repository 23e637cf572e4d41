//! The repository's SQLite schema, its migrations and connection settings.
//!
//! `PRAGMA user_version` records how many migrations a repository has run; opening applies
//! the rest in order, inside one transaction, so a repository is never half-migrated.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use super::{RepoError, SqlContext};

/// How long a writer waits for another process's transaction before giving up. Storing
/// a 100k-file lock takes well under a second, so this only trips on a stuck process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between attempts of an operation SQLite refuses to wait for itself.
const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Migration `i` takes `user_version` from `i` to `i + 1`. Append only: a migration that
/// has shipped never changes, because existing repositories have already run it.
const MIGRATIONS: &[&str] = &[V1, V2];

/// The first schema.
///
/// Naming: `locks.lock_id` is the BLAKE3 lock id; `lock` columns elsewhere reference
/// `locks.id`, the row. File tables are `WITHOUT ROWID` and keyed by (owner, path): the
/// store inserts one new owner at a time in path order, so every insert appends to the
/// b-tree and no secondary index has to be maintained.
const V1: &str = "
CREATE TABLE groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE group_versions (
    id INTEGER PRIMARY KEY,
    group_id INTEGER NOT NULL REFERENCES groups(id),
    version TEXT NOT NULL,
    UNIQUE (group_id, version)
);
CREATE TABLE flavors (
    id INTEGER PRIMARY KEY,
    canonical TEXT NOT NULL UNIQUE
);
CREATE TABLE locks (
    id INTEGER PRIMARY KEY,
    group_version INTEGER NOT NULL REFERENCES group_versions(id),
    flavor INTEGER NOT NULL REFERENCES flavors(id),
    revision INTEGER NOT NULL CHECK (revision >= 1),
    lock_id TEXT NOT NULL,
    merkle_root TEXT NOT NULL,
    inputs TEXT NOT NULL,
    cmd TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (group_version, flavor, revision)
);
CREATE TABLE packages (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    arch TEXT NOT NULL,
    source TEXT NOT NULL,
    files_digest TEXT NOT NULL,
    file_count INTEGER NOT NULL,
    UNIQUE (name, version, arch, source, files_digest)
);
CREATE TABLE package_files (
    package INTEGER NOT NULL REFERENCES packages(id),
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    group_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    digest TEXT,
    target TEXT,
    dev_major INTEGER,
    dev_minor INTEGER,
    caps TEXT,
    conffile INTEGER NOT NULL,
    origin TEXT,
    PRIMARY KEY (package, path)
) WITHOUT ROWID;
CREATE TABLE lock_packages (
    lock INTEGER NOT NULL REFERENCES locks(id),
    package INTEGER NOT NULL REFERENCES packages(id),
    reason TEXT NOT NULL,
    PRIMARY KEY (lock, package)
) WITHOUT ROWID;
CREATE TABLE lock_files (
    lock INTEGER NOT NULL REFERENCES locks(id),
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    mode INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    gid INTEGER NOT NULL,
    user_name TEXT NOT NULL,
    group_name TEXT NOT NULL,
    size INTEGER NOT NULL,
    digest TEXT,
    target TEXT,
    dev_major INTEGER,
    dev_minor INTEGER,
    caps TEXT,
    conffile INTEGER NOT NULL,
    origin TEXT,
    package TEXT,
    PRIMARY KEY (lock, path)
) WITHOUT ROWID;
";

/// The kernel modules a lock's images load at boot (`module` statements), as JSON.
const V2: &str = "ALTER TABLE locks ADD COLUMN modules TEXT NOT NULL DEFAULT '[]';";

/// Opens (creating if needed) the SQLite file at `path` and brings its schema up to date.
pub(super) fn connect(path: &Path) -> Result<Connection, RepoError> {
    let mut conn = Connection::open(path).doing(path, || "opening".into())?;
    // The busy timeout goes first: switching to WAL takes a lock another opener may hold.
    conn.busy_timeout(BUSY_TIMEOUT)
        .doing(path, || "setting the busy timeout".into())?;
    retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))
        .doing_on(&conn, path, || "switching to WAL".into())?;
    conn.pragma_update(None, "foreign_keys", true)
        .doing(path, || "enabling foreign keys".into())?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Runs `op` until it stops failing with `SQLITE_BUSY` or the busy timeout passes.
///
/// Switching a new file to WAL needs an exclusive lock, and when two openers race for it
/// SQLite reports BUSY at once rather than calling the busy handler (waiting could
/// deadlock), so the wait happens here.
fn retry_busy<T>(mut op: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let start = Instant::now();
    loop {
        match op() {
            Err(error)
                if error.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(BUSY_RETRY_PAUSE);
            }
            result => return result,
        }
    }
}

/// Runs the migrations `conn` has not run yet, all in one immediate transaction so that
/// two processes opening a new repository at once cannot both run them.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), RepoError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .doing(path, || "starting the schema migration".into())?;
    let found: u32 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .doing_on(&tx, path, || "reading the schema version".into())?;
    let known = MIGRATIONS.len();
    let done = found as usize;
    if done > known {
        return Err(RepoError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let target = index + 1;
        tx.execute_batch(sql).doing_on(&tx, path, || {
            format!("migrating the schema to version {target}")
        })?;
        tx.pragma_update(None, "user_version", target)
            .doing_on(&tx, path, || format!("recording schema version {target}"))?;
    }
    tx.commit()
        .doing_on(conn, path, || "committing the schema migration".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(conn: &Connection) -> usize {
        conn.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn new_file_gets_every_migration_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        let conn = connect(&path).unwrap();
        assert_eq!(user_version(&conn), MIGRATIONS.len());
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: bool = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert!(fk);
    }

    #[test]
    fn reconnecting_runs_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        drop(connect(&path).unwrap());
        // Running V1 again would fail on CREATE TABLE, so success proves it was skipped.
        let conn = connect(&path).unwrap();
        assert_eq!(user_version(&conn), MIGRATIONS.len());
    }

    #[test]
    fn newer_schema_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        let conn = connect(&path).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() + 5)
            .unwrap();
        drop(conn);
        let err = connect(&path).unwrap_err();
        assert!(matches!(err, RepoError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("repo.sqlite"), "{err}");
    }
}
