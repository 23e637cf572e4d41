//! `appliance export`: a stored lock and the bytes it needs, written as a bundle.
//!
//! Each package's archive comes from the pool folders, else (dpkg only) from one
//! `apt-get download NAME:ARCH=VERSION...` of all the missing ones into a private folder, and goes in only when
//! every file of the package is its archive's or a blob the store holds (what
//! configuration changed): another archive of the same name and version would
//! materialise other bytes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};

use super::Result;
use super::layout::{
    BLOBS, Descriptor, EMPTY, EMPTY_BYTES, INDEX, ImageLayout, Index, MANIFEST, Manifest,
    TarWriter, blob_of, blob_of_file, to_json,
};
use super::{ARTIFACT, Archive, BLAKE3, BLOB, BundleError, LOCK_ID, TITLE, needed_blobs};
use crate::lock::Backend;
use crate::lock::{FileKind, Lock, LockedPackage};
use crate::materialise::{Protected, Sources, Target};
use crate::repo::{BlobStore, StoredLock};
use crate::source::dpkg::apt::{self, AptGet, Wanted};
use crate::source::dpkg::pool::Pool;
use crate::source::rpm::catalog::RpmCatalog;

/// The manifest's annotation naming the lock's flavor.
pub(super) const FLAVOR: &str = "dev.appliance.lock.flavor";

/// What `appliance export` was asked besides the lock.
pub struct ExportOptions {
    /// The bundle file to write.
    pub out: PathBuf,
    /// Replace OUT even when appliance did not make it (never a protected path).
    pub force: bool,
    /// Where archives `apt-get download` fetches are kept once checked (`store/pool`),
    /// so the next export or push of the same packages finds them there.
    pub pool_dir: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    /// The bundle's size in bytes.
    pub bytes: u64,
    /// The manifest's digest (`sha256:...`): the artifact's name in a registry.
    pub manifest: String,
    /// How many package archives it holds.
    pub archives: usize,
    /// How many blobs it holds.
    pub blobs: usize,
    /// The archives `apt-get download` fetched (`name=version`), the pools lacking them.
    pub downloaded: Vec<String>,
    /// What the user should know (an old OUT that could not be removed).
    pub warnings: Vec<String>,
}

/// Writes the bundle of `stored` to `opts.out`, taking archives from `sources`' pool
/// folders (or downloading them) and blobs from its blob store. Refuses an OUT
/// materialise would refuse, before any work; OUT is replaced whole or not at all.
pub fn export(
    stored: &StoredLock,
    sources: &Sources,
    protected: &Protected,
    opts: &ExportOptions,
) -> Result<Exported> {
    let target = Target::new(&opts.out)?;
    target.check_replace(sources, protected, opts.force)?;
    target.remove_stale();
    let artifact = Artifact::of(stored, sources, &opts.pool_dir)?;
    let index = to_json(&Index {
        schema_version: 2,
        media_type: INDEX.to_string(),
        manifests: vec![artifact.descriptor()],
    });

    let (temp, file) = target.temp_file()?;
    let write = || -> io::Result<File> {
        let mut tar = TarWriter::new(BufWriter::with_capacity(1 << 20, file))?;
        tar.file(
            "oci-layout",
            ImageLayout::bytes().len() as u64,
            &ImageLayout::bytes()[..],
        )?;
        tar.file("index.json", index.len() as u64, &index[..])?;
        let manifest = &artifact.manifest;
        let name = format!("{BLOBS}{}", blob_of(manifest).hex);
        tar.file(&name, manifest.len() as u64, &manifest[..])?;
        for layer in artifact.blobs() {
            let d = &layer.descriptor;
            let name = format!("{BLOBS}{}", d.digest.trim_start_matches("sha256:"));
            tar.file(&name, d.size, layer.reader()?)?;
        }
        let file = tar.finish()?.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file)
    };
    let file = write().map_err(BundleError::io(&temp.path, "writing the bundle"))?;
    let bytes = file
        .metadata()
        .map_err(BundleError::io(&temp.path, "examining the bundle"))?
        .len();
    let mut warnings = artifact.warnings();
    target.install(temp, &mut warnings)?;
    Ok(Exported {
        bytes,
        manifest: artifact.digest(),
        archives: artifact.archives,
        blobs: artifact.blobs,
        downloaded: artifact.downloaded,
        warnings,
    })
}

/// A stored lock as the OCI artifact a bundle holds and a registry carries: its
/// manifest, and where the bytes of the config and of each layer are.
pub struct Artifact {
    /// The manifest, compact JSON.
    pub manifest: Vec<u8>,
    /// The empty config, then the layers in the manifest's order.
    layers: Vec<Layer>,
    /// How many package archives it holds.
    pub archives: usize,
    /// How many blobs it holds.
    pub blobs: usize,
    /// The archives `apt-get download` fetched (`name=version`), the pools lacking them.
    pub downloaded: Vec<String>,
    /// Installed packages with no archive to be had (`name=version`, why): their files
    /// go in as blobs read from the host, each checked against the lock.
    pub from_host: Vec<String>,
}

