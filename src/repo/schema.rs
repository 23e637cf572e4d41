//! The repository's SQLite schema, its migrations, the mark that makes a file appliance's,
//! and connection settings.
//!
//! `PRAGMA user_version` records how many migrations a repository has run; opening it for
//! writing applies the rest in order, inside one transaction, so a repository is never
//! half-migrated. `PRAGMA application_id` marks the file as appliance's. Before SQLite
//! writes anything, opening looks at what the path holds: a device, a FIFO, a folder,
//! another program's database or any other file is refused as it is. Reading never
//! migrates, and SQLite refuses every write on a reader's connection.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::{RepoError, SqlContext};

/// The `PRAGMA application_id` of every repository: `APPL` in ASCII.
const APPLICATION_ID: i32 = 0x4150_504C;

/// The schema versions that shipped before repositories were marked.
const UNMARKED_VERSIONS: RangeInclusive<u32> = 1..=2;

/// The tables of those schemas, sorted: an unmarked database at one of those versions
/// with exactly these tables is a repository an earlier appliance made.
const UNMARKED_TABLES: [&str; 8] = [
    "flavors",
    "group_versions",
    "groups",
    "lock_files",
    "lock_packages",
    "locks",
    "package_files",
    "packages",
];

/// The first bytes of every SQLite database, and where its header keeps the application
/// id (big-endian).
const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";
const APPLICATION_ID_AT: usize = 68;

/// How long a writer waits for another process's transaction before giving up. Storing
/// a 100k-file lock takes well under a second, so this only trips on a stuck process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The pause between attempts of an operation SQLite refuses to wait for itself.
const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Migration `i` takes `user_version` from `i` to `i + 1`. Append only: a migration that
/// has shipped never changes, because existing repositories have already run it.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10];

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

/// What a package database records of a file beyond the first schema: its mtime (rpm's
/// `FILEMTIMES`) and whether it is documentation (`doc`, `license`); NULL for none.
const V3: &str = "
ALTER TABLE package_files ADD COLUMN mtime INTEGER;
ALTER TABLE package_files ADD COLUMN documentation TEXT;
ALTER TABLE lock_files ADD COLUMN mtime INTEGER;
ALTER TABLE lock_files ADD COLUMN documentation TEXT;
";

/// A lock's container config besides `cmd` (`env`, `run-as`, `workdir`, `expose`,
/// `label`, `entrypoint`), as JSON; `{}` for none, which every earlier lock has.
const V4: &str = "ALTER TABLE locks ADD COLUMN container TEXT NOT NULL DEFAULT '{}';";

