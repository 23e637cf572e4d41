//! `.rpm` package archives: a lead, a signature header, the main header and a cpio
//! payload (gzip, xz, zstd or none). Archives come from pools anyone may drop files
//! into: the header is checked before the `rpm` crate reads it, and every payload
//! member is checked against the header (name, kind, size, digest) before its bytes
//! are handed over.

use crate::source::compression::Compression;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::RpmPackage;
use super::checksum::{Hashing, algorithm_name, digest};
use super::error::RpmError;
use super::header::{HEADER_MAGIC, HeaderFile, RpmHeader, blob_len};
use crate::archive::{self, Problem, Tree};
use crate::lock::FileKind;
use crate::source::Origin;
use crate::source::dpkg::deb::KeptBytes;
use rpm::IndexTag;

/// The magic that starts a `.rpm` (its lead).
const LEAD_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];

/// Size of the lead.
const LEAD_SIZE: u64 = 96;

/// Read size for payloads.
const BUFFER: usize = 64 * 1024;

/// One `.rpm` archive, its header read and its file list checked.
#[derive(Debug, Clone)]
pub struct RpmArchive {
    /// The archive file.
    pub path: PathBuf,
    /// Its main header.
    pub header: RpmHeader,
    /// Its metadata, with origin [`Origin::Pool`] and this archive.
    pub package: RpmPackage,
    /// The header's file list ([`RpmHeader::files`]).
    pub files: Vec<HeaderFile>,
    /// Where the payload starts.
    payload: u64,
    compression: Compression,
}

impl RpmArchive {
    /// Reads the lead, skips the signature header and reads the main header of the
    /// archive at `path`; the payload is not read.
    pub fn open(path: &Path) -> Result<RpmArchive, RpmError> {
        let io_error = |source| RpmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let damaged = |message: String| RpmError::Header {
            file: path.to_path_buf(),
            package: None,
            message: format!("not a readable rpm: {message}"),
        };
        let mut file = BufReader::new(File::open(path).map_err(io_error)?);
        let mut lead = [0u8; LEAD_SIZE as usize];
        read_exact(&mut file, &mut lead, "lead").map_err(damaged)?;
        if lead[..4] != LEAD_MAGIC {
            return Err(damaged("bad lead magic".to_string()));
        }
        // The signature header is skipped: digests are checked file by file against
        // the main header, whose own integrity is the pool's business.
        let (signature, _) = read_header(&mut file, "signature header").map_err(damaged)?;
        let padding = (8 - signature.len() % 8) % 8;
        read_exact(&mut file, &mut vec![0; padding], "signature padding").map_err(damaged)?;
        let (blob, main_len) = read_header(&mut file, "main header").map_err(damaged)?;
        let header = RpmHeader::from_blob_in(&blob, path)?;
        let compressor = header.text(IndexTag::RPMTAG_PAYLOADCOMPRESSOR)?;
        let Some(compression) = Compression::of_payload(compressor) else {
            let other = compressor.unwrap_or_default();
            return Err(header.error(format!("unsupported payload compressor `{other}`")));
        };
        match header.text(IndexTag::RPMTAG_PAYLOADFORMAT)? {
            None | Some("cpio") => {}
            Some(other) => return Err(header.error(format!("unsupported payload `{other}`"))),
        }
        let package = header.package(Origin::Pool, Some(path.to_path_buf()))?;
        let files = header.files()?;
        let payload = LEAD_SIZE + 8 + signature.len() as u64 + padding as u64 + main_len;
        Ok(RpmArchive {
            path: path.to_path_buf(),
            header,
            package,
            files,
            payload,
            compression,
        })
    }

