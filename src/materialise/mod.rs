//! Materialise a lock into an output: chroot directory, tarball, OpenVZ OS template,
//! bootable image or OCI image layout.
//!
//! An output never reads the package database: it gets a [`Lock`] and the places that
//! hold bytes ([`Sources`]). The whole lock is validated before anything is written,
//! every file's bytes are checked against the lock's BLAKE3 while they are copied, and
//! the output is built beside OUT and renamed into place, so OUT is always either the
//! previous output or the complete new one.

mod archives;
mod chroot;
mod fetch;
mod gzip;
mod image;
mod oci;
mod openvz;
mod output;
mod plan;
pub(crate) mod stamp;
mod tarball;
mod verify;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::excerpt::excerpt;
use crate::lock::{FileEntry, Lock};

pub use fetch::{Drifted, Problem};
pub use image::ImageError;
pub(crate) use image::{INIT_SAYS, INIT_UP};
pub use openvz::{NotForContainers, OsRelease, os_release, template_name};
pub use output::Protected;
pub use plan::LockProblem;
pub use verify::{HostDifference, HostProblem, Supplier, Verification, verify};

pub use oci::Tag;
pub(crate) use oci::{Blob, Hashing, rfc3339};
pub(crate) use output::Target;

use crate::progress::{Progress, Reporter};
use fetch::{FetchError, Restart, Source};

use plan::{Expected, Item, Plan};
use stamp::{Stamp, Used};

/// How a tarball is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain `.tar`.
    None,
    /// `.tar.gz` / `.tgz`: gzip level 6, header mtime 0.
    Gzip,
    /// `.tar.xz` / `.txz`: xz preset 6, multi-threaded encoder.
    Xz,
    /// `.tar.zst` / `.tzst`: zstd level 3 on as many workers as rayon has threads (the
    /// bytes do not depend on how many).
    Zstd,
}

impl Compression {
    /// The lower-case name used in stamps and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// The extension a tarball of this compression is named with by default.
    pub fn extension(self) -> &'static str {
        (TAR_EXTENSIONS.iter())
            .find(|(_, c)| *c == self)
            .map_or(".tar", |(ext, _)| ext)
    }

    /// The compression a tarball name asks for, if it has a tar extension at all; an
    /// extension of a compressed tar that appliance does not write (`.tar.bz2`) is an
    /// error, so that no OUT is silently left uncompressed.
    fn from_extension(out: &Path) -> Result<Option<Compression>, MaterialiseError> {
        let Some(name) = out.file_name() else {
            return Ok(None);
        };
        let name = name.to_string_lossy().to_ascii_lowercase();
        if let Some((ext, compression)) = UNWRITTEN_TAR_EXTENSIONS
            .iter()
            .find(|(ext, _)| name.ends_with(ext))
        {
            return Err(MaterialiseError::UnwrittenCompression {
                out: out.to_path_buf(),
                extension: ext,
                compression,
            });
        }
        Ok(TAR_EXTENSIONS
            .iter()
            .find(|(ext, _)| name.ends_with(ext))
            .map(|(_, compression)| *compression))
    }
}

/// Every tar extension appliance writes, each compression's default first. The one
/// place names map to compressions.
const TAR_EXTENSIONS: [(&str, Compression); 7] = [
    (".tar", Compression::None),
    (".tar.gz", Compression::Gzip),
    (".tgz", Compression::Gzip),
    (".tar.xz", Compression::Xz),
    (".txz", Compression::Xz),
    (".tar.zst", Compression::Zstd),
    (".tzst", Compression::Zstd),
];

/// Extensions of compressed tars that appliance does not write, with the compression
/// they name (lower case: names are compared so).
const UNWRITTEN_TAR_EXTENSIONS: [(&str, &str); 13] = [
    (".tar.bz2", "bzip2"),
    (".tar.bz", "bzip2"),
    (".tbz2", "bzip2"),
    (".tbz", "bzip2"),
    (".tb2", "bzip2"),
    (".tar.lz4", "lz4"),
    (".tar.lzma", "lzma"),
    (".tlz", "lzma"),
    (".tar.lz", "lzip"),
    (".tar.lzo", "lzop"),
    (".tar.z", "compress"),
    (".taz", "compress"),
    (".tar.br", "brotli"),
];

