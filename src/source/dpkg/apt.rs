//! apt's package lists as a package source, and fetching their archives into the pool.
//!
//! The universe is every `var/lib/apt/lists/*_Packages` index under a sysroot, plain or
//! compressed with lz4 or gzip (apt keeps them so when `Acquire::GzipIndexes` is set, as
//! Docker images do); indexes in any other compression are reported in
//! [`AptLists::compressed`] so the caller can say why a host's lists look empty. A
//! package from the lists is fetched with `apt-get download` at exactly the listed
//! version and checked against the list's `Size` and `SHA256` before it enters the pool.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use rayon::prelude::*;

use super::DpkgError;
use super::database::{Fields, Stanza, stanzas};
use super::{Origin, Package};
use crate::excerpt::excerpt;
use crate::scratch::Temp;

/// Where apt keeps its lists, relative to the sysroot.
const LISTS_DIR: &str = "var/lib/apt/lists";

/// How an index file's name ends (`<site>_dists_<suite>_<component>_binary-<arch>_Packages`).
const INDEX_SUFFIX: &str = "_Packages";

/// One package known from an apt index, with what fetching and checking it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptPackage {
    /// Its metadata, with origin [`Origin::AptList`].
    pub package: Package,
    /// The archive's path in the mirror (`pool/main/h/hello/hello_2.10-3_amd64.deb`).
    pub filename: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// The archive's SHA256, lower-case hex.
    pub sha256: String,
    /// The index file the package was read from.
    pub list: PathBuf,
    /// Whether that index is of a security suite (`bookworm-security`).
    pub security: bool,
}

impl AptPackage {
    /// The file name apt gives the downloaded archive (`name_version_arch.deb`), with
    /// `_`, `:` (an epoch's colon becomes `%3a`), `%` and unprintable bytes quoted as
    /// apt's `QuoteString` does; the pool stores the archive under this name.
    pub fn archive_name(&self) -> String {
        let p = &self.package;
        let extension = self
            .filename
            .rsplit_once('/')
            .map_or(self.filename.as_str(), |(_, base)| base)
            .rsplit_once('.')
            .map_or("deb", |(_, ext)| ext);
        format!(
            "{}_{}_{}.{extension}",
            apt_quote(&p.name, "_:"),
            apt_quote(&p.version, "_:"),
            apt_quote(&p.arch, "_:.")
        )
    }
}

/// apt's `QuoteString`: bytes in `bad`, `%`, spaces, control and non-ASCII bytes become
/// `%xx` (lower-case hex).
pub(crate) fn apt_quote(text: &str, bad: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if bad.as_bytes().contains(&byte) || byte == b'%' || !byte.is_ascii_graphic() {
            out.push_str(&format!("%{byte:02x}"));
        } else {
            out.push(char::from(byte));
        }
    }
    out
}

/// Every package in the apt indexes of one sysroot.
#[derive(Debug, Default)]
pub struct AptLists {
    /// Packages in index-file name order, then file order.
    pub packages: Vec<AptPackage>,
    /// Compressed indexes (`*_Packages.lz4`, `.gz`, `.xz`, ...) that were seen but not
    /// read, sorted.
    pub compressed: Vec<PathBuf>,
    /// Stanzas that are malformed or break dpkg's rules, each error naming the list,
    /// line, package, field and value, in the order of `packages`. They are left out:
    /// one junk entry of a third-party list must not block every compile, but a
    /// resolution that needs its package fails ([`AptLists::refused_packages`]).
    pub refused: Vec<DpkgError>,
}

/// Why apt's lists could not be read or a package not fetched.
#[derive(Debug, thiserror::Error)]
pub enum AptError {
    /// A list, the pool or a downloaded file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An index stanza is malformed or lacks a field; names the list file and line.
    #[error(transparent)]
    Syntax(#[from] DpkgError),
    /// The package must be downloaded but the caller forbids downloads.
    #[error(
        "{}={} is known only from apt's lists and would have to be downloaded, \
         but --offline forbids it (drop --offline, or put its archive in the pool)",
        excerpt(.name),
        excerpt(.version)
    )]
    Offline {
        /// Package name.
        name: String,
        /// The exact version that was wanted.
        version: String,
    },
    /// The downloader failed.
    #[error("cannot download {}: {detail}{}", names(.packages), hint_line(*hint))]
    Download {
        /// What was asked, each as `name=version (arch)`.
        packages: Vec<String>,
        /// What went wrong (apt-get's error output, or why it could not run).
        detail: String,
        /// What the user can do about it, when that is known.
        hint: Option<&'static str>,
    },
    /// The downloader reported success but left no archive behind.
    #[error(
        "downloading {}={} left no archive named {} in {} (found: {})",
        excerpt(.name),
        excerpt(.version),
        excerpt(.expected),
        dir.display(),
        if found.is_empty() { "nothing".to_string() } else { found.join(", ") }
    )]
    NoArchive {
        /// Package name.
        name: String,
        /// Version requested.
        version: String,
        /// The file name looked for.
        expected: String,
        /// The download directory.
        dir: PathBuf,
        /// What was in it.
        found: Vec<String>,
    },
    /// The downloaded archive is not the one the list describes; it was discarded.
    #[error(
        "downloaded {} has {field} {found} but {} says {expected}; the archive was discarded",
        excerpt(.package),
        list.display()
    )]
    Mismatch {
        /// `name=version`.
        package: String,
        /// `size` or `SHA256`.
        field: &'static str,
        /// The value in the list.
        expected: String,
        /// The value of the downloaded file.
        found: String,
        /// The index file the package came from.
        list: PathBuf,
    },
}

/// `packages`, each cut to an excerpt, separated by commas.
fn names(packages: &[String]) -> String {
    let cut: Vec<String> = packages.iter().map(|p| excerpt(p).to_string()).collect();
    cut.join(", ")
}

