//! The capture stage: the configured tree read back as lock entries.
//!
//! An entry configuration left as the stage wrote it is the staged entry itself, so it
//! keeps its package and its place in the host's files or the package's archive; one
//! that configuration made or changed gets its new metadata and its bytes go to the
//! blob store. What a fresh install leaves that must not be in a template is dropped:
//! secrets (SSH host keys, random seeds, machine ids, which first boot makes), logs with
//! content, and the backups and caches that differ from run to run.
//!
//! The tree is read without following a single link: a hostile script may have left
//! symlinks to anywhere, and they are only entries here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::confine::IdShift;
use crate::io_pool::in_io_pool;
use crate::lock::{FileEntry, FileKind};
use crate::no_follow::{self, CHUNK, read_chunks};
use crate::repo::{BlobStore, RepoError};
use crate::system::SECRETS;

/// Paths configuration writes that no template may carry, with why; and the machine's
/// secrets ([`SECRETS`]: host keys, TLS and rndc keys), made on first boot.
const DROPPED: &[(&str, &str)] = &[
    (
        "/etc/machine-id",
        "made on first boot (the machine files give an empty one)",
    ),
    ("/var/lib/dbus/machine-id", "made on first boot"),
    ("/var/lib/systemd/random-seed", "a secret"),
    (
        "/var/cache/ldconfig/aux-cache",
        "holds inode numbers and times",
    ),
    ("/var/lib/dpkg/*-old", "dpkg's backups"),
    ("/var/cache/debconf/*-old", "debconf's backups"),
    (
        "/etc/{passwd,group,shadow,gshadow,subuid,subgid}-",
        "shadow's backups",
    ),
];

/// The configured tree as lock entries; the bytes of the files configuration made are
/// in the compile's spool.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Captured {
    /// Every entry, sorted by path; the root is not one.
    pub entries: Vec<FileEntry>,
    /// The digest of every file configuration made or changed, each once, sorted: their
    /// bytes are in the spool capture was given, never in memory (a database's first
    /// files alone are hundreds of megabytes).
    pub spooled: Vec<String>,
    /// Those of `spooled` that are text holding a PEM private key.
    pub keys: Vec<String>,
    /// How many entries configuration made, changed and removed.
    pub made: usize,
    /// See `made`.
    pub changed: usize,
    /// See `made`.
    pub removed: usize,
}

/// Why the configured tree could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Reading the tree failed.
    #[error("reading the configured tree at {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A name the lock cannot hold.
    #[error("the configured tree has a name that is not UTF-8 below {parent}")]
    NotUtf8 {
        /// The folder that holds it.
        parent: String,
    },
    /// The bytes of a file configuration made could not be kept in the spool.
    #[error("keeping the bytes configuration made at {path}: {source}")]
    Spool {
        /// The file, as the tree has it.
        path: String,
        /// What the spool said.
        source: Box<RepoError>,
    },
    /// An entry whose owner is no id of the sandbox: only something outside could have
    /// made it.
    #[error("{path} in the configured tree is owned by host id {id}, outside the sandbox's ids")]
    Foreign {
        /// The entry.
        path: String,
        /// Its host uid or gid.
        id: u32,
    },
    /// Entries owned by users or groups the tree's own accounts do not name: the
    /// host's accounts leaking in, or a script's chown to an account it never made.
    #[error(
        "the configured tree has entries owned by ids its own /etc/passwd and /etc/group do not \
         name, which no fresh install of its packages makes: {}",
        strangers.iter().map(Stranger::to_string).collect::<Vec<_>>().join("; ")
    )]
    Strangers {
        /// The first entry of each such id.
        strangers: Vec<Stranger>,
    },
    /// A socket left behind.
    #[error("{path} in the configured tree is a socket, which no output can hold")]
    Socket {
        /// The entry.
        path: String,
    },
}

/// The first entry owned by an id the tree's accounts do not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stranger {
    /// The entry.
    pub path: String,
    /// `user` or `group`.
    pub kind: &'static str,
    /// The id, as the tree has it.
    pub id: u32,
    /// The package that owns the entry; `None` for one configuration made.
    pub package: Option<String>,
}

impl std::fmt::Display for Stranger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owner = match &self.package {
            Some(package) => format!("package {package}"),
            None => "made by configuration".to_string(),
        };
        write!(
            f,
            "{} ({owner}) has {} id {}",
            self.path, self.kind, self.id
        )
    }
}

