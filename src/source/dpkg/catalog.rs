//! The package universe of one compile, by preference: the host's installed packages,
//! then archives in the pool, then apt's lists (the README's "How a lock is made").

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

use super::DpkgDatabase;
use super::Package;
use super::apt::AptLists;
use super::pool::Pool;
use super::version::compare;

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

/// A chosen package older than apt's candidate of its name: what `prefer newest` would
/// take instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The package name.
    pub name: String,
    /// The version chosen.
    pub version: String,
    /// The newest version apt's lists hold of the name, for the same architecture.
    pub candidate: String,
    /// Whether a security suite holds the candidate.
    pub security: bool,
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

    /// Of `chosen` (name, version, arch), those older than apt's candidate of their
    /// name and arch (the newest version its lists hold, pins aside): security updates
    /// first, then by name.
    pub fn stale<'p>(
        &self,
        chosen: impl IntoIterator<Item = (&'p str, &'p str, &'p str)>,
    ) -> Vec<Stale> {
        let mut candidates: HashMap<(&str, &str), (&str, bool)> = HashMap::new();
        for listed in &self.apt.packages {
            let p = &listed.package;
            let offer = (p.version.as_str(), listed.security);
            candidates
                .entry((p.name.as_str(), p.arch.as_str()))
                .and_modify(|best| match compare(offer.0, best.0) {
                    Ordering::Greater => *best = offer,
                    Ordering::Equal => best.1 |= offer.1,
                    Ordering::Less => {}
                })
                .or_insert(offer);
        }
        let mut stale: Vec<Stale> = (chosen.into_iter())
            .filter_map(|(name, version, arch)| {
                let &(candidate, security) = candidates.get(&(name, arch))?;
                (compare(candidate, version) == Ordering::Greater).then(|| Stale {
                    name: name.to_string(),
                    version: version.to_string(),
                    candidate: candidate.to_string(),
                    security,
                })
            })
            .collect();
        stale.sort_by(|a, b| (!a.security, &a.name).cmp(&(!b.security, &b.name)));
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Origin;
    use crate::source::dpkg::apt::AptPackage;

    fn listed(name: &str, version: &str, arch: &str, security: bool) -> AptPackage {
        AptPackage {
            package: Package::bare(name, version, arch, Origin::AptList),
            filename: String::new(),
            size: 0,
            sha256: String::new(),
            list: "lists".into(),
            security,
        }
    }

    #[test]
    fn stale_packages_are_those_behind_the_newest_listed_version() {
        let apt = AptLists {
            packages: vec![
                listed("libssl3", "3.0.22-1~deb12u2", "amd64", false),
                listed("libssl3", "3.0.22-1~deb12u2", "amd64", true),
                listed("libssl3", "3.0.20-1~deb12u2", "amd64", false),
                listed("bash", "5.2.15-2+b9", "amd64", false),
                listed("tzdata", "2025b-0+deb12u2", "all", false),
                listed("tzdata", "2024a-0+deb12u1", "all", true),
                listed("libfoo", "2", "i386", false),
            ],
            ..AptLists::default()
        };
        let installed = DpkgDatabase {
            packages: Vec::new(),
            diversions: Vec::new(),
        };
        let pool = Pool {
            archives: Vec::new(),
            shadowed: Vec::new(),
            unreadable: Vec::new(),
        };
        let catalog = Catalog::new(installed, pool, apt, Path::new("/nowhere"));
        let stale = catalog.stale([
            ("bash", "5.2.15-2+b9", "amd64"),
            ("libfoo", "1", "amd64"),
            ("tzdata", "2024a-0+deb12u1", "all"),
            ("libssl3", "3.0.19-1~deb12u2", "amd64"),
            ("gone", "1", "amd64"),
        ]);
        let rows: Vec<String> = (stale.iter())
            .map(|s| format!("{} {} {} {}", s.name, s.version, s.candidate, s.security))
            .collect();
        assert_eq!(
            rows,
            [
                "libssl3 3.0.19-1~deb12u2 3.0.22-1~deb12u2 true",
                "tzdata 2024a-0+deb12u1 2025b-0+deb12u2 false",
            ]
        );
    }
}
