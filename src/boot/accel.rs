//! Which accelerator runs the guest's CPU, and why: KVM when this machine can use it,
//! else TCG (qemu's software emulation); and telling, from what qemu wrote on its way
//! out, a KVM that opened but could not run the guest.

use std::fmt;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use super::BootError;

/// How qemu runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when this machine can use it, else TCG.
    Auto,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// qemu's own emulation: slower, works anywhere.
    Tcg,
}

/// The accelerator a boot runs under (KVM or TCG, never `Auto`) and why that one, as
/// `appliance boot` tells it on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// [`Accel::Kvm`] or [`Accel::Tcg`].
    pub accel: Accel,
    /// Why: what `--accel` asked, or what kept KVM away.
    pub why: String,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.accel {
            Accel::Kvm => write!(f, "the guest runs under KVM: {}", self.why),
            _ => write!(
                f,
                "the guest runs under TCG, qemu's software emulation (slower than KVM): {}",
                self.why
            ),
        }
    }
}

impl Accel {
    /// The accelerator `--accel` names (`auto`, `kvm` or `tcg`).
    pub fn parse(name: &str) -> Result<Accel, BootError> {
        match name {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(BootError::UnknownAccel {
                name: other.to_string(),
            }),
        }
    }

    /// KVM or TCG on this machine: `Auto` takes KVM only when /dev/kvm opens for
    /// writing and the CPU offers hardware virtualisation; `Kvm` is refused when
    /// /dev/kvm cannot be opened, which qemu would fail on anyway.
    pub fn resolve(self) -> Result<Choice, BootError> {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        self.resolve_on(Path::new("/dev/kvm"), &cpuinfo)
    }

    /// [`Accel::resolve`] with the KVM device at `device` and `cpuinfo` the text of
    /// /proc/cpuinfo.
    fn resolve_on(self, device: &Path, cpuinfo: &str) -> Result<Choice, BootError> {
        let choice = |accel, why: &str| {
            Ok(Choice {
                accel,
                why: why.to_string(),
            })
        };
        match self {
            Accel::Tcg => choice(Accel::Tcg, "--accel tcg asks for it"),
            Accel::Kvm => match unopenable(device).or_else(|| without_virtualisation(cpuinfo)) {
                Some(reason) => Err(BootError::NoKvm { reason }),
                None => choice(Accel::Kvm, "--accel kvm asks for it"),
            },
            Accel::Auto => match unopenable(device).or_else(|| without_virtualisation(cpuinfo)) {
                Some(reason) => choice(Accel::Tcg, &reason),
                None => choice(
                    Accel::Kvm,
                    "/dev/kvm opens and the CPU offers hardware virtualisation",
                ),
            },
        }
    }
}

/// Why the KVM device cannot be opened for reading and writing, if it cannot.
fn unopenable(device: &Path) -> Option<String> {
    let err = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .err()?;
    let shown = device.display();
    Some(match err.kind() {
        io::ErrorKind::NotFound => format!(
            "there is no {shown} (the kvm module is not loaded, or this machine offers no \
             hardware virtualisation)"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "{shown} cannot be opened for reading and writing: {err} (members of its group, \
             usually kvm, can)"
        ),
        _ => format!("{shown} cannot be opened for reading and writing: {err}"),
    })
}

/// Why the CPU cannot run KVM guests, if /proc/cpuinfo shows it: a /dev/kvm without the
/// vmx or svm flag, as some nested virtual machines have, fails or hangs the guest at
/// its first instructions (qemu aborting on the CPU's MSRs, or the kernel never going
/// past its first lines, with nothing to tell it from a slow boot).
fn without_virtualisation(cpuinfo: &str) -> Option<String> {
    let virtualises = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    (!virtualises).then(|| {
        "the CPU offers no hardware virtualisation (no vmx or svm flag in /proc/cpuinfo), as \
         in many nested virtual machines"
            .to_string()
    })
}

/// Whether a line qemu wrote on stderr is about KVM: its failures to open it, to set up
/// the virtual CPU (`failed to set MSR`, then `kvm_buf_set_msrs: Assertion ... failed`
/// under nested virtualisation) or to run it.
pub(super) fn about_kvm(line: &str) -> bool {
    line.to_ascii_lowercase().contains("kvm") || line.contains("MSR")
}

/// Copies qemu's stderr to `to` (this process's) as it comes, except, when `hold` (the
/// guest runs under KVM), the lines about KVM: those are returned, to be told as one
/// error if qemu fails, or printed as they were if it does not.
pub(super) fn relay_stderr(from: impl Read, mut to: impl Write, hold: bool) -> Vec<String> {
    let mut from = io::BufReader::new(from);
    let mut held = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match from.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return held,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if hold && about_kvm(&text) {
            held.push(text.trim_end().to_string());
        } else {
            // As qemu wrote it: raw, its terminal may want no line end added.
            let _ = to.write_all(&line);
        }
    }
}