impl fmt::Display for Format {
    /// The format and its variant as the result line names them: `tar, zstd`,
    /// `tar, uncompressed`, `image, raw disk`, `oci, tag latest`, `chroot`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Chroot => f.write_str("chroot"),
            Format::Tar(Compression::None) | Format::Openvz(Compression::None) => {
                write!(f, "{}, uncompressed", self.describe().0)
            }
            Format::Tar(c) | Format::Openvz(c) => {
                write!(f, "{}, {}", self.describe().0, c.as_str())
            }
            Format::Image(disk) => write!(f, "image, {} disk", disk.as_str()),
            Format::Oci(tag) => write!(f, "oci, tag {}", tag.as_str()),
        }
    }
}

/// How an image's root disk is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disk {
    /// A raw ext4 filesystem image.
    Raw,
    /// The raw image converted by `qemu-img` to qcow2.
    Qcow2,
    /// The raw image converted by `qemu-img` to VMware's vmdk.
    Vmdk,
}

impl Disk {
    /// The disk for `--disk` (`raw`, `qcow2` or `vmdk`).
    pub fn parse(name: &str) -> Result<Disk, MaterialiseError> {
        match name {
            "raw" => Ok(Disk::Raw),
            "qcow2" => Ok(Disk::Qcow2),
            "vmdk" => Ok(Disk::Vmdk),
            other => Err(MaterialiseError::UnknownDisk {
                name: other.to_string(),
            }),
        }
    }

    /// The lower-case name used in stamps, file names and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Disk::Raw => "raw",
            Disk::Qcow2 => "qcow2",
            Disk::Vmdk => "vmdk",
        }
    }
}

/// The kind of output to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A directory tree.
    Chroot,
    /// A tarball with this compression.
    Tar(Compression),
    /// An OpenVZ OS template: a container tarball (gzip or xz) that vzctl accepts.
    Openvz(Compression),
    /// A bootable set in a directory: kernel, initramfs and a root disk of this kind.
    Image(Disk),
    /// An OCI image layout directory with one layer, its image named by this tag.
    Oci(Tag),
}

impl Format {
    /// The format for `--format` and OUT. A tar's compression comes from OUT's extension
    /// (none when it has no tar extension); an OpenVZ template is gzipped unless OUT
    /// ends in `.tar.xz`; an image's disk is raw (see [`Disk::parse`]). Without
    /// `--format`, a tar extension means tar and anything else a chroot.
    /// An extension of a compressed tar appliance does not write is an error unless
    /// `--format` names a folder format.
    pub fn choose(name: Option<&str>, out: &Path) -> Result<Format, MaterialiseError> {
        let folder = matches!(name, Some("chroot" | "image" | "oci"));
        let by_extension = match Compression::from_extension(out) {
            Err(_) if folder => None,
            other => other?,
        };
        match name {
            None => Ok(by_extension.map_or(Format::Chroot, Format::Tar)),
            Some("chroot") => Ok(Format::Chroot),
            Some("tar") => Ok(Format::Tar(by_extension.unwrap_or(Compression::None))),
            Some("openvz") => match by_extension {
                None | Some(Compression::Gzip) => Ok(Format::Openvz(Compression::Gzip)),
                Some(Compression::Xz) => Ok(Format::Openvz(Compression::Xz)),
                Some(other) => Err(MaterialiseError::UnsupportedCompression {
                    format: "openvz",
                    compression: other.as_str(),
                }),
            },
            Some("image") => Ok(Format::Image(Disk::Raw)),
            Some("oci") => Ok(Format::Oci(Tag::default())),
            Some(other) => Err(MaterialiseError::UnknownFormat {
                name: other.to_string(),
            }),
        }
    }

