//! `appliance compile`: resolves groups into locks and stores them.

use std::io::Write;
use std::path::PathBuf;

use super::Context;
use super::present::{short, stdout_error};
use crate::compile::{self, Settings};
use crate::error::{Error, Result};
use crate::excerpt::excerpt;
use crate::gc::StoreLock;
use crate::lock::Backend;
use crate::repo::{BlobStore, Repository};
use crate::resolve::Prefer;
use crate::source::dpkg::catalog::Stale;

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
        report: ctx.report,
    };
    // The batch's locks come in the recipes' order.
    let subjects: Vec<String> = jobs.iter().map(compile::subject).collect();
    let batch = compile::compile_all(&settings, &ctx.pool_dirs(&opts.pools), jobs)?;
    for warning in &batch.warnings {
        crate::stderr::warning(warning);
    }
    // Only now that every lock is made does anything get written.
    let mut repo = Repository::open(&ctx.repo_path)?;
    if repo.adopted() {
        crate::stderr::line(format_args!(
            "note: repository {} was made by an earlier appliance: marked it as appliance's",
            ctx.repo_path.display()
        ));
    }
    let blobs = BlobStore::open(&ctx.blobs_dir())?;
    for (c, subject) in batch.compiled.into_iter().zip(&subjects) {
        let stage = ctx.report.stage(subject, "store");
        let stored = c.store(&mut repo, &blobs)?;
        stage.done("");
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
        // -v names every stale package.
        let stale = stale_report(&c.stale, ctx.report.verbose());
        for warning in c.warnings.iter().chain(&stale) {
            crate::stderr::warning(warning);
        }
        if let Some((package, path)) = c.missing.first() {
            crate::stderr::warning(format_args!(
                "{} paths listed by dpkg are absent on the host and not in the lock (first: {path} of {package})",
                c.missing.len()
            ));
        }
    }
    Ok(())
}
