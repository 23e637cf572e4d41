//! Drift: the host compared against a lock, file by file.
//!
//! Every entry of a package the lock took from the host's installed packages is looked
//! at where the host keeps it (its diversion origin, if any): its type, owner, mode,
//! link text or device numbers, and for a file its size and BLAKE3. Entries no package
//! owns (generated files) and packages that came from archives are not on the host, so
//! they are not compared. For a file whose bytes drifted, the report also says whether
//! materialise can still take the locked bytes from the package's archive or the blob
//! store, as it would.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rayon::prelude::*;

use crate::lock::{FileEntry, Lock};

use super::fetch::{self, FetchError, Problem, Source};
use super::plan::{Body, Expected, Item, Plan};
use super::{MaterialiseError, Sources, Supply, with_supply};
use crate::io_pool::in_io_pool;

/// One way a host path differs from its lock entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProblem {
    /// The bytes, or the file itself: missing, unreadable, another size or content, or
    /// not a regular file.
    Content(Problem),
    /// The lock has a directory, link, device or fifo, the host something else or none.
    WrongType {
        /// What the lock has.
        locked: &'static str,
        /// What the host has.
        found: &'static str,
    },
    /// A symlink whose text differs.
    Target {
        /// The host's link text.
        found: String,
    },
    /// A device with other numbers.
    Device {
        /// The host's (major, minor).
        found: (u32, u32),
    },
    /// Another owner or group.
    Owner {
        /// The lock's uid:gid.
        locked: (u32, u32),
        /// The host's uid:gid.
        found: (u32, u32),
    },
    /// Other permission bits.
    Mode {
        /// The lock's mode.
        locked: u32,
        /// The host's mode.
        found: u32,
    },
}

impl fmt::Display for HostProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostProblem::Content(problem) => problem.fmt(f),
            HostProblem::WrongType { locked, found } => {
                write!(f, "wrong type (lock: {locked}, host: {found})")
            }
            HostProblem::Target { found } => write!(f, "link text differs (host: {found})"),
            HostProblem::Device { found } => {
                write!(f, "device numbers differ (host: {}:{})", found.0, found.1)
            }
            HostProblem::Owner { locked, found } => write!(
                f,
                "wrong owner (lock: {}:{}, host: {}:{})",
                locked.0, locked.1, found.0, found.1
            ),
            HostProblem::Mode { locked, found } => {
                write!(f, "wrong mode (lock: {locked:04o}, host: {found:04o})")
            }
        }
    }
}

/// Where materialise takes a file's locked bytes when the host's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Supplier {
    /// The package's archive in a pool folder.
    Archive,
    /// The repository's blob store.
    BlobStore,
}

impl Supplier {
    /// The word naming the supplier in JSON: `archive` or `blob-store`.
    pub fn as_str(self) -> &'static str {
        match self {
            Supplier::Archive => "archive",
            Supplier::BlobStore => "blob-store",
        }
    }
}

impl fmt::Display for Supplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Supplier::Archive => "its package's archive in the pool",
            Supplier::BlobStore => "the blob store",
        })
    }
}

/// A host path that differs from the lock, with every way it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDifference {
    /// The path in the appliance.
    pub path: String,
    /// Where the host keeps it, when that is elsewhere (a diversion).
    pub origin: Option<String>,
    /// The package owning it.
    pub package: String,
    /// What differs.
    pub problems: Vec<HostProblem>,
    /// For drifted bytes: which other source supplies the locked ones (`Ok`), or why none
    /// does (`Err`). `None` when only metadata differs: materialise takes owners and
    /// modes from the lock.
    pub fallback: Option<Result<Supplier, String>>,
}

impl fmt::Display for HostDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (package {})", self.path, self.package)?;
        if let Some(origin) = &self.origin {
            write!(f, " at {origin}")?;
        }
        let problems: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        write!(f, ": {}", problems.join("; "))?;
        match &self.fallback {
            Some(Ok(supplier)) => write!(f, "; materialise takes it from {supplier}"),
            Some(Err(why)) => write!(f, "; nothing else supplies it ({why})"),
            None => Ok(()),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// How many host paths were compared.
    pub checked: usize,
    /// The ones that differ, in path order.
    pub differences: Vec<HostDifference>,
}

/// Compares the host under `sources.sysroot` with every entry `lock` takes from it.
pub fn verify(lock: &Lock, sources: &Sources) -> Result<Verification, MaterialiseError> {
    let plan = Plan::new(lock)?;
    let from_host: Vec<&Item> = plan
        .items
        .iter()
        .filter(|item| {
            item.entry.package.as_deref().is_some_and(|name| {
                (lock.packages.iter()).any(|p| p.name == name && p.source == "installed")
            })
        })
        .collect();
    let differences = with_supply(lock, sources, |supply| {
        let found: Vec<Option<HostDifference>> = in_io_pool(|| {
            from_host
                .par_iter()
                .map(|item| compare(item, supply))
                .collect()
        });
        Ok(found.into_iter().flatten().collect())
    })?;
    Ok(Verification {
        checked: from_host.len(),
        differences,
    })
}

