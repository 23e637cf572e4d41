//! The operations behind each CLI command: they tie the language, sources, resolver,
//! lock, repository and materialiser together and write what the user reads.

use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::bundle;
use crate::compile::{self, Compiled, Configurations, Settings, compile_recipe};
use crate::error::{Error, Result, excerpt};
use crate::gc::{self, StoreLock, Swept};
use crate::history::{self, HistoryError, LogEntry, Reference};
use crate::lang::Flavor;
use crate::lock::Backend;
use crate::lock::{FileEntry, Lock, LockedPackage, Reason};
use crate::materialise::{self, Format, Sources};
use crate::registry;
use crate::repo::{BlobStore, Located, RepoError, Repository, StoredLock};
use crate::resolve::rpm::RpmUniverse;
use crate::resolve::{Prefer, Universe};
use crate::sbom::{self, Sbom};
use crate::source::accounts::Accounts;
use crate::source::dpkg::DpkgDatabase;
use crate::source::dpkg::apt::AptLists;
use crate::source::dpkg::catalog::{Catalog, Stale};
use crate::source::dpkg::pool::Pool;
use crate::source::rpm::catalog::RpmCatalog;
use crate::workspace::{Recipe, Workspace};

/// Where a command works: the workspace, the repository file and the host root.
pub struct Context {
    /// The workspace holding `groups/`, `flavors/` and `store/`.
    pub workspace: Workspace,
    /// The SQLite repository file.
    pub repo_path: PathBuf,
    /// The root under which host packages and files are read.
    pub sysroot: PathBuf,
}

impl Context {
    /// Finds the workspace (explicit, or upward from the current folder) and the repository.
    pub fn new(workspace: Option<&Path>, repo: Option<&Path>, sysroot: &Path) -> Result<Context> {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            path: PathBuf::from("."),
            source,
        })?;
        let workspace = Workspace::discover(&cwd, workspace)?;
        let repo_path = match repo {
            Some(path) => path.to_path_buf(),
            None => workspace.store_dir().join("repo.sqlite"),
        };
        Ok(Context {
            workspace,
            repo_path,
            sysroot: sysroot.to_path_buf(),
        })
    }

    fn pool_dir(&self) -> PathBuf {
        self.workspace.store_dir().join("pool")
    }

    /// The folders of archives, by preference: `store/pool`, apt's cache, then the
    /// `--pool` folders (a `file://` URL, as a repository's base URL is written, names
    /// its folder).
    fn pool_dirs(&self, more: &[PathBuf]) -> Vec<PathBuf> {
        let mut dirs = vec![self.pool_dir(), self.sysroot.join("var/cache/apt/archives")];
        dirs.extend(more.iter().map(|dir| {
            let text = dir.to_string_lossy();
            text.strip_prefix("file://")
                .map_or_else(|| dir.clone(), PathBuf::from)
        }));
        dirs
    }

    /// Where materialise, boot and verify take bytes from: the host, the pool folders
    /// (with `more`), the blob store.
    fn sources(&self, more: &[PathBuf]) -> Sources {
        Sources {
            sysroot: self.sysroot.clone(),
            pool: self.pool_dirs(more),
            blobs: Some(self.blobs_dir()),
        }
    }

    fn blobs_dir(&self) -> PathBuf {
        self.workspace.store_dir().join("blobs")
    }

    /// What no output may replace besides its sources: the workspace, the store and
    /// the repository, wherever `--repo` put it.
    fn protected(&self) -> materialise::Protected {
        materialise::Protected {
            workspace: Some(self.workspace.root().to_path_buf()),
            store: Some(self.workspace.store_dir()),
            repo: Some(self.repo_path.clone()),
        }
    }

    /// Opens the repository for reading: a missing one is an error, not a new empty file.
    fn existing_repo(&self) -> Result<Repository> {
        Ok(Repository::open_read_only(&self.repo_path)?)
    }

    /// Loads the lock a command names, choosing the only group when none is given.
    fn load(&self, repo: &Repository, lookup: &Lookup) -> Result<(StoredLock, Flavor)> {
        let (group, flavor) = self.name(repo, lookup)?;
        let stored = repo.load(&group, &flavor.canonical(), lookup.version.as_deref())?;
        Ok((stored, flavor))
    }

    /// The group and the flavor a command names, choosing the only group when none is
    /// given.
    fn name(&self, repo: &Repository, lookup: &Lookup) -> Result<(String, Flavor)> {
        let group = match &lookup.group {
            Some(group) => group.clone(),
            None => only_group(repo)?,
        };
        Ok((group, self.workspace.flavor(&lookup.flavor)?))
    }

    /// Loads the lock a [`Reference`] names. Its flavor is the reference's own, else
    /// `flavor` (`--flavor`), else the only one its group was compiled for.
    fn refer(&self, repo: &Repository, text: &str, flavor: Option<&str>) -> Result<StoredLock> {
        let (reference, canonical) = self.resolve(repo, text, flavor)?;
        let version = reference.version.as_deref();
        Ok((repo.load(&reference.group, &canonical, version)).map_err(unknown(text))?)
    }

    /// The [`Reference`] `text` parsed, with the canonical flavor it names (see
    /// [`Context::refer`]).
    fn resolve(
        &self,
        repo: &Repository,
        text: &str,
        flavor: Option<&str>,
    ) -> Result<(Reference, String)> {
        let reference: Reference = text.parse()?;
        let canonical = match reference.flavor.as_deref().or(flavor) {
            Some(spec) => self.workspace.flavor(spec)?.canonical(),
            None => {
                let revisions = (repo.history(&reference.group, None)).map_err(unknown(text))?;
                let known: BTreeSet<String> = revisions.into_iter().map(|r| r.flavor).collect();
                match <[String; 1]>::try_from(Vec::from_iter(known)) {
                    Ok([only]) => only,
                    Err(known) => {
                        return Err(HistoryError::SeveralFlavors {
                            reference: text.to_string(),
                            group: reference.group,
                            known,
                        }
                        .into());
                    }
                }
            }
        };
        Ok((reference, canonical))
    }
}