    /// The name OUT gets when `-o` is left out, from `stem` (`GROUP-FLAVOR`): a chroot
    /// is `stem`, a tar `stem.tar` with its compression's extension, an image
    /// `stem.image`, an OCI layout `stem.oci`, so that no two formats of one lock take
    /// the same name. (An OpenVZ template is named by [`template_name`] instead.)
    pub fn default_output(&self, stem: &str) -> PathBuf {
        PathBuf::from(match self {
            Format::Chroot => stem.to_string(),
            Format::Tar(c) | Format::Openvz(c) => format!("{stem}{}", c.extension()),
            Format::Image(_) => format!("{stem}.image"),
            Format::Oci(_) => format!("{stem}.oci"),
        })
    }

    /// The format's name and its variant (compression, disk or tag), as stamps record
    /// them.
    pub fn describe(&self) -> (&'static str, Option<&str>) {
        match self {
            Format::Chroot => ("chroot", None),
            Format::Tar(c) => ("tar", Some(c.as_str())),
            Format::Openvz(c) => ("openvz", Some(c.as_str())),
            Format::Image(disk) => ("image", Some(disk.as_str())),
            Format::Oci(tag) => ("oci", Some(tag.as_str())),
        }
    }
}

/// Where file bytes come from, in order of preference.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The host root the lock's files are read under (`/` for the host itself).
    pub sysroot: PathBuf,
    /// Folders of `.deb` archives (`store/pool`, `/var/cache/apt/archives`, ...), in
    /// preference order: a locked package's archive supplies its files.
    pub pool: Vec<PathBuf>,
    /// The blob store, laid out as `<dir>/<first two hex digits>/<BLAKE3 hex>`.
    pub blobs: Option<PathBuf>,
    /// Where files unpacked from the pool's archives are kept across runs
    /// (`store/unpacked`, laid out as the blob store): a package's file is read there
    /// before its archive is unpacked again, and one this run unpacks is kept there.
    pub unpacked: Option<PathBuf>,
}

/// The byte sources of one run: the caller's [`Sources`] and, when there are pool
/// folders, the package archives unpacked on demand; and the host files read so far.
pub(crate) struct Supply<'a> {
    sources: &'a Sources,
    archives: Option<archives::Archives<'a>>,
    used: Used,
}

impl<'a> Supply<'a> {
    /// The supply of a run of `lock` starting now, reading `sources`; their package
    /// archives, when there are pool folders, are unpacked into `scratch`, which the
    /// caller makes only when [`Sources::takes_archives`].
    fn for_lock(lock: &'a Lock, sources: &'a Sources, scratch: Option<&'a Path>) -> Supply<'a> {
        let archives = (scratch.filter(|_| sources.takes_archives())).map(|dir| {
            archives::Archives::new(lock, &sources.pool, dir, sources.unpacked.as_deref())
        });
        Supply::new(sources, archives)
    }

    /// The supply of a run starting now, reading `sources` and, if given, `archives`.
    fn new(sources: &'a Sources, archives: Option<archives::Archives<'a>>) -> Supply<'a> {
        Supply {
            sources,
            archives,
            used: Used::starting_now(),
        }
    }
}

impl Sources {
    /// Whether a run needs a scratch folder to unpack package archives in.
    fn takes_archives(&self) -> bool {
        !self.pool.is_empty()
    }
}

/// How to run a materialisation.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Return at once when OUT's stamp says it was built from this same request and
    /// every host file it read is unchanged (see [`is_current`]).
    pub if_newer: bool,
    /// A file to hold an exclusive lock on for the whole run (created if missing).
    pub lock_file: Option<PathBuf>,
    /// The mtime of every entry the lock gives none ([`FileEntry::mtime`]):
    /// `SOURCE_DATE_EPOCH` or 0, chosen by the caller.
    pub mtime: u64,
    /// Replace an existing OUT that appliance did not make (`--force`); never what
    /// [`Protected`] and the sources name, a mount point, or a device.
    pub force: bool,
    /// What the caller knows no output may replace.
    pub protected: Protected,
    /// Where progress goes (by default, nowhere).
    pub report: Reporter,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `false` when `if_newer` found OUT current and did nothing.
    pub built: bool,
    /// Entries written, the root not counted.
    pub files: usize,
    /// Content bytes written (each hardlinked file once).
    pub bytes: u64,
    /// Things not done that do not fail the run (devices skipped when not root...).
    pub warnings: Vec<String>,
}

