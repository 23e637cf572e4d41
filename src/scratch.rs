//! Temporaries that a run killed at any moment may leave behind, named and locked so
//! that a later run can tell for sure which ones are stale, and remove them.
//!
//! A temporary is `<stem>.tmp-<pid>-<n>` in the folder where it is used (beside OUT, in
//! a blob shard, in the pool...). Its creator holds an exclusive `flock` on it, through a
//! descriptor of its own, from just after creating it until it is removed or put to use;
//! the kernel drops that lock when the process dies, however it dies.
//!
//! [`remove_stale`] removes a temporary only when all of these hold:
//! - its name is `<stem>.tmp-<pid>-<n>` with a stem the caller claims;
//! - the running user owns it: in a shared folder, other users' files are not ours to judge;
//! - no live process has that pid: a reused pid keeps it, since it might be the creator;
//! - nobody holds its lock: this covers a creator in another PID namespace (a container
//!   writing to the same folder), whose pid means nothing here.
//!
//! A creator checks, once it holds the lock, that the name still holds what it locked:
//! a cleaner that took a just-made, not yet locked temporary for a leftover and removed
//! it only makes the creator pick the next name, never build in a removed folder.
//!
//! [`is_no_space`] tells a full disk, the usual way for filling a temporary to fail,
//! from other write errors, so that callers can say so.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What separates a temporary's stem from its creator's pid and counter.
const TAG: &[u8] = b".tmp-";

/// A temporary file or directory, locked while it lives and removed when dropped unless
/// [`Temp::keep`] says it was put to use.
#[derive(Debug)]
pub(crate) struct Temp {
    /// Where it is.
    pub path: PathBuf,
    dir: bool,
    /// Put to use: not to be removed.
    kept: bool,
    /// Holds the lock that tells cleaners this temporary is alive.
    _lock: File,
}

impl Temp {
    /// Creates a fresh directory `<stem>.tmp-<pid>-<n>` with permissions `mode` in `parent`.
    pub fn dir(parent: &Path, stem: &OsStr, mode: u32) -> io::Result<Temp> {
        let (temp, ()) = create(parent, stem, true, |path| {
            fs::DirBuilder::new().mode(mode).create(path)
        })?;
        Ok(temp)
    }

    /// Creates a fresh file `<stem>.tmp-<pid>-<n>` with permissions `mode` in `parent`,
    /// open for writing.
    pub fn file(parent: &Path, stem: &OsStr, mode: u32) -> io::Result<(Temp, File)> {
        create(parent, stem, false, |path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(path)
        })
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.dir
    }

    /// Leaves whatever is at the path in place (it was renamed into use) and drops the lock.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Nothing to report to: the run already failed with a better error, and a
        // temporary left here is stale once the lock goes, for the next run to remove.
        let _ = remove_tree(&self.path);
    }
}

/// Makes `<stem>.tmp-<pid>-<n>` in `parent` with `make`, for the first `n` free, and
/// locks it.
fn create<T>(
    parent: &Path,
    stem: &OsStr,
    dir: bool,
    make: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<(Temp, T)> {
    // Unique across the threads of this process (counter) and across processes (pid).
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut name = stem.to_os_string();
        name.push(format!(".tmp-{}-{n}", std::process::id()));
        let path = parent.join(name);
        let made = match make(&path) {
            Ok(made) => made,
            // A leftover whose creator had our pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let lock = match open_for_lock(&path) {
            Ok(lock) => lock,
            // A cleaner removed it before we could lock it: take the next name.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = remove_tree(&path);
                return Err(e);
            }
        };
        // Blocks only while a cleaner that got here first removes it. A filesystem
        // without locks refuses: the temporary then goes unlocked, and cleaners, unable
        // to lock it either, leave it alone.
        let _ = lock.lock();
        if same_object(&path, &lock) {
            return Ok((
                Temp {
                    path,
                    dir,
                    kept: false,
                    _lock: lock,
                },
                made,
            ));
        }
    }
}

