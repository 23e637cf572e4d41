//! Compiling one recipe into a lock, in stages, one file each: [`resolve`] the recipe
//! over the catalog's universe, [`fetch`] the archives of what the host lacks,
//! [`gather`] the chosen packages' entries and dpkg records, [`stage`] them unpacked in
//! scratch, [`configure`] them with their own maintainer scripts, [`capture`] what
//! configuration made (its bytes into the [`Spool`]), [`assemble`] the lock with the machine files and the group's own
//! files, [`check`] it as outputs will, and [`store`] it with its bytes. [`removes`]
//! tells of the `remove` statements that removed nothing, and [`read_once`] keeps what
//! one recipe read (archives, scans of the host) for the others. Staging, configuring and
//! capturing are one job ([`as_root`]), whose tree the repository keeps: a later job
//! with the same inputs takes it instead of running the scripts again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::lock::LockedPackage;
use crate::progress::Reporter;
use crate::resolve::Universe;
use crate::source::accounts::Accounts;
use crate::source::dpkg::catalog::Catalog;
use crate::system;
use crate::workspace::Recipe;
use error::Result;

mod altered;
mod apt_sources;
mod as_root;
mod assemble;
mod capture;
mod check;
mod configure;
mod error;
pub mod extra;
mod fetch;
pub(crate) mod fingerprint;
mod gather;
mod in_memory;
mod jobs;
mod kept;
mod read_once;
mod removes;
mod resolve;
pub(crate) mod rpm;
mod setup;
mod stage;
mod steps;
mod store;

pub use altered::AlteredError;
pub use as_root::Configurations;
pub use as_root::serve as serve_configure_job;
pub use capture::CaptureError;
pub use check::UnwritableTree;
pub use configure::ConfigureError;
pub use error::{CompileError, OwnerKind};
pub use jobs::{Batch, compile_all};
pub use read_once::ReadOnce;
pub use removes::Removes;
pub use resolve::UnwantedKernel;
pub use rpm::HostDrift;
pub use setup::SetupError;
pub use store::{Compiled, Spool};

use assemble::Configured;
use gather::Gathered;

/// Where a compile reads and fetches.
pub struct Settings {
    /// The root under which host packages and files are read.
    pub sysroot: PathBuf,
    /// Where archives fetched from apt's lists are kept (`store/pool`).
    pub pool_dir: PathBuf,
    /// Forbid fetching: a package known only from apt's lists is an error.
    pub offline: bool,
    /// Where the configure stage stages trees (`store/`).
    pub scratch: PathBuf,
    /// The package manager whose packages the locks hold.
    pub backend: crate::lock::Backend,
    /// Where the stages tell their progress.
    pub report: Reporter,
}

/// A recipe compiled up to its configure job, which [`Configurations::begin`] may run
/// while the next recipe is prepared: [`finish`] takes its tree and assembles the lock.
pub struct Prepared<'r> {
    recipe: &'r Recipe,
    /// What its stages are reported as.
    subject: String,
    resolved: resolve::Resolved,
    /// The archives taken from apt's lists.
    downloaded: Vec<PathBuf>,
    /// The chosen packages' files.
    tree: gather::Tree,
    /// The lock's packages.
    packages: Vec<LockedPackage>,
    /// The group's own requests.
    setup: setup::Requests,
    /// Where the tree's system files come from.
    system: System,
}

/// What a prepared tree's system files come from.
enum System {
    /// Its packages' scripts, run by this job, begun as that.
    Configured(Box<as_root::Job>, as_root::Begun),
    /// Nothing runs (a closure without dpkg): these, around the unpacked packages.
    Unpacked(system::Generated),
}

