//! One RPM header, as rpmdb.sqlite stores it and a `.rpm` carries it: the package's
//! metadata, its file list and its scriptlets, read with the `rpm` crate once the bytes
//! have been checked so that the crate's parser only ever sees a well-formed header.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use rpm::{DependencyFlags, FileFlags, IndexTag, PackageMetadata};

use super::caps;
use super::error::RpmError;
use super::{Capability, Requirement, RpmPackage, provide_self};
use crate::excerpt::excerpt;
use crate::lock::{FileKind, path};
use crate::source::{Op, Origin};

/// The 8 bytes before a header in a `.rpm`; rpmdb.sqlite stores headers without them.
pub(crate) const HEADER_MAGIC: [u8; 8] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];

/// The most index entries a header may have (rpm's `hdrchkTags`).
const MAX_TAGS: u32 = 0xffff;

/// The largest data store a header may have (rpm's `hdrchkData`: 16 MB).
const MAX_DATA: u32 = 0x00ff_ffff;

/// A `.rpm` lead, as the `rpm` crate wants one before a header: magic, format 3.0,
/// binary, os 1, signature type 5 (header-style signatures). Only the magic is read.
const LEAD: [u8; 96] = {
    let mut lead = [0u8; 96];
    let start = [0xed, 0xab, 0xee, 0xdb, 3, 0];
    let mut i = 0;
    while i < start.len() {
        lead[i] = start[i];
        i += 1;
    }
    lead[77] = 1;
    lead[79] = 5;
    lead
};

/// An empty signature header: the header magic, no entries, no data (already a
/// multiple of 8 bytes long, so no padding follows).
const EMPTY_SIGNATURE: [u8; 16] = [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// rpm's `%config`... file flags (`RPMFILE_*`).
const CONFIG: u32 = FileFlags::CONFIG.bits();
const DOC: u32 = FileFlags::DOC.bits();
const MISSINGOK: u32 = FileFlags::MISSINGOK.bits();
const NOREPLACE: u32 = FileFlags::NOREPLACE.bits();
const GHOST: u32 = FileFlags::GHOST.bits();
const LICENSE: u32 = FileFlags::LICENSE.bits();

/// A parsed RPM header, with the bytes it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct RpmHeader {
    /// Where it comes from, for errors: the archive, `DB:hnum N`, or `header blob`.
    file: PathBuf,
    /// The bare blob (no magic), exactly as read.
    blob: Vec<u8>,
    metadata: PackageMetadata,
}

/// How a header's file digests are computed (`RPMTAG_FILEDIGESTALGO`; MD5 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `PGPHASHALGO_MD5` (1), rpm's default before 4.6.
    Md5,
    /// `PGPHASHALGO_SHA1` (2).
    Sha1,
    /// `PGPHASHALGO_SHA224` (11).
    Sha224,
    /// `PGPHASHALGO_SHA256` (8), what current rpm writes.
    Sha256,
    /// `PGPHASHALGO_SHA384` (9).
    Sha384,
    /// `PGPHASHALGO_SHA512` (10).
    Sha512,
}

impl DigestAlgorithm {
    /// The algorithm of OpenPGP hash number `id`, as rpm stores it.
    fn from_id(id: u32) -> Option<DigestAlgorithm> {
        Some(match id {
            1 => DigestAlgorithm::Md5,
            2 => DigestAlgorithm::Sha1,
            8 => DigestAlgorithm::Sha256,
            9 => DigestAlgorithm::Sha384,
            10 => DigestAlgorithm::Sha512,
            11 => DigestAlgorithm::Sha224,
            _ => return None,
        })
    }

    /// How many hex digits one of its digests has.
    pub(crate) fn hex_len(self) -> usize {
        match self {
            DigestAlgorithm::Md5 => 32,
            DigestAlgorithm::Sha1 => 40,
            DigestAlgorithm::Sha224 => 56,
            DigestAlgorithm::Sha256 => 64,
            DigestAlgorithm::Sha384 => 96,
            DigestAlgorithm::Sha512 => 128,
        }
    }
}

/// One file of a header's file list, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderFile {
    /// Absolute and normalised (`/usr/bin/x`).
    pub path: String,
    /// What it is. Regular files sharing an inode ([`HeaderFile::inode`]) are a hard
    /// link set: the first path in sort order stays [`FileKind::File`], the others are
    /// [`FileKind::Hardlink`] with `target` naming it. Ghosts never join a set.
    pub kind: FileKind,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner, by name.
    pub user: String,
    /// Group, by name.
    pub group: String,
    /// Content size in bytes (regular files and hard links; 0 for ghosts rpm built
    /// empty).
    pub size: u64,
    /// rpm's digest of the content (regular files and hard links that have one), in
    /// lower-case hex.
    pub digest: Option<(DigestAlgorithm, String)>,
    /// The link text of a symlink, or the path a hard link shares its inode with.
    pub target: Option<String>,
    /// (major, minor) of a character or block device.
    pub device: Option<(u32, u32)>,
    /// (`RPMTAG_FILEDEVICES`, `RPMTAG_FILEINODES`): equal for the files of a hard link
    /// set.
    pub inode: (u32, u32),
    /// `RPMTAG_FILEMTIMES`: what rpm sets the file's mtime to, and `rpm -V` checks.
    pub mtime: u32,
    /// The `security.capability` xattr as lower-case hex, from `RPMTAG_FILECAPS`.
    pub caps: Option<String>,
    /// `%config`.
    pub config: bool,
    /// `%config(noreplace)`.
    pub noreplace: bool,
    /// `%ghost`: owned, in the database, never in the payload nor created.
    pub ghost: bool,
    /// `%doc`.
    pub doc: bool,
    /// `%license`.
    pub license: bool,
    /// `%config(missingok)` / `%missingok`.
    pub missingok: bool,
}