impl Artifact {
    /// What the user should know of how it was made: the installed packages whose
    /// files it holds as blobs, since no archive of them could be had.
    pub fn warnings(&self) -> Vec<String> {
        (self.from_host.iter())
            .map(|package| {
                format!("no archive of {package}: its files go in as blobs read from the host")
            })
            .collect()
    }

    /// The artifact of `stored`, taking archives from `sources`' pool folders (or
    /// downloading them into `pool_dir`) and blobs from its blob store, each checked
    /// against the lock.
    pub fn of(stored: &StoredLock, sources: &Sources, pool_dir: &Path) -> Result<Artifact> {
        let lock = &stored.lock;
        let blobs_dir = sources.blobs.clone().unwrap_or_default();
        let store = BlobStore::existing(&blobs_dir);
        let Gathered {
            archives,
            downloaded,
            from_host,
        } = gather(lock, sources, pool_dir, &store)?;
        let held: HashMap<&str, &Archive> =
            (archives.iter()).map(|a| (a.name.as_str(), a)).collect();
        let mut layers = vec![Layer::lock(stored)];
        for archive in &archives {
            let blob = blob_of_file(&archive.path)
                .map_err(BundleError::io(&archive.path, "reading an archive"))?;
            layers.push(Layer {
                descriptor: Descriptor::new(archive.media_type, &blob, archive.annotations()),
                content: Content::File(archive.path.clone()),
            });
        }
        let needed = needed_blobs(lock, &held);
        for (&digest, &path) in &needed {
            layers.push(Layer::blob(&store, &sources.sysroot, lock, digest, path)?);
        }
        let config = Layer::document(EMPTY, EMPTY_BYTES.to_vec());
        let manifest = to_json(&Manifest {
            schema_version: 2,
            media_type: MANIFEST.to_string(),
            artifact_type: ARTIFACT.to_string(),
            config: config.descriptor.clone(),
            layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
            subject: None,
            annotations: BTreeMap::from([
                ("org.opencontainers.image.title".into(), lock.group.clone()),
                (
                    "org.opencontainers.image.version".into(),
                    lock.version.clone(),
                ),
                (FLAVOR.into(), lock.flavor.clone()),
                (LOCK_ID.into(), stored.lock_id.clone()),
            ]),
        });
        layers.insert(0, config);
        Ok(Artifact {
            manifest,
            layers,
            archives: archives.len(),
            blobs: needed.len(),
            downloaded,
            from_host,
        })
    }

    /// The manifest's digest (`sha256:...`): the artifact's name in a registry.
    pub fn digest(&self) -> String {
        format!("sha256:{}", blob_of(&self.manifest).hex)
    }

    /// The descriptor of the manifest, with its artifact type, as an index lists it.
    pub(crate) fn descriptor(&self) -> Descriptor {
        Descriptor {
            artifact_type: Some(ARTIFACT.to_string()),
            ..Descriptor::new(MANIFEST, &blob_of(&self.manifest), BTreeMap::new())
        }
    }

    /// The config and the layers, each distinct blob once (two layers of the same
    /// bytes are one blob), in the manifest's order.
    pub fn blobs(&self) -> impl Iterator<Item = &Layer> {
        let mut seen = HashSet::new();
        (self.layers.iter()).filter(move |layer| seen.insert(layer.descriptor.digest.clone()))
    }
}

/// One blob of the artifact and where its bytes are.
pub struct Layer {
    /// What points at it.
    pub(crate) descriptor: Descriptor,
    content: Content,
}

/// Where a member's bytes are.
enum Content {
    /// In memory (the documents and the lock).
    Bytes(Vec<u8>),
    /// In a file (an archive, a blob), read while the tar is written.
    File(PathBuf),
}