    /// Opens the archive at `path` as the one of `package`. When a repository's metadata
    /// listed the package, the file must have the listed checksum (checked first: it
    /// covers every byte) and its header the package's name, EVR and arch; otherwise
    /// the archive was swapped or damaged since the metadata was written, and is
    /// refused naming it, the repository and both values.
    pub fn open_as(path: &Path, package: &RpmPackage) -> Result<RpmArchive, RpmError> {
        let Some(listing) = &package.listing else {
            return RpmArchive::open(path);
        };
        let unlisted = |what, actual: String, expected: String| RpmError::Unlisted {
            archive: path.to_path_buf(),
            repository: listing.repository.clone(),
            what,
            actual,
            expected,
        };
        let io_error = |source| RpmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let actual = Hashing::new(BufReader::with_capacity(BUFFER, file), listing.algorithm)
            .finish()
            .map_err(io_error)?;
        if actual != listing.checksum {
            let algorithm = algorithm_name(listing.algorithm);
            let expected = format!("{algorithm}:{}", listing.checksum);
            return Err(unlisted(
                "checksum",
                format!("{algorithm}:{actual}"),
                expected,
            ));
        }
        let archive = RpmArchive::open(path)?;
        // Metadata cannot tell an epoch of 0 from none (createrepo_c writes 0 for both).
        let bare = |p: &RpmPackage| {
            format!(
                "{}-{}.{}",
                p.name,
                p.evr.strip_prefix("0:").unwrap_or(&p.evr),
                p.arch
            )
        };
        if bare(&archive.package) != bare(package) {
            return Err(unlisted("NEVRA", archive.package.nevra(), package.nevra()));
        }
        Ok(archive)
    }

    /// Reads the payload once and hands each regular file's content to `visit`, with
    /// its header entry (the first path of a hard link set), after checking it.
    ///
    /// Refused, naming the archive and the entry: cpio names [`archive::member_path`]
    /// refuses or that are not files of the header; a member twice; a member of another
    /// kind than the header says (content where it says symlink); a member below a
    /// path the header makes a symlink or file; a `%ghost` with a member; content whose
    /// size or digest is not the header's; content given twice for a hard link set, or
    /// never; a payload that ends early or does not decompress.
    pub fn for_each_file(
        &self,
        mut visit: impl FnMut(&HeaderFile, &[u8]) -> Result<(), RpmError>,
    ) -> Result<(), RpmError> {
        let nevra = self.package.nevra();
        let payload_error = |e: io::Error| RpmError::Payload {
            archive: self.path.clone(),
            package: nevra.clone(),
            message: e.to_string(),
        };
        let by_path: HashMap<&str, &HeaderFile> =
            self.files.iter().map(|f| (f.path.as_str(), f)).collect();
        let listed = Tree::listed(self.files.iter().map(|f| (f.path.as_str(), f.kind)));
        // Hard link sets by inode: how many members, the file that stands for them.
        let mut sets: HashMap<(u32, u32), (usize, &HeaderFile)> = HashMap::new();
        for f in self.files.iter().filter(|f| is_content(f)) {
            let set = sets.entry(f.inode).or_insert((0, f));
            set.0 += 1;
            if f.kind == FileKind::File {
                set.1 = f;
            }
        }
        let mut seen_members: HashMap<(u32, u32), usize> = HashMap::new();
        let mut delivered: HashSet<(u32, u32)> = HashSet::new();
        let mut seen: HashSet<String> = HashSet::new();

        let mut file = File::open(&self.path).map_err(|source| RpmError::Io {
            path: self.path.clone(),
            source,
        })?;
        file.seek(SeekFrom::Start(self.payload))
            .map_err(payload_error)?;
        let mut reader = self
            .compression
            .decoder(BufReader::with_capacity(BUFFER, file))
            .map_err(payload_error)?;
        loop {
            let mut member = cpio::NewcReader::new(reader).map_err(payload_error)?;
            let entry = member.entry();
            if entry.is_trailer() {
                reader = member.finish().map_err(payload_error)?;
                break;
            }
            let name = entry.name().to_string();
            let refuse = |message: String| RpmError::Entry {
                archive: self.path.clone(),
                package: nevra.clone(),
                entry: name.clone(),
                message,
            };
            let problem = |problem: Problem| refuse(problem.to_string());
            let path = archive::member_path(name.as_bytes()).map_err(problem)?;
            let Some(header_file) = by_path.get(path.as_str()) else {
                return Err(refuse(format!("{path} is not a file of the header")));
            };
            if !seen.insert(path.clone()) {
                return Err(problem(Problem::Twice));
            }
            // Checked against the header, which lists every path before any member.
            listed.through(&path).map_err(problem)?;
            if header_file.ghost {
                return Err(refuse(
                    "is a %ghost, which has no payload member".to_string(),
                ));
            }
            let mode = entry.mode();
            let Some(kind) = FileKind::from_mode(mode) else {
                return Err(refuse(format!("has file type {:o}", mode & 0o170000)));
            };
            let expected = match header_file.kind {
                FileKind::Hardlink => FileKind::File,
                other => other,
            };
            if kind != expected {
                return Err(refuse(format!(
                    "is a {} in the payload but a {} in the header",
                    kind.as_str(),
                    expected.as_str()
                )));
            }
            let size = u64::from(entry.file_size());
            match kind {
                FileKind::File => {
                    let set = header_file.inode;
                    let count = seen_members.entry(set).or_default();
                    *count += 1;
                    let (members, stands_for) = sets[&set];
                    // rpm gives a hard link set's content to its last member only.
                    let carries = size > 0 || (*count == members && !delivered.contains(&set));
                    if carries {
                        if !delivered.insert(set) {
                            return Err(refuse("content given twice for one hard link set".into()));
                        }
                        let bytes = read_checked(&mut member, header_file).map_err(refuse)?;
                        visit(stands_for, &bytes)?;
                    }
                }
                FileKind::Symlink => {
                    let bytes = read_checked(&mut member, header_file).map_err(refuse)?;
                    if Some(bytes.as_slice()) != header_file.target.as_deref().map(str::as_bytes) {
                        return Err(refuse("link target differs from the header's".into()));
                    }
                }
                _ if size != 0 => return Err(refuse(format!("a {} with content", kind.as_str()))),
                _ => {}
            }
            reader = member.finish().map_err(payload_error)?;
        }
        // Read to the end, so that the decompressor checks its stream.
        io::copy(&mut reader, &mut io::sink()).map_err(payload_error)?;
        for (set, (_, stands_for)) in &sets {
            if !delivered.contains(set) {
                return Err(RpmError::Entry {
                    archive: self.path.clone(),
                    package: nevra.clone(),
                    entry: stands_for.path.clone(),
                    message: "has no content in the payload".to_string(),
                });
            }
        }
        Ok(())
    }

