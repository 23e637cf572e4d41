//! Archive members into lock entries: one reading for every archive the compile takes
//! files from (a `.deb`'s `data.tar`, a tarball overlay, a `.rpm`'s cpio payload).
//!
//! Archives come from pools and folders anyone may write to, so a member is only data:
//! its name is normalised or refused when it could leave the tree ([`member_path`]), its
//! place is checked against the members before it ([`Tree`]), its header becomes a
//! [`FileEntry`] ([`Member`]) and its content is counted and hashed as it is copied
//! ([`copy_checked`]). A refusal is a [`Problem`], said of the member; the caller's error
//! names the archive. Nothing here writes an output or touches a host path: callers hand
//! in a stream.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

use crate::excerpt::excerpt;
use crate::lock::path::{self, PathProblem};
use crate::lock::{FileEntry, FileKind};

/// Read size for member contents.
const BUFFER: usize = 64 * 1024;

/// Why one member of an archive is refused, worded to follow the member's name
/// (``entry `x/../y` has a `..` component``).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A `..` component could climb out of the tree.
    #[error("has a `..` component")]
    ParentComponent,
    /// An absolute name would be written wherever it says.
    #[error("is an absolute name")]
    Absolute,
    /// A NUL byte, which no path or link text can hold.
    #[error("contains a NUL byte")]
    Nul,
    /// Lock paths and link texts are UTF-8.
    #[error("is not valid UTF-8")]
    NotUtf8,
    /// What no lock path may hold: a newline, a name or path too long for a filesystem.
    #[error("{0}")]
    Unholdable(PathProblem),
    /// An archive that gives each path once ([`Repeat::Refused`]) gives this one again.
    #[error("appears twice in the archive")]
    Twice,
    /// An earlier member at an ancestor is not a directory: writing this one would go
    /// through a symlink (perhaps out of the tree) or into a file.
    #[error("would be written through {}, a {kind} of the archive", excerpt(.ancestor))]
    Through {
        /// The ancestor path.
        ancestor: String,
        /// What it is.
        kind: FileKind,
    },
    /// A hard link whose target (as the archive spells it) is not an earlier regular
    /// file of the same archive.
    #[error(
        "is a hard link to `{}`, which is not an earlier regular file of the archive",
        excerpt(.0)
    )]
    BadHardlink(String),
    /// A later member replaces a file that earlier hard links point at.
    #[error("replaces a file that earlier hard links of the archive point at")]
    ReplacesLinked,
    /// A non-directory replaces a directory that earlier members were written into.
    #[error("replaces a directory that earlier entries of the archive are in")]
    ReplacesDirectory,
    /// The root (`./`) is something other than a directory.
    #[error("is the root of the tree but not a directory")]
    RootNotDir,
    /// A member type a lock cannot describe (a GNU volume header, an unknown letter).
    #[error("has unsupported tar entry type {0}")]
    UnsupportedType(String),
    /// A header field does not parse or does not fit.
    #[error("has a bad {0} field in its header")]
    BadHeader(&'static str),
    /// A symlink or hard link without a target.
    #[error("is a link without a target")]
    NoTarget,
    /// The content is shorter than the header says.
    #[error("is truncated: the header says {expected} bytes, {found} are present")]
    Truncated {
        /// Size in the header.
        expected: u64,
        /// Bytes read.
        found: u64,
    },
}

/// The lock path of a member name: `./etc/motd`, `etc/motd` and `etc//motd/` all become
/// `/etc/motd`; `./` and `.` become `/`. Refused: a NUL byte, a name that is not UTF-8,
/// absolute or has a `..` component, and what no lock path may be ([`path::check`]).
pub fn member_path(raw: &[u8]) -> Result<String, Problem> {
    if raw.contains(&0) {
        return Err(Problem::Nul);
    }
    let mut name = std::str::from_utf8(raw).map_err(|_| Problem::NotUtf8)?;
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    if name.starts_with('/') {
        return Err(Problem::Absolute);
    }
    let mut path = String::new();
    for component in name.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if component == ".." {
            return Err(Problem::ParentComponent);
        }
        path.push('/');
        path.push_str(component);
    }
    if path.is_empty() {
        path.push('/');
    }
    path::check(&path).map_err(Problem::Unholdable)?;
    Ok(path)
}