/// The scriptlets the configure stage runs: `%pre`, `%post`, `%posttrans` and the
/// install-time file triggers (the removal ones never run in an appliance build).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scriptlets {
    /// `%pre`.
    pub pre: Option<Scriptlet>,
    /// `%post`.
    pub post: Option<Scriptlet>,
    /// `%posttrans`.
    pub posttrans: Option<Scriptlet>,
    /// `%filetriggerin` and `%transfiletriggerin`, in header order (file triggers first).
    pub file_triggers: Vec<FileTrigger>,
}

/// One scriptlet: an interpreter and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scriptlet {
    /// The interpreter's argv (`*PROG`; `["/bin/sh"]` when absent). `<lua>` is kept as
    /// it is: the caller decides what to do with rpm's embedded interpreter.
    pub program: Vec<String>,
    /// The script, `None` for `%post -p /sbin/ldconfig` (the program alone is run).
    pub body: Option<String>,
}

/// An install-time file trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTrigger {
    /// `%transfiletriggerin` (runs once after the transaction) rather than
    /// `%filetriggerin` (runs after each package that installs a matching file).
    pub transaction: bool,
    /// The path prefixes that fire it.
    pub prefixes: Vec<String>,
    /// Its priority (higher runs first; rpm's default is 1000000).
    pub priority: u32,
    /// What it runs.
    pub script: Scriptlet,
}

impl RpmHeader {
    /// Parses a bare header blob as rpmdb.sqlite stores it (no magic). Errors name it
    /// `header blob`; [`RpmHeader::from_blob_in`] names the file it came from.
    pub fn from_blob(blob: &[u8]) -> Result<RpmHeader, RpmError> {
        RpmHeader::from_blob_in(blob, Path::new("header blob"))
    }

    /// [`RpmHeader::from_blob`], with errors (then and later) naming `file`.
    pub fn from_blob_in(blob: &[u8], file: &Path) -> Result<RpmHeader, RpmError> {
        let damaged = |message: String| RpmError::Header {
            file: file.to_path_buf(),
            package: None,
            message: format!("damaged header: {message}"),
        };
        check_blob(blob).map_err(damaged)?;
        // The crate parses a header only as part of a package: give it a lead and an
        // empty signature header before the blob.
        let framed = [&LEAD[..], &EMPTY_SIGNATURE, &HEADER_MAGIC, blob].concat();
        let metadata =
            PackageMetadata::parse(&mut Cursor::new(framed)).map_err(|e| damaged(e.to_string()))?;
        Ok(RpmHeader {
            file: file.to_path_buf(),
            blob: blob.to_vec(),
            metadata,
        })
    }

    /// The rpm crate's header, for what reads its tags one by one (the rpmdb writer's
    /// indexes).
    pub(crate) fn into_tags(self) -> rpm::Header<IndexTag> {
        self.metadata.header
    }

    /// The bare blob, as rpmdb.sqlite stores it: what [`RpmHeader::from_blob`] read, or
    /// for a header read from a `.rpm`, its main header without the magic.
    pub fn blob(&self) -> Vec<u8> {
        self.blob.clone()
    }

    /// Where the header comes from, as errors name it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Whether this is a source package's header (`.src.rpm`).
    pub fn is_source(&self) -> bool {
        self.metadata.is_source_package()
    }

    /// The package's metadata: name, `[E:]V-R`, arch, relations and owned paths.
    pub fn package(
        &self,
        origin: Origin,
        archive: Option<PathBuf>,
    ) -> Result<RpmPackage, RpmError> {
        let name = self.required(IndexTag::RPMTAG_NAME)?;
        let evr = self.evr()?;
        let arch = self.required(IndexTag::RPMTAG_ARCH)?;
        let mut provides: Vec<Capability> = self
            .dependencies(
                IndexTag::RPMTAG_PROVIDENAME,
                IndexTag::RPMTAG_PROVIDEFLAGS,
                IndexTag::RPMTAG_PROVIDEVERSION,
            )?
            .into_iter()
            .map(|(capability, _)| capability)
            .collect();
        provide_self(&mut provides, name, &evr);
        let pre = DependencyFlags::PREREQ | DependencyFlags::SCRIPT_PRE;
        let requires = self
            .dependencies(
                IndexTag::RPMTAG_REQUIRENAME,
                IndexTag::RPMTAG_REQUIREFLAGS,
                IndexTag::RPMTAG_REQUIREVERSION,
            )?
            .into_iter()
            .map(|(capability, flags)| Requirement {
                capability,
                pre: flags.intersects(pre),
            })
            .collect();
        let capabilities = |names, flags, versions| -> Result<Vec<Capability>, RpmError> {
            Ok(self
                .dependencies(names, flags, versions)?
                .into_iter()
                .map(|(capability, _)| capability)
                .collect())
        };
        let mut files: Vec<String> = self.files()?.into_iter().map(|f| f.path).collect();
        files.sort();
        Ok(RpmPackage {
            name: name.to_string(),
            evr,
            arch: arch.to_string(),
            provides,
            requires,
            conflicts: capabilities(
                IndexTag::RPMTAG_CONFLICTNAME,
                IndexTag::RPMTAG_CONFLICTFLAGS,
                IndexTag::RPMTAG_CONFLICTVERSION,
            )?,
            obsoletes: capabilities(
                IndexTag::RPMTAG_OBSOLETENAME,
                IndexTag::RPMTAG_OBSOLETEFLAGS,
                IndexTag::RPMTAG_OBSOLETEVERSION,
            )?,
            files,
            origin,
            archive,
            listing: None,
        })
    }

    /// `name-evr.arch`, for messages; what cannot be read is left out. It reads the tags
    /// itself: an error about the header names the package, so the readers that make
    /// errors must not be what names it.
    pub fn nevra(&self) -> String {
        let header = &self.metadata.header;
        let text = |tag| (header.get_entry_data_as_string(tag).ok()).filter(|t| !t.is_empty());
        let name = text(IndexTag::RPMTAG_NAME).unwrap_or("?");
        let version = text(IndexTag::RPMTAG_VERSION);
        let release = text(IndexTag::RPMTAG_RELEASE);
        match (version, release, text(IndexTag::RPMTAG_ARCH)) {
            (Some(version), Some(release), Some(arch)) => {
                let epoch = header.get_entry_data_as_u32(IndexTag::RPMTAG_EPOCH).ok();
                format!("{name}-{}.{arch}", evr(epoch, version, release))
            }
            _ => name.to_string(),
        }
    }

