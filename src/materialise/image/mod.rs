//! The image format: a bootable set in the directory OUT.
//!
//! - `vmlinuz`: the lock's kernel, a pinned lock file fetched and checked like any other;
//! - `initrd.img`: appliance's own init, its configuration and the kernel modules the
//!   boot needs (the lock's `module`s and the root disk's drivers, closed over the
//!   lock's `modules.dep`);
//! - `disk.raw` (or `.qcow2`, `.vmdk`): the whole tree as an ext4 root filesystem;
//! - `cmdline`: the kernel command line; for Xen flavors `xen.cfg` for `xl create`.
//!
//! Everything comes from the lock through the plan and [`fetch`](super::fetch); the same
//! lock gives the same `initrd.img` and disk bytes.

#[path = "init/config.rs"]
mod config;
mod disk;
mod initrd;
mod kernel;
mod machine;
mod modules;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::lock::{FileKind, Lock};

use super::fetch::{self, FetchError, Restart};
use super::output::{Target, TempPath};
use super::plan::{Body, Plan};
use super::{Disk, MaterialiseError, Supply, io_error};
use crate::progress::Progress;

use config::Config;
use initrd::Initrd;
use kernel::Kernel;
use machine::Machine;
use modules::ModuleIndex;

/// The init's words on the console that `appliance boot` waits for.
pub(crate) use config::{SAYS as INIT_SAYS, UP as INIT_UP};

/// Why an image cannot be made from a lock.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The lock has no kernel to boot.
    #[error(
        "the lock ({flavor}) has no kernel (/boot/vmlinuz-*), so it cannot boot: {}",
        if flavor.contains("!kernel") {
            "compile the group for a kernel flavor (e.g. --flavor kvm), with a kernel package \
             such as linux-image-amd64 under `when kernel { ... }` in the group"
        } else {
            "add a kernel package to the group under `when kernel { package linux-image-amd64 }` \
             and compile it again"
        }
    )]
    NoKernel {
        /// The lock's flavor.
        flavor: String,
    },
    /// The lock has several kernels and none stands out.
    #[error(
        "the lock has several kernels ({}) and not one alone has modules in \
         /usr/lib/modules: keep one kernel package in the group",
        found.join(", ")
    )]
    SeveralKernels {
        /// The kernel images found.
        found: Vec<String>,
    },
    /// The lock lacks the module data the kernel's postinst makes with depmod when
    /// compile configures the tree.
    #[error(
        "the lock has no {path} for kernel {kernel}: its kernel was not configured (a lock \
         compiled without dpkg in the closure, or by an older appliance); compile the group \
         again with dpkg and kmod in it"
    )]
    NoModuleData {
        /// The kernel version.
        kernel: String,
        /// The missing lock path.
        path: String,
    },
    /// The module data cannot be read.
    #[error("{file} of kernel {kernel}{}: {reason}", line.map_or(String::new(), |l| format!(", line {l}")))]
    BadModuleData {
        /// The kernel version.
        kernel: String,
        /// `modules.dep`, ...
        file: String,
        /// The line, when one line is at fault.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
    /// A wanted module is not one of the kernel's.
    #[error(
        "kernel {kernel} has no module {name}{}",
        if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) }
    )]
    UnknownModule {
        /// The name asked for.
        name: String,
        /// The kernel version.
        kernel: String,
        /// The kernel's nearest module names.
        near: Vec<String>,
    },
    /// A file the image needs (a module `modules.dep` names) is not in the lock.
    #[error("{path} is not in the lock (was it excluded?)")]
    NotInLock {
        /// The lock path.
        path: String,
    },
    /// A file the image needs is not a regular file in the lock.
    #[error("{path} is a {kind} in the lock, not a file")]
    NotAFile {
        /// The lock path.
        path: String,
        /// What it is.
        kind: FileKind,
    },
    /// A compressed module could not be decompressed.
    #[error("cannot decompress the module {path}: {source}")]
    Decompress {
        /// The lock path.
        path: String,
        /// The decoder's error.
        source: io::Error,
    },
    /// The lock's flavor does not say which machine the image is for.
    #[error("flavor {flavor} cannot be booted: {reason}")]
    Flavor {
        /// The canonical flavor string.
        flavor: String,
        /// Why.
        reason: String,
    },
    /// Xen's `xl` does not take vmdk disks.
    #[error("xl cannot boot a vmdk disk: give a Xen image --disk raw or --disk qcow2")]
    XenVmdk,
    /// A name the image's tools cannot express.
    #[error("{path} cannot be written into the image: {reason}")]
    Unrepresentable {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A tool the image needs is not installed.
    #[error("{tool} is not installed: install the {package} package to make images")]
    ToolMissing {
        /// The program.
        tool: &'static str,
        /// The Debian package that has it.
        package: &'static str,
    },
    /// A tool failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// What it said.
        detail: String,
    },
}