/// Why a materialisation failed. OUT is unchanged whatever the error.
#[derive(Debug, thiserror::Error)]
pub enum MaterialiseError {
    /// `--format` names no format this module writes.
    #[error(
        "unknown output format `{name}` (materialise writes chroot, tar, openvz, image or oci)"
    )]
    UnknownFormat {
        /// The name given.
        name: String,
    },
    /// `--disk` names no disk kind an image can have.
    #[error("unknown disk kind `{name}` (an image's disk is raw, qcow2 or vmdk)")]
    UnknownDisk {
        /// The name given.
        name: String,
    },
    /// OUT's extension asks for a compression the format does not take.
    #[error("the {format} format cannot be compressed with {compression}")]
    UnsupportedCompression {
        /// The format.
        format: &'static str,
        /// The compression OUT's extension asks for.
        compression: &'static str,
    },
    /// OUT's extension names a compressed tar of a compression appliance does not write.
    #[error(
        "{}: appliance does not write {compression} ({extension}); a tar's extension is .tar, \
         .tar.gz or .tgz (gzip), .tar.xz or .txz (xz), or .tar.zst or .tzst (zstd)",
        .out.display()
    )]
    UnwrittenCompression {
        /// OUT.
        out: PathBuf,
        /// The extension, in lower case.
        extension: &'static str,
        /// The compression it names.
        compression: &'static str,
    },
    /// The lock has an entry that cannot be written safely; nothing was written.
    #[error("invalid lock entry {}: {problem}", excerpt(.path))]
    InvalidLock {
        /// The entry's path.
        path: String,
        /// What is wrong with it.
        problem: LockProblem,
    },
    /// An OpenVZ template was asked of a lock with something no container may hold.
    #[error(
        "{}{}: {why}",
        excerpt(.path),
        package.as_ref().map(|p| format!(" (package {})", excerpt(p))).unwrap_or_default()
    )]
    NotForContainers {
        /// The entry.
        path: String,
        /// The package it belongs to, if any.
        package: Option<String>,
        /// What makes it unfit.
        why: NotForContainers,
    },
    /// The lock has no os-release to name its distribution by.
    #[error(
        "the lock of group {group} has no /etc/os-release or /usr/lib/os-release with an ID to name the template by: pass -o FILE"
    )]
    NoOsRelease {
        /// The group.
        group: String,
    },
    /// The mtime does not fit a file timestamp.
    #[error("mtime {mtime} is too large for a file timestamp")]
    Mtime {
        /// The mtime asked for.
        mtime: u64,
    },
    /// The mtime is past what an OCI image's `created` time (RFC 3339) can hold.
    #[error("mtime {mtime} is past the year 9999, which an OCI image's created time cannot hold")]
    Created {
        /// The mtime asked for.
        mtime: u64,
    },
    /// The lock's flavor names no architecture an OCI image can declare.
    #[error("no OCI platform for flavor `{flavor}`: {reason}")]
    Platform {
        /// The lock's canonical flavor string.
        flavor: String,
        /// Why.
        reason: String,
    },
    /// `--tag` names no tag the distribution grammar allows.
    #[error(
        "bad tag `{tag}`: a tag is 1 to 128 ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    BadTag {
        /// The tag given (shortened).
        tag: String,
    },
    /// A lock entry an OCI layer cannot carry: unpackers take the name for a whiteout.
    #[error(
        "{path}: an OCI layer cannot hold a name starting with `.wh.` (unpackers take it for a deletion)"
    )]
    Whiteout {
        /// The entry's path.
        path: String,
    },
    /// OUT cannot be replaced without harm, even when forced.
    #[error("refusing to replace {}: {reason}", out.display())]
    UnsafeOutput {
        /// OUT.
        out: PathBuf,
        /// Why.
        reason: String,
    },
    /// OUT exists and is not an output appliance made.
    #[error(
        "refusing to replace {}: it exists and appliance did not make it ({what}); remove it first or pass --force",
        out.display()
    )]
    Foreign {
        /// OUT.
        out: PathBuf,
        /// What is there (`a folder with 42 entries`...).
        what: String,
    },
    /// Files whose bytes no source supplies as locked; OUT was left as it was.
    #[error("{}", drift_report(out, files))]
    Drift {
        /// OUT.
        out: PathBuf,
        /// Every drifted file, in path order.
        files: Vec<Drifted>,
    },
    /// The filesystem holding OUT is full.
    #[error("{}: no space left on the device while writing {path}", out.display())]
    NoSpace {
        /// OUT.
        out: PathBuf,
        /// What was being written (an entry of the lock, or a path beside OUT).
        path: String,
    },
    /// A bootable image cannot be made from the lock.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Any other filesystem error.
    #[error("{}: cannot {action} {path}: {source}", out.display())]
    Io {
        /// OUT.
        out: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The entry of the lock, or the path beside OUT, concerned.
        path: String,
        /// The system's error.
        source: io::Error,
    },
}