    /// The file list, in header order, checked: every per-file array as long as
    /// `RPMTAG_BASENAMES`, directory indices in range, paths absolute and normalised
    /// and each listed once, modes of a kind a lock describes, digests of the header's
    /// algorithm, capabilities convertible. Hard links are marked (see
    /// [`HeaderFile::kind`]).
    pub fn files(&self) -> Result<Vec<HeaderFile>, RpmError> {
        let header = &self.metadata.header;
        let strings = |tag| self.optional(tag, |t| header.get_entry_data_as_string_array(t));
        let u32s = |tag| self.optional(tag, |t| header.get_entry_data_as_u32_array(t));
        let u16s = |tag| self.optional(tag, |t| header.get_entry_data_as_u16_array(t));
        let basenames = strings(IndexTag::RPMTAG_BASENAMES)?.unwrap_or_default();
        let count = basenames.len();
        // Every per-file array: present with one value per file, or absent with none.
        let per_file = |tag: IndexTag, len: Option<usize>| match len {
            Some(len) if len == count => Ok(()),
            None if count == 0 => Ok(()),
            len => Err(self.error(format!(
                "{tag:?} has {} values for {count} files in RPMTAG_BASENAMES",
                len.map_or("no".to_string(), |l| l.to_string())
            ))),
        };
        let dirnames = strings(IndexTag::RPMTAG_DIRNAMES)?.unwrap_or_default();
        let dirindexes = u32s(IndexTag::RPMTAG_DIRINDEXES)?;
        per_file(
            IndexTag::RPMTAG_DIRINDEXES,
            dirindexes.as_ref().map(Vec::len),
        )?;
        let modes = u16s(IndexTag::RPMTAG_FILEMODES)?;
        per_file(IndexTag::RPMTAG_FILEMODES, modes.as_ref().map(Vec::len))?;
        let sizes: Option<Vec<u64>> = match u32s(IndexTag::RPMTAG_FILESIZES)? {
            Some(sizes) => Some(sizes.into_iter().map(u64::from).collect()),
            None => self.optional(IndexTag::RPMTAG_LONGFILESIZES, |t| {
                header.get_entry_data_as_u64_array(t)
            })?,
        };
        per_file(IndexTag::RPMTAG_FILESIZES, sizes.as_ref().map(Vec::len))?;
        let text_array = |tag| -> Result<Vec<&str>, RpmError> {
            let values = strings(tag)?;
            per_file(tag, values.as_ref().map(Vec::len))?;
            Ok(values.unwrap_or_default())
        };
        let users = text_array(IndexTag::RPMTAG_FILEUSERNAME)?;
        let groups = text_array(IndexTag::RPMTAG_FILEGROUPNAME)?;
        let digests = text_array(IndexTag::RPMTAG_FILEDIGESTS)?;
        let links = text_array(IndexTag::RPMTAG_FILELINKTOS)?;
        let number_array = |tag| -> Result<Vec<u32>, RpmError> {
            let values = u32s(tag)?;
            per_file(tag, values.as_ref().map(Vec::len))?;
            Ok(values.unwrap_or_default())
        };
        let flags = number_array(IndexTag::RPMTAG_FILEFLAGS)?;
        let inodes = number_array(IndexTag::RPMTAG_FILEINODES)?;
        let devices = number_array(IndexTag::RPMTAG_FILEDEVICES)?;
        let mtimes = number_array(IndexTag::RPMTAG_FILEMTIMES)?;
        let rdevs = u16s(IndexTag::RPMTAG_FILERDEVS)?;
        per_file(IndexTag::RPMTAG_FILERDEVS, rdevs.as_ref().map(Vec::len))?;
        // Caps are optional even with files (rpm leaves the tag out when none has any).
        let file_caps = strings(IndexTag::RPMTAG_FILECAPS)?;
        if let Some(file_caps) = &file_caps {
            per_file(IndexTag::RPMTAG_FILECAPS, Some(file_caps.len()))?;
        }
        let (dirindexes, modes, sizes, rdevs) = (
            dirindexes.unwrap_or_default(),
            modes.unwrap_or_default(),
            sizes.unwrap_or_default(),
            rdevs.unwrap_or_default(),
        );
        let algorithm = match self.optional(IndexTag::RPMTAG_FILEDIGESTALGO, |t| {
            header.get_entry_data_as_u32(t)
        })? {
            None => DigestAlgorithm::Md5,
            Some(id) => DigestAlgorithm::from_id(id).ok_or_else(|| {
                self.error(format!(
                    "RPMTAG_FILEDIGESTALGO {id} is not a digest rpm uses"
                ))
            })?,
        };

        let mut seen = HashSet::new();
        let mut files = Vec::with_capacity(count);
        for i in 0..count {
            let dir = dirnames.get(dirindexes[i] as usize).ok_or_else(|| {
                self.error(format!(
                    "RPMTAG_DIRINDEXES names directory {} of {} for {}",
                    dirindexes[i],
                    dirnames.len(),
                    excerpt(basenames[i])
                ))
            })?;
            let path = file_path(dir, basenames[i]).map_err(|m| self.error(m))?;
            if !seen.insert(path.clone()) {
                return Err(self.path_error(&path, "is listed twice"));
            }
            let flag = |bit: u32| flags[i] & bit != 0;
            let ghost = flag(GHOST);
            let mode = u32::from(modes[i]);
            let Some(kind) = FileKind::from_mode(mode) else {
                let bits = mode & 0o170000;
                return Err(self.path_error(&path, &format!("has file type {bits:o}")));
            };
            let target = match kind {
                FileKind::Symlink if links[i].is_empty() && !ghost => {
                    return Err(self.path_error(&path, "is a symlink without a target"));
                }
                FileKind::Symlink if !links[i].is_empty() => Some(links[i].to_string()),
                _ => None,
            };
            let digest = match digests[i] {
                "" => None,
                hex if kind == FileKind::File
                    && hex.len() == algorithm.hex_len()
                    && hex.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    Some((algorithm, hex.to_ascii_lowercase()))
                }
                hex => {
                    return Err(self.path_error(
                        &path,
                        &format!(
                            "has digest `{}`, not a {algorithm:?} of a file",
                            excerpt(hex)
                        ),
                    ));
                }
            };
            let caps = match file_caps.as_ref().map(|c| c[i]) {
                None => None,
                Some(text) => caps::xattr_hex(text).map_err(|m| self.path_error(&path, &m))?,
            };
            let device = matches!(kind, FileKind::Char | FileKind::Block)
                .then(|| (u32::from(rdevs[i] >> 8), u32::from(rdevs[i] & 0xff)));
            files.push(HeaderFile {
                path,
                kind,
                mode: u32::from(modes[i]) & 0o7777,
                user: users[i].to_string(),
                group: groups[i].to_string(),
                size: sizes[i],
                digest,
                target,
                device,
                inode: (devices[i], inodes[i]),
                mtime: mtimes[i],
                caps,
                config: flag(CONFIG),
                noreplace: flag(NOREPLACE),
                ghost,
                doc: flag(DOC),
                license: flag(LICENSE),
                missingok: flag(MISSINGOK),
            });
        }
        mark_hard_links(&mut files).map_err(|(path, why)| self.path_error(&path, &why))?;
        Ok(files)
    }

    /// `%pre`, `%post`, `%posttrans` and the install-time file triggers.
    pub fn scriptlets(&self) -> Result<Scriptlets, RpmError> {
        let scriptlet = |script: IndexTag,
                         program: IndexTag|
         -> Result<Option<Scriptlet>, RpmError> {
            let header = &self.metadata.header;
            let body = self.optional(script, |t| header.get_entry_data_as_string(t))?;
            let program = self.optional(program, |t| header.get_entry_data_as_string_array(t))?;
            if body.is_none() && program.is_none() {
                return Ok(None);
            }
            Ok(Some(Scriptlet {
                program: owned(program.unwrap_or_else(|| vec!["/bin/sh"])),
                body: body.filter(|b| !b.is_empty()).map(str::to_string),
            }))
        };
        let mut file_triggers = self.file_triggers(
            false,
            [
                IndexTag::RPMTAG_FILETRIGGERSCRIPTS,
                IndexTag::RPMTAG_FILETRIGGERSCRIPTPROG,
                IndexTag::RPMTAG_FILETRIGGERPRIORITIES,
                IndexTag::RPMTAG_FILETRIGGERNAME,
                IndexTag::RPMTAG_FILETRIGGERFLAGS,
                IndexTag::RPMTAG_FILETRIGGERINDEX,
            ],
        )?;
        file_triggers.extend(self.file_triggers(
            true,
            [
                IndexTag::RPMTAG_TRANSFILETRIGGERSCRIPTS,
                IndexTag::RPMTAG_TRANSFILETRIGGERSCRIPTPROG,
                IndexTag::RPMTAG_TRANSFILETRIGGERPRIORITIES,
                IndexTag::RPMTAG_TRANSFILETRIGGERNAME,
                IndexTag::RPMTAG_TRANSFILETRIGGERFLAGS,
                IndexTag::RPMTAG_TRANSFILETRIGGERINDEX,
            ],
        )?);
        Ok(Scriptlets {
            pre: scriptlet(IndexTag::RPMTAG_PREIN, IndexTag::RPMTAG_PREINPROG)?,
            post: scriptlet(IndexTag::RPMTAG_POSTIN, IndexTag::RPMTAG_POSTINPROG)?,
            posttrans: scriptlet(IndexTag::RPMTAG_POSTTRANS, IndexTag::RPMTAG_POSTTRANSPROG)?,
            file_triggers,
        })
    }

    /// The `*in` triggers of one family of file trigger tags: `[scripts, programs,
    /// priorities, names, flags, indices]`. A trigger's prefixes are the names whose
    /// index points at it; its kind (in, un, postun) is in those names' flags.
    fn file_triggers(
        &self,
        transaction: bool,
        [scripts, programs, priorities, names, flags, indices]: [IndexTag; 6],
    ) -> Result<Vec<FileTrigger>, RpmError> {
        let header = &self.metadata.header;
        let strings = |tag| -> Result<Vec<&str>, RpmError> {
            Ok(self
                .optional(tag, |t| header.get_entry_data_as_string_array(t))?
                .unwrap_or_default())
        };
        let u32s = |tag| -> Result<Vec<u32>, RpmError> {
            Ok(self
                .optional(tag, |t| header.get_entry_data_as_u32_array(t))?
                .unwrap_or_default())
        };
        let (script_texts, program_texts, priority_values) =
            (strings(scripts)?, strings(programs)?, u32s(priorities)?);
        let (name_texts, flag_values, index_values) =
            (strings(names)?, u32s(flags)?, u32s(indices)?);
        let mismatch = |tag: IndexTag, len: usize, of: IndexTag, expected: usize| {
            self.error(format!("{tag:?} has {len} values for {expected} in {of:?}"))
        };
        for (tag, len) in [
            (programs, program_texts.len()),
            (priorities, priority_values.len()),
        ] {
            // Old headers have no priorities; rpm then uses its default for each.
            if len != script_texts.len() && !(tag == priorities && len == 0) {
                return Err(mismatch(tag, len, scripts, script_texts.len()));
            }
        }
        for (tag, len) in [(flags, flag_values.len()), (indices, index_values.len())] {
            if len != name_texts.len() {
                return Err(mismatch(tag, len, names, name_texts.len()));
            }
        }
        let mut prefixes: Vec<Vec<String>> = vec![Vec::new(); script_texts.len()];
        let mut install = vec![false; script_texts.len()];
        for ((name, flag), index) in name_texts.iter().zip(&flag_values).zip(&index_values) {
            let Some(slot) = prefixes.get_mut(*index as usize) else {
                return Err(self.error(format!(
                    "{indices:?} names trigger {index} of {}",
                    script_texts.len()
                )));
            };
            slot.push(name.to_string());
            install[*index as usize] |= flag & DependencyFlags::TRIGGERIN.bits() != 0;
        }
        Ok((0..script_texts.len())
            .filter(|i| install[*i])
            .map(|i| FileTrigger {
                transaction,
                prefixes: std::mem::take(&mut prefixes[i]),
                priority: priority_values.get(i).copied().unwrap_or(1_000_000),
                script: Scriptlet {
                    program: vec![program_texts[i].to_string()],
                    body: Some(script_texts[i].to_string()),
                },
            })
            .collect())
    }

    /// `[E:]V-R`.
    fn evr(&self) -> Result<String, RpmError> {
        let version = self.required(IndexTag::RPMTAG_VERSION)?;
        let release = self.required(IndexTag::RPMTAG_RELEASE)?;
        let header = &self.metadata.header;
        let epoch = self.optional(IndexTag::RPMTAG_EPOCH, |t| header.get_entry_data_as_u32(t))?;
        Ok(evr(epoch, version, release))
    }

    /// One relation tag triple as capabilities, with each entry's flags.
    fn dependencies(
        &self,
        names: IndexTag,
        flags: IndexTag,
        versions: IndexTag,
    ) -> Result<Vec<(Capability, DependencyFlags)>, RpmError> {
        let header = &self.metadata.header;
        let name_texts = self
            .optional(names, |t| header.get_entry_data_as_string_array(t))?
            .unwrap_or_default();
        let flag_values = self
            .optional(flags, |t| header.get_entry_data_as_u32_array(t))?
            .unwrap_or_default();
        let version_texts = self
            .optional(versions, |t| header.get_entry_data_as_string_array(t))?
            .unwrap_or_default();
        for (tag, len) in [(flags, flag_values.len()), (versions, version_texts.len())] {
            if len != name_texts.len() {
                return Err(self.error(format!(
                    "{tag:?} has {len} values for {} in {names:?}",
                    name_texts.len()
                )));
            }
        }
        let sense = DependencyFlags::LESS | DependencyFlags::GREATER | DependencyFlags::EQUAL;
        let mut out = Vec::with_capacity(name_texts.len());
        for ((name, flag), version) in name_texts.iter().zip(flag_values).zip(version_texts) {
            let flag = DependencyFlags::from_bits_retain(flag);
            let op = match flag.intersection(sense) {
                f if f == DependencyFlags::LESS => Some(Op::Lt),
                f if f == DependencyFlags::LE => Some(Op::Le),
                f if f == DependencyFlags::EQUAL => Some(Op::Eq),
                f if f == DependencyFlags::GE => Some(Op::Ge),
                f if f == DependencyFlags::GREATER => Some(Op::Gt),
                f if f.is_empty() => None,
                _ => {
                    return Err(self.error(format!(
                        "{names:?} {}: relation flags {:#x} are both less and greater",
                        excerpt(name),
                        flag.bits()
                    )));
                }
            };
            if name.is_empty() {
                return Err(self.error(format!("{names:?} has an empty name")));
            }
            // rpm compares nothing when either side is missing.
            let constraint = match op {
                Some(op) if !version.is_empty() => Some((op, version.to_string())),
                _ => None,
            };
            let capability = Capability {
                name: name.to_string(),
                constraint,
            };
            out.push((capability, flag));
        }
        Ok(out)
    }

    /// The `License` tag, `None` when the header lacks it: what an SBOM states.
    pub fn license(&self) -> Result<Option<&str>, RpmError> {
        self.text(IndexTag::RPMTAG_LICENSE)
    }

    /// The text of string tag `tag`, `None` when the header lacks it.
    pub(super) fn text(&self, tag: IndexTag) -> Result<Option<&str>, RpmError> {
        let header = &self.metadata.header;
        self.optional(tag, |t| header.get_entry_data_as_string(t))
    }

    /// A string tag every package has.
    fn required(&self, tag: IndexTag) -> Result<&str, RpmError> {
        match self.text(tag)? {
            Some(text) if !text.is_empty() => Ok(text),
            _ => Err(self.error(format!("{tag:?} is missing or empty"))),
        }
    }

    /// A tag's value read with `get`, `None` when the header lacks it; any other
    /// failure (wrong type, not UTF-8) is an error naming the tag.
    fn optional<'h, V>(
        &'h self,
        tag: IndexTag,
        get: impl FnOnce(IndexTag) -> Result<V, rpm::Error>,
    ) -> Result<Option<V>, RpmError>
    where
        V: 'h,
    {
        match get(tag) {
            Ok(value) => Ok(Some(value)),
            Err(rpm::Error::TagNotFound(_)) => Ok(None),
            Err(e) => Err(self.error(format!("{tag:?}: {e}"))),
        }
    }

    /// A [`RpmError::Header`] for this header.
    pub(super) fn error(&self, message: String) -> RpmError {
        RpmError::Header {
            file: self.file.clone(),
            package: Some(self.nevra()),
            message,
        }
    }

    /// A [`RpmError::Header`] about one of its files.
    fn path_error(&self, path: &str, message: &str) -> RpmError {
        self.error(format!("file {}: {message}", excerpt(path)))
    }
}

