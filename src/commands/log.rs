//! `appliance log`: a group's revisions and what changed between them.

use std::collections::HashMap;
use std::io::Write;

use super::Context;
use super::context::only_group;
use super::present::{short, stdout_error, write_json};
use crate::error::Result;
use crate::history::LogEntry;
use crate::repo::StoredLock;

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