/// The index of apt's lists, so a compile reads only the stanzas its groups can reach:
/// each list by its identity (rebuilt when that changes), each stanza by name with the
/// names it needs and provides. The name indexes are made by `repo::apt_index` after
/// each rebuild's inserts, which is several times faster than maintaining them.
const V5: &str = "
CREATE TABLE apt_lists (
    id INTEGER PRIMARY KEY,
    path BLOB NOT NULL UNIQUE,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    mtime_nsec INTEGER NOT NULL,
    packages INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE apt_stanzas (
    list INTEGER NOT NULL REFERENCES apt_lists(id),
    seq INTEGER NOT NULL,
    name TEXT,
    essential INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (list, seq)
) WITHOUT ROWID;
CREATE TABLE apt_names (
    list INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    provides INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (list, seq, provides, name)
) WITHOUT ROWID;
";

/// What answers a compile whose inputs are unchanged: per recipe (the fingerprint's
/// key), the lock its last compile made, the identities of what that compile read
/// (`compile::fingerprint`), the lock's package and file counts as compile reports
/// them, and the warnings it gave, as JSON lists.
const V6: &str = "
CREATE TABLE fingerprints (
    recipe TEXT PRIMARY KEY,
    lock INTEGER NOT NULL REFERENCES locks(id),
    packages INTEGER NOT NULL,
    files INTEGER NOT NULL,
    inputs BLOB NOT NULL,
    folders TEXT NOT NULL,
    warnings TEXT NOT NULL,
    batch_warnings TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX fingerprints_by_lock ON fingerprints(lock);
";

/// The index of apt's lists without the stanzas' text, which made it as large as the
/// lists themselves and its build three times slower: each stanza is kept by where it
/// lies in its list (read back from there, the list's identity unchanged), with the
/// names it needs in one column, and only the provided names get rows of their own.
/// The old index is dropped and every list indexed again.
const V7: &str = "
DROP TABLE apt_names;
DROP TABLE apt_stanzas;
DELETE FROM apt_lists;
CREATE TABLE apt_stanzas (
    list INTEGER NOT NULL REFERENCES apt_lists(id),
    seq INTEGER NOT NULL,
    name TEXT,
    essential INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    first_line INTEGER NOT NULL,
    start INTEGER NOT NULL,
    length INTEGER NOT NULL,
    needs TEXT NOT NULL,
    PRIMARY KEY (list, seq)
) WITHOUT ROWID;
CREATE TABLE apt_provides (
    list INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (list, seq, name)
) WITHOUT ROWID;
";

/// Configured trees kept across compiles, by the configure job that made them
/// (`compile::as_root`): the packages' scripts are most of a compile's time, and a
/// group edited outside its packages, or compiled again after `apt-get update` left
/// its packages as they were, needs the same tree. `tree` is the tree as compile
/// encoded it; `lock` the last revision made from it (NULL until one is stored): a tree
/// goes with that revision, or with `gc` when none was stored.
const V8: &str = "
CREATE TABLE configurations (
    job TEXT PRIMARY KEY,
    lock INTEGER REFERENCES locks(id),
    tree BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX configurations_by_lock ON configurations(lock);
";

/// What compile read of each pool archive's data (entries with their digests, and the
/// bytes it keeps), so that a later compile by the same build (`build`) takes it for the
/// same archive (`archive`, the BLAKE3 of its bytes) instead of decompressing and
/// hashing it again. One row a path: a new archive there replaces it, and `gc` forgets
/// the rows of paths gone.
const V9: &str = "
CREATE TABLE archive_reads (
    path BLOB PRIMARY KEY,
    archive TEXT NOT NULL,
    build TEXT NOT NULL,
    read BLOB NOT NULL
) WITHOUT ROWID;
";

/// The installed packages compile found holding the bytes dpkg unpacked: by sysroot and
/// `name:arch`, the stamp of their files then (their identities, hashed), so that a
/// later compile finding the same stamp need not hash them again. One row a package: the
/// next check replaces it.
const V10: &str = "
CREATE TABLE verified (
    sysroot BLOB NOT NULL,
    package TEXT NOT NULL,
    stamp TEXT NOT NULL,
    PRIMARY KEY (sysroot, package)
) WITHOUT ROWID;
";

/// What an existing SQLite database holds.
pub(super) enum Contents {
    /// Nothing: no table, no schema version; a repository can be made in it.
    Blank,
    /// A repository with appliance's schema at `version`, marked or made by an earlier
    /// appliance.
    Repository { version: u32 },
}

/// Opens (creating if needed) the repository at `path` for writing, after checking it is
/// one or can become one ([`examine`]), brings its schema up to date and marks it. Also
/// returns whether it marked a repository an earlier appliance made.
pub(super) fn connect(path: &Path) -> Result<(Connection, bool), RepoError> {
    examine(path)?;
    // The busy timeout comes with the connection: switching to WAL takes a lock another
    // opener may hold.
    let mut conn = open(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))
        .doing_on(&conn, path, || "switching to WAL".into())?;
    conn.pragma_update(None, "foreign_keys", true)
        .doing(path, || "enabling foreign keys".into())?;
    let adopted = migrate(&mut conn, path)?;
    Ok((conn, adopted))
}

/// Opens the existing repository at `path` for reading: it must be appliance's, with this
/// appliance's schema. See [`reader`] for the connection.
pub(super) fn connect_read_only(path: &Path) -> Result<Connection, RepoError> {
    let known = MIGRATIONS.len();
    match examine(path)? {
        None | Some((Contents::Blank, _)) => Err(RepoError::Absent {
            path: path.to_path_buf(),
        }),
        Some((Contents::Repository { version }, _)) if (version as usize) < known => {
            Err(RepoError::Outdated {
                path: path.to_path_buf(),
                found: version,
                known,
            })
        }
        Some((Contents::Repository { .. }, conn)) => Ok(conn),
    }
}

/// A connection to the existing database at `path` on which SQLite refuses every write
/// (`query_only`). It is opened read-write, never created, only so that, as the last
/// connection to close, it removes the `-wal` and `-shm` files SQLite keeps beside a WAL
/// database: a read-only connection leaves them behind.
fn reader(path: &Path) -> Result<Connection, RepoError> {
    let conn = open(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "query_only", true)
        .doing(path, || "making the connection read-only".into())?;
    Ok(conn)
}

/// What `path` holds, with a [`reader`] connection to it; `None` when there is no
/// database yet (no file, or an empty one). Anything but a blank database or a
/// repository this appliance can read is refused.
pub(super) fn examine(path: &Path) -> Result<Option<(Contents, Connection)>, RepoError> {
    match header(path)? {
        Header::NoDatabase => return Ok(None),
        Header::Marked => {}
        // A first look through a read-only connection, so that nothing is written to
        // another program's database, not even a rollback of its unfinished transaction.
        Header::Unmarked => {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            classify(&open(path, flags)?, path)?;
        }
    }
    // The reader's own reading is the one to act on (a WAL database's header may lag
    // behind it); having read, it is also the connection that removes the WAL files
    // when it closes last.
    let conn = reader(path)?;
    let contents = classify(&conn, path)?;
    Ok(Some((contents, conn)))
}

/// Opens `path` with `flags`; the connection waits for other processes' locks.
fn open(path: &Path, flags: OpenFlags) -> Result<Connection, RepoError> {
    let conn = Connection::open_with_flags(path, flags).doing(path, || "opening".into())?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .doing(path, || "setting the busy timeout".into())?;
    Ok(conn)
}

/// What the file at `path` is, as far as its type and its header tell.
enum Header {
    /// No file, or an empty one.
    NoDatabase,
    /// A SQLite database marked as a repository.
    Marked,
    /// A SQLite database with no application id.
    Unmarked,
}

/// Looks at `path` before SQLite sees it, refusing what cannot be a repository: SQLite
/// would make a `-journal` beside a device and write a new header into any file it can.
/// The header's application id is read here too, so another program's marked database
/// is never opened at all.
fn header(path: &Path) -> Result<Header, RepoError> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Header::NoDatabase),
        Err(e) => return Err(RepoError::io(path, "looking at the repository file", e)),
    };
    if let Some(what) = not_a_file(meta.file_type()) {
        return Err(foreign(path, what.to_string()));
    }
    if meta.len() == 0 {
        return Ok(Header::NoDatabase);
    }
    let mut header = Vec::new();
    File::open(path)
        .and_then(|file| file.take(100).read_to_end(&mut header))
        .map_err(|e| RepoError::io(path, "reading the repository's header", e))?;
    if !header.starts_with(SQLITE_MAGIC) {
        return Err(foreign(path, "a file that is not a SQLite database".into()));
    }
    // A header too short to hold the id is SQLite's to call damaged.
    let marked = match header.get(APPLICATION_ID_AT..APPLICATION_ID_AT + 4) {
        Some(id) => is_marked(path, i32::from_be_bytes([id[0], id[1], id[2], id[3]]))?,
        None => false,
    };
    Ok(if marked {
        Header::Marked
    } else {
        Header::Unmarked
    })
}

