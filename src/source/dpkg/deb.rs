//! Debian package archives (`.deb`): their control metadata and their file tree.
//!
//! A `.deb` is an `ar` archive holding `debian-binary` (`2.0\n`), `control.tar[.gz|.xz|
//! .zst]` and `data.tar[.gz|.xz|.zst]`. Archives come from pools anyone may drop files
//! into, so every header, name, size and link is checked: a damaged or hostile archive
//! gives a [`DebError`] naming it, never a path outside the tree nor a panic.

use crate::source::compression::Compression;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{DpkgError, parse_control, parse_md5sums};
use super::{Origin, Package};
use crate::archive::{self, CopyError, Fault, Repeat, Stop, TarEntry, Tree};
use crate::excerpt::excerpt;
use crate::lock::{Documentation, FileEntry, FileKind};

/// The global header of an `ar` archive.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// Size of an `ar` member header.
const AR_HEADER: usize = 60;

/// The largest `debian-binary` member read; dpkg's is four bytes.
const VERSION_LIMIT: u64 = 1024;

/// The largest control-member file read into memory: a compression bomb in the control
/// member is refused instead of filling memory (real md5sums files are a few MB).
const CONTROL_FILE_LIMIT: u64 = 64 << 20;

/// Read size for archives and file contents.
const BUFFER: usize = 64 * 1024;

/// Why a package archive cannot be read, or one of its files not extracted.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The archive (or a pool directory) cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The archive or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The `ar` container is damaged or does not have a package's members.
    #[error("{}: damaged package archive: {message}", path.display())]
    Damaged {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A member does not decompress, or is not a valid tar archive.
    #[error("{}: cannot read member {member}: {source}", path.display())]
    Member {
        /// The archive.
        path: PathBuf,
        /// The member (`control.tar.xz`, `data.tar.zst`).
        member: String,
        /// What the decompressor or tar reader reported.
        source: io::Error,
    },
    /// The control file or md5sums do not follow dpkg's format; the path in the error
    /// is `<archive>:control` or `<archive>:md5sums`.
    #[error(transparent)]
    Control(#[from] DpkgError),
    /// An entry of a member is refused (hostile name or link, unsupported type,
    /// truncated content, malformed field).
    #[error("{}: entry {}: {message}", path.display(), excerpt(.entry))]
    Entry {
        /// The archive.
        path: PathBuf,
        /// The entry's name as the archive spells it.
        entry: String,
        /// What is wrong.
        message: String,
    },
    /// Writing an extracted file's bytes failed.
    #[error("cannot write {} extracted from {}: {source}", excerpt(.entry), path.display())]
    Write {
        /// The archive.
        path: PathBuf,
        /// The file being extracted.
        entry: String,
        /// The writer's error.
        source: io::Error,
    },
}

/// Where one `ar` member's bytes are in the archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    offset: u64,
    size: u64,
}

/// A tar member with its compression.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tarball {
    member: Member,
    compression: Compression,
}

/// Bytes of an archive's regular files by archive path (`/bin/x`, as in the archive).
pub type KeptBytes = HashMap<String, Vec<u8>>;

/// One `.deb` package archive, with its control information read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebArchive {
    /// The archive file.
    pub path: PathBuf,
    /// Its metadata, with origin [`Origin::Pool`].
    pub package: Package,
    /// The text of the control file.
    pub control: String,
    /// Absolute paths of the conffiles the package ships (`remove-on-upgrade` entries,
    /// which name files no longer shipped, are left out).
    pub conffiles: Vec<String>,
    /// The md5sums control file, keyed by absolute path; empty when absent.
    pub md5sums: BTreeMap<String, String>,
    /// The control files dpkg keeps in `info/` ([`super::INFO_FILES`]), by name, when
    /// the package has them.
    info_files: BTreeMap<String, Vec<u8>>,
    /// Where `data.tar` is, so the file tree is read without looking at `ar` again.
    data: Tarball,
}

impl DebArchive {
    /// Reads the control information of the archive at `path`. Only the `ar` headers and
    /// the control member are read: the data member is skipped with a seek.
    pub fn open(path: &Path) -> Result<DebArchive, DebError> {
        let io_error = |source| DebError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let members = read_members(&mut file, path)?;
        let damaged = |message: String| DebError::Damaged {
            path: path.to_path_buf(),
            message,
        };

        // dpkg requires this order, which is also what makes a `.deb` recognisable.
        let version = match members.first() {
            Some(m) if m.name == "debian-binary" => m,
            Some(m) => {
                return Err(damaged(format!(
                    "first member is {}, not debian-binary",
                    excerpt(&m.name)
                )));
            }
            None => return Err(damaged("no members".to_string())),
        };
        if version.size > VERSION_LIMIT {
            return Err(damaged(format!(
                "debian-binary is {} bytes long",
                version.size
            )));
        }
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(version.offset))
            .and_then(|_| (&mut file).take(version.size).read_to_end(&mut text))
            .map_err(io_error)?;
        if !text.starts_with(b"2.") {
            return Err(damaged(format!(
                "unsupported format version `{}` in debian-binary",
                excerpt(String::from_utf8_lossy(&text).trim_end())
            )));
        }

        let control = tarball(path, &members, "control.tar")?;
        let data = tarball(path, &members, "data.tar")?;
        let control_files = read_control_member(path, file, &control)?;

