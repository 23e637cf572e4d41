//! `appliance list`: every stored revision.

use std::io::Write;

use super::Context;
use super::present::{short, stdout_error, write_json};
use crate::error::Result;

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
