//! The SQLite repository of locks, and the blob store.
//!
//! The repository stores [`Lock`]s; it never computes them. A lock is addressed by group,
//! version, canonical flavor and revision; revisions are only ever added. A package's file
//! list is stored once and shared by every lock holding the same package with identical
//! entries, which keeps a repository of many revisions small.

mod apt_index;
mod archive_reads;
mod blobs;
mod configurations;
mod files;
mod fingerprints;
mod remove;
mod schema;
mod verified;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::lock::{Container, FileEntry, Inputs, Lock, LockedPackage};
use crate::source::dpkg::version;

pub use apt_index::{AptIndexError, IndexedLists};
pub use archive_reads::ArchiveRead;
pub use blobs::{BlobStore, blob_path};
pub use fingerprints::{Fingerprint, Fingerprinted};
pub use remove::InUse;
pub use verified::Verified;

/// Creates the store's folder `dir` with permissions `mode`, and its missing parents with
/// 0755 (the umask may narrow both): never the 0777 a bare `create_dir_all` asks for,
/// which a permissive umask would leave open to every user, who could then swap the
/// repository, a package archive or a blob.
pub(crate) fn create_folder(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// Everything that can go wrong with the repository or the blob store.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// SQLite failed while doing something to the repository.
    #[error("repository {path}: {doing}: {source}")]
    Sql {
        /// The repository file.
        path: PathBuf,
        /// What was being done, naming the lock address when there is one.
        doing: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A filesystem operation on the repository folder or the blob store failed.
    #[error("{path}: {doing}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The filesystem holding the repository or the blob store is full; the repository
    /// is as it was before the failed write.
    #[error("{path}: no space left on the device while {doing}")]
    NoSpace {
        /// The repository file, or the blob or folder being written.
        path: PathBuf,
        /// What was being done.
        doing: String,
    },
    /// The path is not an appliance repository, nor free to become one; it was left as
    /// it was.
    #[error("{path} is not an appliance repository but {what}; appliance leaves it alone")]
    Foreign {
        /// The path given as the repository.
        path: PathBuf,
        /// What it is instead: `a FIFO`, `another program's SQLite database (...)`.
        what: String,
    },
    /// A command that only reads found no repository (no file, an empty one, or a blank
    /// database).
    #[error("no repository at {path}: run `appliance compile` first")]
    Absent {
        /// The repository file.
        path: PathBuf,
    },
    /// SQLite found the repository's pages damaged.
    #[error("repository {path} is damaged: {doing}: {detail}")]
    Damaged {
        /// The repository file.
        path: PathBuf,
        /// What was being done when the damage showed.
        doing: String,
        /// What SQLite said.
        detail: String,
    },
    /// The repository has a schema older than this `appliance`'s, which only a command
    /// that writes (compile) brings up to date.
    #[error(
        "repository {path} has schema version {found}, older than this appliance's {known}: \
         run `appliance compile` to upgrade it"
    )]
    Outdated {
        /// The repository file.
        path: PathBuf,
        /// The repository's `user_version`.
        found: u32,
        /// The schema version this build reads.
        known: usize,
    },
    /// The repository was written by a newer `appliance` with a schema this one lacks.
    #[error(
        "repository {path} has schema version {found}, but this appliance knows only up to \
         {known}; use a newer appliance"
    )]
    TooNew {
        /// The repository file.
        path: PathBuf,
        /// The repository's `user_version`.
        found: u32,
        /// The newest schema version this build knows.
        known: usize,
    },
    /// No lock of that group is stored.
    #[error(
        "repository {path} holds no group `{group}`; {}",
        holds("groups", known)
    )]
    UnknownGroup {
        /// The repository file.
        path: PathBuf,
        /// The group asked for.
        group: String,
        /// The groups the repository holds.
        known: Vec<String>,
    },
    /// The group is stored, but was never compiled for that flavor.
    #[error(
        "group `{group}` in repository {path} was never compiled for flavor {flavor}; it was \
         compiled for: {}", known.join(", ")
    )]
    UnknownFlavor {
        /// The repository file.
        path: PathBuf,
        /// The group asked for.
        group: String,
        /// The canonical flavor asked for.
        flavor: String,
        /// The canonical flavors the group was compiled for.
        known: Vec<String>,
    },
    /// The group was compiled for the flavor, but not at that version.
    #[error(
        "repository {path} holds no version {version} of group `{group}` for flavor {flavor}; \
         versions: {}", known.join(", ")
    )]
    UnknownVersion {
        /// The repository file.
        path: PathBuf,
        /// The group asked for.
        group: String,
        /// The canonical flavor asked for.
        flavor: String,
        /// The version asked for.
        version: String,
        /// The versions stored for that group and flavor, oldest first.
        known: Vec<String>,
    },
    /// The version exists, but not at that revision.
    #[error(
        "repository {path} holds no lock {address}; revisions: {}",
        numbers(known)
    )]
    UnknownRevision {
        /// The repository file.
        path: PathBuf,
        /// The address asked for, `web=1.0-7[xen is: x86_64]`.
        address: String,
        /// The revisions stored for that group, version and flavor.
        known: Vec<u32>,
    },
    /// A reference names a version or a group, where one exact revision is needed.
    #[error(
        "it names no exact revision (GROUP=VERSION-REVISION) in repository {path}; it \
         could mean: {}",
        candidates.join(", ")
    )]
    Inexact {
        /// The repository file.
        path: PathBuf,
        /// The addresses of the revisions it could mean, oldest first.
        candidates: Vec<String>,
    },
    /// A stored lock cannot be read back as it was stored: its rows are damaged.
    #[error("repository {path} is damaged at {address}: {detail}")]
    Corrupt {
        /// The repository file.
        path: PathBuf,
        /// The address of the lock being loaded.
        address: String,
        /// What does not add up.
        detail: String,
    },
    /// The lock cannot be stored because it could not be loaded back identically.
    #[error("cannot store {address} in repository {path}: {detail}")]
    Unstorable {
        /// The repository file.
        path: PathBuf,
        /// The lock's address without a revision, `web=1.0[xen is: x86_64]`.
        address: String,
        /// What is wrong with the lock.
        detail: String,
    },
}

impl RepoError {
    /// A filesystem error about `path` while `doing`; a full disk is told as such.
    fn io(path: &Path, doing: &'static str, source: io::Error) -> RepoError {
        if crate::scratch::is_no_space(&source) {
            RepoError::NoSpace {
                path: path.to_path_buf(),
                doing: doing.to_string(),
            }
        } else {
            RepoError::Io {
                path: path.to_path_buf(),
                doing,
                source,
            }
        }
    }
}

fn holds(what: &str, known: &[String]) -> String {
    if known.is_empty() {
        "it is empty".to_string()
    } else {
        format!("it holds {what}: {}", known.join(", "))
    }
}

fn numbers(known: &[u32]) -> String {
    known
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches the repository path and the operation to a SQLite error.
trait SqlContext<T> {
    /// For reads, and writes with no connection yet to ask about the system's error.
    fn doing(self, path: &Path, what: impl FnOnce() -> String) -> Result<T, RepoError>;

    /// For writes through `conn`: an I/O error that the system gave as ENOSPC is a full
    /// disk too.
    fn doing_on(
        self,
        conn: &Connection,
        path: &Path,
        what: impl FnOnce() -> String,
    ) -> Result<T, RepoError>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn doing(self, path: &Path, what: impl FnOnce() -> String) -> Result<T, RepoError> {
        self.map_err(|source| sql_error(source, false, path, what()))
    }

    fn doing_on(
        self,
        conn: &Connection,
        path: &Path,
        what: impl FnOnce() -> String,
    ) -> Result<T, RepoError> {
        self.map_err(|source| {
            // SQLite says SQLITE_FULL when it sees the disk full itself, but only "disk
            // I/O error" when a write fails on its own (growing the WAL index, say); it
            // keeps the errno of that write for the connection.
            let io_failure =
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure);
            // SAFETY: the handle is the live connection's, and the call only reads it.
            let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
            sql_error(source, io_failure && errno == libc::ENOSPC, path, what())
        })
    }
}

