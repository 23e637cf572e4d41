//! The bundle's container: an OCI image layout (image-spec 1.1) as one tar file, as
//! `skopeo copy oci-archive:` and ORAS read it. `oci-layout`, `index.json` naming one
//! artifact manifest, and `blobs/sha256/<digest>` holding the manifest, the empty config
//! and every layer. Each document is a struct serialised compactly in its declared field
//! order and every tar header is fixed (mode 0644 or 0755, owner 0, time 0), so the
//! same layers give the same bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) use crate::materialise::{Blob, Hashing};

/// `index.json`'s media type.
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The artifact manifest's media type.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The empty config an artifact without a config of its own points at.
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's bytes.
pub const EMPTY_BYTES: &[u8] = b"{}";
/// `oci-layout`'s one version.
const LAYOUT_VERSION: &str = "1.0.0";
/// Where the blobs are, by SHA-256.
pub const BLOBS: &str = "blobs/sha256/";

/// `oci-layout`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImageLayout {
    /// Always `1.0.0`.
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

impl ImageLayout {
    /// The layout file's content.
    pub fn bytes() -> Vec<u8> {
        to_json(&ImageLayout {
            image_layout_version: LAYOUT_VERSION.to_string(),
        })
    }
}

/// `index.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// [`INDEX`].
    pub media_type: String,
    /// The one artifact manifest.
    pub manifests: Vec<Descriptor>,
}

/// The artifact manifest.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MANIFEST`].
    pub media_type: String,
    /// What the artifact is ([`super::ARTIFACT`]).
    pub artifact_type: String,
    /// The empty config.
    pub config: Descriptor,
    /// The lock, then the archives, then the blobs.
    pub layers: Vec<Descriptor>,
    /// What a referrer refers to (a document attached to a lock's manifest); a lock's
    /// own manifest has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// What the lock is (group, version, flavor, lock id).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// What points at a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// A manifest's artifact type, on the index's descriptor of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Its length in bytes.
    pub size: u64,
    /// What it holds, for people and for the import's checks.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `media_type` for the blob `blob`, annotated with `annotations`.
    pub fn new(media_type: &str, blob: &Blob, annotations: BTreeMap<String, String>) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            artifact_type: None,
            digest: format!("sha256:{}", blob.hex),
            size: blob.size,
            annotations,
        }
    }

    /// The blob's SHA-256 in hex, when the digest is one (`sha256:` and 64 hex digits).
    pub fn hex(&self) -> Option<&str> {
        self.digest
            .strip_prefix("sha256:")
            .filter(|hex| is_sha256(hex))
    }

    /// One annotation's value, or "".
    pub fn annotation(&self, key: &str) -> &str {
        self.annotations.get(key).map_or("", String::as_str)
    }
}

/// Whether `text` is a lower-case hex SHA-256.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The blob of `bytes`.
pub fn blob_of(bytes: &[u8]) -> Blob {
    Blob {
        hex: hex::encode(Sha256::digest(bytes)),
        size: bytes.len() as u64,
    }
}

/// The blob of the file at `path`, read once.
pub fn blob_of_file(path: &Path) -> io::Result<Blob> {
    let mut hashing = Hashing::new(io::sink());
    io::copy(&mut File::open(path)?, &mut hashing)?;
    Ok(hashing.finish().1)
}

/// Compact JSON in the structs' field order.
pub fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these structs of strings, integers and string maps cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Writes a layout's members into a tar stream with fixed headers.
pub struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarWriter<W> {
    /// A tar stream into `out`, starting with the layout's folders.
    pub fn new(out: W) -> io::Result<TarWriter<W>> {
        let mut writer = TarWriter {
            builder: tar::Builder::new(out),
        };
        for dir in ["blobs/", BLOBS] {
            let mut header = header(dir, 0, 0o755);
            header.set_entry_type(tar::EntryType::Directory);
            header.set_cksum();
            writer.builder.append(&header, io::empty())?;
        }
        Ok(writer)
    }

    /// Appends the file `name` of `size` bytes read from `content`.
    pub fn file(&mut self, name: &str, size: u64, content: impl Read) -> io::Result<()> {
        let mut header = header(name, size, 0o644);
        header.set_cksum();
        self.builder.append(&header, content)
    }

    /// Ends the stream; returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// A ustar header for `name`, owned by 0:0, dated 0.
fn header(name: &str, size: u64, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    // Layout names are short ASCII (at most 77 bytes): ustar holds them.
    let _ = header.set_path(name);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_config_is_the_specs() {
        // image-spec 1.1's "Guidance for an empty descriptor".
        assert_eq!(
            blob_of(EMPTY_BYTES).hex,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn the_same_members_give_the_same_bytes() {
        let write = || {
            let mut tar = TarWriter::new(Vec::new()).unwrap();
            tar.file("oci-layout", 5, &b"hello"[..]).unwrap();
            tar.finish().unwrap()
        };
        let bytes = write();
        assert_eq!(bytes, write());
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = (archive.entries().unwrap())
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["blobs/", "blobs/sha256/", "oci-layout"]);
    }

    #[test]
    fn a_descriptor_digest_must_be_sha256_hex() {
        let blob = blob_of(b"x");
        let good = Descriptor::new(EMPTY, &blob, BTreeMap::new());
        assert_eq!(good.hex(), Some(blob.hex.as_str()));
        let bad = Descriptor {
            digest: "sha256:../../etc/passwd".into(),
            ..good
        };
        assert_eq!(bad.hex(), None);
    }
}
