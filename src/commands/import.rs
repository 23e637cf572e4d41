//! `appliance import`: a bundle checked and stored.

use std::io::Write;
use std::path::Path;

use super::Context;
use super::present::{short, stdout_error, write_json};
use crate::bundle;
use crate::error::Result;
use crate::gc::StoreLock;

/// Checks a bundle and stores its lock, blobs and archives.
pub fn import(ctx: &Context, file: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    // It writes blobs and archives before their lock is stored, as compile does: a
    // sweep meanwhile would take them for garbage.
    let _store = StoreLock::shared(ctx.workspace.root())?;
    let imported = bundle::import(file, &ctx.workspace.store_dir(), &ctx.repo_path)?;
    if json {
        return write_json(out, &imported);
    }
    writeln!(out, "{}", stored_line(&imported)).map_err(stdout_error)
}

/// What an import or a pull stored, in one line.
pub(super) fn stored_line(imported: &bundle::Imported) -> String {
    let status = if imported.unchanged {
        "unchanged"
    } else {
        "stored"
    };
    format!(
        "{} {status}: lock {}, {} archives, {} blobs",
        imported.address,
        short(&imported.lock_id),
        imported.archives,
        imported.blobs
    )
}
