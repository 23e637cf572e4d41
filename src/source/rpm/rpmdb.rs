//! The sysroot's installed RPM packages: rpm 4.16+'s `rpmdb.sqlite`, opened read-only
//! (nothing is ever written to it, nor left beside it).

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::RpmPackage;
use super::error::RpmError;
use super::header::RpmHeader;
use crate::source::Origin;

/// Where rpm keeps its database under a root, newest layout first.
const LOCATIONS: [&str; 2] = ["usr/lib/sysimage/rpm", "var/lib/rpm"];

/// A database file found under a sysroot.
struct Found {
    path: PathBuf,
    /// Its format's name.
    format: &'static str,
    /// The folder, relative to the sysroot.
    dir: &'static str,
}

/// Each format's main file, with its name; rpm 4.16+'s sqlite, the only one read here,
/// first, so a sysroot that was converted and still holds the old files anywhere is read.
const FORMATS: [(&str, &str); 3] = [
    ("rpmdb.sqlite", "sqlite"),
    ("Packages", "Berkeley DB"),
    ("Packages.db", "ndb"),
];

/// The installed packages of a sysroot.
#[derive(Debug, Clone)]
pub struct Rpmdb {
    /// The `rpmdb.sqlite` read.
    pub path: PathBuf,
    /// Its packages sorted by (name, evr by rpm's rules, arch); `gpg-pubkey`
    /// pseudo-packages (imported keys) are left out.
    pub packages: Vec<InstalledRpm>,
}

/// One installed package.
#[derive(Debug, Clone)]
pub struct InstalledRpm {
    /// Its metadata, origin [`Origin::Installed`].
    pub package: RpmPackage,
    /// Its header, as the database holds it.
    pub header: RpmHeader,
}

impl Rpmdb {
    /// The `rpmdb.sqlite` of `sysroot` (`usr/lib/sysimage/rpm/` first, then
    /// `var/lib/rpm/`), if there is one: the database that can be read.
    pub fn locate(sysroot: &Path) -> Option<PathBuf> {
        Rpmdb::find(sysroot, &FORMATS[..1]).map(|found| found.path)
    }

    /// Whether `sysroot` has an rpm database in any of rpm's formats: how a sysroot is
    /// known to be an RPM one, even one [`Rpmdb::read`] must refuse.
    pub fn present(sysroot: &Path) -> bool {
        Rpmdb::find(sysroot, &FORMATS).is_some()
    }