/// What the repository said of the reference `text`, naming it.
fn unknown(text: &str) -> impl FnOnce(RepoError) -> HistoryError + '_ {
    move |source| HistoryError::Unknown {
        reference: text.to_string(),
        source: Box::new(source),
    }
}

fn only_group(repo: &Repository) -> Result<String> {
    let groups = repo.groups()?;
    match groups.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::Usage(
            "the repository holds no group yet: run `appliance compile` first".into(),
        )),
        many => Err(Error::Usage(format!(
            "the repository holds several groups ({}): name one",
            many.join(", ")
        ))),
    }
}

/// Which stored lock a command is about.
pub struct Lookup {
    /// The group; `None` means the repository's only group.
    pub group: Option<String>,
    /// A flavor name or canonical flavor string.
    pub flavor: String,
    /// `1.0` or `1.0-2`; `None` means the newest.
    pub version: Option<String>,
}

/// What `appliance compile` was asked.
pub struct CompileOptions {
    /// Group files or names.
    pub groups: Vec<String>,
    /// Flavors; empty means each group's own `flavors` list.
    pub flavors: Vec<String>,
    /// More folders of `.deb` or `.rpm` archives, or createrepo_c repositories (`--pool DIR`).
    pub pools: Vec<PathBuf>,
    /// `--backend`: the package manager, instead of the sysroot's own.
    pub backend: Option<Backend>,
    /// Never fetch (`--offline`).
    pub offline: bool,
    /// `--prefer`: replaces every group's own `prefer` statement.
    pub prefer: Option<Prefer>,
    /// `--verbose`: every stale package, not the first few.
    pub verbose: bool,
}

/// How many stale packages the one-line report names.
const STALE_SHOWN: usize = 5;

/// The warning for a lock's packages that are older than apt's candidates: one line
/// naming the first few, or with `every`, a line for each.
fn stale_report(stale: &[Stale], every: bool) -> Option<String> {
    if stale.is_empty() {
        return None;
    }
    let security = stale.iter().filter(|s| s.security).count();
    let row = |s: &Stale| {
        let mark = if s.security { " (security)" } else { "" };
        format!(
            "{} {} -> {}{mark}",
            excerpt(&s.name),
            excerpt(&s.version),
            excerpt(&s.candidate)
        )
    };
    let head = format!(
        "{} locked packages are older than apt's lists' candidates ({security} security updates; \
         compile --prefer newest takes the candidates)",
        stale.len()
    );
    Some(if every {
        let rows: Vec<String> = stale.iter().map(|s| format!("\n  {}", row(s))).collect();
        format!("{head}:{}", rows.concat())
    } else {
        let shown: Vec<String> = stale.iter().take(STALE_SHOWN).map(row).collect();
        let more = match stale.len().saturating_sub(STALE_SHOWN) {
            0 => String::new(),
            n => format!(", and {n} more (-v lists them)"),
        };
        format!("{head}: {}{more}", shown.join(", "))
    })
}

/// Compiles every group for every flavor and stores the locks.
pub fn compile(ctx: &Context, opts: &CompileOptions, out: &mut dyn Write) -> Result<()> {
    let ws = &ctx.workspace;
    // Validate every group and flavor before reading the host or touching the repository.
    let mut jobs = Vec::new();
    for spec in &opts.groups {
        let file = ws.group_file(spec)?;
        let def = ws.load_group(&file)?;
        let names = if opts.flavors.is_empty() {
            def.flavors.clone()
        } else {
            opts.flavors.clone()
        };
        if names.is_empty() {
            return Err(Error::Usage(format!(
                "group {} lists no flavors in {}: pass --flavor",
                def.name,
                file.display()
            )));
        }
        for name in names {
            let flavor = ws.flavor(&name)?;
            let mut recipe = ws.recipe(&file, &flavor)?;
            recipe.prefer = opts.prefer.unwrap_or(recipe.prefer);
            jobs.push(recipe);
        }
    }
    // A path that is no repository, or a damaged one, is told before the work (and the
    // downloads into the pool) that could not be stored.
    Repository::check(&ctx.repo_path)?;
    // Until the locks are stored, no sweep may take the archives and blobs they use.
    let _store = StoreLock::shared(ctx.workspace.root())?;
    let backend = match opts.backend {
        Some(backend) => backend,
        None => crate::source::backend::detect(&ctx.sysroot).ok_or_else(|| {
            Error::Usage(format!(
                "{} holds no package database (neither var/lib/dpkg/status nor an rpmdb.sqlite \
                 under usr/lib/sysimage/rpm or var/lib/rpm): pass --backend dpkg or rpm",
                ctx.sysroot.display()
            ))
        })?,
    };
    let settings = Settings {
        sysroot: ctx.sysroot.clone(),
        pool_dir: ctx.pool_dir(),
        offline: opts.offline,
        scratch: ctx.workspace.store_dir(),
        backend,
    };
    let pool_dirs = ctx.pool_dirs(&opts.pools);
    let compiled = match backend {
        Backend::Dpkg => compile_dpkg(ctx, opts, &settings, &pool_dirs, jobs)?,
        Backend::Rpm => compile_rpm(&settings, &pool_dirs, jobs)?,
    };
    // Only now that every lock is made does anything get written.
    let mut repo = Repository::open(&ctx.repo_path)?;
    if repo.adopted() {
        eprintln!(
            "note: repository {} was made by an earlier appliance: marked it as appliance's",
            ctx.repo_path.display()
        );
    }
    let blobs = BlobStore::open(&ctx.blobs_dir())?;
    for c in compiled {
        let stored = c.store(&mut repo, &blobs)?;
        let status = if stored.unchanged {
            "unchanged"
        } else {
            "stored"
        };
        let configured = (c.configured)
            .map(|took| format!(", configured in {:.1} s", took.as_secs_f64()))
            .unwrap_or_default();
        writeln!(
            out,
            "{} {status}: {} packages, {} files, lock {}{configured}",
            c.lock.address(stored.revision),
            c.lock.packages.len(),
            c.lock.files.len(),
            short(&stored.lock_id),
        )
        .map_err(stdout_error)?;
        for warning in &c.warnings {
            eprintln!("warning: {warning}");
        }
        if let Some((package, path)) = c.missing.first() {
            eprintln!(
                "warning: {} paths listed by dpkg are absent on the host and not in the lock (first: {path} of {package})",
                c.missing.len()
            );
        }
    }
    Ok(())
}