/// A path as found, before its entry is made.
struct Found {
    path: String,
    host: PathBuf,
    meta: fs::Metadata,
}

/// Reads the tree at `root` (owned by `ids`) back, against `staged`: the entries the
/// stage wrote, sorted by path. The bytes of the files configuration made or changed go
/// to `spool`.
pub fn capture(
    root: &Path,
    ids: IdShift,
    staged: &[FileEntry],
    spool: &BlobStore,
) -> Result<Captured, CaptureError> {
    let dropped = Dropped::new();
    let mut found = Vec::new();
    walk(root, "", &dropped, &mut found)?;
    found.sort_by(|a, b| a.path.cmp(&b.path));
    let accounts = Names::read(root);
    let staged: HashMap<&str, &FileEntry> = staged.iter().map(|e| (e.path.as_str(), e)).collect();

    // Hard links: the first path of a set (in path order) is the file, the rest link to it.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut link_to: Vec<Option<usize>> = vec![None; found.len()];
    for (i, f) in found.iter().enumerate() {
        if f.meta.is_file() && f.meta.nlink() > 1 {
            let key = (f.meta.dev(), f.meta.ino());
            match first_of.get(&key) {
                Some(&first) => link_to[i] = Some(first),
                None => {
                    first_of.insert(key, i);
                }
            }
        }
    }
    let hashed: Vec<Option<Hashed>> = found
        .par_iter()
        .zip(&link_to)
        .map_init(
            || vec![0; CHUNK],
            |buffer, (f, link)| {
                if !f.meta.is_file() || link.is_some() {
                    return Ok(None);
                }
                Hashed::read(&f.host, buffer)
                    .map(Some)
                    .map_err(|source| CaptureError::Io {
                        path: f.host.clone(),
                        source,
                    })
            },
        )
        .collect::<Result<_, _>>()?;
    // The files whose bytes go to the spool, by their place in `found`.
    let mut to_spool = Vec::new();

    let mut captured = Captured::default();
    let mut strangers: BTreeMap<(&str, u32), usize> = BTreeMap::new();
    let mut seen = 0;
    for (i, f) in found.iter().enumerate() {
        if let Some(before) = staged.get(f.path.as_str())
            && unmade_device(before, Some(&f.meta))
        {
            seen += 1;
            captured.entries.push((*before).clone());
            continue;
        }
        let uid = ids.inside(f.meta.uid());
        let gid = ids.inside(f.meta.gid());
        let (Some(uid), Some(gid)) = (uid, gid) else {
            return Err(CaptureError::Foreign {
                path: f.path.clone(),
                id: if uid.is_none() {
                    f.meta.uid()
                } else {
                    f.meta.gid()
                },
            });
        };
        let file_type = f.meta.file_type();
        let mut entry = FileEntry {
            mode: f.meta.mode() & 0o7777,
            uid,
            gid,
            user: accounts.user(uid).unwrap_or_default(),
            group: accounts.group(gid).unwrap_or_default(),
            ..FileEntry::directory(&f.path)
        };
        for (kind, id, known) in [
            ("user", uid, accounts.user(uid)),
            ("group", gid, accounts.group(gid)),
        ] {
            if known.is_none() {
                strangers
                    .entry((kind, id))
                    .or_insert(captured.entries.len());
            }
        }
        if let Some(first) = link_to[i] {
            entry.kind = FileKind::Hardlink;
            entry.target = Some(found[first].path.clone());
        } else if file_type.is_file() {
            let (size, digest) = (hashed[i].as_ref())
                .map(|h| (h.size, h.digest.clone()))
                .unwrap_or_default();
            entry.kind = FileKind::File;
            entry.size = size;
            entry.digest = Some(digest);
            entry.caps = caps(&f.host).map_err(|source| CaptureError::Io {
                path: f.host.clone(),
                source,
            })?;
        } else if file_type.is_dir() {
            entry.kind = FileKind::Dir;
        } else if file_type.is_symlink() {
            entry.kind = FileKind::Symlink;
            let text = fs::read_link(&f.host).map_err(|source| CaptureError::Io {
                path: f.host.clone(),
                source,
            })?;
            entry.target =
                Some(
                    text.into_os_string()
                        .into_string()
                        .map_err(|_| CaptureError::NotUtf8 {
                            parent: f.path.clone(),
                        })?,
                );
        } else if file_type.is_fifo() {
            entry.kind = FileKind::Fifo;
        } else if file_type.is_char_device() || file_type.is_block_device() {
            entry.kind = if file_type.is_char_device() {
                FileKind::Char
            } else {
                FileKind::Block
            };
            let rdev = f.meta.rdev();
            entry.device = Some((libc::major(rdev), libc::minor(rdev)));
        } else {
            return Err(CaptureError::Socket {
                path: f.path.clone(),
            });
        }
        match staged.get(f.path.as_str()) {
            Some(before) => {
                seen += 1;
                if same(before, &entry) {
                    captured.entries.push((*before).clone());
                    continue;
                }
                entry.package = before.package.clone();
                entry.conffile = before.conffile;
                captured.changed += 1;
            }
            None => captured.made += 1,
        }
        if let (FileKind::File, Some(hashed)) = (entry.kind, &hashed[i]) {
            to_spool.push(i);
            if hashed.key {
                captured.keys.push(hashed.digest.clone());
            }
        }
        captured.entries.push(entry);
    }
    if !strangers.is_empty() {
        let strangers = (strangers.into_iter())
            .map(|((kind, id), at)| Stranger {
                path: captured.entries[at].path.clone(),
                kind,
                id,
                package: captured.entries[at].package.clone(),
            })
            .collect();
        return Err(CaptureError::Strangers { strangers });
    }
    in_io_pool(|| {
        to_spool.par_iter().try_for_each_init(
            || vec![0; CHUNK],
            |buffer, &i| {
                let digest = hashed[i].as_ref().map_or("", |h| &h.digest);
                spool_file(spool, &found[i].host, digest, buffer).map_err(|source| {
                    CaptureError::Spool {
                        path: found[i].path.clone(),
                        source: Box::new(source),
                    }
                })
            },
        )
    })?;
    captured.spooled = to_spool
        .iter()
        .filter_map(|&i| Some(hashed[i].as_ref()?.digest.clone()))
        .collect();
    for digests in [&mut captured.spooled, &mut captured.keys] {
        digests.sort_unstable();
        digests.dedup();
    }
    // A stage run as root of a user namespace may not make device nodes; they are the
    // stage's, and no script's to remove.
    let present: HashSet<&str> = found.iter().map(|f| f.path.as_str()).collect();
    let unmade: Vec<FileEntry> = (staged.values())
        .filter(|e| !present.contains(e.path.as_str()) && unmade_device(e, None))
        .map(|e| (*e).clone())
        .collect();
    if !unmade.is_empty() {
        seen += unmade.len();
        captured.entries.extend(unmade);
        captured.entries.sort_by(|a, b| a.path.cmp(&b.path));
    }
    captured.removed = staged.len() - seen;
    Ok(captured)
}

