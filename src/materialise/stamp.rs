//! The stamp beside an output that lets `--if-newer` skip a build.
//!
//! A stamp holds everything that decides OUT's bytes or where they were read from: the
//! request (appliance's version, lock id, format and its variant, mtime, sysroot, the
//! user whose rights shape a chroot), which filesystem object OUT was right after the
//! build, and the identity of every host file the build read
//! (device, inode, size, mtime and ctime to the nanosecond). Files that came from pool
//! archives or the blob store are not listed: they are checked against the lock's
//! digests, so the lock id covers them.
//!
//! Checking a stamp reads it, compares the request and stats OUT and each listed file;
//! nothing is hashed, except a file whose ctime was so close to the build that a later
//! change could leave every timestamp as it was (git's "racily clean" entries): the
//! stamp keeps such a file's digest, and the check hashes it.
//!
//! The encoding is binary and compact: a magic with the encoding's version, the
//! request, OUT's identity, the files (paths sorted and front-coded, numbers as LEB128
//! varints, deltas from the previous file where neighbours are alike), then the BLAKE3
//! of all that, so a truncated or corrupt stamp is simply not current.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use super::Format;
use crate::scratch::Temp;

/// The first bytes of a stamp; the last one is the encoding's version.
const MAGIC: &[u8; 16] = b"appliance stamp\x03";

/// How long before a build a host file's ctime must be for its stat to be trusted.
/// File times come from a clock that ticks every few milliseconds, and some
/// filesystems keep whole (or even two) seconds: a file changed again within the same
/// tick as the time recorded would show the same times.
const RACY: Duration = Duration::from_secs(2);

/// The request an output is built for: what decides its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The request, encoded: a stamp for this request starts with these bytes.
    header: Vec<u8>,
}

impl Stamp {
    /// The stamp a build of lock `lock_id` in `format` with entry mtime `mtime`, reading
    /// host files under `sysroot`, would leave. Where OUT is plays no part: no output's
    /// bytes depend on it (an image's xen.cfg names its files relative to it), so a
    /// folder moved with OUT and its stamp in it stays current.
    pub fn request(lock_id: &str, format: &Format, mtime: u64, sysroot: &Path) -> Stamp {
        let (format_name, variant) = format.describe();
        // A chroot's owners and devices depend on who builds it: root writes the lock's,
        // anyone else owns every file and makes no device. No other format's bytes do.
        let owner = match format {
            // SAFETY: geteuid has no preconditions and cannot fail.
            Format::Chroot => u64::from(unsafe { libc::geteuid() }) + 1,
            _ => 0,
        };
        Stamp::encode_request(lock_id, (format_name, variant), mtime, sysroot, owner)
    }

    /// The stamp of a document of lock `lock_id` of kind `kind` (`sbom`, with its
    /// format as the variant): it says appliance made OUT, and no output's request is
    /// ever the same, so `--if-newer` never takes it for one.
    pub fn document(lock_id: &str, kind: (&str, &str), sysroot: &Path) -> Stamp {
        Stamp::encode_request(lock_id, (kind.0, Some(kind.1)), 0, sysroot, 0)
    }

    /// The encoded request: `format` is a format's name and variant.
    fn encode_request(
        lock_id: &str,
        (format_name, variant): (&str, Option<&str>),
        mtime: u64,
        sysroot: &Path,
        owner: u64,
    ) -> Stamp {
        // The fields in the order `Reader::request` skips them.
        let mut w = Writer::default();
        w.bytes(env!("CARGO_PKG_VERSION").as_bytes());
        w.bytes(lock_id.as_bytes());
        w.bytes(format_name.as_bytes());
        w.optional(variant.map(str::as_bytes));
        w.uint(mtime);
        w.bytes(sysroot.as_os_str().as_bytes());
        w.uint(owner);
        Stamp { header: w.buf }
    }

    /// Whether the stamp at `stamp` says `out` was built for this request, is still that
    /// output, and every host file it was built from is as it was then. Reads the stamp,
    /// stats OUT and those files; hashes only files that were racily recent (see
    /// [`Used`]). Any unreadable, truncated or corrupt stamp means no.
    pub fn is_current(&self, stamp: &Path, out: &Path) -> bool {
        let Some(bytes) = read_stamp(stamp) else {
            return false;
        };
        let Some(files) = self.decode(&bytes, out) else {
            return false;
        };
        files.par_iter().all(HostFile::unchanged)
    }

