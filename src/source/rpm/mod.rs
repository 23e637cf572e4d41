//! RPM package sources: the sysroot's rpmdb (`rpmdb.sqlite`), `.rpm` archives in the
//! pool folders, and local `createrepo_c` folders. Like the dpkg sources they only
//! describe packages (their relations, files and headers); they never know about locks,
//! tarballs or outputs.

mod archive;
mod caps;
pub mod catalog;
mod error;
#[cfg(test)]
mod fixture;
mod header;
mod pool;
mod rpmdb;

use std::path::PathBuf;

use super::{Op, Origin};

pub use archive::{RpmArchive, digest};
pub use error::RpmError;
pub(crate) use header::HEADER_MAGIC;
pub use header::{DigestAlgorithm, FileTrigger, HeaderFile, RpmHeader, Scriptlet, Scriptlets};
pub use pool::RpmPool;
pub use rpmdb::{InstalledRpm, Rpmdb};

/// One RPM package's metadata, as the RPM resolver and the compile stages need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmPackage {
    /// `RPMTAG_NAME`.
    pub name: String,
    /// The EVR as rpm prints it: `EPOCH:VERSION-RELEASE`, the epoch left out when the
    /// header has none (`1.0-1`, `2:1.0-1.fc40`). Compared with rpm's own rules.
    pub evr: String,
    /// `RPMTAG_ARCH`: `x86_64`, `noarch`, `i686`...
    pub arch: String,
    /// `Provides`, the package's own `name = evr` included as rpm adds it.
    pub provides: Vec<Capability>,
    /// `Requires`, `rpmlib(...)` ones included; a rich dependency is one capability whose
    /// name is the whole expression in parentheses, as the header stores it.
    pub requires: Vec<Requirement>,
    /// `Conflicts` (rich expressions allowed, as in `requires`).
    pub conflicts: Vec<Capability>,
    /// `Obsoletes`.
    pub obsoletes: Vec<Capability>,
    /// Every path the package owns, sorted (file requires are matched against them).
    pub files: Vec<String>,
    /// Where the package comes from: the rpmdb (`Installed`), or an archive in a pool or
    /// a createrepo_c folder (`Pool`).
    pub origin: Origin,
    /// The `.rpm` file, for packages that come from an archive.
    pub archive: Option<PathBuf>,
}

impl RpmPackage {
    /// `name-evr.arch`, as rpm names a package in messages.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// A name with an optional version relation: one entry of `Provides`, `Requires`,
/// `Conflicts` or `Obsoletes`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability {
    /// The capability: a package name, a virtual name (`libfoo.so.1()(64bit)`), a path
    /// (`/bin/sh`), `rpmlib(...)`, or a rich expression (`(a or b)`).
    pub name: String,
    /// The relation and EVR (`>= 1.2-3`); rpm's `<` and `>` are [`Op::Lt`] and
    /// [`Op::Gt`].
    pub constraint: Option<(Op, String)>,
}

/// One `Requires` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// What is required.
    pub capability: Capability,
    /// `Requires(pre)` (or `prereq`): must be installed before this package's `%pre`,
    /// which orders the configure stage.
    pub pre: bool,
}
