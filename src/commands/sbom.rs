//! `appliance sbom`: a stored lock's SPDX or CycloneDX document.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Context;
use super::present::stdout_error;
use crate::error::Result;
use crate::materialise;
use crate::sbom::{self, Sbom};

/// What `appliance sbom` was asked.
pub struct SbomOptions {
    /// The lock's reference ([`Reference`]).
    pub reference: String,
    /// The flavor of a reference that names none (a name or canonical string).
    pub flavor: Option<String>,
    /// The standard to write.
    pub format: sbom::Format,
    /// `-o FILE`; `None` writes the document to standard output.
    pub output: Option<PathBuf>,
    /// `--force`: replace a FILE appliance did not make.
    pub force: bool,
    /// More folders of archives to read license files from (`--pool DIR`).
    pub pools: Vec<PathBuf>,
}

/// Writes the SBOM of a stored lock to standard output, or to FILE as any output is
/// written (atomically, never over a file appliance did not make unless forced).
pub fn sbom(ctx: &Context, opts: &SbomOptions, out: &mut dyn Write) -> Result<()> {
    let repo = ctx.existing_repo()?;
    let stored = ctx.refer(&repo, &opts.reference, opts.flavor.as_deref())?;
    let sources = ctx.sources(&opts.pools);
    let named = opts.output.as_deref().unwrap_or(Path::new("-"));
    let sbom = Sbom::gather(&stored, &sources, named)?;
    for warning in &sbom.warnings {
        crate::stderr::warning(warning);
    }
    let bytes = sbom.render(opts.format);
    let Some(output) = &opts.output else {
        return out.write_all(&bytes).map_err(stdout_error);
    };
    let kind = ("sbom", opts.format.as_str());
    let warnings = materialise::write_document(
        &stored.lock_id,
        kind,
        &bytes,
        output,
        &sources,
        &ctx.protected(),
        opts.force,
    )?;
    for warning in &warnings {
        crate::stderr::warning(warning);
    }
    writeln!(
        out,
        "{} -> {}: {} SBOM of {} packages",
        stored.lock.address(stored.revision),
        output.display(),
        opts.format.as_str(),
        stored.lock.packages.len()
    )
    .map_err(stdout_error)
}