    /// The header's files, and the content of the regular files whose path `keep`
    /// accepts (by the path of the file that stands for each hard link set), in one
    /// checked pass over the payload.
    pub fn entries_keeping(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(Vec<HeaderFile>, KeptBytes), RpmError> {
        let mut kept = HashMap::new();
        self.for_each_file(|file, bytes| {
            if keep(&file.path) {
                kept.insert(file.path.clone(), bytes.to_vec());
            }
            Ok(())
        })?;
        Ok((self.files.clone(), kept))
    }
}

/// Whether `file` has content in the payload: a regular file or hard link, not a ghost.
fn is_content(file: &HeaderFile) -> bool {
    matches!(file.kind, FileKind::File | FileKind::Hardlink) && !file.ghost
}

/// Reads one header (its 16-byte intro, then the index and store) as a bare blob,
/// with how many bytes it took in the file.
fn read_header(file: &mut impl Read, what: &str) -> Result<(Vec<u8>, u64), String> {
    let mut intro = [0u8; 16];
    read_exact(file, &mut intro, what)?;
    if intro[..8] != HEADER_MAGIC {
        return Err(format!("{what}: bad magic"));
    }
    let word =
        |at: usize| u32::from_be_bytes([intro[at], intro[at + 1], intro[at + 2], intro[at + 3]]);
    let len = blob_len(word(8), word(12)).map_err(|m| format!("{what}: {m}"))?;
    let mut blob = intro[8..].to_vec();
    blob.resize(len, 0);
    read_exact(file, &mut blob[8..], what)?;
    Ok((blob, 8 + len as u64))
}

/// `read_exact`, saying which part of the archive ended early.
fn read_exact(file: &mut impl Read, buffer: &mut [u8], what: &str) -> Result<(), String> {
    file.read_exact(buffer).map_err(|e| format!("{what}: {e}"))
}

/// Reads a member's content, which must be as long as the header says and (for
/// regular files) have its digest.
fn read_checked(member: &mut impl Read, file: &HeaderFile) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    member
        .take(file.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 != file.size {
        return Err(format!(
            "content is {} bytes, the header says {}",
            bytes.len(),
            file.size
        ));
    }
    if let Some((algorithm, expected)) = &file.digest {
        let actual = digest(*algorithm, &bytes);
        if actual != *expected {
            return Err(format!(
                "content has {algorithm:?} {actual}, the header says {expected}"
            ));
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use rpm::{CompressionType, IndexData};

    use super::super::fixture::{Member, big, blob, edited, hello, set, with_payload};
    use super::*;

    fn write(dir: &Path, name: &str, package: &rpm::Package) -> PathBuf {
        let path = dir.join(name);
        package.write_file(&path).unwrap();
        path
    }

    /// Every content `for_each_file` hands over, by path.
    fn contents(archive: &RpmArchive) -> Result<HashMap<String, Vec<u8>>, RpmError> {
        Ok(archive.entries_keeping(|_| true)?.1)
    }

    #[test]
    fn reads_payloads_of_every_compression() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [
            CompressionType::None,
            CompressionType::Gzip,
            CompressionType::Xz,
            CompressionType::Zstd,
        ] {
            let path = write(dir.path(), "hello.rpm", &hello(compression));
            let archive = RpmArchive::open(&path).unwrap();
            assert_eq!(archive.package.nevra(), "hello-2:1.0-1.x86_64");
            assert_eq!(archive.package.archive.as_deref(), Some(path.as_path()));
            assert_eq!(archive.package.origin, Origin::Pool);
            let mut handed = Vec::new();
            archive
                .for_each_file(|file, bytes| {
                    handed.push((file.path.clone(), bytes.to_vec()));
                    Ok(())
                })
                .unwrap();
            handed.sort();
            let paths: Vec<&str> = handed.iter().map(|(p, _)| p.as_str()).collect();
            // The hard link pair's content once, for `a`; no ghost.
            assert_eq!(
                paths,
                [
                    "/etc/hello.conf",
                    "/usr/bin/hello",
                    "/usr/bin/ping",
                    "/usr/lib/hello/a",
                    "/usr/share/doc/hello/README",
                    "/usr/share/licenses/hello/COPYING",
                ],
                "{compression:?}"
            );
            assert_eq!(handed[1].1, big());
            assert_eq!(handed[3].1, b"same\n");
            // The blob of an archive's header is what rpmdb would store.
            assert_eq!(archive.header.blob(), blob(&hello(compression).metadata));
        }
    }

    #[test]
    fn installs_with_the_real_rpm() {
        // Not a check of this reader but of the fixture: rpm itself takes it.
        if std::process::Command::new("rpm")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("no rpm on this machine: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "hello.rpm", &hello(CompressionType::Zstd));
        let listing = std::process::Command::new("rpm")
            .args(["-qlp", "--nosignature", "--nodigest"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let listed = String::from_utf8(listing.stdout).unwrap();
        let archive = RpmArchive::open(&path).unwrap();
        assert_eq!(listed.lines().collect::<Vec<_>>(), archive.package.files);
    }

    #[test]
    fn hostile_payloads_are_refused_by_archive_and_entry() {
        let dir = tempfile::tempdir().unwrap();
        let good = hello(CompressionType::Gzip);
        let named = |members: &mut Vec<Member>, name: &str| -> usize {
            members.iter().position(|m| m.name == name).unwrap()
        };
        type Edit = Box<dyn Fn(&mut Vec<Member>)>;
        let cases: Vec<(Edit, &str, &str)> = vec![
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    m[i].name = "./../etc/passwd".into();
                }),
                "./../etc/passwd",
                "has a `..` component",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    m[i].name = "/usr/bin/ping".into();
                }),
                "/usr/bin/ping",
                "is an absolute name",
            ),
            (
                Box::new(|m| {
                    m.push(Member {
                        name: "./usr/bin/evil".into(),
                        mode: 0o100755,
                        ino: 99,
                        nlink: 1,
                        content: b"x".to_vec(),
                    })
                }),
                "./usr/bin/evil",
                "/usr/bin/evil is not a file of the header",
            ),
            // A hard link set whose content arrives on a member the header lacks.
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/lib/hello/a");
                    m[i].name = "./usr/lib/elsewhere".into();
                }),
                "./usr/lib/elsewhere",
                "not a file of the header",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/hi");
                    m[i].mode = 0o100644;
                    m[i].content = b"hello".to_vec();
                }),
                "./usr/bin/hi",
                "is a file in the payload but a symlink in the header",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    m[i].content = b"pong\n!".to_vec();
                }),
                "./usr/bin/ping",
                "content is 6 bytes, the header says 5",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    m[i].content = b"pong\n".to_vec();
                }),
                "./usr/bin/ping",
                "content has Sha256",
            ),
            (
                Box::new(move |m| {
                    let (a, b) = (named(m, "./usr/lib/hello/a"), named(m, "./usr/lib/hello/b"));
                    m[a].content = b"same\n".to_vec();
                    m[b].content = b"same\n".to_vec();
                }),
                "./usr/lib/hello/",
                "content given twice for one hard link set",
            ),
            (
                Box::new(|m| {
                    m.push(Member {
                        name: "./var/log/hello.log".into(),
                        mode: 0o100644,
                        ino: 11,
                        nlink: 1,
                        content: Vec::new(),
                    })
                }),
                "./var/log/hello.log",
                "is a %ghost",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    m.remove(i);
                }),
                "/usr/bin/ping",
                "has no content in the payload",
            ),
            (
                Box::new(move |m| {
                    let i = named(m, "./usr/bin/ping");
                    let copy = Member {
                        content: m[i].content.clone(),
                        name: m[i].name.clone(),
                        ..m[i]
                    };
                    m.push(copy);
                }),
                "./usr/bin/ping",
                "appears twice in the archive",
            ),
        ];
        for (edit, entry, why) in cases {
            let path = write(dir.path(), "evil.rpm", &with_payload(&good, edit));
            let archive = RpmArchive::open(&path).unwrap();
            let err = contents(&archive).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, RpmError::Entry { .. }), "{text}");
            let prefix = format!("{}: hello-2:1.0-1.x86_64: entry {entry}", path.display());
            assert!(text.starts_with(&prefix), "expected `{prefix}` in: {text}");
            assert!(text.contains(why), "expected `{why}` in: {text}");
        }
    }

    #[test]
    fn a_file_below_a_symlink_of_the_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = rpm::PackageBuilder::new("evil", "1", "MIT", "noarch", "x");
        b.with_symlink(rpm::FileOptions::symlink("/usr/lib/link", "/etc"))
            .unwrap()
            .with_file_contents(
                "root::0:0::/:/bin/sh\n",
                rpm::FileOptions::new("/usr/lib/link/passwd"),
            )
            .unwrap();
        let path = write(dir.path(), "evil.rpm", &b.build().unwrap());
        let err = contents(&RpmArchive::open(&path).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "entry ./usr/lib/link/passwd: would be written through /usr/lib/link, a symlink"
            ),
            "{err}"
        );
    }

    #[test]
    fn truncated_payloads_and_lying_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = {
            let path = write(dir.path(), "hello.rpm", &hello(CompressionType::Gzip));
            fs::read(path).unwrap()
        };
        let archive = RpmArchive::open(&dir.path().join("hello.rpm")).unwrap();
        let payload = archive.payload as usize;
        for cut in (0..bytes.len() - 1)
            .step_by(bytes.len() / 61 + 1)
            .chain([payload + 10])
        {
            let path = dir.path().join("cut.rpm");
            fs::write(&path, &bytes[..cut]).unwrap();
            let err = RpmArchive::open(&path).and_then(|a| contents(&a).map(drop));
            let err = err.expect_err(&format!("cut at {cut}")).to_string();
            assert!(err.contains("cut.rpm"), "{err}");
            if cut > payload {
                // Cut inside a member, the error names that entry.
                assert!(err.contains("cut.rpm: hello-2:1.0-1.x86_64: "), "{err}");
            }
        }
        // A header whose counts do not match: refused on open, naming archive and tag.
        let good = hello(CompressionType::Gzip);
        let lying = rpm::Package {
            metadata: edited(&good.metadata, |entries| {
                set(
                    entries,
                    IndexTag::RPMTAG_FILEMODES,
                    IndexData::Int16(vec![0o100644]),
                )
            }),
            payload: good.payload.clone(),
        };
        let path = write(dir.path(), "counts.rpm", &lying);
        let err = RpmArchive::open(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: package hello-2:1.0-1.x86_64: RPMTAG_FILEMODES has 1 values",
                path.display()
            )),
            "{err}"
        );
        let path = dir.path().join("junk.rpm");
        fs::write(&path, b"not an rpm at all, but long enough for a lead? no.").unwrap();
        let err = RpmArchive::open(&path).unwrap_err().to_string();
        assert!(err.contains("junk.rpm: not a readable rpm"), "{err}");
    }
}
