//! appliance's init: PID 1 of an image's initramfs, in the spirit of supermin's init.
//!
//! It mounts /proc, /sys and /dev, loads the modules the image lists (in order), waits
//! for the root disk, mounts it, moves the mounts into it and switches root; then it
//! runs what the kernel passed after `--` on its command line, else the disk's
//! `/sbin/init` (which takes over as PID 1), else the lock's `cmd`, else `/bin/sh`. A
//! program it runs as a child is waited for, then the machine is powered off. Every
//! failure is printed as `appliance-init: ...` and powers off too: it never hangs.
//!
//! Built by build.rs as a static binary with std only; the few system calls std does not
//! wrap are declared against glibc, which links statically.

mod config;

use std::ffi::{CString, OsString, c_char, c_int, c_long, c_ulong, c_void};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use config::Config;

unsafe extern "C" {
    fn mount(
        source: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> c_int;
    fn umount2(target: *const c_char, flags: c_int) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn reboot(how: c_int) -> c_int;
    fn sync();
    fn setsid() -> c_int;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
}

const MS_MOVE: c_ulong = 8192;
const MNT_DETACH: c_int = 2;
const RB_POWER_OFF: c_int = 0x4321_fedc_u32 as c_int;
const TIOCSCTTY: c_ulong = 0x540e;
const EEXIST: i32 = 17;
#[cfg(target_arch = "x86_64")]
const SYS_FINIT_MODULE: c_long = 313;
#[cfg(target_arch = "aarch64")]
const SYS_FINIT_MODULE: c_long = 273;

/// How long the root disk may take to appear once its driver is loaded.
const ROOT_WAIT: Duration = Duration::from_secs(30);

/// Where the root disk is mounted before the switch.
const NEW_ROOT: &str = "/root";

/// Programs found here whatever the disk's profile says.
const PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn main() {
    if let Err(e) = boot() {
        say(&format!("error: {e}"));
    }
    power_off();
}

fn say(message: &str) {
    eprintln!("{}{message}", config::SAYS);
}

/// Everything up to the program's end; returns only to power off.
fn boot() -> Result<(), String> {
    mount_fs("proc", "/proc", "proc")?;
    mount_fs("sysfs", "/sys", "sysfs")?;
    mount_fs("devtmpfs", "/dev", "devtmpfs")?;
    let text = fs::read_to_string(config::PATH)
        .map_err(|e| format!("cannot read {}: {e}", config::PATH))?;
    let config = Config::parse(&text)?;
    for module in &config.modules {
        load_module(module);
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let root = kernel_param(&cmdline, "root").unwrap_or(&config.root);
    wait_for(root)?;
    mount_fs(root, NEW_ROOT, &config.fstype)
        .map_err(|e| format!("{e} (is {root} a {} disk?)", config.fstype))?;
    for dir in ["/dev", "/proc", "/sys"] {
        move_mount(dir)?;
    }
    switch_root()?;

    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let program = if !args.is_empty() {
        args
    } else if Path::new("/sbin/init").exists() {
        say(&format!("{}{}/sbin/init", config.group, config::UP));
        let err = Command::new("/sbin/init").env("PATH", PATH_ENV).exec();
        return Err(format!("cannot run /sbin/init: {err}"));
    } else if !config.cmd.is_empty() {
        config.cmd.iter().map(OsString::from).collect()
    } else {
        vec![OsString::from("/bin/sh")]
    };
    let shown: Vec<String> = program
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    say(&format!("{}{}{}", config.group, config::UP, shown.join(" ")));
    let status = run(&program)?;
    say(&format!("{} {status}", shown[0]));
    Ok(())
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} holds a NUL byte"))
}

fn mount_fs(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    let (c_source, c_target, c_type) = (c_string(source)?, c_string(target)?, c_string(fstype)?);
    // SAFETY: three NUL-terminated strings that outlive the call; no data argument.
    let rc = unsafe {
        mount(
            c_source.as_ptr(),
            c_target.as_ptr(),
            c_type.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(format!("cannot mount {source} ({fstype}) on {target}: {e}"))
    }
}

/// Loads one module; a failure is told and the boot goes on, as a driver without its
/// device (or a CPU-specific variant on another CPU) is no reason to stop.
fn load_module(path: &str) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => return say(&format!("cannot open module {path}: {e}")),
    };
    let no_params = c"";
    // SAFETY: finit_module takes an open fd, a NUL-terminated parameter string and flags.
    let rc = unsafe {
        syscall(
            SYS_FINIT_MODULE,
            file.as_raw_fd() as c_long,
            no_params.as_ptr(),
            0 as c_long,
        )
    };
    let e = io::Error::last_os_error();
    match rc {
        0 => say(&format!("loaded {name}")),
        _ if e.raw_os_error() == Some(EEXIST) => say(&format!("{name} was already loaded")),
        _ => say(&format!("cannot load {name}: {e}")),
    }
}

