//! The package universe, indexed by name and by `Provides` for relation lookups.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::source::Origin;
use crate::source::dpkg::version::{compare, satisfies};
use crate::source::dpkg::{MultiArch, Package, Relation};

/// Names at least this similar (Jaro-Winkler) to an unknown name are offered as
/// suggestions; below it, the hints are noise on a full Debian archive.
const SUGGESTION_THRESHOLD: f64 = 0.8;

/// Every package the resolver may choose from, indexed by name and by provided names.
///
/// The packages keep the order they were given in, so a caller can map a chosen index
/// back to its own records (an archive path, a dpkg status entry). Nothing the resolver
/// decides depends on that order.
#[derive(Debug, Clone)]
pub struct Universe<'a> {
    packages: Vec<&'a Package>,
    native_arch: String,
    /// Real package name -> indices of packages with that name.
    by_name: HashMap<&'a str, Vec<usize>>,
    /// Virtual name -> (index of a provider, version it provides, if any).
    provided: HashMap<&'a str, Vec<(usize, Option<&'a str>)>>,
    /// Package name -> why a source refused a stanza of it (the first such stanza).
    refused: HashMap<&'a str, String>,
    /// Package name -> the most preferred origin of any package of that name.
    best_origin: HashMap<&'a str, Origin>,
    /// (name, version, arch) of every installed package.
    installed: HashSet<(&'a str, &'a str, &'a str)>,
    /// Names known beyond the packages given, for suggestions: all of apt's lists when
    /// the universe holds only the part of them a compile can reach. Read only when a
    /// name is unknown, which most compiles never meet.
    more_names: Option<MoreNames<'a>>,
}

/// Where a [`Universe`] reads the names it was not given, when it needs them.
#[derive(Clone, Copy)]
struct MoreNames<'a>(&'a dyn Fn() -> Vec<String>);

impl std::fmt::Debug for MoreNames<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MoreNames(..)")
    }
}

/// A package that satisfies a relation, and whether it does so through `Provides`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Satisfier {
    /// Index into [`Universe::packages`].
    pub index: usize,
    /// Matched through `Provides` rather than by its own name.
    pub provided: bool,
}

impl<'a> Universe<'a> {
    /// Indexes `packages` by name and `Provides`; `native_arch` is the Debian
    /// architecture of the appliance (`amd64`), which `all` packages count as. The
    /// universe borrows the packages: a full Debian archive is ~64k of them.
    pub fn new(packages: impl IntoIterator<Item = &'a Package>, native_arch: &str) -> Universe<'a> {
        let packages: Vec<&'a Package> = packages.into_iter().collect();
        let mut by_name: HashMap<&'a str, Vec<usize>> = HashMap::new();
        let mut provided: HashMap<&'a str, Vec<(usize, Option<&'a str>)>> = HashMap::new();
        let mut best_origin: HashMap<&'a str, Origin> = HashMap::new();
        let mut installed = HashSet::new();
        for (index, package) in packages.iter().enumerate() {
            if package.origin == Origin::Installed {
                installed.insert((
                    package.name.as_str(),
                    package.version.as_str(),
                    package.arch.as_str(),
                ));
            }
            best_origin
                .entry(package.name.as_str())
                .and_modify(|o| *o = (*o).min(package.origin))
                .or_insert(package.origin);
            by_name
                .entry(package.name.as_str())
                .or_default()
                .push(index);
            for provide in &package.provides {
                // A package providing its own name is already found by name.
                if provide.name == package.name {
                    continue;
                }
                // Policy allows only `=` in Provides; anything else cannot be compared,
                // so it provides the name without a version.
                let version = match &provide.constraint {
                    Some((crate::source::Op::Eq, v)) => Some(v.as_str()),
                    _ => None,
                };
                provided
                    .entry(provide.name.as_str())
                    .or_default()
                    .push((index, version));
            }
        }
        Universe {
            packages,
            native_arch: native_arch.to_string(),
            by_name,
            provided,
            refused: HashMap::new(),
            best_origin,
            installed,
            more_names: None,
        }
    }