/// Compiles `jobs` over the dpkg catalog: the host's dpkg database, the pool's `.deb`
/// archives and apt's lists.
fn compile_dpkg(
    ctx: &Context,
    opts: &CompileOptions,
    settings: &Settings,
    pool_dirs: &[PathBuf],
    jobs: Vec<Recipe>,
) -> Result<Vec<Compiled>> {
    let pool = Pool::scan(pool_dirs)?;
    for (first, other) in pool.conflicts()? {
        let p = &first.package;
        eprintln!(
            "warning: {} and {} both hold {} {} ({}) but differ: the lock takes the first",
            first.path.display(),
            other.path.display(),
            excerpt(&p.name),
            excerpt(&p.version),
            p.arch
        );
    }
    let apt = AptLists::read(&ctx.sysroot)?;
    if let Some(first) = apt.refused.first() {
        eprintln!(
            "warning: apt's lists hold {} stanzas dpkg would refuse; they are left out, \
             and a compile that needs one of their packages fails (the first: {first})",
            apt.refused.len()
        );
    }
    let catalog = Catalog::new(
        DpkgDatabase::read(&ctx.sysroot)?,
        pool,
        apt,
        &ctx.pool_dir(),
    );
    let accounts = Accounts::read(&ctx.sysroot)?;
    let mut universes: HashMap<String, Universe> = HashMap::new();
    let configurations = Configurations::default();
    let mut compiled = Vec::new();
    for recipe in jobs {
        let arch = settings.backend.arch(&recipe.flavor).to_string();
        let universe = universes.entry(arch.clone()).or_insert_with(|| {
            let refused = (catalog.apt.refused_packages())
                .map(|(name, why)| (name, format!("its stanza in apt's lists is refused: {why}")));
            Universe::new(catalog.packages(), &arch).refusing(refused)
        });
        let mut c = compile_recipe(
            settings,
            &recipe,
            &catalog,
            universe,
            &accounts,
            &configurations,
        )?;
        let locked = (c.lock.packages.iter())
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str()));
        c.warnings
            .extend(stale_report(&catalog.stale(locked), opts.verbose));
        compiled.push(c);
    }
    Ok(compiled)
}

/// Compiles `jobs` over the RPM catalog: the sysroot's rpmdb and the pool folders'
/// `.rpm` archives and createrepo_c repositories.
fn compile_rpm(
    settings: &Settings,
    pool_dirs: &[PathBuf],
    jobs: Vec<Recipe>,
) -> Result<Vec<Compiled>> {
    let catalog = RpmCatalog::read(&settings.sysroot, pool_dirs)?;
    if let Some((path, why)) = catalog.unreadable.first() {
        eprintln!(
            "warning: {} .rpm files in the pool folders cannot be read and are left out (the first: {}: {why})",
            catalog.unreadable.len(),
            path.display()
        );
    }
    let configurations = Configurations::default();
    let mut universes: HashMap<String, RpmUniverse> = HashMap::new();
    let mut compiled = Vec::new();
    for recipe in jobs {
        let arch = settings.backend.arch(&recipe.flavor).to_string();
        let universe = (universes.entry(arch.clone()))
            .or_insert_with(|| RpmUniverse::new(catalog.packages(), &arch));
        compiled.push(compile::rpm_recipe(
            settings,
            &recipe,
            &catalog,
            universe,
            &configurations,
        )?);
    }
    Ok(compiled)
}

/// What `appliance materialise` was asked.
pub struct MaterialiseOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// `--format`.
    pub format: Option<String>,
    /// `--disk`: an image's disk kind.
    pub disk: Option<String>,
    /// `-o OUT`; default `GROUP-FLAVOR` in the current folder.
    pub output: Option<PathBuf>,
    /// `--if-newer`.
    pub if_newer: bool,
    /// `--lock FILE`.
    pub lock_file: Option<PathBuf>,
    /// `--force`: replace an existing OUT that appliance did not make.
    pub force: bool,
    /// More folders of `.deb` archives (`--pool DIR`).
    pub pools: Vec<PathBuf>,
}

/// Materialises a stored lock into an output of the chosen format.
pub fn materialise(ctx: &Context, opts: &MaterialiseOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (group, flavor) = ctx.name(&repo, &opts.lookup)?;
    let output = opts.output.clone().unwrap_or_else(|| {
        let flavor_name = flavor.name.clone().unwrap_or_else(|| "custom".into());
        PathBuf::from(format!("{group}-{flavor_name}"))
    });
    let format = choose_format(
        opts.format.as_deref(),
        opts.disk.as_deref(),
        &flavor,
        &output,
    )?;
    let options = materialise::Options {
        if_newer: opts.if_newer,
        lock_file: opts.lock_file.clone(),
        mtime: source_date_epoch()?,
        force: opts.force,
        protected: ctx.protected(),
    };
    let sources = ctx.sources(&opts.pools);
    // A current output is told from the lock id and the stamp alone: reading the lock's
    // thousands of rows would take longer than the whole check. An OpenVZ template
    // named after the lock's os-release needs the lock to know its own name.
    let named = !matches!(format, Format::Openvz(_))
        || opts
            .output
            .as_ref()
            .is_some_and(|o| !o.is_dir() && !names_folder(o));
    if opts.if_newer && named {
        let located =
            repo.locate_id(&group, &flavor.canonical(), opts.lookup.version.as_deref())?;
        if materialise::is_current(&located.lock_id, &sources, format, &output, options.mtime) {
            return up_to_date(out, &located.address(), &output);
        }
    }
    let stored = repo.load(&group, &flavor.canonical(), opts.lookup.version.as_deref())?;
    // An OpenVZ template goes by the name vzctl knows it by, in the current folder or
    // in the folder OUT names (vzctl's template cache). OUT ending in `/` names a folder
    // even before it exists, and it is made.
    let output = match (format, &opts.output) {
        (Format::Openvz(compression), None) => PathBuf::from(materialise::template_name(
            &stored.lock,
            &sources,
            compression,
        )?),
        (Format::Openvz(compression), Some(dir)) if dir.is_dir() || names_folder(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
            dir.join(materialise::template_name(
                &stored.lock,
                &sources,
                compression,
            )?)
        }
        _ => output,
    };
    let outcome = materialise::materialise(
        &stored.lock,
        &stored.lock_id,
        &sources,
        format,
        &output,
        &options,
    )?;
    for warning in &outcome.warnings {
        eprintln!("warning: {warning}");
    }
    let address = stored.lock.address(stored.revision);
    if !outcome.built {
        return up_to_date(out, &address, &output);
    }
    // xen.cfg names the image's files relative to its folder, where xl must run.
    let start = match format {
        Format::Image(_) if flavor.flag("xen") => format!(
            "; on a Xen host: cd {} && xl create xen.cfg",
            output.display()
        ),
        _ => String::new(),
    };
    writeln!(
        out,
        "{address} -> {}: {} entries, {} bytes{start}",
        output.display(),
        outcome.files,
        outcome.bytes
    )
    .map_err(stdout_error)
}