/// What a file of type `kind` (symbolic links followed) is, when it is not a regular file.
fn not_a_file(kind: fs::FileType) -> Option<&'static str> {
    let what = [
        (kind.is_dir(), "a directory"),
        (kind.is_char_device(), "a character device"),
        (kind.is_block_device(), "a block device"),
        (kind.is_fifo(), "a FIFO"),
        (kind.is_socket(), "a socket"),
        (!kind.is_file(), "not a regular file"),
    ];
    what.into_iter().find_map(|(is, what)| is.then_some(what))
}

/// Whether a database with application id `id` is marked as a repository; another
/// program's id is refused.
fn is_marked(path: &Path, id: i32) -> Result<bool, RepoError> {
    match id {
        APPLICATION_ID => Ok(true),
        0 => Ok(false),
        other => Err(foreign(
            path,
            format!("another program's SQLite database (application id {other:#010x})"),
        )),
    }
}

/// Reads what an open database holds, writing nothing.
fn classify(conn: &Connection, path: &Path) -> Result<Contents, RepoError> {
    let marked = is_marked(path, pragma(conn, path, "application_id")?)?;
    let version: u32 = pragma(conn, path, "user_version")?;
    let known = MIGRATIONS.len();
    if marked && version as usize > known {
        return Err(RepoError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known,
        });
    }
    let tables = tables(conn).doing_on(conn, path, || "reading its schema".into())?;
    if marked || (UNMARKED_VERSIONS.contains(&version) && tables == UNMARKED_TABLES) {
        Ok(Contents::Repository { version })
    } else if version == 0 && tables.is_empty() {
        Ok(Contents::Blank)
    } else {
        let names = if tables.is_empty() {
            "none".to_string()
        } else {
            tables.join(", ")
        };
        Err(foreign(
            path,
            format!("another program's SQLite database (tables: {names})"),
        ))
    }
}

