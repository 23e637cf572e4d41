//! The tar format: the lock as a reproducible, optionally compressed tarball.
//!
//! Entries follow the lock's path order, named `./usr/bin/bash` (directories with a
//! trailing `/`, the root as `./`), with the lock's owners, names, modes and devices and
//! the run's mtime (or the entry's own, where the lock records the package's), so an
//! unprivileged user writes root-owned entries and two runs give the same bytes. Whatever
//! ustar cannot hold (long names, large ids and sizes, capabilities) goes in PAX records.

use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::mpsc;

use liblzma::stream::{Check, MtStreamBuilder};
use liblzma::write::XzEncoder;
use tar::{EntryType, Header};

use crate::lock::FileEntry;

use super::fetch::{CheckedReader, Drifted, Problem, Restart, Source};
use super::gzip::ParallelGzip;
use super::output::{Target, TempPath};
use super::plan::{Body, Expected, Item, Plan};
use super::{Compression, MaterialiseError, Supply, fetch_each, io_error};
use crate::io_pool::in_io_pool;
use crate::progress::Progress;

/// Writes the archive to a temporary beside OUT, every file checked;
/// returns it and the number of entries written (the root not counted).
pub(super) fn build(
    plan: &Plan,
    supply: &Supply,
    compression: Compression,
    target: &Target,
    mtime: u64,
    progress: &Progress,
) -> Result<(TempPath, usize), MaterialiseError> {
    let (temp, file) = target.temp_file()?;
    let out = &target.out;
    let buffered = BufWriter::with_capacity(1 << 20, file);
    let encoder = Encoder::new(compression, buffered)
        .map_err(|e| io_error(out, "start compressing", temp.path.display(), e))?;
    let (encoder, written) = write(plan, supply, out, encoder, mtime, Devices::Keep, progress)?;

    let finish_err = |e| io_error(out, "finish", temp.path.display(), e);
    let buffered = encoder.finish().map_err(finish_err)?;
    let file = buffered
        .into_inner()
        .map_err(|e| finish_err(e.into_error()))?;
    file.sync_all().map_err(finish_err)?;
    Ok((temp, written))
}

/// What an archive does with the lock's device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Devices {
    /// Writes them as char and block members, as the lock has them.
    Keep,
    /// Leaves them out: for an output whose consumer makes its own `/dev`.
    Omit,
}

/// Writes the lock's tar stream (uncompressed: any compression is `w`'s business) into
/// `w`, every file's bytes checked against the lock. Returns `w`, flushed of the stream,
/// and the number of members written, the root not counted. `out` names OUT in errors.
///
/// Each file is read once: a reader thread reads and checks the files of the next
/// [`Window`] in parallel (a host file that differs falls back to its archive or blob
/// there) while this thread writes the window before, so the compressor never waits
/// on a single-threaded read and hash. Any drift stops the writing and is reported
/// with every other drifted file of the lock.
pub(super) fn write<W: Write>(
    plan: &Plan,
    supply: &Supply,
    out: &Path,
    w: W,
    mtime: u64,
    devices: Devices,
    progress: &Progress,
) -> Result<(W, usize), MaterialiseError> {
    progress.phase("writing", plan.items.len(), plan.content_bytes());
    let leaders = leaders(plan);
    let windows = windows(plan, &leaders);
    let mut archive = Archive {
        builder: tar::Builder::new(w),
        mtime,
        out,
    };
    archive.append(Member::new(&plan.root, EntryType::Directory), None)?;
    let mut written = 0;
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel(1);
        let windows = &windows;
        scope.spawn(move || read_ahead(plan, supply, windows, out, &sender));
        for window in windows {
            // The reader sends every window until it sends an error.
            let Ok(read) = receiver.recv() else {
                return Err(io_error(
                    out,
                    "read",
                    out.display(),
                    io::Error::other("reader stopped"),
                ));
            };
            let mut read = read?.into_iter();
            for i in window.items.clone() {
                let omitted =
                    devices == Devices::Omit && matches!(plan.items[i].body, Body::Device { .. });
                if omitted {
                    progress.entry(0);
                    continue;
                }
                let member = member(plan, &leaders, i);
                let content = match carried(plan, &leaders, i) {
                    Some((_, expected)) => {
                        read.next().map(|(source, held)| (source, held, expected))
                    }
                    None => None,
                };
                let bytes = member.size;
                archive.append(member, content.as_ref().map(Content::of))?;
                written += 1;
                progress.entry(bytes);
            }
        }
        Ok(())
    })?;
    let w = archive
        .builder
        .into_inner()
        .map_err(|e| io_error(out, "finish", out.display(), e))?;
    Ok((w, written))
}

