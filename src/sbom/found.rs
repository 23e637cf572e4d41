//! Where a locked package's license is found: the bytes materialise would take for its
//! copyright file (the host's file checked against the lock's digest, the package's
//! archive, the blob store); for a lock that excluded it, the host's installed copy
//! checked against dpkg's md5sums, else the package's archive in the pool; for an RPM
//! lock, the `License` tag of its header in the lock's own rpmdb, the host's, or the
//! pool's archive. Whatever none of them gives is no license (`NOASSERTION`).

use std::cell::LazyCell;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::license::{self, Expression};
use crate::lock::Backend;
use crate::lock::{FileKind, Lock, LockedPackage};
use crate::materialise::{self, MaterialiseError, Sources};
use crate::source::dpkg::DpkgDatabase;
use crate::source::dpkg::pool::Pool;
use crate::source::rpm::catalog::RpmCatalog;
use crate::source::rpm::{RpmArchive, Rpmdb};

/// Where rpm keeps its database, as the lock's paths: the first the lock holds is read.
const RPMDB: [&str; 2] = [
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/var/lib/rpm/rpmdb.sqlite",
];

/// The license of each package of `lock`, in its order, and a warning for each source
/// that should have answered and could not. `out` is what the bytes are read for.
pub(super) fn licenses(
    lock: &Lock,
    sources: &Sources,
    out: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Expression>>, MaterialiseError> {
    match lock.inputs.backend {
        Backend::Dpkg => debian(lock, sources, out, warnings),
        Backend::Rpm => rpm(lock, sources, out, warnings),
    }
}

/// A Debian package's copyright file in the lock: `/usr/share/doc/NAME/copyright`,
/// through the lock's own link when the folder is one (`libgcc-s1 -> gcc-12-base`).
fn copyright_path(lock: &Lock, name: &str) -> String {
    let folder = format!("/usr/share/doc/{name}");
    let target = (lock.file(&folder))
        .filter(|entry| entry.kind == FileKind::Symlink)
        .and_then(|entry| entry.target.as_deref());
    match target {
        Some(absolute) if absolute.starts_with('/') => format!("{absolute}/copyright"),
        Some(relative) if !relative.contains('/') => {
            format!("/usr/share/doc/{relative}/copyright")
        }
        _ => format!("{folder}/copyright"),
    }
}

fn debian(
    lock: &Lock,
    sources: &Sources,
    out: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Expression>>, MaterialiseError> {
    let paths: Vec<String> = (lock.packages.iter())
        .map(|p| copyright_path(lock, &p.name))
        .collect();
    let read = materialise::read_files(lock, sources, &paths, out)?;
    // Read only when some package needs them.
    let host = LazyCell::new(|| DpkgDatabase::read(&sources.sysroot).ok());
    let pool = LazyCell::new(|| Pool::survey(&sources.pool).ok());
    let mut found = Vec::with_capacity(read.len());
    for (package, read) in lock.packages.iter().zip(read) {
        let bytes = match read {
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(drifted)) => {
                warnings.push(format!(
                    "no source holds {} as locked, so {} has no license: {}",
                    drifted.path, package.name, drifted.problem
                ));
                None
            }
            // Excluded from the lock: the same package's copy, wherever it is kept.
            None => (host.as_ref())
                .and_then(|db| installed_copyright(db, package, &sources.sysroot))
                .or_else(|| (pool.as_ref()).and_then(|pool| archived_copyright(pool, package))),
        };
        found.push(bytes.and_then(|b| license::from_dep5(&String::from_utf8_lossy(&b))));
    }
    Ok(found)
}

/// The host's copyright file of `package` when the host has exactly that package
/// installed and the file's MD5 is the one dpkg recorded.
fn installed_copyright(
    db: &DpkgDatabase,
    package: &LockedPackage,
    sysroot: &Path,
) -> Option<Vec<u8>> {
    let path = format!("/usr/share/doc/{}/copyright", package.name);
    let installed = db.packages.iter().find(|i| {
        let p = &i.package;
        (p.name == package.name) && (p.version == package.version) && (p.arch == package.arch)
    })?;
    let md5 = installed.owned().ok()?.md5sums.get(&path)?;
    let bytes = std::fs::read(sysroot.join(path.trim_start_matches('/'))).ok()?;
    (hex::encode(Md5::digest(&bytes)) == *md5).then_some(bytes)
}

/// The copyright file in the first pool archive of exactly `package` that has one.
fn archived_copyright(pool: &Pool, package: &LockedPackage) -> Option<Vec<u8>> {
    let path = format!("/usr/share/doc/{}/copyright", package.name);
    pool.candidates(&package.name, &package.version, &package.arch)
        .find_map(|archive| {
            let mut bytes = None;
            let walked = archive.for_each_file(|file| {
                if bytes.is_none() && file.path() == path {
                    let mut copy = Vec::new();
                    file.copy_to(&mut copy)?;
                    bytes = Some(copy);
                }
                Ok(())
            });
            walked.ok().and(bytes)
        })
}

fn rpm(
    lock: &Lock,
    sources: &Sources,
    out: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Expression>>, MaterialiseError> {
    let paths: Vec<String> = RPMDB.iter().map(ToString::to_string).collect();
    let read = materialise::read_files(lock, sources, &paths, out)?;
    // The lock's own database, laid out where `Rpmdb` looks in a private root.
    let own = read
        .into_iter()
        .zip(RPMDB)
        .find_map(|(read, path)| match read {
            Some(Ok(bytes)) => Some((bytes, path)),
            Some(Err(drifted)) => {
                warnings.push(format!(
                    "no source holds the lock's rpm database {path} as locked: {}",
                    drifted.problem
                ));
                None
            }
            None => None,
        });
    let root = own.and_then(|(bytes, path)| {
        let dir = crate::scratch::private_dir("appliance-sbom").ok()?;
        let file = dir.path.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent()?).ok()?;
        std::fs::write(&file, bytes).ok()?;
        Some(dir)
    });
    let mut databases: Vec<Rpmdb> = Vec::new();
    let roots = [
        root.as_ref().map(|dir| dir.path.clone()),
        Some(sources.sysroot.clone()),
    ];
    for root in roots.into_iter().flatten() {
        if Rpmdb::locate(&root).is_some() {
            match Rpmdb::read(&root) {
                Ok(db) => databases.push(db),
                Err(e) => warnings.push(format!("licenses: {e}")),
            }
        }
    }
    let pool = LazyCell::new(|| RpmCatalog::archives(&sources.pool));
    let found = (lock.packages.iter())
        .map(|package| {
            let tag = (databases.iter())
                .find_map(|db| {
                    let installed = db.packages.iter().find(|i| same_rpm(&i.package, package))?;
                    installed
                        .header
                        .license()
                        .ok()
                        .flatten()
                        .map(str::to_string)
                })
                .or_else(|| archived_license(&pool, package));
            tag.as_deref().and_then(license::from_rpm)
        })
        .collect();
    Ok(found)
}

/// Whether an RPM package is exactly the locked one.
fn same_rpm(rpm: &crate::source::rpm::RpmPackage, locked: &LockedPackage) -> bool {
    rpm.name == locked.name && rpm.evr == locked.version && rpm.arch == locked.arch
}

/// The `License` tag of the first pool archive of exactly `package` that opens.
fn archived_license(pool: &RpmCatalog, package: &LockedPackage) -> Option<String> {
    (pool.candidates(&package.name, &package.version, &package.arch)).find_map(|p| {
        let path: &PathBuf = p.archive.as_ref()?;
        let archive = RpmArchive::open_as(path, p).ok()?;
        archive.header.license().ok().flatten().map(str::to_string)
    })
}