/// Whether OUT was written as a folder (`out/`), whether or not it exists yet.
fn names_folder(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/")
}

/// Tells that `output` already holds lock `address`.
fn up_to_date(out: &mut dyn Write, address: &str, output: &Path) -> Result<()> {
    writeln!(out, "{address} -> {}: up to date", output.display()).map_err(stdout_error)
}

/// What `appliance boot` was asked.
pub struct BootOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// `--disk`: the image's disk kind (default raw).
    pub disk: Option<String>,
    /// `--accel`: auto, kvm or tcg.
    pub accel: String,
    /// `--memory`, in MiB.
    pub memory_mb: u32,
    /// What the guest runs instead of its default program (after `--`).
    pub args: Vec<String>,
    /// `--forward HOST:GUEST`, as given.
    pub forwards: Vec<String>,
}

/// Materialises the lock's image into `store/images/GROUP-FLAVOR` (unless it is current)
/// and boots it under qemu on this terminal; returns qemu's exit code.
pub fn boot(ctx: &Context, opts: &BootOptions, out: &mut dyn Write) -> Result<i32> {
    let accel = crate::boot::Accel::parse(&opts.accel)?.resolve()?;
    let forwards = crate::boot::Forward::parse_all(&opts.forwards)?;
    let repo = ctx.existing_repo()?;
    let (stored, flavor) = ctx.load(&repo, &opts.lookup)?;
    let group = &stored.lock.group;
    let flavor_name = flavor.name.clone().unwrap_or_else(|| "custom".into());
    let images = gc::images_dir(&ctx.workspace.store_dir());
    let name = format!("{group}-{flavor_name}");
    let output = images.join(&name);
    if flavor.flag("xen") {
        return Err(Error::Usage(format!(
            "flavor {flavor_name} is a Xen guest, which qemu does not boot: build it with \
             `appliance materialise {group} --flavor {flavor_name} --format image -o OUT` and \
             start it on a Xen host with `cd OUT && xl create xen.cfg`"
        )));
    }
    let disk = match opts.disk.as_deref() {
        Some(name) => materialise::Disk::parse(name)?,
        None => materialise::Disk::Raw,
    };
    let options = materialise::Options {
        if_newer: true,
        lock_file: Some(gc::image_lock(&images, &name)),
        mtime: source_date_epoch()?,
        force: false,
        protected: ctx.protected(),
    };
    let sources = ctx.sources(&[]);
    std::fs::create_dir_all(&images).map_err(|source| Error::Io {
        path: images.clone(),
        source,
    })?;
    let outcome = materialise::materialise(
        &stored.lock,
        &stored.lock_id,
        &sources,
        Format::Image(disk),
        &output,
        &options,
    )?;
    for warning in &outcome.warnings {
        eprintln!("warning: {warning}");
    }
    let state = if outcome.built { "built" } else { "up to date" };
    writeln!(
        out,
        "{} -> {}: image {state}, booting",
        stored.lock.address(stored.revision),
        output.display()
    )
    .and_then(|()| out.flush())
    .map_err(stdout_error)?;
    eprintln!("boot: {accel}");
    let guest = crate::boot::Guest {
        image: output,
        disk,
        accel,
        memory_mb: opts.memory_mb,
        args: opts.args.clone(),
        forwards,
    };
    Ok(guest.run(out)?)
}

/// `--format` wins; then the flavor's own format, when OUT's name fits it (an OpenVZ
/// template is a `.tar.gz` or `.tar.xz`, the other formats are folders); then a tar
/// extension on OUT; then a chroot. `--disk` sets an image's disk kind and goes with no
/// other format.
fn choose_format(
    explicit: Option<&str>,
    disk: Option<&str>,
    flavor: &Flavor,
    output: &Path,
) -> Result<Format> {
    let by_extension = Format::choose(None, output)?;
    let fits = |name: &str| match Format::choose(Some(name), output) {
        Ok(Format::Openvz(_)) => true,
        Ok(_) => by_extension == Format::Chroot,
        Err(_) => false,
    };
    let by_name = explicit.or_else(|| flavor.format.as_deref().filter(|f| fits(f)));
    let mut format = Format::choose(by_name, output)?;
    if let Some(disk) = disk {
        match &mut format {
            Format::Image(kind) => *kind = materialise::Disk::parse(disk)?,
            other => {
                return Err(Error::Usage(format!(
                    "--disk goes with the image format, not {}",
                    other.describe().0
                )));
            }
        }
    }
    Ok(format)
}

/// The mtime of entries the lock does not date: `SOURCE_DATE_EPOCH` when set (as
/// reproducible-builds.org defines it), else 0, so the same lock always gives the same
/// bytes.
fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH must be a whole number of seconds, not `{text}`"
            ))
        }),
        Err(_) => Ok(0),
    }
}

