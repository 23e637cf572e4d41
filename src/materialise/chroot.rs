//! The chroot format: the lock as a directory tree, and the populating of a directory
//! from a plan that the image format's disk staging shares.
//!
//! Directories are made first and kept writable while building; files are copied in
//! parallel (digests checked); then links, fifos and devices; then ownership, modes,
//! capabilities and mtimes, directories last and deepest first so that nothing written
//! afterwards changes a directory's mode or mtime.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::confine::IdShift;
use crate::lock::FileEntry;

use super::output::{Target, TempPath, c_path};
use super::plan::{Body, Item, Plan};
use super::{MaterialiseError, Supply, fetch_each, io_error};
use crate::io_pool::in_io_pool;
use crate::progress::Progress;

/// How much of an entry's metadata [`populate`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metadata {
    /// All the running user can: owners and capabilities as root, devices where mknod is
    /// permitted, each omission a warning.
    AsUser,
    /// Names, content, links, fifos and mtimes only, every entry readable by the running
    /// user: owners, modes, capabilities and devices are the caller's to write by its own
    /// means (an image's disk does, with debugfs), so the tree is the same for any user.
    ContentOnly,
    /// Everything, as root, with every owner shifted: the tree a confined process sees
    /// with the lock's own ids (compile's configure stage). Devices are made where
    /// mknod is permitted, silently skipped where not (root of a user namespace).
    Shifted(IdShift),
}

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
    let made = populate(
        plan,
        supply,
        &temp.path,
        &target.out,
        mtime,
        Metadata::AsUser,
        progress,
        warnings,
    )?;
    Ok((temp, made))
}

/// Writes `plan` into `root`, an existing empty directory, with as much of its metadata
/// as `metadata` says; returns the number of entries made. Errors name `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn populate(
    plan: &Plan,
    supply: &Supply,
    root: &Path,
    out: &Path,
    mtime: libc::time_t,
    metadata: Metadata,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<usize, MaterialiseError> {
    let at = |item: &Item| -> PathBuf { root.join(&item.entry.path[1..]) };
    let content_only = metadata == Metadata::ContentOnly;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = !content_only && unsafe { libc::geteuid() } == 0;
    let shift = match metadata {
        Metadata::Shifted(ids) => ids.base,
        _ => 0,
    };
    let shifted = matches!(metadata, Metadata::Shifted(_));

    progress.phase("copying", plan.items.len(), plan.content_bytes());
    for item in plan.items.iter().filter(|i| matches!(i.body, Body::Dir)) {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(at(item))
            .map_err(|e| io_error(out, "create directory", &item.entry.path, e))?;
        progress.entry(0);
    }

    let files = plan.files();
    in_io_pool(|| {
        fetch_each(
            plan,
            supply,
            &files,
            out,
            progress,
            |item| {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(at(item))
                    .map_err(|e| io_error(out, "create", &item.entry.path, e))
            },
            drop,
        )
    })?;

    // Indices of devices that were not made, so their metadata is not applied.
    let mut skipped = Vec::new();
    for (i, item) in plan.items.iter().enumerate() {
        let path = at(item);
        let made = match item.body {
            Body::Dir | Body::File(_) => continue,
            Body::Symlink(text) => std::os::unix::fs::symlink(text, &path),
            Body::Hardlink { target, .. } => fs::hard_link(at(&plan.items[target]), &path),
            Body::Fifo => make_node(&path, libc::S_IFIFO, 0),
            Body::Device { .. } if content_only => {
                skipped.push(i);
                continue;
            }
            Body::Device {
                block,
                major,
                minor,
            } => {
                let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
                // Tried whatever the uid: CAP_MKNOD decides, and EPERM says it is missing.
                match make_node(&path, kind, libc::makedev(major, minor)) {
                    // A staged tree's devices the stage could not make keep their
                    // locked entries (compile's capture): nothing to warn of.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) && shifted => {
                        skipped.push(i);
                        continue;
                    }
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

    let apply = |path: &Path, entry: &FileEntry, body: &Body, caps: Option<&[u8]>| {
        // mkfs must read everything it copies, whoever runs it.
        let mode = match body {
            Body::Dir if content_only => entry.mode | 0o700,
            _ if content_only => entry.mode | 0o600,
            _ => entry.mode,
        };
        let how = Settle {
            owners: as_root.then_some(shift),
            symlink: matches!(body, Body::Symlink(_)),
            mode,
            caps,
            mtime: entry.mtime.map_or(mtime, libc::time_t::from),
        };
        settle(path, entry, &how, out)
    };
    for (i, item) in plan.items.iter().enumerate() {
        // A hardlink shares its target's inode, which the target's entry sets up.
        if matches!(item.body, Body::Dir | Body::Hardlink { .. }) || skipped.contains(&i) {
            continue;
        }
        if item.caps.is_some() && !as_root && !content_only {
            warnings.push(format!(
                "capabilities of {} not applied: not running as root",
                item.entry.path
            ));
        }
        let caps = item.caps.as_deref().filter(|_| as_root);
        apply(&at(item), item.entry, &item.body, caps)?;
    }
    // Deepest first: a child's changes would otherwise touch its parent's mtime, and a
    // read-only parent would refuse them.
    for item in plan.items.iter().rev() {
        if matches!(item.body, Body::Dir) {
            apply(&at(item), item.entry, &item.body, None)?;
        }
    }
    apply(root, &plan.root, &Body::Dir, None)?;
    Ok(plan.items.len() - skipped.len())
}

/// What [`settle`] applies to one path.
struct Settle<'a> {
    /// Set the owner, shifted by this much (needs root).
    owners: Option<u32>,
    /// The path is a symlink: no mode.
    symlink: bool,
    /// The permission bits to set.
    mode: u32,
    /// `security.capability` to set.
    caps: Option<&'a [u8]>,
    mtime: libc::time_t,
}

/// Applies an entry's owner, mode, capabilities and mtime as `how` says, in the order
/// that keeps them all: chown clears set-id bits and capabilities, so it goes first.
fn settle(
    path: &Path,
    entry: &FileEntry,
    how: &Settle,
    out: &Path,
) -> Result<(), MaterialiseError> {
    let fail = |action, e| io_error(out, action, &entry.path, e);
    if let Some(shift) = how.owners {
        let (uid, gid) = (entry.uid.checked_add(shift), entry.gid.checked_add(shift));
        std::os::unix::fs::lchown(path, uid, gid).map_err(|e| fail("set the owner of", e))?;
    }
    // Linux has no modes on symlinks, and chmod would follow it.
    if !how.symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(how.mode))
            .map_err(|e| fail("set the mode of", e))?;
    }
    if let Some(caps) = how.caps {
        xattr::set(path, "security.capability", caps)
            .map_err(|e| fail("set the capabilities of", e))?;
    }
    set_mtime(path, how.mtime).map_err(|e| fail("set the mtime of", e))
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
