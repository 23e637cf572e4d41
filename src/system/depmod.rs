//! Kernel module dependency data: what linux-image's postinst makes with `depmod`.
//!
//! dpkg does not list `modules.dep` and its siblings (depmod writes them after
//! installing), so a lock would lack them and an image could not find a module's
//! dependencies. They are made here by the host's own `depmod`, run on a staging folder
//! that holds only what depmod reads: the kernel's module files, its `modules.order`,
//! `modules.builtin` and `modules.builtin.modinfo`, and the tree's own `depmod.d`
//! configuration (the host's is never read). The outputs become root-owned lock entries
//! whose bytes go to the blob store, as for `ld.so.cache`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::lock::{FileEntry, FileKind};

use super::Generated;

/// Where kernels keep their modules in the appliance (merged /usr).
pub const MODULES_DIR: &str = "/usr/lib/modules";

/// The files at the top of a kernel's module folder that depmod reads (the kernel
/// package ships them); everything else named `modules.*` there is depmod's output.
const INPUTS: [&str; 3] = [
    "modules.order",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// The tree's depmod configuration folders, staged and passed with `-C` so that the
/// host's `/etc/depmod.d` is never consulted.
const CONFIG_DIRS: [&str; 2] = ["/etc/depmod.d", "/usr/lib/depmod.d"];

/// Why the module data could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DepmodError {
    /// The staging folder could not be written.
    #[error("cannot stage {} for depmod: {source}", path.display())]
    Stage {
        /// The staged path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The bytes of a file depmod reads could not be had.
    #[error("cannot read {path} for depmod (kernel {kernel}): {source}")]
    Read {
        /// The kernel version the file belongs to.
        kernel: String,
        /// The path in the appliance.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// depmod is not installed on the host.
    #[error(
        "depmod ({}) is not installed: the tree holds kernel {kernel}, whose modules.dep \
         depmod makes; install kmod",
        program.display()
    )]
    Missing {
        /// The program looked for.
        program: PathBuf,
        /// The kernel that needed it.
        kernel: String,
    },
    /// depmod could not be run or failed.
    #[error("depmod failed for kernel {kernel} ({MODULES_DIR}/{kernel}): {detail}")]
    Depmod {
        /// The kernel version.
        kernel: String,
        /// Why, with depmod's own output when it ran.
        detail: String,
    },
}

/// Whether compile reads the content of the small file at appliance path `path` for
/// depmod: a kernel's `modules.order`, `modules.builtin`, `modules.builtin.modinfo` and
/// the depmod configuration. Module files are read too, but streamed (a kernel's
/// modules are hundreds of megabytes), so they are not named here.
pub fn depmod_reads(path: &str) -> bool {
    if CONFIG_DIRS
        .iter()
        .filter_map(|dir| path.strip_prefix(dir)?.strip_prefix('/'))
        .any(|name| !name.is_empty() && !name.contains('/'))
    {
        return true;
    }
    kernel_file(path).is_some_and(|(_, rest)| INPUTS.contains(&rest))
}

/// `(KVER, rest)` for a path below `/usr/lib/modules/KVER/`.
fn kernel_file(path: &str) -> Option<(&str, &str)> {
    let inside = path.strip_prefix(MODULES_DIR)?.strip_prefix('/')?;
    let (kernel, rest) = inside.split_once('/')?;
    (!kernel.is_empty() && !rest.is_empty()).then_some((kernel, rest))
}

/// Whether a file name is a kernel module, plain or compressed as kmod reads them.
pub fn is_module(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The files of the tree to stage for depmod, and where each one goes.
pub struct Staging<'a> {
    root: PathBuf,
    files: Vec<&'a FileEntry>,
}

