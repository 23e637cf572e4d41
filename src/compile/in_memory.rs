//! The configure stage's scratch in memory: a tmpfs, mounted in a mount namespace of
//! the job's own thread.
//!
//! A staged tree lives only while its scripts run and capture reads it. On disk, that
//! is thousands of inodes written and freed in every compile that configures, and ext4
//! without a journal scans the inodes freed in the last minutes on every create
//! (`find_inode_bit`, `recently_deleted`): the next compile's staging took 0.5 s for
//! base's 3,065 files where a tmpfs takes 0.07 s. In memory nothing reaches the disk,
//! and nothing outlives the job however it ends: the namespace, and the tmpfs with it,
//! go when the thread or the process does, so a compile killed while it configures
//! leaves no mount behind.
//!
//! A tree is staged in memory only when it fits beside the other jobs that may run at
//! once (see [`room_for`]); one whose scripts fill the room is configured again on disk.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::io_pool::io_pool;

/// What the scripts may write beyond the staged tree's own bytes, besides a share of
/// them: their logs, caches and byte-compiled modules.
const HEADROOM: u64 = 256 << 20;

/// How large a tmpfs may grow for a staged tree of `bytes` (with the archives unpacked
/// for it): three times the tree and [`HEADROOM`], if that fits in the share of
/// available memory one of `jobs` running side by side may take, leaving half of it to
/// everything else. `None`: stage on disk.
pub fn room_for(bytes: u64, jobs: usize) -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    room_within(bytes, available(&meminfo)?, jobs as u64)
}

/// [`room_for`], given the memory available and the jobs that may run at once.
fn room_within(bytes: u64, available: u64, jobs: u64) -> Option<u64> {
    let size = bytes.checked_mul(3)?.checked_add(HEADROOM)?;
    (size <= available / 2 / jobs.max(1)).then_some(size)
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

/// Runs `work` on a thread of its own, in a mount namespace of its own whose mounts
/// propagate nowhere, and on a disk-bound pool that thread makes: rayon's global threads
/// live in the process's namespace and would not see what the thread mounts. Fails
/// when the namespace (no `CAP_SYS_ADMIN` over it) or the pool cannot be made.
pub fn isolated<R: Send>(work: impl FnOnce() -> R + Send) -> io::Result<R> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new().name("configure".into());
        let handle = thread.spawn_scoped(scope, || -> io::Result<R> {
            // SAFETY: plain system calls; unsharing the filesystem attributes and the
            // mount namespace is allowed to one thread of many, and touches only it.
            unsafe {
                check(libc::unshare(libc::CLONE_FS | libc::CLONE_NEWNS))?;
                check(libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
            }
            // Not `in_io_pool`, which would run the work on the global pool's threads
            // if a pool of this thread's own could not be made.
            Ok(io_pool().map_err(io::Error::other)?.install(work))
        })?;
        // A job that panicked panics here, as it would have run here.
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A tmpfs mounted at a folder of the calling thread's namespace ([`isolated`]'s), for
/// as long as this lives.
#[derive(Debug)]
pub struct Tmpfs {
    /// Where it is mounted, as the system calls take it.
    at: CString,
}

impl Tmpfs {
    /// Mounts a tmpfs of at most `size` bytes, mode 0700, at `path`, an empty folder.
    pub fn mount(path: &Path, size: u64) -> io::Result<Tmpfs> {
        let at = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
        let options = CString::new(format!("size={size},mode=0700")).map_err(io::Error::other)?;
        // SAFETY: a plain system call on NUL-terminated strings that outlive it.
        check(unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                at.as_ptr(),
                c"tmpfs".as_ptr(),
                // Neither nosuid nor nodev: the tree's own set-id programs and device
                // nodes work as on disk, and the sandbox's bind of the tree, in a user
                // namespace, could not clear flags locked there.
                0,
                options.as_ptr().cast(),
            )
        })?;
        Ok(Tmpfs { at })
    }

    /// Whether what was written left it (nearly) full: a job that failed then may have
    /// failed for room, not for its scripts.
    pub fn is_full(&self) -> bool {
        // SAFETY: statvfs fills the zeroed struct it is given; the path is NUL-terminated.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(self.at.as_ptr(), &mut stat) } != 0 {
            return false;
        }
        let free = stat.f_bavail * stat.f_frsize;
        let size = stat.f_blocks * stat.f_frsize;
        free < (size / 20).max(16 << 20)
    }
}

impl Drop for Tmpfs {
    /// Unmounts it, so that the folder beneath is removed as an empty one; were this
    /// skipped, the namespace's end would unmount it all the same.
    fn drop(&mut self) {
        // SAFETY: a plain system call on a NUL-terminated string.
        unsafe { libc::umount2(self.at.as_ptr(), libc::MNT_DETACH) };
    }
}

/// A system call's result as an [`io::Result`].
fn check(result: libc::c_int) -> io::Result<()> {
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_staged_in_memory_only_when_it_fits_beside_the_other_jobs() {
        const MIB: u64 = 1 << 20;
        // 100 MiB: 556 MiB of room, within a quarter of 8 GiB (two jobs, half kept).
        assert_eq!(
            room_within(100 * MIB, 8192 * MIB, 2),
            Some(300 * MIB + HEADROOM)
        );
        // Not within a quarter of 2 GiB.
        assert_eq!(room_within(100 * MIB, 2048 * MIB, 2), None);
        // Nor when more jobs share the memory.
        assert_eq!(room_within(600 * MIB, 8192 * MIB, 4), None);
        assert_eq!(room_within(u64::MAX, u64::MAX, 1), None);
    }

    #[test]
    fn a_tmpfs_lives_in_its_thread_s_namespace_and_ends_with_it() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("scratch");
        std::fs::create_dir(&at).unwrap();
        let (seen, full) = isolated(|| {
            let tmpfs = Tmpfs::mount(&at, 64 << 20).unwrap();
            assert!(!tmpfs.is_full());
            std::fs::write(at.join("big"), vec![1u8; 50 << 20]).unwrap();
            // Rayon's work runs where the thread mounted.
            let seen = rayon::join(|| at.join("big").exists(), || ()).0;
            (seen, tmpfs.is_full())
        })
        .unwrap();
        assert!(seen && full);
        // Not in the process's namespace, and gone with the thread's.
        assert_eq!(std::fs::read_dir(&at).unwrap().count(), 0);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(at.to_str().unwrap()), "{mounts}");
    }

    #[test]
    fn available_memory_is_read_from_meminfo() {
        let meminfo =
            "MemTotal:       24000000 kB\nMemFree:         100 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(available(meminfo), Some(20_000_000 * 1024));
        assert_eq!(available("MemTotal: 1 kB\n"), None);
        assert_eq!(available("MemAvailable: lots\n"), None);
    }
}
