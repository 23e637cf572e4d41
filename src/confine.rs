//! Running code from packages confined to a staged tree.
//!
//! Maintainer scripts are code from packages, and pool archives can come from anywhere,
//! so they never run as the host's root with the host in reach. As mmdebstrap's unshare
//! mode does, a confined command gets namespaces of its own: a user namespace whose ids
//! 0 to 65535 are host ids far above any real account's ([`IdShift`]), a mount namespace
//! whose root is the staged tree (by `pivot_root`, with the old root detached, so no
//! `chroot` trick or `..` leads out), its own PID namespace (it is PID 1 there: nothing
//! outside can be signalled or reached through `/proc/N/root`, and whatever it leaves
//! running dies with it), its own network namespace (no interface but its loopback, up),
//! and its own IPC and UTS namespaces (hostname `localhost`). `/proc` is the namespace's
//! own, `/sys` a read-only sysfs of its network namespace (mmdebstrap's unshare mode,
//! which keeps the host's network, binds the host's instead); `/dev/null`, `zero`, `full`, `random`, `urandom` and `tty` are the host's nodes
//! bound in; `/run` and `/tmp` are fresh tmpfs, so nothing left there reaches the tree.
//! The calls that only push written data to the disk (`fsync`, `sync`...) succeed at once
//! without doing it ([`NO_SYNC`]), as under eatmydata or systemd-nspawn's
//! `--suppress-sync`: the tree is scratch that appliance reads back and stores itself.
//!
//! The staged tree must be owned by the shifted ids (a file of uid 0 inside is host uid
//! `base` on disk); its reader shifts them back.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The device nodes a confined command gets from the host, as mmdebstrap binds them.
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Folders that get a fresh tmpfs, with its mount options: what a script leaves there is
/// not part of the tree.
pub const EPHEMERAL: [(&str, &str); 2] = [("run", "mode=0755"), ("tmp", "mode=1777")];

/// The system calls a confined command makes that return success without running: each
/// only waits for written data to reach the disk, and dpkg alone makes hundreds of them
/// configuring a small group (its database, after every package's step).
pub const NO_SYNC: [libc::c_long; 6] = [
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_sync_file_range,
    libc::SYS_msync,
];

/// The kernel's name for this build's system call convention (`AUDIT_ARCH_*`), which a
/// seccomp filter checks before it trusts a call's number; `None` where [`NO_SYNC`] is
/// not filtered.
const AUDIT_ARCH: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(0xc000_003e)
} else if cfg!(target_arch = "aarch64") {
    Some(0xc000_00b7)
} else {
    None
};

/// The seccomp program that makes [`NO_SYNC`] return 0: calls of another convention
/// (a 32-bit program's) and every other call pass untouched.
fn no_sync_filter() -> Vec<libc::sock_filter> {
    let Some(arch) = AUDIT_ARCH else {
        return Vec::new();
    };
    let op = |code: u32, k: u32, jt: usize, jf: usize| libc::sock_filter {
        code: code as u16,
        jt: jt as u8,
        jf: jf as u8,
        k,
    };
    let (load, jump_eq, ret) = (
        libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
        libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
        libc::BPF_RET | libc::BPF_K,
    );
    // seccomp_data: the call's number at offset 0, its convention at 4.
    let calls = NO_SYNC.len();
    let mut program = vec![op(load, 4, 0, 0), op(jump_eq, arch, 0, calls + 1)];
    program.push(op(load, 0, 0, 0));
    for (i, call) in NO_SYNC.iter().enumerate() {
        // A match jumps over the remaining tests and the allow to the no-op return.
        program.push(op(jump_eq, *call as u32, calls - i, 0));
    }
    program.push(op(ret, libc::SECCOMP_RET_ALLOW, 0, 0));
    program.push(op(ret, libc::SECCOMP_RET_ERRNO, 0, 0));
    program
}

/// How ids inside a confined command map to host ids: inside id `i` is host id `base + i`
/// for `i < SPAN`. Nothing on the host owns ids that high, so a process that got out
/// would be nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    /// The host id of the inside's root.
    pub base: u32,
}

impl IdShift {
    /// How many ids the inside has: every id a Debian system uses (system, user and
    /// `nobody` 65534).
    pub const SPAN: u32 = 65536;