    /// The host files of a stamp for this request whose OUT is still `out`'s object.
    fn decode(&self, bytes: &[u8], out: &Path) -> Option<Vec<HostFile>> {
        let body = verified(bytes)?;
        let rest = body.strip_prefix(self.header.as_slice())?;
        let mut r = Reader { buf: rest };
        if Identity::of(out).ok()? != r.identity(&Identity::default())? {
            return None;
        }
        let files = r.host_files()?;
        r.buf.is_empty().then_some(files)
    }

    /// Whether the stamp at `stamp`, written for any request, names the object now at
    /// `out`: the same file or folder (device and inode), its size and mtime unchanged.
    /// The ctime is not compared: installing an output renames it, which changes only
    /// that, so a stamp written for a temporary still names it once it is OUT. A stamp
    /// copied beside another file names another object, and proves nothing.
    pub fn made(stamp: &Path, out: &Path) -> bool {
        let Some(bytes) = read_stamp(stamp) else {
            return false;
        };
        let Some(body) = verified(&bytes) else {
            return false;
        };
        let mut r = Reader { buf: body };
        let recorded = r.request().and_then(|()| r.identity(&Identity::default()));
        recorded.is_some_and(|was| Identity::of(out).is_ok_and(|now| was.same_object(&now)))
    }

    /// Records that `out` now holds this request's output, built from the host files
    /// in `used` (written beside, then renamed over the old stamp).
    pub fn write(&self, stamp: &Path, out: &Path, used: Used) -> io::Result<()> {
        self.store(stamp, out, used.into_files())
    }

    /// Records, at `claim`, that `object` (a complete output about to be renamed to
    /// OUT) is this request's output, with no host files: enough for [`made`](Self::made),
    /// never for [`is_current`](Self::is_current), which reads only the stamp.
    pub fn claim(&self, claim: &Path, object: &Path) -> io::Result<()> {
        self.store(claim, object, Vec::new())
    }

    /// Writes the stamp of `out`'s object and `files` to `stamp`: beside, then renamed
    /// over what was there.
    fn store(&self, stamp: &Path, out: &Path, files: Vec<HostFile>) -> io::Result<()> {
        let bytes = self.encode(&Identity::of(out)?, files);
        // A temporary of its own, so concurrent builds without a lock file never share
        // it, and one a killed run leaves is known to be stale.
        let parent = stamp.parent().unwrap_or(Path::new("."));
        let name = stamp.file_name().unwrap_or_default();
        let (temp, mut file) = Temp::file(parent, name, 0o644)?;
        file.write_all(&bytes)?;
        fs::rename(&temp.path, stamp)?;
        temp.keep();
        Ok(())
    }

    /// The whole stamp: magic, request, OUT, the files, the checksum.
    fn encode(&self, built: &Identity, files: Vec<HostFile>) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(MAGIC);
        w.buf.extend_from_slice(&self.header);
        w.identity(built, &Identity::default());
        w.host_files(files);
        let sum = blake3::hash(&w.buf);
        w.buf.extend_from_slice(sum.as_bytes());
        w.buf
    }

    /// The lock id the stamp (or claim) at `stamp` was written for, whatever the rest of
    /// its request; `None` for anything but a whole stamp.
    pub fn lock_id(stamp: &Path) -> Option<String> {
        let bytes = read_stamp(stamp)?;
        let mut r = Reader {
            buf: verified(&bytes)?,
        };
        r.bytes()?; // appliance's version
        String::from_utf8(r.bytes()?.to_vec()).ok()
    }

    /// Removes a stamp or claim that no longer describes anything.
    pub fn remove(stamp: &Path) -> io::Result<()> {
        match fs::remove_file(stamp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The bytes of the stamp at `path` when it is a regular file: never a symlink's
/// target, nor a FIFO that would block the read.
fn read_stamp(path: &Path) -> Option<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut &file, &mut bytes).ok()?;
    Some(bytes)
}