/// One member read from its header: the lock entry it makes (its digest is left for
/// [`copy_checked`]) and a hard link's target as the archive spells it, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Path, kind, mode (`& 0o7777`), ids, the header's owner names, size, link text
    /// (a hard link's target normalised like a name), device numbers.
    pub entry: FileEntry,
    /// A hard link's target as written.
    link: Option<String>,
}

impl Member {
    /// Reads the header of tar member `entry`, whose name [`member_path`] made `path`.
    pub fn from_tar<R: Read>(path: &str, entry: &tar::Entry<'_, R>) -> Result<Member, Problem> {
        let header = entry.header();
        let entry_type = header.entry_type();
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => FileKind::File,
            tar::EntryType::Directory => FileKind::Dir,
            tar::EntryType::Symlink => FileKind::Symlink,
            tar::EntryType::Link => FileKind::Hardlink,
            tar::EntryType::Char => FileKind::Char,
            tar::EntryType::Block => FileKind::Block,
            tar::EntryType::Fifo => FileKind::Fifo,
            other => return Err(Problem::UnsupportedType(format!("{other:?}"))),
        };
        let id = |value: io::Result<u64>, field| {
            (value.ok())
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(Problem::BadHeader(field))
        };
        let name = |value: Result<Option<&str>, _>, field| {
            value
                .map(|v| v.unwrap_or_default().to_string())
                .map_err(|_| Problem::BadHeader(field))
        };
        let device = match kind {
            FileKind::Char | FileKind::Block => {
                match (header.device_major(), header.device_minor()) {
                    (Ok(Some(major)), Ok(Some(minor))) => Some((major, minor)),
                    _ => return Err(Problem::BadHeader("device numbers")),
                }
            }
            _ => None,
        };
        let text = || {
            (entry.link_name_bytes())
                .filter(|l| !l.is_empty())
                .ok_or(Problem::NoTarget)
        };
        let (target, link) = match kind {
            FileKind::Symlink => {
                let raw = text()?;
                // Kept as written, relative or absolute: where it leads is resolved
                // inside the appliance, never on the host.
                if raw.contains(&0) {
                    return Err(Problem::Nul);
                }
                let target = String::from_utf8(raw.into_owned()).map_err(|_| Problem::NotUtf8)?;
                (Some(target), None)
            }
            FileKind::Hardlink => {
                let raw = text()?;
                let shown = String::from_utf8_lossy(&raw).into_owned();
                let target = member_path(&raw).map_err(|_| Problem::BadHardlink(shown.clone()))?;
                (Some(target), Some(shown))
            }
            _ => (None, None),
        };
        Ok(Member {
            entry: FileEntry {
                kind,
                mode: header.mode().map_err(|_| Problem::BadHeader("mode"))? & 0o7777,
                uid: id(header.uid(), "uid")?,
                gid: id(header.gid(), "gid")?,
                user: name(header.username(), "user name")?,
                group: name(header.groupname(), "group name")?,
                size: if kind == FileKind::File {
                    entry.size()
                } else {
                    0
                },
                target,
                device,
                ..FileEntry::directory(path)
            },
            link,
        })
    }
}

/// What an archive does when a later member names a path an earlier one took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// It is refused ([`Problem::Twice`]): a package gives each of its paths once.
    Refused,
    /// The later member replaces the earlier, as GNU tar extracts (an overlay), unless
    /// hard links point at it or a directory with members in it would become something
    /// else.
    Replaces,
}

/// The tree an archive's members build, member by member: what each path is (the latest
/// member there) and which files hard links point at.
#[derive(Debug)]
pub struct Tree {
    /// Sorted, so that what lies below a path is one range, not a scan of them all.
    kinds: BTreeMap<String, FileKind>,
    linked: HashSet<String>,
    repeat: Repeat,
}

impl Tree {
    /// An empty tree whose archive meets repeated paths as `repeat` says.
    pub fn new(repeat: Repeat) -> Tree {
        Tree {
            kinds: BTreeMap::new(),
            linked: HashSet::new(),
            repeat,
        }
    }

