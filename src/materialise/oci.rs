//! The oci format: the lock as an OCI image layout directory (image-spec 1.1) holding
//! one image of one layer.
//!
//! OUT gets `oci-layout`, `index.json` and `blobs/sha256/` with three blobs: the layer
//! (the lock's tar stream from [`tarball::write`], gzipped), the image config and the
//! manifest. `index.json` names the manifest by one tag (`org.opencontainers.image.ref.name`),
//! `latest` unless `--tag` gives another ([`Tag`]), and nothing else: with a second
//! descriptor (say the group's version as a ref),
//! `skopeo` refuses `oci:OUT` without a tag ("more than one image"), and the version does
//! not name one image anyway (every revision of `1.0` has it). So the version goes in the
//! manifest's `org.opencontainers.image.version` annotation and the lock id in the
//! config's history. Every JSON document is a struct serialised in its declared field
//! order and every time is the run's mtime or the lock's own, so the same lock gives the
//! same bytes and the same digests. The config's `User`, `ExposedPorts`, `Env`,
//! `Entrypoint`, `Cmd`, `WorkingDir` and `Labels` are the lock's `cmd` and container
//! settings, maps sorted by key.
//!
//! The layer leaves out the lock's char and block devices (its `/dev` directory, links
//! and `pts`/`shm` folders stay). An OCI runtime mounts a fresh `/dev` and makes the
//! standard nodes itself (runtime-spec "Default Devices"), so nodes in a layer are never
//! seen by a container; they only trouble consumers that cannot make them: unprivileged
//! unpacking (Docker's archive code skips them inside a user namespace) and ostree, which
//! cannot store them (rpm-ostree grew `ignore-devices` for such images, and minideb
//! dropped its nodes for that reason). apko does write five nodes into its layers; here
//! the runtimes' view wins. FIFOs stay: anyone may make one.

mod tag;

pub use tag::Tag;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::lang::Flavor;
use crate::lock::Lock;

use super::output::{Target, TempPath};
use super::plan::Plan;
use super::tarball::{self, Devices, Encoder};
use super::{Compression, MaterialiseError, Supply, io_error};
use crate::progress::Progress;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The search path of Debian's login shells, which Docker's images use too; an `env`
/// statement setting `PATH` replaces it.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Instruction set (as flavors name it) to the OCI platform's GOARCH-style architecture
/// and variant.
const PLATFORMS: &[(&str, &str, Option<&str>)] = &[
    ("x86_64", "amd64", None),
    ("aarch64", "arm64", None),
    ("i686", "386", None),
    ("i386", "386", None),
    ("armv7l", "arm", Some("v7")),
    ("ppc64le", "ppc64le", None),
    ("s390x", "s390x", None),
    ("riscv64", "riscv64", None),
];