/// Resolves, fetches and gathers one recipe (reading only what `read` lacks), and makes
/// the job that configures its tree, begun in `configurations`.
pub fn prepare<'r>(
    settings: &Settings,
    recipe: &'r Recipe,
    catalog: &Catalog,
    universe: &Universe,
    read: &ReadOnce,
    configurations: &Configurations,
) -> Result<Prepared<'r>> {
    let subject = subject(recipe);
    let stage = settings.report.stage(&subject, "resolve");
    let resolved = resolve::resolve(settings, recipe, catalog, universe, read)?;
    stage.done(format_args!("{} packages", resolved.built().chosen.len()));
    let stage = settings.report.stage(&subject, "fetch");
    let fetched = fetch::fetch(
        settings,
        catalog,
        resolved.built(),
        !recipe.paths.is_empty(),
        read,
        &stage,
    )?;
    stage.done(format_args!("{} archives", fetched.archives.len()));
    let mut stage = settings.report.stage(&subject, "gather");
    let gathered = gather::gather(
        &settings.sysroot,
        catalog,
        &fetched,
        read,
        &stage.progress(),
    )?;
    stage.done(format_args!("{} files", gathered.tree.entries.len()));
    let packages = resolved.packages(universe);
    let tree = &gathered.tree;
    let has = |path: &str| tree.entry(path).is_some();
    let dpkg = gathered.records.iter().any(|r| r.name == "dpkg");
    let setup = setup::requests(recipe, assemble::machine(recipe), has, dpkg)?;
    // A tree with dpkg is configured by its packages' own scripts; one without (a
    // hand-made package set) has no dpkg to run them, and is locked as unpacked.
    let system = if dpkg {
        let asked = ToConfigure {
            packages: packages.clone(),
            purge: &resolved.purge,
            needs: configure::needs(universe, resolved.built()),
            setup: &setup,
            spool: configurations.spool().dir(),
        };
        let job = configure_job(settings, recipe, catalog, &fetched, &gathered, asked)?;
        let begun = configurations.begin(&job)?;
        System::Configured(Box::new(job), begun)
    } else {
        System::Unpacked(unpacked(
            settings,
            catalog,
            &gathered,
            system::Unpacked::No,
        )?)
    };
    let tree = gathered.tree;
    Ok(Prepared {
        recipe,
        subject,
        resolved,
        downloaded: fetched.downloaded,
        tree,
        packages,
        setup,
        system,
    })
}

/// Takes `prepared`'s configured tree from `configurations` (waiting for its job), if
/// it has one, and assembles the lock. `accounts` are the host's, which owners of an
/// unconfigured tree's statements name.
pub fn finish(
    settings: &Settings,
    prepared: Prepared,
    accounts: &Accounts,
    configurations: &Configurations,
) -> Result<Compiled> {
    let Prepared {
        recipe,
        subject,
        resolved,
        downloaded,
        mut tree,
        packages,
        setup,
        system,
    } = prepared;
    let (mut configured, made_from) = match system {
        System::Configured(job, begun) => {
            let (done, blobs) = configured_tree(settings, &subject, *job, &begun, configurations)?;
            let configured = Configured {
                entries: done.captured.entries,
                system: Vec::new(),
                blobs,
                spooled: done.captured.spooled,
                script_keys: done.captured.keys,
                accounts: done.accounts,
                warnings: done.warnings,
                took: done.took,
            };
            (configured, Some(done.job))
        }
        System::Unpacked(system) => {
            // Taken, not copied: from here on assemble reads only the tree's bytes, and
            // a copy of every entry is a large share of a big lock's peak memory.
            let unconfigured = Configured {
                entries: std::mem::take(&mut tree.entries),
                system: system.entries,
                blobs: system.blobs,
                spooled: Vec::new(),
                script_keys: Vec::new(),
                accounts: accounts.clone(),
                took: None,
                warnings: vec![format!(
                    "group {} is not configured: its closure has no dpkg",
                    recipe.group
                )],
            };
            (unconfigured, None)
        }
    };
    let removes = Removes::new(recipe, &resolved.locked.idle_removes);
    let mut warnings = resolved.warnings;
    warnings.extend(setup.warnings);
    warnings.append(&mut configured.warnings);
    let took = configured.took;
    let stage = settings.report.stage(&subject, "assemble");
    let spool = configurations.spool();
    let assembled = assemble::assemble(settings, recipe, packages, configured, &tree, spool)?;
    check::check(&assembled.lock)?;
    stage.done(format_args!("{} files", assembled.lock.files.len()));
    warnings.extend(assembled.warnings);
    warnings.extend(tree.warnings);
    let mut compiled = Compiled::new(
        assembled.lock,
        assembled.blobs,
        assembled.spooled,
        tree.missing,
        warnings,
        took,
        removes,
    );
    compiled.downloaded = downloaded;
    compiled.made_from = made_from;
    Ok(compiled)
}

