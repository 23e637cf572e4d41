//! The resolve stage: the recipe's request over the universe (the host's packages whose
//! files were altered given up for archives), the kernel rule of its flavor, and the
//! fuller closure a group that removes essential packages is built from.

use std::collections::HashSet;

use super::Settings;
use super::altered::Altered;
use crate::error::{Result, excerpt};
use crate::lock::LockedPackage;
use crate::resolve::{Request, Resolution, Universe, Wanted};
use crate::source::Package;
use crate::source::catalog::Catalog;
use crate::workspace::Recipe;

/// What the resolver chose for a recipe.
pub struct Resolved {
    /// The packages the lock holds.
    pub locked: Resolution,
    /// The packages the tree is built and configured from: `locked`, plus the
    /// essential packages the group removes and what only they brought, which the
    /// configure stage purges once every script has run.
    pub built: Option<Resolution>,
    /// What `built` adds to `locked`, in the order to purge it.
    pub purge: Vec<String>,
    /// Things the user should know (a kernel flavor without a kernel).
    pub warnings: Vec<String>,
}

impl Resolved {
    /// The closure the tree is built from.
    pub fn built(&self) -> &Resolution {
        self.built.as_ref().unwrap_or(&self.locked)
    }

    /// The lock's packages, with the reason each is in.
    pub fn packages(&self, universe: &Universe) -> Vec<LockedPackage> {
        (self.locked.chosen.iter())
            .map(|c| {
                let p = &universe.packages()[c.index];
                LockedPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    arch: p.arch.clone(),
                    source: p.origin.as_str().to_string(),
                    reason: c.reason.clone(),
                }
            })
            .collect()
    }
}

/// What `recipe` asks of the resolver: its packages, removals and preference, with the
/// essential packages (which RPM's rules have none of).
pub(super) fn request(recipe: &Recipe) -> Request {
    Request {
        wanted: (recipe.packages.iter())
            .map(|p| Wanted {
                name: p.name.clone(),
                constraint: p.constraint.clone(),
                reason: p.reason.clone(),
                root: recipe.group.clone(),
            })
            .collect(),
        removes: recipe.removes.iter().map(|r| r.name.clone()).collect(),
        essential: true,
        prefer: recipe.prefer,
        avoid: Default::default(),
    }
}

/// Resolves `recipe` over `universe`, holding its flavor's kernel flag.
pub fn resolve(
    settings: &Settings,
    recipe: &Recipe,
    catalog: &Catalog,
    universe: &Universe,
) -> Result<Resolved> {
    let mut request = request(recipe);
    let mut altered = Altered::read(&settings.sysroot)?;
    let locked = altered.resolve(catalog, universe, &mut request)?;
    let mut warnings = Vec::new();
    if !recipe.flavor.flag("kernel") {
        refuse_kernel(recipe, universe, &locked)?;
    } else if !(locked.chosen.iter()).any(|c| is_kernel(universe.packages()[c.index])) {
        warnings.push(format!(
            "group {} has no kernel for flavor {}, so its image cannot boot: add a kernel \
             package under `when kernel {{ package linux-image-amd64 }}`",
            recipe.group,
            recipe.flavor.canonical()
        ));
    }
    // Maintainer scripts may use any essential package (`sed`, `grep`): one the group
    // removes is there while the tree is configured, and purged after, as a minimal
    // image is made with dpkg. The tree is built from that fuller closure.
    let removes_essential = (recipe.removes.iter())
        .any(|r| (universe.packages().iter()).any(|p| p.name == r.name && p.essential));
    if !removes_essential {
        warnings.extend(altered.check(&locked, universe, catalog, settings.offline)?);
        return Ok(Resolved {
            locked,
            built: None,
            purge: Vec::new(),
            warnings,
        });
    }
    // All removals wait for the purge: one may be what an essential package needs.
    let fuller = altered.resolve(
        catalog,
        universe,
        &mut Request {
            removes: Vec::new(),
            ..request
        },
    )?;
    warnings.extend(altered.check(&fuller, universe, catalog, settings.offline)?);
    let kept: HashSet<usize> = locked.chosen.iter().map(|c| c.index).collect();
    let gone: Vec<&Package> = (fuller.chosen.iter())
        .filter(|c| !kept.contains(&c.index))
        .map(|c| universe.packages()[c.index])
        .collect();
    Ok(Resolved {
        purge: purge_order(&gone),
        locked,
        built: Some(fuller),
        warnings,
    })
}