        // The control files parsed here must be text; the scripts are the shell's.
        let text_of = |name: &str| -> Result<Option<&str>, DebError> {
            let Some(bytes) = control_files.get(name) else {
                return Ok(None);
            };
            std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| DebError::Entry {
                    path: path.to_path_buf(),
                    entry: format!(".{name}"),
                    message: "not UTF-8 text".to_string(),
                })
        };
        let Some(control_text) = text_of("/control")? else {
            return Err(damaged(format!(
                "{} has no control file",
                control.member.name
            )));
        };
        let package = parse_control(control_text, &control_path(path, "control"), Origin::Pool)?;
        let md5sums = parse_md5sums(
            text_of("/md5sums")?.unwrap_or_default(),
            &control_path(path, "md5sums"),
            &package.name,
        )?;
        let conffiles = parse_conffiles(path, text_of("/conffiles")?.unwrap_or_default())?;
        let info_files = super::INFO_FILES
            .into_iter()
            .filter_map(|name| {
                let bytes = control_files.get(&format!("/{name}"))?;
                Some((name.to_string(), bytes.clone()))
            })
            .collect();
        Ok(DebArchive {
            path: path.to_path_buf(),
            package,
            control: control_text.to_string(),
            conffiles,
            md5sums,
            info_files,
            data,
        })
    }

    /// The bytes of control file `name` of [`super::INFO_FILES`] (`postinst`,
    /// `templates`), if the package has it: compile's configure stage puts it in the
    /// staged tree's `info/`.
    pub fn info_file(&self, name: &str) -> Option<&[u8]> {
        self.info_files.get(name).map(Vec::as_slice)
    }

    /// Reads the data member into lock entries, in archive order: paths made absolute
    /// (`./usr/bin/x` -> `/usr/bin/x`, `./` -> `/`), owners and modes from the tar
    /// headers, BLAKE3 digests of regular files computed, `package` set to this
    /// package's name and `conffile` from the control member.
    ///
    /// Refused, by the rules every archive's members follow ([`crate::archive`]): names
    /// with `..`, absolute or with NUL; a path appearing twice; a root that is not a
    /// directory; an entry below an earlier symlink or other non-directory of the
    /// archive; a hard link to anything but an earlier regular file; content shorter
    /// than its header says; entry types a lock cannot describe; a `data.tar` without
    /// its end-of-archive blocks.
    pub fn entries(&self) -> Result<Vec<FileEntry>, DebError> {
        Ok(self.entries_keeping(|_| false)?.0)
    }

    /// [`entries`](DebArchive::entries) with the bytes of the regular files whose
    /// archive path `keep` accepts, by that path: one pass over `data.tar`, holding only
    /// what the caller needs (a package's files can be hundreds of megabytes).
    pub fn entries_keeping(
        &self,
        keep: impl Fn(&str) -> bool,
    ) -> Result<(Vec<FileEntry>, KeptBytes), DebError> {
        let mut contents = HashMap::new();
        let conffiles: HashSet<&str> = self.conffiles.iter().map(String::as_str).collect();
        let mut tree = Tree::new(Repeat::Refused);
        let mut out = Vec::new();
        let file = self.open_file()?;
        walk(&self.path, file, &self.data, |path, entry| {
            let mut member = archive::Member::from_tar(path, entry)?;
            tree.add(&member)?;
            let e = &mut member.entry;
            if e.kind == FileKind::File {
                e.digest = Some(if keep(path) {
                    let mut bytes = Vec::new();
                    let digest = archive::copy_checked(entry, e.size, &mut bytes)?;
                    contents.insert(path.to_string(), bytes);
                    digest
                } else {
                    archive::copy_checked(entry, e.size, &mut io::sink())?
                });
            }
            e.package = Some(self.package.name.clone());
            e.conffile = conffiles.contains(path);
            e.documentation = Documentation::of_debian_path(path, e.kind);
            out.push(member.entry);
            Ok(())
        })?;
        Ok((out, contents))
    }

    /// Hands every regular file of the data member, in archive order, to `visit`: one
    /// pass, however many files are wanted. A file `visit` copies is checked to be as
    /// long as its header says; a damaged stream is an error.
    pub fn for_each_file(
        &self,
        mut visit: impl FnMut(DataFile<'_, '_, '_>) -> Result<(), DebError>,
    ) -> Result<(), DebError> {
        let file = self.open_file()?;
        walk(&self.path, file, &self.data, |path, entry| {
            if matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                visit(DataFile {
                    archive: &self.path,
                    member: &self.data.member.name,
                    path,
                    entry,
                })
                .map_err(Stop::Caller)?;
            }
            Ok(())
        })
    }

    fn open_file(&self) -> Result<File, DebError> {
        File::open(&self.path).map_err(|source| DebError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// A regular file of an archive's data member, met by [`DebArchive::for_each_file`].
pub struct DataFile<'e, 'a, 'r> {
    archive: &'e Path,
    member: &'e str,
    path: &'e str,
    entry: &'e mut TarEntry<'a, 'r>,
}

impl DataFile<'_, '_, '_> {
    /// Its path in the archive, absolute (as in [`DebArchive::entries`]).
    pub fn path(&self) -> &str {
        self.path
    }

    /// Its size, as its header says.
    pub fn size(&self) -> u64 {
        self.entry.size()
    }

    /// Copies its content to `to`, checking it is as long as the header says; returns
    /// the content's BLAKE3 (hex).
    pub fn copy_to(self, to: &mut dyn Write) -> Result<String, DebError> {
        let expected = self.entry.size();
        archive::copy_checked(self.entry, expected, to).map_err(|e| match e {
            CopyError::Read(source) => DebError::Member {
                path: self.archive.to_path_buf(),
                member: self.member.to_string(),
                source,
            },
            CopyError::Write(source) => DebError::Write {
                path: self.archive.to_path_buf(),
                entry: self.path.to_string(),
                source,
            },
            CopyError::Refused(problem) => {
                entry_error(self.archive, self.entry, problem.to_string())
            }
        })
    }
}

