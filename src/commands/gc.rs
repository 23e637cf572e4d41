//! `appliance gc` and `appliance rm`: old revisions removed, and what no kept one uses.

use std::io::Write;

use super::Context;
use super::context::unknown;
use super::present::{short, stdout_error, write_json};
use crate::error::Result;
use crate::gc::{self, StoreLock, Swept};
use crate::history;
use crate::repo::{Located, Repository};

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
        crate::stderr::line(format_args!(
            "waiting for the compile that is storing to {} to finish",
            store.display()
        ));
    })?;
    // Read-only first: a missing repository is an error, not a new empty one.
    let repo = ctx.existing_repo()?;
    repo.check_pages()?;
    let doomed = choose(&repo)?;
    let (used, writable) = if dry_run {
        (repo.in_use(&doomed)?, None)
    } else {
        drop(repo);
        let mut repo = Repository::open(&ctx.repo_path)?;
        repo.remove(&doomed)?;
        (repo.in_use(&[])?, Some(repo))
    };
    let swept = gc::sweep(&store, &used, dry_run)?;
    // What compile read of the archives the sweep removed (or any gone since) goes too.
    if let Some(repo) = writable {
        repo.forget_archive_reads_gone()?;
    }
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
        "{verb} {}, {}, {}, {}, {}; {} in all\n",
        counted(collected.revisions.len() as u64, "revision", "revisions"),
        tallied(swept.blobs, "blob", "blobs"),
        tallied(swept.archives, "archive", "archives"),
        tallied(swept.unpacked, "unpacked file", "unpacked files"),
        tallied(swept.images, "image", "images"),
        size(collected.bytes),
    );
    out.write_all(text.as_bytes()).map_err(stdout_error)
}