/// Writes the image layout of `lock` (whose id is `lock_id`), its image named `tag`, in
/// a temporary directory beside OUT; returns it and the number of layer members, the
/// root not counted.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    plan: &Plan,
    supply: &Supply,
    lock: &Lock,
    lock_id: &str,
    tag: &Tag,
    target: &Target,
    mtime: u64,
    progress: &Progress,
) -> Result<(TempPath, usize), MaterialiseError> {
    // Everything that can refuse the lock does so before the layer's long write.
    let platform = Platform::of(&lock.flavor)?;
    let created = rfc3339(mtime).ok_or(MaterialiseError::Created { mtime })?;
    if let Some(item) = plan.items.iter().find(|item| is_whiteout(&item.entry.path)) {
        return Err(MaterialiseError::Whiteout {
            path: item.entry.path.clone(),
        });
    }

    let out = &target.out;
    let temp = target.temp_dir()?;
    let blobs = temp.path.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| io_error(out, "create", blobs.display(), e))?;
    let (layer, diff_id, files) = write_layer(plan, supply, out, &blobs, mtime, progress)?;

    let config = Image {
        created: created.clone(),
        architecture: platform.architecture,
        variant: platform.variant,
        os: platform.os,
        config: RunConfig::of(lock),
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![diff_id.name()],
        },
        history: vec![History {
            created,
            created_by: "appliance materialise --format oci".to_string(),
            comment: format!(
                "{}={}{}, lock {lock_id}",
                lock.group, lock.version, lock.flavor
            ),
        }],
    };
    let config = put_json(out, &blobs, &config)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: MANIFEST,
        config: Descriptor::new(CONFIG, &config),
        layers: vec![Descriptor::new(LAYER, &layer)],
        annotations: BTreeMap::from([
            ("org.opencontainers.image.title", lock.group.clone()),
            ("org.opencontainers.image.version", lock.version.clone()),
        ]),
    };
    let manifest = put_json(out, &blobs, &manifest)?;
    let index = Index {
        schema_version: 2,
        media_type: INDEX,
        manifests: vec![Descriptor {
            platform: Some(platform),
            annotations: BTreeMap::from([("org.opencontainers.image.ref.name", tag.to_string())]),
            ..Descriptor::new(MANIFEST, &manifest)
        }],
    };
    write_file(out, &temp.path.join("index.json"), &to_json(&index))?;
    write_file(
        out,
        &temp.path.join("oci-layout"),
        &to_json(&ImageLayout {
            image_layout_version: "1.0.0",
        }),
    )?;
    // The temporary was made private; the layout is as readable as any other output.
    fs::set_permissions(&temp.path, fs::Permissions::from_mode(0o755))
        .map_err(|e| io_error(out, "set the mode of", temp.path.display(), e))?;
    Ok((temp, files))
}

/// Streams the layer into `blobs` under its digest. Returns the compressed blob, the
/// uncompressed tar's digest (the config's diff_id), and the number of members.
fn write_layer(
    plan: &Plan,
    supply: &Supply,
    out: &Path,
    blobs: &Path,
    mtime: u64,
    progress: &Progress,
) -> Result<(Blob, Blob, usize), MaterialiseError> {
    let partial = blobs.join("layer.partial");
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&partial)
        .map_err(|e| io_error(out, "create", partial.display(), e))?;
    // Both digests in one pass: one hasher on each side of the compressor.
    let compressed = Hashing::new(BufWriter::with_capacity(1 << 20, file));
    let encoder = Encoder::new(Compression::Gzip, compressed)
        .map_err(|e| io_error(out, "start compressing", partial.display(), e))?;
    let (plain, files) = tarball::write(
        plan,
        supply,
        out,
        Hashing::new(encoder),
        mtime,
        Devices::Omit,
        progress,
    )?;
    let finish_err = |e| io_error(out, "finish", partial.display(), e);
    let (encoder, diff_id) = plain.finish();
    let (buffered, layer) = encoder.finish().map_err(finish_err)?.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| finish_err(e.into_error()))?;
    file.sync_all().map_err(finish_err)?;
    let path = blobs.join(&layer.hex);
    fs::rename(&partial, &path).map_err(|e| io_error(out, "rename", path.display(), e))?;
    Ok((layer, diff_id, files))
}

/// Writes `value` as a blob named by its digest.
fn put_json(out: &Path, blobs: &Path, value: &impl Serialize) -> Result<Blob, MaterialiseError> {
    let bytes = to_json(value);
    let blob = Blob {
        hex: hex::encode(Sha256::digest(&bytes)),
        size: bytes.len() as u64,
    };
    write_file(out, &blobs.join(&blob.hex), &bytes)?;
    Ok(blob)
}

/// Compact JSON in the structs' field order.
fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising these structs of strings, integers and string maps cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn write_file(out: &Path, path: &Path, bytes: &[u8]) -> Result<(), MaterialiseError> {
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|e| io_error(out, "write", path.display(), e))
}