/// Maps a path of Debian's pre-merged layout to where merged /usr (Debian 12) puts it:
/// `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64` and `/libx32` move under `/usr`; every
/// other path is returned as is.
pub fn canonical_usrmerge(path: &str) -> String {
    const MERGED: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
    let merged = MERGED.iter().any(|dir| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if merged {
        format!("/usr{path}")
    } else {
        path.to_string()
    }
}

/// The path error messages give a file of the control member.
fn control_path(archive: &Path, file: &str) -> PathBuf {
    PathBuf::from(format!("{}:{file}", archive.display()))
}

/// Reads the `ar` member headers, seeking past each member's bytes.
fn read_members(file: &mut File, path: &Path) -> Result<Vec<Member>, DebError> {
    let io_error = |source| DebError::Io {
        path: path.to_path_buf(),
        source,
    };
    let damaged = |message: String| DebError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let len = file.metadata().map_err(io_error)?.len();
    let mut magic = [0u8; AR_MAGIC.len()];
    if len < magic.len() as u64 {
        return Err(damaged(format!("only {len} bytes long")));
    }
    file.read_exact(&mut magic).map_err(io_error)?;
    if &magic != AR_MAGIC {
        return Err(damaged("not an ar archive (bad magic)".to_string()));
    }
    let mut members = Vec::new();
    let mut offset = magic.len() as u64;
    // The last member's padding byte is optional: some writers leave it out.
    while offset < len {
        if len - offset < AR_HEADER as u64 {
            return Err(damaged(format!("truncated member header at byte {offset}")));
        }
        let mut header = [0u8; AR_HEADER];
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut header))
            .map_err(io_error)?;
        if &header[58..60] != b"`\n" {
            return Err(damaged(format!("bad member header at byte {offset}")));
        }
        let text = |range: std::ops::Range<usize>| {
            std::str::from_utf8(&header[range])
                .ok()
                .map(|s| s.trim_end_matches(' '))
        };
        // GNU ar ends names with `/`; dpkg-deb does not.
        let Some(name) = text(0..16).map(|n| n.strip_suffix('/').unwrap_or(n)) else {
            return Err(damaged(format!("member name at byte {offset} is not text")));
        };
        let Some(size) = text(48..58).and_then(|s| s.parse::<u64>().ok()) else {
            return Err(damaged(format!("member {}: malformed size", excerpt(name))));
        };
        let start = offset + AR_HEADER as u64;
        if size > len - start {
            return Err(damaged(format!(
                "member {} is truncated: {size} bytes declared, {} present",
                excerpt(name),
                len - start
            )));
        }
        members.push(Member {
            name: name.to_string(),
            offset: start,
            size,
        });
        offset = start + size + size % 2;
    }
    Ok(members)
}

/// The member whose name is `stem` with a supported compression suffix.
fn tarball(path: &Path, members: &[Member], stem: &str) -> Result<Tarball, DebError> {
    let damaged = |message: String| DebError::Damaged {
        path: path.to_path_buf(),
        message,
    };
    let Some(member) = members.iter().find(|m| m.name.starts_with(stem)) else {
        return Err(damaged(format!("no {stem} member")));
    };
    let Some(compression) = Compression::of(&member.name, stem) else {
        return Err(damaged(format!(
            "member {} has an unsupported compression",
            excerpt(&member.name)
        )));
    };
    Ok(Tarball {
        member: member.clone(),
        compression,
    })
}

