//! `appliance verify`: the host's files compared with a stored lock.

use std::io::Write;
use std::path::PathBuf;

use super::present::{stdout_error, write_json};
use super::{Context, Lookup};
use crate::error::{Error, Result};
use crate::materialise;

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
                    "supplied_by": d.fallback.as_ref().and_then(|f| f.as_ref().ok()).map(|s| s.as_str()),
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
