//! What an output may replace. OUT is replaced only when nothing is there, an empty
//! folder is, or an output appliance made (its stamp or claim names OUT's object);
//! `force` lifts that rule and no other. Never replaced, forced or not: the workspace,
//! the store, the repository and its journals, the sysroot, the blob store, a mount
//! point, anything holding one of those, and any file that is neither regular, a folder
//! nor a symlink. A symlink OUT is replaced as the link: what it points to is never
//! touched, so it is not what the rules look at either.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Target;
use crate::materialise::stamp::Stamp;
use crate::materialise::{MaterialiseError, Sources, io_error};

/// Where the kernel lists this process's mounts.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Paths the caller knows no output may replace or hold, besides the sources' sysroot
/// and blob store.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    /// The workspace folder.
    pub workspace: Option<PathBuf>,
    /// The store folder.
    pub store: Option<PathBuf>,
    /// The repository file; its `-wal`, `-shm` and `-journal` files go with it.
    pub repo: Option<PathBuf>,
}

impl Protected {
    /// Every protected path, with what it is.
    fn paths(&self, sources: &Sources) -> Vec<(&'static str, PathBuf)> {
        let mut paths = vec![
            ("the sysroot", Some(sources.sysroot.clone())),
            ("the blob store", sources.blobs.clone()),
            ("the workspace", self.workspace.clone()),
            ("the store", self.store.clone()),
            ("the repository", self.repo.clone()),
        ];
        if let Some(repo) = &self.repo {
            // SQLite keeps these beside the file while it is open (or was killed): a
            // tarball in their place would be taken for the repository's own journal.
            for (what, suffix) in [
                ("the repository's write-ahead log", "-wal"),
                ("the repository's shared memory", "-shm"),
                ("the repository's journal", "-journal"),
            ] {
                let mut path = repo.clone().into_os_string();
                path.push(suffix);
                paths.push((what, Some(PathBuf::from(path))));
            }
        }
        paths
            .into_iter()
            .filter_map(|(what, path)| Some((what, path?)))
            .collect()
    }
}

/// What is at OUT.
#[derive(Debug, PartialEq, Eq)]
enum Occupant {
    /// A folder with this many entries.
    Folder(usize),
    /// A regular file of this many bytes.
    File(u64),
    /// A symlink to this target.
    Symlink(PathBuf),
    /// A device node, FIFO or socket, named.
    Special(&'static str),
}

impl Occupant {
    /// What `path`, whose metadata (not following a symlink) is `meta`, is.
    fn of(path: &Path, meta: &fs::Metadata) -> io::Result<Occupant> {
        let kind = meta.file_type();
        Ok(if kind.is_dir() {
            Occupant::Folder(fs::read_dir(path)?.count())
        } else if kind.is_file() {
            Occupant::File(meta.len())
        } else if kind.is_symlink() {
            Occupant::Symlink(fs::read_link(path)?)
        } else if kind.is_char_device() {
            Occupant::Special("a character device")
        } else if kind.is_block_device() {
            Occupant::Special("a block device")
        } else if kind.is_fifo() {
            Occupant::Special("a FIFO")
        } else if kind.is_socket() {
            Occupant::Special("a socket")
        } else {
            Occupant::Special("a file of an unknown type")
        })
    }
}

impl fmt::Display for Occupant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Occupant::Folder(1) => write!(f, "a folder with 1 entry"),
            Occupant::Folder(n) => write!(f, "a folder with {n} entries"),
            Occupant::File(1) => write!(f, "a file of 1 byte"),
            Occupant::File(n) => write!(f, "a file of {n} bytes"),
            Occupant::Symlink(target) => write!(f, "a symbolic link to {}", target.display()),
            Occupant::Special(kind) => f.write_str(kind),
        }
    }
}