/// The value of `PRAGMA name`. Reading a WAL database may have to grow SQLite's shared
/// index beside it, so a full disk is told as such.
fn pragma<T: FromSql>(conn: &Connection, path: &Path, name: &str) -> Result<T, RepoError> {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .doing_on(conn, path, || "reading its schema".into())
}

/// The names of the database's own tables (not SQLite's), sorted.
fn tables(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY name",
    )?;
    stmt.query_map([], |row| row.get(0))?.collect()
}

fn foreign(path: &Path, what: String) -> RepoError {
    RepoError::Foreign {
        path: path.to_path_buf(),
        what,
    }
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

/// Runs the migrations `conn` has not run yet and marks the file, all in one immediate
/// transaction so that two processes opening a new repository at once cannot both run
/// them. Returns whether it marked a repository an earlier appliance made.
fn migrate(conn: &mut Connection, path: &Path) -> Result<bool, RepoError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .doing(path, || "starting the schema migration".into())?;
    let found: u32 = pragma(&tx, path, "user_version")?;
    let marked = is_marked(path, pragma(&tx, path, "application_id")?)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let target = index + 1;
        tx.execute_batch(sql).doing_on(&tx, path, || {
            format!("migrating the schema to version {target}")
        })?;
        tx.pragma_update(None, "user_version", target)
            .doing_on(&tx, path, || format!("recording schema version {target}"))?;
    }
    if !marked {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .doing_on(&tx, path, || "marking it as appliance's".into())?;
    }
    tx.commit()
        .doing_on(conn, path, || "committing the schema migration".into())?;
    if TEXT_INDEX_VERSIONS.contains(&found) {
        // V7 dropped the stanzas' text, which left most of the file free pages (85 of
        // 100 MB): given back once. SQLite reuses free pages anyway, so when another
        // connection keeps the file busy the space just waits to be reused.
        let _ = conn.execute_batch("VACUUM");
    }
    Ok(!marked && found > 0)
}

/// The schema versions whose index of apt's lists kept every stanza's text (V5, V6).
const TEXT_INDEX_VERSIONS: std::ops::Range<u32> = 5..7;

#[cfg(test)]
mod tests {
    use super::*;

    fn value(conn: &Connection, name: &str) -> i64 {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .unwrap()
    }

    /// Runs `sql` on the database at `path`, made if missing.
    fn run(path: &Path, sql: &str) {
        Connection::open(path).unwrap().execute_batch(sql).unwrap();
    }

