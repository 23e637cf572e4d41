//! The RPM package universe, indexed by name, by `Provides` and by owned file.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::evr::{compare, overlaps, range};
use crate::resolve::universe::{Satisfier, nearest};
use crate::source::rpm::{Capability, RpmPackage};
use crate::source::{Op, Origin};

/// A version range as a header gives it: `>= 1.2`, borrowed.
type Range<'a> = Option<(Op, &'a str)>;

/// The arch of packages that run on any.
pub(super) const NOARCH: &str = "noarch";

/// Every RPM package the resolver may choose from, indexed for capability lookups.
///
/// The packages keep the order they were given in, so a caller can map a chosen index
/// back to its own records; nothing the resolver decides depends on that order.
#[derive(Debug, Clone)]
pub struct RpmUniverse<'a> {
    packages: Vec<&'a RpmPackage>,
    arch: String,
    /// Package name -> indices of packages with that name.
    by_name: HashMap<&'a str, Vec<usize>>,
    /// Provided name -> (index of a provider, the range it provides).
    provided: HashMap<&'a str, Vec<(usize, Range<'a>)>>,
    /// Path -> indices of packages owning it.
    owners: HashMap<&'a str, Vec<usize>>,
    /// (name, evr, arch) of every installed package.
    installed: HashSet<(&'a str, &'a str, &'a str)>,
    /// Package name -> the most preferred origin of any package of that name.
    best_origin: HashMap<&'a str, Origin>,
}

impl<'a> RpmUniverse<'a> {
    /// Indexes `packages` by name, `Provides` and files; `arch` is rpm's name of the
    /// appliance's arch (`x86_64`, `aarch64`), which `noarch` packages join.
    pub fn new(packages: impl IntoIterator<Item = &'a RpmPackage>, arch: &str) -> RpmUniverse<'a> {
        let packages: Vec<&'a RpmPackage> = packages.into_iter().collect();
        let mut universe = RpmUniverse {
            packages: Vec::new(),
            arch: arch.to_string(),
            by_name: HashMap::new(),
            provided: HashMap::new(),
            owners: HashMap::new(),
            installed: HashSet::new(),
            best_origin: HashMap::new(),
        };
        for (index, package) in packages.iter().enumerate() {
            let name = package.name.as_str();
            if package.origin == Origin::Installed {
                (universe.installed).insert((name, &package.evr, &package.arch));
            }
            (universe.best_origin.entry(name))
                .and_modify(|o| *o = (*o).min(package.origin))
                .or_insert(package.origin);
            universe.by_name.entry(name).or_default().push(index);
            // The package's own `name = evr` is found by name, whether listed or not.
            for provide in package.provides.iter().filter(|p| p.name != package.name) {
                (universe.provided.entry(&provide.name).or_default()).push((index, range(provide)));
            }
            for path in &package.files {
                universe.owners.entry(path).or_default().push(index);
            }
        }
        universe.packages = packages;
        universe
    }

    /// The packages, in the order given to [`RpmUniverse::new`].
    pub fn packages(&self) -> &[&'a RpmPackage] {
        &self.packages
    }

    /// The appliance's arch, as rpm names it.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Every package satisfying `capability`, whatever its arch: by name (its EVR in
    /// the range), by `Provides` (ranges overlapping), or owning the path it names.
    pub(super) fn satisfiers(&self, capability: &Capability) -> Vec<Satisfier> {
        let wanted = range(capability);
        let name = capability.name.as_str();
        let real = (self.by_name.get(name).into_iter().flatten())
            .filter(|&&i| overlaps(Some((Op::Eq, &self.packages[i].evr)), wanted))
            .map(|&index| Satisfier {
                index,
                provided: false,
            });
        let provided = (self.provided.get(name).into_iter().flatten())
            .filter(|(_, provided)| overlaps(*provided, wanted))
            .map(|&(index, _)| index);
        let owners = (name.starts_with('/'))
            .then(|| self.owners.get(name))
            .flatten()
            .into_iter()
            .flatten()
            .copied();
        let mut virtual_: Vec<usize> = provided.chain(owners).collect();
        virtual_.sort_unstable();
        virtual_.dedup();
        let virtual_ = virtual_.into_iter().map(|index| Satisfier {
            index,
            provided: true,
        });
        real.chain(virtual_).collect()
    }

    /// The indices of the packages named `name`.
    pub(super) fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether any package is named `name`, provides it or owns it as a path.
    pub(super) fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
            || self.provided.contains_key(name)
            || self.owners.contains_key(name)
    }