/// Whether `staged` is a device node that the stage could not make (mknod is refused to
/// root of a user namespace): absent (`found` is `None`), or the empty file the
/// confinement binds the host's node on.
fn unmade_device(staged: &FileEntry, found: Option<&fs::Metadata>) -> bool {
    matches!(staged.kind, FileKind::Char | FileKind::Block)
        && found.is_none_or(|meta| meta.is_file() && meta.len() == 0)
}

/// Whether configuration left `before` as it was: everything an output writes agrees.
fn same(before: &FileEntry, now: &FileEntry) -> bool {
    before.kind == now.kind
        && before.mode == now.mode
        && before.uid == now.uid
        && before.gid == now.gid
        && before.size == now.size
        && before.digest == now.digest
        && before.target == now.target
        && before.device == now.device
        && before.caps == now.caps
}

/// Adds the entries below `host` (lock path `path`, empty for the root) to `found`,
/// leaving out what [`DROPPED`] names and the logs with content.
fn walk(
    host: &Path,
    path: &str,
    dropped: &Dropped,
    found: &mut Vec<Found>,
) -> Result<(), CaptureError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CaptureError::Io { path, source }
    };
    for item in fs::read_dir(host).map_err(io(host))? {
        let item = item.map_err(io(host))?;
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| CaptureError::NotUtf8 {
                parent: if path.is_empty() {
                    "/".into()
                } else {
                    path.into()
                },
            })?;
        let child = format!("{path}/{name}");
        let at = item.path();
        let meta = fs::symlink_metadata(&at).map_err(io(&at))?;
        if dropped.paths.is_match(&child)
            || (child.starts_with("/var/log/") && meta.is_file() && meta.len() > 0)
            || (meta.is_symlink() && dropped.is_remade_link(&child, &at, path))
        {
            continue;
        }
        let dir = meta.is_dir();
        found.push(Found {
            path: child.clone(),
            host: at.clone(),
            meta,
        });
        if dir {
            walk(&at, &child, dropped, found)?;
        }
    }
    Ok(())
}