    /// The first main file of `formats` in either location, formats in order.
    fn find(sysroot: &Path, formats: &[(&str, &'static str)]) -> Option<Found> {
        (formats.iter())
            .flat_map(|&(file, format)| {
                (LOCATIONS.iter()).map(move |dir| Found {
                    path: sysroot.join(dir).join(file),
                    format,
                    dir,
                })
            })
            .find(|found| found.path.is_file())
    }

    /// Reads every package of `sysroot`'s rpmdb. A Berkeley DB (`Packages`) or ndb
    /// (`Packages.db`) database is refused with the command that converts it.
    pub fn read(sysroot: &Path) -> Result<Rpmdb, RpmError> {
        let Some(Found { path, format, dir }) = Rpmdb::find(sysroot, &FORMATS) else {
            return Err(RpmError::Database {
                path: sysroot.join(LOCATIONS[1]).join(FORMATS[0].0),
                message: format!("no rpm database (nor under /{})", LOCATIONS[0]),
            });
        };
        if format != FORMATS[0].1 {
            return Err(RpmError::Backend {
                path,
                format,
                root: sysroot.to_path_buf(),
                dbpath: format!("/{dir}"),
            });
        }
        let database = |message: String| RpmError::Database {
            path: path.clone(),
            message,
        };
        let connection = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| database(e.to_string()))?;
        let mut statement = connection
            .prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")
            .map_err(|e| database(format!("not an rpmdb: {e}")))?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(|e| database(e.to_string()))?;
        let mut packages = Vec::new();
        for row in rows {
            let (hnum, blob) = row.map_err(|e| database(e.to_string()))?;
            let file = PathBuf::from(format!("{}:hnum {hnum}", path.display()));
            let header = RpmHeader::from_blob_in(&blob, &file)?;
            if header.text(rpm::IndexTag::RPMTAG_NAME)? == Some("gpg-pubkey") {
                continue;
            }
            let package = header.package(Origin::Installed, None)?;
            packages.push(InstalledRpm { package, header });
        }
        packages.sort_by(|a, b| order(&a.package, &b.package));
        Ok(Rpmdb { path, packages })
    }
}

/// (name, evr by rpm's rules, arch).
fn order(a: &RpmPackage, b: &RpmPackage) -> Ordering {
    (a.name.cmp(&b.name))
        .then_with(|| rpm_version::rpm_evr_compare(&a.evr, &b.evr))
        .then_with(|| a.arch.cmp(&b.arch))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use rpm::CompressionType;

    use super::super::fixture::hello;
    use super::*;

    /// Installs `packages` into `root` with the real rpm; false when rpm is missing.
    fn install(root: &Path, packages: &[PathBuf]) -> bool {
        let Ok(out) = Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts"])
            .args(["--nosignature", "--nodigest", "--ignorearch"])
            // rpm opens a FIFO it made for reading, which waits for a writer forever.
            .args(["--excludepath", "/run"])
            .args(packages)
            .output()
        else {
            eprintln!("no rpm on this machine: skipped");
            return false;
        };
        assert!(out.status.success(), "{out:?}");
        true
    }

    #[test]
    fn reads_what_the_real_rpm_installed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let built = hello(CompressionType::Gzip);
        let path = dir.path().join("hello.rpm");
        built.write_file(&path).unwrap();
        let mut other = rpm::PackageBuilder::new("aaa", "3", "MIT", "noarch", "first");
        let other_path = dir.path().join("aaa.rpm");
        other.build().unwrap().write_file(&other_path).unwrap();
        if !install(&root, &[path, other_path]) {
            return;
        }
        assert_eq!(
            Rpmdb::locate(&root),
            Some(root.join("var/lib/rpm/rpmdb.sqlite"))
        );
        let listing = |dir: &Path| {
            let mut names: Vec<String> = fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let before = listing(&root.join("var/lib/rpm"));
        let db = Rpmdb::read(&root).unwrap();
        assert_eq!(
            listing(&root.join("var/lib/rpm")),
            before,
            "left files behind"
        );
        let names: Vec<String> = db.packages.iter().map(|p| p.package.nevra()).collect();
        assert_eq!(names, ["aaa-3-1.noarch", "hello-2:1.0-1.x86_64"]);
        let hello = &db.packages[1];
        assert_eq!(hello.package.origin, Origin::Installed);
        let from_archive = RpmHeader::from_blob(&super::super::fixture::blob(&built.metadata))
            .unwrap()
            .package(Origin::Installed, None)
            .unwrap();
        // rpm adds tags when installing; the package read back is the same.
        assert_eq!(hello.package, from_archive);
        assert_eq!(hello.header.files().unwrap().len(), 11);
        assert!(hello.header.scriptlets().unwrap().pre.is_some());
    }

    #[test]
    fn a_corrupt_blob_names_its_hnum() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("usr/lib/sysimage/rpm");
        fs::create_dir_all(&db).unwrap();
        let connection = Connection::open(db.join("rpmdb.sqlite")).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB);
                 INSERT INTO Packages (hnum, blob) VALUES (7, x'00000001000000');",
            )
            .unwrap();
        drop(connection);
        let err = Rpmdb::read(dir.path()).unwrap_err().to_string();
        let expected = format!(
            "{}:hnum 7: damaged header",
            db.join("rpmdb.sqlite").display()
        );
        assert!(err.starts_with(&expected), "{err}");
    }

    #[test]
    fn other_backends_are_refused_with_the_conversion() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("var/lib/rpm");
        fs::create_dir_all(&db).unwrap();
        // A Berkeley DB hash file's magic, at offset 12.
        let mut bdb = vec![0u8; 4096];
        bdb[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
        fs::write(db.join("Packages"), bdb).unwrap();
        assert_eq!(Rpmdb::locate(dir.path()), None);
        let err = Rpmdb::read(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("var/lib/rpm/Packages: a Berkeley DB rpm database"),
            "{err}"
        );
        assert!(
            err.contains(&format!(
                "rpmdb --root {} --dbpath /var/lib/rpm --rebuilddb --define '_db_backend sqlite'",
                dir.path().display()
            )),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = Rpmdb::read(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no rpm database"), "{err}");
    }
}