    /// What exists under `name` among packages `usable` takes, versions ignored: real
    /// EVRs (`1.0-1`), then provides (`1.2 (provided by bar)`), lowest first.
    pub(super) fn available(
        &self,
        name: &str,
        usable: impl Fn(&RpmPackage) -> bool,
    ) -> Vec<String> {
        let mut real: Vec<&str> = (self.named(name).iter())
            .map(|&i| self.packages[i])
            .filter(|p| usable(p))
            .map(|p| p.evr.as_str())
            .collect();
        real.sort_by(|a, b| compare(a, b));
        real.dedup();
        let provided: BTreeSet<String> = (self.provided.get(name).into_iter().flatten())
            .filter(|(i, _)| usable(self.packages[*i]))
            .map(|(i, provided)| {
                let by = self.label(self.packages[*i]);
                match provided {
                    Some((op, evr)) if *op == Op::Eq => format!("{evr} (provided by {by})"),
                    Some((op, evr)) => {
                        format!("{} {evr} (provided by {by})", super::evr::op_text(*op))
                    }
                    None => format!("an unversioned {name} (provided by {by})"),
                }
            })
            .collect();
        (real.into_iter().map(str::to_string))
            .chain(provided)
            .collect()
    }

    /// `name.arch` of every package named `name`, providing or owning it.
    pub(super) fn found(&self, name: &str) -> Vec<String> {
        let real = self.named(name).iter().copied();
        let provided = (self.provided.get(name).into_iter().flatten()).map(|(i, _)| *i);
        let owners = self.owners.get(name).into_iter().flatten().copied();
        let found: BTreeSet<String> = (real.chain(provided).chain(owners))
            .map(|i| {
                let p = self.packages[i];
                format!("{}.{}", p.name, p.arch)
            })
            .collect();
        found.into_iter().collect()
    }

    /// Up to three known names (real or provided) closest to an unknown `name`.
    pub(super) fn nearest_names(&self, name: &str) -> Vec<String> {
        nearest(
            name,
            self.by_name.keys().chain(self.provided.keys()).copied(),
        )
    }

    /// How a package is named in chains: `name`, or `name.arch` for another arch
    /// than the appliance's and `noarch`.
    pub(super) fn label(&self, package: &RpmPackage) -> String {
        if self.is_native(&package.arch) {
            package.name.clone()
        } else {
            format!("{}.{}", package.name, package.arch)
        }
    }

    /// Whether `arch` is the appliance's own or `noarch`.
    pub(super) fn is_native(&self, arch: &str) -> bool {
        arch == self.arch || arch == NOARCH
    }

    /// Whether `package` is the host's installed version of its name.
    pub(super) fn is_installed(&self, package: &RpmPackage) -> bool {
        (self.installed).contains(&(&package.name, &package.evr, &package.arch))
    }

    /// Whether the universe holds a newer EVR of the package at `index` (its name, for
    /// its arch): one an update would take.
    pub(super) fn superseded(&self, index: usize) -> bool {
        let package = self.packages[index];
        (self.named(&package.name).iter()).any(|&other| {
            let other = self.packages[other];
            other.arch == package.arch && compare(&other.evr, &package.evr).is_gt()
        })
    }

    /// The most preferred origin among the packages named `name`.
    pub(super) fn best_origin(&self, name: &str) -> Origin {
        self.best_origin
            .get(name)
            .copied()
            .unwrap_or(Origin::AptList)
    }
}
