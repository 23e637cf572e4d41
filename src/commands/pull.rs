//! `appliance pull`: a lock's bundle artifact from a registry, stored as an import.

use std::io::Write;

use super::import::stored_line;
use super::present::{stdout_error, write_json};
use super::{Context, RemoteOptions};
use crate::error::Result;
use crate::registry;

/// Pulls a lock's bundle artifact from a registry and stores it as `import` does.
pub fn pull(
    ctx: &Context,
    source: &str,
    remote: &RemoteOptions,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let reference = registry::parse_reference(source)?;
    let connection = remote.connection()?;
    let store = ctx.workspace.store_dir();
    let pulled = registry::pull(reference, &connection, &store, &ctx.repo_path)?;
    if json {
        return write_json(out, &pulled);
    }
    writeln!(
        out,
        "{} ({}) -> {}; {} blobs downloaded ({} bytes)",
        pulled.reference,
        pulled.digest,
        stored_line(&pulled.imported),
        pulled.downloaded.blobs,
        pulled.downloaded.bytes
    )
    .map_err(stdout_error)
}