fn drift_report(out: &Path, files: &[Drifted]) -> String {
    let mut report = match files.len() {
        1 => "1 file differs from the lock:".to_string(),
        n => format!("{n} files differ from the lock:"),
    };
    for file in files {
        report.push_str(&format!("\n  {file}"));
    }
    report.push_str(&format!("\n{} was left as it was", out.display()));
    report
}

/// An I/O error about `path` while making `out`; a full disk is told as such.
fn io_error(
    out: &Path,
    action: &'static str,
    path: impl fmt::Display,
    e: io::Error,
) -> MaterialiseError {
    if crate::scratch::is_no_space(&e) {
        MaterialiseError::NoSpace {
            out: out.to_path_buf(),
            path: path.to_string(),
        }
    } else {
        MaterialiseError::Io {
            out: out.to_path_buf(),
            action,
            path: path.to_string(),
            source: e,
        }
    }
}

/// Whether `out` holds what [`materialise`] would write for lock `lock_id` in `format`
/// with entry mtime `mtime` from `sources`, as its stamp says: same request, OUT still
/// the object built, and every host file the build read unchanged (device, inode, size,
/// mtime, ctime). Needs only the lock id: a caller can ask before loading the lock. A
/// claim a killed run left naming the current OUT goes, as [`materialise`]'s own check
/// removes it.
pub fn is_current(
    lock_id: &str,
    sources: &Sources,
    format: &Format,
    out: &Path,
    mtime: u64,
) -> bool {
    let Ok(target) = Target::new(out) else {
        return false;
    };
    let request = Stamp::request(lock_id, format, mtime, &sources.sysroot);
    current_after_claim(&target, &request, out)
}

/// The lock ids the stamp and the claim beside `out` name (see [`Target`]): what the
/// output there was built from, or is about to be. Unreadable ones name nothing.
pub fn built_from(out: &Path) -> Vec<String> {
    let Ok(target) = Target::new(out) else {
        return Vec::new();
    };
    [target.stamp(), target.claim()]
        .iter()
        .filter_map(|path| Stamp::lock_id(path))
        .collect()
}

/// The stamp and the claim beside `out`: what to remove with it.
pub fn beside(out: &Path) -> Vec<PathBuf> {
    Target::new(out).map_or_else(|_| Vec::new(), |t| vec![t.stamp(), t.claim()])
}

/// Checks `lock` the way materialise does before writing anything (paths, parents,
/// links, digests, devices), so that compile never stores a lock that no output could
/// be made from. The first bad entry is a [`MaterialiseError::InvalidLock`].
pub fn check_lock(lock: &Lock) -> Result<(), MaterialiseError> {
    Plan::new(lock).map(|_| ())
}