/// The order to purge `packages` in, one at a time: what the others depend on after
/// them, and essential packages, whose tools (`update-rc.d`, `sed`) scripts use without
/// saying so, after all the rest.
fn purge_order(packages: &[&Package]) -> Vec<String> {
    let needed_by = |p: &Package| {
        (packages.iter())
            .filter(|other| {
                (other.depends.iter().chain(&other.pre_depends))
                    .flatten()
                    .any(|r| r.name == p.name)
            })
            .count()
    };
    let mut order: Vec<(bool, usize, &str)> = (packages.iter())
        .map(|p| (p.essential, needed_by(p), p.name.as_str()))
        .collect();
    order.sort();
    order
        .into_iter()
        .map(|(_, _, name)| name.to_string())
        .collect()
}

/// A kernel package in the closure of a flavor whose `kernel` flag is off: the group
/// asked for it (named it, or named a package that depends on it) where no kernel may go.
#[derive(Debug, thiserror::Error)]
#[error(
    "{location}: package {} brings a kernel ({}) into flavor {flavor}, whose kernel flag is off ({})",
    excerpt(.named),
    excerpt(.kernel),
    chain.iter().map(|link| excerpt(link).to_string()).collect::<Vec<_>>().join(" -> ")
)]
pub struct UnwantedKernel {
    /// The `package` statement that asked for it (`groups/web.kdl:7:5`), or `essential`.
    pub location: String,
    /// The package that statement names.
    pub named: String,
    /// The kernel package.
    pub kernel: String,
    /// The flavor's canonical string.
    pub flavor: String,
    /// The group and the packages from the named one down to the kernel.
    pub chain: Vec<String>,
}

impl miette::Diagnostic for UnwantedKernel {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(format!(
            "put `package {}` under `when kernel {{ ... }}`, or `remove {}`",
            self.named, self.kernel
        )))
    }
}

/// Whether `package` is a kernel: Debian's kernel images are `linux-image-*` packages
/// (the versioned image and the metapackages that pull it in) and provide `linux-image`.
fn is_kernel(package: &Package) -> bool {
    package.name.starts_with("linux-image-")
        || package.provides.iter().any(|p| p.name == "linux-image")
}

/// Refuses a resolution that holds a kernel, naming the group line that brought it in.
fn refuse_kernel(
    recipe: &Recipe,
    universe: &Universe,
    resolution: &Resolution,
) -> Result<(), UnwantedKernel> {
    let packages = universe.packages();
    let Some(kernel) = (resolution.chosen.iter())
        .map(|c| c.index)
        .find(|&i| is_kernel(packages[i]))
    else {
        return Ok(());
    };
    let chain = resolution.chain(kernel);
    let first = chain.first().map_or(kernel, |&i| i);
    let named = packages[first].name.clone();
    let request = recipe
        .packages
        .iter()
        .find(|r| r.name == named || packages[first].provides.iter().any(|p| p.name == r.name));
    let location = request.map_or_else(|| "essential".to_string(), |r| r.location.to_string());
    let mut names = vec![recipe.group.clone()];
    names.extend(chain.iter().map(|&i| packages[i].name.clone()));
    Err(UnwantedKernel {
        location,
        named: request.map_or(named, |r| r.name.clone()),
        kernel: packages[kernel].name.clone(),
        flavor: recipe.flavor.canonical(),
        chain: names,
    })
}