/// Visits every entry of `tarball` with its absolute path ([`archive::walk_tar`]),
/// then reads the member to its end, so that the decompressor verifies its checksum and
/// a damaged stream is noticed.
fn walk(
    path: &Path,
    mut file: File,
    tarball: &Tarball,
    visit: impl FnMut(&str, &mut TarEntry<'_, '_>) -> Result<(), Stop<DebError>>,
) -> Result<(), DebError> {
    let member = &tarball.member;
    let member_error = |source| DebError::Member {
        path: path.to_path_buf(),
        member: member.name.clone(),
        source,
    };
    file.seek(SeekFrom::Start(member.offset))
        .map_err(|source| DebError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let raw = BufReader::with_capacity(BUFFER, file).take(member.size);
    let decoded = tarball.compression.decoder(raw).map_err(member_error)?;
    archive::walk_tar(decoded, visit, |fault| match fault {
        Fault::Refused { raw, problem } => DebError::Entry {
            path: path.to_path_buf(),
            entry: raw.to_string(),
            message: problem.to_string(),
        },
        Fault::Stream { source, .. } => member_error(source),
    })
}

fn entry_error<R: Read>(path: &Path, entry: &tar::Entry<'_, R>, message: String) -> DebError {
    DebError::Entry {
        path: path.to_path_buf(),
        entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
        message,
    }
}

/// Reads the files of the control member that [`DebArchive`] keeps, keyed by absolute
/// path (`/control`, `/conffiles`, `/md5sums` and the [`super::INFO_FILES`]:
/// `/postinst`, `/templates`...), as bytes: only the files parsed here must be text.
fn read_control_member(
    path: &Path,
    file: File,
    control: &Tarball,
) -> Result<HashMap<String, Vec<u8>>, DebError> {
    let mut files = HashMap::new();
    walk(path, file, control, |name, entry| {
        let kept = matches!(name, "/control" | "/conffiles" | "/md5sums")
            || super::INFO_FILES
                .iter()
                .any(|f| name.strip_prefix('/') == Some(*f));
        if !kept {
            return Ok(());
        }
        let size = entry.size();
        if size > CONTROL_FILE_LIMIT {
            let message = format!("{size} bytes is too large for a control file");
            return Err(Stop::Caller(entry_error(path, entry, message)));
        }
        let mut bytes = Vec::new();
        archive::copy_checked(entry, size, &mut bytes)?;
        files.insert(name.to_string(), bytes);
        Ok(())
    })?;
    Ok(files)
}

/// Parses the `conffiles` control file: one absolute path per line, optionally after
/// flags; `remove-on-upgrade` conffiles are not shipped and are left out.
fn parse_conffiles(path: &Path, text: &str) -> Result<Vec<String>, DebError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        match line.split_once(' ') {
            _ if line.starts_with('/') => out.push(line.to_string()),
            Some(("remove-on-upgrade", file)) if file.starts_with('/') => {}
            _ => {
                return Err(DpkgError::Syntax {
                    path: control_path(path, "conffiles"),
                    line: i + 1,
                    package: None,
                    message: format!("malformed line `{}`", excerpt(line)),
                }
                .into());
            }
        }
    }
    Ok(out)
}

/// Builders of `.deb` archives for tests: the container, tars and compression are
/// written in code so every test makes exactly the archive it needs.
#[cfg(test)]
pub(crate) mod testing {
    use super::Compression;

    /// One entry of a test tar, named as the archive spells it (`./usr/bin/x`).
    pub(super) struct Item {
        name: Vec<u8>,
        kind: tar::EntryType,
        mode: u32,
        owner: (u64, &'static str),
        link: Vec<u8>,
        data: Vec<u8>,
        device: (u32, u32),
    }

    impl Item {
        fn new(name: &str, kind: tar::EntryType, mode: u32) -> Item {
            Item {
                name: name.as_bytes().to_vec(),
                kind,
                mode,
                owner: (0, "root"),
                link: Vec::new(),
                data: Vec::new(),
                device: (0, 0),
            }
        }

        pub(super) fn dir(name: &str) -> Item {
            Item::new(name, tar::EntryType::Directory, 0o755)
        }

        pub(super) fn file(name: &str, mode: u32, data: &[u8]) -> Item {
            Item {
                data: data.to_vec(),
                ..Item::new(name, tar::EntryType::Regular, mode)
            }
        }

        pub(super) fn symlink(name: &str, target: &str) -> Item {
            Item {
                link: target.as_bytes().to_vec(),
                ..Item::new(name, tar::EntryType::Symlink, 0o777)
            }
        }

        pub(super) fn hardlink(name: &str, target: &str) -> Item {
            Item {
                link: target.as_bytes().to_vec(),
                ..Item::new(name, tar::EntryType::Link, 0o644)
            }
        }

        pub(super) fn device(name: &str, major: u32, minor: u32) -> Item {
            Item {
                device: (major, minor),
                ..Item::new(name, tar::EntryType::Char, 0o666)
            }
        }

        pub(super) fn fifo(name: &str) -> Item {
            Item::new(name, tar::EntryType::Fifo, 0o600)
        }

        /// A pax extended header giving the next entry the raw path `path`.
        pub(super) fn pax_path(path: &[u8]) -> Item {
            let body_len = " path=\n".len() + path.len();
            let mut len = body_len + 1;
            len += (len + 1).to_string().len() - 1;
            let mut data = format!("{len} path=").into_bytes();
            data.extend_from_slice(path);
            data.push(b'\n');
            assert_eq!(data.len(), len);
            Item {
                data,
                ..Item::new("./PaxHeaders/x", tar::EntryType::XHeader, 0o644)
            }
        }

        /// The same entry owned by `uid` and `gid` = `uid`, with `name` as both names.
        pub(super) fn owned(self, uid: u64, name: &'static str) -> Item {
            Item {
                owner: (uid, name),
                ..self
            }
        }
    }

