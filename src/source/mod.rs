//! Package sources: where the package universe of a compile comes from.
//!
//! A source only describes packages (their metadata and, for installed ones, which
//! paths they own); it never knows about tarballs or outputs. Each package manager has
//! its folder ([`dpkg`], [`rpm`]); what they share is here.

pub mod accounts;
pub mod backend;
pub mod compression;
pub mod dpkg;
pub mod rpm;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Opens each of `paths` with `open`, in order: in parallel, unless this thread already
/// works for a rayon pool. A caller there may be filling a value other tasks wait for (the
/// pool materialise surveys when a file first needs it), and a nested parallel loop lets
/// this thread take up one of those tasks while it waits: it would wait on itself.
pub(crate) fn open_all<T: Send>(
    paths: &[std::path::PathBuf],
    open: impl Fn(&std::path::Path) -> T + Sync,
) -> Vec<T> {
    use rayon::prelude::*;
    if rayon::current_thread_index().is_some() {
        paths.iter().map(|p| open(p)).collect()
    } else {
        paths.par_iter().map(|p| open(p)).collect()
    }
}

/// Where a package in the universe comes from, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Installed on the host (or sysroot): its files are on disk.
    Installed,
    /// A package archive in a pool.
    Pool,
    /// Known only from apt lists; must be fetched.
    AptList,
}

impl Origin {
    /// The lower-case name used in locks and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Installed => "installed",
            Origin::Pool => "pool",
            Origin::AptList => "aptlist",
        }
    }
}

/// A version comparison operator: of a Debian relation, an rpm dependency, or a group's
/// `version=` constraint (written the Debian way whichever the package manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// `<<`
    Lt,
    /// `<=`
    Le,
    /// `=`
    Eq,
    /// `>=`
    Ge,
    /// `>>`
    Gt,
}

impl Op {
    /// Parses a Debian operator; the obsolete `<` and `>` mean `<=` and `>=`, as in dpkg.
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }

    /// The operator as Debian writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
