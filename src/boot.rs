//! Booting a materialised image under qemu: the kernel, initramfs and command line of
//! the image directory, its disk as a virtio drive, the serial console on stdio, and a
//! virtio NIC on qemu's user network (NAT and DHCP), with host ports forwarded to the
//! guest's on request.

mod accel;
mod console;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::materialise::Disk;

pub use accel::{Accel, Choice};

/// The emulator `appliance boot` runs.
pub const QEMU: &str = "qemu-system-x86_64";

/// Why a boot could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// `--accel` names no accelerator.
    #[error("unknown accelerator `{name}` (boot takes auto, kvm or tcg)")]
    UnknownAccel {
        /// The name given.
        name: String,
    },
    /// An argument for the guest cannot be put on the kernel command line.
    #[error("the argument {arg:?} cannot be passed on the kernel command line: {reason}")]
    BadArgument {
        /// The argument.
        arg: String,
        /// Why.
        reason: &'static str,
    },
    /// The image directory lacks a file or cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// qemu is not installed.
    #[error("{QEMU} is not installed: install the qemu-system-x86 package to boot images")]
    QemuMissing,
    /// qemu could not be started.
    #[error("cannot run {QEMU}: {0}")]
    Qemu(io::Error),
    /// `--accel kvm` on a machine whose /dev/kvm cannot be opened.
    #[error("--accel kvm, but {reason}: boot with --accel tcg")]
    NoKvm {
        /// Why not.
        reason: String,
    },
    /// qemu opened KVM but failed to run the guest on it.
    #[error(
        "KVM cannot run the guest on this machine (qemu: {detail}), as happens under nested \
         virtualisation: boot it with --accel tcg"
    )]
    KvmFailed {
        /// The first thing qemu said about KVM.
        detail: String,
    },
    /// A `--forward` that is not `HOST:GUEST` with two ports.
    #[error("bad --forward `{text}`: {reason} (write HOST:GUEST, two TCP ports, like 8080:80)")]
    BadForward {
        /// What was given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// Two `--forward`s of one host port.
    #[error("--forward {first} and --forward {second} both take host port {port}")]
    DuplicateForward {
        /// The host port.
        port: u16,
        /// The first forward of it.
        first: Forward,
        /// The other.
        second: Forward,
    },
}

/// A host TCP port forwarded to a guest's (`--forward HOST:GUEST`): qemu listens on the
/// host's loopback only, so the guest's services are the host's to reach, not its
/// network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The port on 127.0.0.1.
    pub host: u16,
    /// The guest's port.
    pub guest: u16,
}

impl std::fmt::Display for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.guest)
    }
}

impl Forward {
    /// `HOST:GUEST`, each a port from 1 to 65535.
    pub fn parse(text: &str) -> Result<Forward, BootError> {
        let bad = |reason: String| BootError::BadForward {
            text: crate::excerpt::excerpt(text).to_string(),
            reason,
        };
        let (host, guest) = text
            .split_once(':')
            .ok_or_else(|| bad("no `:` between the ports".to_string()))?;
        let port = |which: &str, value: &str| match value.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad(format!(
                "the {which} port `{}` is not a port from 1 to 65535",
                crate::excerpt::excerpt(value)
            ))),
            Ok(port) => Ok(port),
        };
        Ok(Forward {
            host: port("host", host)?,
            guest: port("guest", guest)?,
        })
    }

    /// The forwards of `texts`, refusing two of one host port (one guest port may be
    /// reached through several).
    pub fn parse_all(texts: &[String]) -> Result<Vec<Forward>, BootError> {
        let mut forwards: Vec<Forward> = Vec::with_capacity(texts.len());
        for text in texts {
            let forward = Forward::parse(text)?;
            if let Some(first) = forwards.iter().find(|f| f.host == forward.host) {
                return Err(BootError::DuplicateForward {
                    port: forward.host,
                    first: *first,
                    second: forward,
                });
            }
            forwards.push(forward);
        }
        Ok(forwards)
    }
}

/// A guest to boot.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The image directory (vmlinuz, initrd.img, cmdline, disk.*).
    pub image: PathBuf,
    /// The kind of its disk.
    pub disk: Disk,
    /// How to run the CPU (as [`Accel::resolve`] chose).
    pub accel: Choice,
    /// Memory in MiB.
    pub memory_mb: u32,
    /// The program (and its arguments) the guest's init runs instead of its default.
    pub args: Vec<String>,
    /// Host ports forwarded to the guest's.
    pub forwards: Vec<Forward>,
}

