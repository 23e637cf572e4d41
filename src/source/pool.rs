//! A pool: directories of package archives (`store/pool/`, `/var/cache/apt/archives`,
//! `--pool DIR`) offered to the resolver as one package source.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use super::Package;
use super::deb::{DebArchive, DebError};

/// The package archives of some directories, with their control information read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The archives: directories in the order given, each one's `.deb` files sorted by
    /// path; an archive of a package (name, version, arch) already seen is left out.
    pub archives: Vec<DebArchive>,
}

impl Pool {
    /// Opens every `*.deb` directly in each of `dirs` (not in subdirectories, so apt's
    /// `partial/` downloads are not seen). A missing directory is skipped; an archive
    /// that cannot be read is an error, since a pool silently missing a package would
    /// resolve differently. When two archives hold the same package, the first (earlier
    /// directory, then smaller path) is kept.
    pub fn scan(dirs: &[PathBuf]) -> Result<Pool, DebError> {
        let mut paths = Vec::new();
        for dir in dirs {
            let io_error = |source| DebError::Io {
                path: dir.clone(),
                source,
            };
            let listing = match fs::read_dir(dir) {
                Ok(listing) => listing,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(source)),
            };
            let mut here = Vec::new();
            for entry in listing {
                let path = entry.map_err(io_error)?.path();
                if path.extension().is_some_and(|e| e == "deb") && path.is_file() {
                    here.push(path);
                }
            }
            here.sort();
            paths.extend(here);
        }
        // Opening reads only the control members, but there may be thousands of them.
        let opened: Vec<Result<DebArchive, DebError>> =
            paths.par_iter().map(|p| DebArchive::open(p)).collect();
        let mut seen = HashSet::new();
        let mut archives = Vec::new();
        for archive in opened {
            let archive = archive?;
            let p = &archive.package;
            if seen.insert((p.name.clone(), p.version.clone(), p.arch.clone())) {
                archives.push(archive);
            }
        }
        Ok(Pool { archives })
    }

    /// The packages of the pool, in archive order.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.archives.iter().map(|a| &a.package)
    }

    /// The archive of package `name` at exactly `version` for `arch`.
    pub fn find(&self, name: &str, version: &str, arch: &str) -> Option<&DebArchive> {
        self.archives.iter().find(|a| {
            let p = &a.package;
            p.name == name && p.version == version && p.arch == arch
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::deb::testing::simple_deb;

    fn put(dir: &Path, name: &str, bytes: &[u8]) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
    }

    #[test]
    fn scans_directories_in_order_and_keeps_the_first_duplicate() {
        let root = tempfile::tempdir().unwrap();
        let first = root.path().join("first");
        let second = root.path().join("second");
        put(&first, "bb_1.0.deb", &simple_deb("bb", "1.0"));
        put(&first, "aa_2.0.deb", &simple_deb("aa", "2.0"));
        // Same package as aa_2.0.deb, sorted after it: left out.
        put(&first, "aa_2.0_copy.deb", &simple_deb("aa", "2.0"));
        put(&first, "notes.txt", b"not a package");
        put(
            &first.join("partial"),
            "cc_1.0.deb",
            &simple_deb("cc", "1.0"),
        );
        put(&second, "aa_1.0.deb", &simple_deb("aa", "1.0"));
        // Same as first/bb_1.0.deb, in a later directory: left out.
        put(&second, "0bb.deb", &simple_deb("bb", "1.0"));
        let missing = root.path().join("missing");

        let pool = Pool::scan(&[missing, first.clone(), second.clone()]).unwrap();
        let found: Vec<(&str, &str)> = pool
            .packages()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(found, [("aa", "2.0"), ("bb", "1.0"), ("aa", "1.0")]);
        let paths: Vec<&Path> = pool.archives.iter().map(|a| a.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                first.join("aa_2.0.deb"),
                first.join("bb_1.0.deb"),
                second.join("aa_1.0.deb")
            ]
        );

        let b = pool.find("bb", "1.0", "amd64").unwrap();
        assert_eq!(b.path, first.join("bb_1.0.deb"));
        assert_eq!(
            pool.find("aa", "1.0", "amd64").unwrap().path,
            second.join("aa_1.0.deb")
        );
        assert!(pool.find("aa", "1.0", "i386").is_none());
        assert!(pool.find("aa", "3.0", "amd64").is_none());
        assert!(
            pool.find("cc", "1.0", "amd64").is_none(),
            "subdirectories are not read"
        );
    }

    #[test]
    fn a_damaged_archive_fails_the_scan_by_name() {
        let root = tempfile::tempdir().unwrap();
        put(root.path(), "good.deb", &simple_deb("good", "1"));
        put(root.path(), "broken.deb", b"!<arch>\ngarbage");
        let err = Pool::scan(&[root.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.deb"), "{err}");
    }

    #[test]
    fn no_directories_make_an_empty_pool() {
        let root = tempfile::tempdir().unwrap();
        let pool = Pool::scan(&[root.path().join("absent")]).unwrap();
        assert_eq!(pool.packages().count(), 0);
    }
}
