//! Test support: a hermetic world built by code. A fake sysroot holds a dpkg database
//! (status, info lists, md5sums), the packages' files and merged-/usr links; a fake
//! workspace holds groups and flavors. Nothing here touches the real host.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
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
    pub files: Vec<(&'static str, &'static str)>,
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

    pub fn file(mut self, path: &'static str, content: &'static str) -> FakePackage {
        self.files.push((path, content));
        self
    }
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

/// Runs the real `appliance` binary in `dir`.
pub fn appliance(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(args)
        .current_dir(dir)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap()
}

/// Runs `appliance` and returns stdout, failing the test with stderr when it fails.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = appliance(dir, args);
    assert!(
        out.status.success(),
        "appliance {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `appliance`, expects failure without a panic, and returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = appliance(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "appliance {args:?} should fail; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit code for {args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "panic in {args:?}: {stderr}");
    stderr
}

/// BLAKE3 of a file, hex.
pub fn digest(path: &Path) -> String {
    blake3::hash(&fs::read(path).unwrap()).to_hex().to_string()
}

/// Whether the tests run as root (CI does), for the parts that need it.
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}