fn hint_line(hint: Option<&str>) -> String {
    hint.map(|h| format!("\nhint: {h}")).unwrap_or_default()
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> AptError + '_ {
    move |source| AptError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl AptLists {
    /// Reads every `var/lib/apt/lists/*_Packages` (plain, `.lz4` or `.gz`) under `sysroot`, sorted by
    /// file name; a missing lists folder reads as empty.
    pub fn read(sysroot: &Path) -> Result<AptLists, AptError> {
        let files = ListFiles::find(sysroot)?;
        let mut lists = AptLists {
            compressed: files.compressed,
            ..AptLists::default()
        };
        for path in files.indexes {
            lists.read_index(&path)?;
        }
        Ok(lists)
    }

    /// The package names of the refused stanzas (as the stanza spells it), each with
    /// why its stanza was refused.
    pub fn refused_packages(&self) -> impl Iterator<Item = (&str, &DpkgError)> {
        self.refused.iter().filter_map(|err| match err {
            DpkgError::Syntax {
                package: Some(name),
                ..
            } => Some((name.as_str(), err)),
            _ => None,
        })
    }

    /// No package is known from apt's lists.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

impl AptLists {
    /// Appends the packages of the index at `path`, and its refused stanzas.
    fn read_index(&mut self, path: &Path) -> Result<(), AptError> {
        let text = decode(path)?;
        let security = is_security(path);
        // Stanzas are independent, and a full Debian index has ~64k of them: parse in
        // parallel, keeping file order.
        let parsed: Vec<Result<AptPackage, DpkgError>> = stanzas(&text)
            .par_iter()
            .map(|stanza| index_entry(stanza, path, security))
            .collect();
        for entry in parsed {
            match entry {
                Ok(package) => self.packages.push(package),
                Err(refused) => self.refused.push(refused),
            }
        }
        Ok(())
    }
}

/// The index files of a sysroot's apt lists.
#[derive(Debug, Default)]
pub(crate) struct ListFiles {
    /// Indexes that can be read (plain, `.lz4`, `.gz`), sorted.
    pub(crate) indexes: Vec<PathBuf>,
    /// Indexes in any other compression, seen but not read, sorted.
    pub(crate) compressed: Vec<PathBuf>,
}

impl ListFiles {
    /// The `var/lib/apt/lists/*_Packages*` files under `sysroot`; a missing lists
    /// folder has none.
    pub(crate) fn find(sysroot: &Path) -> Result<ListFiles, AptError> {
        let dir = sysroot.join(LISTS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ListFiles::default()),
            Err(source) => return Err(AptError::Io { path: dir, source }),
        };
        let mut files = ListFiles::default();
        for entry in entries {
            let entry = entry.map_err(io_error(&dir))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            // `partial/` and `auxfiles/` are directories; a symlinked list is still a list.
            if !path.is_file() {
                continue;
            }
            // Docker-style images keep lists compressed (`Acquire::GzipIndexes`): lz4 and
            // gzip are read; any other compression is reported, not guessed at.
            if name.ends_with(INDEX_SUFFIX)
                || name.ends_with(&format!("{INDEX_SUFFIX}.lz4"))
                || name.ends_with(&format!("{INDEX_SUFFIX}.gz"))
            {
                files.indexes.push(path);
            } else if name.contains(&format!("{INDEX_SUFFIX}.")) {
                files.compressed.push(path);
            }
        }
        files.indexes.sort();
        files.compressed.sort();
        Ok(files)
    }
}

/// The text of the index at `path`, decompressed by its extension.
fn decode(path: &Path) -> Result<String, AptError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut text = String::new();
    decoder(file, path)
        .read_to_string(&mut text)
        .map_err(io_error(path))?;
    Ok(text)
}

/// The decompressed text of the index `file` (opened from `path`), by its extension.
fn decoder(file: File, path: &Path) -> Box<dyn Read + Send> {
    let file = io::BufReader::with_capacity(1 << 16, file);
    match path.extension().and_then(|e| e.to_str()) {
        Some("lz4") => Box::new(lz4_flex::frame::FrameDecoder::new(file)),
        Some("gz") => Box::new(flate2::read::GzDecoder::new(file)),
        _ => Box::new(file),
    }
}

/// What the universe index keeps of one stanza of an apt index: enough to find it by
/// name, follow what it needs, and read it back from the list to parse it again as the
/// full read would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedStanza {
    /// Its `Package` value, read leniently so a refused stanza has one too.
    pub(crate) name: String,
    /// Where it lies in the list's decompressed text, for [`read_stanzas`].
    pub(crate) span: Span,
    /// Whether the full read refuses it.
    pub(crate) refused: bool,
    /// Whether it says `Essential: yes`: the resolver adds those unasked.
    pub(crate) essential: bool,
    /// Every name its `Pre-Depends` and `Depends` mention, all alternatives, sorted.
    pub(crate) needs: Vec<String>,
    /// The names it provides, sorted.
    pub(crate) provides: Vec<String>,
}

/// Where one stanza lies in its list's decompressed text: the line it starts on, and
/// its bytes from the start of that line to the end of its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// The line of the index file it starts on.
    pub(crate) first_line: u64,
    /// Its first byte's offset.
    pub(crate) start: u64,
    /// How many bytes it spans.
    pub(crate) length: u64,
}

/// How many stanzas are parsed side by side before they are handed on: enough to keep
/// both cores busy, few enough that a 64k-package index is never held at once.
pub(crate) const INDEX_CHUNK: usize = 4096;

/// Hands `sink` every stanza of the index `file` (opened from `path`), in file order and
/// in chunks, as the universe index keeps it. The list is read as a stream, and the
/// next chunk is read and parsed on another thread while `sink` takes this one.
pub(crate) fn index_stanzas<E: From<AptError> + Send>(
    file: File,
    path: &Path,
    mut sink: impl FnMut(Vec<IndexedStanza>) -> Result<(), E>,
) -> Result<(), E> {
    let (send, receive) = std::sync::mpsc::sync_channel::<Result<Vec<IndexedStanza>, AptError>>(1);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut chunks = Chunks {
                text: io::BufReader::with_capacity(1 << 16, decoder(file, path)),
                path,
                offset: 0,
                lines: 0,
            };
            loop {
                let parsed = chunks.next_chunk().map(|chunk| {
                    chunk.map(|chunk| {
                        (stanzas(&chunk.text).par_iter())
                            .map(|stanza| indexed(stanza, chunk.span(stanza), path))
                            .collect::<Vec<_>>()
                    })
                });
                let last = !matches!(parsed, Ok(Some(_)));
                // The receiver is gone only when the sink failed: nothing left to do.
                if send.send(parsed.map(Option::unwrap_or_default)).is_err() || last {
                    return;
                }
            }
        });
        for chunk in receive {
            let chunk = chunk?;
            if !chunk.is_empty() {
                sink(chunk)?;
            }
        }
        Ok(())
    })
}

/// An index's decompressed text, read a chunk of whole stanzas at a time.
struct Chunks<'a> {
    text: io::BufReader<Box<dyn Read + Send>>,
    path: &'a Path,
    /// Bytes read so far.
    offset: u64,
    /// Lines read so far.
    lines: u64,
}

/// A run of whole stanzas of an index, and where it begins in the index.
struct Chunk {
    /// Its text.
    text: String,
    /// The offset of its first byte.
    start: u64,
    /// How many lines come before it.
    lines: u64,
}

impl Chunk {
    /// Where `stanza`, split from this chunk's text, lies in the index.
    fn span(&self, stanza: &Stanza<'_>) -> Span {
        // Every line borrows from the text: the stanza runs from its first line's first
        // byte to its last line's last.
        let offset = |line: &str| (line.as_ptr() as usize - self.text.as_ptr() as usize) as u64;
        let (from, to) = match (stanza.lines.first(), stanza.lines.last()) {
            (Some(first), Some(last)) => (offset(first), offset(last) + last.len() as u64),
            _ => (0, 0),
        };
        Span {
            first_line: self.lines + stanza.first_line as u64,
            start: self.start + from,
            length: to - from,
        }
    }
}

impl Chunks<'_> {
    /// The next [`INDEX_CHUNK`] stanzas (or what is left); `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Chunk>, AptError> {
        use io::BufRead;
        let (start, lines) = (self.offset, self.lines);
        let mut text = Vec::new();
        let mut ended = 0;
        loop {
            let line_start = text.len();
            let read = (self.text)
                .read_until(b'\n', &mut text)
                .map_err(io_error(self.path))?;
            if read == 0 {
                break;
            }
            self.offset += read as u64;
            self.lines += u64::from(text.ends_with(b"\n"));
            if text[line_start..].trim_ascii().is_empty() {
                ended += 1;
                if ended >= INDEX_CHUNK {
                    break;
                }
            }
        }
        if text.is_empty() {
            return Ok(None);
        }
        let text = String::from_utf8(text).map_err(|e| not_utf8(self.path, e))?;
        Ok(Some(Chunk { text, start, lines }))
    }
}