    /// The shift every compile uses: the lock never depends on it, but a fixed one keeps
    /// the staged trees' on-disk owners the same from run to run.
    pub const DEFAULT: IdShift = IdShift { base: 1 << 30 };

    /// The host id of inside id `id`, if the inside has it.
    pub fn outside(self, id: u32) -> Option<u32> {
        (id < Self::SPAN).then(|| self.base + id)
    }

    /// The inside id of host id `id`, if it is one of the inside's.
    pub fn inside(self, id: u32) -> Option<u32> {
        id.checked_sub(self.base).filter(|i| *i < Self::SPAN)
    }
}

/// Why a confined command could not run.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A caller other than root has no subordinate ids to give the namespace's users.
    #[error(
        "running package scripts confined as {user} needs {} subordinate user and group ids \
         for the namespace's accounts, and {problem}: add a line `{user}:100000:{}` to \
         /etc/subuid and /etc/subgid (`usermod --add-subuids 100000-165535 --add-subgids \
         100000-165535 {user}`), install newuidmap and newgidmap (Debian's uidmap), or \
         compile as root",
        IdShift::SPAN,
        IdShift::SPAN
    )]
    NoSubordinateIds {
        /// The caller's user name (or uid).
        user: String,
        /// What is missing.
        problem: String,
    },
    /// The kernel refused a namespace or a mount the confinement needs.
    #[error(
        "cannot confine package scripts: {step}: {source} (the kernel must allow user, mount, \
         PID and network namespaces: check user.max_user_namespaces and, on Debian kernels, \
         kernel.unprivileged_userns_clone; inside a container, its seccomp profile)"
    )]
    Refused {
        /// What was being set up.
        step: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The confined command ran past its time.
    #[error("{what} did not finish within {} s and was killed", .limit.as_secs())]
    TimedOut {
        /// The command.
        what: String,
        /// Its time limit.
        limit: Duration,
    },
    /// Preparing the tree or the log failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A command to run confined in a staged tree.
pub struct Confined<'a> {
    /// The staged tree, owned by the shifted ids.
    pub root: &'a Path,
    /// The id mapping the tree is owned by.
    pub ids: IdShift,
    /// The program, as a path inside the tree, and its arguments.
    pub argv: &'a [&'a str],
    /// The whole environment of the command.
    pub env: &'a [(&'a str, &'a str)],
    /// Where its standard output and error go.
    pub log: &'a Path,
    /// How long it may take.
    pub limit: Duration,
}

/// What a confined command did.
#[derive(Debug)]
pub struct Ran {
    /// Its exit code; 128 + N for death by signal N.
    pub code: i32,
}

impl Confined<'_> {
    /// Runs the command confined and waits for it (and everything it started) to end.
    pub fn run(&self) -> Result<Ran, ConfineError> {
        // Outside root, only a process that is root of a user namespace of its own
        // (made by [`Subordinate::run_as_root`]) can map the inside's ids.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Subordinate::of_caller().err().unwrap_or_else(|| {
                ConfineError::NoSubordinateIds {
                    user: caller_name(),
                    problem: "this process is not root of a user namespace".into(),
                }
            }));
        }
        self.prepare_mount_points()?;
        let log = File::create(self.log).map_err(|source| ConfineError::Io {
            path: self.log.to_path_buf(),
            source,
        })?;
        let err_log = log.try_clone().map_err(|source| ConfineError::Io {
            path: self.log.to_path_buf(),
            source,
        })?;
        let setup = Setup::new(self.root)?;
        let mut command = Command::new(self.argv[0]);
        command
            .args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log));
        let maps = Maps::Direct(self.ids);
        let limit = self.limit;
        // SAFETY: `Setup::enter` makes only async-signal-safe system calls on data
        // prepared before the fork.
        let (status, mapped) = unsafe {
            spawn_mapped(
                &mut command,
                maps,
                Some(limit),
                move |fds| setup.enter(fds),
                |mut child| child.wait(),
            )
        }?;
        let what = self.argv[0].to_string();
        match mapped {
            Err(source) => Err(ConfineError::Refused {
                step: "writing the id maps".into(),
                source,
            }),
            Ok(Outcome::Killed) => Err(ConfineError::TimedOut { what, limit }),
            Ok(Outcome::Finished) => {
                let status = status.map_err(|source| ConfineError::Refused {
                    step: format!("starting {what}"),
                    source,
                })?;
                use std::os::unix::process::ExitStatusExt;
                let code = status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(255);
                Ok(Ran { code })
            }
        }
    }

    /// Makes sure the device nodes and tmpfs folders have something to mount on.
    fn prepare_mount_points(&self) -> Result<(), ConfineError> {
        let io = |path: PathBuf| move |source| ConfineError::Io { path, source };
        let dev = self.root.join("dev");
        std::fs::create_dir_all(&dev).map_err(io(dev.clone()))?;
        for name in DEVICES {
            let at = dev.join(name);
            if std::fs::symlink_metadata(&at).is_err() {
                File::create(&at).map_err(io(at.clone()))?;
            }
        }
        for name in EPHEMERAL
            .iter()
            .map(|(name, _)| *name)
            .chain(["proc", "sys"])
        {
            let at = self.root.join(name);
            if !at.is_dir() {
                std::fs::create_dir_all(&at).map_err(io(at.clone()))?;
            }
        }
        Ok(())
    }
}