/// Compares the host with a stored lock: prints every path that differs (with `json`, as
/// a JSON array) and fails when any does.
pub fn verify(
    ctx: &Context,
    lookup: &Lookup,
    pools: &[PathBuf],
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, lookup)?;
    let sources = ctx.sources(pools);
    let found = materialise::verify(&stored.lock, &sources)?;
    let address = stored.lock.address(stored.revision);
    if json {
        let rows: Vec<_> = (found.differences.iter())
            .map(|d| {
                serde_json::json!({
                    "path": d.path, "origin": d.origin, "package": d.package,
                    "problems": d.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "supplied_by": d.fallback.as_ref().and_then(|f| f.as_ref().ok()).map(ToString::to_string),
                    "unsupplied": d.fallback.as_ref().and_then(|f| f.as_ref().err()),
                })
            })
            .collect();
        write_json(out, &rows)?;
    } else {
        for difference in &found.differences {
            writeln!(out, "{difference}").map_err(stdout_error)?;
        }
    }
    if found.differences.is_empty() {
        if !json {
            writeln!(
                out,
                "{address}: all {} host paths match the lock",
                found.checked
            )
            .map_err(stdout_error)?;
        }
        return Ok(());
    }
    Err(Error::HostDrift {
        address,
        differ: found.differences.len(),
        checked: found.checked,
    })
}