    /// The tree a listing describes whole (an rpm header's files), to check members
    /// against with [`Tree::through`].
    pub fn listed<'a>(paths: impl IntoIterator<Item = (&'a str, FileKind)>) -> Tree {
        let mut tree = Tree::new(Repeat::Refused);
        (tree.kinds).extend(paths.into_iter().map(|(p, k)| (p.to_string(), k)));
        tree
    }

    /// Takes `member` into the tree, or says why it cannot be: the root must be a
    /// directory; no member lies below an earlier symlink or other non-directory, nor
    /// takes the place of a directory earlier members are in; a repeated path follows
    /// the tree's [`Repeat`]; a hard link points at an earlier regular file.
    pub fn add(&mut self, member: &Member) -> Result<(), Problem> {
        let Member { entry, link } = member;
        let (path, kind) = (entry.path.as_str(), entry.kind);
        if path == "/" && kind != FileKind::Dir {
            return Err(Problem::RootNotDir);
        }
        self.through(path)?;
        // Earlier members below `path` made it a directory, whether a member named it or
        // only their paths did (`usr/bin/x` before a symlink `usr`).
        if kind != FileKind::Dir && self.has_below(path) {
            return Err(Problem::ReplacesDirectory);
        }
        if self.kinds.contains_key(path) {
            match self.repeat {
                Repeat::Refused => return Err(Problem::Twice),
                Repeat::Replaces if self.linked.contains(path) => {
                    return Err(Problem::ReplacesLinked);
                }
                Repeat::Replaces => {}
            }
        }
        if kind == FileKind::Hardlink {
            let target = entry.target.as_deref().unwrap_or_default();
            if self.kinds.get(target) != Some(&FileKind::File) {
                return Err(Problem::BadHardlink(link.clone().unwrap_or_default()));
            }
            self.linked.insert(target.to_string());
        }
        self.kinds.insert(path.to_string(), kind);
        Ok(())
    }

    /// Refuses `path` when an ancestor of it is something other than a directory.
    pub fn through(&self, path: &str) -> Result<(), Problem> {
        let ancestors =
            (path.match_indices('/').map(|(i, _)| &path[..i])).filter(|a| !a.is_empty());
        for ancestor in ancestors {
            if let Some(&kind) = self.kinds.get(ancestor)
                && kind != FileKind::Dir
            {
                let ancestor = ancestor.to_string();
                return Err(Problem::Through { ancestor, kind });
            }
        }
        Ok(())
    }

    /// Whether some path lies below `path`.
    fn has_below(&self, path: &str) -> bool {
        let below = format!("{path}/");
        (self.kinds.range(below.clone()..).next()).is_some_and(|(p, _)| p.starts_with(&below))
    }
}

/// Why [`copy_checked`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// The archive could not be read (a damaged or cut stream).
    Read(io::Error),
    /// The destination did not take the bytes.
    Write(io::Error),
    /// The member is refused (its content is shorter than its header says).
    Refused(Problem),
}

/// Copies a member's content to `to`, checking it is the `expected` bytes long its
/// header says; returns the content's BLAKE3 (hex).
pub fn copy_checked(
    content: &mut impl Read,
    expected: u64,
    to: &mut dyn Write,
) -> Result<String, CopyError> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut found = 0u64;
    loop {
        let n = match content.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buffer[..n]);
        to.write_all(&buffer[..n]).map_err(CopyError::Write)?;
        found += n as u64;
    }
    if found != expected {
        return Err(CopyError::Refused(Problem::Truncated { expected, found }));
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// A member of a tar stream read by [`walk_tar`].
pub type TarEntry<'a, 'r> = tar::Entry<'a, Stream<Box<dyn Read + 'r>>>;

/// Why a [`walk_tar`] visit stopped.
#[derive(Debug)]
pub enum Stop<E> {
    /// The member is refused.
    Refused(Problem),
    /// Reading the stream failed inside the member.
    Stream(io::Error),
    /// The caller's own error.
    Caller(E),
}

impl<E> From<Problem> for Stop<E> {
    fn from(problem: Problem) -> Stop<E> {
        Stop::Refused(problem)
    }
}

/// For a copy into memory, which cannot fail to take the bytes: a caller whose
/// destination can fail maps [`CopyError::Write`] itself.
impl<E> From<CopyError> for Stop<E> {
    fn from(error: CopyError) -> Stop<E> {
        match error {
            CopyError::Read(e) | CopyError::Write(e) => Stop::Stream(e),
            CopyError::Refused(problem) => Stop::Refused(problem),
        }
    }
}

/// What went wrong in a [`walk_tar`], for the caller to name its archive.
#[derive(Debug)]
pub enum Fault<'w> {
    /// A member is refused.
    Refused {
        /// The member's name as the archive spells it.
        raw: &'w str,
        /// Why.
        problem: Problem,
    },
    /// The stream is damaged, cut, or ends without the end-of-archive blocks.
    Stream {
        /// The name of the last member read in full, if any.
        after: Option<&'w str>,
        /// What the reader or decompressor said.
        source: io::Error,
    },
}