/// A SQLite error while doing `doing` to the repository at `path`; `full` says the
/// system reported the disk full.
fn sql_error(source: rusqlite::Error, full: bool, path: &Path, doing: String) -> RepoError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, DiskFull, NotADatabase};
    let code = source.sqlite_error_code();
    // SQLITE_FULL: the transaction was rolled back, the repository is unchanged.
    if full || code == Some(DiskFull) {
        RepoError::NoSpace {
            path: path.to_path_buf(),
            doing,
        }
    } else if matches!(code, Some(DatabaseCorrupt | NotADatabase)) {
        RepoError::Damaged {
            path: path.to_path_buf(),
            doing,
            detail: source.to_string(),
        }
    } else {
        RepoError::Sql {
            path: path.to_path_buf(),
            doing,
            source,
        }
    }
}

/// A failure while reading a lock, before the repository path and address are attached.
enum Fault {
    Sql(rusqlite::Error),
    Corrupt(String),
}

impl From<rusqlite::Error> for Fault {
    fn from(error: rusqlite::Error) -> Fault {
        Fault::Sql(error)
    }
}

impl Fault {
    fn at(self, path: &Path, address: &str) -> RepoError {
        match self {
            Fault::Sql(source) => sql_error(source, false, path, format!("loading {address}")),
            Fault::Corrupt(detail) => RepoError::Corrupt {
                path: path.to_path_buf(),
                address: address.to_string(),
                detail,
            },
        }
    }
}

/// The outcome of [`Repository::store`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The lock id (BLAKE3 of the normalised lock's canonical serialisation).
    pub lock_id: String,
    /// The revision that holds the lock: the new one, or the latest when unchanged.
    pub revision: u32,
    /// The latest revision already held this exact lock, so nothing was written.
    pub unchanged: bool,
}

/// A lock read back from the repository, with where and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLock {
    /// The lock, normalised, identical to the one stored.
    pub lock: Lock,
    /// Its lock id, verified against its content.
    pub lock_id: String,
    /// Its revision.
    pub revision: u32,
    /// When it was stored, in seconds since the Unix epoch.
    pub created: i64,
}

/// Where a lock is stored, without its content: enough to name it and to check an
/// output's stamp before reading the lock's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The group.
    pub group: String,
    /// The canonical flavor string.
    pub flavor: String,
    /// The group's version.
    pub version: String,
    /// The revision.
    pub revision: u32,
    /// The lock id, as stored (not verified against the rows: [`Repository::load`] does).
    pub lock_id: String,
}

impl Located {
    /// `GROUP=VERSION-REVISION[FLAVOR]`.
    pub fn address(&self) -> String {
        address(&self.group, &self.version, self.revision, &self.flavor)
    }
}

/// One stored revision, as `appliance list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RevisionSummary {
    /// Group name.
    pub group: String,
    /// Group version.
    pub version: String,
    /// Revision number, from 1.
    pub revision: u32,
    /// Canonical flavor string.
    pub flavor: String,
    /// Lock id.
    pub lock_id: String,
    /// When it was stored, in seconds since the Unix epoch.
    pub created: i64,
    /// How many packages the lock pins.
    pub packages: u64,
    /// How many file entries the lock holds.
    pub files: u64,
}

/// The SQLite repository of locks (`store/repo.sqlite`).
#[derive(Debug)]
pub struct Repository {
    conn: Connection,
    path: PathBuf,
    adopted: bool,
}

/// How many problems `PRAGMA quick_check` reports at most: enough to show how damaged.
const QUICK_CHECK_PROBLEMS: u32 = 3;

/// A stored lock row that matched an address.
struct Candidate {
    version: String,
    revision: u32,
    row: i64,
}

/// Why no candidate matched a version spec.
#[derive(Debug, PartialEq, Eq)]
enum Miss {
    Version,
    Revision { version: String, revision: u32 },
}

