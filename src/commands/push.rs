//! `appliance push`: a stored lock's bundle as an OCI artifact in a registry.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::present::{stdout_error, write_json};
use super::{Context, RemoteOptions};
use crate::bundle;
use crate::error::{Error, Result};
use crate::excerpt::excerpt;
use crate::registry;
use crate::sbom::{self, Sbom};

/// What `appliance push` was asked.
pub struct PushOptions {
    /// The lock's reference ([`Reference`]).
    pub reference: String,
    /// The flavor of a reference that names none.
    pub flavor: Option<String>,
    /// `REGISTRY/REPOSITORY[:TAG]`.
    pub target: String,
    /// More folders of archives to take packages from (`--pool DIR`).
    pub pools: Vec<PathBuf>,
    /// Documents to attach as referrers, each `TYPE=FILE`, after the lock's SBOM.
    pub attach: Vec<String>,
    /// Attach no SBOM of the lock (`--no-sbom`).
    pub no_sbom: bool,
    /// How to reach the registry.
    pub remote: RemoteOptions,
    /// Print what was pushed as JSON.
    pub json: bool,
}

/// Pushes a stored lock's bundle artifact to a registry, and attaches documents to it.
pub fn push(ctx: &Context, opts: &PushOptions, out: &mut dyn Write) -> Result<()> {
    let target = registry::parse_reference(&opts.target)?;
    let attached = (opts.attach.iter())
        .map(|spec| attachment(spec))
        .collect::<Result<Vec<_>>>()?;
    let repo = ctx.existing_repo()?;
    let stored = ctx.refer(&repo, &opts.reference, opts.flavor.as_deref())?;
    let connection = opts.remote.connection()?;
    let sources = ctx.sources(&opts.pools);
    let artifact = bundle::Artifact::of(&stored, &sources, &ctx.pool_dir())?;
    for warning in artifact.warnings() {
        crate::stderr::warning(warning);
    }
    // The lock's SPDX SBOM goes with it, so whoever pulls it can audit it first.
    let mut documents = Vec::new();
    if !opts.no_sbom {
        let sbom = Sbom::gather(&stored, &sources, Path::new(&opts.target))?;
        for warning in &sbom.warnings {
            crate::stderr::warning(warning);
        }
        documents.push(registry::Document {
            artifact_type: SPDX_JSON.to_string(),
            media_type: SPDX_JSON.to_string(),
            bytes: sbom.render(sbom::Format::Spdx),
        });
    }
    documents.extend(attached);
    let pushed = registry::push(&artifact, &stored.lock, target, &connection, &documents)?;
    let address = stored.lock.address(stored.revision);
    if opts.json {
        let value = serde_json::json!({
            "address": address, "lock_id": stored.lock_id, "pushed": pushed,
            "archives": artifact.archives, "blobs": artifact.blobs,
            "downloaded": artifact.downloaded,
        });
        return write_json(out, &value);
    }
    let mut text = format!(
        "{address} -> {} ({}): {} blobs uploaded ({} bytes), {} already there ({} bytes)\n",
        pushed.reference,
        pushed.digest,
        pushed.uploaded.blobs,
        pushed.uploaded.bytes,
        pushed.skipped.blobs,
        pushed.skipped.bytes
    );
    for referrer in &pushed.referrers {
        let listed = match &referrer.fallback_tag {
            Some(tag) => format!("listed under tag {tag}"),
            None => "listed by the registry".to_string(),
        };
        text += &format!(
            "  referrer {} ({}): {listed}\n",
            referrer.digest, referrer.artifact_type
        );
    }
    out.write_all(text.as_bytes()).map_err(stdout_error)
}

/// The media type of an SPDX JSON document, as SPDX registers it.
const SPDX_JSON: &str = "application/spdx+json";

/// A document to attach, from `TYPE=FILE`: TYPE is its artifact type and its layer's
/// media type.
fn attachment(spec: &str) -> Result<registry::Document> {
    let Some((media_type, file)) = spec
        .split_once('=')
        .filter(|(t, f)| t.contains('/') && !f.is_empty())
    else {
        return Err(Error::Usage(format!(
            "--attach {}: write MEDIA_TYPE=FILE, as in application/spdx+json=web.spdx.json",
            excerpt(spec)
        )));
    };
    let bytes = std::fs::read(file).map_err(|source| Error::Io {
        path: PathBuf::from(file),
        source,
    })?;
    Ok(registry::Document {
        artifact_type: media_type.to_string(),
        media_type: media_type.to_string(),
        bytes,
    })
}