/// The text of each stanza at `spans` (in file order) of the index `file` opened from
/// `path`, read back for [`indexed_entry`]; a list shorter than a span is an error.
pub(crate) fn read_stanzas(
    file: File,
    path: &Path,
    spans: &[Span],
) -> Result<Vec<String>, AptError> {
    let mut text = decoder(file, path);
    let mut at = 0;
    let mut read = Vec::with_capacity(spans.len());
    for span in spans {
        let skip = span.start.checked_sub(at).ok_or_else(|| AptError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "stanzas asked out of order"),
        })?;
        io::copy(&mut (&mut text).take(skip), &mut io::sink()).map_err(io_error(path))?;
        let mut bytes = Vec::new();
        (&mut text)
            .take(span.length)
            .read_to_end(&mut bytes)
            .map_err(io_error(path))?;
        if bytes.len() as u64 != span.length {
            return Err(AptError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the list is shorter than when it was indexed",
                ),
            });
        }
        at = span.start + span.length;
        read.push(String::from_utf8(bytes).map_err(|e| not_utf8(path, e))?);
    }
    Ok(read)
}

/// Why a list's text is not read: it is not UTF-8, as reading it whole would say.
fn not_utf8(path: &Path, e: std::string::FromUtf8Error) -> AptError {
    AptError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
    }
}

/// The package of one stanza kept by the universe index (`text`, read back from its
/// `span` of the index at `path`), or why it is refused: the same as the full read of
/// that index gives, line numbers included.
pub(crate) fn indexed_entry(
    first_line: u64,
    text: &str,
    path: &Path,
    security: bool,
) -> Result<AptPackage, DpkgError> {
    let stanza = Stanza {
        first_line: first_line as usize,
        lines: text.split('\n').map(|l| l.trim_end_matches('\r')).collect(),
    };
    index_entry(&stanza, path, security)
}

/// `stanza`, which lies at `span` of the index at `path`, as the universe index keeps it.
fn indexed(stanza: &Stanza<'_>, span: Span, path: &Path) -> IndexedStanza {
    let lenient = || {
        stanza.lines.iter().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("Package")
                .then(|| value.trim().to_string())
        })
    };
    // Only whether it is refused is kept, so the error's line numbers need not be right.
    match index_entry(stanza, path, false) {
        Ok(entry) => {
            let p = entry.package;
            let mut needs: Vec<String> = (p.pre_depends.iter().chain(&p.depends))
                .flatten()
                .map(|r| r.name.clone())
                .collect();
            needs.sort_unstable();
            needs.dedup();
            let mut provides: Vec<String> = p.provides.into_iter().map(|r| r.name).collect();
            provides.sort_unstable();
            provides.dedup();
            IndexedStanza {
                name: p.name,
                span,
                refused: false,
                essential: p.essential,
                needs,
                provides,
            }
        }
        Err(_) => IndexedStanza {
            name: lenient().unwrap_or_default(),
            span,
            refused: true,
            essential: false,
            needs: Vec::new(),
            provides: Vec::new(),
        },
    }
}

/// One package of an index, with its archive's location, size and SHA256 checked.
fn index_entry(stanza: &Stanza<'_>, path: &Path, security: bool) -> Result<AptPackage, DpkgError> {
    let fields = Fields::parse(stanza, path)?;
    let first_line = fields.first_line();
    let package = fields.package(Origin::AptList)?;
    let filename = fields.required("Filename", first_line)?.to_string();
    let size = fields.required("Size", first_line)?;
    let size = size.parse::<u64>().map_err(|_| {
        fields.error(
            fields.get("Size").map_or(first_line, |f| f.line),
            format!("Size `{}` is not a byte count", excerpt(size)),
        )
    })?;
    let sha256 = fields.required("SHA256", first_line)?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fields.error(
            fields.get("SHA256").map_or(first_line, |f| f.line),
            format!("SHA256 `{}` is not 64 hex digits", excerpt(sha256)),
        ));
    }
    Ok(AptPackage {
        package,
        filename,
        size,
        sha256: sha256.to_ascii_lowercase(),
        list: path.to_path_buf(),
        security,
    })
}

/// Whether the index at `path` belongs to a security suite: its distribution's
/// `InRelease` (or `Release`) beside it names a `*-security` suite or codename, or a
/// security label (`Debian-Security`); with neither file, its name says `-security_`.
/// The index names its distribution as a prefix of its own name
/// (`site_dists_bookworm-security` of `site_dists_bookworm-security_main_..._Packages`).
pub(crate) fn is_security(path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return false;
    };
    let release = std::iter::successors(Some(name), |prefix| {
        prefix.rsplit_once('_').map(|(head, _)| head)
    })
    .skip(1)
    .flat_map(|prefix| ["InRelease", "Release"].map(|file| dir.join(format!("{prefix}_{file}"))))
    .find_map(|release| fs::read_to_string(release).ok());
    let Some(release) = release else {
        return name.contains("-security_");
    };
    release.lines().any(|line| match line.split_once(':') {
        Some(("Suite" | "Codename", value)) => value.trim().ends_with("-security"),
        Some(("Label", value)) => value.contains("Security"),
        _ => false,
    })
}

/// One archive to download: exactly `name=version` for `arch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Package name.
    pub name: &'a str,
    /// The exact version (never apt's candidate).
    pub version: &'a str,
    /// Architecture.
    pub arch: &'a str,
}

impl Wanted<'_> {
    /// `name=version (arch)`, as errors name it.
    fn label(&self) -> String {
        format!("{}={} ({})", self.name, self.version, self.arch)
    }
}