/// Writes `lock` (whose id is `lock_id`) to `out` in `format`, taking bytes from
/// `sources`. Refuses an OUT it may not replace (see [`Protected`] and
/// [`Options::force`]) and validates the whole lock before writing anything, and
/// leaves OUT untouched on any error. A run that builds first removes the temporaries
/// that killed runs left beside OUT.
pub fn materialise(
    lock: &Lock,
    lock_id: &str,
    sources: &Sources,
    format: &Format,
    out: &Path,
    opts: &Options,
) -> Result<Outcome, MaterialiseError> {
    let target = Target::new(out)?;
    let request = Stamp::request(lock_id, format, opts.mtime, &sources.sysroot);
    // A stamp is only ever written for a valid lock: a current OUT needs no plan.
    let current = || opts.if_newer && current_after_claim(&target, &request, out);
    if current() {
        return Ok(Outcome::current());
    }
    // No lock needed: a run that installs OUT claims it before, so another run
    // always sees it as appliance's.
    target.check_replace(sources, &opts.protected, opts.force)?;
    let container;
    let lock = match format {
        Format::Openvz(_) => {
            container = openvz::container_lock(lock)?;
            &container
        }
        _ => lock,
    };
    let plan = Plan::new(lock)?;
    let mtime = libc::time_t::try_from(opts.mtime)
        .map_err(|_| MaterialiseError::Mtime { mtime: opts.mtime })?;
    let held = opts
        .lock_file
        .as_deref()
        .map(|path| hold(path, out))
        .transpose()?;
    // Under the lock when there is one; without, the temporaries' own locks keep the
    // other runs' live temporaries safe.
    target.remove_stale();
    // Whoever held the lock before us may just have built the same thing.
    if held.is_some() && current() {
        return Ok(Outcome::current());
    }

    // Unpacked archive files live beside OUT until the run ends, whatever its outcome.
    let scratch = (sources.takes_archives())
        .then(|| target.temp_dir())
        .transpose()?;
    let supply = Supply::for_lock(
        lock,
        sources,
        scratch.as_ref().map(|dir| dir.path.as_path()),
    );
    let progress = opts.report.progress();
    let mut warnings = Vec::new();
    let (temp, files) = match format {
        Format::Chroot => chroot::build(&plan, &supply, &target, mtime, &progress, &mut warnings)?,
        Format::Tar(compression) | Format::Openvz(compression) => {
            tarball::build(&plan, &supply, *compression, &target, opts.mtime, &progress)?
        }
        Format::Oci(tag) => oci::build(
            &plan, &supply, lock, lock_id, tag, &target, opts.mtime, &progress,
        )?,
        Format::Image(disk) => image::build(
            &plan,
            lock,
            lock_id,
            &supply,
            *disk,
            &target,
            mtime,
            &progress,
            &mut warnings,
        )?,
    };
    // The unpacked archives go now; what the build read stays for the stamp.
    let Supply { archives, used, .. } = supply;
    drop(archives);
    drop(scratch);
    // The bar goes before anything else is reported.
    drop(progress);
    install_stamped(&target, &request, temp, used, &mut warnings)?;
    Ok(Outcome {
        built: true,
        files,
        bytes: plan.content_bytes(),
        warnings,
    })
}

/// Writes `lock` into `root`, an existing empty directory, as the tree compile
/// configures: every owner shifted by `ids`, so that a confined process sees the lock's
/// own ids; bytes checked as for any output; package archives unpacked in `scratch`.
/// Needs root. Returns the number of entries made and what was not done.
pub fn stage(
    lock: &Lock,
    sources: &Sources,
    root: &Path,
    scratch: &Path,
    ids: crate::confine::IdShift,
) -> Result<(usize, Vec<String>), MaterialiseError> {
    let plan = Plan::new(lock)?;
    let supply = Supply::for_lock(lock, sources, Some(scratch));
    let mut warnings = Vec::new();
    let made = chroot::populate(
        &plan,
        &supply,
        root,
        root,
        0,
        chroot::Metadata::Shifted(ids),
        // Compile's configure stage has its own spinner, which a bar would fight.
        &Progress::hidden(),
        &mut warnings,
    )?;
    Ok((made, warnings))
}

impl Outcome {
    fn current() -> Outcome {
        Outcome {
            built: false,
            files: 0,
            bytes: 0,
            warnings: Vec::new(),
        }
    }
}

/// Opens (creating) and exclusively locks `path`; the lock lasts as long as the file.
fn hold(path: &Path, out: &Path) -> Result<File, MaterialiseError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_error(out, "open lock file", path.display(), e))?;
    file.lock()
        .map_err(|e| io_error(out, "lock", path.display(), e))?;
    Ok(file)
}