impl Target {
    /// Refuses to replace OUT unless the module's rules allow it; reads only, so that a
    /// refusal comes before anything is written.
    pub fn check_replace(
        &self,
        sources: &Sources,
        protected: &Protected,
        force: bool,
    ) -> Result<(), MaterialiseError> {
        let never = |reason: String| {
            Err(MaterialiseError::UnsafeOutput {
                out: self.out.clone(),
                reason: format!("{reason}, which materialise never replaces, even with --force"),
            })
        };
        let replaced = resolved(&self.out);
        let hits = protected
            .paths(sources)
            .into_iter()
            .flat_map(|(what, path)| {
                // The path and, when it is a symlink, what it points to: replacing either
                // loses it.
                let kept = [Some(resolved(&path)), fs::canonicalize(&path).ok()];
                kept.into_iter().flatten().map(move |kept| (what, kept))
            });
        // What OUT is says more than what it holds.
        let hit = hits
            .filter(|(_, kept)| kept.starts_with(&replaced))
            .min_by_key(|(_, kept)| *kept != replaced);
        if let Some((what, kept)) = hit {
            let how = if kept == replaced { "is" } else { "holds" };
            return never(format!("it {how} {what} {}", kept.display()));
        }
        let meta = match fs::symlink_metadata(&self.out) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&self.out, "inspect", self.out.display(), e)),
        };
        let occupant = Occupant::of(&self.out, &meta)
            .map_err(|e| io_error(&self.out, "inspect", self.out.display(), e))?;
        if let Occupant::Special(kind) = occupant {
            return never(format!("it is {kind}"));
        }
        if let Some(mount) = mount_at_or_under(&replaced, &meta) {
            return never(if mount == replaced {
                "it is a mount point".to_string()
            } else {
                format!("it holds the mount point {}", mount.display())
            });
        }
        if force || occupant == Occupant::Folder(0) || self.made() {
            return Ok(());
        }
        Err(MaterialiseError::Foreign {
            out: self.out.clone(),
            what: occupant.to_string(),
        })
    }

    /// Whether appliance made what is at OUT: its stamp, or the claim a run writes just
    /// before installing, names OUT's object.
    fn made(&self) -> bool {
        [self.stamp(), self.claim()]
            .iter()
            .any(|stamp| Stamp::made(stamp, &self.out))
    }
}

/// The object replacing `path` would replace: `path` made absolute, with the symlinks
/// of its folders resolved but not a last one (a symlink there is what is replaced).
/// As written when its folder does not exist.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => {
            fs::canonicalize(parent).map_or_else(|_| absolute.clone(), |dir| dir.join(name))
        }
        _ => absolute,
    }
}

/// The mount point that `replaced` (whose metadata is `meta`) is or holds, if any:
/// `replaced` itself when it is on another filesystem than its folder (which needs no
/// mount list), else one the kernel lists at or under it (a bind mount of the same
/// filesystem is seen only there).
fn mount_at_or_under(replaced: &Path, meta: &fs::Metadata) -> Option<PathBuf> {
    let own_device = replaced
        .parent()
        .and_then(|dir| fs::metadata(dir).ok())
        .is_some_and(|dir| dir.dev() != meta.dev());
    if own_device {
        return Some(replaced.to_path_buf());
    }
    let listed = fs::read(MOUNTINFO).unwrap_or_default();
    mount_points(&listed).find(|mount| mount.starts_with(replaced))
}

/// The mount points of a `mountinfo` listing: each line's fifth field, with the
/// kernel's octal escapes (`\040` for a space...) undone.
fn mount_points(listing: &[u8]) -> impl Iterator<Item = PathBuf> + '_ {
    listing.split(|&b| b == b'\n').filter_map(|line| {
        let field = line.split(|&b| b == b' ').nth(4)?;
        let mut path = Vec::with_capacity(field.len());
        let mut i = 0;
        while let Some(&b) = field.get(i) {
            let escaped = field.get(i + 1..i + 4).filter(|_| b == b'\\');
            match escaped.and_then(octal) {
                Some(byte) => {
                    path.push(byte);
                    i += 4;
                }
                None => {
                    path.push(b);
                    i += 1;
                }
            }
        }
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&path)))
    })
}

/// The byte three octal digits stand for.
fn octal(digits: &[u8]) -> Option<u8> {
    digits.iter().try_fold(0u8, |value, &d| {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        value.checked_mul(8)?.checked_add(d - b'0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes_undone() {
        let listing = b"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
            40 22 0:35 / /srv/my\\040data rw - tmpfs tmpfs rw\n\
            41 22 0:36 / /a\\134b\\011c rw - tmpfs tmpfs rw\n";
        let points: Vec<_> = mount_points(listing).collect();
        assert_eq!(
            points,
            [
                PathBuf::from("/"),
                PathBuf::from("/srv/my data"),
                PathBuf::from("/a\\b\tc")
            ]
        );
    }

    #[test]
    fn a_path_is_resolved_through_its_folders_not_its_last_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let real = fs::canonicalize(&real).unwrap();
        assert_eq!(resolved(&dir.path().join("link/out")), real.join("out"));
        assert_eq!(
            resolved(&dir.path().join("link")),
            fs::canonicalize(dir.path()).unwrap().join("link")
        );
        let missing = dir.path().join("no/such/out");
        assert_eq!(resolved(&missing), missing);
    }

    #[test]
    fn occupants_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let of = |name: &str| {
            let path = dir.path().join(name);
            let meta = fs::symlink_metadata(&path).unwrap();
            Occupant::of(&path, &meta).unwrap().to_string()
        };
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/x"), b"").unwrap();
        fs::write(dir.path().join("f"), b"abc").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("l")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        assert_eq!(of("d"), "a folder with 1 entry");
        assert_eq!(of("f"), "a file of 3 bytes");
        assert_eq!(of("l"), "a symbolic link to /etc");
        assert_eq!(of("s"), "a socket");
    }
}