/// The error for a qemu that failed under KVM having said `said` about it: its first
/// line, without qemu's name, as the detail.
pub(super) fn kvm_failed(said: &[String]) -> Option<BootError> {
    let first = said.first()?;
    let detail = first
        .strip_prefix(super::QEMU)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(first);
    Some(BootError::KvmFailed {
        detail: detail.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vme vmx sse\n";
    const NO_VMX: &str = "processor\t: 0\nflags\t\t: fpu vme hypervisor sse\n";

    #[test]
    fn auto_takes_kvm_only_when_it_opens_and_the_cpu_virtualises() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        fs::write(&device, b"").unwrap();
        let kvm = Accel::Auto.resolve_on(&device, VMX).unwrap();
        assert_eq!(kvm.accel, Accel::Kvm);
        assert_eq!(
            kvm.to_string(),
            "the guest runs under KVM: /dev/kvm opens and the CPU offers hardware virtualisation"
        );

        let nested = Accel::Auto.resolve_on(&device, NO_VMX).unwrap();
        assert_eq!(nested.accel, Accel::Tcg);
        assert!(
            nested.to_string().starts_with(
                "the guest runs under TCG, qemu's software emulation (slower than KVM): the CPU \
                 offers no hardware virtualisation (no vmx or svm flag"
            ),
            "{nested}"
        );

        let missing = dir.path().join("none");
        let absent = Accel::Auto.resolve_on(&missing, VMX).unwrap();
        assert_eq!(absent.accel, Accel::Tcg);
        assert!(
            absent
                .why
                .starts_with(&format!("there is no {}", missing.display())),
            "{absent}"
        );

        let asked = Accel::Tcg.resolve_on(&device, VMX).unwrap();
        assert_eq!(
            (asked.accel, asked.why.as_str()),
            (Accel::Tcg, "--accel tcg asks for it")
        );
    }

    #[test]
    fn kvm_asked_for_is_refused_without_a_device_or_a_virtualising_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        fs::write(&device, b"").unwrap();
        let tried = Accel::Kvm.resolve_on(&device, VMX).unwrap();
        assert_eq!(tried.accel, Accel::Kvm);
        // Such a guest hangs or qemu aborts: one message, before qemu starts.
        let text = Accel::Kvm
            .resolve_on(&device, NO_VMX)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("--accel kvm, but the CPU offers no hardware virtualisation")
                && text.ends_with("--accel tcg"),
            "{text}"
        );
        let err = Accel::Kvm
            .resolve_on(&dir.path().join("none"), VMX)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("--accel kvm, but there is no ") && text.ends_with("--accel tcg"),
            "{text}"
        );
        assert!(Accel::parse("xen").is_err());
    }

    #[test]
    fn qemus_kvm_failures_become_one_message() {
        // What qemu 7.2 says in a nested VM whose /dev/kvm cannot set the CPU's MSRs.
        let said = [
            "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
            "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: \
             Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.",
        ];
        assert!(said.iter().all(|l| about_kvm(l)));
        assert!(!about_kvm(
            "qemu-system-x86_64: warning: host doesn't support x2apic"
        ));
        let said: Vec<String> = said.iter().map(|l| l.to_string()).collect();
        let err = kvm_failed(&said).unwrap().to_string();
        assert_eq!(
            err,
            "KVM cannot run the guest on this machine (qemu: error: failed to set MSR 0x10a to \
             0x69), as happens under nested virtualisation: boot it with --accel tcg"
        );
        assert!(kvm_failed(&[]).is_none());
    }

    #[test]
    fn only_the_lines_about_kvm_are_held_and_only_under_kvm() {
        let said = "qemu-system-x86_64: warning: a warning\nqemu-system-x86_64: error: failed \
                    to set MSR 0x10a to 0x69\nkvm_buf_set_msrs: Assertion failed.";
        let mut relayed = Vec::new();
        assert_eq!(
            relay_stderr(said.as_bytes(), &mut relayed, true),
            [
                "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69",
                "kvm_buf_set_msrs: Assertion failed."
            ]
        );
        assert_eq!(relayed, b"qemu-system-x86_64: warning: a warning\n");
        let mut relayed = Vec::new();
        assert!(relay_stderr(said.as_bytes(), &mut relayed, false).is_empty());
        assert_eq!(relayed, said.as_bytes());
    }
}
