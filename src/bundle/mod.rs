//! Bundles: one lock with exactly the bytes a machine without its packages needs to
//! materialise it (`appliance export` and `appliance import`), as an OCI 1.1 artifact in
//! an image layout tar, so that a registry can carry it unchanged (`docs/bundle.md`).
//!
//! What a lock needs is one function of the lock and its archives ([`needed_blobs`]):
//! every package's archive at its locked version, and a blob for each regular file its
//! package's archive does not hold (group files, host files, what configuration made or
//! changed). Export computes it from the store and the archives it finds or downloads;
//! import from the bundle's own archives, and takes nothing more or less.

mod export;
mod import;
mod layout;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use crate::excerpt::excerpt;
use crate::lock::Backend;
use crate::lock::{FileKind, Lock, LockedPackage};
use crate::materialise::MaterialiseError;
use crate::repo::RepoError;
use crate::source::dpkg::apt::AptError;
use crate::source::dpkg::deb::{DebArchive, DebError};
use crate::source::rpm::RpmArchive;

pub use export::{Artifact, ExportOptions, Exported, Layer, export};
pub use import::{Imported, import};
pub(crate) use import::{Members, Refuse, describe, take};
pub(crate) use layout::{
    Descriptor, EMPTY, EMPTY_BYTES, INDEX, Index, MANIFEST, Manifest, blob_of, is_sha256, to_json,
};

/// The manifest's `artifactType`, and the lock layer's media type.
pub const ARTIFACT: &str = "application/vnd.appliance.lock.v1+json";
/// A `.deb` layer (IANA's type for Debian binary packages).
pub const DEB: &str = "application/vnd.debian.binary-package";
/// An `.rpm` layer.
pub const RPM: &str = "application/x-rpm";
/// A blob store layer: bytes named by their BLAKE3.
pub const BLOB: &str = "application/vnd.appliance.blob.v1";

/// The annotation every layer has: a file name, as ORAS names what it pulls.
pub const TITLE: &str = "org.opencontainers.image.title";
/// The lock id, on the manifest and on the lock layer.
pub const LOCK_ID: &str = "dev.appliance.lock.id";
/// An archive layer's package name.
pub const PACKAGE_NAME: &str = "dev.appliance.package.name";
/// An archive layer's package version.
pub const PACKAGE_VERSION: &str = "dev.appliance.package.version";
/// An archive layer's package architecture.
pub const PACKAGE_ARCH: &str = "dev.appliance.package.arch";
/// A blob layer's BLAKE3 (hex), the name the blob store gives it.
pub const BLAKE3: &str = "dev.appliance.blob.blake3";