/// Fetches the regular files `files` (indices into `plan.items`, with their content) in
/// parallel, each into the sink `sink` opens for it, counting each on `progress`; what
/// `keep` makes of a filled sink is kept (a sink is dropped as soon as its file is done,
/// so no more files are open than threads). Returns each file's source and what was
/// kept, in the order of `files`; any drift fails with every drifted file. Runs on the
/// calling thread pool: callers wrap it in [`crate::io_pool::in_io_pool`].
#[allow(clippy::too_many_arguments)]
fn fetch_each<S: Restart, T: Send>(
    plan: &Plan,
    supply: &Supply,
    files: &[(usize, Expected)],
    out: &Path,
    progress: &Progress,
    sink: impl Fn(&Item) -> Result<S, MaterialiseError> + Sync,
    keep: impl Fn(S) -> T + Sync,
) -> Result<Vec<(Source, T)>, MaterialiseError> {
    enum Failed {
        Drift(Drifted),
        Fatal(MaterialiseError),
    }
    let results: Vec<Result<(Source, T), Failed>> = files
        .par_iter()
        .map(|(i, expected)| {
            let item = &plan.items[*i];
            let mut sink = sink(item).map_err(Failed::Fatal)?;
            match fetch::fetch(item.entry, expected, supply, &mut sink) {
                Ok(source) => {
                    progress.entry(expected.size);
                    Ok((source, keep(sink)))
                }
                Err(FetchError::Drift(drifted)) => Err(Failed::Drift(drifted)),
                Err(FetchError::Sink(e)) => {
                    Err(Failed::Fatal(io_error(out, "write", &item.entry.path, e)))
                }
            }
        })
        .collect();
    let mut fetched = Vec::with_capacity(results.len());
    let mut drifted = Vec::new();
    for result in results {
        match result {
            Ok(file) => fetched.push(file),
            Err(Failed::Drift(file)) => drifted.push(file),
            Err(Failed::Fatal(e)) => return Err(e),
        }
    }
    if drifted.is_empty() {
        Ok(fetched)
    } else {
        Err(MaterialiseError::Drift {
            out: out.to_path_buf(),
            files: drifted,
        })
    }
}

/// Whether OUT is current by its stamp ([`Stamp::is_current`]). A claim beside it that
/// names the object the stamp names is a run's killed between writing the stamp and
/// removing its claim: it says nothing the stamp does not, so it goes. The claim is read
/// before the stamp, so a claim a live run writes meanwhile names its temporary, never
/// the stamped OUT, and stays.
fn current_after_claim(target: &Target, request: &Stamp, out: &Path) -> bool {
    let claim = target.claim();
    let spent = Stamp::made(&claim, out);
    let current = request.is_current(&target.stamp(), out);
    if current && spent {
        let _ = Stamp::remove(&claim);
    }
    current
}

/// Puts the complete output `temp` at OUT with `request`'s stamp beside it, built from
/// the host files in `used`. OUT's old stamp keeps naming the old OUT until the new one
/// is in place, and the claim names the new one from then on: whenever the run dies,
/// what is at OUT is known to be appliance's.
fn install_stamped(
    target: &Target,
    request: &Stamp,
    temp: output::TempPath,
    used: Used,
    warnings: &mut Vec<String>,
) -> Result<(), MaterialiseError> {
    let out = &target.out;
    let claim = target.claim();
    request
        .claim(&claim, &temp.path)
        .map_err(|e| io_error(out, "write", claim.display(), e))?;
    if let Err(e) = target.install(temp, warnings) {
        // Best effort: the claim names the temporary, which is gone.
        let _ = Stamp::remove(&claim);
        return Err(e);
    }
    let stamp_path = target.stamp();
    match request.write(&stamp_path, out, used) {
        // The claim stays, and keeps naming OUT, when the stamp cannot be written.
        Ok(()) => {
            if let Err(e) = Stamp::remove(&claim) {
                warnings.push(format!("could not remove {}: {e}", claim.display()));
            }
        }
        Err(e) => warnings.push(format!(
            "could not write the stamp {} (--if-newer will rebuild): {e}",
            stamp_path.display()
        )),
    }
    Ok(())
}