/// The path of a file listed as `dir` (`/usr/bin/`) and `base` (`x`), or why it is
/// not absolute and normalised.
fn file_path(dir: &str, base: &str) -> Result<String, String> {
    let joined = format!("{dir}{base}");
    let bad = |why: &str| Err(format!("file {}: {why}", excerpt(&joined)));
    if !dir.starts_with('/') || !dir.ends_with('/') {
        return bad("directory is not absolute with a trailing `/`");
    }
    // rpm lists the root itself (which `filesystem` owns) as `/` and an empty name.
    if joined == "/" {
        return Ok(joined);
    }
    if base.is_empty() || base.contains('/') {
        return bad("base name is empty or holds a `/`");
    }
    if joined[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("path is not normalised (empty, `.` or `..` component)");
    }
    match path::check(&joined) {
        Ok(()) => Ok(joined),
        Err(problem) => bad(&format!("path {problem}")),
    }
}

/// The EVR as rpm prints it: `EPOCH:VERSION-RELEASE`, the epoch left out when absent.
fn evr(epoch: Option<u32>, version: &str, release: &str) -> String {
    match epoch {
        Some(epoch) => format!("{epoch}:{version}-{release}"),
        None => format!("{version}-{release}"),
    }
}

/// Marks the hard link sets of `files`: regular, non-ghost files sharing an inode.
/// The first path of a set in sort order stays a file; the others become hard links
/// to it. A member whose size or digest is not the first's is refused: (its path, why).
fn mark_hard_links(files: &mut [HeaderFile]) -> Result<(), (String, String)> {
    let is_content = |f: &HeaderFile| f.kind == FileKind::File && !f.ghost;
    let mut leaders: HashMap<(u32, u32), usize> = HashMap::new();
    for (i, f) in files.iter().enumerate().filter(|(_, f)| is_content(f)) {
        let leader = leaders.entry(f.inode).or_insert(i);
        if f.path < files[*leader].path {
            *leader = i;
        }
    }
    for i in 0..files.len() {
        let f = &files[i];
        let Some(&leader) = leaders.get(&f.inode).filter(|&&l| l != i && is_content(f)) else {
            continue;
        };
        let lead = &files[leader];
        // One inode has one content: members that say otherwise would let the payload
        // vouch for bytes the lock then takes for another path.
        if f.size != lead.size || f.digest != lead.digest {
            let why = format!(
                "shares its inode with {} but not its size and digest",
                lead.path
            );
            return Err((f.path.clone(), why));
        }
        let target = lead.path.clone();
        files[i].kind = FileKind::Hardlink;
        files[i].target = Some(target);
    }
    Ok(())
}

