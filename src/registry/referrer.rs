//! Documents attached to a pushed lock (an SBOM, a signature) as OCI 1.1 referrers:
//! an artifact manifest whose `subject` is the lock's manifest. A registry with the
//! referrers API lists it by itself; for one without (distribution 2.8), the
//! distribution spec's fallback: an image index of the subject's referrers under the
//! tag `sha256-<hex>`, which this updates.

use std::collections::BTreeMap;

use super::push::{put_manifest, send_blobs};
use super::{RegistryError, Session, answer};
use crate::bundle::{
    Descriptor, EMPTY, EMPTY_BYTES, INDEX, Index, MANIFEST, Manifest, blob_of, to_json,
};

/// A document to attach to a lock's manifest.
pub struct Document {
    /// The referrer's `artifactType` (`application/spdx+json`).
    pub artifact_type: String,
    /// Its one layer's media type.
    pub media_type: String,
    /// The document.
    pub bytes: Vec<u8>,
}

/// A document attached.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Attached {
    /// Its `artifactType`.
    pub artifact_type: String,
    /// The referrer manifest's digest.
    pub digest: String,
    /// The fallback tag whose index this push wrote, when the registry did not list the
    /// referrer already (it has no referrers API).
    pub fallback_tag: Option<String>,
}

/// Attaches `document` to the manifest `subject` in the session's repository: pushes
/// its blob and the empty config when missing, then its manifest, then makes sure the
/// subject's referrers list it.
pub(crate) fn attach(
    session: &Session,
    subject: &Descriptor,
    document: &Document,
) -> Result<Attached, RegistryError> {
    let config = Descriptor::new(EMPTY, &blob_of(EMPTY_BYTES), BTreeMap::new());
    let layer = Descriptor::new(
        &document.media_type,
        &blob_of(&document.bytes),
        BTreeMap::new(),
    );
    let blobs = [(&config, EMPTY_BYTES), (&layer, &document.bytes[..])];
    let reads = (blobs.into_iter()).map(|(descriptor, bytes)| (descriptor, || Ok(bytes.to_vec())));
    send_blobs(session, &session.reference, reads)?;
    let manifest = to_json(&Manifest {
        schema_version: 2,
        media_type: MANIFEST.to_string(),
        artifact_type: document.artifact_type.clone(),
        config,
        layers: vec![layer],
        subject: Some(Descriptor {
            artifact_type: None,
            annotations: BTreeMap::new(),
            ..subject.clone()
        }),
        annotations: BTreeMap::new(),
    });
    let blob = blob_of(&manifest);
    let digest = format!("sha256:{}", blob.hex);
    put_manifest(session, &session.at(&digest), &manifest, MANIFEST)?;
    let descriptor = Descriptor {
        artifact_type: Some(document.artifact_type.clone()),
        ..Descriptor::new(MANIFEST, &blob, BTreeMap::new())
    };
    let listed = session.run("listing the referrers", async {
        (session.client())
            .pull_referrers(&session.at(&subject.digest), Some(&document.artifact_type))
            .await
    })?;
    let fallback_tag = if listed.manifests.iter().any(|m| m.digest == digest) {
        None
    } else {
        let tag = subject.digest.replacen(':', "-", 1);
        add_to_index(session, &tag, descriptor)?;
        Some(tag)
    };
    Ok(Attached {
        artifact_type: document.artifact_type.clone(),
        digest,
        fallback_tag,
    })
}

/// Adds `descriptor` to the referrers index under `tag`, making the index when there is
/// none.
fn add_to_index(session: &Session, tag: &str, descriptor: Descriptor) -> Result<(), RegistryError> {
    let reference = session.tagged(tag);
    let doing = "reading the referrers index";
    let found = session.block_on(async {
        (session.client())
            .pull_manifest_raw(&reference, session.auth(), &[INDEX])
            .await
    });
    let mut index = match found {
        Ok((bytes, _)) => {
            serde_json::from_slice::<Index>(&bytes).map_err(|e| RegistryError::Failed {
                registry: session.registry().to_string(),
                doing: format!("{doing} {tag}"),
                said: format!("not an image index: {e}"),
            })?
        }
        Err(e) if answer(&e).0 == Some(404) => Index {
            schema_version: 2,
            media_type: INDEX.to_string(),
            manifests: Vec::new(),
        },
        Err(e) => return Err(session.error(doing, e)),
    };
    index.manifests.retain(|m| m.digest != descriptor.digest);
    index.manifests.push(descriptor);
    put_manifest(session, &reference, &to_json(&index), INDEX)
}