/// Something that puts package archives, each exactly `name=version` for `arch`, into a
/// directory: `apt-get download` for real, a fake in tests.
pub trait Downloader {
    /// Downloads the archives of all of `wanted` into the directory `into` in one go.
    fn download(&self, wanted: &[Wanted<'_>], into: &Path) -> Result<(), AptError>;
}

/// Downloads all of `wanted` into `into` with one run of `runner`, which fetches them
/// in parallel. When that run fails, `Err` holds each failure (index into `wanted`, its
/// error), in order, and the others' archives are in `into`. apt checks every request
/// before it downloads any, and names each it cannot satisfy in an `E:` line: those
/// fail with their own lines and the rest come in one more run. Only when apt's lines
/// name none of them, or that run fails too, is each asked for alone, in order, so the
/// errors still name the packages that fail. A caller that can do without some (export,
/// for installed packages the mirror no longer has) so pays two runs, not one a package.
pub fn download_all(
    wanted: &[Wanted<'_>],
    into: &Path,
    runner: &dyn Downloader,
) -> Result<(), Vec<(usize, AptError)>> {
    let failure = match runner.download(wanted, into) {
        Ok(()) => return Ok(()),
        Err(e) if wanted.len() == 1 => return Err(vec![(0, e)]),
        Err(e) => e,
    };
    let named = named_by(&failure, wanted);
    if !named.is_empty() {
        let rest: Vec<Wanted<'_>> = (wanted.iter().enumerate())
            .filter(|(index, _)| !named.iter().any(|(n, _)| n == index))
            .map(|(_, one)| *one)
            .collect();
        if rest.is_empty() || runner.download(&rest, into).is_ok() {
            return Err(named);
        }
    }
    let failed: Vec<(usize, AptError)> = (wanted.iter().enumerate())
        .filter_map(|(index, one)| {
            (runner.download(std::slice::from_ref(one), into).err()).map(|e| (index, e))
        })
        .collect();
    // None failing alone: the failure came and went (a mirror's hiccup).
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed)
    }
}

/// Of `wanted`, those that `failure`'s `E:` lines name as apt writes them (`Version
/// 'VERSION' for 'NAME'`, `version 'VERSION' of 'NAME:ARCH'`, `package NAME`), each with
/// an error of its own holding those lines.
fn named_by(failure: &AptError, wanted: &[Wanted<'_>]) -> Vec<(usize, AptError)> {
    let AptError::Download { detail, hint, .. } = failure else {
        return Vec::new();
    };
    let errors: Vec<&str> = detail.lines().filter(|l| l.starts_with("E:")).collect();
    (wanted.iter().enumerate())
        .filter_map(|(index, one)| {
            let qualified = format!("{}:{}", one.name, one.arch);
            // A line about one version names it too: two versions of one name may be
            // asked for at once, and only one be missing.
            let version = format!("'{}'", one.version);
            let names = |line: &str| {
                [one.name, qualified.as_str()].iter().any(|name| {
                    let versioned = line.contains(&format!("for '{name}'"))
                        || line.contains(&format!("of '{name}'"));
                    (versioned && line.contains(&version))
                        || line.ends_with(&format!("package {name}"))
                })
            };
            let lines: Vec<&str> = errors.iter().copied().filter(|l| names(l)).collect();
            (!lines.is_empty()).then(|| {
                let error = AptError::Download {
                    packages: vec![one.label()],
                    detail: lines.join("\n"),
                    hint: *hint,
                };
                (index, error)
            })
        })
        .collect()
}

/// Fetches exactly each of `packages`' version (never apt's candidate) into `pool_dir`,
/// checks its size and SHA256 against the list and returns the archives' paths, in
/// order. A file with the right SHA256 already there is reused without downloading; the
/// others are downloaded together into a private directory inside `pool_dir` and each is
/// renamed into place only once checked, so the pool never holds a half-written or
/// wrong archive.
pub fn fetch(
    packages: &[&AptPackage],
    pool_dir: &Path,
    runner: &dyn Downloader,
) -> Result<Vec<PathBuf>, AptError> {
    let targets: Vec<PathBuf> = (packages.iter())
        .map(|pkg| pool_dir.join(pkg.archive_name()))
        .collect();
    let mut missing = Vec::new();
    for (pkg, target) in packages.iter().zip(&targets) {
        match digest(target) {
            Ok((size, sha256)) if size == pkg.size && sha256 == pkg.sha256 => {}
            // A wrong file there is replaced below; a missing one is simply downloaded.
            Ok(_) => missing.push((*pkg, target)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push((*pkg, target)),
            Err(source) => {
                return Err(AptError::Io {
                    path: target.clone(),
                    source,
                });
            }
        }
    }
    if missing.is_empty() {
        return Ok(targets);
    }
    let scratch = download_folder(pool_dir)?;
    let wanted: Vec<Wanted<'_>> = (missing.iter())
        .map(|(pkg, _)| Wanted {
            name: &pkg.package.name,
            version: &pkg.package.version,
            arch: &pkg.package.arch,
        })
        .collect();
    // The first failure, in the order asked.
    download_all(&wanted, &scratch.path, runner).map_err(|mut failed| failed.swap_remove(0).1)?;
    // Each checked archive leaves the folder as it is renamed into the pool, so a
    // later package's search never finds it.
    for (pkg, target) in missing {
        let downloaded = find_archive(pkg, &scratch.path)?;
        check_download(pkg, &downloaded)?;
        fs::rename(&downloaded, target).map_err(io_error(target))?;
    }
    Ok(targets)
}

/// Refuses the archive at `path` unless it has `pkg`'s size and SHA256 from its list.
fn check_download(pkg: &AptPackage, path: &Path) -> Result<(), AptError> {
    let (size, sha256) = digest(path).map_err(io_error(path))?;
    let p = &pkg.package;
    let mismatch = |field, expected: String, found: String| AptError::Mismatch {
        package: format!("{}={}", p.name, p.version),
        field,
        expected,
        found,
        list: pkg.list.clone(),
    };
    if size != pkg.size {
        return Err(mismatch("size", pkg.size.to_string(), size.to_string()));
    }
    if sha256 != pkg.sha256 {
        return Err(mismatch("SHA256", pkg.sha256.clone(), sha256));
    }
    Ok(())
}

/// The archive of `pkg` the downloader left in `dir`: apt's name for it, else a `.deb`
/// with the list's size and SHA256 (apt's quoting may differ from ours for unusual
/// versions).
fn find_archive(pkg: &AptPackage, dir: &Path) -> Result<PathBuf, AptError> {
    let expected = pkg.archive_name();
    let path = dir.join(&expected);
    if path.is_file() {
        return Ok(path);
    }
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        found.push(entry.file_name().to_string_lossy().into_owned());
    }
    found.sort();
    for name in found.iter().filter(|n| n.ends_with(".deb")) {
        let path = dir.join(name);
        let sums = digest(&path).map_err(io_error(&path))?;
        if sums == (pkg.size, pkg.sha256.clone()) {
            return Ok(path);
        }
    }
    Err(AptError::NoArchive {
        name: pkg.package.name.clone(),
        version: pkg.package.version.clone(),
        expected,
        dir: dir.to_path_buf(),
        found,
    })
}

/// Size and lower-case hex SHA256 of the file at `path`.
fn digest(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// A private directory inside the pool (made if need be) for one run's downloads
/// (`.apt-download.tmp-<pid>-<n>`), so a checked archive is renamed into the pool,
/// never copied; removed with whatever is left in it when dropped; the ones killed runs
/// left go first.
pub(crate) fn download_folder(pool_dir: &Path) -> Result<Temp, AptError> {
    crate::repo::create_folder(pool_dir, 0o755).map_err(io_error(pool_dir))?;
    let stem = OsStr::new(".apt-download");
    crate::scratch::remove_stale(pool_dir, |found| found == stem);
    // Searchable by everyone, as apt-get's own download folders are.
    Temp::dir(pool_dir, stem, 0o755).map_err(io_error(pool_dir))
}

/// The real [`Downloader`]: one `apt-get download NAME:ARCH=VERSION...` run in the
/// target directory, using the host's apt configuration and lists; apt's acquire
/// system fetches the archives in parallel.
#[derive(Debug, Clone, Copy, Default)]
pub struct AptGet;

impl Downloader for AptGet {
    fn download(&self, wanted: &[Wanted<'_>], into: &Path) -> Result<(), AptError> {
        let failed = |detail: String, hint| AptError::Download {
            packages: wanted.iter().map(Wanted::label).collect(),
            detail,
            hint,
        };
        let specs = (wanted.iter()).map(|w| format!("{}:{}={}", w.name, w.arch, w.version));
        let output = Command::new("apt-get")
            .args(["-q", "download"])
            .args(specs)
            .current_dir(into)
            .output()
            .map_err(|e| failed(format!("cannot run apt-get: {e}"), None))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        // apt's errors say why; its warnings (running unsandboxed as root) do not.
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E:")).collect();
        let detail = match stderr.trim() {
            "" => format!("apt-get {}", output.status),
            _ if !errors.is_empty() => errors.join("\n"),
            text => text.to_string(),
        };
        let hint = download_hint(&stderr, host_lists_empty());
        Err(failed(detail, hint))
    }
}

/// Whether the host's apt has no package indexes at all, compressed or not.
fn host_lists_empty() -> bool {
    let Ok(entries) = fs::read_dir(Path::new("/").join(LISTS_DIR)) else {
        return true;
    };
    !entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(INDEX_SUFFIX))
}

/// What to suggest after `apt-get download` failed with `stderr`.
fn download_hint(stderr: &str, lists_empty: bool) -> Option<&'static str> {
    if lists_empty {
        Some("apt has no package lists: run `apt-get update`")
    } else if stderr.contains("Unable to locate package")
        || stderr.contains("was not found")
        || stderr.contains("404")
    {
        Some("apt's lists may be out of date: run `apt-get update`")
    } else if stderr.contains("Temporary failure resolving")
        || stderr.contains("Could not connect")
        || stderr.contains("Network is unreachable")
    {
        Some("the mirror is unreachable: check the network, or put the archive in the pool")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// Writes `files` (path relative to the root, content) under a new tempdir.
    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        }
        dir
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    const HELLO_NEW: &[u8] = b"hello 2.10-3 archive bytes";
    const HELLO_OLD: &[u8] = b"hello 2.10-2 archive";
    const CRYPT: &[u8] = b"libcrypt1 archive";

    /// A stanza as apt's indexes have them, with multi-line fields.
    fn stanza(name: &str, version: &str, arch: &str, bytes: &[u8], extra: &str) -> String {
        format!(
            "Package: {name}\n\
             Version: {version}\n\
             Installed-Size: 277\n\
             Architecture: {arch}\n\
             {extra}\
             Description: example package\n \
             with a long description\n .\n \
             over several lines\n\
             Tag: devel::debian,\n devel::examples\n\
             Filename: pool/main/{name}_{}_{arch}.deb\n\
             Size: {}\n\
             MD5sum: d04c2e9639dee67aa836d8232b1ca658\n\
             SHA256: {}\n",
            version.rsplit(':').next().unwrap(),
            bytes.len(),
            sha256_hex(bytes).to_uppercase(),
        )
    }

    fn main_list() -> String {
        [
            stanza(
                "hello",
                "2.10-3",
                "amd64",
                HELLO_NEW,
                "Depends: libc6 (>= 2.34),\n libgcc-s1 | libgcc1\nConflicts: hello-traditional\n",
            ),
            stanza("hello", "2.10-2", "amd64", HELLO_OLD, ""),
        ]
        .join("\n")
    }

    fn security_list() -> String {
        stanza(
            "libcrypt1",
            "1:4.4.33-2",
            "amd64",
            CRYPT,
            "Multi-Arch: same\nPre-Depends: libc6 (>= 2.36)\n",
        )
    }

    /// A sysroot with two indexes (named so the security one sorts first), a compressed
    /// index, a translation file and apt's `partial/` folder.
    fn sysroot() -> tempfile::TempDir {
        let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(
            &mut lz4,
            format!(
                "Package: zpkg\nVersion: 1\nArchitecture: all\nFilename: pool/z.deb\nSize: 1\nSHA256: {}\n",
                "ab".repeat(32)
            )
            .as_bytes(),
        )
        .unwrap();
        let lz4 = lz4.finish().unwrap();
        tree(&[
            (
                "var/lib/apt/lists/mirror_dists_bookworm_main_binary-amd64_Packages",
                main_list().as_bytes(),
            ),
            (
                "var/lib/apt/lists/mirror_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
                security_list().as_bytes(),
            ),
            (
                "var/lib/apt/lists/other_dists_x_main_binary-amd64_Packages.lz4",
                &lz4,
            ),
            (
                "var/lib/apt/lists/other_dists_y_main_binary-amd64_Packages.xz",
                b"\xfd7zXZ\x00",
            ),
            (
                "var/lib/apt/lists/mirror_dists_bookworm_main_i18n_Translation-en",
                b"Package: hello\n",
            ),
            ("var/lib/apt/lists/partial/stale_Packages", b"garbage"),
        ])
    }

    fn lists() -> (tempfile::TempDir, AptLists) {
        let root = sysroot();
        let lists = AptLists::read(root.path()).unwrap();
        (root, lists)
    }

    fn find<'a>(lists: &'a AptLists, name: &str, version: &str) -> &'a AptPackage {
        lists
            .packages
            .iter()
            .find(|p| p.package.name == name && p.package.version == version)
            .unwrap()
    }

