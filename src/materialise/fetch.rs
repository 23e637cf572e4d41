//! Byte sources for file entries, checked against the lock while they are read.
//!
//! A file's bytes come from the host file under the sysroot, else from its package's
//! archive in the pool (the copy an earlier run kept unpacked, else the archive itself),
//! else from the blob store.
//! Each source is read once: the BLAKE3 and the size are checked on the bytes as they
//! pass on to the output, so a source that turns out different is simply dropped (the
//! sink is emptied) and the next one tried.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::excerpt::excerpt;
use crate::lock::FileEntry;

use super::archives::{Unavailable, Unpacked};
use super::plan::Expected;
use super::{Sources, Supply};

/// What was wrong with one source of a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Nothing at that path.
    Missing,
    /// Something other than a regular file (a symlink is never followed).
    NotRegular {
        /// What was found: `symlink`, `directory`, `fifo`, `socket` or `device`.
        found: &'static str,
    },
    /// The size is not the locked one.
    SizeDiffers {
        /// Size in the lock.
        expected: u64,
        /// Size found (for a file that grew while read: the bytes read so far).
        found: u64,
    },
    /// Same size, different BLAKE3.
    ContentDiffers,
    /// Opening or reading failed.
    Unreadable {
        /// The system's reason.
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing => f.write_str("missing"),
            Problem::NotRegular { found } => write!(f, "not a regular file (a {found})"),
            Problem::SizeDiffers { expected, found } => {
                write!(f, "size differs (lock: {expected} bytes, found: {found})")
            }
            Problem::ContentDiffers => f.write_str("content differs"),
            Problem::Unreadable { reason } => write!(f, "unreadable: {reason}"),
        }
    }
}

/// A file of the lock that no source supplies as the lock describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drifted {
    /// Path in the appliance.
    pub path: String,
    /// The package owning it, if any.
    pub package: Option<String>,
    /// What was wrong with the host file (read at the entry's origin when it has one);
    /// for a file that changed while being archived, with the source that had matched.
    pub problem: Problem,
    /// Why the package's archive could not supply it; `None` when no archive was
    /// looked at (no package, or the file changed while archived).
    pub archive: Option<String>,
    /// What was wrong with the blob; `None` when no blob store was given.
    pub blob: Option<Problem>,
}

impl Drifted {
    /// A drifted `entry`: `problem` with the host (or the matched source), `blob` with
    /// the blob store when there is one.
    pub(crate) fn new(entry: &FileEntry, problem: Problem, blob: Option<Problem>) -> Drifted {
        Drifted {
            path: entry.path.clone(),
            package: entry.package.clone(),
            problem,
            archive: None,
            blob,
        }
    }
}

impl fmt::Display for Drifted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = excerpt(&self.path);
        match &self.package {
            Some(package) => write!(f, "{path} (package {}): {}", excerpt(package), self.problem)?,
            None => write!(f, "{path} (no package): {}", self.problem)?,
        }
        if let Some(archive) = &self.archive {
            write!(f, "; {archive}")?;
        }
        match &self.blob {
            Some(blob) => write!(f, "; blob store: {blob}"),
            None => Ok(()),
        }
    }
}

/// Why [`fetch`] failed.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// No source matched the lock.
    Drift(Drifted),
    /// Writing the bytes on their way to the output failed (to the sink, or to the
    /// scratch folder beside OUT): an output error, not drift.
    Sink(io::Error),
}

/// An output that can be emptied so the next source can be tried.
pub(crate) trait Restart: Write {
    /// Forgets everything written so far.
    fn restart(&mut self) -> io::Result<()>;
}