/// The part of a stamp between its magic and its checksum, when both are right.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let (signed, sum) = bytes.split_last_chunk::<32>()?;
    let body = signed.strip_prefix(MAGIC)?;
    (blake3::hash(signed) == blake3::Hash::from_bytes(*sum)).then_some(body)
}

/// Which filesystem object a path is, and its state: any write, truncation, touch,
/// chmod, chown or rename over it changes one of these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    pub(crate) mtime_nsec: u32,
    pub(crate) ctime: i64,
    pub(crate) ctime_nsec: u32,
}

impl Identity {
    /// The identity of `path` itself (a symlink is not followed).
    fn of(path: &Path) -> io::Result<Identity> {
        Ok(Identity::from(&fs::symlink_metadata(path)?))
    }

    /// Whether both are one object with the same size and mtime, whatever its ctime.
    pub(crate) fn same_object(&self, other: &Identity) -> bool {
        let kept_by_rename = |id: &Identity| (id.dev, id.ino, id.size, id.mtime, id.mtime_nsec);
        kept_by_rename(self) == kept_by_rename(other)
    }

    /// The ctime in nanoseconds since the epoch.
    fn ctime_nanos(&self) -> i128 {
        i128::from(self.ctime) * 1_000_000_000 + i128::from(self.ctime_nsec)
    }
}

impl From<&fs::Metadata> for Identity {
    fn from(meta: &fs::Metadata) -> Identity {
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            // Always below 10^9: the kernel normalises timestamps.
            mtime_nsec: meta.mtime_nsec() as u32,
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec() as u32,
        }
    }
}

/// A host file a build read, as it was when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HostFile {
    path: PathBuf,
    identity: Identity,
    /// The content's BLAKE3, kept only when the identity alone cannot be trusted.
    digest: Option<blake3::Hash>,
}

impl HostFile {
    /// Whether the file is still the one read: same identity, and same content when
    /// its identity was racy.
    fn unchanged(&self) -> bool {
        Identity::of(&self.path).is_ok_and(|now| now == self.identity)
            && self
                .digest
                .is_none_or(|digest| content_digest(&self.path).is_ok_and(|now| now == digest))
    }
}

/// The BLAKE3 of what a host path holds: a regular file's bytes, a folder's entry
/// names (sorted), which is what a build that lists it reads.
fn content_digest(path: &Path) -> io::Result<blake3::Hash> {
    if !fs::symlink_metadata(path)?.is_dir() {
        return hash_file(path);
    }
    let mut names = (fs::read_dir(path)?)
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    let mut hasher = blake3::Hasher::new();
    for name in names {
        hasher.update(name.as_bytes());
        hasher.update(b"\0");
    }
    Ok(hasher.finalize())
}

/// The BLAKE3 of a regular file's content.
fn hash_file(path: &Path) -> io::Result<blake3::Hash> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    Ok(blake3::Hasher::new().update_reader(file)?.finalize())
}

/// The host files one build reads, recorded as they are read (from any thread).
#[derive(Debug)]
pub(crate) struct Used {
    /// A file whose ctime is at or after this (nanoseconds since the epoch) may change
    /// again without its identity showing it: its digest is kept too.
    racy_from: i128,
    files: Mutex<Vec<HostFile>>,
}

impl Used {
    /// A record for a build starting now.
    pub fn starting_now() -> Used {
        // A clock before 1970 makes every file racy: slower checks, never wrong ones.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Used::racy_from(now.as_nanos() as i128 - RACY.as_nanos() as i128)
    }

    /// A record whose files count as racy when their ctime is at or after `racy_from`.
    fn racy_from(racy_from: i128) -> Used {
        Used {
            racy_from,
            files: Mutex::new(Vec::new()),
        }
    }

    /// Records that the bytes of lock content `digest` were read from `path`, an open
    /// file whose metadata (taken before reading) is `meta`.
    pub fn host_file(&self, path: &Path, meta: &fs::Metadata, digest: blake3::Hash) {
        self.push(path, Identity::from(meta), || Some(digest));
    }

    /// Records an input a build is about to read, as it is now: any file, folder or
    /// link (not followed); a regular file or folder whose identity is racy is kept
    /// with the digest of its bytes or of its entries' names. A path that cannot be
    /// examined is not recorded: whoever records inputs tells absence apart themselves.
    pub fn input(&self, path: &Path) {
        let Ok(meta) = fs::symlink_metadata(path) else {
            return;
        };
        self.push(path, Identity::from(&meta), || content_digest(path).ok());
    }