    /// Writes `bytes` for each package asked for, as apt would (or under `file_name`),
    /// and records each run's requests; like apt, fails the whole run, writing
    /// nothing, when it asks for the `failing` package.
    struct FakeDownloader {
        bytes: Vec<u8>,
        by_name: HashMap<&'static str, &'static [u8]>,
        file_name: Option<String>,
        failing: Option<&'static str>,
        /// What a failed run says instead of naming `failing` (a network error, say).
        unnamed: Option<&'static str>,
        calls: RefCell<Vec<String>>,
    }

    impl FakeDownloader {
        fn new(bytes: &[u8]) -> FakeDownloader {
            FakeDownloader {
                bytes: bytes.to_vec(),
                by_name: HashMap::new(),
                file_name: None,
                failing: None,
                unnamed: None,
                calls: RefCell::new(Vec::new()),
            }
        }
    }

    impl Downloader for FakeDownloader {
        fn download(&self, wanted: &[Wanted<'_>], into: &Path) -> Result<(), AptError> {
            let specs: Vec<String> = (wanted.iter())
                .map(|w| format!("{}:{}={}", w.name, w.arch, w.version))
                .collect();
            self.calls.borrow_mut().push(specs.join(" "));
            if let Some(bad) = self
                .failing
                .filter(|bad| wanted.iter().any(|w| w.name == *bad))
            {
                return Err(AptError::Download {
                    packages: wanted.iter().map(Wanted::label).collect(),
                    detail: (self.unnamed.map(str::to_string))
                        .unwrap_or_else(|| format!("E: Unable to locate package {bad}")),
                    hint: None,
                });
            }
            for w in wanted {
                let file_name = self.file_name.clone().unwrap_or_else(|| {
                    format!(
                        "{}_{}_{}.deb",
                        w.name,
                        w.version.replace(':', "%3a"),
                        w.arch
                    )
                });
                let bytes = self.by_name.get(w.name).copied().unwrap_or(&self.bytes);
                fs::write(into.join(file_name), bytes).unwrap();
            }
            Ok(())
        }
    }

