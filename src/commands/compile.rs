//! `appliance compile`: resolves groups into locks and stores them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Context;
use super::present::{short, stdout_error, write_json};
use crate::compile::{self, Settings, Spool, fingerprint};
use crate::error::{Error, Result};
use crate::excerpt::{excerpt, first_few};
use crate::gc::StoreLock;
use crate::lock::Backend;
use crate::repo::{BlobStore, Fingerprint, Fingerprinted, Located, Repository};
use crate::resolve::Prefer;
use crate::source::dpkg::catalog::Stale;
use crate::workspace::Recipe;

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
    /// `--json`: one JSON document of the locks made on standard output.
    pub json: bool,
}

/// `compile --json`: the locks made, and the warnings of the whole compile.
#[derive(Serialize)]
struct Compiled {
    locks: Vec<Made>,
    warnings: Vec<String>,
}

/// One lock of `compile --json`.
#[derive(Serialize)]
struct Made {
    address: String,
    group: String,
    version: String,
    revision: u32,
    flavor: String,
    lock_id: String,
    /// `stored` (a new revision) or `unchanged` (the latest revision already held it).
    status: &'static str,
    packages: usize,
    files: usize,
    /// How long the maintainer scripts ran, in seconds; `None` when this compile ran
    /// none for the lock (another flavor's tree was the same).
    configured_seconds: Option<f64>,
    warnings: Vec<String>,
}

/// Removes the repository at `path` that a failed compile made only for its index of
/// apt's lists, and its folder when `folder_made`, so a failed compile leaves no
/// repository behind. Best effort: the compile's own error is what the user must hear.
fn unmake(repo: Repository, path: &Path, folder_made: bool) {
    drop(repo);
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    if let Some(folder) = path.parent().filter(|_| folder_made) {
        // Only an empty folder goes: anything else in it was not this compile's.
        let _ = std::fs::remove_dir(folder);
    }
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
        let hint = if stale.len() > STALE_SHOWN {
            " (-v lists them)"
        } else {
            ""
        };
        format!(
            "{head}: {}{hint}",
            first_few(stale.iter().map(row), STALE_SHOWN)
        )
    })
}

/// The line of a recipe answered from its fingerprint: what a compile storing nothing
/// says, with the warnings that compile gave.
fn answered(found: Fingerprinted) -> Made {
    let Fingerprinted {
        located,
        counts: (packages, files),
        warnings: (warnings, _),
        ..
    } = found;
    Made {
        address: located.address(),
        group: located.group,
        version: located.version,
        revision: located.revision,
        flavor: located.flavor,
        lock_id: located.lock_id,
        status: "unchanged",
        packages,
        files,
        configured_seconds: None,
        warnings,
    }
}

/// What storing a compiled recipe needs besides the lock.
struct Storing<'a> {
    /// How its stages are reported.
    subject: &'a str,
    /// Its fingerprint's key and the inputs recorded before the compile read them;
    /// `None` for a recipe the fingerprint does not cover.
    fingerprint: Option<(String, fingerprint::Inputs)>,
    /// The archives the batch took from apt's lists into the pool.
    downloaded: &'a [PathBuf],
    /// The batch's warnings about its sources.
    sources_warnings: &'a [String],
}

