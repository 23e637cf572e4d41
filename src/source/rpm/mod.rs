//! RPM package sources: the sysroot's rpmdb (`rpmdb.sqlite`), `.rpm` archives in the
//! pool folders, and local `createrepo_c` folders. Like the dpkg sources they only
//! describe packages (their relations, files and headers); they never know about locks,
//! tarballs or outputs.

mod archive;
mod caps;
pub mod catalog;
mod checksum;
mod error;
#[cfg(test)]
mod fixture;
mod header;
mod pool;
mod repodata;
mod rpmdb;

use std::path::PathBuf;

use super::{Op, Origin};

pub use archive::RpmArchive;
pub use checksum::digest;
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
    /// name is the whole expression in parentheses, as the header stores it. Read from a
    /// repository's metadata, those createrepo_c leaves out are missing: `rpmlib(...)`,
    /// and the ones the package meets itself (a name it provides, one of its own files
    /// that primary.xml lists: those in `/etc` and `bin` folders).
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
    /// What a createrepo_c repository's metadata says of `archive`, for a package read
    /// from that metadata rather than from the archive: the archive must match it when
    /// it is opened ([`RpmArchive::open_as`]).
    pub listing: Option<Listing>,
}

/// A package as a createrepo_c repository's `primary.xml` lists it: the checksum its
/// whole `.rpm` must have (its `pkgid`). Its name, EVR and arch are the package's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The repository folder (the one holding `repodata/`).
    pub repository: PathBuf,
    /// The checksum's algorithm (sha256 as createrepo_c writes it).
    pub algorithm: DigestAlgorithm,
    /// The checksum, lower-case hex.
    pub checksum: String,
}

impl RpmPackage {
    /// `name-evr.arch`, as rpm names a package in messages.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// Adds the package's own `name = evr` to `provides` unless it is there, as rpm does
/// when it builds a package.
fn provide_self(provides: &mut Vec<Capability>, name: &str, evr: &str) {
    let own = Capability {
        name: name.to_string(),
        constraint: Some((Op::Eq, evr.to_string())),
    };
    if !provides.contains(&own) {
        provides.push(own);
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
    /// which orders the configure stage. Read from a repository's metadata it is also
    /// set for `Requires(post)`: createrepo_c's `pre="1"` does not tell them apart.
    pub pre: bool,
}
