//! The RPM package universe of one compile, by preference: the sysroot's rpmdb, then the
//! archives of the pool folders and createrepo_c repositories ([`RpmPool`]).

use std::path::{Path, PathBuf};

use super::{InstalledRpm, RpmError, RpmPackage, RpmPool, Rpmdb};

/// Where a package of the catalog is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpmProvenance {
    /// `installed[i]`.
    Installed(usize),
    /// `archives[i]`.
    Archive(usize),
}

/// Every RPM package a compile may choose from.
pub struct RpmCatalog {
    /// The sysroot's installed packages (none when it has no rpmdb).
    pub installed: Vec<InstalledRpm>,
    /// Where the sysroot's rpmdb is, relative to it (`var/lib/rpm/rpmdb.sqlite`).
    pub rpmdb: Option<PathBuf>,
    /// The archives of the pool folders and repositories, in folder order.
    pub archives: Vec<RpmPackage>,
    /// Later archives of a package in `archives`: never resolved, but tried in turn for
    /// bytes the first does not hold.
    pub shadowed: Vec<RpmPackage>,
    /// Archives that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl RpmCatalog {
    /// Reads the rpmdb under `sysroot` (if it has one) and the archives in `dirs`.
    pub fn read(sysroot: &Path, dirs: &[PathBuf]) -> Result<RpmCatalog, RpmError> {
        let mut catalog = RpmCatalog::archives(dirs);
        // A database rpm cannot read here (Berkeley DB, ndb) is refused, not taken for none.
        if Rpmdb::present(sysroot) {
            let rpmdb = Rpmdb::read(sysroot)?;
            catalog.rpmdb = rpmdb.path.strip_prefix(sysroot).ok().map(Path::to_path_buf);
            catalog.installed = rpmdb.packages;
        }
        Ok(catalog)
    }

    /// The archives in `dirs` alone: what materialise takes bytes from.
    pub fn archives(dirs: &[PathBuf]) -> RpmCatalog {
        let pool = RpmPool::survey(dirs);
        RpmCatalog {
            installed: Vec::new(),
            rpmdb: None,
            archives: pool.archives,
            shadowed: pool.shadowed,
            unreadable: pool.unreadable,
        }
    }

    /// The packages in universe order: installed, then archives. An index into this
    /// list maps back through [`RpmCatalog::provenance`].
    pub fn packages(&self) -> impl Iterator<Item = &RpmPackage> {
        let installed = self.installed.iter().map(|p| &p.package);
        installed.chain(&self.archives)
    }

    /// Where universe package `index` is described.
    pub fn provenance(&self, index: usize) -> RpmProvenance {
        match index.checked_sub(self.installed.len()) {
            None => RpmProvenance::Installed(index),
            Some(i) => RpmProvenance::Archive(i),
        }
    }

    /// Universe package `index`.
    pub fn package(&self, index: usize) -> &RpmPackage {
        match self.provenance(index) {
            RpmProvenance::Installed(i) => &self.installed[i].package,
            RpmProvenance::Archive(i) => &self.archives[i],
        }
    }

    /// The archives of exactly `name`, `evr` and `arch`, in folder order, shadowed ones
    /// after.
    pub fn candidates<'c>(
        &'c self,
        name: &'c str,
        evr: &'c str,
        arch: &'c str,
    ) -> impl Iterator<Item = &'c RpmPackage> + 'c {
        (self.archives.iter().chain(&self.shadowed))
            .filter(move |p| p.name == name && p.evr == evr && p.arch == arch)
    }
}
