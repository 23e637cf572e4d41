//! The `.rpm` archives of pool folders, offered to the RPM resolver as one package
//! source (the RPM counterpart of [`crate::source::dpkg::pool`]).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::archive::RpmArchive;
use super::error::RpmError;
use super::{RpmPackage, repodata};

/// The packages of some folders: the `.rpm` archives of plain folders, the metadata of
/// createrepo_c repositories.
#[derive(Debug, Default)]
pub struct RpmPool {
    /// Folders in the order given, each one's packages sorted by archive path; a
    /// package (name, evr, arch) already seen goes to `shadowed`.
    pub archives: Vec<RpmPackage>,
    /// Later archives of a package already in `archives`, in the same order: never
    /// resolved, but tried in turn for bytes the first does not hold.
    pub shadowed: Vec<RpmPackage>,
    /// What could not be read (a folder, an archive, a repository's metadata file), and
    /// why.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// What a folder offers.
enum Found {
    /// An archive of a plain folder, to be opened.
    Archive(PathBuf),
    /// The packages a repository's metadata lists.
    Listed(Vec<RpmPackage>),
}

impl RpmPool {
    /// Opens every `*.rpm` directly in each of `dirs` (not in subfolders), except in a
    /// createrepo_c repository (a folder with `repodata/repomd.xml`), whose packages
    /// are read from its metadata and no archive is opened; source packages
    /// (`.src.rpm`, a source header, arch `src` in metadata) are skipped, a missing
    /// folder too.
    pub fn survey(dirs: &[PathBuf]) -> RpmPool {
        let mut pool = RpmPool::default();
        let mut found = Vec::new();
        for dir in dirs {
            if dir.join("repodata/repomd.xml").is_file() {
                match repodata::read(dir) {
                    Ok(listed) => found.push(Found::Listed(listed)),
                    Err(e) => pool.unreadable.push((failed_file(&e, dir), e.to_string())),
                }
                continue;
            }
            match rpm_files(dir) {
                Ok(here) => found.extend(here.into_iter().map(Found::Archive)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => pool.unreadable.push((dir.clone(), e.to_string())),
            }
        }
        let paths: Vec<PathBuf> = (found.iter())
            .filter_map(|f| match f {
                Found::Archive(path) => Some(path.clone()),
                Found::Listed(_) => None,
            })
            .collect();
        let mut opened = crate::source::open_all(&paths, |p| {
            RpmArchive::open(p).map_err(|e| (p.to_path_buf(), e.to_string()))
        })
        .into_iter();
        let mut seen = HashSet::new();
        for found in found {
            let packages = match found {
                Found::Listed(packages) => packages,
                // `opened` holds one result per archive, in order.
                Found::Archive(_) => match opened.next() {
                    Some(Ok(archive)) if !archive.header.is_source() => vec![archive.package],
                    Some(Err(unreadable)) => {
                        pool.unreadable.push(unreadable);
                        continue;
                    }
                    Some(Ok(_)) | None => continue,
                },
            };
            for package in packages {
                let id = (
                    package.name.clone(),
                    package.evr.clone(),
                    package.arch.clone(),
                );
                if seen.insert(id) {
                    pool.archives.push(package);
                } else {
                    pool.shadowed.push(package);
                }
            }
        }
        pool
    }
}

/// The file a repository's refusal names (a metadata file), else its folder.
fn failed_file(error: &RpmError, dir: &Path) -> PathBuf {
    match error {
        RpmError::Repodata { path, .. } | RpmError::Io { path, .. } => path.clone(),
        _ => dir.to_path_buf(),
    }
}

/// The binary `.rpm` files directly in `dir`, sorted.
fn rpm_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut here = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let binary = name.is_some_and(|n| n.ends_with(".rpm") && !n.ends_with(".src.rpm"));
        if binary && path.is_file() {
            here.push(path);
        }
    }
    here.sort();
    Ok(here)
}

#[cfg(test)]
mod tests {
    use rpm::CompressionType;

    use super::super::fixture::hello;
    use super::*;

    #[test]
    fn surveys_folders_in_order_shadowing_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::create_dir_all(&b).unwrap();
        let package = hello(CompressionType::Gzip);
        package.write_file(a.join("hello.rpm")).unwrap();
        package.write_file(a.join("sub/deep.rpm")).unwrap();
        package.write_file(b.join("again.rpm")).unwrap();
        package.write_file(b.join("hello-1.src.rpm")).unwrap();
        fs::write(b.join("junk.rpm"), b"junk").unwrap();
        let pool = RpmPool::survey(&[a.clone(), b.clone(), dir.path().join("missing")]);
        let archives = |packages: &[RpmPackage]| -> Vec<PathBuf> {
            packages.iter().filter_map(|p| p.archive.clone()).collect()
        };
        assert_eq!(archives(&pool.archives), [a.join("hello.rpm")]);
        assert_eq!(archives(&pool.shadowed), [b.join("again.rpm")]);
        let [(path, why)] = pool.unreadable.as_slice() else {
            panic!("{:?}", pool.unreadable);
        };
        assert_eq!(*path, b.join("junk.rpm"));
        assert!(why.contains("junk.rpm: not a readable rpm"), "{why}");
    }

    #[test]
    fn unreadable_repository_metadata_is_reported_not_passed_over_for_its_archives() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        fs::create_dir_all(repo.join("Packages")).unwrap();
        fs::create_dir_all(repo.join("repodata")).unwrap();
        let repomd = repo.join("repodata/repomd.xml");
        fs::write(&repomd, "<repomd/>").unwrap();
        (hello(CompressionType::Gzip))
            .write_file(repo.join("Packages/hello.rpm"))
            .unwrap();
        let pool = RpmPool::survey(std::slice::from_ref(&repo));
        assert!(pool.archives.is_empty(), "{:?}", pool.archives);
        let [(path, why)] = pool.unreadable.as_slice() else {
            panic!("{:?}", pool.unreadable);
        };
        assert_eq!(*path, repomd);
        assert_eq!(
            *why,
            format!("{}: names no primary metadata", repomd.display())
        );
    }
}