impl Restart for io::Sink {
    fn restart(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Restart for Vec<u8> {
    fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl Restart for File {
    fn restart(&mut self) -> io::Result<()> {
        self.rewind()?;
        self.set_len(0)
    }
}

/// Where [`fetch`] found a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A file that can be read again: the host's, an archive's unpacked copy, a blob.
    File(PathBuf),
    /// Bytes of a package's archive held in memory.
    Held,
}

/// Copies the first source matching `expected` into `sink`: the host file, the
/// package's archive (its kept unpacked copy first), the blob store. Returns that
/// source. A host file that matched is recorded in the supply's [`Used`](super::Used),
/// for the stamp.
pub(crate) fn fetch(
    entry: &FileEntry,
    expected: &Expected,
    supply: &Supply,
    sink: &mut impl Restart,
) -> Result<Source, FetchError> {
    let sources = supply.sources;
    let host = host_path(entry, sources);
    let host_problem = match copy_from(&host, expected, sink) {
        Ok(meta) => {
            supply.used.host_file(&host, &meta, expected.digest);
            return Ok(Source::File(host));
        }
        Err(Failure::Source(problem)) => problem,
        Err(Failure::Sink(e)) => return Err(FetchError::Sink(e)),
    };
    let mut drifted = Drifted::new(entry, host_problem, None);
    if let (Some(package), Some(archives)) = (&entry.package, &supply.archives) {
        // A copy an earlier run unpacked from the archive, when it is still the locked
        // content: a missing or wrong one is no drift while the archive itself serves.
        // A wrong one goes, so that the unpacking below keeps the right one in its place.
        if let Some(kept) = archives.kept_copy(package, expected) {
            sink.restart().map_err(FetchError::Sink)?;
            match copy_from(&kept, expected, sink) {
                Ok(_) => return Ok(Source::File(kept)),
                Err(Failure::Source(Problem::Missing)) => {}
                Err(Failure::Source(_)) => {
                    let _ = fs::remove_file(&kept);
                }
                Err(Failure::Sink(e)) => return Err(FetchError::Sink(e)),
            }
        }
        match archives.file(package, expected) {
            Ok((Unpacked::Held(bytes), _)) => {
                sink.restart().map_err(FetchError::Sink)?;
                sink.write_all(&bytes).map_err(FetchError::Sink)?;
                return Ok(Source::Held);
            }
            Ok((Unpacked::File(unpacked), name)) => {
                sink.restart().map_err(FetchError::Sink)?;
                match copy_from(&unpacked, expected, sink) {
                    Ok(_) => return Ok(Source::File(unpacked)),
                    Err(Failure::Source(problem)) => {
                        drifted.archive = Some(format!("archive {name}: {problem}"));
                    }
                    Err(Failure::Sink(e)) => return Err(FetchError::Sink(e)),
                }
            }
            Err(Unavailable::Drift(why)) => drifted.archive = Some(why),
            Err(Unavailable::Scratch(e)) => {
                return Err(FetchError::Sink(io::Error::new(e.kind(), e)));
            }
        }
    }
    let Some(blob) = blob_path(expected, sources) else {
        return Err(FetchError::Drift(drifted));
    };
    sink.restart().map_err(FetchError::Sink)?;
    match copy_from(&blob, expected, sink) {
        Ok(_) => Ok(Source::File(blob)),
        Err(Failure::Source(problem)) => {
            drifted.blob = Some(problem);
            Err(FetchError::Drift(drifted))
        }
        Err(Failure::Sink(e)) => Err(FetchError::Sink(e)),
    }
}

/// The host file holding an entry's bytes: `sysroot + (origin or path)`.
pub(crate) fn host_path(entry: &FileEntry, sources: &Sources) -> PathBuf {
    let path = entry.origin.as_deref().unwrap_or(&entry.path);
    sources.sysroot.join(path.trim_start_matches('/'))
}

/// Where the blob store keeps the expected bytes, when there is one.
fn blob_path(expected: &Expected, sources: &Sources) -> Option<PathBuf> {
    let blobs = sources.blobs.as_ref()?;
    Some(crate::repo::blob_path(
        blobs,
        expected.digest.to_hex().as_str(),
    ))
}

enum Failure {
    Source(Problem),
    Sink(io::Error),
}

/// Whether the regular file at `path` holds exactly the `expected` bytes.
pub(crate) fn check(path: &Path, expected: &Expected) -> Result<(), Problem> {
    match copy_from(path, expected, &mut io::sink()) {
        Ok(_) => Ok(()),
        Err(Failure::Source(problem)) => Err(problem),
        // A sink cannot fail, but a problem is what the caller reports either way.
        Err(Failure::Sink(e)) => Err(Problem::Unreadable {
            reason: e.to_string(),
        }),
    }
}

/// Copies the source at `path` into `sink` if it holds exactly the `expected` content;
/// returns the source's metadata as it was opened, before any byte was read.
fn copy_from(
    path: &Path,
    expected: &Expected,
    sink: &mut impl Write,
) -> Result<fs::Metadata, Failure> {
    let mut reader = CheckedReader::open(path, expected).map_err(Failure::Source)?;
    let mut buf = vec![0; 128 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|_| reader.take_problem())?;
        if n == 0 {
            let meta = reader.meta.clone();
            return reader.finish().map(|()| meta).map_err(Failure::Source);
        }
        sink.write_all(&buf[..n]).map_err(Failure::Sink)?;
    }
}

/// A source file's bytes, hashed and counted as they are read.
///
/// Reading more than the locked size fails at once; [`CheckedReader::finish`] then tells
/// whether what was read is exactly the locked content.
pub(crate) struct CheckedReader {
    file: File,
    /// The open file's metadata before any byte was read.
    meta: fs::Metadata,
    expected: Expected,
    hasher: blake3::Hasher,
    read: u64,
    problem: Option<Problem>,
}

impl CheckedReader {
    /// Opens a regular file without following a final symlink; a size that differs from
    /// the lock fails here, before any byte is read.
    pub fn open(path: &Path, expected: &Expected) -> Result<CheckedReader, Problem> {
        // lstat first: opening a fifo or a device just to refuse it could block or have
        // side effects.
        let meta = fs::symlink_metadata(path).map_err(open_problem)?;
        check_meta(&meta, expected)?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(open_problem)?;
        // The path may have been replaced between the lstat and the open.
        let meta = file.metadata().map_err(open_problem)?;
        check_meta(&meta, expected)?;
        Ok(CheckedReader {
            file,
            meta,
            expected: *expected,
            hasher: blake3::Hasher::new(),
            read: 0,
            problem: None,
        })
    }