impl Layer {
    /// Its bytes, read from the start.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match &self.content {
            Content::Bytes(bytes) => Box::new(&bytes[..]),
            Content::File(path) => Box::new(File::open(path)?.take(self.descriptor.size)),
        })
    }

    /// A document of the layout that is no layer: the config.
    fn document(media_type: &str, bytes: Vec<u8>) -> Layer {
        Layer {
            descriptor: Descriptor::new(media_type, &blob_of(&bytes), BTreeMap::new()),
            content: Content::Bytes(bytes),
        }
    }

    /// The lock layer: its canonical JSON.
    fn lock(stored: &StoredLock) -> Layer {
        let bytes = stored.lock.canonical_bytes();
        let annotations = BTreeMap::from([
            (TITLE.to_string(), "lock.json".to_string()),
            (LOCK_ID.to_string(), stored.lock_id.clone()),
        ]);
        Layer {
            descriptor: Descriptor::new(ARTIFACT, &blob_of(&bytes), annotations),
            content: Content::Bytes(bytes),
        }
    }

    /// The layer of the blob `digest`, the content of `path`, checked against its name.
    /// The blob `digest` (first locked at `path`): the blob store's, else the host's file
    /// of an installed package no archive can be had of, which must have that BLAKE3.
    fn blob(
        store: &BlobStore,
        sysroot: &Path,
        lock: &Lock,
        digest: &str,
        path: &str,
    ) -> Result<Layer, BundleError> {
        let file = store.path(digest);
        let missing = || BundleError::MissingBlob {
            path: path.to_string(),
            digest: digest.to_string(),
        };
        let (blob, content) = match fs::read(&file) {
            Ok(bytes) if blake3::hash(&bytes).to_hex().as_str() == digest => {
                (blob_of(&bytes), Content::File(file))
            }
            Ok(_) => {
                return Err(BundleError::io(&file, "reading a blob")(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "its content does not hash to its name: the blob store is damaged",
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let at = (lock.file(path))
                    .and_then(|e| e.origin.as_deref())
                    .unwrap_or(path);
                let host = sysroot.join(at.trim_start_matches('/'));
                let bytes = crate::no_follow::read(&host).map_err(|_| missing())?;
                if blake3::hash(&bytes).to_hex().as_str() != digest {
                    return Err(missing());
                }
                (blob_of(&bytes), Content::Bytes(bytes))
            }
            Err(e) => return Err(BundleError::io(&file, "reading a blob")(e)),
        };
        let annotations = BTreeMap::from([
            (TITLE.to_string(), digest.to_string()),
            (BLAKE3.to_string(), digest.to_string()),
        ]);
        Ok(Layer {
            descriptor: Descriptor::new(BLOB, &blob, annotations),
            content,
        })
    }
}

/// What [`gather`] found.
struct Gathered {
    /// The archive of every package that has one, in the lock's order, each checked.
    archives: Vec<Archive>,
    /// The ones downloaded (`name=version`).
    downloaded: Vec<String>,
    /// Installed packages no archive could be had of (`name=version`, why).
    from_host: Vec<String>,
}

/// The archive of every package of `lock`: from the pools, else downloaded. An
/// installed package whose version the archive no longer has (a point release moved
/// on) has none: its files are the host's, as blobs. A downloaded archive, once checked,
/// is kept in `pool_dir`.
fn gather(lock: &Lock, sources: &Sources, pool_dir: &Path, store: &BlobStore) -> Result<Gathered> {
    let backend = lock.inputs.backend;
    let candidates = Candidates::survey(backend, &sources.pool)?;
    // By the lock's order; the ones the pools lack are downloaded together afterwards.
    let mut found = Vec::new();
    let mut lacking = Vec::new();
    for (index, package) in lock.packages.iter().enumerate() {
        let mut tried = Vec::new();
        let mut archive = None;
        for path in candidates.of(package) {
            match Archive::read(&path, backend).map_err(|why| (path.clone(), why)) {
                Ok(candidate) => match check(lock, package, &candidate, store) {
                    Ok(()) => {
                        archive = Some(candidate);
                        break;
                    }
                    Err(mismatch) => tried.push(mismatch),
                },
                Err((path, why)) => tried.push(BundleError::NoArchive {
                    name: package.name.clone(),
                    version: package.version.clone(),
                    arch: package.arch.clone(),
                    why: format!("{}: {why}", path.display()),
                }),
            }
        }
        if archive.is_none() {
            match backend {
                Backend::Dpkg => lacking.push(index),
                Backend::Rpm => {
                    return Err(tried.pop().unwrap_or_else(|| BundleError::NoArchive {
                        name: package.name.clone(),
                        version: package.version.clone(),
                        arch: package.arch.clone(),
                        why: "none in the pool folders, and RPM archives are never downloaded: \
                              put it in a pool (--pool DIR)"
                            .to_string(),
                    }));
                }
            }
        }
        found.push(archive);
    }
    let mut downloaded = Vec::new();
    let mut from_host = Vec::new();
    // The folder outlives the reading: a checked archive leaves it for the pool.
    let folder = match lacking.is_empty() {
        true => None,
        false => Some(apt::download_folder(pool_dir)?),
    };
    let fetched = match &folder {
        Some(folder) => download(lock, &lacking, &folder.path)?,
        None => Vec::new(),
    };
    for (index, result) in fetched {
        let package = &lock.packages[index];
        let name = format!("{}={}", package.name, package.version);
        match result {
            Ok(archive) => {
                check(lock, package, &archive, store)?;
                found[index] = Some(archive.keep_in(pool_dir)?);
                downloaded.push(name);
            }
            Err(why) => from_host.push(format!("{name} ({why})")),
        }
    }
    Ok(Gathered {
        archives: found.into_iter().flatten().collect(),
        downloaded,
        from_host,
    })
}

/// Refuses `archive` for `package` when a regular file of the package has content that
/// neither the archive nor the blob store holds.
fn check(
    lock: &Lock,
    package: &LockedPackage,
    archive: &Archive,
    store: &BlobStore,
) -> Result<(), BundleError> {
    let files = (lock.files.iter())
        .filter(|e| e.kind == FileKind::File && e.package.as_deref() == Some(&package.name));
    for entry in files {
        let Some(digest) = entry.digest.as_deref() else {
            continue;
        };
        if !archive.contents.contains(digest) && !store.path(digest).is_file() {
            return Err(BundleError::Mismatch {
                package: package.name.clone(),
                version: package.version.clone(),
                path: entry.path.clone(),
                digest: digest.to_string(),
                archive: archive.file_name(),
            });
        }
    }
    Ok(())
}

/// The pool folders' archives, surveyed once.
enum Candidates {
    Deb(Pool),
    Rpm(RpmCatalog),
}

impl Candidates {
    fn survey(backend: Backend, dirs: &[PathBuf]) -> Result<Candidates> {
        Ok(match backend {
            Backend::Dpkg => Candidates::Deb(Pool::survey(dirs)?),
            Backend::Rpm => Candidates::Rpm(RpmCatalog::archives(dirs)),
        })
    }

    /// The archives claiming to be exactly `package`, in pool order.
    fn of(&self, package: &LockedPackage) -> Vec<PathBuf> {
        let (name, version, arch) = (&package.name, &package.version, &package.arch);
        match self {
            Candidates::Deb(pool) => (pool.candidates(name, version, arch))
                .map(|deb| deb.path.clone())
                .collect(),
            Candidates::Rpm(catalog) => (catalog.candidates(name, version, arch))
                .filter_map(|p| p.archive.clone())
                .collect(),
        }
    }
}

/// Downloads into `folder` the archives of the packages of `lock` at `lacking` (indices,
/// ascending) at their locked versions with apt's own configuration and lists, in one go, and
/// reads each: by index, the archive or why an installed package has none. A package
/// apt cannot download fails the export unless it is installed (the mirror keeps only
/// a point release's newest versions); then its files come from the host.
fn download(
    lock: &Lock,
    lacking: &[usize],
    folder: &Path,
) -> Result<Vec<(usize, Result<Archive>)>> {
    let mut results = Vec::new();
    let wanted: Vec<Wanted<'_>> = (lacking.iter())
        .map(|&i| {
            let p = &lock.packages[i];
            Wanted {
                name: &p.name,
                version: &p.version,
                arch: &p.arch,
            }
        })
        .collect();
    let mut failed = apt::download_all(&wanted, folder, &AptGet)
        .err()
        .unwrap_or_default();
    let needed = |at: usize| lock.packages[lacking[at]].source != "installed";
    if let Some(first) = failed.iter().position(|(at, _)| needed(*at)) {
        return Err(BundleError::Apt(Box::new(failed.swap_remove(first).1)));
    }
    let mut failed = failed.into_iter().peekable();
    let mut asked = Vec::new();
    for (at, &index) in lacking.iter().enumerate() {
        match failed.next_if(|(f, _)| *f == at) {
            Some((_, why)) => results.push((index, Err(BundleError::Apt(Box::new(why))))),
            None => asked.push(index),
        }
    }
    let (mut came, unreadable) = read_downloads(folder)?;
    for index in asked {
        let package = &lock.packages[index];
        let archive = match came.iter().position(|a| a.is_of(package)) {
            Some(at) => Ok(came.swap_remove(at)),
            None => Err(BundleError::NoArchive {
                name: package.name.clone(),
                version: package.version.clone(),
                arch: package.arch.clone(),
                why: format!(
                    "apt-get download left no archive of it{}",
                    if unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(" (unreadable: {})", unreadable.join("; "))
                    }
                ),
            }),
        };
        match archive {
            Err(why) if package.source != "installed" => return Err(why),
            archive => results.push((index, archive)),
        }
    }
    results.sort_by_key(|(index, _)| *index);
    Ok(results)
}

/// The `.deb`s apt left in `dir`, read, and the ones that could not be (`file: why`).
fn read_downloads(dir: &Path) -> Result<(Vec<Archive>, Vec<String>)> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(BundleError::io(dir, "listing the download folder"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    let mut archives = Vec::new();
    let mut unreadable = Vec::new();
    for deb in debs {
        match Archive::read(&deb, Backend::Dpkg) {
            Ok(archive) => archives.push(archive),
            Err(why) => unreadable.push(format!("{}: {why}", deb.display())),
        }
    }
    Ok((archives, unreadable))
}
