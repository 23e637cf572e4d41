//! A group's history: its revisions one after another (`appliance log`) and what
//! changed between any two locks (`appliance diff`). The commands load locks; this
//! module compares and describes them.

mod diff;
mod reference;
mod render;

use serde::Serialize;

use crate::excerpt::excerpt;
use crate::repo::{RepoError, RevisionSummary, StoredLock};

pub use diff::{Aspect, FileChange, LockDiff, PackageChange, Setting, compare_versions, diff};
pub use reference::Reference;
pub use render::{diff_json, diff_text, size_change};

/// What a reference to a lock gets wrong.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The text is not of the reference's form.
    #[error(
        "`{}` is no lock reference ({reason}): write GROUP, GROUP=VERSION or \
         GROUP=VERSION-REVISION, optionally followed by [FLAVOR], as `appliance list` \
         prints them",
        excerpt(reference)
    )]
    Malformed {
        /// The text given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The reference names no flavor and its group was compiled for several.
    #[error(
        "`{}` names no flavor, and group `{group}` was compiled for several: {}; pass \
         --flavor or add one, as in `{group}[{}]`", excerpt(reference), known.join(", "),
        known.first().map_or("", |f| f.trim_matches(|c| c == '[' || c == ']'))
    )]
    SeveralFlavors {
        /// The text given.
        reference: String,
        /// Its group.
        group: String,
        /// The canonical flavors the group was compiled for.
        known: Vec<String>,
    },
    /// The repository holds no lock the reference names.
    #[error("`{}`: {source}", excerpt(reference))]
    Unknown {
        /// The text given.
        reference: String,
        /// What the repository said, listing what it holds instead.
        source: Box<RepoError>,
    },
}

/// One revision as `appliance log` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Where and when it was stored, with its counts, as `appliance list` gives them.
    #[serde(flatten)]
    pub revision: RevisionSummary,
    /// `GROUP=VERSION-REVISION[FLAVOR]`.
    pub address: String,
    /// When it was stored, in RFC 3339, UTC.
    pub time: Option<String>,
    /// The address of the revision before it of the same group and flavor.
    pub previous: Option<String>,
    /// What changed from that one, in one line (`first revision` without one).
    pub summary: String,
    /// The same, counted; `None` for a first revision.
    pub changes: Option<Changes>,
}

/// A [`LockDiff`] counted, as `log --json` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Packages upgraded.
    pub upgraded: usize,
    /// Packages downgraded.
    pub downgraded: usize,
    /// Packages added.
    pub added: usize,
    /// Packages removed.
    pub removed: usize,
    /// Paths new, gone or changed.
    pub files: usize,
    /// The other lock fields that changed ([`Setting::as_str`]).
    pub settings: Vec<&'static str>,
}

impl LogEntry {
    /// The entry of `revision`, whose lock is `stored`, compared with `previous`, the
    /// revision stored before it for the same group and flavor.
    pub fn new(
        revision: RevisionSummary,
        stored: &StoredLock,
        previous: Option<&StoredLock>,
    ) -> LogEntry {
        let changed = previous.map(|before| diff(&before.lock, &stored.lock));
        LogEntry {
            address: stored.lock.address(stored.revision),
            time: render::time(revision.created),
            revision,
            previous: previous.map(|p| p.lock.address(p.revision)),
            summary: (changed.as_ref())
                .map_or_else(|| "first revision".into(), ToString::to_string),
            changes: changed.map(|d| Changes {
                upgraded: d.upgraded.len(),
                downgraded: d.downgraded.len(),
                added: d.added.len(),
                removed: d.removed.len(),
                files: d.files.len(),
                settings: d.settings.iter().map(|s| s.as_str()).collect(),
            }),
        }
    }
}