/// What capture leaves out of the tree.
struct Dropped {
    /// The paths of [`DROPPED`] and the machine's [`SECRETS`].
    paths: GlobSet,
    /// Where the secrets' programs make links to them again (see [`Secret`]).
    ///
    /// [`Secret`]: crate::system::Secret
    remade_links: GlobSet,
}

impl Dropped {
    fn new() -> Dropped {
        Dropped {
            paths: globs(dropped_globs()),
            remade_links: globs(remade_globs()),
        }
    }

    /// Whether the link `child`, at `host` in folder `parent` of the tree, is one a
    /// secret's program makes again: `/etc/ssl/certs/<hash>.0`, named for the snakeoil
    /// certificate of the configuring machine's name, would point at nothing. Any other
    /// link to a secret stays (dovecot's to the snakeoil pair), and resolves once the
    /// machine's first boot makes it.
    fn is_remade_link(&self, child: &str, host: &Path, parent: &str) -> bool {
        if !self.remade_links.is_match(child) {
            return false;
        }
        let Ok(target) = fs::read_link(host) else {
            return false;
        };
        let Some(target) = target.to_str() else {
            return false;
        };
        if target.starts_with('/') {
            self.paths.is_match(target)
        } else {
            self.paths.is_match(format!("{parent}/{target}"))
        }
    }
}

/// The globs of [`DROPPED`] and of the machine's [`SECRETS`].
fn dropped_globs() -> impl Iterator<Item = &'static str> {
    let secrets = SECRETS.iter().flat_map(|s| s.paths.iter().copied());
    DROPPED.iter().map(|(glob, _)| *glob).chain(secrets)
}

/// The globs of the links the machine's [`SECRETS`] make again.
fn remade_globs() -> impl Iterator<Item = &'static str> {
    SECRETS.iter().flat_map(|s| s.remade_links.iter().copied())
}

/// One set of `globs`, constants of this program, each checked by the tests.
fn globs<'g>(globs: impl Iterator<Item = &'g str>) -> GlobSet {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        if let Ok(glob) = Glob::new(glob) {
            set.add(glob);
        }
    }
    set.build().unwrap_or_else(|_| GlobSet::empty())
}

/// A regular file of the configured tree, as read once: its size and BLAKE3, and
/// whether it is text holding a private key.
struct Hashed {
    size: u64,
    digest: String,
    key: bool,
}

impl Hashed {
    /// Reads the file at `host`, without following a link, through `buffer`.
    fn read(host: &Path, buffer: &mut [u8]) -> io::Result<Hashed> {
        let mut hasher = blake3::Hasher::new();
        let mut keys = KeyScan::default();
        let size = read_chunks(host, buffer, |chunk| {
            hasher.update(chunk);
            keys.feed(chunk);
            Ok(())
        })?;
        Ok(Hashed {
            size,
            digest: hasher.finalize().to_hex().to_string(),
            key: keys.holds_key(),
        })
    }
}

/// Copies the configured file at `host` into `spool` as the blob `digest` through
/// `buffer`, unless it holds that blob already, checking as it copies that the bytes are
/// still the ones hashed (no script runs any more, so only a fault makes them differ).
fn spool_file(
    spool: &BlobStore,
    host: &Path,
    digest: &str,
    buffer: &mut [u8],
) -> Result<(), RepoError> {
    spool.put_as(digest, |file| {
        let mut hasher = blake3::Hasher::new();
        read_chunks(host, buffer, |chunk| {
            hasher.update(chunk);
            file.write_all(chunk)
        })?;
        if hasher.finalize().to_hex().as_str() == digest {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "{} changed while it was read",
                host.display()
            )))
        }
    })
}

