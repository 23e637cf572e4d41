//! `appliance import`: a bundle taken into the store, all or nothing.
//!
//! Every member is hashed while it is copied into a private folder of the store, then
//! the documents, the lock and every archive are read and checked against one another
//! (the bundle must hold exactly what [`needed_blobs`] says beside one archive per
//! package); only then do the blobs, the archives (into `store/pool/`) and last the lock
//! go in, so a lock is never stored without its bytes.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Result;
use super::export::FLAVOR;
use super::layout::{
    BLOBS, Blob, Descriptor, EMPTY, EMPTY_BYTES, Hashing, INDEX, ImageLayout, Index, MANIFEST,
    Manifest, blob_of, blob_of_file, to_json,
};
use super::{
    ARTIFACT, Archive, BLAKE3, BLOB, BundleError, DEB, LOCK_ID, PACKAGE_ARCH, PACKAGE_NAME,
    PACKAGE_VERSION, RPM, needed_blobs,
};
use crate::excerpt::excerpt;
use crate::lock::Backend;
use crate::lock::Lock;
use crate::repo::{BlobStore, Repository, create_folder};
use crate::scratch::{self, Temp};

/// The most a bundle's `oci-layout` or `index.json`, or its manifest, may hold: far
/// more than they ever do, and little enough to read whole.
const DOCUMENT_LIMIT: u64 = 16 << 20;

/// What an import stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    /// `GROUP=VERSION-REVISION[FLAVOR]` in this repository.
    pub address: String,
    /// The lock id.
    pub lock_id: String,
    /// The repository's latest revision already held this lock.
    pub unchanged: bool,
    /// How many package archives the bundle held.
    pub archives: usize,
    /// How many blobs it held.
    pub blobs: usize,
}

/// Checks the bundle at `bundle` whole, then stores its blobs in `store/blobs`, its
/// archives in `store/pool` and its lock in the repository at `repo_path`.
pub fn import(bundle: &Path, store: &Path, repo_path: &Path) -> Result<Imported> {
    let source = bundle.display().to_string();
    take(&source, store, repo_path, |work, refuse| {
        Members::read(bundle, work, refuse)
    })
}

/// How a refusal names the member that is wrong and says why.
pub(crate) type Refuse<'a> = &'a dyn Fn(&str, String) -> BundleError;

/// Imports the layout `fill` copies into a private folder of the store (the members of a
/// bundle file, or an artifact pulled from a registry, `source` naming it in errors):
/// checks it whole, then stores its blobs, its archives and last its lock. `fill` fails
/// with its own error (a registry's), which a bundle's wraps.
pub(crate) fn take<E: From<BundleError>>(
    source: &str,
    store: &Path,
    repo_path: &Path,
    fill: impl FnOnce(&Path, Refuse) -> Result<Members, E>,
) -> Result<Imported, E> {
    let work = work_folder(store, repo_path)?;
    let refuse = |member: &str, reason: String| BundleError::Refused {
        bundle: source.to_string(),
        member: member.to_string(),
        reason,
    };
    let members = fill(&work.path, &refuse)?;
    Ok(put(members, store, repo_path, &refuse)?)
}

/// A private folder of `store` to copy a layout into, once `repo_path` is known to be a
/// repository (told before the layout is read).
fn work_folder(store: &Path, repo_path: &Path) -> Result<Temp> {
    Repository::check(repo_path)?;
    create_folder(store, 0o755).map_err(BundleError::io(store, "making the store folder"))?;
    let stem = std::ffi::OsStr::new(".import");
    scratch::remove_stale(store, |found| found == stem);
    Temp::dir(store, stem, 0o700).map_err(BundleError::io(
        store,
        "making a folder to unpack the bundle in",
    ))
}