    /// A database as an earlier appliance left it: schema `version`, no application id.
    /// What undoes migration `i`, for each migration.
    const UNDO: [&str; MIGRATIONS.len()] = [
        "",
        "ALTER TABLE locks DROP COLUMN modules",
        "ALTER TABLE package_files DROP COLUMN mtime; \
         ALTER TABLE package_files DROP COLUMN documentation; \
         ALTER TABLE lock_files DROP COLUMN mtime; \
         ALTER TABLE lock_files DROP COLUMN documentation",
        "ALTER TABLE locks DROP COLUMN container",
        "DROP TABLE apt_names; DROP TABLE apt_stanzas; DROP TABLE apt_lists",
        "DROP TABLE fingerprints",
        "DROP TABLE apt_provides; DROP TABLE apt_stanzas;
         CREATE TABLE apt_stanzas (list INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT,
             essential INTEGER NOT NULL, refused INTEGER NOT NULL,
             first_line INTEGER NOT NULL, text TEXT NOT NULL, PRIMARY KEY (list, seq)
         ) WITHOUT ROWID;
         CREATE TABLE apt_names (list INTEGER NOT NULL, seq INTEGER NOT NULL,
             provides INTEGER NOT NULL, name TEXT NOT NULL,
             PRIMARY KEY (list, seq, provides, name)) WITHOUT ROWID;",
        "DROP TABLE configurations",
        "DROP TABLE archive_reads",
        "DROP TABLE verified",
    ];

    fn unmarked(path: &Path, version: usize) {
        let conn = downgraded(path, version);
        conn.pragma_update(None, "application_id", 0).unwrap();
    }

    /// A repository made now, then taken back to schema `version`: what the later
    /// migrations did is undone, so the file is as that version made it.
    fn downgraded(path: &Path, version: usize) -> Connection {
        drop(connect(path).unwrap());
        let conn = Connection::open(path).unwrap();
        for undo in UNDO[version..].iter().rev() {
            conn.execute_batch(undo).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        conn
    }

    #[test]
    fn new_file_gets_every_migration_wal_and_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        let (conn, adopted) = connect(&path).unwrap();
        assert!(!adopted);
        assert_eq!(value(&conn, "user_version"), MIGRATIONS.len() as i64);
        assert_eq!(value(&conn, "application_id"), i64::from(APPLICATION_ID));
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(value(&conn, "foreign_keys"), 1);
    }