impl Staging<'_> {
    /// The regular files whose bytes must be written at [`Staging::place`]: every
    /// module, the kernel's depmod inputs and the depmod configuration.
    pub fn files(&self) -> &[&FileEntry] {
        &self.files
    }

    /// Where the file at appliance path `path` is staged (its folder exists).
    pub fn place(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

/// `modules.dep` and the rest of depmod's output for every kernel of the tree of
/// `entries` that has modules (none when it has no kernel). `fill` writes the bytes of
/// each of [`Staging::files`] at its [`Staging::place`]; `depmod` is the program to run.
pub fn module_data(
    entries: &[&FileEntry],
    fill: impl FnOnce(&Staging) -> Result<(), (String, io::Error)>,
    depmod: &Path,
) -> Result<Generated, DepmodError> {
    let mut sorted: Vec<&FileEntry> = entries.to_vec();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let kernels = kernels(&sorted);
    let Some(first) = kernels.first() else {
        return Ok(Generated::default());
    };
    let stage =
        crate::scratch::private_dir("appliance-depmod").map_err(|source| DepmodError::Stage {
            path: std::env::temp_dir(),
            source,
        })?;
    let staging = Staging {
        root: stage.path.clone(),
        files: Vec::new(),
    };
    let stage_error = |path: PathBuf| move |source| DepmodError::Stage { path, source };
    // kmod before 31 looks in BASE/lib/modules, later ones in BASE/usr/lib/modules.
    fs::create_dir_all(staging.place("/usr/lib")).map_err(stage_error(staging.place("/usr")))?;
    std::os::unix::fs::symlink("usr/lib", staging.place("/lib"))
        .map_err(stage_error(staging.place("/lib")))?;
    for dir in CONFIG_DIRS {
        fs::create_dir_all(staging.place(dir)).map_err(stage_error(staging.place(dir)))?;
    }
    let wanted = |entry: &FileEntry| match kernel_file(&entry.path) {
        Some((kernel, rest)) => {
            kernels.contains(&kernel)
                && (INPUTS.contains(&rest) || (rest.contains('/') && is_module(rest)))
        }
        None => depmod_reads(&entry.path),
    };
    let mut files = Vec::new();
    let mut links = Vec::new();
    for entry in sorted {
        let inside = kernel_file(&entry.path).is_some_and(|(k, _)| kernels.contains(&k));
        match entry.kind {
            FileKind::Dir if inside => {
                let at = staging.place(&entry.path);
                fs::create_dir_all(&at).map_err(stage_error(at))?;
            }
            FileKind::File if wanted(entry) => files.push(entry),
            FileKind::Hardlink if wanted(entry) => links.push(entry),
            _ => {}
        }
    }
    let staging = Staging { files, ..staging };
    fill(&staging).map_err(|(path, source)| DepmodError::Read {
        kernel: kernel_file(&path).map_or(first.to_string(), |(k, _)| k.to_string()),
        path,
        source,
    })?;
    for link in links {
        let target = link.target.as_deref().unwrap_or_default();
        let at = staging.place(&link.path);
        fs::hard_link(staging.place(target), &at).map_err(stage_error(at))?;
    }

    let mut generated = Generated::default();
    for kernel in &kernels {
        run(depmod, &staging, kernel)?;
        let dir = staging.place(&format!("{MODULES_DIR}/{kernel}"));
        let mut made: Vec<String> = fs::read_dir(&dir)
            .and_then(|list| {
                list.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .map_err(stage_error(dir.clone()))?;
        made.retain(|name| name.starts_with("modules.") && !INPUTS.contains(&name.as_str()));
        made.sort();
        for name in made {
            let at = dir.join(&name);
            let bytes = fs::read(&at).map_err(stage_error(at))?;
            generated.root_file(&format!("{MODULES_DIR}/{kernel}/{name}"), bytes);
        }
    }
    Ok(generated)
}

/// The kernel versions of the tree that have at least one module, sorted.
fn kernels<'a>(sorted: &[&'a FileEntry]) -> Vec<&'a str> {
    let mut found: Vec<&str> = sorted
        .iter()
        .filter(|e| matches!(e.kind, FileKind::File | FileKind::Hardlink))
        .filter_map(|e| kernel_file(&e.path))
        .filter(|(_, rest)| rest.contains('/') && is_module(rest))
        .map(|(kernel, _)| kernel)
        .collect();
    found.dedup();
    found
}