/// Checks `members` whole, then stores their blobs in `store/blobs`, their archives in
/// `store/pool` and last their lock in the repository at `repo_path`.
fn put(members: Members, store: &Path, repo_path: &Path, refuse: Refuse) -> Result<Imported> {
    let checked = members.check(refuse)?;

    let pool = store.join("pool");
    let mut moves = Vec::new();
    for (archive, blob) in &checked.archives {
        let to = pool.join(archive.file_name());
        match blob_of_file(&to) {
            Ok(there) if there == *blob => {}
            Ok(_) => {
                let reason = format!(
                    "{} holds another archive of that name: move it away first",
                    to.display()
                );
                return Err(refuse(&member_name(&blob.hex), reason));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => moves.push((&archive.path, to)),
            Err(e) => return Err(BundleError::io(&to, "reading a pool archive")(e)),
        }
    }

    // Everything checks out: the bytes first, then the lock that needs them.
    let blobs = BlobStore::open(&store.join("blobs"))?;
    for path in &checked.blobs {
        let bytes = fs::read(path).map_err(BundleError::io(path, "reading a blob"))?;
        blobs.put(&bytes)?;
    }
    create_folder(&pool, 0o755).map_err(BundleError::io(&pool, "making the pool folder"))?;
    for (from, to) in moves {
        fs::set_permissions(from, fs::Permissions::from_mode(0o644))
            .and_then(|()| fs::rename(from, &to))
            .map_err(BundleError::io(&to, "putting an archive in the pool"))?;
    }
    let mut repo = Repository::open(repo_path)?;
    let stored = repo.store(&checked.lock)?;
    Ok(Imported {
        address: checked.lock.address(stored.revision),
        lock_id: stored.lock_id,
        unchanged: stored.unchanged,
        archives: checked.archives.len(),
        blobs: checked.blobs.len(),
    })
}

/// The name a blob has in the layout.
fn member_name(hex: &str) -> String {
    format!("{BLOBS}{hex}")
}

/// A layout's members, each hashed as it was copied out.
pub(crate) struct Members {
    /// `oci-layout`.
    layout: Option<Vec<u8>>,
    /// `index.json`.
    index: Option<Vec<u8>>,
    /// The blobs by SHA-256 hex, where they were copied and their size.
    blobs: BTreeMap<String, (PathBuf, u64)>,
}

/// A bundle whose members agree: the lock, its archives (with their blobs) in the lock's
/// package order, and the files of the blobs it needs.
struct Checked {
    lock: Lock,
    archives: Vec<(Archive, Blob)>,
    blobs: Vec<PathBuf>,
}

impl Members {
    /// The members of an artifact fetched from a registry into the work folder: the
    /// manifest `manifest` describes and the blobs, each copied there under its hex
    /// digest with its size, every one checked against its digest as it came.
    pub(crate) fn fetched(
        manifest: &Descriptor,
        blobs: BTreeMap<String, (PathBuf, u64)>,
    ) -> Members {
        Members {
            layout: Some(ImageLayout::bytes()),
            index: Some(to_json(&Index {
                schema_version: 2,
                media_type: INDEX.to_string(),
                manifests: vec![manifest.clone()],
            })),
            blobs,
        }
    }

    /// Copies every member of the tar at `bundle` into `work`, refusing a member that no
    /// layout has, one given twice, one cut short, and a blob whose bytes are not what its
    /// name says.
    fn read(bundle: &Path, work: &Path, refuse: Refuse) -> Result<Members, BundleError> {
        let file = File::open(bundle).map_err(BundleError::io(bundle, "opening the bundle"))?;
        let reader = BufReader::with_capacity(1 << 20, file);
        let mut archive = tar::Archive::new(crate::archive::Stream::new(reader));
        let whole = "the bundle";
        let unreadable = |e: io::Error| refuse(whole, format!("not a readable tar file ({e})"));
        let mut members = Members {
            layout: None,
            index: None,
            blobs: BTreeMap::new(),
        };
        for entry in archive.entries().map_err(unreadable)? {
            let mut entry = entry.map_err(|e| {
                refuse(
                    whole,
                    format!("cut short or damaged: no tar header where one should be ({e})"),
                )
            })?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let size = entry.header().size().map_err(unreadable)?;
            let kind = entry.header().entry_type();
            let cut = |got: u64| {
                refuse(
                    &name,
                    format!("cut short: {got} of its {size} bytes are in the bundle"),
                )
            };
            if kind.is_dir()
                && ["blobs", BLOBS.trim_end_matches('/')].contains(&name.trim_end_matches('/'))
            {
                continue;
            }
            if !kind.is_file() {
                return Err(refuse(&name, "not a file of an OCI image layout".into()));
            }
            let document = match name.as_str() {
                "oci-layout" => Some(&mut members.layout),
                "index.json" => Some(&mut members.index),
                _ => None,
            };
            if let Some(slot) = document {
                if slot.is_some() {
                    return Err(refuse(&name, "the bundle holds it twice".into()));
                }
                if size > DOCUMENT_LIMIT {
                    return Err(refuse(&name, format!("{size} bytes is no layout document")));
                }
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut bytes)
                    .map_err(|e| refuse(&name, e.to_string()))?;
                if bytes.len() as u64 != size {
                    return Err(cut(bytes.len() as u64));
                }
                *slot = Some(bytes);
                continue;
            }
            let hex = name
                .strip_prefix(BLOBS)
                .filter(|hex| super::layout::is_sha256(hex))
                .ok_or_else(|| refuse(&name, "not a file of an OCI image layout".into()))?;
            if members.blobs.contains_key(hex) {
                return Err(refuse(&name, "the bundle holds it twice".into()));
            }
            let path = work.join(hex);
            let mut copy = || -> io::Result<Blob> {
                let mut hashing = Hashing::new(File::create(&path)?);
                io::copy(&mut (&mut entry).take(size), &mut hashing)?;
                Ok(hashing.finish().1)
            };
            let blob = copy().map_err(BundleError::io(&path, "unpacking a member"))?;
            if blob.size != size {
                return Err(cut(blob.size));
            }
            if blob.hex != hex {
                let reason = format!(
                    "its bytes hash to sha256:{}, not to its name: the member was edited or damaged",
                    blob.hex
                );
                return Err(refuse(&name, reason));
            }
            members.blobs.insert(hex.to_string(), (path, size));
        }
        // Cut at a member's end, the bundle reads as whole but for the end-of-archive
        // blocks: the stream ran out before the reader saw them.
        if archive.into_inner().hit_eof() {
            return Err(refuse(
                whole,
                "cut short: it ends without the end-of-archive blocks".into(),
            ));
        }
        Ok(members)
    }

    /// Reads the documents, the lock and the archives and checks that the bundle holds
    /// exactly what the lock needs.
    fn check(&self, refuse: Refuse) -> Result<Checked, BundleError> {
        let present = |what: &Option<Vec<u8>>, name: &str| {
            what.clone().ok_or_else(|| {
                refuse(
                    name,
                    "missing: the bundle is cut short or no OCI image layout".into(),
                )
            })
        };
        let layout = present(&self.layout, "oci-layout")?;
        serde_json::from_slice::<super::layout::ImageLayout>(&layout)
            .map_err(|e| refuse("oci-layout", format!("not an image layout's: {e}")))?;
        let index: Index = serde_json::from_slice(&present(&self.index, "index.json")?)
            .map_err(|e| refuse("index.json", format!("not an image index: {e}")))?;
        let [pointer] = index.manifests.as_slice() else {
            let reason = format!(
                "it names {} manifests, not the one of a bundle",
                index.manifests.len()
            );
            return Err(refuse("index.json", reason));
        };
        if pointer.media_type != MANIFEST || pointer.artifact_type.as_deref() != Some(ARTIFACT) {
            let reason = format!("its manifest is no appliance lock ({ARTIFACT})");
            return Err(refuse("index.json", reason));
        }
        let mut used = vec![];
        let manifest_path = self.layer(pointer, "the manifest", refuse, &mut used)?;
        let manifest_name = member_name(pointer.hex().unwrap_or_default());
        let manifest: Manifest =
            serde_json::from_slice(&read_document(&manifest_path, &manifest_name, refuse)?)
                .map_err(|e| refuse(&manifest_name, format!("not an image manifest: {e}")))?;
        if manifest.artifact_type != ARTIFACT {
            let reason = format!(
                "its artifact type is {}, not {ARTIFACT}",
                excerpt(&manifest.artifact_type)
            );
            return Err(refuse(&manifest_name, reason));
        }
        let config = Descriptor::new(EMPTY, &blob_of(EMPTY_BYTES), BTreeMap::new());
        if manifest.config.digest != config.digest || manifest.config.media_type != EMPTY {
            return Err(refuse(
                &manifest_name,
                format!("its config is not the empty one ({EMPTY})"),
            ));
        }
        self.layer(&manifest.config, "the config", refuse, &mut used)?;

        let Some((lock_layer, layers)) = manifest
            .layers
            .split_first()
            .filter(|(l, _)| l.media_type == ARTIFACT)
        else {
            return Err(refuse(
                &manifest_name,
                format!("its first layer is not the lock ({ARTIFACT})"),
            ));
        };
        let lock_path = self.layer(lock_layer, "the lock", refuse, &mut used)?;
        let lock_name = format!(
            "the lock ({})",
            member_name(lock_layer.hex().unwrap_or_default())
        );
        let lock = read_lock(&lock_path, &lock_name, refuse)?;
        let id = lock.id();
        for (what, said) in [
            (&lock_name, lock_layer.annotation(LOCK_ID)),
            (
                &manifest_name,
                manifest.annotations.get(LOCK_ID).map_or("", String::as_str),
            ),
        ] {
            if said != id {
                let reason = format!(
                    "its {LOCK_ID} annotation says {}, but the lock's id is {id}",
                    excerpt(said)
                );
                return Err(refuse(what, reason));
            }
        }
        let flavor = manifest.annotations.get(FLAVOR).map_or("", String::as_str);
        if flavor != lock.flavor {
            return Err(refuse(
                &manifest_name,
                format!("its {FLAVOR} annotation is not the lock's flavor"),
            ));
        }

        let backend = lock.inputs.backend;
        let archive_type = match backend {
            Backend::Dpkg => DEB,
            Backend::Rpm => RPM,
        };
        let mut archives: HashMap<String, (Archive, Blob)> = HashMap::new();
        let mut blobs: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
        for layer in layers {
            let name = describe(layer);
            let path = self.layer(layer, &name, refuse, &mut used)?;
            if layer.media_type == archive_type {
                let archive = Archive::read(&path, backend).map_err(|why| refuse(&name, why))?;
                let said = (
                    layer.annotation(PACKAGE_NAME),
                    layer.annotation(PACKAGE_VERSION),
                    layer.annotation(PACKAGE_ARCH),
                );
                if (
                    archive.name.as_str(),
                    archive.version.as_str(),
                    archive.arch.as_str(),
                ) != said
                {
                    let reason = format!(
                        "it holds {} {} ({}), not what its annotations say",
                        excerpt(&archive.name),
                        excerpt(&archive.version),
                        excerpt(&archive.arch)
                    );
                    return Err(refuse(&name, reason));
                }
                if !lock.packages.iter().any(|p| archive.is_of(p)) {
                    return Err(refuse(
                        &name,
                        "the lock pins no such package: the bundle holds more than the lock needs"
                            .into(),
                    ));
                }
                let blob = Blob {
                    hex: layer.hex().unwrap_or_default().to_string(),
                    size: layer.size,
                };
                if archives
                    .insert(archive.name.clone(), (archive, blob))
                    .is_some()
                {
                    return Err(refuse(&name, "a second archive of the package".into()));
                }
            } else if layer.media_type == BLOB {
                let bytes = fs::read(&path).map_err(BundleError::io(&path, "reading a blob"))?;
                let digest = blake3::hash(&bytes).to_hex().to_string();
                if digest != layer.annotation(BLAKE3) {
                    let reason = format!(
                        "its bytes have BLAKE3 {digest}, not the {} its annotation says",
                        excerpt(layer.annotation(BLAKE3))
                    );
                    return Err(refuse(&name, reason));
                }
                blobs.insert(digest, (path, name));
            } else {
                return Err(refuse(
                    &name,
                    format!(
                        "a layer of media type {} has no place in a bundle of this lock",
                        excerpt(&layer.media_type)
                    ),
                ));
            }
        }
        for hex in self.blobs.keys() {
            if !used.contains(hex) {
                return Err(refuse(
                    &member_name(hex),
                    "no layer of the manifest: the bundle holds more than the lock needs".into(),
                ));
            }
        }
        // A package without its archive (an installed one whose version no archive has
        // any more) must have every file as a blob: `needed_blobs` asks for them.
        let ordered: Vec<_> = (lock.packages.iter())
            .filter_map(|package| archives.remove(&package.name))
            .collect();
        let held: HashMap<&str, &Archive> =
            ordered.iter().map(|(a, _)| (a.name.as_str(), a)).collect();
        let needed = needed_blobs(&lock, &held);
        if let Some((digest, path)) = needed.iter().find(|(d, _)| !blobs.contains_key(**d)) {
            let reason = format!(
                "it lacks the blob {digest}, the content of {}",
                excerpt(path)
            );
            return Err(refuse("the bundle", reason));
        }
        if let Some((_, (_, name))) = blobs.iter().find(|(d, _)| !needed.contains_key(d.as_str())) {
            return Err(refuse(
                name,
                "a blob the lock does not need (its package's archive holds it, or no file has it)"
                    .into(),
            ));
        }
        let blobs = blobs.into_values().map(|(path, _)| path).collect();
        Ok(Checked {
            lock,
            archives: ordered,
            blobs,
        })
    }

    /// The copied file of the blob `descriptor` points at, checked to be there at its
    /// size; records it as `used`.
    fn layer(
        &self,
        descriptor: &Descriptor,
        what: &str,
        refuse: Refuse,
        used: &mut Vec<String>,
    ) -> Result<PathBuf, BundleError> {
        let hex = descriptor.hex().ok_or_else(|| {
            refuse(
                what,
                format!(
                    "its digest {} is no sha256 digest",
                    excerpt(&descriptor.digest)
                ),
            )
        })?;
        let Some((path, size)) = self.blobs.get(hex) else {
            return Err(refuse(
                what,
                format!("missing: the bundle holds no {}", member_name(hex)),
            ));
        };
        if *size != descriptor.size {
            let reason = format!(
                "{} bytes in the bundle, {} in its descriptor",
                size, descriptor.size
            );
            return Err(refuse(what, reason));
        }
        used.push(hex.to_string());
        Ok(path.clone())
    }
}

