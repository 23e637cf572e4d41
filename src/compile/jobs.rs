//! A batch of recipes compiled over one catalog: the backend's sources read once, one
//! universe per architecture, then each recipe through the stages.

use std::collections::HashMap;
use std::path::PathBuf;

use super::error::Result;
use super::{Compiled, Configurations, ReadOnce, Settings, Spool, finish, prepare, rpm};
use crate::excerpt::excerpt;
use crate::lock::Backend;
use crate::repo::Repository;
use crate::resolve::Universe;
use crate::resolve::rpm::RpmUniverse;
use crate::source::accounts::Accounts;
use crate::source::dpkg::DpkgDatabase;
use crate::source::dpkg::Package;
use crate::source::dpkg::catalog::Catalog;
use crate::source::dpkg::pool::Pool;
use crate::source::rpm::catalog::RpmCatalog;
use crate::workspace::Recipe;

/// What a batch made: a lock per recipe, and what the user should know about the
/// sources they were made from.
pub struct Batch {
    /// One per recipe, in the recipes' order.
    pub compiled: Vec<Compiled>,
    /// About the sources, not any one lock (archives that disagree, refused stanzas).
    pub warnings: Vec<String>,
}

/// Compiles every recipe over the catalog of `settings.backend`, read from the sysroot
/// and `pool_dirs`; apt's lists are read through `repo`'s index of them, which this
/// brings up to date, and configured trees are kept there; the bytes configuration
/// made wait in `spool` for [`Compiled::store`]. Nothing else is stored.
pub fn compile_all(
    settings: &Settings,
    spool: &Spool,
    pool_dirs: &[PathBuf],
    recipes: Vec<Recipe>,
    repo: &mut Repository,
) -> Result<Batch> {
    let mut batch = match settings.backend {
        Backend::Dpkg => compile_dpkg(settings, spool, pool_dirs, recipes, repo)?,
        Backend::Rpm => compile_rpm(settings, spool, pool_dirs, recipes, repo)?,
    };
    // Whether a `remove` removed nothing is known only across a group's flavors.
    super::removes::warn_idle(&mut batch.compiled);
    Ok(batch)
}

/// Compiles over the dpkg catalog: the host's dpkg database, the pool's `.deb`
/// archives and apt's lists.
fn compile_dpkg(
    settings: &Settings,
    spool: &Spool,
    pool_dirs: &[PathBuf],
    recipes: Vec<Recipe>,
    repo: &mut Repository,
) -> Result<Batch> {
    let mut warnings = Vec::new();
    let stage = settings.report.stage("compile", "read");
    let pool = Pool::scan(pool_dirs)?;
    for (first, other) in pool.conflicts()? {
        let p = &first.package;
        warnings.push(format!(
            "{} and {} both hold {} {} ({}) but differ: the lock takes the first",
            first.path.display(),
            other.path.display(),
            excerpt(&p.name),
            excerpt(&p.version),
            p.arch
        ));
    }
    let installed = DpkgDatabase::read(&settings.sysroot)?;
    // Only the part of apt's lists the recipes can reach is read: the resolver never
    // looks beyond the names they ask for, the essential ones and their dependencies.
    let local: Vec<&Package> = (installed.packages.iter().map(|p| &p.package))
        .chain(pool.archives.iter().map(|a| &a.package))
        .collect();
    let indexed = repo.apt_lists(&settings.sysroot, seeds(&recipes), &local)?;
    drop(local);
    if let Some(first) = &indexed.first_refused {
        warnings.push(format!(
            "apt's lists hold {} stanzas dpkg would refuse; they are left out, \
             and a compile that needs one of their packages fails (the first: {first})",
            indexed.refused
        ));
    }
    let repo: &Repository = repo;
    // Only for the suggestions of an error that names an unknown package, which stays
    // the error to report if the names cannot be read.
    let apt_names = || repo.apt_names().unwrap_or_default();
    let catalog = Catalog::new(installed, pool, indexed.lists, &settings.pool_dir);
    let accounts = Accounts::read(&settings.sysroot)?;
    stage.done(format_args!(
        "{} installed packages, {} pool archives, {} of the {} packages of apt's lists",
        catalog.installed.packages.len(),
        catalog.pool.archives.len(),
        catalog.apt.packages.len(),
        indexed.packages
    ));
    let mut universes: HashMap<String, Universe> = HashMap::new();
    let configurations = Configurations::kept_in(repo, spool);
    let finished = |prepared| -> Result<Compiled> {
        let mut c = finish(settings, prepared, &accounts, &configurations)?;
        let locked = (c.lock.packages.iter())
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str()));
        c.stale = catalog.stale(locked);
        Ok(c)
    };
    // Every recipe is prepared first, its tree's job begun, so that distinct trees
    // (xen's and openvz's) are configured at once; then each is finished in order.
    let mut prepared = Vec::new();
    let read = ReadOnce::kept_in(repo);
    for recipe in &recipes {
        let arch = settings.backend.arch(&recipe.flavor).to_string();
        let universe = universes.entry(arch.clone()).or_insert_with(|| {
            let refused = (catalog.apt.refused_packages())
                .map(|(name, why)| (name, format!("its stanza in apt's lists is refused: {why}")));
            (Universe::new(catalog.packages(), &arch).refusing(refused)).suggesting(&apt_names)
        });
        prepared.push(prepare(
            settings,
            recipe,
            &catalog,
            universe,
            &read,
            &configurations,
        )?);
    }
    let compiled = (prepared.into_iter())
        .map(finished)
        .collect::<Result<Vec<_>>>()?;
    read.keep()?;
    Ok(Batch { compiled, warnings })
}