/// Stores a compiled lock, then what answers the next compile of its recipe while
/// nothing it read changes.
fn store(
    ctx: &Context,
    repo: &mut Repository,
    blobs: &BlobStore,
    spool: &Spool,
    c: compile::Compiled,
    storing: Storing,
) -> Result<Made> {
    let stage = ctx.report.stage(storing.subject, "store");
    let stored = c.store(repo, blobs, spool)?;
    stage.done("");
    let mut warnings = c.warnings.clone();
    warnings.extend(stale_report(&c.stale, ctx.report.verbose()));
    if let Some((package, path)) = c.missing.first() {
        warnings.push(format!(
            "{} paths listed by dpkg are absent on the host and not in the lock (first: {path} of {package})",
            c.missing.len()
        ));
    }
    let lock = &c.lock;
    let located = Located {
        group: lock.group.clone(),
        flavor: lock.flavor.clone(),
        version: lock.version.clone(),
        revision: stored.revision,
        lock_id: stored.lock_id.clone(),
    };
    if let Some((key, inputs)) = storing.fingerprint
        && let Some(recorded) = fingerprint::record(inputs, storing.downloaded, &ctx.sysroot, lock)
    {
        repo.record_fingerprint(&Fingerprint {
            key: &key,
            located: &located,
            inputs: &recorded.inputs,
            folders: &recorded.folders,
            counts: (lock.packages.len(), lock.files.len()),
            warnings: (&warnings, storing.sources_warnings),
        })?;
    }
    Ok(Made {
        address: lock.address(stored.revision),
        group: located.group,
        version: located.version,
        revision: stored.revision,
        flavor: located.flavor,
        lock_id: stored.lock_id,
        status: if stored.unchanged {
            "unchanged"
        } else {
            "stored"
        },
        packages: lock.packages.len(),
        files: lock.files.len(),
        configured_seconds: c.configured.map(|took| took.as_secs_f64()),
        warnings,
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
    let pool_dirs = ctx.pool_dirs(&opts.pools);
    let repo_existed = ctx.repo_path.exists();
    let folder_existed = ctx.repo_path.parent().is_none_or(Path::exists);
    // The pool folder downloads go to is there before any fingerprint is taken, so the
    // first download does not make it appear and change every fingerprint's key.
    let pool_made = !settings.pool_dir.exists();
    if pool_made {
        crate::repo::create_folder(&settings.pool_dir, 0o755).map_err(|source| Error::Io {
            path: settings.pool_dir.clone(),
            source,
        })?;
    }
    // Read only, and only a repository that is there: a compile that fails writes
    // none. One too old to read has no fingerprints to answer from.
    let known = (ctx.repo_path.exists())
        .then(|| Repository::open_read_only(&ctx.repo_path).ok())
        .flatten();
    // Recipes whose inputs are as their last compile found them are answered from the
    // repository; only the others read the package sources.
    let mut answers = Vec::new();
    let mut to_compile = Vec::new();
    for recipe in jobs {
        let key = fingerprint::key(&recipe, &settings, &pool_dirs);
        let found = match (&known, key.as_deref()) {
            (Some(repo), Some(key)) => repo.fingerprinted(key)?,
            _ => None,
        };
        if let Some(found) = found.filter(|f| fingerprint::holds(&f.inputs, &f.folders)) {
            if ctx.report.verbose() {
                crate::stderr::line(format_args!(
                    "compile: fingerprint inputs unchanged ({}): answered from the repository",
                    short(&found.located.lock_id)
                ));
            }
            answers.push(Some(found));
            continue;
        }
        answers.push(None);
        // Taken before the sources are read: a change made while they are is then seen.
        let inputs = key.map(|key| (key, fingerprint::inputs(&settings, &pool_dirs)));
        to_compile.push((recipe, inputs));
    }
    let (recipes, mut fingerprints): (Vec<Recipe>, Vec<_>) = to_compile.into_iter().unzip();
    // The batch's locks come in the recipes' order.
    let subjects: Vec<String> = recipes.iter().map(compile::subject).collect();
    drop(known);
    // The repository's index of apt's lists is brought up to date first; no lock is
    // written until every lock is made, and a compile that fails takes back the
    // repository (and store folder) it made only for the index.
    let mut repo = Repository::open(&ctx.repo_path)?;
    if repo.adopted() {
        crate::stderr::line(format_args!(
            "note: repository {} was made by an earlier appliance: marked it as appliance's",
            ctx.repo_path.display()
        ));
    }
    let made = if recipes.is_empty() {
        let batch = compile::Batch {
            compiled: Vec::new(),
            warnings: Vec::new(),
        };
        Ok((batch, None))
    } else {
        // The spool goes, with the bytes configuration made, as soon as the batch fails.
        Spool::new(&settings.scratch, &ctx.blobs_dir()).and_then(|spool| {
            compile::compile_all(&settings, &spool, &pool_dirs, recipes, &mut repo)
                .map(|batch| (batch, Some(spool)))
        })
    };
    let (mut batch, spool) = match made {
        Ok(made) => made,
        Err(err) => {
            if pool_made {
                // Only when empty: archives it downloaded stay for the next try.
                let _ = std::fs::remove_dir(&settings.pool_dir);
            }
            if !repo_existed {
                unmake(repo, &ctx.repo_path, !folder_existed);
            }
            return Err(err.into());
        }
    };
    // What the compiled recipes' fingerprints keep: the batch's own warnings.
    let sources_warnings = batch.warnings.clone();
    for found in answers.iter().flatten() {
        for warning in &found.warnings.1 {
            if !batch.warnings.contains(warning) {
                batch.warnings.push(warning.clone());
            }
        }
    }
    for warning in &batch.warnings {
        crate::stderr::warning(warning);
    }
    let blobs = BlobStore::open(&ctx.blobs_dir())?;
    let downloaded: Vec<PathBuf> = (batch.compiled.iter())
        .flat_map(|c| c.downloaded.iter().cloned())
        .collect();
    let mut compiled = (batch.compiled.into_iter())
        .zip(&subjects)
        .zip(fingerprints.drain(..));
    let mut made = Vec::new();
    for answer in answers {
        let one = match answer {
            Some(found) => answered(found),
            // As many compiled as unanswered, in the same order.
            // Compiled recipes come with the spool their bytes wait in.
            None => match (compiled.next(), &spool) {
                (Some(((c, subject), fingerprint)), Some(spool)) => {
                    let stored = Storing {
                        subject,
                        fingerprint,
                        downloaded: &downloaded,
                        sources_warnings: &sources_warnings,
                    };
                    store(ctx, &mut repo, &blobs, spool, c, stored)?
                }
                _ => break,
            },
        };
        if !opts.json {
            let configured = (one.configured_seconds)
                .map(|seconds| format!(", configured in {seconds:.1} s"))
                .unwrap_or_default();
            writeln!(
                out,
                "{} {}: {} packages, {} files, lock {}{configured}",
                one.address,
                one.status,
                one.packages,
                one.files,
                short(&one.lock_id),
            )
            .map_err(stdout_error)?;
        }
        // On stderr with --json too, for whoever watches the run.
        for warning in &one.warnings {
            crate::stderr::warning(warning);
        }
        made.push(one);
    }
    if opts.json {
        let compiled = Compiled {
            locks: made,
            warnings: batch.warnings,
        };
        return write_json(out, &compiled);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{STALE_SHOWN, Stale, stale_report};

    #[test]
    fn the_stale_warning_names_the_first_few_unless_asked_for_every_one() {
        let stale: Vec<Stale> = (1..=STALE_SHOWN + 2)
            .map(|i| Stale {
                name: format!("p{i}"),
                version: "1".into(),
                candidate: "2".into(),
                security: i == 1,
            })
            .collect();
        let line = stale_report(&stale, false).unwrap();
        assert!(
            line.ends_with(": p1 1 -> 2 (security), p2 1 -> 2, p3 1 -> 2, p4 1 -> 2, p5 1 -> 2, and 2 more (-v lists them)"),
            "{line}"
        );
        let few = stale_report(&stale[..2], false).unwrap();
        assert!(few.ends_with(": p1 1 -> 2 (security), p2 1 -> 2"), "{few}");
        let every = stale_report(&stale, true).unwrap();
        assert!(every.ends_with(":\n  p1 1 -> 2 (security)\n  p2 1 -> 2\n  p3 1 -> 2\n  p4 1 -> 2\n  p5 1 -> 2\n  p6 1 -> 2\n  p7 1 -> 2"), "{every}");
        assert!(stale_report(&[], false).is_none());
    }
}