/// How an error names a layer: what its annotations say it is, and its member.
pub(crate) fn describe(layer: &Descriptor) -> String {
    let member = member_name(layer.hex().unwrap_or("?"));
    let annotation = |key| excerpt(layer.annotation(key)).to_string();
    match layer.media_type.as_str() {
        DEB | RPM => format!(
            "the archive of {} {} ({}) ({member})",
            annotation(PACKAGE_NAME),
            annotation(PACKAGE_VERSION),
            annotation(PACKAGE_ARCH)
        ),
        BLOB => format!("blob {} ({member})", annotation(BLAKE3)),
        _ => member,
    }
}

/// A document the bundle holds, read whole (it is small).
fn read_document(path: &Path, name: &str, refuse: Refuse) -> Result<Vec<u8>, BundleError> {
    let size = fs::metadata(path)
        .map_err(BundleError::io(path, "reading a document"))?
        .len();
    if size > DOCUMENT_LIMIT {
        return Err(refuse(name, format!("{size} bytes is no manifest")));
    }
    fs::read(path).map_err(BundleError::io(path, "reading a document"))
}

/// The lock layer's lock, which must be in canonical form: the bytes its id is of.
fn read_lock(path: &Path, name: &str, refuse: Refuse) -> Result<Lock, BundleError> {
    let bytes = fs::read(path).map_err(BundleError::io(path, "reading the lock"))?;
    let lock: Lock =
        serde_json::from_slice(&bytes).map_err(|e| refuse(name, format!("not a lock: {e}")))?;
    if lock.canonical_bytes() != bytes {
        return Err(refuse(
            name,
            "not a lock in canonical form (packages and files sorted, fields in order)".into(),
        ));
    }
    Ok(lock)
}
