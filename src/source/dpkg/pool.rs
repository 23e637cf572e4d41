//! A pool: directories of package archives (`store/pool/`, `/var/cache/apt/archives`,
//! `--pool DIR`) offered to the resolver as one package source.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::Package;
use super::deb::{DebArchive, DebError};

/// The package archives of some directories, with their control information read.
#[derive(Debug)]
pub struct Pool {
    /// The archives: directories in the order given, each one's `.deb` files sorted by
    /// path; an archive of a package (name, version, arch) already seen goes to
    /// `shadowed`.
    pub archives: Vec<DebArchive>,
    /// Later archives of a package already in `archives`, in the same order: the
    /// resolver never sees them, but an output tries each in turn when the ones before
    /// do not hold the locked bytes.
    pub shadowed: Vec<DebArchive>,
    /// What could not be read as a package archive, and why (only [`Pool::survey`]
    /// goes on past one).
    pub unreadable: Vec<DebError>,
}

impl Pool {
    /// Opens every `*.deb` directly in each of `dirs` (not in subdirectories, so apt's
    /// `partial/` downloads are not seen). A missing directory is skipped; an archive
    /// that cannot be read is an error, since a pool silently missing a package would
    /// resolve differently.
    pub fn scan(dirs: &[PathBuf]) -> Result<Pool, DebError> {
        let mut pool = Pool::survey(dirs)?;
        if pool.unreadable.is_empty() {
            Ok(pool)
        } else {
            Err(pool.unreadable.swap_remove(0))
        }
    }

    /// [`Pool::scan`], but an archive that cannot be read is set aside in
    /// `unreadable`: an output takes what it needs from whichever archives match its
    /// lock, so junk beside them must not stop it.
    pub fn survey(dirs: &[PathBuf]) -> Result<Pool, DebError> {
        let mut paths = Vec::new();
        for dir in dirs {
            let listing = match fs::read_dir(dir) {
                Ok(listing) => listing,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(io_error(dir)(source)),
            };
            let mut here = Vec::new();
            for entry in listing {
                let path = entry.map_err(io_error(dir))?.path();
                if path.extension().is_some_and(|e| e == "deb") && path.is_file() {
                    here.push(path);
                }
            }
            here.sort();
            paths.extend(here);
        }
        // Opening reads only the control members, but there may be thousands of them.
        let opened = crate::source::open_all(&paths, DebArchive::open);
        let mut seen = HashSet::new();
        let mut pool = Pool {
            archives: Vec::new(),
            shadowed: Vec::new(),
            unreadable: Vec::new(),
        };
        for archive in opened {
            match archive {
                Ok(archive) => {
                    let p = &archive.package;
                    if seen.insert((p.name.clone(), p.version.clone(), p.arch.clone())) {
                        pool.archives.push(archive);
                    } else {
                        pool.shadowed.push(archive);
                    }
                }
                Err(err) => pool.unreadable.push(err),
            }
        }
        Ok(pool)
    }

    /// The packages of the pool, in archive order.
    pub fn packages(&self) -> impl Iterator<Item = &Package> {
        self.archives.iter().map(|a| &a.package)
    }

    /// The archive of package `name` at exactly `version` for `arch`: the first one.
    pub fn find(&self, name: &str, version: &str, arch: &str) -> Option<&DebArchive> {
        self.candidates(name, version, arch).next()
    }

    /// Every archive of package `name` at exactly `version` for `arch`, in pool order.
    pub fn candidates<'p: 'q, 'q>(
        &'p self,
        name: &'q str,
        version: &'q str,
        arch: &'q str,
    ) -> impl Iterator<Item = &'p DebArchive> + 'q {
        (self.archives.iter().chain(&self.shadowed)).filter(move |a| {
            let p = &a.package;
            p.name == name && p.version == version && p.arch == arch
        })
    }

    /// Each later archive whose bytes differ from the first archive of its package, with
    /// that first one: two packages under one name, version and arch, of which only the
    /// first is resolved and locked. Copies of the same bytes are not listed.
    pub fn conflicts(&self) -> Result<Vec<(&DebArchive, &DebArchive)>, DebError> {
        let mut out = Vec::new();
        for other in &self.shadowed {
            let p = &other.package;
            let Some(first) = self.find(&p.name, &p.version, &p.arch) else {
                continue;
            };
            if !same_bytes(&first.path, &other.path)? {
                out.push((first, other));
            }
        }
        Ok(out)
    }
}

/// Whether the files at `a` and `b` hold the same bytes (sizes first, then BLAKE3).
fn same_bytes(a: &Path, b: &Path) -> Result<bool, DebError> {
    let size = |path: &Path| fs::metadata(path).map(|m| m.len()).map_err(io_error(path));
    if size(a)? != size(b)? {
        return Ok(false);
    }
    let digest = |path: &Path| {
        let mut hasher = blake3::Hasher::new();
        File::open(path)
            .and_then(|mut file| io::copy(&mut file, &mut hasher))
            .map(|_| hasher.finalize())
            .map_err(io_error(path))
    };
    Ok(digest(a)? == digest(b)?)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DebError + '_ {
    move |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::source::dpkg::deb::testing::simple_deb;

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
        // Same package as aa_2.0.deb, sorted after it: shadowed.
        put(&first, "aa_2.0_copy.deb", &simple_deb("aa", "2.0"));
        put(&first, "notes.txt", b"not a package");
        put(
            &first.join("partial"),
            "cc_1.0.deb",
            &simple_deb("cc", "1.0"),
        );
        put(&second, "aa_1.0.deb", &simple_deb("aa", "1.0"));
        // Same as first/bb_1.0.deb, in a later directory: shadowed.
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

        let bb = pool.find("bb", "1.0", "amd64").unwrap();
        assert_eq!(bb.path, first.join("bb_1.0.deb"));
        let every: Vec<&Path> = (pool.candidates("bb", "1.0", "amd64"))
            .map(|a| a.path.as_path())
            .collect();
        assert_eq!(every, [first.join("bb_1.0.deb"), second.join("0bb.deb")]);
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
        // Byte-identical copies are no conflict.
        assert!(pool.conflicts().unwrap().is_empty());
    }

    #[test]
    fn archives_of_one_package_with_other_bytes_conflict() {
        let root = tempfile::tempdir().unwrap();
        put(root.path(), "a.deb", &simple_deb("aa", "1.0"));
        put(root.path(), "b.deb", &simple_deb("aa", "1.0"));
        let mut other = simple_deb("aa", "1.0");
        let last = other.len() - 1;
        other[last] ^= 1;
        put(root.path(), "c.deb", &other);
        let pool = Pool::scan(&[root.path().to_path_buf()]).unwrap();
        let pairs: Vec<(&Path, &Path)> = (pool.conflicts().unwrap().into_iter())
            .map(|(a, b)| (a.path.as_path(), b.path.as_path()))
            .collect();
        assert_eq!(
            pairs,
            [(
                root.path().join("a.deb").as_path(),
                root.path().join("c.deb").as_path()
            )]
        );
    }

    #[test]
    fn a_survey_sets_unreadable_archives_aside() {
        let root = tempfile::tempdir().unwrap();
        put(root.path(), "0junk.deb", b"!<arch>\ngarbage");
        put(root.path(), "good.deb", &simple_deb("good", "1"));
        let pool = Pool::survey(&[root.path().to_path_buf()]).unwrap();
        assert_eq!(pool.archives.len(), 1);
        let [junk] = pool.unreadable.as_slice() else {
            panic!("{:?}", pool.unreadable);
        };
        assert!(junk.to_string().contains("0junk.deb"), "{junk}");
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