/// Content read ahead of the writer per window, at most: with one window queued and one
/// being read while one is written, the writer holds about three.
const WINDOW_BYTES: u64 = 4 << 20;

/// Files per window, at most, so that small files too are read while others are written.
const WINDOW_FILES: usize = 256;

/// A run of consecutive items whose contents are read together, ahead of the writer.
struct Window {
    /// The items written from this window.
    items: Range<usize>,
    /// The inodes (file items) whose content these items carry, in writing order.
    carried: Vec<(usize, Expected)>,
}

/// Cuts the plan into windows of at most [`WINDOW_BYTES`] read ahead and
/// [`WINDOW_FILES`] files; a file larger than a window is not kept (see [`ReadAhead`]).
fn windows(plan: &Plan, leaders: &[usize]) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut current = Window {
        items: 0..0,
        carried: Vec::new(),
    };
    let mut held = 0;
    for i in 0..plan.items.len() {
        let Some((inode, expected)) = carried(plan, leaders, i) else {
            continue;
        };
        let size = if expected.size <= WINDOW_BYTES {
            expected.size
        } else {
            0
        };
        let full = held + size > WINDOW_BYTES || current.carried.len() == WINDOW_FILES;
        if full && !current.carried.is_empty() {
            current.items.end = i;
            let next = Window {
                items: i..i,
                carried: Vec::new(),
            };
            windows.push(std::mem::replace(&mut current, next));
            held = 0;
        }
        current.carried.push((inode, expected));
        held += size;
    }
    current.items.end = plan.items.len();
    windows.push(current);
    windows
}

/// One file's bytes as the reader leaves them for the writer.
enum ReadAhead {
    /// The bytes, checked.
    Bytes(Vec<u8>),
    /// Checked only, too large to hold: the writer reads the source again, checking it
    /// once more.
    Checked,
}

impl ReadAhead {
    /// Where the reader puts a file of `size` bytes.
    fn for_size(size: u64) -> ReadAhead {
        match usize::try_from(size) {
            Ok(size) if size as u64 <= WINDOW_BYTES => ReadAhead::Bytes(Vec::with_capacity(size)),
            _ => ReadAhead::Checked,
        }
    }
}