/// A private directory `<stem>.tmp-<pid>-<n>` in the system's temporary folder
/// (`TMPDIR`), made once the stale ones of the same stem that killed runs left there
/// are removed.
pub(crate) fn private_dir(stem: &str) -> io::Result<Temp> {
    let tmp = std::env::temp_dir();
    remove_stale(&tmp, |found| found == stem);
    Temp::dir(&tmp, OsStr::new(stem), 0o700)
}

/// Opens `path` itself (never a symlink's target) as a descriptor to `flock`.
fn open_for_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Whether `path` is still the object `file` has open.
fn same_object(path: &Path, file: &File) -> bool {
    match (fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Locks `path` if nobody else holds it, for the time the returned file is kept; `None`
/// when it cannot be opened or is locked. Marks a tree the caller is about to move to a
/// temporary's name as in use there.
pub(crate) fn try_hold(path: &Path) -> Option<File> {
    let file = open_for_lock(path).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// Removes the stale temporaries in `dir` whose stem `ours` accepts (see the module
/// documentation for what makes one stale); returns how many went.
///
/// Best effort: a folder that cannot be read, or a leftover that cannot be removed now,
/// never fails the caller's run; the next run tries again.
pub(crate) fn remove_stale(dir: &Path, ours: impl Fn(&OsStr) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((stem, pid)) = parse(&name) else {
            continue;
        };
        if !ours(stem) || is_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() != me {
            continue;
        }
        // Only an old OUT moved here to be removed can be a symlink (a lock cannot be
        // taken on one); its creator is dead, so it is no one's to remove any more.
        if meta.file_type().is_symlink() {
            removed += usize::from(fs::remove_file(&path).is_ok());
            continue;
        }
        let Ok(lock) = open_for_lock(&path) else {
            continue;
        };
        // Held by a live creator, or on a filesystem without locks: not provably stale.
        if lock.try_lock().is_err() {
            continue;
        }
        // Removed while locked, so that a creator racing for the name sees it gone.
        if same_object(&path, &lock) && remove_tree(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The stem and creator pid of a temporary's name `<stem>.tmp-<pid>-<n>`.
fn parse(name: &OsStr) -> Option<(&OsStr, libc::pid_t)> {
    let bytes = name.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let dash = bytes.iter().rposition(|&b| b == b'-')?;
    let (rest, n) = (&bytes[..dash], &bytes[dash + 1..]);
    let tag = rest.windows(TAG.len()).rposition(|w| w == TAG)?;
    let (stem, pid) = (&rest[..tag], &rest[tag + TAG.len()..]);
    if !digits(n) || !digits(pid) {
        return None;
    }
    let pid = std::str::from_utf8(pid).ok()?.parse().ok()?;
    Some((OsStr::from_bytes(stem), pid))
}

/// Whether a process with `pid` exists here (a zombie or another user's counts).
fn is_alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        // Not a process: kill would signal a group. Nothing of ours has such a name.
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes a file or a whole tree, even one whose directories are read-only.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            // A tree built with a lock's modes may hold 0555 directories.
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        other => other,
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// Whether `e` says the filesystem is full, however deep a wrapper (an archive writer's,
/// a compressor's) put the system's error.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::ENOSPC) {
        return true;
    }
    let mut inner = e
        .get_ref()
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    while let Some(cause) = inner {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return is_no_space(io);
        }
        inner = cause.source();
    }
    false
}

/// A pid no process has (past the kernel's maximum), for tests of stale temporaries.
#[cfg(test)]
pub(crate) fn dead_pid() -> u32 {
    let max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1 << 22);
    max + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_parse_back_to_stem_and_pid() {
        let parsed = |name: &str| {
            parse(OsStr::new(name)).map(|(stem, pid)| (stem.to_string_lossy().into_owned(), pid))
        };
        assert_eq!(parsed(".out.tmp-12-3"), Some((".out".into(), 12)));
        assert_eq!(parsed(".a.tmp-b.tmp-7-0"), Some((".a.tmp-b".into(), 7)));
        assert_eq!(parsed(".tmp-1-2"), Some(("".into(), 1)));
        for bad in [
            ".out.tmp-12",
            ".out.tmp--3",
            ".out.tmp-x-3",
            ".out-12-3",
            "out",
        ] {
            assert_eq!(parsed(bad), None, "{bad}");
        }
    }

    #[test]
    fn temporaries_are_removed_on_drop_and_kept_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let temp = Temp::dir(dir.path(), OsStr::new(".out"), 0o700).unwrap();
        fs::create_dir(temp.path.join("ro")).unwrap();
        fs::set_permissions(temp.path.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        assert!(temp.is_dir());
        drop(temp);
        assert!(names(dir.path()).is_empty());

        let (temp, _file) = Temp::file(dir.path(), OsStr::new(".out"), 0o644).unwrap();
        assert!(!temp.is_dir());
        let name = temp
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with(&format!(".out.tmp-{}-", std::process::id())),
            "{name}"
        );
        temp.keep();
        assert_eq!(names(dir.path()), [name]);
    }

    #[test]
    fn only_dead_unlocked_temporaries_of_the_stem_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        for name in [
            format!(".out.tmp-{dead}-0"),
            format!(".other.tmp-{dead}-0"),
            format!(".out.tmp-{}-9", std::process::id()),
            ".out".to_string(),
        ] {
            fs::create_dir(dir.path().join(name)).unwrap();
        }
        let stale_file = format!(".out.tmp-{dead}-1");
        fs::write(dir.path().join(&stale_file), b"partial").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join(format!(".out.tmp-{dead}-2"))).unwrap();
        // A live creator elsewhere (another PID namespace, as far as we can tell): its
        // pid is dead here but it holds the lock.
        let held = format!(".out.tmp-{dead}-3");
        fs::create_dir(dir.path().join(&held)).unwrap();
        let lock = try_hold(&dir.path().join(&held)).unwrap();
        // Ours, alive and locked.
        let live = Temp::dir(dir.path(), OsStr::new(".out"), 0o700).unwrap();

        let removed = remove_stale(dir.path(), |stem| stem == ".out");
        assert_eq!(removed, 3);
        let mut expected = vec![
            ".out".to_string(),
            format!(".other.tmp-{dead}-0"),
            held.clone(),
            format!(".out.tmp-{}-9", std::process::id()),
            live.path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        ];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
        drop(lock);
        assert_eq!(remove_stale(dir.path(), |stem| stem == ".out"), 1);
        assert!(live.path.is_dir(), "a live temporary was removed");
    }

    #[test]
    fn a_temporary_removed_before_it_was_locked_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let removed = std::cell::Cell::new(false);
        // A cleaner that strikes between the creation and the lock.
        let (temp, ()) = create(dir.path(), OsStr::new(".out"), true, |path| {
            fs::create_dir(path)?;
            if !removed.replace(true) {
                fs::remove_dir(path)?;
            }
            Ok(())
        })
        .unwrap();
        assert!(temp.path.is_dir());
        assert_eq!(names(dir.path()).len(), 1);
    }

    #[test]
    fn a_full_disk_is_seen_through_wrappers() {
        let full = || io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_no_space(&full()));
        assert!(is_no_space(&io::Error::other(full())));
        // The tar crate's way: its own error type, the system's error as its source.
        #[derive(Debug, thiserror::Error)]
        #[error("appending")]
        struct Wrapper(#[source] io::Error);
        assert!(is_no_space(&io::Error::other(Wrapper(full()))));
        assert!(!is_no_space(&io::Error::from_raw_os_error(libc::EACCES)));
        assert!(!is_no_space(&io::Error::other(Wrapper(io::Error::other(
            "x"
        )))));
    }
}