    /// Records `path` as it is now in place of what was recorded of it: for an input
    /// the build itself changed while it ran (an archive compile downloaded into a pool
    /// it reads). With `same` false, whatever `path` is then counts as changed.
    pub fn reinput(&self, path: &Path, same: bool) {
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|file| file.path != path);
        if same {
            self.input(path);
        } else {
            // The zero identity never matches a real file.
            self.push(path, Identity::default(), || None);
        }
    }

    /// Records that a build's result holds `path` as it is described by `meta` (taken
    /// after the build), with the content `digest` when a regular file: whatever
    /// changed the file since the build started is racy, and is then checked by that
    /// digest, so a change made during the build is never taken for the result's.
    pub fn result_entry(&self, path: &Path, meta: &fs::Metadata, digest: Option<blake3::Hash>) {
        self.push(path, Identity::from(meta), || digest);
    }

    /// Whether a file's change time (ctime, from `meta`) falls in the racy window, so
    /// it may have changed since the build started.
    pub fn is_racy(&self, meta: &fs::Metadata) -> bool {
        Identity::from(meta).ctime_nanos() >= self.racy_from
    }

    /// The files recorded, encoded for [`Used::unchanged`].
    pub fn encode(self) -> Vec<u8> {
        let mut w = Writer::default();
        w.host_files(self.into_files());
        w.buf
    }

    /// Whether every file [`Used::encode`] wrote into `encoded` is as it was: stats
    /// them all, and hashes the racy ones. Corrupt bytes mean no.
    pub fn unchanged(encoded: &[u8]) -> bool {
        let mut r = Reader { buf: encoded };
        match r.host_files() {
            Some(files) if r.buf.is_empty() => files.par_iter().all(HostFile::unchanged),
            _ => false,
        }
    }

    /// Records a program a build runs (a tool whose version can change the bytes) as
    /// running it finds it: a path with a folder as it is, a bare name on `PATH`; and as
    /// the file that resolves to. A program that is not found is not recorded: running
    /// it fails the build anyway.
    pub fn program(&self, program: &Path) {
        let found = if program.components().count() > 1 {
            Some(program.to_path_buf())
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(program))
                    .find(|candidate| candidate.is_file())
            })
        };
        let Some(Ok(real)) = found.map(fs::canonicalize) else {
            return;
        };
        let Ok(identity) = Identity::of(&real) else {
            return;
        };
        self.push(&real, identity, || hash_file(&real).ok());
    }

    fn push(&self, path: &Path, identity: Identity, digest: impl FnOnce() -> Option<blake3::Hash>) {
        let racy = identity.ctime_nanos() >= self.racy_from;
        // A racy file without a digest cannot be checked: the zero identity never matches
        // a real file, so the next check rebuilds.
        let (identity, digest) = match racy.then(digest) {
            None => (identity, None),
            Some(Some(digest)) => (identity, Some(digest)),
            Some(None) => (Identity::default(), None),
        };
        let file = HostFile {
            path: path.to_path_buf(),
            identity,
            digest,
        };
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(file);
    }

    /// The files, sorted by path, each once: as first read (a file read twice that
    /// changed in between then no longer matches, and the next check rebuilds).
    fn into_files(self) -> Vec<HostFile> {
        let mut files = self
            .files
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Stable: among one path's records, the first read stays first.
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|later, first| later.path == first.path);
        files
    }
}