impl Write for ReadAhead {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ReadAhead::Bytes(bytes) => bytes.write(buf),
            ReadAhead::Checked => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Restart for ReadAhead {
    fn restart(&mut self) -> io::Result<()> {
        match self {
            ReadAhead::Bytes(bytes) => bytes.restart(),
            ReadAhead::Checked => Ok(()),
        }
    }
}

/// What one window's reading gives the writer: each carried file's source and bytes.
type WindowRead = Result<Vec<(Source, ReadAhead)>, MaterialiseError>;

/// Reads the windows in order into `sender`, stopping at the first error or when the
/// writer is gone. Drift in a window is reported with every later file that drifted.
fn read_ahead(
    plan: &Plan,
    supply: &Supply,
    windows: &[Window],
    out: &Path,
    sender: &mpsc::SyncSender<WindowRead>,
) {
    in_io_pool(|| {
        // The writer counts the entries it writes.
        let quiet = Progress::hidden();
        for (k, window) in windows.iter().enumerate() {
            let hold = |item: &Item| {
                let size = match item.body {
                    Body::File(expected) => expected.size,
                    _ => 0,
                };
                Ok(ReadAhead::for_size(size))
            };
            let mut read = fetch_each(plan, supply, &window.carried, out, &quiet, hold, |h| h);
            if let Err(MaterialiseError::Drift { files, .. }) = &mut read {
                let later: Vec<(usize, Expected)> = (windows[k + 1..].iter())
                    .flat_map(|w| w.carried.iter().copied())
                    .collect();
                let checked =
                    fetch_each(plan, supply, &later, out, &quiet, |_| Ok(io::sink()), drop);
                if let Err(MaterialiseError::Drift { files: more, .. }) = checked {
                    files.extend(more);
                }
                // In path order, as every output reports drift, not in archive order
                // (where a hardlink may carry its target's content early).
                files.sort_by(|a, b| a.path.cmp(&b.path));
            }
            let failed = read.is_err();
            if sender.send(read).is_err() || failed {
                return;
            }
        }
    });
}

/// The inode item `i` writes (itself for a file, its target for a hardlink) and that
/// inode's content, when it is a regular file or a hardlink.
fn inode(plan: &Plan, i: usize) -> Option<(usize, Expected)> {
    match plan.items[i].body {
        Body::File(content) => Some((i, content)),
        Body::Hardlink { target, content } => Some((target, content)),
        _ => None,
    }
}

/// The inode whose content item `i` carries: only the leader of an inode does.
fn carried(plan: &Plan, leaders: &[usize], i: usize) -> Option<(usize, Expected)> {
    inode(plan, i).filter(|&(inode, _)| leaders[inode] == i)
}

/// The member for item `i`: a hardlink to its inode's leader unless it leads.
fn member<'a>(plan: &'a Plan, leaders: &[usize], i: usize) -> Member<'a> {
    let item = &plan.items[i];
    let Some((inode, content)) = inode(plan, i) else {
        return match item.body {
            Body::Symlink(text) => Member {
                link: Some(text.to_string()),
                ..Member::new(item.entry, EntryType::Symlink)
            },
            Body::Device {
                block,
                major,
                minor,
            } => Member {
                device: Some((major, minor)),
                ..Member::new(
                    item.entry,
                    if block {
                        EntryType::Block
                    } else {
                        EntryType::Char
                    },
                )
            },
            Body::Fifo => Member::new(item.entry, EntryType::Fifo),
            _ => Member::new(item.entry, EntryType::Directory),
        };
    };
    // Every path of an inode is written with the inode's metadata: its file entry's.
    let file = &plan.items[inode];
    let base = Member {
        path: &item.entry.path,
        ..Member::new(file.entry, EntryType::Regular)
    };
    let leader = leaders[inode];
    if leader == i {
        Member {
            size: content.size,
            caps: file.caps.as_deref(),
            ..base
        }
    } else {
        Member {
            kind: EntryType::Link,
            link: Some(name(&plan.items[leader].entry.path, false)),
            ..base
        }
    }
}

/// For each file item, the first path (in archive order) of its inode: that path
/// carries the content and the others link to it, since an extractor can only link to
/// a member it has already seen, even when the lock's link points the other way.
fn leaders(plan: &Plan) -> Vec<usize> {
    let mut leaders: Vec<usize> = (0..plan.items.len()).collect();
    for (i, item) in plan.items.iter().enumerate() {
        if let Body::Hardlink { target, .. } = item.body {
            leaders[target] = leaders[target].min(i);
        }
    }
    leaders
}

/// The archive name of a lock path: `./usr/bin/bash`, `./usr/` for a directory, `./`.
fn name(path: &str, dir: bool) -> String {
    if dir && path != "/" {
        format!(".{path}/")
    } else {
        format!(".{path}")
    }
}

/// One archive member before it becomes headers.
struct Member<'a> {
    path: &'a str,
    kind: EntryType,
    meta: &'a FileEntry,
    size: u64,
    link: Option<String>,
    device: Option<(u32, u32)>,
    caps: Option<&'a [u8]>,
}

impl<'a> Member<'a> {
    /// A member at `meta`'s path with its owners and mode, no content.
    fn new(meta: &'a FileEntry, kind: EntryType) -> Member<'a> {
        Member {
            path: &meta.path,
            kind,
            meta,
            size: 0,
            link: None,
            device: None,
            caps: None,
        }
    }
}

/// The tar stream being written, and what every member of it shares.
struct Archive<'o, W: Write> {
    builder: tar::Builder<W>,
    mtime: u64,
    out: &'o Path,
}

impl<W: Write> Archive<'_, W> {
    /// Appends `member` with its content, if it has any.
    fn append(&mut self, member: Member, content: Option<Content>) -> Result<(), MaterialiseError> {
        let path = member.path;
        let write_err = |e| io_error(self.out, "write", path, e);
        let (header, pax) = headers(&member, self.mtime).map_err(write_err)?;
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))
                .map_err(write_err)?;
        }
        let drift = |problem| MaterialiseError::Drift {
            out: self.out.to_path_buf(),
            files: vec![Drifted::new(member.meta, problem, None)],
        };
        let (source, expected) = match content {
            Some(Content::Checked(bytes)) if bytes.len() as u64 == member.size => {
                return self.builder.append(&header, bytes).map_err(write_err);
            }
            Some(Content::Source(source, expected)) => (source, expected),
            // Only an empty member may go without content: anything else would leave
            // a header promising bytes that never come.
            _ if member.size > 0 => return Err(drift(Problem::Missing)),
            _ => return self.builder.append(&header, io::empty()).map_err(write_err),
        };
        let mut reader = CheckedReader::open(source, &expected).map_err(drift)?;
        let written = self.builder.append(&header, &mut reader);
        // A read error is the source's (drift); only then is a failed append not ours.
        if written.is_ok() || reader.failed() {
            reader.finish().map_err(drift)?;
        }
        written.map_err(write_err)
    }
}

