//! `appliance export`: a stored lock and its bytes as one bundle file.

use std::io::Write;
use std::path::PathBuf;

use super::Context;
use super::present::{stdout_error, write_json};
use crate::bundle;
use crate::error::Result;

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
        pool_dir: ctx.pool_dir(),
    };
    let exported = bundle::export(
        &stored,
        &ctx.sources(&opts.pools),
        &ctx.protected(),
        &options,
    )?;
    for warning in &exported.warnings {
        crate::stderr::warning(warning);
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