impl Guest {
    /// The qemu command that boots the guest with the console on stdio.
    pub fn command(&self) -> Result<Command, BootError> {
        let file = |name: &str| self.image.join(name);
        let cmdline_path = file("cmdline");
        let cmdline = fs::read_to_string(&cmdline_path).map_err(|source| BootError::Image {
            path: cmdline_path,
            source,
        })?;
        let mut append = cmdline.trim().to_string();
        if !self.args.is_empty() {
            append.push_str(" -- ");
            append.push_str(&kernel_args(&self.args)?);
        }
        let disk = file(&format!("disk.{}", self.disk.as_str()));
        for path in [file("vmlinuz"), file("initrd.img"), disk.clone()] {
            fs::metadata(&path).map_err(|source| BootError::Image { path, source })?;
        }
        let mut command = Command::new(QEMU);
        command
            .args(["-nographic", "-no-reboot", "-m"])
            .arg(self.memory_mb.to_string());
        match self.accel.accel {
            Accel::Kvm => command.args(["-accel", "kvm", "-cpu", "host"]),
            _ => command.args(["-accel", "tcg"]),
        };
        command
            .arg("-kernel")
            .arg(file("vmlinuz"))
            .arg("-initrd")
            .arg(file("initrd.img"))
            .arg("-append")
            .arg(append)
            .arg("-drive")
            .arg(drive(&disk, self.disk))
            .arg("-nic")
            .arg(nic(&self.forwards));
        Ok(command)
    }

    /// Boots the guest on this terminal and returns qemu's exit code (the guest's init
    /// powers off when its program ends, which ends qemu with 0). Input that is not a
    /// terminal is typed on the console of a guest running its own program, and its end
    /// as ^D (see [`console`]); the console's output then goes through `out`, else qemu
    /// writes it to this process's stdout itself. A qemu that fails on KVM is told as
    /// [`BootError::KvmFailed`], rather than by what it said.
    pub fn run(&self, out: &mut dyn Write) -> Result<i32, BootError> {
        let mut command = self.command()?;
        let typed = console::types_input(!self.args.is_empty());
        command.stderr(Stdio::piped());
        if typed {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        }
        let terminal = console::SavedTerminal::save();
        let mut qemu = command.spawn().map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BootError::QemuMissing,
            _ => BootError::Qemu(e),
        })?;
        let under_kvm = self.accel.accel == Accel::Kvm;
        let stderr = qemu.stderr.take().map(|stderr| {
            thread::spawn(move || accel::relay_stderr(stderr, io::stderr(), under_kvm))
        });
        if let (true, Some(stdin), Some(stdout)) = (typed, qemu.stdin.take(), qemu.stdout.take()) {
            let (up, started) = mpsc::channel();
            // Not waited for: it may be blocked reading input when qemu ends.
            thread::spawn(move || console::type_input(io::stdin(), stdin, started));
            console::watch(stdout, out, up);
        }
        let status = qemu.wait().map_err(BootError::Qemu)?;
        drop(terminal);
        let said = stderr
            .and_then(|relay| relay.join().ok())
            .unwrap_or_default();
        if !status.success()
            && let Some(err) = accel::kvm_failed(&said)
        {
            return Err(err);
        }
        for line in said {
            crate::stderr::line(line);
        }
        Ok(status.code().unwrap_or(1))
    }
}

/// qemu's `-drive` value; commas in the path are doubled, as qemu's option syntax wants.
/// `snapshot=on` keeps the guest's writes in a temporary overlay: every boot starts from
/// the lock's disk, and the image stays the one its stamp describes.
fn drive(disk: &Path, kind: Disk) -> String {
    format!(
        "file={},format={},if=virtio,snapshot=on",
        disk.display().to_string().replace(',', ",,"),
        kind.as_str()
    )
}

/// qemu's `-nic` value: a virtio NIC on the user network, which gives the guest an
/// address by DHCP (10.0.2.15) and NAT to the host's, and listens on the host's loopback
/// for each forward.
fn nic(forwards: &[Forward]) -> String {
    let mut nic = "user,model=virtio-net-pci".to_string();
    for forward in forwards {
        nic.push_str(&format!(
            ",hostfwd=tcp:127.0.0.1:{}-:{}",
            forward.host, forward.guest
        ));
    }
    nic
}

