//! `appliance show`: a stored lock, its packages and files.

use std::io::Write;

use super::present::{stdout_error, write_json};
use super::{Context, Lookup};
use crate::error::Result;
use crate::lock::{FileEntry, lock_json};

/// What `appliance show` was asked.
pub struct ShowOptions {
    /// Which lock.
    pub lookup: Lookup,
    /// List every file.
    pub files: bool,
    /// The whole lock as JSON.
    pub json: bool,
}

/// Prints a stored lock.
pub fn show(ctx: &Context, opts: &ShowOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let (stored, _) = ctx.load(&repo, &opts.lookup)?;
    let lock = &stored.lock;
    if opts.json {
        let value = serde_json::json!({
            "address": lock.address(stored.revision),
            "lock_id": stored.lock_id,
            "merkle_root": lock.merkle_root(),
            "lock": lock_json(lock),
        });
        return write_json(out, &value);
    }
    let mut text = format!(
        "{}\nlock id     {}\nmerkle root {}\npackages    {}\nfiles       {}\n",
        lock.address(stored.revision),
        stored.lock_id,
        lock.merkle_root(),
        lock.packages.len(),
        lock.files.len()
    );
    for p in &lock.packages {
        text += &format!(
            "  {} {} {} [{}] {}\n",
            p.name, p.version, p.arch, p.source, p.reason
        );
    }
    if opts.files {
        for f in &lock.files {
            text += &format!("{}\n", describe_file(f));
        }
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

fn describe_file(f: &FileEntry) -> String {
    let mut line = format!(
        "{:<8} {:04o} {}:{} {:>10} {}",
        f.kind.as_str(),
        f.mode,
        f.user,
        f.group,
        f.size,
        f.path
    );
    if let Some(target) = &f.target {
        line += &format!(" -> {target}");
    }
    if let Some(package) = &f.package {
        line += &format!("  ({package})");
    }
    line
}