/// The names the recipes ask for (without an arch qualifier) or remove: where the
/// part of apt's lists a compile reads begins.
fn seeds(recipes: &[Recipe]) -> Vec<String> {
    let asked = (recipes.iter()).flat_map(|r| r.packages.iter().map(|p| &p.name));
    let asked = asked.map(|name| name.split_once(':').map_or(name.as_str(), |(n, _)| n));
    let removed = (recipes.iter()).flat_map(|r| r.removes.iter().map(|r| r.name.as_str()));
    asked.chain(removed).map(str::to_string).collect()
}

/// Compiles over the RPM catalog: the sysroot's rpmdb and the pool folders' `.rpm`
/// archives and createrepo_c repositories.
fn compile_rpm(
    settings: &Settings,
    spool: &Spool,
    pool_dirs: &[PathBuf],
    recipes: Vec<Recipe>,
    repo: &Repository,
) -> Result<Batch> {
    let mut warnings = Vec::new();
    let stage = settings.report.stage("compile", "read");
    let catalog = RpmCatalog::read(&settings.sysroot, pool_dirs)?;
    stage.done(format_args!("{} packages", catalog.packages().count()));
    if let Some((path, why)) = catalog.unreadable.first() {
        warnings.push(format!(
            "{} .rpm files in the pool folders cannot be read and are left out (the first: {}: {why})",
            catalog.unreadable.len(),
            path.display()
        ));
    }
    let configurations = Configurations::kept_in(repo, spool);
    let mut universes: HashMap<String, RpmUniverse> = HashMap::new();
    // As for dpkg: every job begun before the first tree is taken.
    let mut prepared = Vec::new();
    for recipe in &recipes {
        let arch = settings.backend.arch(&recipe.flavor).to_string();
        let universe = (universes.entry(arch.clone()))
            .or_insert_with(|| RpmUniverse::new(catalog.packages(), &arch));
        prepared.push(rpm::prepare(
            settings,
            recipe,
            &catalog,
            universe,
            &configurations,
        )?);
    }
    let compiled = (prepared.into_iter())
        .map(|prepared| rpm::finish(settings, prepared, &configurations))
        .collect::<Result<Vec<_>>>()?;
    Ok(Batch { compiled, warnings })
}