/// The guest's arguments as kernel command-line words: the kernel splits at spaces and
/// strips one pair of double quotes around a word, and has no way to carry a double
/// quote or a line break.
pub fn kernel_args(args: &[String]) -> Result<String, BootError> {
    let mut words = Vec::with_capacity(args.len());
    for arg in args {
        let bad = |reason| BootError::BadArgument {
            arg: arg.clone(),
            reason,
        };
        if arg.contains('"') {
            return Err(bad("the kernel cannot carry a double quote"));
        }
        if arg.chars().any(|c| c.is_control()) {
            return Err(bad("the kernel cannot carry a control character"));
        }
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            words.push(format!("\"{arg}\""));
        } else {
            words.push(arg.clone());
        }
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn guest_arguments_are_quoted_as_the_kernel_splits_them() {
        assert_eq!(
            kernel_args(&strings(&["/bin/bash", "-c", "echo $((6*7))", ""])).unwrap(),
            "/bin/bash -c \"echo $((6*7))\" \"\""
        );
        let err = kernel_args(&strings(&["say \"hi\""])).unwrap_err();
        assert!(err.to_string().contains("double quote"), "{err}");
        assert!(kernel_args(&strings(&["a\nb"])).is_err());
    }

    #[test]
    fn forwards_are_two_ports_and_one_forward_a_host_port() {
        assert_eq!(
            Forward::parse("8080:80").unwrap(),
            Forward {
                host: 8080,
                guest: 80
            }
        );
        for (text, reason) in [
            ("8080", "no `:` between the ports"),
            (":80", "the host port `` is not a port from 1 to 65535"),
            ("0:80", "the host port `0` is not a port from 1 to 65535"),
            (
                "8080:65536",
                "the guest port `65536` is not a port from 1 to 65535",
            ),
            (
                "8080:80:1",
                "the guest port `80:1` is not a port from 1 to 65535",
            ),
            (
                "http:80",
                "the host port `http` is not a port from 1 to 65535",
            ),
        ] {
            assert_eq!(
                Forward::parse(text).unwrap_err().to_string(),
                format!(
                    "bad --forward `{text}`: {reason} (write HOST:GUEST, two TCP ports, like 8080:80)"
                )
            );
        }
        let err = Forward::parse_all(&strings(&["8080:80", "2222:22", "8080:8080"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--forward 8080:80 and --forward 8080:8080 both take host port 8080"
        );
        assert_eq!(
            Forward::parse_all(&strings(&["8080:80", "8081:80"]))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn the_command_boots_the_image_files_with_the_console_on_stdio() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["vmlinuz", "initrd.img", "disk.qcow2"] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        fs::write(
            dir.path().join("cmdline"),
            "console=ttyS0 root=/dev/vda panic=-1\n",
        )
        .unwrap();
        let guest = Guest {
            image: dir.path().to_path_buf(),
            disk: Disk::Qcow2,
            accel: Accel::Tcg.resolve().unwrap(),
            memory_mb: 256,
            args: strings(&["/bin/sh", "-c", "echo hi"]),
            forwards: Forward::parse_all(&strings(&["8080:80", "2222:22"])).unwrap(),
        };
        let command = guest.command().unwrap();
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
        assert_eq!(command.get_program(), QEMU);
        assert!(
            args.contains(&"-nographic".to_string()) && args.contains(&"-no-reboot".to_string())
        );
        assert_eq!(after("-m"), "256");
        assert_eq!(after("-accel"), "tcg");
        assert_eq!(
            after("-append"),
            "console=ttyS0 root=/dev/vda panic=-1 -- /bin/sh -c \"echo hi\""
        );
        assert_eq!(
            after("-drive"),
            format!(
                "file={}/disk.qcow2,format=qcow2,if=virtio,snapshot=on",
                dir.path().display()
            )
        );

        assert_eq!(
            after("-nic"),
            "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22"
        );
        let plain = Guest {
            forwards: Vec::new(),
            ..guest.clone()
        };
        let args: Vec<String> = (plain.command().unwrap().get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let nic = args.iter().position(|a| a == "-nic").unwrap() + 1;
        assert_eq!(args[nic], "user,model=virtio-net-pci", "a NIC, and NAT out");

        fs::remove_file(dir.path().join("initrd.img")).unwrap();
        let err = guest.command().unwrap_err();
        assert!(err.to_string().contains("initrd.img"), "{err}");
    }
}