/// Hands every member of the tar stream `input` to `visit` with its lock path
/// ([`member_path`]), skipping pax global headers (they describe the archive, not a
/// path). Then reads the stream to its end, so that a decompressor checks its trailer
/// and checksum, and refuses a stream that ends without its end-of-archive blocks
/// (truncated). Every error is made by `fault`, or is `visit`'s own.
pub fn walk_tar<'r, E>(
    input: Box<dyn Read + 'r>,
    mut visit: impl FnMut(&str, &mut TarEntry<'_, 'r>) -> Result<(), Stop<E>>,
    fault: impl Fn(Fault<'_>) -> E,
) -> Result<(), E> {
    let mut archive = tar::Archive::new(Stream::new(input));
    let mut last: Option<String> = None;
    let stream = |after: &Option<String>, source| {
        fault(Fault::Stream {
            after: after.as_deref(),
            source,
        })
    };
    for entry in archive.entries().map_err(|e| stream(&last, e))? {
        let mut entry = entry.map_err(|e| stream(&last, e))?;
        if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refused = |problem| fault(Fault::Refused { raw: &raw, problem });
        let path = member_path(&entry.path_bytes()).map_err(refused)?;
        match visit(&path, &mut entry) {
            Ok(()) => {}
            Err(Stop::Refused(problem)) => return Err(refused(problem)),
            Err(Stop::Stream(e)) => return Err(stream(&last, e)),
            Err(Stop::Caller(e)) => return Err(e),
        }
        last = Some(raw);
    }
    let mut rest = archive.into_inner();
    if rest.hit_eof() {
        return Err(stream(
            &last,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "it ends without the end-of-archive blocks (truncated?)",
            ),
        ));
    }
    // The tar reader stops at the end-of-archive blocks, before a compressed stream's
    // end: reading on makes the decompressor check its trailer, so a cut or corrupted
    // stream is an error, not silently taken.
    io::copy(&mut rest.inner, &mut io::sink()).map_err(|e| stream(&last, e))?;
    Ok(())
}

/// The stream [`walk_tar`] reads, remembering whether its input ran out: that tells a
/// tarball that ends without its end-of-archive blocks (truncated) from one that has
/// them.
pub struct Stream<R> {
    inner: R,
    hit_eof: bool,
}

impl<R> Stream<R> {
    /// `inner`, read through.
    pub fn new(inner: R) -> Stream<R> {
        Stream {
            inner,
            hit_eof: false,
        }
    }

