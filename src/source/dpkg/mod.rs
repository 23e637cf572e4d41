//! Debian's package manager as a source: the installed database (`var/lib/dpkg`) and the
//! host files it lists, `.deb` archives in pools, apt's lists, and dpkg's own rules for
//! names and versions, made one catalog for the resolver.

pub mod apt;
pub mod catalog;
mod database;
pub mod deb;
pub mod pool;
pub mod relation;
pub mod rules;
pub mod scan;
pub mod verify;
pub mod version;

use serde::{Deserialize, Serialize};

use super::Origin;

pub use relation::{Dependency, Relation, RelationParseError};

pub use database::{
    Conffile, Diversion, DpkgDatabase, DpkgError, InstalledPackage, Owned, StatusPackage,
    parse_control, parse_md5sums, parse_status,
};

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
