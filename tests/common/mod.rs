//! Test support: a hermetic world built by code. A fake sysroot holds a dpkg database
//! (status, info lists, md5sums), the packages' files and merged-/usr links; a fake
//! workspace holds groups and flavors. Nothing here touches the real host.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One package to install into a fake sysroot.
pub struct FakePackage {
    pub name: &'static str,
    pub version: &'static str,
    pub depends: &'static str,
    pub essential: bool,
    /// Extra status fields, e.g. "Provides: foo\n".
    pub extra: &'static str,
    /// (path, content) of regular files; parents are listed automatically.
    pub files: Vec<(String, Vec<u8>)>,
}

impl FakePackage {
    pub fn new(name: &'static str, version: &'static str) -> FakePackage {
        FakePackage {
            name,
            version,
            depends: "",
            essential: false,
            extra: "",
            files: Vec::new(),
        }
    }

    pub fn depends(mut self, depends: &'static str) -> FakePackage {
        self.depends = depends;
        self
    }

    pub fn extra(mut self, extra: &'static str) -> FakePackage {
        self.extra = extra;
        self
    }

    pub fn essential(mut self) -> FakePackage {
        self.essential = true;
        self
    }

    pub fn file(mut self, path: &str, content: &str) -> FakePackage {
        self.files
            .push((path.to_string(), content.as_bytes().to_vec()));
        self
    }

    /// `count` files `DIR/00000`... of `size` bytes each, every one different (bytes
    /// drawn from the path), so that a sysroot takes measurable time to copy and hash.
    pub fn bulk(mut self, dir: &str, count: usize, size: usize) -> FakePackage {
        for i in 0..count {
            let path = format!("{dir}/{i:05}");
            let content = noise(&path, size);
            self.files.push((path, content));
        }
        self
    }
}

/// `size` pseudo-random bytes, always the same for the same `seed`.
pub fn noise(seed: &str, size: usize) -> Vec<u8> {
    let mut bytes = vec![0; size];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// Writes a Debian-12-like sysroot with merged /usr under `root`.
pub fn fake_sysroot(root: &Path, packages: &[FakePackage]) {
    for dir in ["usr/bin", "usr/sbin", "usr/lib", "etc", "var/lib/dpkg/info"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (link, target) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")] {
        symlink(target, root.join(link)).unwrap();
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n",
    )
    .unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\nwww-data:x:33:\n").unwrap();
    let mut status = String::new();
    for p in packages {
        status += &format!(
            "Package: {}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: {}\n",
            p.name, p.version
        );
        if p.essential {
            status += "Essential: yes\n";
        }
        if !p.depends.is_empty() {
            status += &format!("Depends: {}\n", p.depends);
        }
        status += p.extra;
        status += &format!(
            "Description: fake {}\n a package made by the test\n .\n second paragraph\n\n",
            p.name
        );
        let mut listed = vec!["/.".to_string()];
        for (path, content) in &p.files {
            let mut parent = Path::new(path).parent();
            let mut parents = Vec::new();
            while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
                parents.push(dir.to_string_lossy().into_owned());
                parent = dir.parent();
            }
            for dir in parents.into_iter().rev() {
                if !listed.contains(&dir) {
                    listed.push(dir);
                }
            }
            listed.push(path.to_string());
            let host = root.join(path.trim_start_matches('/'));
            fs::create_dir_all(host.parent().unwrap()).unwrap();
            fs::write(&host, content).unwrap();
            let mode = if path.contains("/bin/") { 0o755 } else { 0o644 };
            fs::set_permissions(&host, fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::write(
            root.join(format!("var/lib/dpkg/info/{}.list", p.name)),
            listed.join("\n") + "\n",
        )
        .unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
}

/// A workspace with the given group files and the three example flavors.
pub fn fake_workspace(root: &Path, groups: &[(&str, &str)]) {
    fs::create_dir_all(root.join("groups")).unwrap();
    fs::create_dir_all(root.join("flavors")).unwrap();
    for (name, text) in groups {
        fs::write(root.join(format!("groups/{name}.kdl")), text).unwrap();
    }
    let flavors_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("flavors");
    for entry in fs::read_dir(flavors_src).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), root.join("flavors").join(entry.file_name())).unwrap();
    }
}