/// `texts` owned.
fn owned(texts: Vec<&str>) -> Vec<String> {
    texts.into_iter().map(str::to_string).collect()
}

/// Checks a bare header blob's layout so the crate's parser (which indexes without
/// checking) only ever sees a well-formed one: entry and data counts within rpm's
/// limits and matching the blob's length, every entry of a known type whose data lies
/// inside the store, strings NUL-terminated there.
pub(super) fn check_blob(blob: &[u8]) -> Result<(), String> {
    let word = |at: usize| u32::from_be_bytes([blob[at], blob[at + 1], blob[at + 2], blob[at + 3]]);
    if blob.len() < 8 {
        return Err(format!("{} bytes long", blob.len()));
    }
    let (entries, data) = (word(0), word(4));
    let expected = blob_len(entries, data)?;
    if blob.len() != expected {
        return Err(format!(
            "{entries} entries and {data} data bytes make {expected} bytes, not {}",
            blob.len()
        ));
    }
    let store = &blob[8 + 16 * entries as usize..];
    for i in 0..entries as usize {
        let at = 8 + 16 * i;
        let (tag, kind, offset, count) = (word(at), word(at + 4), word(at + 8), word(at + 12));
        let bad = |why: &str| Err(format!("tag {tag}: {why}"));
        if offset > data {
            return bad("data offset beyond the store");
        }
        if count == 0 || count > MAX_DATA {
            return bad(&format!("count {count}"));
        }
        let rest = &store[offset as usize..];
        let width = match kind {
            0 => 0,
            1 | 2 | 7 => 1,
            3 => 2,
            4 => 4,
            5 => 8,
            6 | 8 | 9 => {
                if kind == 6 && count != 1 {
                    return bad("a string with a count other than 1");
                }
                let mut left = rest;
                for _ in 0..count {
                    let Some(nul) = left.iter().position(|b| *b == 0) else {
                        return bad("string runs past the store");
                    };
                    left = &left[nul + 1..];
                }
                0
            }
            other => return bad(&format!("unknown data type {other}")),
        };
        if u64::from(count) * width > rest.len() as u64 {
            return bad("data runs past the store");
        }
    }
    Ok(())
}