/// What makes a bundle impossible to write or to take.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// A file could not be read or written.
    #[error("{}: {doing}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// No archive of a locked package could be found or fetched.
    #[error(
        "no archive of {} {} ({}): {why}",
        excerpt(name),
        excerpt(version),
        excerpt(arch)
    )]
    NoArchive {
        /// The package.
        name: String,
        /// Its locked version.
        version: String,
        /// Its architecture.
        arch: String,
        /// Why.
        why: String,
    },
    /// A package's archive does not hold the locked bytes of one of its files, and the
    /// blob store does not either.
    #[error(
        "the archive {archive} of {} {} lacks the locked content of {} (BLAKE3 {digest}), \
         and the blob store has no such blob: the archive is not the one the lock was made from",
        excerpt(package),
        excerpt(version),
        excerpt(path)
    )]
    Mismatch {
        /// The package.
        package: String,
        /// Its locked version.
        version: String,
        /// The file.
        path: String,
        /// Its locked BLAKE3.
        digest: String,
        /// The archive's file name.
        archive: String,
    },
    /// A file no archive supplies is not in the blob store.
    #[error(
        "the blob store has no blob {digest}, the content of {} (no archive of the lock holds \
         it, nor does the host)",
        excerpt(path)
    )]
    MissingBlob {
        /// The file.
        path: String,
        /// Its BLAKE3.
        digest: String,
    },
    /// A bundle is refused: one member (or the whole file) is wrong.
    #[error("bundle {bundle}: {member}: {reason}")]
    Refused {
        /// The bundle file, or the registry reference it was pulled from.
        bundle: String,
        /// The member or layer, named as the bundle names it.
        member: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pool's archives could not be surveyed, or one could not be read.
    #[error(transparent)]
    Deb(Box<DebError>),
    /// A locked package could not be downloaded with apt.
    #[error(transparent)]
    Apt(Box<AptError>),
    /// The output file could not be checked, replaced or written.
    #[error(transparent)]
    Materialise(#[from] MaterialiseError),
    /// The repository or the blob store failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

impl From<DebError> for BundleError {
    fn from(err: DebError) -> BundleError {
        BundleError::Deb(Box::new(err))
    }
}

impl From<AptError> for BundleError {
    fn from(err: AptError) -> BundleError {
        BundleError::Apt(Box::new(err))
    }
}

/// Results of writing and taking bundles.
pub type Result<T, E = BundleError> = std::result::Result<T, E>;

impl BundleError {
    /// An I/O error while `doing` something to `path`.
    pub(crate) fn io(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> BundleError {
        let path = path.to_path_buf();
        move |source| BundleError::Io {
            path,
            doing,
            source,
        }
    }
}

/// One locked package's archive, read through: its identity and the BLAKE3 of every
/// regular file it holds, which is how materialise takes files from it.
#[derive(Debug)]
pub(crate) struct Archive {
    /// The archive file.
    path: PathBuf,
    /// `.deb` or `.rpm`.
    media_type: &'static str,
    /// Name, version, arch as the archive says.
    name: String,
    version: String,
    arch: String,
    /// The contents it holds, by BLAKE3 hex.
    contents: HashSet<String>,
}

impl Archive {
    /// Moves the archive into `pool_dir` under its own file name, where the next run's
    /// pool survey finds it, and gives it back at its new place.
    fn keep_in(mut self, pool_dir: &Path) -> Result<Archive, BundleError> {
        let name = self.path.file_name().unwrap_or_default();
        let kept = pool_dir.join(name);
        std::fs::rename(&self.path, &kept).map_err(BundleError::io(
            &kept,
            "keeping a downloaded archive in the pool",
        ))?;
        self.path = kept;
        Ok(self)
    }

    /// Reads the archive at `path` of the kind `backend` takes, every file's content
    /// checked as it goes (an `.rpm`'s against its header); `Err` says why it cannot.
    fn read(path: &Path, backend: Backend) -> Result<Archive, String> {
        let mut contents = HashSet::new();
        let (media_type, name, version, arch) = match backend {
            Backend::Dpkg => {
                let deb = DebArchive::open(path).map_err(|e| e.to_string())?;
                deb.for_each_file(|file| {
                    contents.insert(file.copy_to(&mut io::sink())?);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
                let p = deb.package;
                (DEB, p.name, p.version, p.arch)
            }
            Backend::Rpm => {
                let rpm = RpmArchive::open(path).map_err(|e| e.to_string())?;
                rpm.for_each_file(|_, bytes| {
                    contents.insert(blake3::hash(bytes).to_hex().to_string());
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
                let p = rpm.package;
                (RPM, p.name, p.evr, p.arch)
            }
        };
        Ok(Archive {
            path: path.to_path_buf(),
            media_type,
            name,
            version,
            arch,
            contents,
        })
    }

    /// Whether it is the archive of `package`.
    fn is_of(&self, package: &LockedPackage) -> bool {
        (&self.name, &self.version, &self.arch) == (&package.name, &package.version, &package.arch)
    }

    /// Its annotations: the file name and the package.
    fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (TITLE.to_string(), self.file_name()),
            (PACKAGE_NAME.to_string(), self.name.clone()),
            (PACKAGE_VERSION.to_string(), self.version.clone()),
            (PACKAGE_ARCH.to_string(), self.arch.clone()),
        ])
    }

    /// apt's file name for it (`name_version_arch.deb`, `:` quoted), or the `.rpm`'s
    /// `name-version.arch.rpm`.
    fn file_name(&self) -> String {
        let quote = crate::source::dpkg::apt::apt_quote;
        match self.media_type {
            DEB => format!(
                "{}_{}_{}.deb",
                quote(&self.name, "_:/"),
                quote(&self.version, "_:/"),
                quote(&self.arch, "_:./")
            ),
            _ => format!(
                "{}-{}.{}.rpm",
                quote(&self.name, "/"),
                quote(&self.version, "/"),
                quote(&self.arch, "/")
            ),
        }
    }
}

/// The blobs `lock` needs beside the archives whose contents `held` gives by package
/// name: the BLAKE3 of every regular file that is not its package's archive's, each
/// with the first path (in path order) that has it.
pub(crate) fn needed_blobs<'l>(
    lock: &'l Lock,
    held: &HashMap<&str, &Archive>,
) -> BTreeMap<&'l str, &'l str> {
    let mut needed = BTreeMap::new();
    for entry in &lock.files {
        let Some(digest) = entry
            .digest
            .as_deref()
            .filter(|_| entry.kind == FileKind::File)
        else {
            continue;
        };
        let archived = (entry.package.as_deref())
            .and_then(|package| held.get(package))
            .is_some_and(|archive| archive.contents.contains(digest));
        if !archived {
            needed.entry(digest).or_insert(entry.path.as_str());
        }
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileEntry;

    fn file(path: &str, content: &str, package: Option<&str>) -> FileEntry {
        FileEntry {
            kind: FileKind::File,
            size: content.len() as u64,
            digest: Some(blake3::hash(content.as_bytes()).to_hex().to_string()),
            package: package.map(str::to_string),
            ..FileEntry::directory(path)
        }
    }

    #[test]
    fn a_blob_is_needed_for_what_no_archive_of_its_package_holds() {
        let lock = Lock::of_files(vec![
            file("/usr/bin/bash", "bash", Some("bash")),
            file("/etc/bash.bashrc", "changed by configure", Some("bash")),
            file("/etc/hostname", "web\n", None),
            file("/etc/other", "bash", None),
            file("/usr/bin/ls", "ls", Some("coreutils")),
            FileEntry::directory("/usr"),
        ]);
        let digest = |s: &str| blake3::hash(s.as_bytes()).to_hex().to_string();
        let bash = Archive {
            path: PathBuf::from("bash.deb"),
            media_type: DEB,
            name: "bash".into(),
            version: "5".into(),
            arch: "amd64".into(),
            contents: HashSet::from([digest("bash"), digest("bashrc as shipped")]),
        };
        let held = HashMap::from([("bash", &bash)]);
        let needed: Vec<(String, &str)> = (needed_blobs(&lock, &held).into_iter())
            .map(|(d, path)| (d.to_string(), path))
            .collect();
        let mut expected = vec![
            (digest("changed by configure"), "/etc/bash.bashrc"),
            (digest("web\n"), "/etc/hostname"),
            // Bytes an archive holds are still a blob for a file of no package.
            (digest("bash"), "/etc/other"),
            // No archive of coreutils: its file's bytes must be a blob.
            (digest("ls"), "/usr/bin/ls"),
        ];
        expected.sort();
        assert_eq!(needed, expected);
    }

    #[test]
    fn archive_names_are_apts() {
        let archive = Archive {
            path: PathBuf::new(),
            media_type: DEB,
            name: "libcrypt1".into(),
            version: "1:4.4.33-2".into(),
            arch: "amd64".into(),
            contents: HashSet::new(),
        };
        assert_eq!(archive.file_name(), "libcrypt1_1%3a4.4.33-2_amd64.deb");
    }
}