    /// A GNU tar of `items`, names and link names written byte for byte.
    pub(super) fn tar(items: &[Item]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..item.name.len()].copy_from_slice(&item.name);
            header.as_old_mut().linkname[..item.link.len()].copy_from_slice(&item.link);
            header.set_entry_type(item.kind);
            header.set_mode(item.mode);
            header.set_uid(item.owner.0);
            header.set_gid(item.owner.0);
            header.set_username(item.owner.1).unwrap();
            header.set_groupname(item.owner.1).unwrap();
            header.set_mtime(0);
            header.set_size(item.data.len() as u64);
            header.set_device_major(item.device.0).unwrap();
            header.set_device_minor(item.device.1).unwrap();
            header.set_cksum();
            builder.append(&header, item.data.as_slice()).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// An `ar` archive of `members`, as dpkg-deb writes it.
    pub(super) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        for (name, data) in members {
            let header = format!(
                "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                0,
                0,
                0,
                100644,
                data.len()
            );
            assert_eq!(header.len(), 60);
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    /// A `.deb` whose control member holds `control_files` (`(name, bytes)`) and whose
    /// data member holds `data`, both compressed with `compression`.
    pub(super) fn deb(
        control_files: &[(&str, impl AsRef<[u8]>)],
        data: &[Item],
        compression: Compression,
    ) -> Vec<u8> {
        let control: Vec<Item> = control_files
            .iter()
            .map(|(name, bytes)| Item::file(&format!("./{name}"), 0o644, bytes.as_ref()))
            .collect();
        let control = compression.compress(&tar(&control));
        let data = compression.compress(&tar(data));
        let suffix = compression.suffix();
        ar(&[
            ("debian-binary", b"2.0\n"),
            (&format!("control.tar{suffix}"), &control),
            (&format!("data.tar{suffix}"), &data),
        ])
    }

    /// A plain `.deb` of package `name` at `version` (amd64) holding `/usr/share/<name>`.
    pub(crate) fn simple_deb(name: &str, version: &str) -> Vec<u8> {
        let control =
            format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nDescription: t\n");
        deb(
            &[("control", &control)],
            &[
                Item::dir("./"),
                Item::dir("./usr/"),
                Item::dir("./usr/share/"),
                Item::file(&format!("./usr/share/{name}"), 0o644, version.as_bytes()),
            ],
            Compression::Gzip,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::Command;

    use super::testing::{Item, ar, deb, tar};
    use super::*;
    use crate::source::dpkg::MultiArch;

    const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ];

    const CONTROL: &str = "Package: hello\n\
        Version: 1:2.0-1\n\
        Architecture: amd64\n\
        Multi-Arch: foreign\n\
        Depends: libc6 (>= 2.36), foo | bar (<< 3)\n\
        Pre-Depends: dpkg\n\
        Provides: hi (= 2.0)\n\
        Conflicts: hello-old\n\
        Description: greets\n two lines\n";

    const CONFFILES: &str = "/etc/hello.conf\nremove-on-upgrade /etc/hello.old\n";

    const MD5SUMS: &str = "0123456789abcdef0123456789abcdef  usr/bin/hello\n";

    fn big() -> Vec<u8> {
        (0..300_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn items() -> Vec<Item> {
        vec![
            Item::dir("./"),
            Item::dir("./etc/"),
            Item::file("./etc/hello.conf", 0o644, b"greeting=hi\n"),
            Item::dir("./usr/"),
            Item::dir("./usr/bin/"),
            Item::file("./usr/bin/hello", 0o4755, &big()),
            Item::symlink("./usr/bin/hi", "hello"),
            Item::hardlink("./usr/bin/hello2", "./usr/bin/hello"),
            Item::dir("./dev/"),
            Item::device("./dev/null", 1, 3),
            Item::fifo("./dev/pipe"),
            Item::file("./srv", 0o640, b"").owned(1000, ""),
        ]
    }

    fn hello(compression: Compression) -> Vec<u8> {
        deb(
            &[
                ("control", CONTROL),
                ("conffiles", CONFFILES),
                ("md5sums", MD5SUMS),
            ],
            &items(),
            compression,
        )
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    fn digest(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    #[test]
    fn reads_control_and_entries_in_every_compression() {
        let dir = tempfile::tempdir().unwrap();
        for compression in ALL {
            let path = write(dir.path(), "hello.deb", &hello(compression));
            let deb = DebArchive::open(&path).unwrap();
            let p = &deb.package;
            assert_eq!((p.name.as_str(), p.version.as_str()), ("hello", "1:2.0-1"));
            assert_eq!(p.arch, "amd64");
            assert_eq!(p.origin, Origin::Pool);
            assert_eq!(p.multi_arch, MultiArch::Foreign);
            assert_eq!(p.depends.len(), 2);
            assert_eq!(p.depends[1][1].name, "bar");
            assert_eq!(p.pre_depends[0][0].name, "dpkg");
            assert_eq!(p.provides[0].name, "hi");
            assert_eq!(p.conflicts[0].name, "hello-old");
            assert_eq!(deb.control, CONTROL);
            assert_eq!(deb.conffiles, ["/etc/hello.conf"], "{compression:?}");
            assert_eq!(
                deb.md5sums.get("/usr/bin/hello").map(String::as_str),
                Some("0123456789abcdef0123456789abcdef")
            );

            let entries = deb.entries().unwrap();
            let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "/",
                    "/etc",
                    "/etc/hello.conf",
                    "/usr",
                    "/usr/bin",
                    "/usr/bin/hello",
                    "/usr/bin/hi",
                    "/usr/bin/hello2",
                    "/dev",
                    "/dev/null",
                    "/dev/pipe",
                    "/srv"
                ]
            );
            let entry = |path: &str| entries.iter().find(|e| e.path == path).unwrap();
            assert!(
                entries
                    .iter()
                    .all(|e| e.package.as_deref() == Some("hello"))
            );
            assert_eq!(entry("/").kind, FileKind::Dir);
            let conf = entry("/etc/hello.conf");
            assert!(conf.conffile);
            assert_eq!(conf.digest, Some(digest(b"greeting=hi\n")));
            let bin = entry("/usr/bin/hello");
            assert_eq!(
                (bin.kind, bin.mode, bin.size),
                (FileKind::File, 0o4755, 300_000)
            );
            assert_eq!(bin.digest, Some(digest(&big())), "{compression:?}");
            assert_eq!((bin.user.as_str(), bin.group.as_str()), ("root", "root"));
            assert!(!bin.conffile);
            let hi = entry("/usr/bin/hi");
            assert_eq!(
                (hi.kind, hi.target.as_deref()),
                (FileKind::Symlink, Some("hello"))
            );
            let link = entry("/usr/bin/hello2");
            assert_eq!(link.kind, FileKind::Hardlink);
            assert_eq!(link.target.as_deref(), Some("/usr/bin/hello"));
            assert_eq!((link.size, link.digest.as_deref()), (0, None));
            let null = entry("/dev/null");
            assert_eq!((null.kind, null.device), (FileKind::Char, Some((1, 3))));
            assert_eq!(entry("/dev/pipe").kind, FileKind::Fifo);
            let srv = entry("/srv");
            assert_eq!((srv.uid, srv.gid, srv.mode), (1000, 1000, 0o640));
            assert_eq!((srv.user.as_str(), srv.group.as_str()), ("", ""));
            assert_eq!(srv.digest, Some(digest(b"")));
        }
    }

    #[test]
    fn for_each_file_streams_every_regular_file_once() {
        let dir = tempfile::tempdir().unwrap();
        for compression in ALL {
            let path = write(dir.path(), "hello.deb", &hello(compression));
            let deb = DebArchive::open(&path).unwrap();
            let mut seen = Vec::new();
            deb.for_each_file(|file| {
                let path = file.path().to_string();
                let mut bytes = Vec::new();
                let hex = file.copy_to(&mut bytes)?;
                assert_eq!(hex, digest(&bytes));
                seen.push((path, hex));
                Ok(())
            })
            .unwrap();
            let files: Vec<(String, String)> = deb
                .entries()
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == FileKind::File)
                .map(|e| (e.path, e.digest.unwrap()))
                .collect();
            assert_eq!(seen, files, "{compression:?}");
            assert!(
                seen.iter()
                    .any(|(p, d)| p == "/usr/bin/hello" && *d == digest(&big()))
            );

            struct Full;
            impl Write for Full {
                fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                    Err(io::Error::other("disk full"))
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let err = deb
                .for_each_file(|file| file.copy_to(&mut Full).map(drop))
                .unwrap_err();
            assert!(matches!(err, DebError::Write { .. }), "{err}");
            assert!(err.to_string().contains("disk full"), "{err}");
        }
    }

    #[test]
    fn truncated_and_corrupt_archives_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for compression in ALL {
            let bytes = hello(compression);
            // The last byte may be the optional padding of the data member.
            let cuts = (0..bytes.len() - 1).step_by(bytes.len() / 97 + 1).chain([
                7,
                8,
                60,
                68,
                bytes.len() - 2,
            ]);
            for cut in cuts {
                let path = write(dir.path(), "cut.deb", &bytes[..cut]);
                let result = DebArchive::open(&path).and_then(|d| d.entries());
                let err = result.expect_err(&format!("{compression:?} cut at {cut}"));
                assert!(err.to_string().contains("cut.deb"), "{err}");
            }
        }
        // Corrupt the middle of a compressed data member: its checksum catches it.
        for compression in [Compression::Gzip, Compression::Xz] {
            let mut bytes = hello(compression);
            let data = bytes.windows(8).rposition(|w| w == b"data.tar").unwrap() + 60;
            let middle = data + (bytes.len() - data) / 2;
            bytes[middle] ^= 0x55;
            let path = write(dir.path(), "corrupt.deb", &bytes);
            let err = DebArchive::open(&path)
                .and_then(|d| d.entries())
                .unwrap_err();
            assert!(
                err.to_string()
                    .contains("corrupt.deb: cannot read member data.tar")
                    || err.to_string().contains("corrupt.deb: entry"),
                "{compression:?}: {err}"
            );
        }
    }

    #[test]
    fn damaged_containers_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let control = tar(&[Item::file("./control", 0o644, CONTROL.as_bytes())]);
        let data = tar(&[Item::dir("./")]);
        let mut wrong_size = ar(&[("debian-binary", b"2.0\n")]);
        wrong_size[8 + 48..8 + 50].copy_from_slice(b"99");
        let mut bad_size = ar(&[("debian-binary", b"2.0\n")]);
        bad_size[8 + 48] = b'x';
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"!<arch>".to_vec(), "only 7 bytes long"),
            (b"PK\x03\x04 not an ar file".to_vec(), "bad magic"),
            (b"!<arch>\n".to_vec(), "no members"),
            (
                wrong_size,
                "member debian-binary is truncated: 99 bytes declared, 4 present",
            ),
            (bad_size, "member debian-binary: malformed size"),
            (
                ar(&[("control.tar", &control), ("data.tar", &data)]),
                "first member is control.tar, not debian-binary",
            ),
            (
                ar(&[("debian-binary", b"3.0\n"), ("control.tar", &control)]),
                "unsupported format version `3.0`",
            ),
            (
                ar(&[("debian-binary", b"2.0\n"), ("data.tar", &data)]),
                "no control.tar member",
            ),
            (
                ar(&[("debian-binary", b"2.0\n"), ("control.tar", &control)]),
                "no data.tar member",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar", &control),
                    ("data.tar.bz2", &data),
                ]),
                "member data.tar.bz2 has an unsupported compression",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar", &data),
                    ("data.tar", &data),
                ]),
                "control.tar has no control file",
            ),
            (
                ar(&[
                    ("debian-binary", b"2.0\n"),
                    ("control.tar.xz", &Compression::Gzip.compress(b"not xz")),
                    ("data.tar", &data),
                ]),
                "cannot read member control.tar.xz",
            ),
        ];
        for (bytes, expected) in cases {
            let path = write(dir.path(), "bad.deb", &bytes);
            let err = DebArchive::open(&path).unwrap_err().to_string();
            assert!(err.contains("bad.deb"), "{err}");
            assert!(err.contains(expected), "expected `{expected}` in: {err}");
        }
    }

    #[test]
    fn control_errors_name_the_archive_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                CONTROL.replace("Pre-Depends: dpkg", "Pre-Depends: dpkg (>= )"),
                "bad.deb:control:6: package hello: Pre-Depends",
            ),
            (
                format!("{CONTROL}\nPackage: second\n"),
                "bad.deb:control:12: a control file holds one paragraph",
            ),
            (
                CONTROL.replace("Version: 1:2.0-1\n", ""),
                "bad.deb:control:1: package hello: missing field Version",
            ),
        ];
        for (control, expected) in cases {
            let bytes = deb(&[("control", &control)], &[], Compression::None);
            let path = write(dir.path(), "bad.deb", &bytes);
            let err = DebArchive::open(&path).unwrap_err().to_string();
            assert!(err.contains(expected), "expected `{expected}` in: {err}");
        }
        let bytes = deb(
            &[("control", CONTROL), ("conffiles", "etc/relative\n")],
            &[],
            Compression::None,
        );
        let path = write(dir.path(), "bad.deb", &bytes);
        let err = DebArchive::open(&path).unwrap_err().to_string();
        assert!(err.contains("bad.deb:conffiles:1: malformed line"), "{err}");
        // A file parsed here must be text; a script is the shell's bytes (exim4-config's
        // `config` is Latin-1), kept as they are.
        let latin1 = b"#!/bin/sh\n# Marc Haber \xe9t\xe9\nexit 0\n";
        let bytes = deb(
            &[("control", CONTROL.as_bytes()), ("config", latin1)],
            &[],
            Compression::None,
        );
        let path = write(dir.path(), "latin1.deb", &bytes);
        let archive = DebArchive::open(&path).unwrap();
        assert_eq!(archive.info_file("config"), Some(&latin1[..]));
        let bytes = deb(
            &[("control", &b"Package: h\xe9llo\n"[..])],
            &[],
            Compression::None,
        );
        let path = write(dir.path(), "bad.deb", &bytes);
        let err = DebArchive::open(&path).unwrap_err().to_string();
        assert!(err.contains("./control: not UTF-8 text"), "{err}");
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<Item>, &str, &str)> = vec![
            (
                vec![Item::file("../etc/passwd", 0o644, b"x")],
                "../etc/passwd",
                "has a `..` component",
            ),
            (
                vec![Item::file("./usr/../../etc/shadow", 0o644, b"x")],
                "./usr/../../etc/shadow",
                "has a `..` component",
            ),
            (
                vec![Item::file("/abs", 0o644, b"x")],
                "/abs",
                "is an absolute name",
            ),
            (
                vec![Item::hardlink("./x", "./absent")],
                "./x",
                "is a hard link to `./absent`, which is not an earlier regular file",
            ),
            (
                vec![Item::dir("./d/"), Item::hardlink("./x", "./d")],
                "./x",
                "is a hard link to `./d`",
            ),
            (
                vec![
                    Item::hardlink("./x", "./later"),
                    Item::file("./later", 0o644, b"x"),
                ],
                "./x",
                "is a hard link to `./later`",
            ),
            (
                vec![Item::hardlink("./x", "../../etc/passwd")],
                "./x",
                "is a hard link to `../../etc/passwd`, which is not an earlier regular file",
            ),
            (
                vec![Item::pax_path(b"./a\0b"), Item::file("./ab", 0o644, b"x")],
                "./a",
                "NUL",
            ),
            (
                vec![
                    Item::file("./twice", 0o644, b"x"),
                    Item::file("./twice", 0o644, b"y"),
                ],
                "./twice",
                "appears twice in the archive",
            ),
            // dpkg's info/*.list holds one path a line: quoted escaped, on one line.
            (
                vec![Item::file("./usr/evil\n/bin", 0o644, b"x")],
                "./usr/evil\\n/bin",
                "contains a newline",
            ),
            (
                vec![
                    Item::pax_path(format!("./{}", "x".repeat(256)).as_bytes()),
                    Item::file("./x", 0o644, b"x"),
                ],
                "./xxxxxxxx",
                "has a component of 256 bytes",
            ),
            // Found by the hostile tests: taken into the lock, which only the
            // materialiser then refused.
            (
                vec![
                    Item::symlink("./a", "/etc"),
                    Item::file("./a/passwd", 0o644, b"x"),
                ],
                "./a/passwd",
                "would be written through /a, a symlink of the archive",
            ),
            (
                vec![
                    Item::dir("./d/"),
                    Item::symlink("./d/up", "../.."),
                    Item::dir("./d/up/etc/"),
                ],
                "./d/up/etc/",
                "would be written through /d/up, a symlink",
            ),
            (
                vec![
                    Item::file("./f", 0o644, b"x"),
                    Item::file("./f/g", 0o644, b"y"),
                ],
                "./f/g",
                "through /f, a file",
            ),
            // The shared reader's rule, once only the overlays': a `.deb` took a file as
            // the root of the tree.
            (
                vec![Item::file("./", 0o644, b"x")],
                "./",
                "is the root of the tree but not a directory",
            ),
        ];
        for (items, entry, message) in cases {
            let bytes = deb(&[("control", CONTROL)], &items, Compression::Gzip);
            let path = write(dir.path(), "evil.deb", &bytes);
            let deb = DebArchive::open(&path).unwrap();
            let err = deb.entries().unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, DebError::Entry { .. }), "{text}");
            assert!(text.contains(&format!("evil.deb: entry {entry}")), "{text}");
            assert!(text.contains(message), "expected `{message}` in: {text}");
        }
    }

    #[test]
    fn usrmerge_moves_only_the_merged_directories() {
        for (from, to) in [
            ("/bin", "/usr/bin"),
            ("/bin/bash", "/usr/bin/bash"),
            ("/sbin/ldconfig", "/usr/sbin/ldconfig"),
            (
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
            ),
            (
                "/lib64/ld-linux-x86-64.so.2",
                "/usr/lib64/ld-linux-x86-64.so.2",
            ),
            ("/lib32/x", "/usr/lib32/x"),
            ("/libx32/x", "/usr/libx32/x"),
            ("/library/x", "/library/x"),
            ("/binaries", "/binaries"),
            ("/usr/bin/bash", "/usr/bin/bash"),
            ("/etc/lib", "/etc/lib"),
            ("/", "/"),
        ] {
            assert_eq!(canonical_usrmerge(from), to, "{from}");
        }
    }

    #[test]
    fn reads_a_package_built_by_dpkg_deb() {
        let Ok(status) = Command::new("dpkg-deb").arg("--version").output() else {
            eprintln!("no dpkg-deb on this machine: skipped");
            return;
        };
        assert!(status.status.success());
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("DEBIAN")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("DEBIAN/control"), CONTROL).unwrap();
        fs::write(root.join("DEBIAN/conffiles"), "/etc/hello.conf\n").unwrap();
        fs::write(root.join("etc/hello.conf"), "greeting=hi\n").unwrap();
        fs::write(root.join("usr/bin/hello"), big()).unwrap();
        std::os::unix::fs::symlink("hello", root.join("usr/bin/hi")).unwrap();
        for compressor in ["gzip", "xz", "zstd", "none"] {
            let out = dir.path().join(format!("hello-{compressor}.deb"));
            let built = Command::new("dpkg-deb")
                .args(["--root-owner-group", &format!("-Z{compressor}"), "--build"])
                .arg(&root)
                .arg(&out)
                .output()
                .unwrap();
            assert!(built.status.success(), "{built:?}");
            let deb = DebArchive::open(&out).unwrap();
            assert_eq!(deb.package.name, "hello");
            assert_eq!(deb.package.depends.len(), 2);
            assert_eq!(deb.conffiles, ["/etc/hello.conf"]);
            let entries = deb.entries().unwrap();
            let entry = |path: &str| entries.iter().find(|e| e.path == path).unwrap();
            assert_eq!(entries[0].path, "/");
            let bin = entry("/usr/bin/hello");
            assert_eq!((bin.uid, bin.user.as_str()), (0, "root"));
            assert_eq!(bin.digest, Some(digest(&big())), "{compressor}");
            assert!(entry("/etc/hello.conf").conffile);
            assert_eq!(entry("/usr/bin/hi").target.as_deref(), Some("hello"));

            // dpkg's own listing names the same paths.
            let listing = Command::new("dpkg-deb")
                .arg("-c")
                .arg(&out)
                .output()
                .unwrap();
            let listed = String::from_utf8(listing.stdout).unwrap().lines().count();
            assert_eq!(entries.len(), listed, "{compressor}");

            let mut bytes = Vec::new();
            deb.for_each_file(|file| match file.path() {
                "/usr/bin/hello" => file.copy_to(&mut bytes).map(drop),
                _ => Ok(()),
            })
            .unwrap();
            assert_eq!(bytes, big());
        }
    }

    #[test]
    fn opens_a_package_of_the_apt_cache_when_present() {
        let Ok(listing) = fs::read_dir("/var/cache/apt/archives") else {
            eprintln!("no apt cache on this machine: skipped");
            return;
        };
        let mut debs: Vec<PathBuf> = listing
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        let Some(first) = debs.first() else {
            eprintln!("no .deb in the apt cache: skipped");
            return;
        };
        let deb = DebArchive::open(first).unwrap();
        assert!(!deb.package.name.is_empty());
        let entries = deb.entries().unwrap();
        assert!(entries.iter().all(|e| e.path.starts_with('/')));
        assert!(entries.iter().any(|e| e.kind == FileKind::File));
    }

    #[test]
    fn suffixes_round_trip() {
        for compression in ALL {
            let name = format!("data.tar{}", compression.suffix());
            assert_eq!(Compression::of(&name, "data.tar"), Some(compression));
        }
        assert_eq!(Compression::of("data.tar.bz2", "data.tar"), None);
    }
}