/// The length of a bare blob of `entries` index entries and `data` store bytes (the
/// two words that start it), or why rpm would refuse those counts.
pub(super) fn blob_len(entries: u32, data: u32) -> Result<usize, String> {
    if entries == 0 || entries > MAX_TAGS {
        return Err(format!("{entries} index entries"));
    }
    if data > MAX_DATA {
        return Err(format!("{data} bytes of data, more than rpm reads"));
    }
    Ok(8 + 16 * entries as usize + data as usize)
}

#[cfg(test)]
mod tests {
    use rpm::{CompressionType, IndexData};

    use super::super::fixture::{blob, edited, hello, set};
    use super::*;

    fn hello_header() -> RpmHeader {
        RpmHeader::from_blob(&blob(&hello(CompressionType::Gzip).metadata)).unwrap()
    }

    fn capability(name: &str, constraint: Option<(Op, &str)>) -> Capability {
        Capability {
            name: name.to_string(),
            constraint: constraint.map(|(op, evr)| (op, evr.to_string())),
        }
    }

    #[test]
    fn reads_the_package_of_a_built_header() {
        let header = hello_header();
        let package = header
            .package(Origin::Pool, Some(PathBuf::from("/pool/hello.rpm")))
            .unwrap();
        assert_eq!(package.nevra(), "hello-2:1.0-1.x86_64");
        assert_eq!(header.nevra(), "hello-2:1.0-1.x86_64");
        assert_eq!(package.origin, Origin::Pool);
        assert_eq!(package.archive, Some(PathBuf::from("/pool/hello.rpm")));
        for provide in [
            capability("greeter", None),
            capability("libhello.so.1()(64bit)", Some((Op::Eq, "1.0"))),
            capability("hello", Some((Op::Eq, "2:1.0-1"))),
        ] {
            assert!(package.provides.contains(&provide), "{provide:?}");
        }
        let required = |name: &str| {
            let found = package.requires.iter().find(|r| r.capability.name == name);
            found.unwrap_or_else(|| panic!("{name} in {:?}", package.requires))
        };
        assert_eq!(
            required("glibc").capability.constraint,
            Some((Op::Ge, "2.34".to_string()))
        );
        assert!(required("shadow-utils").pre);
        assert!(!required("/bin/sh").pre);
        assert!(!required("(busybox or coreutils)").pre);
        // rpmlib() requirements the builder adds are kept, with their relation.
        let rpmlib = package
            .requires
            .iter()
            .find(|r| r.capability.name.starts_with("rpmlib("));
        assert!(rpmlib.unwrap().capability.constraint.is_some());
        assert_eq!(
            package.conflicts,
            [capability("hello-old", Some((Op::Lt, "1:2")))]
        );
        assert_eq!(
            package.obsoletes,
            [capability("hello-legacy", Some((Op::Le, "0.9-1")))]
        );
        let mut sorted = package.files.clone();
        sorted.sort();
        assert_eq!(package.files, sorted);
        assert!(package.files.contains(&"/var/log/hello.log".to_string()));
        assert!(package.files.contains(&"/usr/bin/hi".to_string()));
    }

