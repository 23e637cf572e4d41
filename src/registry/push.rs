//! `appliance push`: a lock's artifact into a registry. Every blob the registry lacks
//! goes first (asked with HEAD, so a second revision sends only what is new; several at
//! once, as each is a round trip), then the
//! manifest by its digest, and only then the tag: a push cut short leaves blobs and at
//! most an untagged manifest, never a tag naming an incomplete artifact.

use std::io::Read;

use futures_util::{StreamExt, TryStreamExt, stream};
use http::HeaderValue;
use oci_client::errors::OciDistributionError;
use oci_client::{Reference, RegistryOperation};

use super::referrer::{Attached, Document, attach};
use super::{Connection, RegistryError, Remote, Session};
use crate::bundle::{Artifact, Descriptor, MANIFEST, describe};
use crate::lock::Lock;

/// How many blobs and bytes.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Transfer {
    /// Blobs.
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// What a push did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pushed {
    /// `REGISTRY/REPOSITORY:TAG`.
    pub reference: String,
    /// The tag.
    pub tag: String,
    /// The manifest's digest.
    pub digest: String,
    /// The blobs sent.
    pub uploaded: Transfer,
    /// The blobs the registry had already.
    pub skipped: Transfer,
    /// The documents attached to the manifest as referrers.
    pub referrers: Vec<Attached>,
}

/// Pushes `artifact`, the artifact of `lock`, to `remote` (its tag, else
/// [`default_tag`]), then attaches each of `documents` to it as a referrer.
pub fn push(
    artifact: &Artifact,
    lock: &Lock,
    remote: Remote,
    connection: &Connection,
    documents: &[Document],
) -> Result<Pushed, RegistryError> {
    let reference = remote.reference;
    if reference.digest().is_some() {
        return Err(RegistryError::Malformed {
            reference: reference.whole(),
            reason: "push gives a tag, not a digest: the digest is the manifest's".into(),
        });
    }
    let tag = match reference.tag().filter(|_| remote.named) {
        Some(tag) => tag.to_string(),
        None => default_tag(&lock.group, &lock.version, &lock.flavor),
    };
    let session = Session::open(reference, connection, RegistryOperation::Push)?;
    let target = session.tagged(&tag);
    let layers: Vec<_> = artifact.blobs().collect();
    let reads = layers.iter().map(|layer| {
        let read = || {
            let mut bytes = Vec::new();
            layer.reader()?.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        (&layer.descriptor, read)
    });
    let sent = send_blobs(&session, &target, reads)?;
    let (mut uploaded, mut skipped) = (Transfer::default(), Transfer::default());
    for (layer, sent) in layers.iter().zip(sent) {
        let count = if sent { &mut uploaded } else { &mut skipped };
        count.blobs += 1;
        count.bytes += layer.descriptor.size;
    }
    let digest = artifact.digest();
    put_manifest(&session, &session.at(&digest), &artifact.manifest, MANIFEST)?;
    put_manifest(&session, &target, &artifact.manifest, MANIFEST)?;
    let subject = artifact.descriptor();
    let referrers = (documents.iter())
        .map(|document| attach(&session, &subject, document))
        .collect::<Result<_, _>>()?;
    Ok(Pushed {
        reference: target.whole(),
        tag,
        digest,
        uploaded,
        skipped,
        referrers,
    })
}

/// How many blob requests are under way at once: enough to hide each round trip to
/// the registry (a bundle has hundreds of blobs), few enough not to crowd it.
pub(super) const IN_FLIGHT: usize = 8;

/// Sends each blob a descriptor of `blobs` describes to the repository of `reference`
/// unless the registry has it already (asked with HEAD; a server error there sends it
/// too); its bytes are what its reader gives. Up to [`IN_FLIGHT`] blobs are asked for
/// or sent at once. Whether each was sent, in the order of `blobs`; the first failure,
/// naming its blob, ends it.
pub(super) fn send_blobs<'a, R>(
    session: &Session,
    reference: &Reference,
    blobs: impl IntoIterator<Item = (&'a Descriptor, R)>,
) -> Result<Vec<bool>, RegistryError>
where
    R: FnOnce() -> std::io::Result<Vec<u8>>,
{
    let sends = blobs.into_iter().map(|(descriptor, read)| async move {
        let digest = &descriptor.digest;
        let name = describe(descriptor);
        let there = match session.client().blob_exists(reference, digest).await {
            Ok(there) => there,
            // A registry that cannot say (a server error, as for a blob a killed
            // registry left half recorded) is sent the blob, which records it again.
            Err(OciDistributionError::RequestError(e))
                if e.status().is_some_and(|s| s.is_server_error()) =>
            {
                false
            }
            Err(e) => return Err(session.error(&format!("asking for {name}"), e)),
        };
        if there {
            return Ok(false);
        }
        let bytes = read().map_err(|source| RegistryError::Io {
            path: descriptor.annotation(crate::bundle::TITLE).into(),
            doing: "reading a blob to push",
            source,
        })?;
        // As a stream: the client's other ways refuse an empty blob, which a lock may need.
        let size = bytes.len() as u64;
        let body = futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]);
        (session.client())
            .push_blob_stream(reference, body, digest, Some(size))
            .await
            .map_err(|e| session.error(&format!("uploading {name}"), e))?;
        Ok(true)
    });
    session.block_on(stream::iter(sends).buffered(IN_FLIGHT).try_collect())
}

/// Puts the manifest `bytes` of `media_type` at `reference` (a digest or a tag).
pub(super) fn put_manifest(
    session: &Session,
    reference: &Reference,
    bytes: &[u8],
    media_type: &'static str,
) -> Result<(), RegistryError> {
    let doing = match reference.tag() {
        Some(_) => "tagging the manifest",
        None => "uploading the manifest",
    };
    session.run(doing, async {
        let content_type = HeaderValue::from_static(media_type);
        (session.client())
            .push_manifest_raw(reference, bytes.to_vec(), content_type)
            .await
    })?;
    Ok(())
}

/// The tag a push gives when none is asked: `GROUP-VERSION-FLAVOR`, the flavor written
/// as its flags that are on and its instruction set (`web-1.0-openvz-x86_64` for
/// `[!kernel,openvz is: x86_64]`), every character a tag may not hold (outside
/// `[A-Za-z0-9_.-]`) as `_`, an `_` before a first character a tag may not start with,
/// and cut to a tag's 128 characters.
pub fn default_tag(group: &str, version: &str, flavor: &str) -> String {
    let words = (flavor.trim_matches(|c| c == '[' || c == ']'))
        .split([',', ' '])
        .filter(|w| !w.is_empty() && *w != "is:" && !w.starts_with('!'));
    let parts: Vec<&str> = [group, version].into_iter().chain(words).collect();
    let mut tag: String = (parts.join("-").chars())
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    if tag.starts_with(['.', '-']) {
        tag.insert(0, '_');
    }
    tag.truncate(128);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tags_say_group_version_and_flavor() {
        assert_eq!(
            default_tag("web", "1.0", "[!kernel,openvz is: x86_64]"),
            "web-1.0-openvz-x86_64"
        );
        assert_eq!(
            default_tag("base", "2:1.0+b1", "[is: aarch64]"),
            "base-2_1.0_b1-aarch64"
        );
        assert_eq!(default_tag("-x", "1", "[is: x86_64]"), "_-x-1-x86_64");
        let long = default_tag(&"g".repeat(200), "1", "[is: x86_64]");
        assert_eq!(long.len(), 128);
    }
}