/// Writes `bytes`, a document made from lock `lock_id` (`kind` names it and its format:
/// `("sbom", "spdx")`), to `out` as an output is written: refused where an output may
/// not go (`force` lifts only the rule against replacing what appliance did not make),
/// written beside OUT and renamed into place, its stamp beside it. Returns what was not
/// done that does not fail the write.
pub fn write_document(
    lock_id: &str,
    kind: (&str, &str),
    bytes: &[u8],
    out: &Path,
    sources: &Sources,
    protected: &Protected,
    force: bool,
) -> Result<Vec<String>, MaterialiseError> {
    let target = Target::new(out)?;
    target.check_replace(sources, protected, force)?;
    target.remove_stale();
    let (temp, mut file) = target.temp_file()?;
    let written = io::Write::write_all(&mut file, bytes).and_then(|()| file.sync_all());
    written.map_err(|e| io_error(out, "write", temp.path.display(), e))?;
    let request = Stamp::document(lock_id, kind, &sources.sysroot);
    let mut warnings = Vec::new();
    install_stamped(&target, &request, temp, Used::starting_now(), &mut warnings)?;
    Ok(warnings)
}

/// Runs `work` with the byte sources of `lock`: when there are pool folders, archives
/// are unpacked into a private scratch folder that goes when `work` returns.
fn with_supply<R>(
    lock: &Lock,
    sources: &Sources,
    work: impl FnOnce(&Supply) -> Result<R, MaterialiseError>,
) -> Result<R, MaterialiseError> {
    let scratch = (sources.takes_archives())
        .then(|| crate::scratch::private_dir("appliance-archives"))
        .transpose()
        .map_err(|e| io_error(Path::new("."), "create", "a scratch folder", e))?;
    let supply = Supply::for_lock(
        lock,
        sources,
        scratch.as_ref().map(|dir| dir.path.as_path()),
    );
    work(&supply)
}

/// The bytes of a (small) regular file of a lock, checked against it; `out` is what
/// they are read for, as errors name it.
fn read_entry(
    content: (&FileEntry, Expected),
    supply: &Supply,
    out: &Path,
) -> Result<Vec<u8>, MaterialiseError> {
    read_checked(content, supply, out)?.map_err(|drifted| MaterialiseError::Drift {
        out: out.to_path_buf(),
        files: vec![drifted],
    })
}

/// A lock file's bytes, checked against the lock, or why no source holds them as locked.
pub type Checked = Result<Vec<u8>, Drifted>;

/// [`read_entry`], with a drifted file told apart from a failure to read at all.
fn read_checked(
    (entry, expected): (&FileEntry, Expected),
    supply: &Supply,
    out: &Path,
) -> Result<Checked, MaterialiseError> {
    let mut bytes = Vec::new();
    match fetch::fetch(entry, &expected, supply, &mut bytes) {
        Ok(_) => Ok(Ok(bytes)),
        Err(FetchError::Drift(drifted)) => Ok(Err(drifted)),
        Err(FetchError::Sink(e)) => Err(io_error(out, "read", &entry.path, e)),
    }
}

/// The bytes of the small regular files of `lock` at `paths`, taken from `sources` as
/// an output takes them (the host's file, the package's archive, the blob store) and
/// checked against the lock: per path, `None` when the lock has no regular file there,
/// else its bytes or why no source holds them as locked. `out` is what they are read
/// for, as errors name it. For documents made from a lock, such as an SBOM.
pub fn read_files(
    lock: &Lock,
    sources: &Sources,
    paths: &[String],
    out: &Path,
) -> Result<Vec<Option<Checked>>, MaterialiseError> {
    let plan = Plan::new(lock)?;
    with_supply(lock, sources, |supply| {
        (paths.iter())
            .map(|path| {
                (plan.file_content(path))
                    .map(|content| read_checked(content, supply, out))
                    .transpose()
            })
            .collect()
    })
}

#[cfg(test)]
mod tests;