/// Builds the image of `lock` (id `lock_id`, validated as `plan`) in a temporary
/// directory beside OUT; returns it and the number of the tree's entries on the disk.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    plan: &Plan,
    lock: &Lock,
    lock_id: &str,
    supply: &Supply,
    disk: Disk,
    target: &Target,
    mtime: libc::time_t,
    progress: &Progress,
    warnings: &mut Vec<String>,
) -> Result<(TempPath, usize), MaterialiseError> {
    let out = &target.out;
    let machine = Machine::of_flavor(&lock.flavor)?;
    // Made first, so that its errors, like every error about the lock, come before the
    // long disk build.
    let xen_cfg = match machine {
        Machine::Xen => Some(Machine::xen_cfg(&lock.group, disk)?),
        Machine::Kvm => None,
    };
    let kernel = kernel::choose(plan, &lock.flavor)?;
    let cpio_mtime = u32::try_from(mtime).map_err(|_| MaterialiseError::Mtime {
        mtime: mtime.unsigned_abs(),
    })?;
    let initrd = initramfs(plan, lock, supply, &kernel, machine, out)?;

    let temp = target.temp_dir()?;
    let dir = temp.path.clone();
    let vmlinuz = dir.join("vmlinuz");
    let mut file =
        fs::File::create(&vmlinuz).map_err(|e| io_error(out, "create", vmlinuz.display(), e))?;
    fetch_into(plan, supply, &kernel.image, &mut file, out)?;
    drop(file);
    let mut bytes = Vec::new();
    let initrd_path = dir.join("initrd.img");
    initrd
        .write(&mut bytes, cpio_mtime)
        .and_then(|()| fs::write(&initrd_path, &bytes))
        .map_err(|e| io_error(out, "write", initrd_path.display(), e))?;
    let cmdline = dir.join("cmdline");
    fs::write(&cmdline, format!("{}\n", machine.cmdline()))
        .map_err(|e| io_error(out, "write", cmdline.display(), e))?;
    if let Some(text) = xen_cfg {
        let cfg = dir.join("xen.cfg");
        fs::write(&cfg, text).map_err(|e| io_error(out, "write", cfg.display(), e))?;
    }
    disk::build(
        plan, supply, target, &dir, lock_id, mtime, disk, progress, warnings,
    )?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| io_error(out, "set the mode of", dir.display(), e))?;
    Ok((temp, plan.items.len()))
}

