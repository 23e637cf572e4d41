//! `.rpm` archives in pool folders, and the packages of createrepo_c repositories.

use std::path::{Path, PathBuf};

use super::{RpmArchive, RpmError, RpmPackage};

/// The `.rpm` archives of some folders.
#[derive(Debug, Default)]
pub struct RpmPool {
    /// Each readable binary archive's package, in folder order then by file name.
    pub archives: Vec<RpmPackage>,
    /// Archives that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl RpmPool {
    /// Every `*.rpm` directly in `dirs` (a missing folder has none; source rpms are left
    /// out).
    pub fn survey(dirs: &[PathBuf]) -> RpmPool {
        let mut pool = RpmPool::default();
        for dir in dirs {
            pool.add(rpm_files(dir, false));
        }
        pool
    }

    fn add(&mut self, files: Vec<PathBuf>) {
        for path in files {
            match RpmArchive::open(&path) {
                Ok(archive) if archive.header.is_source() => {}
                Ok(archive) => self.archives.push(archive.package),
                Err(e) => self.unreadable.push((path, e.to_string())),
            }
        }
    }
}

/// A createrepo_c repository: a folder with `repodata/repomd.xml` and its packages.
#[derive(Debug)]
pub struct Repodata {
    /// Its packages, by file name below the folder.
    pub packages: Vec<RpmPackage>,
}

impl Repodata {
    /// The packages of the repository at `dir`: every `.rpm` below it, each header read
    /// and checked (a damaged one is refused, naming it).
    pub fn read(dir: &Path) -> Result<Repodata, RpmError> {
        let mut pool = RpmPool::default();
        pool.add(rpm_files(dir, true));
        if let Some((path, why)) = pool.unreadable.into_iter().next() {
            return Err(RpmError::Io {
                path,
                source: std::io::Error::other(why),
            });
        }
        Ok(Repodata {
            packages: pool.archives,
        })
    }
}

/// The `.rpm` files in `dir` (and below it, with `deep`), sorted; links are not followed.
fn rpm_files(dir: &Path, deep: bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && deep && path.file_name().is_some_and(|n| n != "repodata") {
                todo.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "rpm") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