    /// Whether its input ran out: a tar reader that stopped before that saw the
    /// end-of-archive blocks.
    pub fn hit_eof(&self) -> bool {
        self.hit_eof
    }
}

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_normalised() {
        for (raw, path) in [
            (&b"./"[..], "/"),
            (b".", "/"),
            (b"./usr/bin/", "/usr/bin"),
            (b"usr//./bin/x", "/usr/bin/x"),
            (b"./etc//motd/", "/etc/motd"),
            (b"././a/./b", "/a/b"),
        ] {
            assert_eq!(member_path(raw).unwrap(), path, "{raw:?}");
        }
        for (raw, problem) in [
            (&b"a/.."[..], Problem::ParentComponent),
            (b"./a/../../b", Problem::ParentComponent),
            (b"/etc/passwd", Problem::Absolute),
            (b".//etc/passwd", Problem::Absolute),
            (b"a\0b", Problem::Nul),
            (b"\xff", Problem::NotUtf8),
            (
                b"etc/evil\n/passwd",
                Problem::Unholdable(PathProblem::Newline),
            ),
        ] {
            assert_eq!(member_path(raw).unwrap_err(), problem, "{raw:?}");
        }
        let long = "x".repeat(256);
        assert_eq!(
            member_path(format!("srv/{long}").as_bytes()).unwrap_err(),
            Problem::Unholdable(PathProblem::NameTooLong(long))
        );
    }

    fn member(path: &str, kind: FileKind) -> Member {
        Member {
            entry: FileEntry {
                kind,
                ..FileEntry::directory(path)
            },
            link: None,
        }
    }

    fn hardlink(path: &str, to: &str) -> Member {
        let mut m = member(path, FileKind::Hardlink);
        m.entry.target = member_path(to.as_bytes()).ok();
        m.link = Some(to.to_string());
        m
    }

    /// The problem of the last of `members`, the others taken.
    fn refused(repeat: Repeat, members: &[Member]) -> Problem {
        let mut tree = Tree::new(repeat);
        let (last, first) = members.split_last().unwrap();
        for m in first {
            tree.add(m).unwrap();
        }
        tree.add(last).unwrap_err()
    }

    #[test]
    fn the_tree_rules_hold_whatever_the_archive() {
        use FileKind::{Dir, File, Symlink};
        for repeat in [Repeat::Refused, Repeat::Replaces] {
            let through = |ancestor: &str, kind| Problem::Through {
                ancestor: ancestor.into(),
                kind,
            };
            let cases = [
                (vec![member("/", File)], Problem::RootNotDir),
                (
                    vec![member("/a", Symlink), member("/a/b", File)],
                    through("/a", Symlink),
                ),
                (
                    vec![
                        member("/d", Dir),
                        member("/d/f", File),
                        member("/d/f/g", Dir),
                    ],
                    through("/d/f", File),
                ),
                (
                    vec![hardlink("/h", "./absent")],
                    Problem::BadHardlink("./absent".into()),
                ),
                (
                    vec![member("/d", Dir), hardlink("/h", "d")],
                    Problem::BadHardlink("d".into()),
                ),
                // The fuzzer's overlay: `/usr` is a directory by its members' paths
                // alone when a symlink comes to take its place.
                (
                    vec![
                        member("/usr/bin", Dir),
                        member("/usr/bin/hello", File),
                        member("/usr", Symlink),
                    ],
                    Problem::ReplacesDirectory,
                ),
            ];
            for (members, problem) in cases {
                assert_eq!(refused(repeat, &members), problem, "{repeat:?} {members:?}");
            }
            let mut tree = Tree::new(repeat);
            for m in [member("/", Dir), member("/f", File), hardlink("/h", "./f")] {
                tree.add(&m).unwrap();
            }
        }
    }

    #[test]
    fn a_repeated_path_is_refused_or_replaces_as_the_archive_says() {
        use FileKind::{Dir, File, Symlink};
        let twice = [member("/f", File), member("/f", File)];
        assert_eq!(refused(Repeat::Refused, &twice), Problem::Twice);
        let mut tree = Tree::new(Repeat::Replaces);
        for m in &twice {
            tree.add(m).unwrap();
        }
        // A directory whose members came first may not become something else; `/d0`
        // and `/d.x` sort between `/d` and `/d/` but are not inside it.
        tree.add(&member("/d", Dir)).unwrap();
        tree.add(&member("/d0", File)).unwrap();
        tree.add(&member("/d.x", File)).unwrap();
        tree.add(&member("/d", Symlink)).unwrap();
        let cases = [
            (
                vec![
                    member("/d", Dir),
                    member("/d/x", File),
                    member("/d", Symlink),
                ],
                Problem::ReplacesDirectory,
            ),
            (
                vec![member("/f", File), hardlink("/h", "f"), member("/f", Dir)],
                Problem::ReplacesLinked,
            ),
        ];
        for (members, problem) in cases {
            assert_eq!(refused(Repeat::Replaces, &members), problem, "{members:?}");
        }
    }

    #[test]
    fn a_listing_refuses_members_below_its_non_directories() {
        let tree = Tree::listed([("/usr", FileKind::Dir), ("/usr/lib", FileKind::Symlink)]);
        tree.through("/usr/x").unwrap();
        assert_eq!(
            tree.through("/usr/lib/x/y").unwrap_err(),
            Problem::Through {
                ancestor: "/usr/lib".into(),
                kind: FileKind::Symlink
            }
        );
    }

    /// What [`Member::from_tar`] makes of each header of `headers` (no content).
    fn read_headers(headers: &[tar::Header]) -> Vec<Result<Member, Problem>> {
        let mut builder = tar::Builder::new(Vec::new());
        for h in headers {
            builder.append(h, io::empty()).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        (archive.entries().unwrap())
            .map(|entry| {
                let entry = entry.unwrap();
                let path = member_path(&entry.path_bytes()).unwrap();
                Member::from_tar(&path, &entry)
            })
            .collect()
    }

    fn header(name: &str, kind: tar::EntryType, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(0o104755);
        h.set_uid(33);
        h.set_gid(34);
        h.set_username("www-data").unwrap();
        h.set_groupname("staff").unwrap();
        h.set_size(0);
        h.set_cksum();
        h
    }

    #[test]
    fn headers_become_lock_entries() {
        let mut dev = header("dev/null", tar::EntryType::Char, b"");
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        dev.set_cksum();
        let read = read_headers(&[
            dev,
            header("a", tar::EntryType::Symlink, b"../etc/x"),
            header("h", tar::EntryType::Link, b"./usr//bin/x"),
        ]);
        let entries: Vec<&FileEntry> = read.iter().map(|m| &m.as_ref().unwrap().entry).collect();
        let dev = entries[0];
        assert_eq!(
            (dev.path.as_str(), dev.kind, dev.mode, dev.device),
            ("/dev/null", FileKind::Char, 0o4755, Some((1, 3)))
        );
        assert_eq!(
            (dev.uid, dev.gid, dev.user.as_str(), dev.group.as_str()),
            (33, 34, "www-data", "staff")
        );
        assert_eq!(entries[1].target.as_deref(), Some("../etc/x"));
        assert_eq!(entries[2].target.as_deref(), Some("/usr/bin/x"));
    }

    #[test]
    fn headers_a_lock_cannot_hold_are_refused() {
        // An old (v7) header has no device numbers: a device from it is no device.
        let mut v7 = tar::Header::new_old();
        v7.set_path("dev/x").unwrap();
        v7.set_entry_type(tar::EntryType::Char);
        v7.set_size(0);
        v7.set_mode(0o600);
        v7.set_uid(0);
        v7.set_gid(0);
        v7.set_mtime(0);
        v7.set_cksum();
        let mut latin1 = header("f", tar::EntryType::Regular, b"");
        latin1.as_gnu_mut().unwrap().uname[..4].copy_from_slice(b"j\xf6rg");
        latin1.set_cksum();
        let read = read_headers(&[
            v7,
            latin1,
            header("s", tar::EntryType::Symlink, b""),
            header("n", tar::EntryType::Symlink, b"\xff"),
            header("h", tar::EntryType::Link, b"../../etc/shadow"),
            header("v", tar::EntryType::new(b'V'), b""),
        ]);
        let problems: Vec<Problem> = read.into_iter().map(|m| m.unwrap_err()).collect();
        assert_eq!(
            problems,
            [
                Problem::BadHeader("device numbers"),
                Problem::BadHeader("user name"),
                Problem::NoTarget,
                Problem::NotUtf8,
                Problem::BadHardlink("../../etc/shadow".into()),
                Problem::UnsupportedType(format!("{:?}", tar::EntryType::new(b'V'))),
            ]
        );
    }

    #[test]
    fn copies_are_checked_against_the_header() {
        let mut to = Vec::new();
        let digest = copy_checked(&mut &b"hello"[..], 5, &mut to).unwrap();
        assert_eq!(digest, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(to, b"hello");
        match copy_checked(&mut &b"hel"[..], 5, &mut io::sink()) {
            Err(CopyError::Refused(problem)) => assert_eq!(
                problem,
                Problem::Truncated {
                    expected: 5,
                    found: 3
                }
            ),
            other => panic!("{other:?}"),
        }
    }
}