    /// Whether the bytes read were exactly the locked ones, once the reader hit EOF.
    pub fn finish(self) -> Result<(), Problem> {
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        if self.read != self.expected.size {
            return Err(Problem::SizeDiffers {
                expected: self.expected.size,
                found: self.read,
            });
        }
        if self.hasher.finalize() != self.expected.digest {
            return Err(Problem::ContentDiffers);
        }
        Ok(())
    }

    /// After a read error: what was wrong with the source.
    fn take_problem(&mut self) -> Failure {
        Failure::Source(self.problem.take().unwrap_or(Problem::Unreadable {
            reason: "read failed".to_string(),
        }))
    }

    /// Whether a read error came from the source (so the entry drifted).
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }
}

impl Read for CheckedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.file.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.problem = Some(Problem::Unreadable {
                        reason: e.to_string(),
                    });
                    return Err(e);
                }
            }
        };
        self.read += n as u64;
        if self.read > self.expected.size {
            self.problem = Some(Problem::SizeDiffers {
                expected: self.expected.size,
                found: self.read,
            });
            return Err(io::Error::other("source file grew while read"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn check_meta(meta: &fs::Metadata, expected: &Expected) -> Result<(), Problem> {
    let kind = meta.file_type();
    let found = if kind.is_file() {
        if meta.len() != expected.size {
            return Err(Problem::SizeDiffers {
                expected: expected.size,
                found: meta.len(),
            });
        }
        return Ok(());
    } else if kind.is_symlink() {
        "symlink"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "fifo"
    } else if kind.is_socket() {
        "socket"
    } else {
        "device"
    };
    Err(Problem::NotRegular { found })
}

fn open_problem(e: io::Error) -> Problem {
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound => Problem::Missing,
        // O_NOFOLLOW refuses a symlink that replaced the file after the lstat.
        Some(libc::ELOOP) => Problem::NotRegular { found: "symlink" },
        _ => Problem::Unreadable {
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialise::plan::tests::file;

    fn expected(content: &[u8]) -> Expected {
        Expected {
            size: content.len() as u64,
            digest: blake3::hash(content),
        }
    }

    fn sources(dir: &Path, blobs: bool) -> Sources {
        Sources {
            sysroot: dir.join("root"),
            pool: Vec::new(),
            blobs: blobs.then(|| dir.join("blobs")),
            unpacked: None,
        }
    }

    fn put(path: &Path, content: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn put_blob(dir: &Path, content: &[u8]) {
        let hex = blake3::hash(content).to_hex();
        put(
            &crate::repo::blob_path(&dir.join("blobs"), hex.as_str()),
            content,
        );
    }

    #[test]
    fn copies_a_matching_host_file() {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join("root/usr/bin/x"), b"hello");
        let entry = file("/usr/bin/x", b"hello");
        let mut out = Vec::new();
        let got = fetch(
            &entry,
            &expected(b"hello"),
            &Supply::new(&sources(dir.path(), false), None),
            &mut WriteRestart(&mut out),
        )
        .unwrap();
        assert_eq!(got, Source::File(dir.path().join("root/usr/bin/x")));
        assert_eq!(out, b"hello");
    }

    #[test]
    fn reads_a_diverted_file_at_its_origin() {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join("root/usr/bin/x.distrib"), b"real");
        put(&dir.path().join("root/usr/bin/x"), b"wrap");
        let mut entry = file("/usr/bin/x", b"real");
        entry.origin = Some("/usr/bin/x.distrib".to_string());
        let mut out = Vec::new();
        fetch(
            &entry,
            &expected(b"real"),
            &Supply::new(&sources(dir.path(), false), None),
            &mut WriteRestart(&mut out),
        )
        .unwrap();
        assert_eq!(out, b"real");
    }

    #[test]
    fn falls_back_to_the_blob_and_forgets_the_host_bytes() {
        let dir = tempfile::tempdir().unwrap();
        put(&dir.path().join("root/x"), b"HELLO");
        put_blob(dir.path(), b"hello");
        let entry = file("/x", b"hello");
        let mut out = Vec::new();
        let got = fetch(
            &entry,
            &expected(b"hello"),
            &Supply::new(&sources(dir.path(), true), None),
            &mut WriteRestart(&mut out),
        )
        .unwrap();
        let Source::File(got) = got else {
            panic!("a blob is a file: {got:?}")
        };
        assert!(got.starts_with(dir.path().join("blobs")));
        assert_eq!(out, b"hello");
    }

    #[test]
    fn names_what_is_wrong_with_each_source() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("root")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("root/link")).unwrap();
        put(&dir.path().join("root/short"), b"hell");
        put(&dir.path().join("root/other"), b"HELLO");
        let cases = [
            ("/absent", Problem::Missing),
            ("/link", Problem::NotRegular { found: "symlink" }),
            (
                "/short",
                Problem::SizeDiffers {
                    expected: 5,
                    found: 4,
                },
            ),
            ("/other", Problem::ContentDiffers),
        ];
        for (path, problem) in cases {
            let entry = file(path, b"hello");
            let err = fetch(
                &entry,
                &expected(b"hello"),
                &Supply::new(&sources(dir.path(), true), None),
                &mut io::sink(),
            )
            .unwrap_err();
            let FetchError::Drift(drifted) = err else {
                panic!("{path}: expected drift, got {err:?}");
            };
            assert_eq!(drifted.problem, problem, "{path}");
            assert_eq!(drifted.blob, Some(Problem::Missing));
            assert_eq!(
                drifted.to_string(),
                format!("{path} (package pkg): {problem}; blob store: missing")
            );
        }
    }

    #[test]
    fn a_file_that_grows_while_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        put(&path, b"hello");
        let mut reader = CheckedReader::open(&path, &expected(b"hello")).unwrap();
        fs::write(&path, b"hello, world").unwrap();
        let mut sink = Vec::new();
        assert!(io::copy(&mut reader, &mut sink).is_err());
        assert!(reader.failed());
        assert!(matches!(
            reader.finish(),
            Err(Problem::SizeDiffers { expected: 5, .. })
        ));
    }

    /// A `Vec` sink that can be restarted, standing in for an output file.
    struct WriteRestart<'a>(&'a mut Vec<u8>);

    impl Write for WriteRestart<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Restart for WriteRestart<'_> {
        fn restart(&mut self) -> io::Result<()> {
            self.0.clear();
            Ok(())
        }
    }
}