    /// The universe with the names `names` gives also offered as suggestions for an
    /// unknown name: the names of the sources it was given only part of, asked for only
    /// when a name is unknown.
    pub fn suggesting(mut self, names: &'a dyn Fn() -> Vec<String>) -> Universe<'a> {
        self.more_names = Some(MoreNames(names));
        self
    }

    /// Whether `package` is the host's installed version of its name (its archive is the
    /// same version as the host's, even when the host's files cannot be used).
    pub(crate) fn is_installed(&self, package: &Package) -> bool {
        self.installed.contains(&(
            package.name.as_str(),
            package.version.as_str(),
            package.arch.as_str(),
        ))
    }

    /// The indices of the packages named `name`.
    fn named(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether the universe holds a newer version of the package at `index` (its name,
    /// for its arch): one apt would upgrade it to.
    pub(crate) fn superseded(&self, index: usize) -> bool {
        let package = self.packages[index];
        let arch = self.effective_arch(&package.arch);
        self.named(&package.name).iter().any(|&other| {
            let other = self.packages[other];
            self.effective_arch(&other.arch) == arch
                && compare(&other.version, &package.version).is_gt()
        })
    }

    /// The most preferred origin among the packages named `name` (the host's, when it
    /// has one installed): with [`super::Prefer::Newest`] it ranks names, not versions.
    pub(crate) fn best_origin(&self, name: &str) -> Origin {
        self.best_origin
            .get(name)
            .copied()
            .unwrap_or(Origin::AptList)
    }

    /// The universe with `refused`, (name, why) for each stanza a source left out as
    /// invalid: a resolution that would need one of those names fails, saying why,
    /// rather than resolving as if the stanza did not exist.
    pub fn refusing(
        mut self,
        refused: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Universe<'a> {
        for (name, why) in refused {
            self.refused.entry(name).or_insert(why);
        }
        self
    }

    /// Why a stanza of package `name` was refused, if one was.
    pub(crate) fn refused(&self, name: &str) -> Option<&str> {
        self.refused.get(name).map(String::as_str)
    }

    /// The packages, in the order given to [`Universe::new`].
    pub fn packages(&self) -> &[&'a Package] {
        &self.packages
    }

    /// The native architecture the universe was built for.
    pub fn native_arch(&self) -> &str {
        &self.native_arch
    }

    /// The architecture a package or relation really stands for: `all` means native.
    pub(crate) fn effective_arch<'s>(&'s self, arch: &'s str) -> &'s str {
        if arch == "all" {
            &self.native_arch
        } else {
            arch
        }
    }

    /// Whether `package` can satisfy a relation with arch `qualifier` declared by a
    /// package of `depender_arch`, by dpkg's multi-arch rules.
    fn arch_matches(
        &self,
        package: &Package,
        qualifier: Option<&str>,
        depender_arch: &str,
    ) -> bool {
        if package.multi_arch == MultiArch::Foreign {
            return true;
        }
        let arch = self.effective_arch(&package.arch);
        let same_as_depender = arch == self.effective_arch(depender_arch);
        match qualifier {
            None => same_as_depender,
            Some("any") => package.multi_arch == MultiArch::Allowed || same_as_depender,
            Some("native") => arch == self.native_arch,
            Some(other) => arch == self.effective_arch(other),
        }
    }

    /// Every package satisfying `relation` for a depender of `depender_arch`: real
    /// packages (version checked) and providers (an unversioned Provides satisfies only
    /// an unversioned relation). Removal and already-chosen versions are not considered.
    pub(crate) fn satisfiers(&self, relation: &Relation, depender_arch: &str) -> Vec<Satisfier> {
        let qualifier = relation.arch.as_deref();
        let version_ok = |version: Option<&str>| match (&relation.constraint, version) {
            (None, _) => true,
            (Some((op, wanted)), Some(v)) => satisfies(v, *op, wanted),
            (Some(_), None) => false,
        };
        let real = (self.named(&relation.name).iter())
            .filter(|&&i| {
                let p = &self.packages[i];
                version_ok(Some(&p.version)) && self.arch_matches(p, qualifier, depender_arch)
            })
            .map(|&index| Satisfier {
                index,
                provided: false,
            });
        let virtual_ = self
            .provided
            .get(relation.name.as_str())
            .into_iter()
            .flatten();
        let virtual_ = virtual_
            .filter(|(i, version)| {
                version_ok(*version)
                    && self.arch_matches(self.packages[*i], qualifier, depender_arch)
            })
            .map(|&(index, _)| Satisfier {
                index,
                provided: true,
            });
        real.chain(virtual_).collect()
    }

    /// Whether any package is named `name` or provides it, whatever its arch or version.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name) || self.provided.contains_key(name)
    }

    /// What exists under `name` for a depender of `depender_arch`, ignoring versions:
    /// real versions (`3.0.8`) and provides (`1.2 (provided by bar)`), lowest first.
    pub(crate) fn available(&self, relation: &Relation, depender_arch: &str) -> Vec<String> {
        let qualifier = relation.arch.as_deref();
        let mut real: Vec<&str> = (self.named(&relation.name).iter())
            .map(|&i| self.packages[i])
            .filter(|p| self.arch_matches(p, qualifier, depender_arch))
            .map(|p| p.version.as_str())
            .collect();
        real.sort_by(|a, b| compare(a, b));
        real.dedup();
        let provided: BTreeSet<String> = (self.provided.get(relation.name.as_str()).into_iter())
            .flatten()
            .filter(|(i, _)| self.arch_matches(self.packages[*i], qualifier, depender_arch))
            .map(|(i, version)| {
                let by = self.label(self.packages[*i]);
                match version {
                    Some(v) => format!("{v} (provided by {by})"),
                    None => format!("an unversioned {} (provided by {by})", relation.name),
                }
            })
            .collect();
        real.into_iter()
            .map(str::to_string)
            .chain(provided)
            .collect()
    }

    /// Every `name:arch` named or providing `name`, for a "wrong architecture" message.
    pub(crate) fn found_elsewhere(&self, name: &str) -> Vec<String> {
        let real = self.named(name).iter().copied();
        let virtual_ = (self.provided.get(name).into_iter().flatten()).map(|(i, _)| *i);
        let found: BTreeSet<String> = real
            .chain(virtual_)
            .map(|i| self.packages[i].qualified_name())
            .collect();
        found.into_iter().collect()
    }

    /// Up to three known names (real or virtual) closest to an unknown `name`.
    pub(crate) fn nearest_names(&self, name: &str) -> Vec<String> {
        let more = self.more_names.map(|names| (names.0)()).unwrap_or_default();
        nearest(
            name,
            (self.by_name.keys().chain(self.provided.keys()).copied())
                .chain(more.iter().map(String::as_str)),
        )
    }

    /// How a package is named in messages: `name`, or `name:arch` for a foreign arch.
    pub(crate) fn label(&self, package: &Package) -> String {
        if self.effective_arch(&package.arch) == self.native_arch {
            package.name.clone()
        } else {
            package.qualified_name()
        }
    }
}

/// Up to three of `known` closest to an unknown `name`, best first: the suggestions of
/// [`super::Problem::NoSuchPackage`].
pub(crate) fn nearest<'k>(name: &str, known: impl Iterator<Item = &'k str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = known
        .map(|known| (strsim::jaro_winkler(name, known), known))
        .filter(|(score, _)| *score >= SUGGESTION_THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}