/// Whether a file read in chunks is text that holds a PEM private key: a line
/// `-----BEGIN RSA PRIVATE KEY-----`, `-----BEGIN OPENSSH PRIVATE KEY-----` and so on.
/// Binary files are not taken: compiled Python holds these lines as constants and test
/// data. A line is looked at once its end is read: one split between chunks is kept
/// up to [`KeyScan::LINE`] bytes, and a longer one is taken for no PEM line.
#[derive(Default)]
struct KeyScan {
    /// A NUL byte was read.
    binary: bool,
    /// A complete line held a key's first line.
    found: bool,
    /// The line the chunks read so far end in, up to [`KeyScan::LINE`] bytes.
    line: Vec<u8>,
    /// That line is longer than that.
    overlong: bool,
}

impl KeyScan {
    /// The longest line taken for a PEM line.
    const LINE: usize = 4096;

    /// Takes the next chunk of the file.
    fn feed(&mut self, chunk: &[u8]) {
        if self.binary || memchr::memchr(0, chunk).is_some() {
            self.binary = true;
            return;
        }
        let Some(last) = memchr::memrchr(b'\n', chunk) else {
            self.carry(chunk);
            return;
        };
        // The line an earlier chunk began ends in this one.
        let first = memchr::memchr(b'\n', chunk).unwrap_or(last);
        let whole = if self.line.is_empty() {
            &chunk[..last]
        } else {
            self.carry(&chunk[..first]);
            self.found |= !self.overlong && key_line_in(&self.line);
            self.line.clear();
            self.overlong = false;
            &chunk[(first + 1).min(last)..last]
        };
        self.found |= key_line_in(whole);
        self.carry(&chunk[last + 1..]);
    }