    /// Names of the entries of `dir`, hidden ones included, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn reads_plain_and_lz4_indexes_in_file_name_order() {
        let (root, lists) = lists();
        let keys: Vec<String> = lists
            .packages
            .iter()
            .map(|p| format!("{}={}", p.package.name, p.package.version))
            .collect();
        assert_eq!(
            keys,
            [
                "libcrypt1=1:4.4.33-2",
                "hello=2.10-3",
                "hello=2.10-2",
                "zpkg=1"
            ]
        );
        assert!(!lists.is_empty());
        let lists_dir = root.path().join(LISTS_DIR);
        assert_eq!(
            lists.compressed,
            [lists_dir.join("other_dists_y_main_binary-amd64_Packages.xz")]
        );

        let hello = find(&lists, "hello", "2.10-3");
        assert_eq!(hello.package.origin, Origin::AptList);
        assert_eq!(hello.package.arch, "amd64");
        assert_eq!(hello.filename, "pool/main/hello_2.10-3_amd64.deb");
        assert_eq!(hello.size, HELLO_NEW.len() as u64);
        assert_eq!(hello.sha256, sha256_hex(HELLO_NEW), "stored lower-case");
        assert_eq!(
            hello.list,
            lists_dir.join("mirror_dists_bookworm_main_binary-amd64_Packages")
        );
        assert_eq!(hello.package.depends.len(), 2, "continuation line joined");
        assert_eq!(hello.package.depends[1][1].name, "libgcc1");
        assert_eq!(hello.package.conflicts[0].name, "hello-traditional");

        let crypt = find(&lists, "libcrypt1", "1:4.4.33-2");
        assert_eq!(
            crypt.package.multi_arch,
            crate::source::dpkg::MultiArch::Same
        );
        assert_eq!(crypt.package.pre_depends[0][0].name, "libc6");
    }

    #[test]
    fn security_suites_are_told_by_their_release_else_their_name() {
        let (_root, lists) = lists();
        let security = |name, version| find(&lists, name, version).security;
        // No Release kept: the index's name says it.
        assert!(security("libcrypt1", "1:4.4.33-2"));
        assert!(!security("hello", "2.10-3"));
        let list = |name: &str| format!("var/lib/apt/lists/{name}_main_binary-amd64_Packages");
        let release = |suite: &str| {
            format!(
                "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\nSuite: {suite}\nCodename: {suite}\n"
            )
        };
        let one = |name: &str, version: &str| stanza(name, version, "amd64", CRYPT, "");
        let root = tree(&[
            (
                &list("site_debian_dists_updates"),
                one("aa", "1").as_bytes(),
            ),
            (
                "var/lib/apt/lists/site_debian_dists_updates_InRelease",
                release("bookworm-security").as_bytes(),
            ),
            (&list("site_dists_odd-security"), one("bb", "1").as_bytes()),
            (
                "var/lib/apt/lists/site_dists_odd-security_Release",
                release("bookworm").as_bytes(),
            ),
            (&list("labs_dists_x"), one("cc", "1").as_bytes()),
            (
                "var/lib/apt/lists/labs_dists_x_Release",
                b"Label: Debian-Security\nSuite: x\n",
            ),
        ]);
        let lists = AptLists::read(root.path()).unwrap();
        let security = |name| find(&lists, name, "1").security;
        assert!(security("aa"));
        assert!(!security("bb"));
        assert!(security("cc"));
    }

    #[test]
    fn missing_lists_folder_is_empty() {
        let root = tempfile::tempdir().unwrap();
        let lists = AptLists::read(root.path()).unwrap();
        assert!(lists.is_empty());
        assert!(lists.compressed.is_empty());
    }

    /// Reads a sysroot whose only index is `text`, expecting one stanza refused.
    fn index_error(text: &str) -> String {
        let root = tree(&[("var/lib/apt/lists/x_Packages", text.as_bytes())]);
        let lists = AptLists::read(root.path()).unwrap();
        let [refused] = lists.refused.as_slice() else {
            panic!("{:?}", lists.refused);
        };
        refused.to_string()
    }

    #[test]
    fn refused_stanzas_are_set_aside_with_their_package() {
        let list = [
            main_list().replacen("Version: 2.10-2", "Version: 2.10 beta", 1),
            "Package: Bad_Name\nVersion: 1\nArchitecture: all\n".to_string(),
            "garbage without a colon\n".to_string(),
            security_list(),
        ]
        .join("\n");
        let root = tree(&[("var/lib/apt/lists/x_Packages", list.as_bytes())]);
        let lists = AptLists::read(root.path()).unwrap();
        let kept: Vec<&str> = (lists.packages.iter())
            .map(|p| p.package.version.as_str())
            .collect();
        assert_eq!(kept, ["2.10-3", "1:4.4.33-2"]);
        let refused: Vec<(&str, String)> = (lists.refused_packages())
            .map(|(name, err)| (name, err.to_string()))
            .collect();
        let line = list
            .lines()
            .position(|l| l == "Version: 2.10 beta")
            .unwrap()
            + 1;
        assert_eq!(refused[0].0, "hello");
        assert!(
            refused[0].1.contains(&format!(
                "x_Packages:{line}: package hello: Version: bad version `2.10 beta`"
            )),
            "{}",
            refused[0].1
        );
        assert_eq!(refused[1].0, "Bad_Name");
        assert_eq!(refused.len(), 2, "a stanza without a name has no package");
        assert_eq!(lists.refused.len(), 3);
    }

    #[test]
    fn malformed_fields_name_list_line_and_package() {
        let list = main_list().replacen("Size: 26", "Size: lots", 1);
        let line = list.lines().position(|l| l == "Size: lots").unwrap() + 1;
        let err = index_error(&list);
        assert!(
            err.contains(&format!("x_Packages:{line}: package hello: Size `lots`")),
            "{err}"
        );

        let list = security_list().replace(&sha256_hex(CRYPT).to_uppercase(), "abc");
        let err = index_error(&list);
        assert!(err.contains("x_Packages:"), "{err}");
        assert!(err.contains("package libcrypt1: SHA256 `abc`"), "{err}");

        let list = format!("\n\n{}", security_list().replace("Filename", "X-Filename"));
        let err = index_error(&list);
        assert!(
            err.contains("x_Packages:3: package libcrypt1: missing field Filename"),
            "{err}"
        );
    }

    #[test]
    fn fetches_exactly_the_listed_version() {
        let (_root, lists) = lists();
        let pool = tempfile::tempdir().unwrap();
        let old = find(&lists, "hello", "2.10-2");
        let downloader = FakeDownloader::new(HELLO_OLD);
        let [path] = fetch(&[old], pool.path(), &downloader)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(*downloader.calls.borrow(), ["hello:amd64=2.10-2"]);
        assert_eq!(path, pool.path().join("hello_2.10-2_amd64.deb"));
        assert_eq!(fs::read(&path).unwrap(), HELLO_OLD);
        assert_eq!(
            entries(pool.path()),
            ["hello_2.10-2_amd64.deb"],
            "download folder removed"
        );
    }

    #[test]
    fn a_killed_download_s_folder_goes_with_the_next_download() {
        let (_root, lists) = lists();
        let pool = tempfile::tempdir().unwrap();
        let dead = crate::scratch::dead_pid();
        let stale = pool.path().join(format!(".apt-download.tmp-{dead}-0"));
        fs::create_dir(&stale).unwrap();
        fs::write(stale.join("hello_2.10-2_amd64.deb"), b"half").unwrap();
        let old = find(&lists, "hello", "2.10-2");
        fetch(&[old], pool.path(), &FakeDownloader::new(HELLO_OLD)).unwrap();
        assert_eq!(entries(pool.path()), ["hello_2.10-2_amd64.deb"]);
    }