/// The stamp being encoded.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// LEB128.
    fn uint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Zigzag, then LEB128: small magnitudes of either sign take one byte.
    fn int(&mut self, v: i64) {
        self.uint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn optional(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.buf.push(0),
            Some(b) => {
                self.buf.push(1);
                self.bytes(b);
            }
        }
    }

    /// Device, inode and seconds as deltas from `previous`: files read one after the
    /// other mostly share a device and were installed together.
    fn identity(&mut self, id: &Identity, previous: &Identity) {
        self.int(id.dev.wrapping_sub(previous.dev) as i64);
        self.int(id.ino.wrapping_sub(previous.ino) as i64);
        self.uint(id.size);
        self.int(id.mtime.wrapping_sub(previous.mtime));
        self.uint(id.mtime_nsec.into());
        self.int(id.ctime.wrapping_sub(previous.ctime));
        self.uint(id.ctime_nsec.into());
    }

    /// The count, then each file as a delta from the one before.
    fn host_files(&mut self, files: Vec<HostFile>) {
        self.uint(files.len() as u64);
        let mut previous = HostFile::default();
        for file in files {
            self.host_file(&file, &previous);
            previous = file;
        }
    }

    /// The path as the length it shares with the previous path, then the rest.
    fn host_file(&mut self, file: &HostFile, previous: &HostFile) {
        let (path, last) = (
            file.path.as_os_str().as_bytes(),
            previous.path.as_os_str().as_bytes(),
        );
        let shared = path.iter().zip(last).take_while(|(a, b)| a == b).count();
        self.uint(shared as u64);
        self.bytes(&path[shared..]);
        self.identity(&file.identity, &previous.identity);
        self.optional(file.digest.as_ref().map(|d| &d.as_bytes()[..]));
    }
}