/// The initramfs: the init, its configuration, and the modules of the lock and of the
/// machine's root disk with their closure, decompressed.
fn initramfs(
    plan: &Plan,
    lock: &Lock,
    supply: &Supply,
    kernel: &Kernel,
    machine: Machine,
    out: &Path,
) -> Result<Initrd, MaterialiseError> {
    let dir = kernel.modules_dir();
    let read = |name: &str, required: bool| -> Result<Option<String>, MaterialiseError> {
        let path = format!("{dir}/{name}");
        if find(plan, &path).is_none() {
            return if required {
                Err(ImageError::NoModuleData {
                    kernel: kernel.version.clone(),
                    path,
                }
                .into())
            } else {
                Ok(None)
            };
        }
        let mut bytes = Vec::new();
        fetch_into(plan, supply, &path, &mut bytes, out)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let index = ModuleIndex::parse(
        &kernel.version,
        &read("modules.dep", true)?.unwrap_or_default(),
        &read("modules.builtin", false)?.unwrap_or_default(),
        read("modules.alias", false)?.as_deref(),
        read("modules.softdep", false)?.as_deref(),
    )?;
    let wanted: Vec<String> = (lock.modules.iter().cloned())
        .chain(machine.root_modules().iter().map(|m| m.to_string()))
        .collect();
    let mut files = Vec::new();
    for module in index.closure(&wanted)? {
        let path = format!("{dir}/{module}");
        let mut bytes = Vec::new();
        fetch_into(plan, supply, &path, &mut bytes, out)?;
        let plain = modules::decompress(&module, bytes)
            .map_err(|source| ImageError::Decompress { path, source })?;
        let at = format!(
            "lib/modules/{}/{}",
            kernel.version,
            modules::plain_name(&module)
        );
        files.push((at, plain));
    }
    let config = Config {
        group: lock.group.clone(),
        root: machine.root_device().to_string(),
        fstype: "ext4".to_string(),
        modules: files.iter().map(|(at, _)| format!("/{at}")).collect(),
        cmd: lock.cmd.clone(),
    };
    let mut initrd = Initrd::new(&config.render());
    for (at, bytes) in files {
        initrd.file(&at, 0o644, bytes);
    }
    Ok(initrd)
}

fn find<'p, 'a>(plan: &'p Plan<'a>, path: &str) -> Option<&'p super::plan::Item<'a>> {
    let at = plan
        .items
        .binary_search_by(|item| item.entry.path.as_str().cmp(path))
        .ok()?;
    Some(&plan.items[at])
}

/// Copies the lock file at `path` (a file, or a hard link to one) into `sink`, checked
/// against the lock; drift fails as it does for any output.
fn fetch_into(
    plan: &Plan,
    supply: &Supply,
    path: &str,
    sink: &mut impl Restart,
    out: &Path,
) -> Result<(), MaterialiseError> {
    let item = find(plan, path).ok_or_else(|| ImageError::NotInLock {
        path: path.to_string(),
    })?;
    let (entry, expected) = match &item.body {
        Body::File(expected) => (item.entry, expected),
        Body::Hardlink { target, content } => (plan.items[*target].entry, content),
        _ => {
            return Err(ImageError::NotAFile {
                path: path.to_string(),
                kind: item.entry.kind,
            }
            .into());
        }
    };
    match fetch::fetch(entry, expected, supply, sink) {
        Ok(_) => Ok(()),
        Err(FetchError::Drift(drifted)) => Err(MaterialiseError::Drift {
            out: out.to_path_buf(),
            files: vec![drifted],
        }),
        Err(FetchError::Sink(e)) => Err(io_error(out, "write", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_reads_the_configuration_the_image_writes() {
        let config = Config {
            group: "web".to_string(),
            root: "/dev/vda".to_string(),
            fstype: "ext4".to_string(),
            modules: vec![
                "/lib/modules/6.1.0-1-amd64/kernel/lib/crc16.ko".to_string(),
                "/lib/modules/6.1.0-1-amd64/kernel/fs/ext4/ext4.ko".to_string(),
            ],
            cmd: vec![
                "/usr/sbin/nginx".to_string(),
                "-g".to_string(),
                "daemon off;\nwith a \\ and a newline".to_string(),
            ],
        };
        let text = config.render();
        assert!(text.starts_with("# appliance-init configuration"), "{text}");
        assert!(text.contains("\nroot /dev/vda\nfstype ext4\n"), "{text}");
        assert!(
            text.contains("\ncmd daemon off;\\nwith a \\\\ and a newline\n"),
            "{text}"
        );
        assert_eq!(Config::parse(&text).unwrap(), config);
        let err = Config::parse("root /dev/vda\nfstype ext4\nbogus x\n").unwrap_err();
        assert_eq!(err, "/init.conf line 3: unknown key: bogus x");
        assert!(
            Config::parse("group x\n").is_err(),
            "root and fstype are needed"
        );
    }
}