    /// A repository whose index of apt's lists kept the stanzas' text gets the space
    /// back when V7 drops it.
    #[test]
    fn the_dropped_stanza_text_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        let conn = downgraded(&path, 6);
        let text = "x".repeat(1000);
        for seq in 0..4000 {
            conn.execute(
                "INSERT INTO apt_stanzas VALUES (1, ?1, 'p', 0, 0, 1, ?2)",
                rusqlite::params![seq, text],
            )
            .unwrap();
        }
        drop(conn);
        assert!(fs::metadata(&path).unwrap().len() > 4_000_000);
        let (conn, _) = connect(&path).unwrap();
        assert_eq!(value(&conn, "user_version"), MIGRATIONS.len() as i64);
        assert_eq!(value(&conn, "freelist_count"), 0);
        drop(conn);
        assert!(fs::metadata(&path).unwrap().len() < 1_000_000);
    }

    #[test]
    fn reconnecting_runs_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        drop(connect(&path).unwrap());
        // Running V1 again would fail on CREATE TABLE, so success proves it was skipped.
        let (conn, adopted) = connect(&path).unwrap();
        assert!(!adopted);
        assert_eq!(value(&conn, "user_version"), MIGRATIONS.len() as i64);
    }

    #[test]
    fn newer_schema_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        let (conn, _) = connect(&path).unwrap();
        conn.pragma_update(None, "user_version", MIGRATIONS.len() + 5)
            .unwrap();
        drop(conn);
        for err in [
            connect(&path).unwrap_err(),
            connect_read_only(&path).unwrap_err(),
        ] {
            assert!(matches!(err, RepoError::TooNew { .. }), "{err}");
            assert!(err.to_string().contains("repo.sqlite"), "{err}");
        }
    }

    #[test]
    fn an_earlier_appliance_s_repository_is_adopted_by_a_writer_only() {
        for version in UNMARKED_VERSIONS {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("repo.sqlite");
            unmarked(&path, version as usize);
            let reading = connect_read_only(&path);
            if (version as usize) < MIGRATIONS.len() {
                let err = reading.unwrap_err();
                assert!(matches!(err, RepoError::Outdated { .. }), "{err}");
                assert!(err.to_string().contains("run `appliance compile`"), "{err}");
            } else {
                assert_eq!(value(&reading.unwrap(), "application_id"), 0);
            }
            let (conn, adopted) = connect(&path).unwrap();
            assert!(adopted, "version {version}");
            assert_eq!(value(&conn, "application_id"), i64::from(APPLICATION_ID));
            assert_eq!(value(&conn, "user_version"), MIGRATIONS.len() as i64);
            drop(conn);
            assert!(!connect(&path).unwrap().1, "adopted twice");
        }
    }

    #[test]
    fn what_is_not_a_repository_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("table.sqlite");
        run(&table, "CREATE TABLE t (x)");
        let marked = dir.path().join("marked.sqlite");
        run(&marked, "PRAGMA application_id = 305419896");
        // Our tables, but a schema version no appliance wrote without marking.
        let late = dir.path().join("late.sqlite");
        unmarked(&late, MIGRATIONS.len());
        run(&late, "PRAGMA user_version = 7");
        let text = dir.path().join("text");
        fs::write(&text, "not a database\n").unwrap();
        let cases = [
            (table, "another program's SQLite database (tables: t)"),
            (
                marked,
                "another program's SQLite database (application id 0x12345678)",
            ),
            (
                late,
                "another program's SQLite database (tables: apt_lists, apt_provides, apt_stanzas, \
                 archive_reads, configurations, fingerprints, flavors,",
            ),
            (text, "a file that is not a SQLite database"),
            (dir.path().to_path_buf(), "a directory"),
        ];
        for (path, what) in cases {
            let before = fs::read(&path).ok();
            for err in [
                connect(&path).unwrap_err(),
                connect_read_only(&path).unwrap_err(),
            ] {
                let message = err.to_string();
                assert!(matches!(err, RepoError::Foreign { .. }), "{message}");
                assert!(message.contains(what), "{message}");
                assert!(
                    message.starts_with(&path.display().to_string()),
                    "{message}"
                );
            }
            assert_eq!(fs::read(&path).ok(), before, "{}", path.display());
        }
    }

    #[test]
    fn a_reader_cannot_write_and_leaves_nothing_beside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.sqlite");
        drop(connect(&path).unwrap());
        let before = fs::read(&path).unwrap();
        let conn = connect_read_only(&path).unwrap();
        assert_eq!(value(&conn, "user_version"), MIGRATIONS.len() as i64);
        let err = conn.execute_batch("CREATE TABLE mine (x)").unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly), "{err}");
        drop(conn);
        assert_eq!(fs::read(&path).unwrap(), before);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["repo.sqlite"]);
    }

    #[test]
    fn readers_want_a_repository_and_writers_take_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let blank = dir.path().join("blank.sqlite");
        run(&blank, "VACUUM");
        let empty = dir.path().join("empty.sqlite");
        fs::write(&empty, "").unwrap();
        let missing = dir.path().join("missing.sqlite");
        for path in [&blank, &empty, &missing] {
            let err = connect_read_only(path).unwrap_err();
            assert!(matches!(err, RepoError::Absent { .. }), "{err}");
            assert!(!missing.exists());
        }
        assert_eq!(fs::read(&empty).unwrap(), b"");
        for path in [&blank, &empty, &missing] {
            let (conn, adopted) = connect(path).unwrap();
            assert!(!adopted);
            assert_eq!(value(&conn, "application_id"), i64::from(APPLICATION_ID));
            drop(conn);
            connect_read_only(path).unwrap();
        }
    }
}