    #[test]
    fn present_good_archive_is_reused_without_downloading() {
        let (_root, lists) = lists();
        let pool = tree(&[("hello_2.10-3_amd64.deb", HELLO_NEW)]);
        let downloader = FakeDownloader::new(b"must not be used");
        let hello = find(&lists, "hello", "2.10-3");
        let [path] = fetch(&[hello], pool.path(), &downloader)
            .unwrap()
            .try_into()
            .unwrap();
        assert!(downloader.calls.borrow().is_empty());
        assert_eq!(fs::read(path).unwrap(), HELLO_NEW);
    }

    #[test]
    fn present_wrong_archive_is_replaced() {
        let (_root, lists) = lists();
        let pool = tree(&[("hello_2.10-3_amd64.deb", b"truncated")]);
        let downloader = FakeDownloader::new(HELLO_NEW);
        let hello = find(&lists, "hello", "2.10-3");
        let [path] = fetch(&[hello], pool.path(), &downloader)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(downloader.calls.borrow().len(), 1);
        assert_eq!(fs::read(path).unwrap(), HELLO_NEW);
    }

    #[test]
    fn wrong_sha256_or_size_is_rejected_and_nothing_left() {
        let (_root, lists) = lists();
        let hello = find(&lists, "hello", "2.10-3");
        // Same length, different bytes: only the digest can tell.
        let same_size: Vec<u8> = HELLO_NEW.iter().map(|b| b ^ 1).collect();
        for (bytes, field) in [(&same_size[..], "SHA256"), (&b"short"[..], "size")] {
            let pool = tempfile::tempdir().unwrap();
            let err = fetch(&[hello], pool.path(), &FakeDownloader::new(bytes)).unwrap_err();
            let AptError::Mismatch {
                field: found_field, ..
            } = &err
            else {
                panic!("{err}")
            };
            assert_eq!(*found_field, field);
            let message = err.to_string();
            assert!(message.contains("hello=2.10-3"), "{message}");
            assert!(message.contains("main_binary-amd64_Packages"), "{message}");
            assert!(
                entries(pool.path()).is_empty(),
                "{:?}",
                entries(pool.path())
            );
        }
    }

    #[test]
    fn epoch_is_quoted_in_the_archive_name() {
        let (_root, lists) = lists();
        let crypt = find(&lists, "libcrypt1", "1:4.4.33-2");
        assert_eq!(crypt.archive_name(), "libcrypt1_1%3a4.4.33-2_amd64.deb");
        let pool = tempfile::tempdir().unwrap();
        let downloader = FakeDownloader::new(CRYPT);
        let [path] = fetch(&[crypt], pool.path(), &downloader)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(*downloader.calls.borrow(), ["libcrypt1:amd64=1:4.4.33-2"]);
        assert_eq!(path, pool.path().join("libcrypt1_1%3a4.4.33-2_amd64.deb"));
    }

    #[test]
    fn apt_quote_matches_apt() {
        assert_eq!(apt_quote("1:2.0~rc1+b1", "_:"), "1%3a2.0~rc1+b1");
        assert_eq!(apt_quote("a_b%c d", "_:"), "a%5fb%25c%20d");
        assert_eq!(apt_quote("armel.x", "_:."), "armel%2ex");
    }

    #[test]
    fn differently_named_archive_is_found() {
        let (_root, lists) = lists();
        let crypt = find(&lists, "libcrypt1", "1:4.4.33-2");
        let pool = tempfile::tempdir().unwrap();
        let mut downloader = FakeDownloader::new(CRYPT);
        downloader.file_name = Some("libcrypt1_4.4.33-2_amd64.deb".into());
        let [path] = fetch(&[crypt], pool.path(), &downloader)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(path, pool.path().join(crypt.archive_name()));
        assert_eq!(fs::read(path).unwrap(), CRYPT);
    }

    #[test]
    fn download_without_archive_or_failing_is_an_error() {
        let (_root, lists) = lists();
        let hello = find(&lists, "hello", "2.10-3");
        let pool = tempfile::tempdir().unwrap();
        let mut downloader = FakeDownloader::new(HELLO_NEW);
        downloader.file_name = Some("notes.txt".into());
        let err = fetch(&[hello], pool.path(), &downloader)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hello=2.10-3 left no archive named hello_2.10-3_amd64.deb"),
            "{err}"
        );
        assert!(err.contains("found: notes.txt"), "{err}");
        assert!(entries(pool.path()).is_empty());