/// A member's content as the writer gets it.
enum Content<'a> {
    /// Bytes already checked against the lock.
    Checked(&'a [u8]),
    /// A source that matched the lock once: streamed and checked again while written.
    Source(&'a Path, Expected),
}

impl<'a> Content<'a> {
    /// The content the reader left for a file: its bytes, or its source to read again.
    fn of((source, held, expected): &'a (Source, ReadAhead, Expected)) -> Content<'a> {
        match (held, source) {
            (ReadAhead::Bytes(bytes), _) => Content::Checked(bytes),
            (ReadAhead::Checked, Source::File(path)) => Content::Source(path, *expected),
            // Archive bytes in memory are of small files, which the reader always holds:
            // should one not be, no bytes are left, and the member is reported missing.
            (ReadAhead::Checked, Source::Held) => Content::Checked(&[]),
        }
    }
}

/// PAX records (key, value) to put before a member.
type PaxRecords = Vec<(&'static str, Vec<u8>)>;

/// The ustar header of `member` and the PAX records for what it cannot hold.
fn headers(member: &Member, mtime: u64) -> io::Result<(Header, PaxRecords)> {
    // Largest values of the 8- and 12-byte octal fields.
    const ID_MAX: u64 = 0o7777777;
    const SIZE_MAX: u64 = 0o77777777777;
    let meta = member.meta;
    let mut pax = Vec::new();
    let mut header = Header::new_ustar();
    header.set_entry_type(member.kind);
    header.set_mode(meta.mode);
    header.set_uid(meta.uid.into());
    header.set_gid(meta.gid.into());
    header.set_mtime(meta.mtime_or(mtime));
    header.set_size(member.size);

    let path = name(member.path, member.kind == EntryType::Directory);
    fit(&mut header.as_old_mut().name, &path, "path", &mut pax);
    if let Some(link) = &member.link {
        fit(
            &mut header.as_old_mut().linkname,
            link,
            "linkpath",
            &mut pax,
        );
    }
    // 32 bytes, NUL-terminated unless full; a longer name only goes in PAX, since a
    // truncated one could name another account.
    for (name, key, set) in [
        (
            &meta.user,
            "uname",
            Header::set_username as fn(&mut Header, &str) -> _,
        ),
        (&meta.group, "gname", Header::set_groupname),
    ] {
        if name.len() <= 32 {
            set(&mut header, name)?;
        } else {
            pax.push((key, name.as_bytes().to_vec()));
        }
    }
    for (key, value, max) in [
        ("uid", u64::from(meta.uid), ID_MAX),
        ("gid", u64::from(meta.gid), ID_MAX),
        ("size", member.size, SIZE_MAX),
    ] {
        if value > max {
            pax.push((key, value.to_string().into_bytes()));
        }
    }
    if let Some((major, minor)) = member.device {
        header.set_device_major(major)?;
        header.set_device_minor(minor)?;
    }
    if let Some(caps) = member.caps {
        pax.push(("SCHILY.xattr.security.capability", caps.to_vec()));
    }
    header.set_cksum();
    Ok((header, pax))
}

/// Puts `value` in a fixed header field; when too long, the field keeps a truncated
/// copy and the whole value goes in a PAX record under `key`.
fn fit(field: &mut [u8], value: &str, key: &'static str, pax: &mut PaxRecords) {
    let bytes = value.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
    if bytes.len() > field.len() {
        pax.push((key, bytes.to_vec()));
    }
}

/// The compressor under the tar stream.
pub(super) enum Encoder<W: Write> {
    Plain(W),
    Gzip(ParallelGzip<W>),
    Xz(XzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Starts compressing into `w`, with settings that give the same bytes on any machine.
    pub(super) fn new(compression: Compression, w: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::Plain(w),
            // Fixed blocks compressed in parallel: the same bytes on any core count.
            Compression::Gzip => Encoder::Gzip(ParallelGzip::new(w)?),
            Compression::Xz => {
                // The .xz block size follows the preset, not the thread count, so the
                // output is the same on any machine.
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let stream = MtStreamBuilder::new()
                    .preset(6)
                    .threads(u32::try_from(threads).unwrap_or(1))
                    .check(Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(XzEncoder::new_stream(w, stream))
            }
            Compression::Zstd => {
                // Streaming multithreaded zstd gives the same bytes for any non-zero
                // worker count (zstd issues 2238, 2327), so it takes every core rayon
                // has, as `zstd -T0` does; one worker still differs from none.
                let workers = u32::try_from(rayon::current_num_threads()).unwrap_or(1);
                let mut encoder = zstd::Encoder::new(w, 3)?;
                encoder.multithread(workers.max(1))?;
                encoder.include_checksum(true)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Ends the compressed stream and gives back the writer under it.
    pub(super) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::FileKind;
    use crate::materialise::plan::tests::{entry, file, link, lock_of};

    #[test]
    fn names_mark_directories_and_the_root() {
        assert_eq!(name("/", true), "./");
        assert_eq!(name("/usr", true), "./usr/");
        assert_eq!(name("/usr/bin/x", false), "./usr/bin/x");
    }

    #[test]
    fn the_first_path_of_an_inode_leads() {
        let lock = lock_of(vec![
            link("/a", FileKind::Hardlink, "/m"),
            file("/m", b"m"),
            link("/z", FileKind::Hardlink, "/m"),
            file("/n", b"n"),
        ]);
        let plan = Plan::new(&lock).unwrap();
        // Items: /a /m /n /z; /m's inode is led by /a, /n leads itself.
        assert_eq!(leaders(&plan)[1], 0);
        assert_eq!(leaders(&plan)[2], 2);
    }

    #[test]
    fn what_ustar_cannot_hold_goes_to_pax() {
        let mut meta = file(&format!("/{}", "d".repeat(120)), b"x");
        meta.user = "u".repeat(40);
        meta.uid = 5_000_000;
        let member = Member {
            size: 1,
            link: Some("l".repeat(101)),
            ..Member::new(&meta, EntryType::Regular)
        };
        let (header, pax) = headers(&member, 7).unwrap();
        let keys: Vec<&str> = pax.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["path", "linkpath", "uname", "uid"]);
        assert_eq!(pax[0].1, format!("./{}", "d".repeat(120)).into_bytes());
        assert_eq!(pax[3].1, b"5000000");
        assert_eq!(header.username().unwrap(), Some(""));
        assert_eq!(header.groupname().unwrap(), Some("root"));
        assert_eq!(header.mtime().unwrap(), 7);

        let etc = entry("/etc", FileKind::Dir);
        let short = Member::new(&etc, EntryType::Directory);
        let (header, pax) = headers(&short, 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(header.path_bytes().as_ref(), b"./etc/");
    }

    #[test]
    fn a_package_s_time_for_a_file_beats_the_run_s() {
        let mtime = |meta: &FileEntry| {
            let (header, _) = headers(&Member::new(meta, EntryType::Regular), 7).unwrap();
            header.mtime().unwrap()
        };
        let mut meta = file("/usr/bin/x", b"x");
        assert_eq!(mtime(&meta), 7);
        meta.mtime = Some(1_600_000_000);
        assert_eq!(mtime(&meta), 1_600_000_000);
    }

    #[test]
    fn a_source_that_changed_since_it_was_checked_is_drift() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("x");
        std::fs::write(&source, b"HELLO").unwrap();
        let meta = file("/x", b"hello");
        let expected = Expected {
            size: 5,
            digest: blake3::hash(b"hello"),
        };
        let mut archive = Archive {
            builder: tar::Builder::new(Vec::new()),
            mtime: 0,
            out: Path::new("out.tar"),
        };
        let member = Member {
            size: 5,
            ..Member::new(&meta, EntryType::Regular)
        };
        let err = archive
            .append(member, Some(Content::Source(&source, expected)))
            .unwrap_err();
        let MaterialiseError::Drift { files, .. } = err else {
            panic!("expected drift, got {err}");
        };
        assert_eq!(files[0].path, "/x");
        assert_eq!(files[0].problem, Problem::ContentDiffers);
    }
}
