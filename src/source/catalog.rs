//! The package universe of one compile, by preference: the host's installed packages,
//! then archives in the pool, then apt's lists (the README's "How a lock is made").

use std::path::Path;

use super::Package;
use super::apt::AptLists;
use super::dpkg::DpkgDatabase;
use super::pool::Pool;

/// Where a package of the catalog is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// `installed.packages[i]`.
    Installed(usize),
    /// `pool.archives[i]`.
    Pool(usize),
    /// `apt.packages[i]`.
    Apt(usize),
}

/// Every package a compile may choose from.
pub struct Catalog {
    /// The host's dpkg database.
    pub installed: DpkgDatabase,
    /// Archives in the pool folders.
    pub pool: Pool,
    /// apt's lists.
    pub apt: AptLists,
}

impl Catalog {
    /// Puts the sources together. `fetch_cache` is where archives fetched from apt's lists
    /// are kept (`store/pool`): an archive there that the lists describe is that list's
    /// package, fetched before, not a pool package of its own, so a lock says `aptlist`
    /// for it whether or not this compile had to download it.
    pub fn new(
        installed: DpkgDatabase,
        mut pool: Pool,
        apt: AptLists,
        fetch_cache: &Path,
    ) -> Catalog {
        pool.archives.retain(|archive| {
            let p = &archive.package;
            let cached = archive.path.parent() == Some(fetch_cache);
            !(cached
                && apt.packages.iter().any(|a| {
                    a.package.name == p.name
                        && a.package.version == p.version
                        && a.package.arch == p.arch
                }))
        });
        Catalog {
            installed,
            pool,
            apt,
        }
    }

    /// The packages in universe order: installed, pool, apt. An index into this list
    /// maps back through [`Catalog::provenance`].
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        let installed = self.installed.packages.iter().map(|p| &p.package);
        let pool = self.pool.archives.iter().map(|a| &a.package);
        let apt = self.apt.packages.iter().map(|p| &p.package);
        installed.chain(pool).chain(apt)
    }

    /// Where universe package `index` is described.
    pub fn provenance(&self, index: usize) -> Provenance {
        let installed = self.installed.packages.len();
        let pool = self.pool.archives.len();
        if index < installed {
            Provenance::Installed(index)
        } else if index < installed + pool {
            Provenance::Pool(index - installed)
        } else {
            Provenance::Apt(index - installed - pool)
        }
    }
}