impl Repository {
    /// Opens the repository at `path` for writing, creating its folder and file when
    /// missing, bringing its schema up to date and marking it as appliance's. A path that
    /// is not a repository nor free to become one is refused with nothing written.
    pub fn open(path: &Path) -> Result<Repository, RepoError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_folder(parent, 0o755).map_err(|source| {
                RepoError::io(parent, "creating the repository folder", source)
            })?;
        }
        let (conn, adopted) = schema::connect(path)?;
        Ok(Repository {
            conn,
            path: path.to_path_buf(),
            adopted,
        })
    }

    /// Opens the existing repository at `path` for reading: nothing is created, migrated
    /// or written. No repository there is [`RepoError::Absent`].
    pub fn open_read_only(path: &Path) -> Result<Repository, RepoError> {
        Ok(Repository {
            conn: schema::connect_read_only(path)?,
            path: path.to_path_buf(),
            adopted: false,
        })
    }

    /// Refuses, writing nothing, a `path` that [`Repository::open`] would refuse (one that
    /// is not a regular file, such as a device, a FIFO or a folder, or holds anything but
    /// a repository, an empty file or a blank SQLite database), and a repository whose
    /// pages are damaged ([`Repository::check_pages`]). A command that stores locks asks
    /// this before it does work it could not store, and before writing to a damaged file.
    pub fn check(path: &Path) -> Result<(), RepoError> {
        match schema::examine(path)? {
            Some((_, conn)) => check_pages(&conn, path),
            None => Ok(()),
        }
    }

    /// Whether opening marked as appliance's a repository an earlier appliance made,
    /// before repositories carried their mark; the caller may tell the user.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Checks every page of the repository with SQLite's `PRAGMA quick_check`, which
    /// reads the whole file (about 10 ms for 1.4 MB, 15 locks of the web group).
    pub fn check_pages(&self) -> Result<(), RepoError> {
        check_pages(&self.conn, &self.path)
    }

    /// Stores `lock` (normalised first) as the next revision of its group, version and
    /// flavor, unless the latest revision there already holds the same lock id.
    ///
    /// The whole store is one immediate transaction, so concurrent writers queue up and
    /// get consecutive revisions.
    pub fn store(&mut self, lock: &Lock) -> Result<Stored, RepoError> {
        let lock = normalised(lock);
        let address = format!("{}={}{}", lock.group, lock.version, lock.flavor);
        self.check_storable(&lock, &address)?;
        let lock_id = lock.id();
        let path = &self.path;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .doing(path, || format!("starting to store {address}"))?;
        let (stored, row) = write_lock(&tx, &lock, &lock_id)
            .doing_on(&tx, path, || format!("storing {address}"))?;
        // Whether just written or found unchanged, the revision must load back as this
        // lock: damage in its rows or pages is told now, not by the next materialise.
        let written = Candidate {
            version: lock.version.clone(),
            revision: stored.revision,
            row,
        };
        verified(&tx, path, &lock.group, &lock.flavor, &written)?;
        tx.commit()
            .doing_on(&self.conn, path, || format!("committing {address}"))?;
        Ok(stored)
    }

    /// Loads a lock. `flavor` is a canonical flavor string. `version`: `None` takes the
    /// latest revision of the newest version (dpkg ordering), `Some("1.0")` the latest
    /// revision of 1.0, and `Some("1.0-2")` exactly revision 2 of 1.0 (a stored version
    /// spelled exactly like the spec wins over reading its last `-N` as a revision).
    ///
    /// The lock is rebuilt from its rows and its id checked against the stored one.
    pub fn load(
        &self,
        group: &str,
        flavor: &str,
        version: Option<&str>,
    ) -> Result<StoredLock, RepoError> {
        let found = self.locate(group, flavor, version)?;
        verified(&self.conn, &self.path, group, flavor, &found)
    }

    /// Finds the lock [`Repository::load`] would load, reading only its id.
    pub fn locate_id(
        &self,
        group: &str,
        flavor: &str,
        version: Option<&str>,
    ) -> Result<Located, RepoError> {
        let found = self.locate(group, flavor, version)?;
        let lock_id = self
            .conn
            .query_row(
                "SELECT lock_id FROM locks WHERE id = ?1",
                [found.row],
                |r| r.get(0),
            )
            .doing(&self.path, || {
                format!(
                    "reading the lock id of {}",
                    address(group, &found.version, found.revision, flavor)
                )
            })?;
        Ok(Located {
            group: group.to_string(),
            flavor: flavor.to_string(),
            version: found.version,
            revision: found.revision,
            lock_id,
        })
    }

    /// Every stored revision, sorted by group, version (dpkg ordering), flavor, revision.
    pub fn revisions(&self) -> Result<Vec<RevisionSummary>, RepoError> {
        let mut summaries = self.summaries()?;
        summaries.sort_by(|a, b| {
            a.group
                .cmp(&b.group)
                .then_with(|| by_version(&a.version, &b.version))
                .then_with(|| a.flavor.cmp(&b.flavor))
                .then_with(|| a.revision.cmp(&b.revision))
        });
        Ok(summaries)
    }

    /// The revisions of `group` in the order they were stored, of every flavor or only
    /// of the canonical `flavor`. A group or flavor with none is an error listing what
    /// the repository holds instead.
    pub fn history(
        &self,
        group: &str,
        flavor: Option<&str>,
    ) -> Result<Vec<RevisionSummary>, RepoError> {
        let revisions: Vec<_> = (self.summaries()?.into_iter())
            .filter(|r| r.group == group)
            .collect();
        if revisions.is_empty() {
            return Err(RepoError::UnknownGroup {
                path: self.path.clone(),
                group: group.to_string(),
                known: self.groups()?,
            });
        }
        let Some(flavor) = flavor else {
            return Ok(revisions);
        };
        let (kept, others): (Vec<_>, Vec<_>) =
            revisions.into_iter().partition(|r| r.flavor == flavor);
        if kept.is_empty() {
            let known: BTreeSet<String> = others.into_iter().map(|r| r.flavor).collect();
            return Err(RepoError::UnknownFlavor {
                path: self.path.clone(),
                group: group.to_string(),
                flavor: flavor.to_string(),
                known: known.into_iter().collect(),
            });
        }
        Ok(kept)
    }

    /// Every stored revision, in the order they were stored.
    fn summaries(&self) -> Result<Vec<RevisionSummary>, RepoError> {
        // Packages sharing a name (one per architecture) share their file list, which a
        // loaded lock holds once: count it once per name.
        let sql = "
            SELECT g.name, gv.version, l.revision, f.canonical, l.lock_id, l.created,
                (SELECT COUNT(*) FROM lock_packages lp WHERE lp.lock = l.id),
                (SELECT COUNT(*) FROM lock_files lf WHERE lf.lock = l.id)
                + (SELECT COALESCE(SUM(n), 0) FROM (
                    SELECT MAX(p.file_count) AS n
                    FROM lock_packages lp JOIN packages p ON p.id = lp.package
                    WHERE lp.lock = l.id GROUP BY p.name))
            FROM locks l
            JOIN group_versions gv ON gv.id = l.group_version
            JOIN groups g ON g.id = gv.group_id
            JOIN flavors f ON f.id = l.flavor
            ORDER BY l.id";
        let doing = || "listing revisions".to_string();
        let mut stmt = self.conn.prepare(sql).doing(&self.path, doing)?;
        let rows = stmt
            .query_map([], |row| {
                Ok(RevisionSummary {
                    group: row.get(0)?,
                    version: row.get(1)?,
                    revision: row.get(2)?,
                    flavor: row.get(3)?,
                    lock_id: row.get(4)?,
                    created: row.get(5)?,
                    packages: row.get(6)?,
                    files: row.get(7)?,
                })
            })
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>);
        rows.doing(&self.path, doing)
    }

    /// The names of the groups the repository holds locks of, sorted.
    pub fn groups(&self) -> Result<Vec<String>, RepoError> {
        self.strings("SELECT name FROM groups ORDER BY name", [])
            .doing(&self.path, || "listing groups".into())
    }

    /// Refuses a lock that would not load back identically: the rows key files by path
    /// and packages by (name, arch), so duplicates there would be merged or reordered.
    fn check_storable(&self, lock: &Lock, address: &str) -> Result<(), RepoError> {
        let duplicate_file = lock.files.windows(2).find(|w| w[0].path == w[1].path);
        let duplicate_package = lock
            .packages
            .windows(2)
            .find(|w| (&w[0].name, &w[0].arch) == (&w[1].name, &w[1].arch));
        let detail = match (duplicate_file, duplicate_package) {
            (Some(w), _) => format!("it holds path {} twice", w[0].path),
            (None, Some(w)) => format!("it holds package {}:{} twice", w[0].name, w[0].arch),
            (None, None) => return Ok(()),
        };
        Err(RepoError::Unstorable {
            path: self.path.clone(),
            address: address.to_string(),
            detail,
        })
    }

    /// Finds the lock row for an address, or the error that says what the repository
    /// holds instead.
    fn locate(
        &self,
        group: &str,
        flavor: &str,
        spec: Option<&str>,
    ) -> Result<Candidate, RepoError> {
        let doing = || format!("looking up group `{group}` for flavor {flavor}");
        let group_id: Option<i64> = self
            .conn
            .query_row("SELECT id FROM groups WHERE name = ?1", [group], |row| {
                row.get(0)
            })
            .optional()
            .doing(&self.path, doing)?;
        let Some(group_id) = group_id else {
            return Err(RepoError::UnknownGroup {
                path: self.path.clone(),
                group: group.to_string(),
                known: self.groups()?,
            });
        };
        let mut candidates = self.candidates(group_id, flavor).doing(&self.path, doing)?;
        if candidates.is_empty() {
            let known = self
                .strings(
                    "SELECT DISTINCT f.canonical FROM locks l
                     JOIN group_versions gv ON gv.id = l.group_version
                     JOIN flavors f ON f.id = l.flavor
                     WHERE gv.group_id = ?1 ORDER BY f.canonical",
                    [group_id],
                )
                .doing(&self.path, doing)?;
            return Err(RepoError::UnknownFlavor {
                path: self.path.clone(),
                group: group.to_string(),
                flavor: flavor.to_string(),
                known,
            });
        }
        candidates
            .sort_by(|a, b| by_version(&a.version, &b.version).then(a.revision.cmp(&b.revision)));
        match choose(&candidates, spec) {
            Ok(index) => Ok(candidates.swap_remove(index)),
            Err(Miss::Version) => {
                let mut known: Vec<String> = candidates.into_iter().map(|c| c.version).collect();
                known.dedup();
                Err(RepoError::UnknownVersion {
                    path: self.path.clone(),
                    group: group.to_string(),
                    flavor: flavor.to_string(),
                    version: spec.unwrap_or_default().to_string(),
                    known,
                })
            }
            Err(Miss::Revision { version, revision }) => Err(RepoError::UnknownRevision {
                path: self.path.clone(),
                address: address(group, &version, revision, flavor),
                known: candidates
                    .iter()
                    .filter(|c| c.version == version)
                    .map(|c| c.revision)
                    .collect(),
            }),
        }
    }

    /// Every stored (version, revision) of a group for one flavor.
    fn candidates(&self, group_id: i64, flavor: &str) -> rusqlite::Result<Vec<Candidate>> {
        let mut stmt = self.conn.prepare(
            "SELECT gv.version, l.revision, l.id FROM locks l
             JOIN group_versions gv ON gv.id = l.group_version
             JOIN flavors f ON f.id = l.flavor
             WHERE gv.group_id = ?1 AND f.canonical = ?2",
        )?;
        stmt.query_map(params![group_id, flavor], |row| {
            Ok(Candidate {
                version: row.get(0)?,
                revision: row.get(1)?,
                row: row.get(2)?,
            })
        })?
        .collect()
    }

    /// The first column of every row `sql` returns.
    fn strings(&self, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self.conn.prepare(sql)?;
        stmt.query_map(params, |row| row.get(0))?.collect()
    }
}

