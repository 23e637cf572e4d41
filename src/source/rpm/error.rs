//! Why an RPM source cannot be read: every error names the file (rpmdb, archive,
//! repodata folder) and, where there is one, the package and the entry or path.

use std::io;
use std::path::PathBuf;

use crate::excerpt::excerpt;

/// Why an rpmdb, a `.rpm` archive, a header or a `createrepo_c` folder is refused.
#[derive(Debug, thiserror::Error)]
pub enum RpmError {
    /// A file or folder cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A header is damaged, or says what no package can (counts that do not match,
    /// paths that climb out, flags rpm does not write). `file` is the archive, or
    /// `DB:hnum N` for a header of the rpmdb, or `header blob` when the caller gave none.
    #[error("{}: {}{message}", file.display(), of_package(.package))]
    Header {
        /// Where the header comes from.
        file: PathBuf,
        /// The package's `name-evr.arch` (or name), once known.
        package: Option<String>,
        /// What is wrong, naming the tag or path.
        message: String,
    },
    /// A member of an archive's payload is refused (hostile name, a file the header
    /// does not list, a size or digest that lies).
    #[error("{}: {package}: entry {}: {message}", archive.display(), excerpt(.entry))]
    Entry {
        /// The `.rpm` file.
        archive: PathBuf,
        /// The package's `name-evr.arch`.
        package: String,
        /// The cpio name as the payload spells it (`./usr/bin/x`), or the header path.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// An archive's payload cannot be read to its end (unknown compression, damaged
    /// or truncated stream).
    #[error("{}: {package}: payload: {message}", archive.display())]
    Payload {
        /// The `.rpm` file.
        archive: PathBuf,
        /// The package's `name-evr.arch`.
        package: String,
        /// What is wrong.
        message: String,
    },
    /// The rpmdb cannot be queried (not SQLite, no `Packages` table).
    #[error("{}: {message}", path.display())]
    Database {
        /// The `rpmdb.sqlite` file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The sysroot's rpm database has a backend other than SQLite.
    #[error(
        "{}: a {format} rpm database, which is not read; convert it to rpmdb.sqlite with \
         `rpmdb --root {} --dbpath {dbpath} --rebuilddb --define '_db_backend sqlite'`",
        path.display(),
        root.display()
    )]
    Backend {
        /// The database file found (`Packages`, `Packages.db`).
        path: PathBuf,
        /// `Berkeley DB` or `ndb`.
        format: &'static str,
        /// The sysroot.
        root: PathBuf,
        /// The database folder under the root (`/var/lib/rpm`).
        dbpath: String,
    },
    /// A `createrepo_c` folder's metadata is refused (malformed XML, a checksum that
    /// does not match, an href that leaves the folder).
    #[error("{}: {}{message}", path.display(), of_package(.package))]
    Repodata {
        /// The metadata file (`repodata/primary.xml.gz`) or `repomd.xml`.
        path: PathBuf,
        /// The package concerned, when there is one.
        package: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An archive a createrepo_c repository lists is not the one its metadata
    /// describes: swapped for another package's, or damaged.
    #[error(
        "{}: not the archive repository {} lists: its {what} is {}, the metadata says {}",
        archive.display(),
        repository.display(),
        excerpt(.actual),
        excerpt(.expected)
    )]
    Unlisted {
        /// The `.rpm` file.
        archive: PathBuf,
        /// The repository folder.
        repository: PathBuf,
        /// What differs: `checksum` (the values prefixed by the algorithm,
        /// `sha256:...`) or `NEVRA`.
        what: &'static str,
        /// What the archive has.
        actual: String,
        /// What the metadata says.
        expected: String,
    },
}

/// `package NAME: `, or nothing.
fn of_package(package: &Option<String>) -> String {
    match package {
        Some(name) => format!("package {}: ", excerpt(name)),
        None => String::new(),
    }
}
