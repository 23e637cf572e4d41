//! The chroot format: the lock as a directory tree.
//!
//! Directories are made first and kept writable while building; files are copied in
//! parallel (digests checked); then links, fifos and devices; then ownership, modes,
//! capabilities and mtimes, directories last and deepest first so that nothing written
//! afterwards changes a directory's mode or mtime.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::lock::FileEntry;

use super::output::{Target, TempPath, c_path};
use super::plan::{Body, Item, Plan};
use super::{MaterialiseError, Supply, fetch_all, io_error};
use crate::progress::Progress;

/// Builds the tree in a temporary beside OUT; returns it and the number of entries made.
pub(super) fn build(
    plan: &Plan,
    supply: &Supply,
    target: &Target,
    mtime: libc::time_t,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<(TempPath, usize), MaterialiseError> {
    let temp = target.temp_dir()?;
    let out = &target.out;
    let root = temp.path.clone();
    let at = |item: &Item| -> PathBuf { root.join(&item.entry.path[1..]) };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;

    progress.phase("copying", plan.items.len(), plan.content_bytes());
    for item in plan.items.iter().filter(|i| matches!(i.body, Body::Dir)) {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(at(item))
            .map_err(|e| io_error(out, "create directory", &item.entry.path, e))?;
        progress.entry(0);
    }

    fetch_all(plan, supply, out, progress, |item| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(at(item))
            .map_err(|e| io_error(out, "create", &item.entry.path, e))
    })?;

    // Indices of devices that could not be made, so their metadata is not applied.
    let mut skipped = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        let path = at(item);
        let made = match item.body {
            Body::Dir | Body::File(_) => continue,
            Body::Symlink(text) => std::os::unix::fs::symlink(text, &path),
            Body::Hardlink { target, .. } => fs::hard_link(at(&plan.items[target]), &path),
            Body::Fifo => make_node(&path, libc::S_IFIFO, 0),
            Body::Device {
                block,
                major,
                minor,
            } => {
                let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
                // Tried whatever the uid: CAP_MKNOD decides, and EPERM says it is missing.
                match make_node(&path, kind, libc::makedev(major, minor)) {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        warnings.push(format!(
                            "device {} ({} {major}:{minor}) not created: {}",
                            item.entry.path,
                            item.entry.kind,
                            if as_root {
                                "mknod is not permitted here"
                            } else {
                                "not running as root"
                            }
                        ));
                        skipped.push(i);
                        continue;
                    }
                    other => other,
                }
            }
        };
        made.map_err(|e| io_error(out, "create", &item.entry.path, e))?;
        progress.entry(0);
    }

    for (i, item) in plan.items.iter().enumerate() {
        // A hardlink shares its target's inode, which the target's entry sets up.
        if matches!(item.body, Body::Dir | Body::Hardlink { .. }) || skipped.contains(&i) {
            continue;
        }
        if item.caps.is_some() && !as_root {
            warnings.push(format!(
                "capabilities of {} not applied: not running as root",
                item.entry.path
            ));
        }
        let caps = item.caps.as_deref().filter(|_| as_root);
        let symlink = matches!(item.body, Body::Symlink(_));
        settle(&at(item), item.entry, symlink, caps, as_root, mtime, out)?;
    }
    // Deepest first: a child's changes would otherwise touch its parent's mtime, and a
    // read-only parent would refuse them.
    for item in plan.items.iter().rev() {
        if matches!(item.body, Body::Dir) {
            settle(&at(item), item.entry, false, None, as_root, mtime, out)?;
        }
    }
    settle(&root, &plan.root, false, None, as_root, mtime, out)?;
    Ok((temp, plan.items.len() - skipped.len()))
}

/// Applies an entry's owner (as root), mode, capabilities and mtime, in the order that
/// keeps them all: chown clears set-id bits and capabilities, so it goes first.
fn settle(
    path: &Path,
    entry: &FileEntry,
    symlink: bool,
    caps: Option<&[u8]>,
    as_root: bool,
    mtime: libc::time_t,
    out: &Path,
) -> Result<(), MaterialiseError> {
    let fail = |action, e| io_error(out, action, &entry.path, e);
    if as_root {
        std::os::unix::fs::lchown(path, Some(entry.uid), Some(entry.gid))
            .map_err(|e| fail("set the owner of", e))?;
    }
    // Linux has no modes on symlinks, and chmod would follow it.
    if !symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(entry.mode))
            .map_err(|e| fail("set the mode of", e))?;
    }
    if let Some(caps) = caps {
        xattr::set(path, "security.capability", caps)
            .map_err(|e| fail("set the capabilities of", e))?;
    }
    set_mtime(path, mtime).map_err(|e| fail("set the mtime of", e))
}

fn make_node(path: &Path, kind: libc::mode_t, device: libc::dev_t) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::mknod(c.as_ptr(), kind | 0o600, device) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets both atime and mtime of `path` itself (never a symlink's target).
fn set_mtime(path: &Path, mtime: libc::time_t) -> io::Result<()> {
    let c = c_path(path)?;
    let time = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: `c` is a NUL-terminated path and `times` two timespecs, both outliving the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