/// What a recipe's stages are reported as: `compile GROUP[FLAVOR]`, by the flavor's
/// name when it has one.
pub(crate) fn subject(recipe: &Recipe) -> String {
    let flavor = (recipe.flavor.name.clone()).unwrap_or_else(|| recipe.flavor.canonical());
    format!("compile {}[{flavor}]", recipe.group)
}

/// What the configure stage is asked besides the tree.
struct ToConfigure<'a> {
    /// The lock's packages.
    packages: Vec<LockedPackage>,
    /// The packages purged once everything is configured.
    purge: &'a [String],
    /// What decides when each package is configured, by name.
    needs: HashMap<String, configure::Needs>,
    /// The group's own requests.
    setup: &'a setup::Requests,
    /// Where capture puts the bytes configuration makes.
    spool: &'a Path,
}

/// The configure stage of `subject`, for dpkg and rpm alike: the tree of `job` (begun
/// as `begun`) taken from `configurations`, and `job`'s own blobs, which it needs
/// besides the ones configuring made (in the spool).
fn configured_tree(
    settings: &Settings,
    subject: &str,
    job: as_root::Job,
    begun: &as_root::Begun,
    configurations: &Configurations,
) -> Result<(as_root::Done, Vec<Vec<u8>>)> {
    let stage = settings.report.stage(subject, "configure");
    let done = configurations.get(begun, &job)?;
    // A tree another flavor or compile configured is taken as it was.
    stage.done(if done.took.is_some() { "" } else { "reused" });
    Ok((done, job.blobs))
}

/// The job that stages the chosen packages unpacked, runs their maintainer scripts
/// (then purges `purge`) and captures the configured tree.
fn configure_job(
    settings: &Settings,
    recipe: &Recipe,
    catalog: &Catalog,
    fetched: &fetch::Fetched,
    gathered: &Gathered,
    asked: ToConfigure,
) -> Result<as_root::Job> {
    let ToConfigure {
        packages,
        purge,
        needs,
        setup,
        spool,
    } = asked;
    let system = unpacked(settings, catalog, gathered, system::Unpacked::Yes)?;
    let mut parts = assemble::parts(
        recipe,
        settings.backend,
        packages,
        gathered.tree.entries.clone(),
        system.entries,
    )?;
    // The group's excludes apply to the configured tree, when its lock is assembled;
    // the scripts find every folder where the packages put it.
    parts.excludes = parts.excludes.keeping_directories();
    let staging = crate::lock::assemble(parts)?;
    let records = &gathered.records;
    let dpkg_version = (records.iter())
        .find(|r| r.name == "dpkg")
        .and_then(|dpkg| {
            dpkg.stanza
                .lines()
                .find_map(|l| l.strip_prefix("Version: "))
        })
        .unwrap_or_default();
    Ok(as_root::Job {
        scratch: settings.scratch.clone(),
        spool: spool.to_path_buf(),
        sysroot: settings.sysroot.clone(),
        pools: fetched.pools(),
        staging,
        blobs: system.blobs,
        units: setup::unit_files(recipe),
        scripts: as_root::Scripts::Dpkg {
            packages: (records.iter())
                .map(|r| configure::Unpacked {
                    name: r.name.to_string(),
                    arch: r.arch.to_string(),
                    multi_arch_same: r.multi_arch_same,
                    needs: needs.get(r.name).cloned().unwrap_or_default(),
                })
                .collect(),
            env: configure::Environment {
                source_date_epoch: 0,
                dpkg_version: dpkg_version.to_string(),
                preseeds: setup.preseeds.clone(),
                asked: setup.asked.clone(),
                purge: purge.to_vec(),
            },
        },
    })
}

/// The dpkg database (each package `unpacked` or not) and `/dev` around the packages'
/// files, with the packaged bytes of the conffiles the host modified.
fn unpacked(
    settings: &Settings,
    catalog: &Catalog,
    gathered: &Gathered,
    unpacked: system::Unpacked,
) -> Result<system::Generated> {
    let tree = &gathered.tree;
    let mut system = gather::unpacked_system(
        catalog,
        &gathered.records,
        tree,
        &settings.sysroot,
        unpacked,
    )?;
    system
        .blobs
        .extend((tree.pristine.iter()).filter_map(|p| tree.contents.get(p).cloned()));
    Ok(system)
}
