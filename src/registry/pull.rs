//! `appliance pull`: a lock's artifact from a registry, imported as `appliance import`
//! imports a bundle. The manifest must be an appliance lock's; every blob is hashed as
//! it streams into the import's private folder and refused, named, when its bytes are
//! not its digest's (several at once); then the import checks the whole and stores it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::iter;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::RegistryOperation;
use oci_client::manifest::OciDescriptor;

use super::push::{IN_FLIGHT, Transfer};
use super::{Connection, MANIFEST_PULL, RegistryError, Remote, Session};
use crate::bundle::{
    self, ARTIFACT, BundleError, Descriptor, Imported, MANIFEST, Manifest, Members, Refuse,
    blob_of, describe,
};
use crate::excerpt::excerpt;
use crate::materialise::Hashing;

/// What a pull did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pulled {
    /// The reference pulled.
    pub reference: String,
    /// The manifest's digest.
    pub digest: String,
    /// The blobs downloaded (the config and every distinct layer).
    pub downloaded: Transfer,
    /// What the import stored.
    #[serde(flatten)]
    pub imported: Imported,
}

/// Pulls the lock artifact `remote` names (`latest` when it names no tag) and imports it
/// into the store at `store` and the repository at `repo_path`.
pub fn pull(
    remote: Remote,
    connection: &Connection,
    store: &Path,
    repo_path: &Path,
) -> Result<Pulled, RegistryError> {
    let session = Session::open(remote.reference, connection, RegistryOperation::Pull)?;
    let source = session.reference.whole();
    let (bytes, _) = session.run(MANIFEST_PULL, async {
        (session.client())
            .pull_manifest_raw(&session.reference, session.auth(), &[MANIFEST])
            .await
    })?;
    let blob = blob_of(&bytes);
    let digest = format!("sha256:{}", blob.hex);
    if session
        .reference
        .digest()
        .is_some_and(|asked| asked != digest)
    {
        return Err(RegistryError::Failed {
            registry: session.registry().to_string(),
            doing: MANIFEST_PULL.into(),
            said: format!("its bytes hash to {digest}, not to the digest asked"),
        });
    }
    let not_a_lock = |reason: String| RegistryError::NotALock {
        reference: source.clone(),
        reason,
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| not_a_lock(format!("its manifest is no image manifest ({e})")))?;
    if manifest.artifact_type != ARTIFACT {
        let reason = format!(
            "its artifactType is {}, not {ARTIFACT}",
            excerpt(&manifest.artifact_type)
        );
        return Err(not_a_lock(reason));
    }
    let descriptor = Descriptor {
        artifact_type: Some(manifest.artifact_type.clone()),
        ..Descriptor::new(MANIFEST, &blob, BTreeMap::new())
    };
    let mut downloaded = Transfer::default();
    let imported = bundle::take::<RegistryError>(&source, store, repo_path, |work, refuse| {
        let path = work.join(&blob.hex);
        std::fs::write(&path, &bytes).map_err(BundleError::io(&path, "writing the manifest"))?;
        let mut blobs = BTreeMap::from([(blob.hex.clone(), (path, blob.size))]);
        let mut wanted = Vec::new();
        for layer in iter::once(&manifest.config).chain(&manifest.layers) {
            let name = describe(layer);
            let Some(hex) = layer.hex() else {
                let reason = format!("its digest {} is no sha256 digest", excerpt(&layer.digest));
                return Err(refuse(&name, reason).into());
            };
            if blobs.contains_key(hex) {
                continue;
            }
            let path = work.join(hex);
            downloaded.blobs += 1;
            downloaded.bytes += layer.size;
            blobs.insert(hex.to_string(), (path.clone(), layer.size));
            wanted.push((layer, name, path));
        }
        let fetches =
            (wanted.iter()).map(|(layer, name, path)| fetch(&session, layer, name, path, refuse));
        session.block_on(
            stream::iter(fetches)
                .buffered(IN_FLIGHT)
                .try_collect::<Vec<()>>(),
        )?;
        Ok(Members::fetched(&descriptor, blobs))
    })?;
    Ok(Pulled {
        reference: source,
        digest,
        downloaded,
        imported,
    })
}

/// Downloads the blob `layer` describes into `path`, hashing it as it streams; refuses
/// it, as `name`, when the registry sends other bytes or more or fewer of them. Several
/// run at once on the session's runtime.
async fn fetch(
    session: &Session,
    layer: &Descriptor,
    name: &str,
    path: &Path,
    refuse: Refuse<'_>,
) -> Result<(), RegistryError> {
    let doing = format!("downloading {name}");
    let oci = OciDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: i64::try_from(layer.size).unwrap_or(i64::MAX),
        ..OciDescriptor::default()
    };
    let mut stream = (session.client())
        .pull_blob_stream(&session.reference, &oci)
        .await
        .map_err(|e| session.error(&doing, e))?;
    let file = File::create(path).map_err(BundleError::io(path, "writing a blob"))?;
    let mut hashing = Hashing::new(file);
    let mut got = 0u64;
    while let Some(chunk) = stream.stream.next().await {
        match chunk {
            Ok(bytes) => {
                got += bytes.len() as u64;
                if got > layer.size {
                    let reason = format!(
                        "the registry sends more than its {} bytes: its copy was altered",
                        layer.size
                    );
                    return Err(refuse(name, reason).into());
                }
                (hashing.write_all(&bytes)).map_err(BundleError::io(path, "writing a blob"))?;
            }
            // The client's own check of the digest fails at the end: ours says which
            // layer and how.
            Err(_) if got == layer.size => break,
            Err(e) => {
                return Err(RegistryError::Failed {
                    registry: session.registry().to_string(),
                    doing,
                    said: e.to_string(),
                });
            }
        }
    }
    let (_, blob) = hashing.finish();
    if blob.size != layer.size {
        let reason = format!(
            "the registry sent {} of its {} bytes",
            blob.size, layer.size
        );
        return Err(refuse(name, reason).into());
    }
    if Some(blob.hex.as_str()) != layer.hex() {
        let reason = format!(
            "its bytes hash to sha256:{}, not to its digest: the registry's copy was altered \
             or damaged",
            blob.hex
        );
        return Err(refuse(name, reason).into());
    }
    Ok(())
}