/// Whether an unpacker would take the path for a whiteout (a deletion marker) and not
/// make it: its name starts with `.wh.`.
fn is_whiteout(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with(".wh."))
}

/// `secs` since the epoch as RFC 3339 in UTC; `None` past year 9999, which has no
/// four-digit year.
pub(crate) fn rfc3339(secs: u64) -> Option<String> {
    const LAST: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if secs > LAST {
        return None;
    }
    let (year, month, day) = civil_from_days(secs / 86_400);
    let time = secs % 86_400;
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// A writer that passes bytes on and keeps their SHA-256 and count.
pub(crate) struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Hashing<W> {
    /// Hashes what goes through to `inner`.
    pub(crate) fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// The writer back, and the digest and size of everything written through.
    pub(crate) fn finish(self) -> (W, Blob) {
        let blob = Blob {
            hex: hex::encode(self.hasher.finalize()),
            size: self.size,
        };
        (self.inner, blob)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only what the inner writer took: the caller retries the rest.
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A blob's SHA-256 (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Blob {
    /// Lower-case hex.
    pub(crate) hex: String,
    /// Bytes.
    pub(crate) size: u64,
}

impl Blob {
    /// The digest as descriptors write it.
    fn name(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

/// Which machines the image runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Platform {
    architecture: &'static str,
    os: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
}

impl Platform {
    /// The platform of a lock's canonical flavor string.
    fn of(flavor: &str) -> Result<Platform, MaterialiseError> {
        let refuse = |reason: String| MaterialiseError::Platform {
            flavor: flavor.to_string(),
            reason,
        };
        let arch = Flavor::parse_canonical(flavor)
            .map_err(|e| refuse(e.to_string()))?
            .arch;
        let &(_, architecture, variant) = PLATFORMS
            .iter()
            .find(|(name, _, _)| *name == arch)
            .ok_or_else(|| refuse(format!("no OCI architecture is known for `{arch}`")))?;
        Ok(Platform {
            architecture,
            os: "linux",
            variant,
        })
    }
}

/// `oci-layout`.
#[derive(Serialize)]
struct ImageLayout {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: &'static str,
}

/// `index.json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// The image manifest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<&'static str, String>,
}

/// What points at a blob.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

impl Descriptor {
    fn new(media_type: &'static str, blob: &Blob) -> Descriptor {
        Descriptor {
            media_type,
            digest: blob.name(),
            size: blob.size,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// The image config, in the specification's field order.
#[derive(Serialize)]
struct Image {
    created: String,
    architecture: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'static str>,
    os: &'static str,
    config: RunConfig,
    rootfs: RootFs,
    history: Vec<History>,
}

/// What a container of the image runs by default, in the specification's field order;
/// what the lock leaves unset is left out.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, Empty>,
    env: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cmd: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

impl RunConfig {
    /// The config of `lock`: its `cmd` and container settings, with the standard `PATH`
    /// unless an `env` sets one. Variables are sorted by name.
    fn of(lock: &Lock) -> RunConfig {
        let container = &lock.container;
        let mut env = BTreeMap::from([("PATH", PATH)]);
        env.extend((container.env.iter()).map(|(name, value)| (name.as_str(), value.as_str())));
        RunConfig {
            user: container.user.clone(),
            exposed_ports: (container.ports.iter())
                .map(|port| (port.clone(), Empty {}))
                .collect(),
            env: (env.iter())
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
            entrypoint: container.entrypoint.clone(),
            cmd: lock.cmd.clone(),
            working_dir: container.workdir.clone(),
            labels: container.labels.clone(),
        }
    }
}

/// The empty object the specification gives each exposed port.
#[derive(Serialize)]
struct Empty {}

/// The layers' uncompressed digests.
#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// How the layer was made.
#[derive(Serialize)]
struct History {
    created: String,
    created_by: String,
    comment: String,
}

#[cfg(test)]
mod tests;
