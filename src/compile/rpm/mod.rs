//! Compiling one recipe for an RPM system, in the stages dpkg's compile has: resolve over
//! the RPM catalog with rpm's rules, [`gather`] the chosen packages' entries from their
//! headers (host files checked against rpm's digests, archives read once), stage them
//! with an `rpmdb.sqlite` holding exactly their headers, configure the tree with the
//! packages' [`scriptlets`], capture, assemble, check and store as for dpkg.

mod gather;
mod order;
pub mod scriptlets;
mod sysusers;

use crate::compile::as_root::{Begun, Job, Scripts};
use crate::compile::assemble::{self, Configured};
use crate::compile::error::Result;
use crate::compile::resolve::at_request;
use crate::compile::{Compiled, Configurations, Removes, Settings, check, configured_tree, setup};
use crate::lock::{self, FileEntry, LockedPackage};
use crate::resolve::rpm::{RpmUniverse, resolve_rpm};
use crate::source::rpm::catalog::RpmCatalog;
use crate::system;
use crate::workspace::Recipe;

pub use gather::HostDrift;
use scriptlets::RpmScripts;

/// Where the tree's rpmdb goes when the sysroot has none to follow.
const RPMDB: &str = "/var/lib/rpm/rpmdb.sqlite";

/// An RPM recipe compiled up to its configure job, which [`Configurations::begin`] may
/// run while the next recipe is prepared: [`finish`] takes its tree and assembles the
/// lock, as dpkg's [`crate::compile::Prepared`].
pub struct Prepared<'r> {
    recipe: &'r Recipe,
    /// What its stages are reported as.
    subject: String,
    /// The lock's packages.
    packages: Vec<LockedPackage>,
    /// The removes the resolution found nothing for.
    idle_removes: Vec<String>,
    /// The chosen packages' entries and what their reading warned of.
    gathered: gather::Gathered,
    /// The group's own requests.
    setup: setup::Requests,
    /// What the resolution warned of (the kernel rule).
    warnings: Vec<String>,
    /// The job that configures the tree, begun.
    job: Job,
    begun: Begun,
}

/// Resolves and gathers one recipe over the RPM catalog, and begins the job that
/// configures its tree.
pub fn prepare<'r>(
    settings: &Settings,
    recipe: &'r Recipe,
    catalog: &RpmCatalog,
    universe: &RpmUniverse,
    configurations: &Configurations,
) -> Result<Prepared<'r>> {
    let subject = super::subject(recipe);
    let stage = settings.report.stage(&subject, "resolve");
    // rpm's rules have no essential packages: the resolver leaves that field alone.
    let resolution = resolve_rpm(universe, &super::resolve::request(recipe))
        .map_err(|err| at_request(err, recipe))?;
    let warnings = super::resolve::kernel_rule(recipe, universe, &resolution)?;
    let packages: Vec<LockedPackage> = (resolution.chosen.iter())
        .map(|c| {
            let p = universe.packages()[c.index];
            LockedPackage {
                name: p.name.clone(),
                version: p.evr.clone(),
                arch: p.arch.clone(),
                source: p.origin.as_str().to_string(),
                reason: c.reason.clone(),
            }
        })
        .collect();
    stage.done(format_args!("{} packages", resolution.chosen.len()));
    let order = order::install_order(&resolution);
    let stage = settings.report.stage(&subject, "gather");
    let gathered = gather::gather(&settings.sysroot, catalog, &order, !recipe.paths.is_empty())?;
    stage.done(format_args!("{} files", gathered.tree.entries.len()));
    let tree = &gathered.tree;

    // The staged tree: the packages' files, their rpmdb, and /dev.
    let rpmdb_path =
        (catalog.rpmdb.as_ref()).map_or_else(|| RPMDB.to_string(), |p| format!("/{}", p.display()));
    let mut system = system::rpmdb(&settings.scratch, &rpmdb_path, &gathered.headers)?;
    let tty = gathered.group_id("tty");
    system.extend(system::dev(tty));
    let staging = lock::assemble(assemble::parts(
        recipe,
        settings.backend,
        packages.clone(),
        tree.entries.clone(),
        system.entries,
    )?)?;
    let has = |path: &str| tree.entry(path).is_some();
    let setup = setup::requests(recipe, assemble::machine(recipe), has, true)?;
    let job = Job {
        scratch: settings.scratch.clone(),
        spool: configurations.spool().dir().to_path_buf(),
        sysroot: settings.sysroot.clone(),
        pools: gathered.pools(),
        staging,
        blobs: system.blobs,
        units: setup::unit_files(recipe),
        scripts: Scripts::Rpm(RpmScripts {
            sysusers: sysusers::accounts(&gathered.sysusers),
            steps: gathered.steps(),
            asked: setup.asked.clone(),
            source_date_epoch: 0,
        }),
    };
    let begun = configurations.begin(&job)?;
    Ok(Prepared {
        recipe,
        subject,
        packages,
        idle_removes: resolution.idle_removes,
        gathered,
        setup,
        warnings,
        job,
        begun,
    })
}

/// Takes `prepared`'s configured tree from `configurations` (waiting for its job),
/// assembles the lock and checks it.
pub fn finish(
    settings: &Settings,
    prepared: Prepared<'_>,
    configurations: &Configurations,
) -> Result<Compiled> {
    let Prepared {
        recipe,
        subject,
        packages,
        idle_removes,
        gathered,
        setup,
        mut warnings,
        job,
        begun,
    } = prepared;
    let (done, blobs) = configured_tree(settings, &subject, job, &begun, configurations)?;
    // Owners are names in a header; their ids are the configured tree's, which the
    // packages' own scripts made.
    let accounts = done.accounts;
    warnings.extend(setup.warnings);
    let entries: Vec<FileEntry> = (done.captured.entries.into_iter())
        .map(|mut e| {
            if e.package.is_some() {
                let (uid, gid) = (accounts.uid_of(&e.user), accounts.gid_of(&e.group));
                if uid.is_none() || gid.is_none() {
                    warnings.push(format!(
                        "{} of {}: owner {}:{} is not an account of the tree: root owns it, \
                         as rpm does",
                        e.path,
                        e.package.as_deref().unwrap_or_default(),
                        e.user,
                        e.group
                    ));
                }
                (e.uid, e.gid) = (uid.unwrap_or(0), gid.unwrap_or(0));
                if uid.is_none() {
                    e.user = "root".into();
                }
                if gid.is_none() {
                    e.group = "root".into();
                }
            }
            e
        })
        .collect();
    warnings.extend(done.warnings);
    let configured = Configured {
        entries,
        system: Vec::new(),
        blobs,
        spooled: done.captured.spooled,
        script_keys: done.captured.keys,
        accounts,
        warnings: Vec::new(),
        took: done.took,
    };
    let stage = settings.report.stage(&subject, "assemble");
    let spool = configurations.spool();
    let assembled = assemble::assemble(
        settings,
        recipe,
        packages,
        configured,
        &gathered.tree,
        spool,
    )?;
    check::check(&assembled.lock)?;
    stage.done(format_args!("{} files", assembled.lock.files.len()));
    warnings.extend(assembled.warnings);
    warnings.extend(gathered.tree.warnings);
    let mut compiled = Compiled::new(
        assembled.lock,
        assembled.blobs,
        assembled.spooled,
        Vec::new(),
        warnings,
        done.took,
        Removes::new(recipe, &idle_removes),
    );
    compiled.made_from = Some(done.job);
    Ok(compiled)
}