/// A workspace with the project's own example groups and flavors, and a fresh store.
pub fn example_workspace(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["groups", "flavors"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in fs::read_dir(root.join(sub)).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.join(sub).join(entry.file_name())).unwrap();
        }
    }
}

/// The real `appliance` binary with `args`, to run in `dir`.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_appliance"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// Runs the real `appliance` binary in `dir`.
pub fn appliance(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

/// Runs `appliance` and returns stdout, failing the test with stderr when it fails.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    succeeds(command(dir, args))
}

/// Runs `appliance`, expects failure without a panic, and returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    refused(command(dir, args))
}

/// Runs `command` and returns stdout, failing the test with stderr when it fails.
pub fn succeeds(mut command: Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `command`, expects it to fail with appliance's exit code 1 and no panic, and
/// returns stderr.
pub fn refused(mut command: Command) -> String {
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "{command:?} should fail; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code of {command:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "panic in {command:?}: {stderr}"
    );
    stderr
}

/// A hermetic world in a fresh temporary folder: a fake sysroot, a fake workspace, and a
/// private `TMPDIR` for the runs, so that what they leave there can be checked.
pub struct World {
    /// The workspace (where runs start).
    pub ws: PathBuf,
    /// The fake host root, passed as `--sysroot`.
    pub sysroot: PathBuf,
    /// The runs' `TMPDIR`.
    pub tmp: PathBuf,
    /// Last, so the folders go after whatever a test keeps in them.
    pub dir: tempfile::TempDir,
}

impl World {
    /// A world with `packages` installed in the sysroot and `groups` in the workspace.
    pub fn new(packages: &[FakePackage], groups: &[(&str, &str)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let sysroot = dir.path().join("sysroot");
        let tmp = dir.path().join("tmp");
        fake_sysroot(&sysroot, packages);
        fake_workspace(&ws, groups);
        fs::create_dir(&tmp).unwrap();
        World {
            ws,
            sysroot,
            tmp,
            dir,
        }
    }

    /// `appliance --sysroot SYSROOT ARGS...` in the workspace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = command(&self.ws, &["--sysroot", self.sysroot.to_str().unwrap()]);
        command.args(args).env("TMPDIR", &self.tmp);
        command
    }

    /// Runs [`World::command`] and returns stdout; fails the test when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        succeeds(self.command(args))
    }

    /// Runs [`World::command`], expects failure, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        refused(self.command(args))
    }
}

/// The sorted names in `dir`.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// BLAKE3 over a whole tree: every path (sorted), its type, mode, owners, mtime, and
/// its content or link target (not a directory's size, which is the filesystem's
/// business). Equal for two materialisations of one lock.
pub fn tree_digest(root: &Path) -> String {
    fn walk(root: &Path, dir: &Path, hasher: &mut blake3::Hasher) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap();
            hasher.update(rel.as_os_str().as_encoded_bytes());
            let head = [meta.mode(), meta.uid(), meta.gid()];
            hasher.update(format!("\0{head:?} {}\0", meta.mtime()).as_bytes());
            if meta.is_dir() {
                walk(root, &path, hasher);
            } else if meta.file_type().is_symlink() {
                hasher.update(fs::read_link(&path).unwrap().as_os_str().as_encoded_bytes());
            } else if meta.is_file() {
                hasher.update(&fs::read(&path).unwrap());
            }
        }
    }
    let mut hasher = blake3::Hasher::new();
    let meta = fs::symlink_metadata(root).unwrap();
    hasher.update(format!("{:o}", meta.mode()).as_bytes());
    walk(root, root, &mut hasher);
    hasher.finalize().to_hex().to_string()
}

/// BLAKE3 of a file, hex.
pub fn digest(path: &Path) -> String {
    blake3::hash(&fs::read(path).unwrap()).to_hex().to_string()
}

/// Whether the tests run as root (CI does), for the parts that need it.
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
