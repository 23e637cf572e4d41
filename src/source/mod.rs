//! Package sources: where the package universe of a compile comes from.
//!
//! A source only describes packages (their metadata and, for installed ones, which
//! paths they own); it never knows about locks, tarballs or outputs.

pub mod apt;
pub mod backend;
pub mod catalog;
pub mod compression;
pub mod deb;
pub mod dpkg;
pub mod pool;
pub mod relation;
pub mod rpm;
pub mod rules;
pub mod version;

use serde::{Deserialize, Serialize};

pub use relation::{Dependency, Op, Relation, RelationParseError};

/// The control files dpkg keeps in `info/` beside a package's file list: its maintainer
/// scripts and what they and dpkg's triggers read (debconf templates, triggers, shared
/// library information).
pub const INFO_FILES: [&str; 9] = [
    "preinst",
    "postinst",
    "prerm",
    "postrm",
    "config",
    "templates",
    "triggers",
    "shlibs",
    "symbols",
];

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

/// How a package may satisfy dependencies across architectures (Debian `Multi-Arch:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MultiArch {
    /// No `Multi-Arch` field: only same-arch dependents.
    #[default]
    No,
    /// `Multi-Arch: same`: co-installable across architectures.
    Same,
    /// `Multi-Arch: foreign`: satisfies dependents of any architecture.
    Foreign,
    /// `Multi-Arch: allowed`: satisfies `name:any` dependencies.
    Allowed,
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

/// One package's metadata, as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Package name, without architecture qualifier (`libc6`).
    pub name: String,
    /// Full Debian version string, epoch and revision included (`1:9.2p1-2+deb12u3`).
    pub version: String,
    /// Debian architecture (`amd64`, `all`, `i386`).
    pub arch: String,
    /// The `Multi-Arch` field.
    pub multi_arch: MultiArch,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Depends`: every entry must hold; each entry is a list of alternatives.
    pub depends: Vec<Dependency>,
    /// `Pre-Depends`, treated like `Depends` for the closure.
    pub pre_depends: Vec<Dependency>,
    /// `Provides`: virtual names, optionally versioned (`= 1.0`).
    pub provides: Vec<Relation>,
    /// `Conflicts`.
    pub conflicts: Vec<Relation>,
    /// `Breaks`, treated like `Conflicts` for a set installed together.
    pub breaks: Vec<Relation>,
    /// Where this package comes from.
    pub origin: Origin,
}

impl Package {
    /// A package with no relations and no `Essential` or `Multi-Arch`, for tests to
    /// build universes from.
    #[cfg(test)]
    pub fn bare(name: &str, version: &str, arch: &str, origin: Origin) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            multi_arch: MultiArch::No,
            essential: false,
            depends: Vec::new(),
            pre_depends: Vec::new(),
            provides: Vec::new(),
            conflicts: Vec::new(),
            breaks: Vec::new(),
            origin,
        }
    }

    /// `name:arch`, the key dpkg uses for `Multi-Arch: same` packages and messages.
    pub fn qualified_name(&self) -> String {
        format!("{}:{}", self.name, self.arch)
    }
}
