//! The operations behind each CLI command: they tie the language, sources, resolver,
//! lock, repository and materialiser together and write what the user reads.

use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::compile::{self, Compiled, Configurations, Settings, compile_recipe};
use crate::error::{Error, Result, excerpt};
use crate::lang::Flavor;
use crate::lock::scan::Accounts;
use crate::lock::{FileEntry, Lock, LockedPackage, Reason};
use crate::materialise::{self, Format, Sources};
use crate::repo::{BlobStore, Repository, StoredLock};
use crate::resolve::rpm::RpmUniverse;
use crate::resolve::{Prefer, Universe};
use crate::source::apt::AptLists;
use crate::source::backend::Backend;
use crate::source::catalog::{Catalog, Stale};
use crate::source::dpkg::DpkgDatabase;
use crate::source::pool::Pool;
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
    let backend = match opts.backend {
        Some(backend) => backend,
        None => Backend::detect(&ctx.sysroot).ok_or_else(|| {
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
    writeln!(
        out,
        "{address} -> {}: {} entries, {} bytes",
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
    let accel = crate::boot::Accel::parse(&opts.accel)?;
    let forwards = crate::boot::Forward::parse_all(&opts.forwards)?;
    let repo = ctx.existing_repo()?;
    let (stored, flavor) = ctx.load(&repo, &opts.lookup)?;
    let group = &stored.lock.group;
    let flavor_name = flavor.name.clone().unwrap_or_else(|| "custom".into());
    let images = ctx.workspace.store_dir().join("images");
    let output = images.join(format!("{group}-{flavor_name}"));
    if flavor.flag("xen") {
        return Err(Error::Usage(format!(
            "flavor {flavor_name} is a Xen guest, which qemu does not boot: build it with \
             `appliance materialise {group} --flavor {flavor_name} --format image -o OUT` and \
             start it on a Xen host with `xl create OUT/xen.cfg`"
        )));
    }
    let disk = match opts.disk.as_deref() {
        Some(name) => materialise::Disk::parse(name)?,
        None => materialise::Disk::Raw,
    };
    let options = materialise::Options {
        if_newer: true,
        lock_file: Some(images.join(format!(".{group}-{flavor_name}.lock"))),
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
    let guest = crate::boot::Guest {
        image: output,
        disk,
        accel,
        memory_mb: opts.memory_mb,
        args: opts.args.clone(),
        forwards,
    };
    Ok(guest.run()?)
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

/// Every entry's mtime: `SOURCE_DATE_EPOCH` when set (as reproducible-builds.org
/// defines it), else 0, so the same lock always gives the same bytes.
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