/// The value of `key=` on the kernel command line, if given.
fn kernel_param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .take_while(|word| *word != "--")
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

fn wait_for(device: &str) -> Result<(), String> {
    let start = Instant::now();
    let mut told = false;
    while !Path::new(device).exists() {
        if start.elapsed() > ROOT_WAIT {
            let partitions = fs::read_to_string("/proc/partitions").unwrap_or_default();
            return Err(format!(
                "the root disk {device} did not appear within {} s; the kernel knows:\n{partitions}",
                ROOT_WAIT.as_secs()
            ));
        }
        if !told && start.elapsed() > Duration::from_secs(1) {
            say(&format!("waiting for {device}"));
            told = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Moves a mount into the new root, or drops it when the disk has no such folder.
fn move_mount(dir: &str) -> Result<(), String> {
    let target = format!("{NEW_ROOT}{dir}");
    let c_dir = c_string(dir)?;
    if !Path::new(&target).is_dir() {
        say(&format!("the root disk has no {dir}: not mounted there"));
        // SAFETY: a NUL-terminated path that outlives the call.
        unsafe { umount2(c_dir.as_ptr(), MNT_DETACH) };
        return Ok(());
    }
    let c_target = c_string(&target)?;
    // SAFETY: NUL-terminated paths that outlive the call; MS_MOVE ignores type and data.
    let rc = unsafe {
        mount(
            c_dir.as_ptr(),
            c_target.as_ptr(),
            std::ptr::null(),
            MS_MOVE,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(format!("cannot move {dir} to {target}: {e}"))
    }
}

/// Makes the mounted disk `/`: the initramfs cannot be unmounted (it is the rootfs), so
/// the disk is moved over it and entered, as util-linux's switch_root does.
fn switch_root() -> Result<(), String> {
    let fail = |what: &str, e: io::Error| format!("cannot switch to the root disk ({what}): {e}");
    std::env::set_current_dir(NEW_ROOT).map_err(|e| fail("chdir", e))?;
    let (dot, slash) = (c_string(".")?, c_string("/")?);
    // SAFETY: NUL-terminated paths that outlive the call; MS_MOVE ignores type and data.
    let rc = unsafe {
        mount(
            dot.as_ptr(),
            slash.as_ptr(),
            std::ptr::null(),
            MS_MOVE,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(fail("move", io::Error::last_os_error()));
    }
    std::os::unix::fs::chroot(".").map_err(|e| fail("chroot", e))?;
    std::env::set_current_dir("/").map_err(|e| fail("chdir", e))
}

/// Runs `program` as a child on the console, reaping every process that ends meanwhile
/// (orphans are PID 1's to reap); returns how it ended.
fn run(program: &[OsString]) -> Result<String, String> {
    let mut command = Command::new(&program[0]);
    command.args(&program[1..]).env("PATH", PATH_ENV);
    if let Some(tty) = console_tty() {
        let clone = |f: &File| f.try_clone().map(Stdio::from);
        if let (Ok(i), Ok(o), Ok(e)) = (clone(&tty), clone(&tty), clone(&tty)) {
            command.stdin(i).stdout(o).stderr(e);
            // SAFETY: setsid and ioctl are async-signal-safe, as pre_exec requires.
            unsafe {
                command.pre_exec(|| {
                    // The console becomes the session's controlling terminal, so a shell
                    // gets job control and ^C.
                    setsid();
                    ioctl(0, TIOCSCTTY, 1 as c_int);
                    Ok(())
                });
            }
        }
    }
    let child = command
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program[0].to_string_lossy()))?;
    let pid = child.id() as c_int;
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid writes the status into a local that outlives the call.
        let reaped = unsafe { waitpid(-1, &mut status, 0) };
        if reaped == pid {
            return Ok(describe(status));
        }
        if reaped < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("cannot wait for the program: {e}"));
            }
        }
    }
}

fn describe(status: c_int) -> String {
    let (signal, code) = (status & 0x7f, (status >> 8) & 0xff);
    if signal == 0 {
        format!("exited with status {code}")
    } else {
        format!("was killed by signal {signal}")
    }
}

/// The real terminal behind /dev/console (which cannot be a controlling terminal).
fn console_tty() -> Option<File> {
    let active = fs::read_to_string("/sys/class/tty/console/active").ok()?;
    let name = active.split_whitespace().last()?;
    let path = format!("/dev/{name}");
    // Only a name the kernel gave, never a path.
    if name.contains('/') || !Path::new(&path).exists() {
        return None;
    }
    OpenOptions::new().read(true).write(true).open(path).ok()
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; reboot returns only on failure.
    unsafe {
        sync();
        reboot(RB_POWER_OFF);
    }
    say(&format!(
        "cannot power off: {}; leaving PID 1 (the kernel panics)",
        io::Error::last_os_error()
    ));
    std::process::exit(1)
}