/// Lists every stored lock revision.
pub fn list(ctx: &Context, json: bool, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    // The one command that shows the whole repository checks all of it.
    repo.check_pages()?;
    let revisions = repo.revisions()?;
    if json {
        let rows: Vec<_> = revisions
            .iter()
            .map(|r| {
                serde_json::json!({
                    "group": r.group, "version": r.version, "revision": r.revision,
                    "flavor": r.flavor, "lock_id": r.lock_id, "created": r.created,
                    "packages": r.packages, "files": r.files,
                })
            })
            .collect();
        return write_json(out, &rows);
    }
    for r in &revisions {
        writeln!(
            out,
            "{}={}-{}{}  {}  {} packages  {} files",
            r.group,
            r.version,
            r.revision,
            r.flavor,
            short(&r.lock_id),
            r.packages,
            r.files
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

/// What `appliance log` was asked.
pub struct LogOptions {
    /// The group; `None` means the repository's only group.
    pub group: Option<String>,
    /// Only this flavor's revisions (a name or canonical string); `None`: every flavor's.
    pub flavor: Option<String>,
    /// Print the revisions as JSON.
    pub json: bool,
}

/// Prints a group's revisions, newest first, each with what changed from the revision
/// stored before it for the same flavor.
pub fn log(ctx: &Context, opts: &LogOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let group = match &opts.group {
        Some(group) => group.clone(),
        None => only_group(&repo)?,
    };
    let flavor = match &opts.flavor {
        Some(spec) => Some(ctx.workspace.flavor(spec)?.canonical()),
        None => None,
    };
    let mut previous: HashMap<String, StoredLock> = HashMap::new();
    let mut entries = Vec::new();
    for r in repo.history(&group, flavor.as_deref())? {
        let spec = format!("{}-{}", r.version, r.revision);
        let stored = repo.load(&r.group, &r.flavor, Some(&spec))?;
        let flavor = r.flavor.clone();
        entries.push(LogEntry::new(r, &stored, previous.get(&flavor)));
        previous.insert(flavor, stored);
    }
    entries.reverse();
    if opts.json {
        return write_json(out, &entries);
    }
    for e in &entries {
        writeln!(
            out,
            "{}  {}  {}  {} packages  {} files  {}",
            e.address,
            e.time.as_deref().unwrap_or("-"),
            short(&e.revision.lock_id),
            e.revision.packages,
            e.revision.files,
            e.summary
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

/// What `appliance diff` was asked.
pub struct DiffOptions {
    /// The old lock's reference ([`Reference`]).
    pub from: String,
    /// The new lock's reference.
    pub to: String,
    /// The flavor of a reference that names none (a name or canonical string).
    pub flavor: Option<String>,
    /// List every path new, gone or changed.
    pub files: bool,
    /// Print the diff as JSON.
    pub json: bool,
}

/// Prints what changed from one stored lock to another.
pub fn diff(ctx: &Context, opts: &DiffOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let from = ctx.refer(&repo, &opts.from, opts.flavor.as_deref())?;
    let to = ctx.refer(&repo, &opts.to, opts.flavor.as_deref())?;
    let diff = history::diff(&from.lock, &to.lock);
    if opts.json {
        return write_json(out, &history::diff_json(&from, &to, &diff, opts.files));
    }
    let text = history::diff_text(&from, &to, &diff, opts.files);
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// What `appliance export` was asked.
pub struct ExportOptions {
    /// The lock's reference ([`Reference`]).
    pub reference: String,
    /// The flavor of a reference that names none.
    pub flavor: Option<String>,
    /// The bundle file.
    pub output: PathBuf,
    /// More folders of archives to take packages from (`--pool DIR`).
    pub pools: Vec<PathBuf>,
    /// Replace OUT even when appliance did not make it.
    pub force: bool,
    /// Print what was written as JSON.
    pub json: bool,
}

/// Writes a stored lock and the bytes it needs as one bundle file.
pub fn export(ctx: &Context, opts: &ExportOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let stored = ctx.refer(&repo, &opts.reference, opts.flavor.as_deref())?;
    let options = bundle::ExportOptions {
        out: opts.output.clone(),
        force: opts.force,
    };
    let exported = bundle::export(
        &stored,
        &ctx.sources(&opts.pools),
        &ctx.protected(),
        &options,
    )?;
    for warning in &exported.warnings {
        eprintln!("warning: {warning}");
    }
    let address = stored.lock.address(stored.revision);
    if opts.json {
        let value = serde_json::json!({
            "address": address, "lock_id": stored.lock_id, "output": opts.output,
            "bytes": exported.bytes, "manifest": exported.manifest,
            "archives": exported.archives, "blobs": exported.blobs,
            "downloaded": exported.downloaded,
        });
        return write_json(out, &value);
    }
    let downloaded = match exported.downloaded.len() {
        0 => String::new(),
        n => format!(" ({n} downloaded)"),
    };
    writeln!(
        out,
        "{address} -> {}: {} archives{downloaded}, {} blobs, {} bytes",
        opts.output.display(),
        exported.archives,
        exported.blobs,
        exported.bytes
    )
    .map_err(stdout_error)
}

/// Checks a bundle and stores its lock, blobs and archives.
pub fn import(ctx: &Context, file: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    // It writes blobs and archives before their lock is stored, as compile does: a
    // sweep meanwhile would take them for garbage.
    let _store = StoreLock::shared(ctx.workspace.root())?;
    let imported = bundle::import(file, &ctx.workspace.store_dir(), &ctx.repo_path)?;
    if json {
        return write_json(out, &imported);
    }
    writeln!(out, "{}", stored_line(&imported)).map_err(stdout_error)
}

/// What an import or a pull stored, in one line.
fn stored_line(imported: &bundle::Imported) -> String {
    let status = if imported.unchanged {
        "unchanged"
    } else {
        "stored"
    };
    format!(
        "{} {status}: lock {}, {} archives, {} blobs",
        imported.address,
        short(&imported.lock_id),
        imported.archives,
        imported.blobs
    )
}

/// How `push` and `pull` reach a registry.
pub struct RemoteOptions {
    /// Plain http instead of TLS.
    pub insecure: bool,
    /// More certificate authorities to trust (a PEM file).
    pub ca_file: Option<PathBuf>,
    /// A user name whose password is on standard input; else the docker configuration.
    pub username: Option<String>,
}

impl RemoteOptions {
    /// The connection these options ask for, reading the password now.
    fn connection(&self) -> Result<registry::Connection> {
        let login = match &self.username {
            Some(user) => registry::Login::with_password_from(user, std::io::stdin().lock())?,
            None => registry::Login::docker_config(),
        };
        Ok(registry::Connection {
            insecure: self.insecure,
            ca_file: self.ca_file.clone(),
            login,
        })
    }
}

/// What `appliance push` was asked.
pub struct PushOptions {
    /// The lock's reference ([`Reference`]).
    pub reference: String,
    /// The flavor of a reference that names none.
    pub flavor: Option<String>,
    /// `REGISTRY/REPOSITORY[:TAG]`.
    pub target: String,
    /// More folders of archives to take packages from (`--pool DIR`).
    pub pools: Vec<PathBuf>,
    /// Documents to attach as referrers, each `TYPE=FILE`, after the lock's SBOM.
    pub attach: Vec<String>,
    /// Attach no SBOM of the lock (`--no-sbom`).
    pub no_sbom: bool,
    /// How to reach the registry.
    pub remote: RemoteOptions,
    /// Print what was pushed as JSON.
    pub json: bool,
}

/// Pushes a stored lock's bundle artifact to a registry, and attaches documents to it.
pub fn push(ctx: &Context, opts: &PushOptions, out: &mut dyn Write) -> Result<()> {
    let target = registry::parse_reference(&opts.target)?;
    let attached = (opts.attach.iter())
        .map(|spec| attachment(spec))
        .collect::<Result<Vec<_>>>()?;
    let repo = ctx.existing_repo()?;
    let stored = ctx.refer(&repo, &opts.reference, opts.flavor.as_deref())?;
    let connection = opts.remote.connection()?;
    let sources = ctx.sources(&opts.pools);
    let artifact = bundle::Artifact::of(&stored, &sources)?;
    for warning in artifact.warnings() {
        eprintln!("warning: {warning}");
    }
    // The lock's SPDX SBOM goes with it, so whoever pulls it can audit it first.
    let mut documents = Vec::new();
    if !opts.no_sbom {
        let sbom = Sbom::gather(&stored, &sources, Path::new(&opts.target))?;
        for warning in &sbom.warnings {
            eprintln!("warning: {warning}");
        }
        documents.push(registry::Document {
            artifact_type: SPDX_JSON.to_string(),
            media_type: SPDX_JSON.to_string(),
            bytes: sbom.render(sbom::Format::Spdx),
        });
    }
    documents.extend(attached);
    let pushed = registry::push(&artifact, &stored.lock, target, &connection, &documents)?;
    let address = stored.lock.address(stored.revision);
    if opts.json {
        let value = serde_json::json!({
            "address": address, "lock_id": stored.lock_id, "pushed": pushed,
            "archives": artifact.archives, "blobs": artifact.blobs,
            "downloaded": artifact.downloaded,
        });
        return write_json(out, &value);
    }
    let mut text = format!(
        "{address} -> {} ({}): {} blobs uploaded ({} bytes), {} already there ({} bytes)\n",
        pushed.reference,
        pushed.digest,
        pushed.uploaded.blobs,
        pushed.uploaded.bytes,
        pushed.skipped.blobs,
        pushed.skipped.bytes
    );
    for referrer in &pushed.referrers {
        let listed = match &referrer.fallback_tag {
            Some(tag) => format!("listed under tag {tag}"),
            None => "listed by the registry".to_string(),
        };
        text += &format!(
            "  referrer {} ({}): {listed}\n",
            referrer.digest, referrer.artifact_type
        );
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// The media type of an SPDX JSON document, as SPDX registers it.
const SPDX_JSON: &str = "application/spdx+json";

/// A document to attach, from `TYPE=FILE`: TYPE is its artifact type and its layer's
/// media type.
fn attachment(spec: &str) -> Result<registry::Document> {
    let Some((media_type, file)) = spec
        .split_once('=')
        .filter(|(t, f)| t.contains('/') && !f.is_empty())
    else {
        return Err(Error::Usage(format!(
            "--attach {}: write MEDIA_TYPE=FILE, as in application/spdx+json=web.spdx.json",
            excerpt(spec)
        )));
    };
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: PathBuf::from(file),
        source,
    })?;
    Ok(registry::Document {
        artifact_type: media_type.to_string(),
        media_type: media_type.to_string(),
        bytes,
    })
}

/// Pulls a lock's bundle artifact from a registry and stores it as `import` does.
pub fn pull(
    ctx: &Context,
    source: &str,
    remote: &RemoteOptions,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let reference = registry::parse_reference(source)?;
    let connection = remote.connection()?;
    let store = ctx.workspace.store_dir();
    let pulled = registry::pull(reference, &connection, &store, &ctx.repo_path)?;
    if json {
        return write_json(out, &pulled);
    }
    writeln!(
        out,
        "{} ({}) -> {}; {} blobs downloaded ({} bytes)",
        pulled.reference,
        pulled.digest,
        stored_line(&pulled.imported),
        pulled.downloaded.blobs,
        pulled.downloaded.bytes
    )
    .map_err(stdout_error)
}

/// What `appliance sbom` was asked.
pub struct SbomOptions {
    /// The lock's reference ([`Reference`]).
    pub reference: String,
    /// The flavor of a reference that names none (a name or canonical string).
    pub flavor: Option<String>,
    /// The standard to write.
    pub format: sbom::Format,
    /// `-o FILE`; `None` writes the document to standard output.
    pub output: Option<PathBuf>,
    /// `--force`: replace a FILE appliance did not make.
    pub force: bool,
    /// More folders of archives to read license files from (`--pool DIR`).
    pub pools: Vec<PathBuf>,
}

/// Writes the SBOM of a stored lock to standard output, or to FILE as any output is
/// written (atomically, never over a file appliance did not make unless forced).
pub fn sbom(ctx: &Context, opts: &SbomOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let stored = ctx.refer(&repo, &opts.reference, opts.flavor.as_deref())?;
    let sources = ctx.sources(&opts.pools);
    let named = opts.output.as_deref().unwrap_or(Path::new("-"));
    let sbom = Sbom::gather(&stored, &sources, named)?;
    for warning in &sbom.warnings {
        eprintln!("warning: {warning}");
    }
    let bytes = sbom.render(opts.format);
    let Some(output) = &opts.output else {
        return out.write_all(&bytes).map_err(stdout_error);
    };
    let kind = ("sbom", opts.format.as_str());
    let warnings = materialise::write_document(
        &stored.lock_id,
        kind,
        &bytes,
        output,
        &sources,
        &ctx.protected(),
        opts.force,
    )?;
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    writeln!(
        out,
        "{} -> {}: {} SBOM of {} packages",
        stored.lock.address(stored.revision),
        output.display(),
        opts.format.as_str(),
        stored.lock.packages.len()
    )
    .map_err(stdout_error)
}

/// What `appliance gc` was asked.
pub struct GcOptions {
    /// How many revisions of each group and flavor to keep, the newest (at least 1).
    pub keep: usize,
    /// Count what would go, removing nothing.
    pub dry_run: bool,
    /// Print what went as JSON.
    pub json: bool,
}

/// Removes the revisions beyond the newest `keep` of each group and flavor, then
/// whatever of the store no kept revision uses.
pub fn gc(ctx: &Context, opts: &GcOptions, out: &mut dyn Write) -> Result<()> {
    collect(ctx, opts.dry_run, opts.json, out, |repo| {
        Ok(repo.surplus(opts.keep)?)
    })
}

/// What `appliance rm` was asked.
pub struct RmOptions {
    /// The revision's reference ([`Reference`]); it must name one revision exactly.
    pub reference: String,
    /// The flavor, when the reference names none (a name or canonical string).
    pub flavor: Option<String>,
    /// Print what went as JSON.
    pub json: bool,
}

/// Removes one revision, then whatever of the store no remaining revision uses.
pub fn rm(ctx: &Context, opts: &RmOptions, out: &mut dyn Write) -> Result<()> {
    let text = opts.reference.as_str();
    collect(ctx, false, opts.json, out, |repo| {
        let (reference, canonical) = ctx.resolve(repo, text, opts.flavor.as_deref())?;
        let version = reference.version.as_deref();
        let exact = repo.exact(&reference.group, &canonical, version);
        Ok(vec![exact.map_err(unknown(text))?])
    })
}

/// What `gc` and `rm` removed, as `--json` prints it.
#[derive(serde::Serialize)]
struct Collected<'a> {
    /// Whether nothing was removed, only counted.
    dry_run: bool,
    /// The revisions removed, as (address, lock id).
    revisions: Vec<RemovedRevision<'a>>,
    #[serde(flatten)]
    swept: Swept,
    /// The bytes of every file removed.
    bytes: u64,
}

#[derive(serde::Serialize)]
struct RemovedRevision<'a> {
    address: String,
    lock_id: &'a str,
}

/// Removes the revisions `choose` picks from the repository (nothing with `dry_run`),
/// then sweeps the store of what the others do not use, holding the store's lock
/// throughout; prints what went.
fn collect(
    ctx: &Context,
    dry_run: bool,
    json: bool,
    out: &mut dyn Write,
    choose: impl FnOnce(&Repository) -> Result<Vec<Located>>,
) -> Result<()> {
    let store = ctx.workspace.store_dir();
    let _store = StoreLock::exclusive(ctx.workspace.root(), || {
        eprintln!(
            "waiting for the compile that is storing to {} to finish",
            store.display()
        );
    })?;
    // Read-only first: a missing repository is an error, not a new empty one.
    let repo = ctx.existing_repo()?;
    repo.check_pages()?;
    let doomed = choose(&repo)?;
    let used = if dry_run {
        repo.in_use(&doomed)?
    } else {
        drop(repo);
        let mut repo = Repository::open(&ctx.repo_path)?;
        repo.remove(&doomed)?;
        repo.in_use(&[])?
    };
    let swept = gc::sweep(&store, &used, dry_run)?;
    let collected = Collected {
        dry_run,
        revisions: (doomed.iter())
            .map(|r| RemovedRevision {
                address: r.address(),
                lock_id: &r.lock_id,
            })
            .collect(),
        bytes: swept.bytes(),
        swept,
    };
    if json {
        return write_json(out, &collected);
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let mut text = String::new();
    for r in &collected.revisions {
        text += &format!("{verb} {}  {}\n", r.address, short(r.lock_id));
    }
    let size = |bytes: u64| history::size_change(i128::from(bytes)).replacen('+', "", 1);
    let counted =
        |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let tallied = |tally: gc::Tally, one: &str, many: &str| {
        format!(
            "{} ({})",
            counted(tally.count, one, many),
            size(tally.bytes)
        )
    };
    text += &format!(
        "{verb} {}, {}, {}, {}; {} in all\n",
        counted(collected.revisions.len() as u64, "revision", "revisions"),
        tallied(swept.blobs, "blob", "blobs"),
        tallied(swept.archives, "archive", "archives"),
        tallied(swept.images, "image", "images"),
        size(collected.bytes),
    );
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// What `appliance show` was asked.
pub struct ShowOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// List every file.
    pub files: bool,
    /// The whole lock as JSON.
    pub json: bool,
}

/// Prints a stored lock.
pub fn show(ctx: &Context, opts: &ShowOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, &opts.lookup)?;
    let lock = &stored.lock;
    if opts.json {
        let value = serde_json::json!({
            "address": lock.address(stored.revision),
            "lock_id": stored.lock_id,
            "merkle_root": lock.merkle_root(),
            "lock": lock,
        });
        return write_json(out, &value);
    }
    let mut text = format!(
        "{}\nlock id     {}\nmerkle root {}\npackages    {}\nfiles       {}\n",
        lock.address(stored.revision),
        stored.lock_id,
        lock.merkle_root(),
        lock.packages.len(),
        lock.files.len()
    );
    for p in &lock.packages {
        text += &format!(
            "  {} {} {} [{}] {}\n",
            p.name, p.version, p.arch, p.source, p.reason
        );
    }
    if opts.files {
        for f in &lock.files {
            text += &format!("{}\n", describe_file(f));
        }
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

fn describe_file(f: &FileEntry) -> String {
    let mut line = format!(
        "{:<8} {:04o} {}:{} {:>10} {}",
        f.kind.as_str(),
        f.mode,
        f.user,
        f.group,
        f.size,
        f.path
    );
    if let Some(target) = &f.target {
        line += &format!(" -> {target}");
    }
    if let Some(package) = &f.package {
        line += &format!("  ({package})");
    }
    line
}

/// Lists the workspace's flavors.
pub fn flavors(ctx: &Context, json: bool, out: &mut dyn Write) -> Result<()> {
    let flavors = ctx.workspace.flavors()?;
    if json {
        let rows: Vec<_> = flavors
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "canonical": f.canonical(), "arch": f.arch,
                    "flags": f.flags, "format": f.format,
                })
            })
            .collect();
        return write_json(out, &rows);
    }
    for f in &flavors {
        writeln!(
            out,
            "{:<12} {:<32} {}",
            f.name.as_deref().unwrap_or("-"),
            f.canonical(),
            f.format.as_deref().unwrap_or("-")
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

/// Prints why a package is in a lock, back to the group that named it.
pub fn why(ctx: &Context, package: &str, lookup: &Lookup, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, lookup)?;
    let chain = why_chain(&stored.lock, package)?;
    let mut names: Vec<&str> = chain.iter().rev().map(|p| p.name.as_str()).collect();
    let root = match &chain.last().map(|p| &p.reason) {
        Some(Reason::Named { group, via }) => {
            let mut groups = via.clone();
            groups.push(group.clone());
            groups.join(" -> ")
        }
        _ => "essential".to_string(),
    };
    names.insert(0, &root);
    let mut text = format!("{}\n", names.join(" -> "));
    for p in &chain {
        text += &format!("  {} {} ({}): {}\n", p.name, p.version, p.arch, p.reason);
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// The package and the packages that pulled it in, up to one named by a group.
fn why_chain<'a>(lock: &'a Lock, name: &str) -> Result<Vec<&'a LockedPackage>> {
    let find = |n: &str| {
        lock.packages
            .iter()
            .find(|p| p.name == n || format!("{}:{}", p.name, p.arch) == n)
    };
    let mut current = find(name).ok_or_else(|| {
        let mut near: Vec<(f64, &str)> = lock
            .packages
            .iter()
            .map(|p| (strsim::jaro_winkler(name, &p.name), p.name.as_str()))
            .filter(|(score, _)| *score > 0.8)
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        let hint: Vec<&str> = near.iter().take(3).map(|(_, n)| *n).collect();
        Error::Usage(format!(
            "package {name} is not in {}={}{}{}",
            lock.group,
            lock.version,
            lock.flavor,
            if hint.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", hint.join(", "))
            }
        ))
    })?;
    let mut chain = vec![current];
    let mut seen = BTreeSet::from([current.name.as_str()]);
    while let Reason::Dependency { of } = &current.reason {
        match find(of) {
            Some(parent) if seen.insert(parent.name.as_str()) => {
                chain.push(parent);
                current = parent;
            }
            _ => break,
        }
    }
    Ok(chain)
}

fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| stdout_error(e.into()))
        .and_then(|()| writeln!(out).map_err(stdout_error))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("-"),
        source,
    }
}

/// Prints an error for a person: language errors with their source snippet, others as
/// one `error:` line followed by their causes.
pub fn report(err: &Error) {
    if let Error::Lang(diagnostic) = err
        && miette::Diagnostic::source_code(diagnostic.as_ref()).is_some()
    {
        let theme = if std::io::stderr().is_terminal() {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let mut text = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(theme);
        if handler
            .render_report(&mut text, diagnostic.as_ref())
            .is_ok()
        {
            eprint!("error: {text}");
            return;
        }
    }
    eprintln!("error: {err}");
    if let Some(help) = miette::Diagnostic::help(err) {
        eprintln!("  help: {help}");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !err.to_string().contains(&text) {
            eprintln!("  caused by: {text}");
        }
        source = cause.source();
    }
}