/// Runs SQLite's quick check over the whole database `conn` has open: a damaged page is
/// [`RepoError::Damaged`].
fn check_pages(conn: &Connection, path: &Path) -> Result<(), RepoError> {
    let doing = || "checking its pages".to_string();
    let mut report = Vec::new();
    conn.pragma(None, "quick_check", QUICK_CHECK_PROBLEMS, |row| {
        report.push(row.get::<_, String>(0)?);
        Ok(())
    })
    .doing(path, doing)?;
    if report == ["ok"] {
        return Ok(());
    }
    // One problem a line, under a heading naming the (only) database.
    let problems: Vec<&str> = (report.iter())
        .flat_map(|text| text.lines())
        .filter(|line| !line.starts_with("***"))
        .collect();
    Err(RepoError::Damaged {
        path: path.to_path_buf(),
        doing: doing(),
        detail: problems.join("; "),
    })
}

/// The lock in row `found.row`, rebuilt from its rows, which must hash to the lock id
/// stored with it.
fn verified(
    conn: &Connection,
    path: &Path,
    group: &str,
    flavor: &str,
    found: &Candidate,
) -> Result<StoredLock, RepoError> {
    let address = address(group, &found.version, found.revision, flavor);
    let (mut lock, lock_id, created) = read_lock(conn, found.row, group, &found.version, flavor)
        .map_err(|fault| fault.at(path, &address))?;
    lock.normalise();
    let actual = lock.id();
    if actual != lock_id {
        return Err(RepoError::Corrupt {
            path: path.to_path_buf(),
            address,
            detail: format!("its rows hash to lock id {actual}, but it was stored as {lock_id}"),
        });
    }
    Ok(StoredLock {
        lock,
        lock_id,
        revision: found.revision,
        created,
    })
}

/// Rebuilds the lock stored in row `row` (not yet normalised), with its stored lock
/// id and creation time.
fn read_lock(
    conn: &Connection,
    row: i64,
    group: &str,
    version: &str,
    flavor: &str,
) -> Result<(Lock, String, i64), Fault> {
    type Row = (String, String, String, String, String, i64);
    let (lock_id, inputs, cmd, container, modules, created): Row = conn.query_row(
        "SELECT lock_id, inputs, cmd, container, modules, created FROM locks WHERE id = ?1",
        [row],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let inputs: Inputs = from_json(&inputs, "inputs")?;
    let cmd: Vec<String> = from_json(&cmd, "cmd")?;
    let container: Container = from_json(&container, "container")?;
    let modules: Vec<String> = from_json(&modules, "modules")?;

    let package_files = format!(
        "SELECT {} FROM package_files WHERE package = ?1 ORDER BY path",
        files::ENTRY_COLUMNS
    );
    let lock_files = format!(
        "SELECT {}, package FROM lock_files WHERE lock = ?1 ORDER BY path",
        files::ENTRY_COLUMNS
    );
    let mut packages: Vec<LockedPackage> = Vec::new();
    let mut files = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.name, p.version, p.arch, p.source, lp.reason
         FROM lock_packages lp JOIN packages p ON p.id = lp.package
         WHERE lp.lock = ?1 ORDER BY p.name, p.arch",
    )?;
    let mut rows = stmt.query([row])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(1)?;
        let arch: String = r.get(3)?;
        let reason = from_json(
            &r.get::<_, String>(5)?,
            &format!("reason of package {name}:{arch}"),
        )?;
        let package = LockedPackage {
            name,
            version: r.get(2)?,
            arch,
            source: r.get(4)?,
            reason,
        };
        // Same-name packages of other architectures carry the same list (an entry
        // names only its package), which the lock holds once.
        if packages.last().is_none_or(|p| p.name != package.name) {
            let name = package.name.clone();
            read_files(
                conn,
                &package_files,
                r.get(0)?,
                |_| Ok(Some(name.clone())),
                &mut files,
            )?;
        }
        packages.push(package);
    }
    read_files(
        conn,
        &lock_files,
        row,
        |r| r.get(files::ENTRY_COLUMN_COUNT),
        &mut files,
    )?;
    let lock = Lock {
        group: group.to_string(),
        version: version.to_string(),
        flavor: flavor.to_string(),
        inputs,
        cmd,
        container,
        modules,
        packages,
        files,
    };
    Ok((lock, lock_id, created))
}

/// Appends to `out` the entries `sql` selects for `owner`, each owned by the package
/// `package` reads from its row.
fn read_files(
    conn: &Connection,
    sql: &str,
    owner: i64,
    package: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<Option<String>>,
    out: &mut Vec<FileEntry>,
) -> Result<(), Fault> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([owner])?;
    while let Some(row) = rows.next()? {
        out.push(files::read_entry(row, package(row)?)?);
    }
    Ok(())
}

/// The address of a stored lock, as [`Lock::address`] spells it.
fn address(group: &str, version: &str, revision: u32, flavor: &str) -> String {
    format!("{group}={version}-{revision}{flavor}")
}

/// Versions in dpkg order; spellings dpkg deems equal (`1.0`, `1.00`) by their bytes,
/// so the order is total and equal strings sit together.
fn by_version(a: &str, b: &str) -> std::cmp::Ordering {
    version::compare(a, b).then_with(|| a.cmp(b))
}

/// Picks the candidate a version spec means; `candidates` is sorted oldest first.
fn choose(candidates: &[Candidate], spec: Option<&str>) -> Result<usize, Miss> {
    let latest_of = |version: &str| candidates.iter().rposition(|c| c.version == version);
    let Some(spec) = spec else {
        return Ok(candidates.len().saturating_sub(1));
    };
    if let Some(index) = latest_of(spec) {
        return Ok(index);
    }
    let Some((version, revision)) = spec
        .rsplit_once('-')
        .and_then(|(v, r)| Some((v, r.parse::<u32>().ok()?)))
    else {
        return Err(Miss::Version);
    };
    if latest_of(version).is_none() {
        return Err(Miss::Version);
    }
    candidates
        .iter()
        .position(|c| c.version == version && c.revision == revision)
        .ok_or_else(|| Miss::Revision {
            version: version.to_string(),
            revision,
        })
}