    #[test]
    fn reads_every_field_of_the_files() {
        let files = hello_header().files().unwrap();
        let file = |path: &str| files.iter().find(|f| f.path == path).unwrap();
        let bin = file("/usr/bin/hello");
        assert_eq!(
            (bin.kind, bin.mode, bin.size),
            (FileKind::File, 0o4755, 800_000)
        );
        assert_eq!((bin.user.as_str(), bin.group.as_str()), ("root", "root"));
        let (algorithm, digest) = bin.digest.clone().unwrap();
        assert_eq!(algorithm, DigestAlgorithm::Sha256);
        assert_eq!(
            digest,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                super::super::fixture::big()
            ))
        );
        assert_eq!(
            file("/usr/bin/ping").caps.as_deref(),
            Some("0100000200200000000000000000000000000000")
        );
        assert_eq!(bin.caps, None);
        let link = file("/usr/bin/hi");
        assert_eq!(
            (link.kind, link.target.as_deref()),
            (FileKind::Symlink, Some("hello"))
        );
        let conf = file("/etc/hello.conf");
        assert!(conf.config && conf.noreplace && !conf.ghost);
        assert_eq!(
            (conf.user.as_str(), conf.group.as_str(), conf.mode),
            ("hello", "adm", 0o640)
        );
        let log = file("/var/log/hello.log");
        assert!(log.ghost && !log.config);
        assert!(file("/usr/share/doc/hello/README").doc);
        assert!(file("/usr/share/licenses/hello/COPYING").license);
        assert_eq!(file("/run/hello.fifo").kind, FileKind::Fifo);
        assert_eq!(file("/usr/share/hello").kind, FileKind::Dir);
        // The pair shares an inode: `a` (first in sort order) is the file.
        let (a, b) = (file("/usr/lib/hello/a"), file("/usr/lib/hello/b"));
        assert_eq!(a.inode, b.inode);
        assert_eq!((a.kind, a.target.as_deref()), (FileKind::File, None));
        assert_eq!(
            (b.kind, b.target.as_deref()),
            (FileKind::Hardlink, Some("/usr/lib/hello/a"))
        );
        assert!(files.iter().all(|f| !f.missingok));
    }

    #[test]
    fn reads_the_scriptlets() {
        let scriptlets = hello_header().scriptlets().unwrap();
        assert_eq!(
            scriptlets.pre,
            Some(Scriptlet {
                program: vec!["/bin/sh".to_string()],
                body: Some("getent passwd hello || useradd -r hello".to_string()),
            })
        );
        assert_eq!(
            scriptlets.post,
            Some(Scriptlet {
                program: vec!["/sbin/ldconfig".to_string()],
                body: None,
            })
        );
        let posttrans = scriptlets.posttrans.unwrap();
        assert_eq!(posttrans.program, ["<lua>"]);
        let triggers: Vec<(bool, Vec<String>, Option<String>)> = (scriptlets.file_triggers)
            .into_iter()
            .map(|t| (t.transaction, t.prefixes, t.script.body))
            .collect();
        assert_eq!(
            triggers,
            [
                (
                    false,
                    vec!["/usr/lib/hello/".to_string()],
                    Some("ldconfig".to_string())
                ),
                (
                    true,
                    vec!["/usr/share/hello/".to_string()],
                    Some("echo again".to_string())
                ),
            ]
        );
    }

    #[test]
    fn the_blob_round_trips() {
        let bytes = blob(&hello(CompressionType::Gzip).metadata);
        let header = RpmHeader::from_blob(&bytes).unwrap();
        assert_eq!(header.blob(), bytes);
        assert_eq!(RpmHeader::from_blob(&header.blob()).unwrap(), header);
    }

    #[test]
    fn damaged_blobs_are_errors_not_panics() {
        let bytes = blob(&hello(CompressionType::Gzip).metadata);
        for cut in (0..bytes.len()).step_by(7) {
            let err = RpmHeader::from_blob(&bytes[..cut]).unwrap_err().to_string();
            assert!(err.starts_with("header blob: damaged header"), "{err}");
        }
        let mut offsets = bytes.clone();
        // The second entry's offset points far beyond the store.
        offsets[8 + 16 + 8..8 + 16 + 12].copy_from_slice(&0x7fff_0000u32.to_be_bytes());
        let mut kinds = bytes.clone();
        kinds[8 + 16 + 4..8 + 16 + 8].copy_from_slice(&42u32.to_be_bytes());
        let mut counts = bytes.clone();
        counts[..4].copy_from_slice(&0x10_0000u32.to_be_bytes());
        for (damaged, why) in [
            (offsets, "data offset beyond the store"),
            (kinds, "unknown data type 42"),
            (counts, "1048576 index entries"),
        ] {
            let err = RpmHeader::from_blob_in(&damaged, Path::new("/db:hnum 3"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("/db:hnum 3: damaged header: "), "{err}");
            assert!(err.contains(why), "expected `{why}` in: {err}");
        }
    }

    #[test]
    fn headers_that_lie_about_their_files_are_refused_by_tag_and_path() {
        let metadata = hello(CompressionType::Gzip).metadata;
        let strings =
            |v: &[&str]| IndexData::StringArray(v.iter().map(|s| s.to_string()).collect());
        let basenames = metadata
            .header
            .get_entry_data_as_string_array(IndexTag::RPMTAG_BASENAMES)
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        let dirnames = metadata
            .header
            .get_entry_data_as_string_array(IndexTag::RPMTAG_DIRNAMES)
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        let with = |f: &dyn Fn(&mut Vec<String>)| {
            let mut v = basenames.clone();
            f(&mut v);
            IndexData::StringArray(v)
        };
        let dirs = |f: &dyn Fn(&mut Vec<String>)| {
            let mut v = dirnames.clone();
            f(&mut v);
            IndexData::StringArray(v)
        };
        let n = basenames.len();
        let cases: Vec<(IndexTag, IndexData, String)> = vec![
            (
                IndexTag::RPMTAG_BASENAMES,
                with(&|v| v.push("extra".into())),
                format!("RPMTAG_DIRINDEXES has {n} values for {} files", n + 1),
            ),
            (
                IndexTag::RPMTAG_FILEUSERNAME,
                strings(&["root"]),
                format!("RPMTAG_FILEUSERNAME has 1 values for {n} files"),
            ),
            (
                IndexTag::RPMTAG_DIRINDEXES,
                IndexData::Int32(vec![99; n]),
                format!("RPMTAG_DIRINDEXES names directory 99 of {}", dirnames.len()),
            ),
            (
                IndexTag::RPMTAG_BASENAMES,
                with(&|v| v[0] = "..".into()),
                "not normalised".to_string(),
            ),
            (
                IndexTag::RPMTAG_DIRNAMES,
                dirs(&|v| v[0] = "etc/".into()),
                "directory is not absolute".to_string(),
            ),
            (
                IndexTag::RPMTAG_DIRNAMES,
                dirs(&|v| v[0] = "/usr/../".into()),
                "not normalised".to_string(),
            ),
            // `/usr/bin/hello` and the folder `/usr/share/hello` both become `/d/hello`.
            (
                IndexTag::RPMTAG_DIRNAMES,
                dirs(&|v| v.iter_mut().for_each(|d| *d = "/d/".into())),
                "file /d/hello: is listed twice".to_string(),
            ),
            (
                IndexTag::RPMTAG_FILECAPS,
                strings(&vec!["cap_frobnicate=ep"; n]),
                "unknown capability `cap_frobnicate`".to_string(),
            ),
            (
                IndexTag::RPMTAG_FILEDIGESTALGO,
                IndexData::Int32(vec![77]),
                "RPMTAG_FILEDIGESTALGO 77".to_string(),
            ),
        ];
        for (tag, data, why) in cases {
            let lying = edited(&metadata, |entries| set(entries, tag, data));
            let header = RpmHeader::from_blob(&blob(&lying)).unwrap();
            let err = header.files().unwrap_err().to_string();
            assert!(
                err.starts_with("header blob: package hello-2:1.0-1.x86_64: "),
                "{err}"
            );
            assert!(err.contains(&why), "{tag:?}: expected `{why}` in: {err}");
            // What lists files refuses the same header.
            assert!(header.package(Origin::Pool, None).is_err());
        }
    }

    #[test]
    fn a_header_without_its_version_is_an_error_naming_the_package() {
        // Naming the package in the error once read the version again, and again.
        let metadata = hello(CompressionType::Gzip).metadata;
        let lying = edited(&metadata, |entries| {
            entries.retain(|(tag, _)| *tag != IndexTag::RPMTAG_VERSION as u32)
        });
        let header = RpmHeader::from_blob(&blob(&lying)).unwrap();
        let err = header.package(Origin::Pool, None).unwrap_err().to_string();
        assert!(
            err.contains("hello: RPMTAG_VERSION is missing or empty"),
            "{err}"
        );
        assert_eq!(header.nevra(), "hello");
    }

    #[test]
    fn hard_links_that_disagree_about_their_content_are_refused() {
        let metadata = hello(CompressionType::Gzip).metadata;
        let files = RpmHeader::from_blob(&blob(&metadata))
            .unwrap()
            .files()
            .unwrap();
        let b = (files.iter().position(|f| f.path == "/usr/lib/hello/b")).unwrap();
        let mut sizes: Vec<u32> = (metadata.header)
            .get_entry_data_as_u32_array(IndexTag::RPMTAG_FILESIZES)
            .unwrap();
        sizes[b] += 1;
        let lying = edited(&metadata, |entries| {
            set(entries, IndexTag::RPMTAG_FILESIZES, IndexData::Int32(sizes))
        });
        let header = RpmHeader::from_blob(&blob(&lying)).unwrap();
        let err = header.files().unwrap_err().to_string();
        assert!(
            err.contains("file /usr/lib/hello/b: shares its inode with /usr/lib/hello/a"),
            "{err}"
        );
    }

    #[test]
    fn impossible_relations_are_refused() {
        let metadata = hello(CompressionType::Gzip).metadata;
        let flags = metadata
            .header
            .get_entry_data_as_u32_array(IndexTag::RPMTAG_REQUIREFLAGS)
            .unwrap();
        let both = (DependencyFlags::LESS | DependencyFlags::GREATER).bits();
        let lying = edited(&metadata, |entries| {
            set(
                entries,
                IndexTag::RPMTAG_REQUIREFLAGS,
                IndexData::Int32(vec![both; flags.len()]),
            )
        });
        let header = RpmHeader::from_blob(&blob(&lying)).unwrap();
        let err = header.package(Origin::Pool, None).unwrap_err().to_string();
        assert!(err.contains("are both less and greater"), "{err}");
        let short = edited(&metadata, |entries| {
            set(
                entries,
                IndexTag::RPMTAG_REQUIREFLAGS,
                IndexData::Int32(vec![0]),
            )
        });
        let header = RpmHeader::from_blob(&blob(&short)).unwrap();
        let err = header.package(Origin::Pool, None).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "RPMTAG_REQUIREFLAGS has 1 values for {}",
                flags.len()
            )),
            "{err}"
        );
    }
}