/// How the mapping thread ended.
enum Outcome {
    Finished,
    Killed,
}

/// How a child's id maps are written.
enum Maps {
    /// By this process, root of the namespace above the child's: inside ids `0..SPAN`
    /// are the shift's.
    Direct(IdShift),
    /// By newuidmap and newgidmap, for a caller that is not root: the caller is the
    /// child's root, and the shift's ids are the caller's subordinate ones.
    Subordinate(Subordinate, IdShift),
}

impl Maps {
    fn write(&self, pid: i32) -> io::Result<()> {
        match self {
            Maps::Direct(ids) => {
                let map = format!("0 {} {}\n", ids.base, IdShift::SPAN);
                for file in ["uid_map", "gid_map"] {
                    std::fs::write(format!("/proc/{pid}/{file}"), &map)?;
                }
                Ok(())
            }
            Maps::Subordinate(sub, ids) => {
                let pid = pid.to_string();
                let span = IdShift::SPAN.to_string();
                for (helper, own, first) in [
                    ("newuidmap", sub.uid, sub.first_uid),
                    ("newgidmap", sub.gid, sub.first_gid),
                ] {
                    let (own, first, base) =
                        (own.to_string(), first.to_string(), ids.base.to_string());
                    let out = Command::new(helper)
                        .args([&pid, "0", &own, "1", &base, &first, &span])
                        .output()?;
                    if !out.status.success() {
                        return Err(io::Error::other(format!(
                            "{helper}: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}

/// Spawns `command`, whose child `enter`s its namespaces through the handshake and waits
/// for its id maps; another thread writes them with `maps` (the spawning one is blocked
/// until the child execs) and kills the child when `limit` passes. Returns what `wait`
/// made of the child and how the mapping ended.
///
/// # Safety
/// `enter` runs in the forked child before exec: it must make only async-signal-safe
/// system calls, on data prepared before the fork.
unsafe fn spawn_mapped<T>(
    command: &mut Command,
    maps: Maps,
    limit: Option<Duration>,
    mut enter: impl FnMut(Handshake) -> io::Result<()> + Send + Sync + 'static,
    wait: impl FnOnce(std::process::Child) -> io::Result<T>,
) -> Result<(io::Result<T>, io::Result<Outcome>), ConfineError> {
    let (ready_read, ready_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let fds = Handshake {
        ready: ready_write.as_raw_fd(),
        go: go_read.as_raw_fd(),
        ready_other: ready_read.as_raw_fd(),
        go_other: go_write.as_raw_fd(),
    };
    // SAFETY: as the caller promises; `close_inherited_writers` makes only system calls.
    unsafe {
        command.pre_exec(move || {
            close_inherited_writers();
            enter(fds)
        });
    }
    let (done, finished) = mpsc::channel::<()>();
    let mapper = std::thread::spawn(move || map_ids(ready_read, go_write, maps, limit, finished));
    let spawned = command.spawn();
    drop(ready_write);
    drop(go_read);
    let waited = spawned.and_then(wait);
    let _ = done.send(());
    Ok((waited, mapper.join().unwrap_or(Ok(Outcome::Finished))))
}

/// In the forked child: closes the regular files it holds open for writing (from fd 3,
/// past stdio), which the fork copied from the parent. Another thread may be writing a
/// tree whose scripts exec those files, and exec fails with ETXTBSY while any process
/// holds one open for writing: this one would, for as long as its confined command
/// runs, since the process that waits for the namespace's PID 1 never execs. Pipes
/// (the handshake's, the spawn's own) stay.
///
/// # Safety
/// Only system calls on this process's descriptors; to be called after the fork.
unsafe fn close_inherited_writers() {
    // SAFETY: plain system calls on descriptor numbers and a local buffer.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let top = match libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) {
            0 => limit.rlim_cur.min(1 << 16),
            _ => 1024,
        };
        for fd in 3..top as libc::c_int {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags == -1 || flags & libc::O_ACCMODE == libc::O_RDONLY {
                continue;
            }
            let mut stat: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFREG {
                libc::close(fd);
            }
        }
    }
}

/// Reads the unshared child's pid, writes its id maps, lets it go, and kills it when
/// `limit` passes before `finished` says it ended.
fn map_ids(
    ready: OwnedFd,
    go: OwnedFd,
    maps: Maps,
    limit: Option<Duration>,
    finished: mpsc::Receiver<()>,
) -> io::Result<Outcome> {
    let mut ready = File::from(ready);
    let mut pid = [0u8; 4];
    if ready.read_exact(&mut pid).is_err() {
        // The child failed before unsharing; spawn reports why.
        return Ok(Outcome::Finished);
    }
    let pid = i32::from_ne_bytes(pid);
    maps.write(pid)?;
    File::from(go).write_all(b"g")?;
    let Some(limit) = limit else {
        return Ok(Outcome::Finished);
    };
    match finished.recv_timeout(limit) {
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // SAFETY: kill has no memory preconditions; the pid is our own child, which
            // cannot have been reaped while the spawning thread still waits for it.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            Ok(Outcome::Killed)
        }
        _ => Ok(Outcome::Finished),
    }
}

/// A caller's subordinate ids (`/etc/subuid`, `/etc/subgid`): what a user other than
/// root gives a user namespace's accounts, as mmdebstrap's unshare mode does.
#[derive(Debug, Clone, Copy)]
pub struct Subordinate {
    uid: u32,
    gid: u32,
    first_uid: u32,
    first_gid: u32,
}

impl Subordinate {
    /// The calling user's ranges of at least [`IdShift::SPAN`] ids, and the helpers to
    /// map them.
    pub fn of_caller() -> Result<Subordinate, ConfineError> {
        // SAFETY: getuid and getgid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let user = caller_name();
        let missing = |problem: String| ConfineError::NoSubordinateIds {
            user: user.clone(),
            problem,
        };
        let first = |file: &str| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            (text.lines())
                .filter_map(|line| {
                    let mut fields = line.trim().split(':');
                    let (who, start, count) = (fields.next()?, fields.next()?, fields.next()?);
                    let ours = who == user || who.parse() == Ok(uid);
                    let (start, count) = (start.parse::<u32>().ok()?, count.parse::<u32>().ok()?);
                    (ours && count >= IdShift::SPAN).then_some(start)
                })
                .next()
                .ok_or_else(|| missing(format!("{file} gives it no range of that size")))
        };
        let sub = Subordinate {
            uid,
            gid,
            first_uid: first("/etc/subuid")?,
            first_gid: first("/etc/subgid")?,
        };
        for helper in ["newuidmap", "newgidmap"] {
            if Command::new(helper).output().is_err() {
                return Err(missing(format!("{helper} is not installed")));
            }
        }
        Ok(sub)
    }

    /// Spawns `command` in a user namespace of its own where the caller is root and the
    /// ids of `ids` are the caller's subordinate ones, so that it can stage, confine and
    /// read a tree as root does; waits for it and returns its output.
    pub fn run_as_root(self, mut command: Command, ids: IdShift) -> Result<Output, ConfineError> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        // SAFETY: `Handshake::unshare` makes only system calls.
        let (output, mapped) = unsafe {
            spawn_mapped(
                &mut command,
                Maps::Subordinate(self, ids),
                None,
                |fds| fds.unshare(libc::CLONE_NEWUSER),
                |child| child.wait_with_output(),
            )
        }?;
        match mapped {
            Err(source) => Err(ConfineError::Refused {
                step: "mapping the subordinate ids".into(),
                source,
            }),
            Ok(_) => output.map_err(|source| ConfineError::Refused {
                step: "starting the namespace's root".into(),
                source,
            }),
        }
    }
}

/// The calling user's name, for messages and `/etc/subuid`.
fn caller_name() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    (passwd.lines())
        .find_map(|line| {
            let mut fields = line.split(':');
            let (name, id) = (fields.next()?, fields.nth(1)?);
            (id.parse() == Ok(uid)).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

/// The pipes of the handshake between the child and the mapping thread.
#[derive(Clone, Copy)]
struct Handshake {
    /// The child writes its pid here once unshared.
    ready: i32,
    /// The child reads a byte here once its maps are written.
    go: i32,
    /// The parent's ends, which the child closes so that it sees EOF if the parent fails.
    ready_other: i32,
    go_other: i32,
}

impl Handshake {
    /// In the forked child: unshares `namespaces`, says its pid, and waits until its
    /// maps are written. Dies with the parent.
    ///
    /// # Safety
    /// Only system calls; to be called in the child after the fork.
    unsafe fn unshare(self, namespaces: libc::c_int) -> io::Result<()> {
        // SAFETY: as the caller promises.
        unsafe {
            libc::close(self.ready_other);
            libc::close(self.go_other);
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            check(libc::unshare(namespaces))?;
            let pid = libc::getpid().to_ne_bytes();
            if libc::write(self.ready, pid.as_ptr().cast(), pid.len()) != pid.len() as isize {
                return Err(io::Error::last_os_error());
            }
            libc::close(self.ready);
            let mut byte = 0u8;
            if libc::read(self.go, (&raw mut byte).cast(), 1) != 1 {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            libc::close(self.go);
        }
        Ok(())
    }
}

/// Paths for the child's mounts, made before the fork (no allocation after it).
struct Setup {
    root: CString,
    proc_: CString,
    sys: CString,
    devices: Vec<(CString, CString)>,
    ephemeral: Vec<(CString, CString)>,
    none: CString,
    proc_type: CString,
    sysfs_type: CString,
    tmpfs_type: CString,
    dot: CString,
    slash: CString,
    /// The seccomp program that makes [`NO_SYNC`] no-ops.
    no_sync: Vec<libc::sock_filter>,
}

impl Setup {
    fn new(root: &Path) -> Result<Setup, ConfineError> {
        let c = |path: &Path| {
            CString::new(path.as_os_str().as_bytes()).map_err(|_| ConfineError::Io {
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the path"),
            })
        };
        let lit = |s: &str| CString::new(s).unwrap_or_default();
        Ok(Setup {
            root: c(root)?,
            proc_: lit("proc"),
            sys: lit("sys"),
            devices: DEVICES
                .iter()
                .map(|d| (lit(&format!("/dev/{d}")), lit(&format!("dev/{d}"))))
                .collect(),
            ephemeral: EPHEMERAL
                .iter()
                .map(|(name, opts)| (lit(name), lit(opts)))
                .collect(),
            none: lit("none"),
            proc_type: lit("proc"),
            sysfs_type: lit("sysfs"),
            tmpfs_type: lit("tmpfs"),
            dot: lit("."),
            slash: lit("/"),
            no_sync: no_sync_filter(),
        })
    }

    /// In the forked child: unshare, wait for the id maps, become root inside, fork the
    /// namespace's PID 1 (this process waits for it and exits with its status), and in
    /// PID 1 mount and pivot into the tree; exec follows.
    fn enter(&self, fds: Handshake) -> io::Result<()> {
        // SAFETY: every call below is a plain system call on NUL-terminated strings and
        // buffers that live as long as `self`; none allocates.
        unsafe {
            fds.unshare(
                libc::CLONE_NEWUSER
                    | libc::CLONE_NEWNS
                    | libc::CLONE_NEWPID
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWUTS,
            )?;
            check(libc::mount(
                self.none.as_ptr(),
                self.slash.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // Reached while this process still has the caller's ids: the tree may lie
            // in folders only they can enter. Everything after is relative to it.
            self.enter_tree()?;
            check(libc::setresgid(0, 0, 0))?;
            check(libc::setresuid(0, 0, 0))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            match libc::fork() {
                -1 => return Err(io::Error::last_os_error()),
                0 => {}
                child => {
                    let mut status = 0;
                    while libc::waitpid(child, &mut status, 0) == -1 {
                        if *libc::__errno_location() != libc::EINTR {
                            libc::_exit(255);
                        }
                    }
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
            }
            // PID 1 of the new namespace: dies with the process that waits for it (its
            // parent is outside the namespace, so getppid cannot tell whether that one
            // died in the instant before this call; it would have to die of itself, since
            // only a kill of the whole compile reaches it, which kills this on the next
            // line's return).
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL))?;
            self.mount_tree()?;
            check(libc::sethostname(b"localhost".as_ptr().cast(), 9))?;
            loopback_up()?;
            self.suppress_sync();
        }
        Ok(())
    }

    /// Makes [`NO_SYNC`] no-ops for this process and all it starts. Root of its user
    /// namespace may add a filter without `no_new_privs`, which would change what the
    /// scripts' set-id programs do. A kernel that refuses only costs the time.
    ///
    /// # Safety
    /// Only a system call on `self`'s program; to be called in the namespace's PID 1.
    unsafe fn suppress_sync(&self) {
        if self.no_sync.is_empty() {
            return;
        }
        let program = libc::sock_fprog {
            len: self.no_sync.len() as u16,
            filter: self.no_sync.as_ptr().cast_mut(),
        };
        // SAFETY: as the caller promises; the kernel copies the program.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &raw const program,
            );
        }
    }

    /// Makes the tree a mount of its own, where no device node opens, and enters it.
    ///
    /// # Safety
    /// Only system calls on `self`'s strings; to be called in the child after the fork.
    unsafe fn enter_tree(&self) -> io::Result<()> {
        let null: *const libc::c_char = std::ptr::null();
        // SAFETY: as the caller promises.
        unsafe {
            check(libc::mount(
                self.root.as_ptr(),
                self.root.as_ptr(),
                null,
                libc::MS_BIND | libc::MS_REC,
                null.cast(),
            ))?;
            // No device node of the tree opens a device: a hostile archive's node for the
            // host's disk would be writable by the inside's root otherwise. The nodes
            // bound in below are mounts of their own and keep working.
            check(libc::mount(
                null,
                self.root.as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NODEV,
                null.cast(),
            ))?;
            check(libc::chdir(self.root.as_ptr()))?;
        }
        Ok(())
    }

    /// Mounts `/proc`, `/sys`, the devices and the tmpfs folders in the tree (the current
    /// folder) and makes it `/`.
    ///
    /// # Safety
    /// Only system calls on `self`'s strings; to be called in the namespace's PID 1.
    unsafe fn mount_tree(&self) -> io::Result<()> {
        let null: *const libc::c_char = std::ptr::null();
        // SAFETY: as the caller promises.
        unsafe {
            check(libc::mount(
                self.proc_type.as_ptr(),
                self.proc_.as_ptr(),
                self.proc_type.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null.cast(),
            ))?;
            // Allowed since the namespace owns its network namespace; read-only, as
            // nothing a script does belongs in the kernel's objects.
            check(libc::mount(
                self.sysfs_type.as_ptr(),
                self.sys.as_ptr(),
                self.sysfs_type.as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                null.cast(),
            ))?;
            for (host, inside) in &self.devices {
                check(libc::mount(
                    host.as_ptr(),
                    inside.as_ptr(),
                    null,
                    libc::MS_BIND,
                    null.cast(),
                ))?;
            }
            for (at, opts) in &self.ephemeral {
                check(libc::mount(
                    self.tmpfs_type.as_ptr(),
                    at.as_ptr(),
                    self.tmpfs_type.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    opts.as_ptr().cast(),
                ))?;
            }
            check(
                libc::syscall(libc::SYS_pivot_root, self.dot.as_ptr(), self.dot.as_ptr()) as i32,
            )?;
            check(libc::umount2(self.dot.as_ptr(), libc::MNT_DETACH))?;
            check(libc::chdir(self.slash.as_ptr()))?;
        }
        Ok(())
    }
}

/// A system call's result as an `io::Result`.
fn check(rc: i32) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Brings up the loopback of the namespace's own network, as systemd-nspawn's private
/// network has it: a script's tools may look for an interface (postfix's `newaliases`
/// fails when it finds none) or talk to themselves on 127.0.0.1, and the namespace has
/// no other interface, so nothing leaves it.
///
/// # Safety
/// Only system calls on a buffer of its own; to be called in the namespace's PID 1.
unsafe fn loopback_up() -> io::Result<()> {
    // SAFETY: as the caller promises; `request` outlives the calls that use it.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket == -1 {
            return Err(io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        let mut result = check(libc::ioctl(socket, libc::SIOCGIFFLAGS, &raw mut request));
        if result.is_ok() {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            result = check(libc::ioctl(socket, libc::SIOCSIFFLAGS, &raw const request));
        }
        libc::close(socket);
        result
    }
}

/// A pipe whose ends close on exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), ConfineError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(ConfineError::Refused {
            step: "making a pipe".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::fs::MetadataExt;

    /// A hostile program: tries every way out of its tree that a root process has, and
    /// says which worked. Built static so that the tree needs nothing else.
    const ESCAPE: &str = r#"
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
static void try_create(const char *how, const char *path) {
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    printf("%s %s: %s\n", how, path, fd >= 0 ? "created" : "refused");
    if (fd >= 0) close(fd);
}
int main(int argc, char **argv) {
    const char *host = argv[1];            /* a host path that must stay absent */
    int port = atoi(argv[2]);              /* a host listener that must see nobody */
    char path[4096];
    try_create("plain", host);
    snprintf(path, sizeof path, "/proc/1/root%s", host);
    try_create("proc-root", path);
    snprintf(path, sizeof path, "/proc/self/root/../../..%s", host);
    try_create("proc-self-dotdot", path);
    mkdir("/jail", 0755);
    if (chroot("/jail") == 0) {
        for (int i = 0; i < 64; i++) chdir("..");
        chroot(".");
        try_create("chroot-escape", host);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    printf("connect: %s\n", s >= 0 && connect(s, (void *)&a, sizeof a) == 0 ? "connected" : "refused");
    printf("uid %d\n", (int)getuid());
    int disk = open("/hostdisk", O_RDONLY);
    printf("device: %s\n", disk >= 0 ? "opened" : "refused");
    /* Kernel settings (host root may open this for writing; nothing is written), and
       the classic way out of a container: a helper the host kernel runs as root. */
    int setting = open("/sys/kernel/mm/transparent_hugepage/enabled", O_WRONLY);
    printf("sysfs-setting: %s\n", setting >= 0 ? "opened" : "refused");
    int helper = open("/sys/kernel/uevent_helper", O_WRONLY);
    printf("uevent-helper: %s\n", helper >= 0 ? "opened" : "refused");
    printf("inside-sysfs: %s\n", access("/sys/kernel", F_OK) == 0 ? "mounted" : "absent");
    try_create("inside", "/made-inside");
    return 0;
}
"#;

    #[test]
    fn a_hostile_root_process_stays_in_its_tree() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: confinement needs root");
            return;
        }
        let scratch = tempfile::tempdir().expect("tempdir");
        let root = tree_with(scratch.path(), "escape", ESCAPE);
        // A node for the disk this very test runs on, as a hostile archive could ship.
        let disk = std::fs::metadata(scratch.path()).expect("stat").dev();
        let node = CString::new(root.join("hostdisk").as_os_str().as_bytes()).expect("path");
        // SAFETY: a NUL-terminated path.
        let made = unsafe { libc::mknod(node.as_ptr(), libc::S_IFBLK | 0o666, disk) };
        assert_eq!(made, 0, "mknod");
        let ids = IdShift::DEFAULT;
        let base = ids.base;
        for entry in walk(&root) {
            std::os::unix::fs::lchown(&entry, Some(base), Some(base)).expect("chown");
        }

        let host_victim = scratch.path().join("pwned");
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port().to_string();
        let log = scratch.path().join("log");
        let victim = host_victim.to_str().expect("utf-8");
        let ran = Confined {
            root: &root,
            ids,
            argv: &["/bin/escape", victim, &port],
            env: &[("PATH", "/bin")],
            log: &log,
            limit: Duration::from_secs(60),
        }
        .run()
        .expect("runs confined");
        let said = std::fs::read_to_string(&log).expect("log");
        assert_eq!(ran.code, 0, "{said}");
        let escapes = said
            .lines()
            .filter(|l| !l.starts_with("inside") && !l.ends_with("refused"));
        assert!(escapes.clone().all(|l| l.starts_with("uid")), "{said}");
        assert!(said.contains("uid 0"), "{said}");
        assert!(said.contains("inside-sysfs: mounted"), "{said}");
        assert!(!host_victim.exists(), "{said}");
        assert!(listener.accept().is_err(), "a connection reached the host");
        let made = std::fs::metadata(root.join("made-inside")).expect("made inside");
        assert_eq!((made.uid(), made.gid()), (base, base));
    }

    #[test]
    fn a_command_past_its_time_is_killed() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let scratch = tempfile::tempdir().expect("tempdir");
        let root = tree_with(
            scratch.path(),
            "spin",
            "#include <unistd.h>\nint main(){ if (fork()==0) for(;;) pause(); for(;;) pause(); }\n",
        );
        let log = scratch.path().join("log");
        let err = confined(&root, &["/bin/spin"], &log, Duration::from_secs(2))
            .run()
            .expect_err("killed");
        assert!(matches!(err, ConfineError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn a_confined_run_holds_no_file_another_thread_is_writing() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let scratch = tempfile::tempdir().expect("tempdir");
        let root = tree_with(
            scratch.path(),
            "nap",
            "#include <unistd.h>\nint main(){ sleep(4); return 0; }\n",
        );
        // Another tree's script, still being written when the confined run forks.
        let script = scratch.path().join("script");
        let mut writing = std::fs::File::create(&script).expect("create");
        io::Write::write_all(&mut writing, b"#!/bin/sh\nexit 0\n").expect("write");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let log = scratch.path().join("log");
        std::thread::scope(|threads| {
            let run = threads
                .spawn(|| confined(&root, &["/bin/nap"], &log, Duration::from_secs(60)).run());
            // Sequencing only: the run forks within this, and naps for 4 s.
            std::thread::sleep(Duration::from_millis(500));
            drop(writing);
            // Once the run's waiting process let go of its copy, the script runs;
            // holding it, that process would make every try fail with ETXTBSY.
            let mut tries = 0;
            let status = loop {
                match Command::new(&script).status() {
                    Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    other => break other,
                }
            };
            assert!(status.expect("the script runs").success());
            assert_eq!(run.join().expect("joined").expect("runs confined").code, 0);
        });
    }

    #[test]
    fn sync_calls_inside_succeed_without_running() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let scratch = tempfile::tempdir().expect("tempdir");
        // On a descriptor that is not open, a call that ran fails with EBADF.
        let root = tree_with(
            scratch.path(),
            "syncs",
            "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <stdio.h>\n#include <unistd.h>\n\
             int main(){ printf(\"fsync %d fdatasync %d syncfs %d range %d close %d\\n\", \
             fsync(999), fdatasync(999), syncfs(999), sync_file_range(999, 0, 0, 0), \
             close(999)); return 0; }\n",
        );
        let log = scratch.path().join("log");
        let ran = confined(&root, &["/bin/syncs"], &log, Duration::from_secs(60))
            .run()
            .expect("runs confined");
        let said = std::fs::read_to_string(&log).expect("log");
        assert_eq!(ran.code, 0, "{said}");
        assert_eq!(
            said.trim(),
            "fsync 0 fdatasync 0 syncfs 0 range 0 close -1",
            "only the sync calls are no-ops"
        );
    }

    /// `argv` confined in `root` as most tests run it: the default ids, no environment.
    fn confined<'a>(
        root: &'a Path,
        argv: &'a [&'a str],
        log: &'a Path,
        limit: Duration,
    ) -> Confined<'a> {
        Confined {
            root,
            ids: IdShift::DEFAULT,
            argv,
            env: &[],
            log,
            limit,
        }
    }

    /// A tree `scratch/root` whose only file is `/bin/NAME`, C `source` built static so
    /// that it needs nothing else.
    fn tree_with(scratch: &Path, name: &str, source: &str) -> PathBuf {
        let root = scratch.join("root");
        std::fs::create_dir_all(root.join("bin")).expect("mkdir");
        let file = scratch.join(format!("{name}.c"));
        std::fs::write(&file, source).expect("write");
        let built = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(root.join("bin").join(name))
            .arg(&file)
            .status()
            .expect("cc runs");
        assert!(built.success(), "cc -static failed (libc6-dev installed?)");
        root
    }

    fn walk(root: &Path) -> Vec<PathBuf> {
        let mut all = vec![root.to_path_buf()];
        let mut i = 0;
        while i < all.len() {
            if all[i].is_dir() && !all[i].is_symlink() {
                for e in std::fs::read_dir(&all[i]).expect("read_dir") {
                    all.push(e.expect("entry").path());
                }
            }
            i += 1;
        }
        all
    }
}