        struct Failing;
        impl Downloader for Failing {
            fn download(&self, wanted: &[Wanted<'_>], _: &Path) -> Result<(), AptError> {
                Err(AptError::Download {
                    packages: wanted.iter().map(Wanted::label).collect(),
                    detail: "E: Unable to locate package hello".into(),
                    hint: download_hint("E: Unable to locate package hello", false),
                })
            }
        }
        let err = fetch(&[hello], pool.path(), &Failing)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot download hello=2.10-3 (amd64): E: Unable to locate package hello\n\
             hint: apt's lists may be out of date: run `apt-get update`"
        );
        assert!(entries(pool.path()).is_empty());
    }

    #[test]
    fn several_archives_come_in_one_run() {
        let (_root, lists) = lists();
        let pool = tree(&[("hello_2.10-2_amd64.deb", HELLO_OLD)]);
        let wanted = [
            find(&lists, "hello", "2.10-3"),
            find(&lists, "hello", "2.10-2"),
            find(&lists, "libcrypt1", "1:4.4.33-2"),
        ];
        let mut downloader = FakeDownloader::new(HELLO_NEW);
        downloader.by_name.insert("libcrypt1", CRYPT);
        let paths = fetch(&wanted, pool.path(), &downloader).unwrap();
        assert_eq!(
            *downloader.calls.borrow(),
            ["hello:amd64=2.10-3 libcrypt1:amd64=1:4.4.33-2"],
            "one run, for what the pool lacks"
        );
        let names: Vec<String> = wanted.iter().map(|p| p.archive_name()).collect();
        assert_eq!(
            paths,
            names
                .iter()
                .map(|n| pool.path().join(n))
                .collect::<Vec<_>>()
        );
        assert_eq!(fs::read(&paths[2]).unwrap(), CRYPT);
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(entries(pool.path()), sorted, "download folder removed");
    }

    #[test]
    fn a_failed_run_names_the_package_that_fails() {
        let (_root, lists) = lists();
        let pool = tempfile::tempdir().unwrap();
        let wanted = [
            find(&lists, "hello", "2.10-3"),
            find(&lists, "libcrypt1", "1:4.4.33-2"),
        ];
        let mut downloader = FakeDownloader::new(HELLO_NEW);
        downloader.failing = Some("libcrypt1");
        let err = fetch(&wanted, pool.path(), &downloader).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot download libcrypt1=1:4.4.33-2 (amd64): E: Unable to locate package libcrypt1"
        );
        assert_eq!(
            *downloader.calls.borrow(),
            [
                "hello:amd64=2.10-3 libcrypt1:amd64=1:4.4.33-2",
                "hello:amd64=2.10-3"
            ],
            "the package apt names fails with its own line; the rest come in one run"
        );
        assert!(
            entries(pool.path()).is_empty(),
            "{:?}",
            entries(pool.path())
        );
    }

    #[test]
    fn a_failure_naming_no_package_is_narrowed_by_asking_each_alone() {
        let (_root, lists) = lists();
        let wanted: Vec<Wanted> = [("hello", "2.10-3"), ("libcrypt1", "1:4.4.33-2")]
            .iter()
            .map(|&(name, version)| {
                let p = find(&lists, name, version);
                Wanted {
                    name: &p.package.name,
                    version: &p.package.version,
                    arch: &p.package.arch,
                }
            })
            .collect();
        let into = tempfile::tempdir().unwrap();
        let mut downloader = FakeDownloader::new(HELLO_NEW);
        downloader.failing = Some("libcrypt1");
        downloader.unnamed = Some("E: Failed to fetch http://x/y.deb  Connection failed");
        let failed = download_all(&wanted, into.path(), &downloader).unwrap_err();
        let failed: Vec<(usize, String)> = (failed.into_iter())
            .map(|(at, e)| (at, e.to_string()))
            .collect();
        assert_eq!(
            failed,
            [(
                1,
                "cannot download libcrypt1=1:4.4.33-2 (amd64): \
                 E: Failed to fetch http://x/y.deb  Connection failed"
                    .to_string()
            )]
        );
        assert_eq!(
            *downloader.calls.borrow(),
            [
                "hello:amd64=2.10-3 libcrypt1:amd64=1:4.4.33-2",
                "hello:amd64=2.10-3",
                "libcrypt1:amd64=1:4.4.33-2"
            ]
        );
    }

    #[test]
    fn apt_error_lines_name_the_packages_they_are_about() {
        let wanted = [
            Wanted {
                name: "hello",
                version: "0.0",
                arch: "amd64",
            },
            Wanted {
                name: "nosuchpkg",
                version: "1",
                arch: "amd64",
            },
            Wanted {
                name: "tzdata",
                version: "1",
                arch: "all",
            },
            Wanted {
                name: "1",
                version: "2",
                arch: "amd64",
            },
        ];
        // As apt-get download 2.6 prints them for those requests.
        let failure = AptError::Download {
            packages: wanted.iter().map(Wanted::label).collect(),
            detail: "E: Version '0.0' for 'hello' was not found\n\
                     E: Unable to locate package nosuchpkg:amd64"
                .into(),
            hint: None,
        };
        let named: Vec<(usize, String)> = (named_by(&failure, &wanted).into_iter())
            .map(|(at, e)| (at, e.to_string()))
            .collect();
        assert_eq!(
            named,
            [
                (0, "cannot download hello=0.0 (amd64): E: Version '0.0' for 'hello' was not found".to_string()),
                (1, "cannot download nosuchpkg=1 (amd64): E: Unable to locate package nosuchpkg:amd64".to_string()),
            ]
        );
    }

    #[test]
    fn hints_follow_the_failure() {
        let update = Some("apt has no package lists: run `apt-get update`");
        assert_eq!(download_hint("anything", true), update);
        assert_eq!(
            download_hint("E: Version '9.9' for 'hello' was not found", false),
            Some("apt's lists may be out of date: run `apt-get update`")
        );
        assert!(
            download_hint(
                "E: Failed to fetch http://x/y.deb  Temporary failure resolving 'x'",
                false
            )
            .unwrap()
            .contains("check the network")
        );
        assert_eq!(download_hint("E: something else", false), None);
    }

    #[test]
    fn offline_names_package_and_version() {
        let err = AptError::Offline {
            name: "hello".into(),
            version: "2.10-3".into(),
        }
        .to_string();
        assert!(
            err.starts_with("hello=2.10-3 is known only from apt's lists"),
            "{err}"
        );
        assert!(err.contains("--offline"), "{err}");
    }

    /// The host's own lists when they are uncompressed, else a one-package index made
    /// from `apt-cache show hello` (Docker images keep their lists compressed); `None`
    /// when apt knows nothing usable.
    fn host_index() -> Option<(tempfile::TempDir, AptPackage)> {
        let root = tempfile::tempdir().unwrap();
        let host = AptLists::read(Path::new("/")).unwrap();
        let lists = if host.is_empty() {
            let output = Command::new("apt-cache")
                .args(["show", "--no-all-versions", "hello"])
                .output()
                .ok()
                .filter(|o| o.status.success())?;
            let dir = root.path().join(LISTS_DIR);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("host_Packages"), output.stdout).unwrap();
            AptLists::read(root.path()).unwrap()
        } else {
            host
        };
        let package = lists
            .packages
            .iter()
            .find(|p| p.package.name == "hello")
            .or_else(|| lists.packages.iter().min_by_key(|p| p.size))?
            .clone();
        Some((root, package))
    }

    struct MustNotDownload;
    impl Downloader for MustNotDownload {
        fn download(&self, wanted: &[Wanted<'_>], _: &Path) -> Result<(), AptError> {
            panic!("{wanted:?} downloaded although the pool has it")
        }
    }

    #[test]
    fn apt_get_downloads_a_real_package_when_possible() {
        if Command::new("apt-get").arg("--version").output().is_err() {
            eprintln!("no apt-get on this machine: skipped");
            return;
        }
        let Some((_root, package)) = host_index() else {
            eprintln!("apt has no usable package lists: skipped");
            return;
        };
        let pool = tempfile::tempdir().unwrap();
        // apt resolves versions from its lists, so this fails without the network.
        let p = &package.package;
        let err = AptGet
            .download(
                &[Wanted {
                    name: &p.name,
                    version: "0.0-no-such-version",
                    arch: &p.arch,
                }],
                pool.path(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{}=0.0-no-such-version", p.name)) && err.contains("E: "),
            "apt-get's stderr missing: {err}"
        );
        assert!(err.contains("apt-get update"), "{err}");
        let path = match fetch(&[&package], pool.path(), &AptGet) {
            Ok(paths) => paths[0].clone(),
            Err(AptError::Download { detail, .. }) if detail.contains("Failed to fetch") => {
                eprintln!("cannot reach the mirror, skipped: {detail}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert_eq!(path, pool.path().join(package.archive_name()));
        let (size, sha256) = digest(&path).unwrap();
        assert_eq!((size, sha256), (package.size, package.sha256.clone()));
        assert_eq!(entries(pool.path()), [package.archive_name()]);
        assert_eq!(
            fetch(&[&package], pool.path(), &MustNotDownload).unwrap(),
            [path]
        );
        let fresh = tempfile::tempdir().unwrap();
        // The mirror answers. With another package in the same run, the error names the
        // one that fails.
        let (good, bad) = (
            Wanted {
                name: &p.name,
                version: &p.version,
                arch: &p.arch,
            },
            Wanted {
                name: &p.name,
                version: "0.0-no-such-version",
                arch: &p.arch,
            },
        );
        let failed = download_all(&[good, bad], fresh.path(), &AptGet).unwrap_err();
        let [(at, err)] = <[_; 1]>::try_from(failed).unwrap();
        let err = err.to_string();
        assert_eq!(at, 1, "{err}");
        assert!(
            err.starts_with(&format!(
                "cannot download {}=0.0-no-such-version ({}): E: ",
                p.name, p.arch
            )),
            "{err}"
        );
    }
}