fn run(depmod: &Path, staging: &Staging, kernel: &str) -> Result<(), DepmodError> {
    let mut command = Command::new(depmod);
    command.arg("-b").arg(&staging.root);
    for dir in CONFIG_DIRS {
        command.arg("-C").arg(staging.place(dir));
    }
    let output = command
        .arg(kernel)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => DepmodError::Missing {
                program: depmod.to_path_buf(),
                kernel: kernel.to_string(),
            },
            _ => DepmodError::Depmod {
                kernel: kernel.to_string(),
                detail: format!("cannot run {}: {e}", depmod.display()),
            },
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DepmodError::Depmod {
            kernel: kernel.to_string(),
            detail: format!(
                "{} exited with {}: {}",
                depmod.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// The host's `depmod`: kmod puts it in `/sbin` (`/usr/sbin` on merged /usr), which a
/// non-root PATH often lacks.
pub fn host_depmod() -> PathBuf {
    ["/usr/sbin/depmod", "/sbin/depmod"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("depmod"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A module of the host's kernel, when it has one: depmod needs real ELF modules.
    fn host_kernel() -> Option<(String, PathBuf)> {
        let dir = Path::new(MODULES_DIR);
        let mut kernels: Vec<_> = fs::read_dir(dir).ok()?.flatten().collect();
        kernels.sort_by_key(|e| e.file_name());
        kernels.into_iter().find_map(|e| {
            let kernel = e.file_name().to_string_lossy().into_owned();
            let module = e.path().join("kernel/fs/ext4/ext4.ko");
            (module.is_file() && host_depmod().is_file()).then_some((kernel, e.path()))
        })
    }

    fn file(path: &str) -> FileEntry {
        FileEntry {
            kind: FileKind::File,
            ..FileEntry::directory(path)
        }
    }

    /// A tree with three of the host kernel's modules (ext4 and two it depends on) and
    /// its depmod inputs, and the bytes of each file.
    fn tree(kernel: &str, host: &Path) -> (Vec<FileEntry>, HashMap<String, PathBuf>) {
        let base = format!("{MODULES_DIR}/{kernel}");
        let mut entries = vec![
            FileEntry::directory("/usr"),
            FileEntry::directory("/usr/lib"),
            FileEntry::directory(MODULES_DIR),
            FileEntry::directory(&base),
        ];
        let mut bytes = HashMap::new();
        for dir in [
            "kernel",
            "kernel/fs",
            "kernel/fs/ext4",
            "kernel/fs/jbd2",
            "kernel/lib",
        ] {
            entries.push(FileEntry::directory(&format!("{base}/{dir}")));
        }
        for name in [
            "modules.order",
            "modules.builtin",
            "modules.builtin.modinfo",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/lib/crc16.ko",
        ] {
            let path = format!("{base}/{name}");
            entries.push(file(&path));
            bytes.insert(path, host.join(name));
        }
        (entries, bytes)
    }

    fn fill_from(
        bytes: &HashMap<String, PathBuf>,
    ) -> impl FnOnce(&Staging) -> Result<(), (String, io::Error)> + '_ {
        move |staging: &Staging| {
            for entry in staging.files() {
                fs::copy(&bytes[&entry.path], staging.place(&entry.path))
                    .map_err(|e| (entry.path.clone(), e))?;
            }
            Ok(())
        }
    }

    #[test]
    fn depmod_output_lists_dependencies_and_is_stable() {
        let Some((kernel, host)) = host_kernel() else {
            eprintln!("skipped: the host has no kernel modules or no depmod");
            return;
        };
        let (entries, bytes) = tree(&kernel, &host);
        let refs: Vec<&FileEntry> = entries.iter().collect();
        let made = module_data(&refs, fill_from(&bytes), &host_depmod()).unwrap();
        let names: Vec<&str> = made.entries.iter().map(|e| e.path.as_str()).collect();
        let dep_path = format!("{MODULES_DIR}/{kernel}/modules.dep");
        assert!(names.contains(&dep_path.as_str()), "{names:?}");
        assert!(
            names.iter().all(|n| !n.ends_with("modules.order")),
            "{names:?}"
        );
        let dep = &made.blobs[names.iter().position(|n| *n == dep_path).unwrap()];
        let dep = String::from_utf8_lossy(dep);
        assert!(
            dep.lines()
                .any(|l| l.starts_with("kernel/fs/ext4/ext4.ko:") && l.contains("jbd2.ko")),
            "{dep}"
        );
        for entry in &made.entries {
            assert_eq!((entry.mode, entry.uid, entry.gid), (0o644, 0, 0));
        }
        let again = module_data(&refs, fill_from(&bytes), &host_depmod()).unwrap();
        assert_eq!(again.blobs, made.blobs);
    }

    #[test]
    fn no_modules_means_nothing_to_make_and_no_depmod_run() {
        let entries = [
            FileEntry::directory("/usr"),
            file("/usr/lib/modules/6.1.0-1-amd64/modules.order"),
        ];
        let refs: Vec<&FileEntry> = entries.iter().collect();
        let made = module_data(&refs, |_| Ok(()), Path::new("/nonexistent/depmod")).unwrap();
        assert!(made.entries.is_empty());
    }

    #[test]
    fn missing_depmod_and_unreadable_modules_name_the_kernel() {
        let entries = [
            FileEntry::directory(MODULES_DIR),
            FileEntry::directory("/usr/lib/modules/6.1.0-1-amd64"),
            FileEntry::directory("/usr/lib/modules/6.1.0-1-amd64/kernel"),
            file("/usr/lib/modules/6.1.0-1-amd64/kernel/a.ko.xz"),
        ];
        let refs: Vec<&FileEntry> = entries.iter().collect();
        let err = module_data(&refs, |_| Ok(()), Path::new("/nonexistent/depmod")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "depmod (/nonexistent/depmod) is not installed: the tree holds kernel \
             6.1.0-1-amd64, whose modules.dep depmod makes; install kmod"
        );
        let err = module_data(
            &refs,
            |staging| {
                let path = staging.files()[0].path.clone();
                Err((path, io::Error::other("gone")))
            },
            &host_depmod(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read /usr/lib/modules/6.1.0-1-amd64/kernel/a.ko.xz for depmod \
             (kernel 6.1.0-1-amd64): gone"
        );
    }

    #[test]
    fn depmod_reads_inputs_and_configuration_but_not_modules() {
        assert!(depmod_reads("/usr/lib/modules/6.1.0-1-amd64/modules.order"));
        assert!(depmod_reads(
            "/usr/lib/modules/6.1.0-1-amd64/modules.builtin.modinfo"
        ));
        assert!(depmod_reads("/etc/depmod.d/ubuntu.conf"));
        assert!(!depmod_reads(
            "/usr/lib/modules/6.1.0-1-amd64/kernel/fs/ext4/ext4.ko"
        ));
        assert!(!depmod_reads("/usr/lib/modules/6.1.0-1-amd64/modules.dep"));
        assert!(!depmod_reads("/usr/lib/modules/modules.order"));
        assert!(is_module("a.ko") && is_module("a.ko.zst") && !is_module("a.kop"));
    }
}