/// The differences of one entry, if any.
fn compare(item: &Item, supply: &Supply) -> Option<HostDifference> {
    let entry = item.entry;
    let host = fetch::host_path(entry, supply.sources);
    let mut problems = Vec::new();
    let mut fallback = None;
    if let Some(expected) = content_of(item) {
        if let Err(problem) = fetch::check(&host, &expected) {
            problems.push(HostProblem::Content(problem));
            fallback = Some(other_source(entry, &expected, supply, &host));
        }
        // A missing or non-file path has no owner or mode to compare.
        if problems.is_empty() {
            metadata_problems(entry, &host, &mut problems);
        }
    } else {
        match kind_problem(item, &host) {
            Some(problem) => problems.push(problem),
            None => metadata_problems(entry, &host, &mut problems),
        }
    }
    (!problems.is_empty()).then(|| HostDifference {
        path: entry.path.clone(),
        origin: entry.origin.clone(),
        package: entry.package.clone().unwrap_or_default(),
        problems,
        fallback,
    })
}

fn content_of(item: &Item) -> Option<Expected> {
    match item.body {
        Body::File(content) | Body::Hardlink { content, .. } => Some(content),
        _ => None,
    }
}

/// Where materialise would take the locked bytes from instead, or why nowhere.
fn other_source(
    entry: &FileEntry,
    expected: &Expected,
    supply: &Supply,
    host: &Path,
) -> Result<Supplier, String> {
    let blobs = supply.sources.blobs.as_deref();
    match fetch::fetch(entry, expected, supply, &mut io::sink()) {
        Ok(Source::Held) => Ok(Supplier::Archive),
        Ok(Source::File(source)) if blobs.is_some_and(|b| source.starts_with(b)) => {
            Ok(Supplier::BlobStore)
        }
        Ok(Source::File(source)) if source != host => Ok(Supplier::Archive),
        // The host file changed back while it was looked at: nothing to fall back on.
        Ok(_) => Err("the host file changed while it was compared".to_string()),
        Err(FetchError::Drift(drifted)) => {
            let mut why = Vec::new();
            why.extend(drifted.archive.clone());
            why.extend(drifted.blob.as_ref().map(|b| format!("blob store: {b}")));
            if why.is_empty() {
                why.push("no pool or blob store to look in".to_string());
            }
            Err(why.join("; "))
        }
        Err(FetchError::Sink(e)) => Err(e.to_string()),
    }
}

/// For an entry that is not a file: whether the host has the same kind of thing.
fn kind_problem(item: &Item, host: &Path) -> Option<HostProblem> {
    let meta = match fs::symlink_metadata(host) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Some(HostProblem::Content(Problem::Missing));
        }
        Err(e) => {
            return Some(HostProblem::Content(Problem::Unreadable {
                reason: e.to_string(),
            }));
        }
    };
    let found = kind_name(&meta);
    let locked = item.entry.kind.as_str();
    let same_kind = match item.body {
        Body::Dir => found == "dir",
        Body::Symlink(_) => found == "symlink",
        Body::Device { block, .. } => found == if block { "block" } else { "char" },
        Body::Fifo => found == "fifo",
        Body::File(_) | Body::Hardlink { .. } => found == "file",
    };
    if !same_kind {
        return Some(HostProblem::WrongType { locked, found });
    }
    match item.body {
        Body::Symlink(text) => match fs::read_link(host) {
            Ok(target) if target.as_os_str() == text => None,
            Ok(target) => Some(HostProblem::Target {
                found: target.to_string_lossy().into_owned(),
            }),
            Err(e) => Some(HostProblem::Content(Problem::Unreadable {
                reason: e.to_string(),
            })),
        },
        Body::Device { major, minor, .. } => {
            let found = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
            (found != (major, minor)).then_some(HostProblem::Device { found })
        }
        _ => None,
    }
}

fn kind_name(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_file() {
        "file"
    } else if kind.is_dir() {
        "dir"
    } else if kind.is_symlink() {
        "symlink"
    } else if kind.is_char_device() {
        "char"
    } else if kind.is_block_device() {
        "block"
    } else if kind.is_fifo() {
        "fifo"
    } else {
        "socket"
    }
}

/// Owner and mode of a host path that has the locked kind (a symlink has no mode).
fn metadata_problems(entry: &FileEntry, host: &Path, problems: &mut Vec<HostProblem>) {
    let Ok(meta) = fs::symlink_metadata(host) else {
        return;
    };
    let found = (meta.uid(), meta.gid());
    if found != (entry.uid, entry.gid) {
        problems.push(HostProblem::Owner {
            locked: (entry.uid, entry.gid),
            found,
        });
    }
    let mode = meta.mode() & 0o7777;
    if !meta.file_type().is_symlink() && mode != entry.mode {
        problems.push(HostProblem::Mode {
            locked: entry.mode,
            found: mode,
        });
    }
}