/// `lock` in canonical order, cloned only when it is not already.
fn normalised(lock: &Lock) -> Cow<'_, Lock> {
    let sorted = lock
        .packages
        .is_sorted_by(|a, b| (&a.name, &a.arch) <= (&b.name, &b.arch))
        && lock.files.is_sorted_by(|a, b| a.path <= b.path);
    if sorted {
        Cow::Borrowed(lock)
    } else {
        let mut lock = lock.clone();
        lock.normalise();
        Cow::Owned(lock)
    }
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, Fault> {
    serde_json::from_str(text)
        .map_err(|e| Fault::Corrupt(format!("the stored {what} is not valid JSON: {e}")))
}

/// Canonical JSON of a value made of plain structs, strings and integers, which cannot
/// fail to serialise.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The id of the row `select` finds for `key`, inserted by `insert` first if missing.
/// Both statements take the same parameters.
fn intern(
    tx: &Transaction<'_>,
    insert: &str,
    select: &str,
    key: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<i64> {
    tx.prepare_cached(insert)?.execute(key)?;
    tx.prepare_cached(select)?.query_row(key, |row| row.get(0))
}

/// Writes `lock` (normalised, with id `lock_id`) as the next revision of its address,
/// unless the latest revision there holds the same lock id; returns the outcome and the
/// row of the revision that holds the lock.
fn write_lock(tx: &Transaction<'_>, lock: &Lock, lock_id: &str) -> rusqlite::Result<(Stored, i64)> {
    let latest: Option<(u32, String, i64)> = tx
        .query_row(
            "SELECT l.revision, l.lock_id, l.id FROM locks l
             JOIN group_versions gv ON gv.id = l.group_version
             JOIN groups g ON g.id = gv.group_id
             JOIN flavors f ON f.id = l.flavor
             WHERE g.name = ?1 AND gv.version = ?2 AND f.canonical = ?3
             ORDER BY l.revision DESC LIMIT 1",
            params![lock.group, lock.version, lock.flavor],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    if let Some((revision, latest_id, row)) = &latest
        && latest_id == lock_id
    {
        let stored = Stored {
            lock_id: lock_id.to_string(),
            revision: *revision,
            unchanged: true,
        };
        return Ok((stored, *row));
    }
    // Saturating: a tampered maximal revision then fails the UNIQUE constraint instead
    // of overflowing.
    let revision = latest.map_or(1, |(revision, ..)| revision.saturating_add(1));

    let group_id = intern(
        tx,
        "INSERT INTO groups (name) VALUES (?1) ON CONFLICT DO NOTHING",
        "SELECT id FROM groups WHERE name = ?1",
        params![lock.group],
    )?;
    let group_version = intern(
        tx,
        "INSERT INTO group_versions (group_id, version) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        "SELECT id FROM group_versions WHERE group_id = ?1 AND version = ?2",
        params![group_id, lock.version],
    )?;
    let flavor = intern(
        tx,
        "INSERT INTO flavors (canonical) VALUES (?1) ON CONFLICT DO NOTHING",
        "SELECT id FROM flavors WHERE canonical = ?1",
        params![lock.flavor],
    )?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO locks (group_version, flavor, revision, lock_id, merkle_root, inputs, cmd, container, modules, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            group_version,
            flavor,
            revision,
            lock_id,
            lock.merkle_root(),
            to_json(&lock.inputs),
            to_json(&lock.cmd),
            to_json(&lock.container),
            to_json(&lock.modules),
            created
        ],
    )?;
    let lock_row = tx.last_insert_rowid();

    let names: BTreeSet<&str> = lock.packages.iter().map(|p| p.name.as_str()).collect();
    let mut owned: BTreeMap<&str, Vec<&FileEntry>> = BTreeMap::new();
    let mut loose = Vec::new();
    for entry in &lock.files {
        match entry.package.as_deref() {
            Some(name) if names.contains(name) => owned.entry(name).or_default().push(entry),
            _ => loose.push(entry),
        }
    }
    for package in &lock.packages {
        let entries = owned
            .get(package.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let package_row = package_row(tx, package, entries)?;
        tx.prepare_cached("INSERT INTO lock_packages (lock, package, reason) VALUES (?1, ?2, ?3)")?
            .execute(params![lock_row, package_row, to_json(&package.reason)])?;
    }
    let mut insert =
        tx.prepare_cached(&files::insert_sql("lock_files", "lock", Some("package")))?;
    for entry in loose {
        files::bind_entry(&mut insert, lock_row, entry)?;
        insert.raw_bind_parameter(files::ENTRY_COLUMN_COUNT + 2, &entry.package)?;
        insert.raw_execute()?;
    }
    let stored = Stored {
        lock_id: lock_id.to_string(),
        revision,
        unchanged: false,
    };
    Ok((stored, lock_row))
}

/// The row of `package` with exactly `entries` as its files, inserted with its file rows
/// when no earlier lock stored it.
fn package_row(
    tx: &Transaction<'_>,
    package: &LockedPackage,
    entries: &[&FileEntry],
) -> rusqlite::Result<i64> {
    let files_digest = blake3::hash(to_json(entries).as_bytes())
        .to_hex()
        .to_string();
    let key = params![
        package.name,
        package.version,
        package.arch,
        package.source,
        files_digest
    ];
    let existing = tx
        .prepare_cached(
            "SELECT id FROM packages WHERE name = ?1 AND version = ?2 AND arch = ?3
             AND source = ?4 AND files_digest = ?5",
        )?
        .query_row(key, |row| row.get(0))
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    tx.prepare_cached(
        "INSERT INTO packages (name, version, arch, source, files_digest, file_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        package.name,
        package.version,
        package.arch,
        package.source,
        files_digest,
        entries.len()
    ])?;
    let id = tx.last_insert_rowid();
    let mut insert = tx.prepare_cached(&files::insert_sql("package_files", "package", None))?;
    for entry in entries {
        files::bind_entry(&mut insert, id, entry)?;
        insert.raw_execute()?;
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::{Arc, Barrier};

    use super::*;
    use crate::lock::{FileKind, Reason};

    const XEN: &str = "[xen is: x86_64]";

    fn entry(path: &str, kind: FileKind, package: Option<&str>) -> FileEntry {
        FileEntry {
            kind,
            mode: if kind == FileKind::Dir { 0o755 } else { 0o644 },
            package: package.map(str::to_string),
            ..FileEntry::directory(path)
        }
    }

    fn package(name: &str, arch: &str, reason: Reason) -> LockedPackage {
        LockedPackage {
            name: name.to_string(),
            version: "1.0-1".to_string(),
            arch: arch.to_string(),
            source: "installed".to_string(),
            reason,
        }
    }

    /// A lock using every `FileEntry` field and every kind, with a package present for
    /// two architectures, loose group files, and an entry naming a package not locked.
    fn sample(version: &str) -> Lock {
        let ping = FileEntry {
            mode: 0o4755,
            size: 72_000,
            digest: Some("ab".repeat(32)),
            caps: Some("0100000200200000".to_string()),
            ..entry("/usr/bin/ping", FileKind::File, Some("iputils-ping"))
        };
        let conf = FileEntry {
            conffile: true,
            uid: 33,
            gid: 33,
            user: "www-data".to_string(),
            group: "www-data".to_string(),
            size: 12,
            digest: Some("cd".repeat(32)),
            ..entry("/etc/nginx/nginx.conf", FileKind::File, Some("nginx"))
        };
        let diverted = FileEntry {
            origin: Some("/usr/bin/nginx.distrib".to_string()),
            digest: Some("ef".repeat(32)),
            size: 1,
            ..entry("/usr/bin/nginx", FileKind::File, Some("nginx"))
        };
        let null = FileEntry {
            device: Some((1, 3)),
            mode: 0o666,
            ..entry("/dev/null", FileKind::Char, None)
        };
        let sda = FileEntry {
            device: Some((8, 0)),
            mode: 0o660,
            gid: 6,
            group: "disk".to_string(),
            ..entry("/dev/sda", FileKind::Block, None)
        };
        let link = FileEntry {
            target: Some("/usr/bin/ping".to_string()),
            ..entry("/usr/bin/ping4", FileKind::Hardlink, Some("iputils-ping"))
        };
        let symlink = FileEntry {
            mode: 0o777,
            target: Some("libc.so.6".to_string()),
            ..entry("/usr/lib/libc.so", FileKind::Symlink, Some("libc6"))
        };
        let hostname = FileEntry {
            size: 4,
            digest: Some("01".repeat(32)),
            ..entry("/etc/hostname", FileKind::File, None)
        };
        let mut lock = Lock {
            group: "web".to_string(),
            version: version.to_string(),
            flavor: XEN.to_string(),
            inputs: Inputs {
                group_files: vec![("groups/web.kdl".to_string(), "99".repeat(32))],
                resolver: 3,
                backend: Default::default(),
            },
            cmd: vec!["/usr/sbin/nginx".to_string(), "-g".to_string()],
            container: Container {
                user: Some("www-data".to_string()),
                env: [("LANG".to_string(), "C.UTF-8".to_string())].into(),
                ports: ["80/tcp".to_string()].into(),
                ..Container::default()
            },
            modules: vec!["virtio_blk".to_string()],
            packages: vec![
                package(
                    "nginx",
                    "amd64",
                    Reason::Named {
                        group: "web".to_string(),
                        via: vec![],
                    },
                ),
                package(
                    "iputils-ping",
                    "amd64",
                    Reason::Named {
                        group: "base".to_string(),
                        via: vec!["web".to_string()],
                    },
                ),
                package("libc6", "amd64", Reason::Essential),
                package(
                    "libc6",
                    "i386",
                    Reason::Dependency {
                        of: "nginx".to_string(),
                        also: Vec::new(),
                    },
                ),
            ],
            files: vec![
                entry("/", FileKind::Dir, None),
                entry("/dev", FileKind::Dir, None),
                entry("/run/initctl", FileKind::Fifo, None),
                entry("/etc", FileKind::Dir, Some("base-files")),
                ping,
                conf,
                diverted,
                null,
                sda,
                link,
                symlink,
                hostname,
            ],
        };
        lock.normalise();
        lock
    }

    /// [`sample`] compiled for another flavor.
    fn kvm(version: &str) -> Lock {
        Lock {
            flavor: "[kvm is: x86_64]".to_string(),
            ..sample(version)
        }
    }

    fn open(dir: &tempfile::TempDir) -> Repository {
        Repository::open(&dir.path().join("store").join("repo.sqlite")).unwrap()
    }

    fn count(repo: &Repository, table: &str) -> i64 {
        repo.conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let lock = sample("1.0");
        let stored = repo.store(&lock).unwrap();
        assert_eq!(
            stored,
            Stored {
                lock_id: lock.id(),
                revision: 1,
                unchanged: false
            }
        );
        let loaded = repo.load("web", XEN, None).unwrap();
        assert_eq!(loaded.lock, lock);
        assert_eq!(loaded.lock_id, lock.id());
        assert_eq!(loaded.revision, 1);
        assert!(loaded.created > 1_600_000_000, "{}", loaded.created);
        let merkle: String = repo
            .conn
            .query_row("SELECT merkle_root FROM locks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(merkle, lock.merkle_root());
    }

    #[test]
    fn unsorted_lock_is_stored_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let lock = sample("1.0");
        let mut shuffled = lock.clone();
        shuffled.files.reverse();
        shuffled.packages.reverse();
        assert_eq!(repo.store(&shuffled).unwrap().lock_id, lock.id());
        assert_eq!(repo.load("web", XEN, None).unwrap().lock, lock);
    }

    #[test]
    fn same_lock_again_is_unchanged_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let lock = sample("1.0");
        repo.store(&lock).unwrap();
        let again = repo.store(&lock).unwrap();
        assert_eq!(
            again,
            Stored {
                lock_id: lock.id(),
                revision: 1,
                unchanged: true
            }
        );
        assert_eq!(count(&repo, "locks"), 1);
        assert_eq!(count(&repo, "lock_packages"), 4);
    }

    #[test]
    fn changed_lock_gets_the_next_revision_and_old_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let first = sample("1.0");
        let mut second = first.clone();
        second.files[0].mode = 0o700;
        repo.store(&first).unwrap();
        let stored = repo.store(&second).unwrap();
        assert_eq!((stored.revision, stored.unchanged), (2, false));
        // Going back to the first content is a change from the latest revision.
        let third = repo.store(&first).unwrap();
        assert_eq!((third.revision, third.unchanged), (3, false));
        assert_eq!(repo.load("web", XEN, Some("1.0-2")).unwrap().lock, second);
        assert_eq!(repo.load("web", XEN, Some("1.0-1")).unwrap().lock, first);
        assert_eq!(repo.load("web", XEN, None).unwrap().revision, 3);
    }

    #[test]
    fn version_specs_pick_by_dpkg_order_and_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        for version in ["1.9", "1.10", "1.0", "2.0-beta"] {
            repo.store(&sample(version)).unwrap();
        }
        let mut changed = sample("1.0");
        changed.cmd.clear();
        repo.store(&changed).unwrap();

        let newest = repo.load("web", XEN, None).unwrap();
        assert_eq!(
            (newest.lock.version.as_str(), newest.revision),
            ("2.0-beta", 1)
        );
        let latest = repo.load("web", XEN, Some("1.0")).unwrap();
        assert_eq!((latest.lock.version.as_str(), latest.revision), ("1.0", 2));
        let exact = repo.load("web", XEN, Some("1.0-1")).unwrap();
        assert_eq!((exact.lock.version.as_str(), exact.revision), ("1.0", 1));
        // A stored version spelled like the spec wins over reading `-beta` or `-1` off it.
        let dashed = repo.load("web", XEN, Some("2.0-beta")).unwrap();
        assert_eq!(dashed.lock.version, "2.0-beta");
        let dashed_rev = repo.load("web", XEN, Some("2.0-beta-1")).unwrap();
        assert_eq!(dashed_rev.lock.version, "2.0-beta");

        let err = repo.load("web", XEN, Some("3.0")).unwrap_err();
        assert!(matches!(err, RepoError::UnknownVersion { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("versions: 1.0, 1.9, 1.10, 2.0-beta"),
            "{err}"
        );
        let err = repo.load("web", XEN, Some("1.0-7")).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RepoError::UnknownRevision { .. }), "{text}");
        assert!(text.contains("web=1.0-7[xen is: x86_64]"), "{text}");
        assert!(text.ends_with("revisions: 1, 2"), "{text}");
    }

    #[test]
    fn newest_version_is_chosen_within_the_flavor() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        repo.store(&sample("1.0")).unwrap();
        repo.store(&kvm("2.0")).unwrap();
        assert_eq!(repo.load("web", XEN, None).unwrap().lock.version, "1.0");
    }

    #[test]
    fn identical_package_file_lists_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let first = sample("1.0");
        repo.store(&first).unwrap();
        let after_first = count(&repo, "package_files");
        // iputils-ping (2 entries), nginx (2), libc6 amd64 and i386 (1 each).
        assert_eq!(after_first, 6);
        assert_eq!(count(&repo, "packages"), 4);

        // Another version: nginx's conffile changes, everything else is identical.
        let mut second = sample("1.1");
        let conf = second
            .files
            .iter_mut()
            .find(|f| f.path == "/etc/nginx/nginx.conf")
            .unwrap();
        conf.digest = Some("77".repeat(32));
        repo.store(&second).unwrap();
        assert_eq!(count(&repo, "packages"), 5);
        assert_eq!(count(&repo, "package_files"), after_first + 2);
        assert_eq!(repo.load("web", XEN, Some("1.1")).unwrap().lock, second);
        assert_eq!(repo.load("web", XEN, Some("1.0")).unwrap().lock, first);
    }

    #[test]
    fn tampered_rows_are_reported_as_corrupt() {
        let tampers = [
            (
                "UPDATE package_files SET mode = 511 WHERE path = '/usr/bin/ping'",
                "hash to",
            ),
            (
                "UPDATE lock_files SET kind = 'socket' WHERE path = '/dev/null'",
                "unknown kind",
            ),
            (
                "UPDATE lock_packages SET reason = '{'",
                "reason of package iputils-ping:amd64 is not valid JSON",
            ),
            (
                "DELETE FROM lock_files WHERE path = '/etc/hostname'",
                "hash to",
            ),
        ];
        for (sql, says) in tampers {
            let dir = tempfile::tempdir().unwrap();
            let mut repo = open(&dir);
            repo.store(&sample("1.0")).unwrap();
            repo.conn.execute(sql, []).unwrap();
            let err = repo.load("web", XEN, None).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RepoError::Corrupt { .. }), "{sql}: {text}");
            assert!(text.contains("web=1.0-1[xen is: x86_64]"), "{text}");
            assert!(text.contains("repo.sqlite"), "{text}");
            assert!(text.contains(says), "{sql}: {text}");
        }
    }

    #[test]
    fn storing_over_damaged_rows_is_refused_not_unchanged() {
        // The same lock again is compared against damaged rows; another version reuses
        // nginx's damaged file list.
        for version in ["1.0", "1.1"] {
            let dir = tempfile::tempdir().unwrap();
            let mut repo = open(&dir);
            repo.store(&sample("1.0")).unwrap();
            repo.conn
                .execute(
                    "UPDATE package_files SET size = 1 WHERE path = '/etc/nginx/nginx.conf'",
                    [],
                )
                .unwrap();
            let err = repo.store(&sample(version)).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RepoError::Corrupt { .. }), "{text}");
            assert!(
                text.contains(&format!("is damaged at web={version}-1[xen is: x86_64]")),
                "{text}"
            );
            assert_eq!(
                count(&repo, "locks"),
                1,
                "{version}: a damaged revision stayed"
            );
        }
    }

    #[test]
    fn unknown_group_lists_the_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let err = repo.load("web", XEN, None).unwrap_err().to_string();
        assert!(err.contains("holds no group `web`; it is empty"), "{err}");
        repo.store(&sample("1.0")).unwrap();
        let mut base = sample("1.0");
        base.group = "base".to_string();
        repo.store(&base).unwrap();
        let err = repo.load("db", XEN, None).unwrap_err();
        assert!(matches!(err, RepoError::UnknownGroup { .. }), "{err}");
        assert!(
            err.to_string().ends_with("it holds groups: base, web"),
            "{err}"
        );
        assert_eq!(repo.groups().unwrap(), ["base", "web"]);
    }

    #[test]
    fn unknown_flavor_lists_the_flavors_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        repo.store(&sample("1.0")).unwrap();
        repo.store(&kvm("1.0")).unwrap();
        let err = repo.load("web", "[openvz is: x86_64]", None).unwrap_err();
        assert!(matches!(err, RepoError::UnknownFlavor { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with("compiled for: [kvm is: x86_64], [xen is: x86_64]"),
            "{err}"
        );
    }

    #[test]
    fn duplicate_paths_are_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let mut lock = sample("1.0");
        lock.files.push(entry("/etc/hostname", FileKind::Dir, None));
        lock.normalise();
        let err = repo.store(&lock).unwrap_err();
        assert!(matches!(err, RepoError::Unstorable { .. }), "{err}");
        assert!(
            err.to_string().contains("path /etc/hostname twice"),
            "{err}"
        );
        assert_eq!(count(&repo, "locks"), 0);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let lock = sample("1.0");
        open(&dir).store(&lock).unwrap();
        let mut repo = open(&dir);
        assert_eq!(repo.load("web", XEN, None).unwrap().lock, lock);
        assert!(repo.store(&lock).unwrap().unchanged);
    }

    #[test]
    fn revisions_summarise_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let mut changed = sample("1.10");
        changed.cmd.clear();
        for lock in [sample("1.10"), sample("1.9"), changed] {
            repo.store(&lock).unwrap();
        }
        let list = repo.revisions().unwrap();
        let keys: Vec<_> = list
            .iter()
            .map(|s| (s.version.as_str(), s.revision))
            .collect();
        assert_eq!(keys, [("1.9", 1), ("1.10", 1), ("1.10", 2)]);
        let first = &list[0];
        assert_eq!(first.group, "web");
        assert_eq!(first.flavor, XEN);
        assert_eq!(first.lock_id, sample("1.9").id());
        assert_eq!(first.packages, 4);
        // libc6's list counts once although two architectures carry it, as in the lock.
        assert_eq!(first.files, sample("1.9").files.len() as u64);
    }

    #[test]
    fn history_keeps_the_storing_order_and_names_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        // 2.0 stored before 1.0: history keeps that order, where `revisions` sorts.
        for lock in [sample("2.0"), kvm("1.0"), sample("1.0")] {
            repo.store(&lock).unwrap();
        }
        const KVM: &str = "[kvm is: x86_64]";
        let keys = |list: Vec<RevisionSummary>| -> Vec<(String, String)> {
            list.into_iter().map(|r| (r.version, r.flavor)).collect()
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            (list.iter())
                .map(|(v, f)| (v.to_string(), f.to_string()))
                .collect()
        };
        assert_eq!(
            keys(repo.history("web", None).unwrap()),
            pairs(&[("2.0", XEN), ("1.0", KVM), ("1.0", XEN)])
        );
        assert_eq!(
            keys(repo.history("web", Some(XEN)).unwrap()),
            pairs(&[("2.0", XEN), ("1.0", XEN)])
        );
        let err = repo.history("db", None).unwrap_err();
        assert!(matches!(err, RepoError::UnknownGroup { .. }), "{err}");
        assert!(err.to_string().ends_with("it holds groups: web"), "{err}");
        let err = repo
            .history("web", Some("[openvz is: x86_64]"))
            .unwrap_err();
        assert!(matches!(err, RepoError::UnknownFlavor { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with(&format!("compiled for: {KVM}, {XEN}")),
            "{err}"
        );
    }

    /// Stores `locks` from one thread each, all opening a new repository at once.
    fn store_concurrently(locks: Vec<Lock>) -> Vec<Stored> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store").join("repo.sqlite");
        let barrier = Arc::new(Barrier::new(locks.len()));
        let handles: Vec<_> = locks
            .into_iter()
            .map(|lock| {
                let path = path.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    Repository::open(&path).unwrap().store(&lock).unwrap()
                })
            })
            .collect();
        let mut stored: Vec<Stored> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        stored.sort_by_key(|s| (s.revision, s.unchanged));
        stored
    }

    #[test]
    fn concurrent_stores_get_distinct_revisions() {
        let locks = (0..4)
            .map(|n| {
                let mut lock = sample("1.0");
                lock.inputs.resolver = n;
                lock
            })
            .collect();
        let stored = store_concurrently(locks);
        let revisions: Vec<_> = stored.iter().map(|s| (s.revision, s.unchanged)).collect();
        assert_eq!(revisions, [(1, false), (2, false), (3, false), (4, false)]);
    }

    #[test]
    fn concurrent_stores_of_one_lock_write_it_once() {
        let stored = store_concurrently(vec![sample("1.0"); 3]);
        let revisions: Vec<_> = stored.iter().map(|s| (s.revision, s.unchanged)).collect();
        assert_eq!(revisions, [(1, false), (1, true), (1, true)]);
    }

    #[test]
    fn large_lock_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let mut lock = sample("1.0");
        for i in 0..20_000 {
            let owner = if i % 2 == 0 { "nginx" } else { "libc6" };
            lock.files.push(FileEntry {
                size: i,
                digest: Some(format!("{i:064x}")),
                ..entry(&format!("/usr/share/x/{i:06}"), FileKind::File, Some(owner))
            });
        }
        lock.normalise();
        repo.store(&lock).unwrap();
        assert_eq!(repo.load("web", XEN, None).unwrap().lock, lock);
    }

    #[test]
    fn surplus_is_beyond_the_newest_by_version_then_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        // 2.0 stored first: the newest is 2.0's latest revision, whatever the order.
        let mut changed = sample("1.0");
        changed.cmd.clear();
        for lock in [sample("2.0"), sample("1.0"), changed, kvm("1.0")] {
            repo.store(&lock).unwrap();
        }
        let keys =
            |list: Vec<Located>| -> Vec<String> { list.iter().map(Located::address).collect() };
        assert_eq!(
            keys(repo.surplus(1).unwrap()),
            ["web=1.0-1[xen is: x86_64]", "web=1.0-2[xen is: x86_64]"]
        );
        assert_eq!(
            keys(repo.surplus(2).unwrap()),
            ["web=1.0-1[xen is: x86_64]"]
        );
        assert!(repo.surplus(3).unwrap().is_empty());
        // Never the newest, even asked to keep none.
        assert_eq!(repo.surplus(0).unwrap(), repo.surplus(1).unwrap());
    }

    #[test]
    fn removing_revisions_takes_the_rows_only_they_held() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let first = sample("1.0");
        let mut second = sample("1.0");
        second.files[0].mode = 0o700;
        repo.store(&first).unwrap();
        repo.store(&second).unwrap();
        let (packages, package_files) = (count(&repo, "packages"), count(&repo, "package_files"));
        let both = repo.in_use(&[]).unwrap();
        let old = repo.exact("web", XEN, Some("1.0-1")).unwrap();
        // What a dry run counts is what the removal leaves.
        let without_old = repo.in_use(std::slice::from_ref(&old)).unwrap();
        repo.remove(std::slice::from_ref(&old)).unwrap();
        // The packages are shared: their rows stay.
        assert_eq!(
            (count(&repo, "packages"), count(&repo, "package_files")),
            (packages, package_files)
        );
        assert_eq!(repo.load("web", XEN, None).unwrap().lock, second);
        let used = repo.in_use(&[]).unwrap();
        assert_eq!(used, without_old);
        assert_eq!(used.lock_ids, HashSet::from([second.id()]));
        assert_eq!((used.digests, used.packages), (both.digests, both.packages));
        // Removing what is gone already changes nothing; the last revision takes every row.
        repo.remove(&[old]).unwrap();
        let last = repo.exact("web", XEN, Some("1.0-2")).unwrap();
        repo.remove(&[last]).unwrap();
        for table in [
            "locks",
            "lock_files",
            "lock_packages",
            "packages",
            "package_files",
            "groups",
            "group_versions",
            "flavors",
        ] {
            assert_eq!(count(&repo, table), 0, "{table}");
        }
        repo.check_pages().unwrap();
    }

    #[test]
    fn a_kept_tree_goes_with_the_revision_made_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let (lock, kvm) = (sample("1.0"), kvm("1.0"));
        let (stored, other) = (repo.store(&lock).unwrap(), repo.store(&kvm).unwrap());
        repo.keep_configured("made", b"tree").unwrap();
        repo.keep_configured("failed", b"other").unwrap();
        repo.keep_configured("kvm", b"kvm's").unwrap();
        repo.made_from(&stored.lock_id, "made").unwrap();
        repo.made_from(&other.lock_id, "kvm").unwrap();
        // No revision of this lock: nothing to record.
        repo.made_from(&"00".repeat(32), "failed").unwrap();
        assert_eq!(
            repo.configured("made").unwrap().as_deref(),
            Some(&b"tree"[..])
        );
        assert_eq!(repo.configured("unknown").unwrap(), None);
        // Any removal sweeps the trees no stored revision was made from (a failed or
        // killed compile's), and keeps the others.
        repo.remove(&[]).unwrap();
        assert_eq!(repo.configured("failed").unwrap(), None);
        assert!(repo.configured("made").unwrap().is_some());
        let xen = repo.exact("web", XEN, Some("1.0-1")).unwrap();
        repo.remove(&[xen]).unwrap();
        assert_eq!(repo.configured("made").unwrap(), None);
        assert_eq!(
            repo.configured("kvm").unwrap().as_deref(),
            Some(&b"kvm's"[..])
        );
    }

    #[test]
    fn exact_wants_a_revision() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = open(&dir);
        let mut changed = sample("1.0");
        changed.cmd.clear();
        for lock in [sample("1.0"), changed, sample("2.0-1")] {
            repo.store(&lock).unwrap();
        }
        let exact = repo.exact("web", XEN, Some("1.0-2")).unwrap();
        assert_eq!((exact.version.as_str(), exact.revision), ("1.0", 2));
        // `2.0-1` is a stored version: its revision must be said.
        let exact = repo.exact("web", XEN, Some("2.0-1-1")).unwrap();
        assert_eq!((exact.version.as_str(), exact.revision), ("2.0-1", 1));
        for (spec, could) in [
            (
                None,
                "web=1.0-1[xen is: x86_64], web=1.0-2[xen is: x86_64], web=2.0-1-1[xen is: x86_64]",
            ),
            (
                Some("1.0"),
                "web=1.0-1[xen is: x86_64], web=1.0-2[xen is: x86_64]",
            ),
            (Some("2.0-1"), "web=2.0-1-1[xen is: x86_64]"),
        ] {
            let err = repo.exact("web", XEN, spec).unwrap_err();
            assert!(matches!(err, RepoError::Inexact { .. }), "{err}");
            assert!(
                err.to_string().ends_with(&format!("could mean: {could}")),
                "{err}"
            );
        }
        let err = repo.exact("web", XEN, Some("1.0-3")).unwrap_err();
        assert!(matches!(err, RepoError::UnknownRevision { .. }), "{err}");
    }

    #[test]
    fn choose_reads_a_trailing_number_as_revision_only_when_needed() {
        let candidates: Vec<Candidate> = [("1.0", 1), ("1.0", 2), ("1.0-2", 1)]
            .into_iter()
            .enumerate()
            .map(|(row, (version, revision))| Candidate {
                version: version.to_string(),
                revision,
                row: row as i64,
            })
            .collect();
        assert_eq!(choose(&candidates, None), Ok(2));
        assert_eq!(choose(&candidates, Some("1.0")), Ok(1));
        assert_eq!(choose(&candidates, Some("1.0-2")), Ok(2));
        assert_eq!(choose(&candidates, Some("1.0-1")), Ok(0));
        assert_eq!(choose(&candidates, Some("1.0-2-1")), Ok(2));
        assert_eq!(choose(&candidates, Some("0.9")), Err(Miss::Version));
        assert_eq!(choose(&candidates, Some("0.9-1")), Err(Miss::Version));
        assert_eq!(
            choose(&candidates, Some("1.0-3")),
            Err(Miss::Revision {
                version: "1.0".to_string(),
                revision: 3
            })
        );
    }
}