/// A stamp being decoded; every read fails (`None`) rather than run past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    fn uint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn int(&mut self) -> Option<i64> {
        let z = self.uint()?;
        Some((z >> 1) as i64 ^ -((z & 1) as i64))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.uint()?).ok()?;
        let (b, rest) = self.buf.split_at_checked(len)?;
        self.buf = rest;
        Some(b)
    }

    fn optional(&mut self) -> Option<Option<&'a [u8]>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }

    /// Skips a request, whatever it asked: the fields [`Stamp::request`] writes.
    fn request(&mut self) -> Option<()> {
        self.bytes()?; // appliance's version
        self.bytes()?; // lock id
        self.bytes()?; // format
        self.optional()?; // its variant
        self.uint()?; // mtime
        self.bytes()?; // sysroot
        self.uint()?; // owner
        Some(())
    }

    fn identity(&mut self, previous: &Identity) -> Option<Identity> {
        Some(Identity {
            dev: previous.dev.wrapping_add(self.int()? as u64),
            ino: previous.ino.wrapping_add(self.int()? as u64),
            size: self.uint()?,
            mtime: previous.mtime.wrapping_add(self.int()?),
            mtime_nsec: u32::try_from(self.uint()?).ok()?,
            ctime: previous.ctime.wrapping_add(self.int()?),
            ctime_nsec: u32::try_from(self.uint()?).ok()?,
        })
    }

    /// What [`Writer::host_files`] wrote.
    fn host_files(&mut self) -> Option<Vec<HostFile>> {
        let count = usize::try_from(self.uint()?).ok()?;
        // Each file takes at least 10 bytes: a count beyond that is corrupt, not a
        // reason to reserve memory.
        let mut files: Vec<HostFile> = Vec::with_capacity(count.min(self.buf.len() / 10));
        let first = HostFile::default();
        for _ in 0..count {
            let file = self.host_file(files.last().unwrap_or(&first))?;
            files.push(file);
        }
        Some(files)
    }

    fn host_file(&mut self, previous: &HostFile) -> Option<HostFile> {
        let last = previous.path.as_os_str().as_bytes();
        let shared = usize::try_from(self.uint()?).ok()?;
        let mut path = last.get(..shared)?.to_vec();
        path.extend_from_slice(self.bytes()?);
        let identity = self.identity(&previous.identity)?;
        let digest = match self.optional()? {
            None => None,
            Some(bytes) => Some(blake3::Hash::from_bytes(bytes.try_into().ok()?)),
        };
        Some(HostFile {
            path: PathBuf::from(std::ffi::OsStr::from_bytes(&path)),
            identity,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::materialise::{Compression, Disk, Tag};

    const TAR: Format = Format::Tar(Compression::Gzip);
    const NEVER_RACY: i128 = i128::MAX;

    /// An output built from two host files, and its stamp.
    struct Built {
        dir: tempfile::TempDir,
        sysroot: PathBuf,
        out: PathBuf,
        stamp: PathBuf,
    }

    impl Built {
        /// Builds with files counted racy from `racy_from`; `digest` gives the content
        /// each host file is recorded with.
        fn new(racy_from: i128, digest: impl Fn(&[u8]) -> blake3::Hash) -> Built {
            let dir = tempfile::tempdir().unwrap();
            let sysroot = dir.path().join("root");
            fs::create_dir(&sysroot).unwrap();
            let used = Used::racy_from(racy_from);
            for (name, content) in [("a", b"hello"), ("b", b"world")] {
                let path = sysroot.join(name);
                fs::write(&path, content).unwrap();
                let meta = fs::symlink_metadata(&path).unwrap();
                used.host_file(&path, &meta, digest(content));
            }
            let out = dir.path().join("out.tar.gz");
            fs::write(&out, b"archive").unwrap();
            let built = Built {
                stamp: dir.path().join(".out.tar.gz.appliance-stamp"),
                dir,
                sysroot,
                out,
            };
            built
                .request()
                .write(&built.stamp, &built.out, used)
                .unwrap();
            built
        }

        fn stat_only() -> Built {
            Built::new(NEVER_RACY, blake3::hash)
        }

        fn request(&self) -> Stamp {
            Stamp::request("id1", &TAR, 7, &self.sysroot)
        }

        fn current(&self) -> bool {
            self.request().is_current(&self.stamp, &self.out)
        }

        fn host(&self, name: &str) -> PathBuf {
            self.sysroot.join(name)
        }
    }

    /// Waits until a file changed now gets another ctime than `path` has, so that a
    /// change is visible to a stat-only check (the racy case is tested apart).
    fn next_tick(path: &Path) {
        let then = Identity::of(path).unwrap().ctime_nanos();
        let probe = path.with_extension("probe");
        loop {
            fs::write(&probe, b"").unwrap();
            if Identity::of(&probe).unwrap().ctime_nanos() > then {
                fs::remove_file(&probe).unwrap();
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn an_unchanged_build_is_current_and_any_other_request_is_not() {
        let b = Built::stat_only();
        assert!(b.current());
        let other_root = b.dir.path().join("other-root");
        for other in [
            Stamp::request("id2", &TAR, 7, &b.sysroot),
            Stamp::request("id1", &Format::Tar(Compression::Xz), 7, &b.sysroot),
            Stamp::request("id1", &Format::Openvz(Compression::Gzip), 7, &b.sysroot),
            Stamp::request("id1", &Format::Chroot, 7, &b.sysroot),
            Stamp::request("id1", &Format::Image(Disk::Raw), 7, &b.sysroot),
            Stamp::request("id1", &Format::Oci(Tag::default()), 7, &b.sysroot),
            Stamp::request("id1", &TAR, 8, &b.sysroot),
            Stamp::request("id1", &TAR, 7, &other_root),
        ] {
            assert!(!other.is_current(&b.stamp, &b.out), "{other:?}");
        }
        // Variants of one format are told apart too.
        let raw = Stamp::request("id1", &Format::Image(Disk::Raw), 7, &b.sysroot);
        let qcow2 = Stamp::request("id1", &Format::Image(Disk::Qcow2), 7, &b.sysroot);
        assert_ne!(raw, qcow2);
        let tagged = |tag| Format::Oci(Tag::parse(tag).unwrap());
        let latest = Stamp::request("id1", &tagged("latest"), 7, &b.sysroot);
        let v1 = Stamp::request("id1", &tagged("v1"), 7, &b.sysroot);
        assert_ne!(latest, v1);
        // Nothing was left beside the stamp.
        let mut names: Vec<_> = fs::read_dir(b.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [".out.tar.gz.appliance-stamp", "out.tar.gz", "root"]);
    }

    #[test]
    fn a_folder_moved_with_out_and_its_stamp_stays_current_and_a_copy_does_not() {
        let b = Built::stat_only();
        let images = b.dir.path().join("images");
        let out = images.join("web");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("disk.raw"), b"disk").unwrap();
        let stamp = |dir: &Path| dir.join(".web.appliance-stamp");
        let request = Stamp::request("id1", &Format::Image(Disk::Raw), 7, &b.sysroot);
        let used = Used::racy_from(NEVER_RACY);
        used.host_file(
            &b.host("a"),
            &fs::symlink_metadata(b.host("a")).unwrap(),
            blake3::hash(b"hello"),
        );
        request.write(&stamp(&images), &out, used).unwrap();
        assert!(request.is_current(&stamp(&images), &out));

        let moved = b.dir.path().join("moved");
        fs::rename(&images, &moved).unwrap();
        assert!(request.is_current(&stamp(&moved), &moved.join("web")));

        // A copy's bytes are not known to be the build's: it is built again.
        let copy = b.dir.path().join("copy");
        fs::create_dir_all(copy.join("web")).unwrap();
        fs::copy(moved.join("web/disk.raw"), copy.join("web/disk.raw")).unwrap();
        fs::copy(stamp(&moved), stamp(&copy)).unwrap();
        assert!(!request.is_current(&stamp(&copy), &copy.join("web")));
    }

    /// Something done to a host file after the build.
    type Change = fn(&Path);

    fn mtime(path: &Path) -> SystemTime {
        fs::metadata(path).unwrap().modified().unwrap()
    }

    fn set_mtime(path: &Path, mtime: SystemTime) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(mtime).unwrap();
    }

    fn rewrite_keeping_mtime(path: &Path) {
        let then = mtime(path);
        fs::write(path, b"HELLO").unwrap();
        set_mtime(path, then);
    }

    fn touch(path: &Path) {
        set_mtime(path, mtime(path) + Duration::from_secs(1));
    }

    fn chmod(path: &Path) {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn replace_by_rename(path: &Path) {
        let new = path.with_extension("new");
        fs::write(&new, b"hello").unwrap();
        set_mtime(&new, mtime(path));
        fs::rename(&new, path).unwrap();
    }

    fn remove(path: &Path) {
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn every_change_to_a_host_file_it_read_rebuilds() {
        let changes: [(&str, Change); 5] = [
            ("content rewritten, mtime kept", rewrite_keeping_mtime),
            ("touched", touch),
            ("chmod", chmod),
            (
                "replaced by rename, same bytes and mtime",
                replace_by_rename,
            ),
            ("removed", remove),
        ];
        for (what, change) in changes {
            let b = Built::stat_only();
            next_tick(&b.host("a"));
            change(&b.host("a"));
            assert!(!b.current(), "{what}");
        }
    }

    #[test]
    fn a_racy_file_is_checked_by_its_content() {
        // Every file counts as racy: the stamp keeps digests and the check hashes.
        let b = Built::new(i128::MIN, blake3::hash);
        assert!(b.current());
        fs::write(b.host("a"), b"HELLO").unwrap();
        assert!(!b.current(), "changed content");

        // Same identity, other content than read: only the hash can tell.
        let b = Built::new(i128::MIN, |_| blake3::hash(b"other"));
        assert!(!b.current());
        // Not racy, the digest is not even kept.
        let b = Built::new(NEVER_RACY, |_| blake3::hash(b"other"));
        assert!(b.current());
    }

    #[test]
    fn a_replaced_or_changed_out_is_not_current() {
        let b = Built::stat_only();
        next_tick(&b.out);
        chmod(&b.out);
        assert!(!b.current(), "chmod OUT");

        let b = Built::stat_only();
        fs::write(b.dir.path().join("other"), b"archive").unwrap();
        fs::rename(b.dir.path().join("other"), &b.out).unwrap();
        assert!(!b.current(), "OUT replaced");

        let b = Built::stat_only();
        Stamp::remove(&b.stamp).unwrap();
        Stamp::remove(&b.stamp).unwrap();
        assert!(!b.stamp.exists());
        assert!(!b.current(), "no stamp");
    }

    #[test]
    fn a_stamp_names_its_object_through_renames_and_chmods_only() {
        let b = Built::stat_only();
        assert!(Stamp::made(&b.stamp, &b.out));
        // A claim for a temporary still names it once renamed to OUT.
        let temp = b.dir.path().join(".out.tar.gz.tmp-1-0");
        fs::write(&temp, b"new archive").unwrap();
        let claim = b.dir.path().join(".out.tar.gz.appliance-claim");
        b.request().claim(&claim, &temp).unwrap();
        next_tick(&temp);
        fs::rename(&temp, &b.out).unwrap();
        chmod(&b.out);
        assert!(Stamp::made(&claim, &b.out));
        assert!(
            !Stamp::made(&b.stamp, &b.out),
            "the old stamp names the old OUT"
        );
        // Another file of the same bytes, or OUT rewritten, is another object.
        let copy = b.dir.path().join("copy");
        fs::copy(&b.out, &copy).unwrap();
        assert!(!Stamp::made(&claim, &copy));
        fs::write(&b.out, b"rewritten").unwrap();
        assert!(!Stamp::made(&claim, &b.out));
        assert!(!Stamp::made(&b.dir.path().join("no stamp"), &b.out));
    }

    #[test]
    fn programs_are_recorded_as_the_file_they_resolve_to() {
        let b = Built::stat_only();
        let used = Used::racy_from(NEVER_RACY);
        used.program(Path::new("sh"));
        used.program(Path::new("surely-no-such-program"));
        let files = used.into_files();
        assert_eq!(files.len(), 1, "{files:?}");
        let sh = &files[0].path;
        assert!(
            sh.is_absolute() && !fs::symlink_metadata(sh).unwrap().is_symlink(),
            "{sh:?}"
        );

        let used = Used::racy_from(NEVER_RACY);
        used.program(&b.host("a"));
        b.request().write(&b.stamp, &b.out, used).unwrap();
        assert!(b.current());
        next_tick(&b.host("a"));
        touch(&b.host("a"));
        assert!(!b.current());
    }

    #[test]
    fn a_file_read_twice_is_kept_as_first_read() {
        let b = Built::stat_only();
        let used = Used::racy_from(NEVER_RACY);
        let path = b.host("a");
        let first = fs::symlink_metadata(&path).unwrap();
        used.host_file(
            &b.host("b"),
            &fs::symlink_metadata(b.host("b")).unwrap(),
            blake3::hash(b"world"),
        );
        used.host_file(&path, &first, blake3::hash(b"hello"));
        next_tick(&path);
        touch(&path);
        used.host_file(
            &path,
            &fs::symlink_metadata(&path).unwrap(),
            blake3::hash(b"hello"),
        );
        let files = used.into_files();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].identity, Identity::from(&first));
        // The file changed during the build: the stamp must not call it current.
        let used = Used::racy_from(NEVER_RACY);
        used.host_file(&path, &first, blake3::hash(b"hello"));
        b.request().write(&b.stamp, &b.out, used).unwrap();
        assert!(!b.current());
    }

    #[test]
    fn a_truncated_or_corrupt_stamp_is_never_current() {
        let b = Built::new(i128::MIN, blake3::hash);
        let good = fs::read(&b.stamp).unwrap();
        for len in 0..good.len() {
            fs::write(&b.stamp, &good[..len]).unwrap();
            assert!(!b.current(), "truncated to {len}");
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            fs::write(&b.stamp, &bad).unwrap();
            assert!(!b.current(), "byte {at} flipped");
        }
        // The JSON stamps of earlier versions.
        fs::write(
            &b.stamp,
            br#"{"lock_id":"id1","format":"tar","variant":"gzip","mtime":7}"#,
        )
        .unwrap();
        assert!(!b.current());
        fs::write(&b.stamp, &good).unwrap();
        assert!(b.current());
    }

    #[test]
    fn a_well_signed_body_of_garbage_is_not_current_either() {
        // The checksum stops accidents; the decoder must also survive any body.
        let b = Built::stat_only();
        let header = b.request().header;
        let mut noise = blake3::Hasher::new().finalize_xof();
        let sign = |body: &[u8]| {
            let mut stamp = MAGIC.to_vec();
            stamp.extend_from_slice(body);
            let sum = blake3::hash(&stamp);
            stamp.extend_from_slice(sum.as_bytes());
            stamp
        };
        let mut bodies = vec![
            // A file count far beyond the bytes that follow.
            [header.clone(), vec![0; 7], vec![0xff; 9], vec![0x01]].concat(),
            // A varint longer than 64 bits.
            [header.clone(), vec![0x80; 12]].concat(),
        ];
        for len in [1, 10, 100, 1000] {
            let mut tail = vec![0; len];
            noise.fill(&mut tail);
            bodies.push([header.clone(), tail].concat());
        }
        for body in bodies {
            assert!(b.request().decode(&sign(&body), &b.out).is_none());
        }
    }
}
