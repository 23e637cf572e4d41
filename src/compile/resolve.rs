//! The resolve stage: the recipe's request over the universe (the host's packages whose
//! files were altered given up for archives), the kernel rule of its flavor, and the
//! fuller closure a group that removes essential packages is built from.

use std::collections::HashSet;

use super::Settings;
use super::altered::Altered;
use super::error::{CompileError, Result};
use super::read_once::ReadOnce;
use crate::excerpt::excerpt;
use crate::lock::LockedPackage;
use crate::resolve::rpm::RpmUniverse;
use crate::resolve::{Request, Resolution, ResolveError, Universe, Wanted};
use crate::source::dpkg::Package;
use crate::source::dpkg::catalog::Catalog;
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

/// A resolution failure as an error at the `package` statement whose request began the
/// failing chain, in whichever group file it is written, with the chain and problem as
/// its message; a failure in the essential packages' chain, which no statement began,
/// as it is.
pub(super) fn at_request(err: ResolveError, recipe: &Recipe) -> CompileError {
    let Some(request) = err.wanted.and_then(|i| recipe.packages.get(i)) else {
        return CompileError::from(err);
    };
    // The chain is the group, the packages pulled in, and the relation that failed.
    let label = match err.chain.len() {
        0..=2 => "asked for here".to_string(),
        _ => format!(
            "needs {}",
            excerpt(err.chain.last().map_or("", String::as_str))
        ),
    };
    CompileError::from(request.site.invalid(err.to_string(), label, None))
}

/// Resolves `recipe` over `universe`, holding its flavor's kernel flag; `read` tells
/// which installed packages' files the host changed.
pub fn resolve(
    settings: &Settings,
    recipe: &Recipe,
    catalog: &Catalog,
    universe: &Universe,
    read: &ReadOnce,
) -> Result<Resolved> {
    let mut request = request(recipe);
    let mut altered = Altered::read(&settings.sysroot)?;
    let at_statement = |err: CompileError| match err {
        CompileError::Resolve(err) => at_request(err, recipe),
        other => other,
    };
    let locked = (altered.resolve(catalog, universe, &mut request, read)).map_err(at_statement)?;
    let mut warnings = kernel_rule(recipe, universe, &locked)?;
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
    let fuller = altered
        .resolve(
            catalog,
            universe,
            &mut Request {
                removes: Vec::new(),
                ..request
            },
            read,
        )
        .map_err(at_statement)?;
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

/// What the kernel rule needs to know of the packages a resolution indexes, whichever
/// package manager's they are.
pub trait Kernels {
    /// The name of package `index`.
    fn name(&self, index: usize) -> &str;
    /// Whether package `index` provides `capability`.
    fn provides(&self, index: usize, capability: &str) -> bool;
    /// Whether package `index` is a kernel.
    fn is_kernel(&self, index: usize) -> bool;
    /// The kernel package a group of this package manager names, for the hint.
    fn example(&self) -> &'static str;
}

impl Kernels for Universe<'_> {
    fn name(&self, index: usize) -> &str {
        &self.packages()[index].name
    }

    fn provides(&self, index: usize, capability: &str) -> bool {
        (self.packages()[index].provides.iter()).any(|p| p.name == capability)
    }

    /// Debian's kernel images are `linux-image-*` packages (the versioned image and the
    /// metapackages that pull it in) and provide `linux-image`.
    fn is_kernel(&self, index: usize) -> bool {
        self.name(index).starts_with("linux-image-") || self.provides(index, "linux-image")
    }

    fn example(&self) -> &'static str {
        "linux-image-amd64"
    }
}

impl Kernels for RpmUniverse<'_> {
    fn name(&self, index: usize) -> &str {
        &self.packages()[index].name
    }

    fn provides(&self, index: usize, capability: &str) -> bool {
        (self.packages()[index].provides.iter()).any(|p| p.name == capability)
    }

    /// Fedora's and RHEL's kernels are `kernel` (which pulls in the rest) and
    /// `kernel-core` (the image), which provide `kernel` and `installonlypkg(kernel)`.
    fn is_kernel(&self, index: usize) -> bool {
        matches!(self.name(index), "kernel" | "kernel-core")
            || self.provides(index, "kernel")
            || self.provides(index, "installonlypkg(kernel)")
    }

    fn example(&self) -> &'static str {
        "kernel-core"
    }
}

/// The kernel rule of `recipe`'s flavor over `resolution`: with the `kernel` flag off, a
/// kernel in the closure is refused, naming the group line that brought it in; with it
/// on, a closure without one gets a warning (returned).
pub fn kernel_rule(
    recipe: &Recipe,
    packages: &impl Kernels,
    resolution: &Resolution,
) -> Result<Vec<String>, UnwantedKernel> {
    let kernel = (resolution.chosen.iter())
        .map(|c| c.index)
        .find(|&i| packages.is_kernel(i));
    let Some(kernel) = kernel.filter(|_| !recipe.flavor.flag("kernel")) else {
        let warning = format!(
            "group {} has no kernel for flavor {}, so its image cannot boot: add a kernel \
             package under `when kernel {{ package {} }}`",
            recipe.group,
            recipe.flavor.canonical(),
            packages.example()
        );
        let missing = kernel.is_none() && recipe.flavor.flag("kernel");
        return Ok(missing.then_some(warning).into_iter().collect());
    };
    let chain = resolution.chain(kernel);
    let first = chain.first().map_or(kernel, |&i| i);
    let named = packages.name(first).to_string();
    let request =
        (recipe.packages.iter()).find(|r| r.name == named || packages.provides(first, &r.name));
    let location = request.map_or_else(
        || "essential".to_string(),
        |r| r.site.location().to_string(),
    );
    let mut names = vec![recipe.group.clone()];
    names.extend(chain.iter().map(|&i| packages.name(i).to_string()));
    Err(UnwantedKernel {
        location,
        named: request.map_or(named, |r| r.name.clone()),
        kernel: packages.name(kernel).to_string(),
        flavor: recipe.flavor.canonical(),
        chain: names,
    })
}