    /// Adds `part` to the line being read.
    fn carry(&mut self, part: &[u8]) {
        let room = Self::LINE.saturating_sub(self.line.len());
        self.overlong |= part.len() > room;
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    /// Whether the file read is text holding a key: its last line counts too.
    fn holds_key(&self) -> bool {
        !self.binary && (self.found || (!self.overlong && key_line_in(&self.line)))
    }
}

/// Whether `lines`, text without a NUL, has a line that begins a PEM private key.
fn key_line_in(lines: &[u8]) -> bool {
    const BEGIN: &[u8] = b"-----BEGIN ";
    memchr::memmem::find_iter(lines, BEGIN).any(|at| {
        let line = &lines[at..];
        let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
        line.trim_ascii_end().ends_with(b"PRIVATE KEY-----")
    })
}

/// The file's capabilities as the lock keeps them (revision 2, which names no user
/// namespace): a script's `setcap` in the sandbox writes revision 3, whose root id is
/// the sandbox's.
fn caps(host: &Path) -> io::Result<Option<String>> {
    let raw = match xattr::get(host, "security.capability") {
        Ok(raw) => raw,
        Err(e) if e.raw_os_error() == Some(libc::ENODATA) => None,
        Err(e) => return Err(e),
    };
    Ok(raw.map(|mut raw| {
        if raw.len() == 24 && raw[3] == 3 {
            raw.truncate(20);
            raw[3] = 2;
        }
        hex::encode(raw)
    }))
}

/// The tree's own account names.
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn read(root: &Path) -> Names {
        let parse = |file: &str| -> HashMap<u32, String> {
            let text = no_follow::read(&root.join(file)).unwrap_or_default();
            String::from_utf8_lossy(&text)
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?;
                    let id = fields.nth(1)?.parse().ok()?;
                    Some((id, name.to_string()))
                })
                .collect()
        };
        Names {
            users: parse("etc/passwd"),
            groups: parse("etc/group"),
        }
    }

    fn user(&self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }

    fn group(&self, gid: u32) -> Option<String> {
        self.groups.get(&gid).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`KeyScan`] makes of `text` read `size` bytes at a time.
    fn scanned(text: &[u8], size: usize) -> bool {
        let mut scan = KeyScan::default();
        text.chunks(size).for_each(|chunk| scan.feed(chunk));
        scan.holds_key()
    }

    #[test]
    fn only_text_with_a_pem_private_key_is_taken_for_one_however_it_is_read() {
        let long = format!("{}\n-----BEGIN RSA PRIVATE KEY-----\n", "x".repeat(10_000));
        let keys = [
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
            "junk\n-----BEGIN PRIVATE KEY-----\r\nMC4C\n",
            "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n-----BEGIN EC PRIVATE KEY-----\n",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----",
            &long[long.len() - 40..],
            &long,
        ];
        let others = [
            "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
            "-----BEGIN PUBLIC KEY-----\nMCow\n",
            "grep 'PRIVATE KEY-----' \"$1\"\n",
            "-----BEGIN \n PRIVATE KEY-----\n",
            "\0\0-----BEGIN RSA PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\n\0",
            "-----BEGIN RSA PRIVATE KEY-----x\n",
            "",
        ];
        // Whole, a byte at a time, and in chunks that split the marker lines anywhere.
        for size in [usize::MAX, 1, 2, 3, 7, 16, 33, 4096] {
            for key in keys {
                assert!(
                    scanned(key.as_bytes(), size),
                    "{size}: {}",
                    key.get(..40).unwrap_or(key)
                );
            }
            for other in others {
                assert!(!scanned(other.as_bytes(), size), "{size}: {other}");
            }
        }
    }

    #[test]
    fn every_dropped_pattern_is_a_glob() {
        for glob in dropped_globs().chain(remade_globs()) {
            assert!(Glob::new(glob).is_ok(), "{glob}");
        }
        let dropped = Dropped::new().paths;
        assert!(dropped.is_match("/etc/ssh/ssh_host_ed25519_key"));
        assert!(dropped.is_match("/etc/dropbear/initramfs/dropbear_rsa_host_key"));
        // Whatever a script does with a placeholder configure puts, it is never locked.
        for placeholder in crate::system::PLACEHOLDERS {
            assert!(dropped.is_match(placeholder), "{placeholder}");
        }
        assert!(dropped.is_match("/etc/ssl/private/ssl-cert-snakeoil.key"));
        assert!(dropped.is_match("/etc/shadow-"));
        assert!(!dropped.is_match("/etc/shadow"));
        // sendmail's key and certificates go; its DH parameters and openssl settings,
        // no secret, stay. Heimdal's realm goes whole, its configuration stays.
        for gone in [
            "/etc/mail/tls/sendmail-common.key",
            "/etc/mail/tls/sendmail-server.crt",
            "/etc/mail/tls/sendmail-client.csr",
            "/var/lib/heimdal-kdc/m-key",
            "/var/lib/heimdal-kdc/heimdal.db",
            "/var/lib/heimdal-kdc/log",
            "/etc/courier/pop3d.pem",
            "/var/lib/quassel/quasselCert.pem",
        ] {
            assert!(dropped.is_match(gone), "{gone}");
        }
        for kept in [
            "/etc/mail/tls/sendmail-common.prm",
            "/etc/mail/tls/sendmail-server.cfg",
            "/etc/mail/tls/starttls.m4",
            "/etc/heimdal-kdc/kdc.conf",
            "/etc/courier/dhparams.pem",
        ] {
            assert!(!dropped.is_match(kept), "{kept}");
        }
    }

    #[test]
    fn only_the_link_a_secrets_program_makes_again_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let dropped = Dropped::new();
        let link = |at: &str, target: &str| {
            let host = dir.path().join(at.replace('/', "_"));
            std::os::unix::fs::symlink(target, &host).unwrap();
            let (parent, _) = at.rsplit_once('/').unwrap();
            dropped.is_remade_link(at, &host, parent)
        };
        assert!(link("/etc/ssl/certs/ce275665.0", "ssl-cert-snakeoil.pem"));
        assert!(link(
            "/etc/ssl/certs/abs.0",
            "/etc/ssl/certs/ssl-cert-snakeoil.pem"
        ));
        assert!(!link("/etc/ssl/certs/02265526.0", "Entrust_Root.pem"));
        // sendmail's, named for the configuring machine's name.
        assert!(link(
            "/etc/ssl/certs/de3029e6.0",
            "/etc/mail/tls/sendmail-server.crt"
        ));
        // Made again on first boot, the secret is there for it.
        assert!(!link(
            "/etc/dovecot/private/dovecot.pem",
            "/etc/ssl/certs/ssl-cert-snakeoil.pem"
        ));
    }
}
