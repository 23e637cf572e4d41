//! `appliance diff`: what changed from one stored lock to another.

use std::io::Write;

use super::Context;
use super::present::{stdout_error, write_json};
use crate::error::Result;
use crate::history;

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
