//! The `.rpm` archives of pool folders, offered to the RPM resolver as one package
//! source (the RPM counterpart of [`crate::source::pool`]).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::RpmPackage;
use super::archive::RpmArchive;

/// The packages of the `.rpm` archives of some folders.
#[derive(Debug, Default)]
pub struct RpmPool {
    /// Folders in the order given, each one's archives sorted by path; an archive of a
    /// package (name, evr, arch) already seen goes to `shadowed`.
    pub archives: Vec<RpmPackage>,
    /// Later archives of a package already in `archives`, in the same order: never
    /// resolved, but tried in turn for bytes the first does not hold.
    pub shadowed: Vec<RpmPackage>,
    /// What could not be read (a folder or an archive), and why.
    pub unreadable: Vec<(PathBuf, String)>,
}

impl RpmPool {
    /// Opens every `*.rpm` directly in each of `dirs` (not in subfolders), or, in a
    /// createrepo_c repository (a folder with `repodata/repomd.xml`), anywhere below it;
    /// source packages (`.src.rpm`, or a source header) are skipped, a missing folder too.
    pub fn survey(dirs: &[PathBuf]) -> RpmPool {
        let mut pool = RpmPool::default();
        let mut paths = Vec::new();
        for dir in dirs {
            let repository = dir.join("repodata/repomd.xml").is_file();
            match rpm_files(dir, repository) {
                Ok(here) => paths.extend(here),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => pool.unreadable.push((dir.clone(), e.to_string())),
            }
        }
        let opened = crate::source::open_all(&paths, |p| {
            (
                p.to_path_buf(),
                RpmArchive::open(p).map_err(|e| e.to_string()),
            )
        });
        let mut seen = HashSet::new();
        for (path, archive) in opened {
            match archive {
                Ok(archive) if archive.header.is_source() => {}
                Ok(archive) => {
                    let p = archive.package;
                    if seen.insert((p.name.clone(), p.evr.clone(), p.arch.clone())) {
                        pool.archives.push(p);
                    } else {
                        pool.shadowed.push(p);
                    }
                }
                Err(message) => pool.unreadable.push((path, message)),
            }
        }
        pool
    }
}

/// The binary `.rpm` files directly in `dir` (and, with `deep`, in the folders below it
/// but `repodata/`), sorted; links to folders are not followed.
fn rpm_files(dir: &Path, deep: bool) -> io::Result<Vec<PathBuf>> {
    let mut here = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if deep && entry.file_type()?.is_dir() && name.as_deref() != Some("repodata") {
            here.extend(rpm_files(&path, deep)?);
            continue;
        }
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
    fn a_repository_is_surveyed_below_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        fs::create_dir_all(repo.join("Packages/h")).unwrap();
        fs::create_dir_all(repo.join("repodata")).unwrap();
        fs::write(repo.join("repodata/repomd.xml"), "<repomd/>").unwrap();
        fs::write(repo.join("repodata/stray.rpm"), b"not read").unwrap();
        let package = hello(CompressionType::Gzip);
        package
            .write_file(repo.join("Packages/h/hello.rpm"))
            .unwrap();
        let pool = RpmPool::survey(std::slice::from_ref(&repo));
        let found: Vec<_> = pool
            .archives
            .iter()
            .filter_map(|p| p.archive.clone())
            .collect();
        assert_eq!(found, [repo.join("Packages/h/hello.rpm")]);
        assert!(pool.unreadable.is_empty(), "{:?}", pool.unreadable);
    }
}
