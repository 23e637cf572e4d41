//! `appliance flavors`: the workspace's flavors.

use std::io::Write;

use super::Context;
use super::present::{stdout_error, write_json};
use crate::error::Result;

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
