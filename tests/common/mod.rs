//! Test support: a hermetic world built by code. A fake sysroot holds a dpkg database
//! (status, info lists, md5sums), the packages' files and merged-/usr links; a fake
//! workspace holds groups and flavors. Nothing here touches the real host.

#![allow(dead_code)]

pub mod registry;
pub mod rpm_world;
pub mod travel;

use std::collections::{BTreeMap, BTreeSet};
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

/// The smallest host most end-to-end tests start from: an essential base-files, libc6,
/// and a bash depending on both that holds `/bin/bash` and `bash_files` (path, content).
/// Each test extends the list with the packages it is about.
pub fn core_packages(bash_files: &[(&str, &str)]) -> Vec<FakePackage> {
    let bash = (bash_files.iter()).fold(
        FakePackage::new("bash", "5.2.15-2+b2")
            .depends("base-files (>= 2.1.12), libc6 (>= 2.36)")
            .file("/bin/bash", "#!fake bash\n"),
        |bash, (path, content)| bash.file(path, content),
    );
    vec![
        FakePackage::new("base-files", "12.4+deb12u5")
            .essential()
            .file("/etc/debian_version", "12.5\n"),
        FakePackage::new("libc6", "2.36-9+deb12u4")
            .file("/usr/lib/x86_64-linux-gnu/libc.so.6", "not really libc"),
        bash,
    ]
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

/// Packages whose files take a measurable time to copy and hash, and fill a small
/// filesystem: `bulk` has 1000 files of 4 KiB and two of 1 MiB, on top of base-files
/// (whose ld.so.conf makes compile run ldconfig on a tree it stages in TMPDIR), libc6
/// and bash.
pub fn bulky_packages() -> Vec<FakePackage> {
    vec![
        FakePackage::new("base-files", "12.4+deb12u5")
            .essential()
            .file("/etc/debian_version", "12.5\n")
            .file("/etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"),
        FakePackage::new("libc6", "2.36-9+deb12u4")
            .file("/usr/lib/x86_64-linux-gnu/libc.so.6", "not really libc"),
        FakePackage::new("bash", "5.2.15-2+b2")
            .depends("base-files, libc6")
            .file("/bin/bash", "#!fake bash\n"),
        FakePackage::new("bulk", "1.0-1")
            .bulk("/usr/share/bulk", 1000, 4096)
            .bulk("/usr/lib/bulk", 2, 1 << 20),
    ]
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
        let md5sums: String = (p.files.iter())
            .map(|(path, content)| {
                use md5::Digest;
                let md5 = hex::encode(md5::Md5::digest(content));
                format!("{md5}  {}\n", path.trim_start_matches('/'))
            })
            .collect();
        fs::write(
            root.join(format!("var/lib/dpkg/info/{}.md5sums", p.name)),
            md5sums,
        )
        .unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), status).unwrap();
}

/// Builds `name_version_amd64.deb` with `dpkg-deb --build` from (path, content) files,
/// with more control members (`postinst`, `triggers`...: (name, content)), maintainer
/// scripts executable.
pub fn build_deb(
    dir: &Path,
    name: &str,
    version: &str,
    files: &[(&str, impl AsRef<[u8]>)],
    conffiles: &[&str],
    control: &[(&str, &str)],
) {
    build_deb_with(dir, name, version, "", files, conffiles, control);
}

/// [`build_deb`] with more `fields` in its control file (`Pre-Depends: x\n`).
pub fn build_deb_with(
    dir: &Path,
    name: &str,
    version: &str,
    fields: &str,
    files: &[(&str, impl AsRef<[u8]>)],
    conffiles: &[&str],
    control: &[(&str, &str)],
) {
    let root = dir.join(format!("{name}-build"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    for (member, content) in control {
        let path = root.join("DEBIAN").join(member);
        fs::write(&path, content).unwrap();
        let script = ["preinst", "postinst", "prerm", "postrm", "config"].contains(member);
        let mode = if script { 0o755 } else { 0o644 };
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: t <t@example.org>\n{fields}Description: test\n"),
    )
    .unwrap();
    if !conffiles.is_empty() {
        fs::write(root.join("DEBIAN/conffiles"), conffiles.join("\n") + "\n").unwrap();
    }
    for (path, content) in files {
        let target = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::write(target, content).unwrap();
    }
    let deb = dir.join(format!("{name}_{version}_amd64.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// The arguments of a materialise of `group` for flavor openvz, in `format`, to `out`.
pub fn materialise<'a>(group: &'a str, format: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "materialise",
        group,
        "--flavor",
        "openvz",
        "--format",
        format,
        "-o",
        out,
    ]
}

/// The arguments of a materialise of revision `version` of `group` for flavor openvz
/// to `out`, its format by OUT's name.
pub fn materialise_revision<'a>(group: &'a str, version: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "materialise",
        group,
        "--flavor",
        "openvz",
        "--version",
        version,
        "-o",
        out,
    ]
}

/// The real `appliance` binary with `args`, to run in `dir`.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    through(&[], dir, args)
}

/// What runs a program as `nobody` (uid and gid 65534 on Debian); needs root.
pub const AS_NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// [`command`], run through the program and arguments `prefix` (such as [`AS_NOBODY`])
/// when there are any.
pub fn through(prefix: &[&str], dir: &Path, args: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_appliance");
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(binary);
            command
        }
        None => Command::new(binary),
    };
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
        self.through(&[], args)
    }

    /// [`World::command`] as `nobody`; see [`World::give_to_nobody`].
    pub fn as_nobody(&self, args: &[&str]) -> Command {
        self.through(AS_NOBODY, args)
    }

    fn through(&self, prefix: &[&str], args: &[&str]) -> Command {
        let mut all = vec!["--sysroot", self.sysroot.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut command = through(prefix, &self.ws, &all);
        command.env("TMPDIR", &self.tmp);
        command
    }

    /// Fills the sysroot's folder `dir` with 50 files of 2 KiB whose bytes come from
    /// `round`: host files for a `hostfile` glob, new blobs for each round's compile.
    pub fn host_files(&self, dir: &str, round: impl std::fmt::Display) {
        let dir = self.sysroot.join(dir);
        fs::create_dir_all(&dir).unwrap();
        for i in 0..50 {
            let bytes = noise(&format!("{round}/{i}"), 2048);
            fs::write(dir.join(format!("{i:02}")), bytes).unwrap();
        }
    }

    /// Makes the workspace and TMPDIR nobody's and the folders above them searchable,
    /// for runs [`World::as_nobody`] (the sysroot is readable by all already).
    pub fn give_to_nobody(&self) {
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&self.ws)
            .arg(&self.tmp)
            .status()
            .unwrap();
        assert!(chown.success());
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

/// Writes `content` to `path` with permissions `mode`, making its folders.
/// The (short) lock id of the first line a compile printed.
pub fn lock_id(compiled: &str) -> Option<String> {
    let after = compiled.split("lock ").nth(1)?;
    let id = after
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()?;
    Some(id.to_string())
}

/// The paths whose entries differ between two `show --json` outputs of one group's locks
/// (`ws_a`'s `version_a` and `ws_b`'s `version_b`): how a test that expects one lock id
/// says where two configure runs differ.
pub fn differing_paths(
    (ws_a, version_a): (&Path, &str),
    (ws_b, version_b): (&Path, &str),
    group: &str,
    flavor: &str,
) -> Vec<String> {
    let files = |ws: &Path, version: &str| -> Vec<serde_json::Value> {
        let shown = ok(
            ws,
            &[
                "show",
                group,
                "--flavor",
                flavor,
                "--version",
                version,
                "--json",
            ],
        );
        let lock: serde_json::Value = serde_json::from_str(&shown).unwrap();
        lock["lock"]["files"].as_array().unwrap().clone()
    };
    let (a, b) = (files(ws_a, version_a), files(ws_b, version_b));
    let only = |x: &[serde_json::Value], y: &[serde_json::Value]| -> Vec<String> {
        (x.iter())
            .filter(|e| !y.contains(e))
            .map(|e| e["path"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut paths = only(&a, &b);
    paths.extend(only(&b, &a));
    paths.sort();
    paths.dedup();
    paths
}

pub fn write_file(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
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

/// What a folder holds: every path below it with its kind, mode, owner, size and a
/// digest of its content (or its link text).
pub type Snapshot = BTreeMap<PathBuf, String>;

/// The [`Snapshot`] of `dir`: special files are described, never opened.
pub fn snapshot(dir: &Path) -> Snapshot {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let t = meta.file_type();
        let what = if t.is_dir() {
            for child in fs::read_dir(&path).unwrap() {
                todo.push(child.unwrap().path());
            }
            "dir".to_string()
        } else if t.is_symlink() {
            format!("-> {}", fs::read_link(&path).unwrap().display())
        } else if t.is_file() {
            blake3::hash(&fs::read(&path).unwrap()).to_hex().to_string()
        } else {
            format!("special {:o} {}", meta.mode(), meta.rdev())
        };
        let rel = path.strip_prefix(dir).unwrap().to_path_buf();
        out.insert(
            rel,
            format!(
                "{what} {:o} {}:{} {}",
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.len()
            ),
        );
    }
    out
}

/// BLAKE3 of a file, hex.
pub fn digest(path: &Path) -> String {
    blake3::hash(&fs::read(path).unwrap()).to_hex().to_string()
}

/// What an output is: absent, or the BLAKE3 of its bytes or of its tree.
pub fn output_state(out: &Path) -> Option<String> {
    let meta = fs::symlink_metadata(out).ok()?;
    Some(if meta.is_dir() {
        tree_digest(out)
    } else {
        digest(out)
    })
}

/// Every revision the repository `repo` holds, as (address, lock id), once SQLite's
/// integrity check has passed and each has loaded with its lock id verified against its
/// rows: a repository with no partial revision.
pub fn verified_revisions(repo: &Path) -> BTreeSet<(String, String)> {
    let conn = rusqlite::Connection::open(repo).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{}", repo.display());
    drop(conn);
    let repository = appliance::repo::Repository::open_read_only(repo).unwrap();
    let mut held = BTreeSet::new();
    for r in repository.revisions().unwrap() {
        let spec = format!("{}-{}", r.version, r.revision);
        let loaded = repository
            .load(&r.group, &r.flavor, Some(&spec))
            .unwrap_or_else(|e| panic!("revision {spec} does not load: {e}"));
        assert_eq!(loaded.lock_id, r.lock_id);
        held.insert((format!("{}={spec}{}", r.group, r.flavor), r.lock_id));
    }
    held
}

/// The blobs under final names, each checked to hold exactly the bytes its name says,
/// and the other files of the store (temporaries).
pub fn blob_store(store: &Path) -> (BTreeSet<String>, Vec<String>) {
    let mut finals = BTreeSet::new();
    let mut others = Vec::new();
    for shard in fs::read_dir(store).unwrap() {
        let shard = shard.unwrap().path();
        let prefix = shard.file_name().unwrap().to_string_lossy().into_owned();
        for file in fs::read_dir(&shard).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let final_name = name.len() == 64 && name.starts_with(&prefix);
            if final_name && !name.starts_with('.') {
                assert_eq!(digest(&path), name, "a partial blob under its final name");
                finals.insert(name);
            } else {
                others.push(format!("{prefix}/{name}"));
            }
        }
    }
    (finals, others)
}

/// Writes a line past the test harness's capture (which takes only `print!` and
/// `eprint!`), so that CI logs show it.
pub fn report(line: &str) {
    use std::io::Write;
    std::io::stderr()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
}

/// A filesystem mounted for a test, unmounted when dropped, even when the test fails.
pub struct Mount(PathBuf);

impl Mount {
    /// A tmpfs of `size` (`2m`...) at `at`, made if missing. Needs root.
    pub fn tmpfs(at: &Path, size: &str) -> Mount {
        fs::create_dir_all(at).unwrap();
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ],
            at,
        );
        Mount(at.to_path_buf())
    }

    /// `from` bound at `at`, a file or folder that exists. Needs root.
    pub fn bind(from: &Path, at: &Path) -> Mount {
        mount(&["--bind", from.to_str().unwrap()], at);
        Mount(at.to_path_buf())
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Makes it read-only.
    pub fn read_only(&self) {
        mount(&["-o", "remount,ro"], &self.0);
    }

    /// Fills it with a file `.filler`, then frees `spare` bytes of it: a filesystem
    /// with that much room left.
    pub fn fill(&self, spare: u64) {
        use std::io::Write;
        let path = self.0.join(".filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0xa5; 64 << 10];
        let full = loop {
            match file.write(&chunk) {
                Ok(0) => break None,
                Ok(_) => {}
                Err(e) => break Some(e),
            }
        };
        let e = full.expect("the filesystem never filled");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(spare)).unwrap();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazily when busy: a test failing half-way may still hold a file in it.
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn mount(args: &[&str], at: &Path) {
    let out = Command::new("mount").args(args).arg(at).output().unwrap();
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a host program; its stdout, failing the test with its output when it fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether the tests run as root (CI does), for the parts that need it.
pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A tree booted under `systemd-nspawn --boot` (no network but its own loopback), for
/// as long as this lives: queried through `nsenter`, since the host's PID 1 may not be
/// systemd, and powered off when dropped.
pub struct Booted {
    nspawn: std::process::Child,
    leader: u32,
    log: PathBuf,
}

impl Booted {
    /// Boots `root` and waits for its init to start.
    pub fn start(root: &Path) -> Booted {
        let log = root.with_extension("boot.log");
        let out = fs::File::create(&log).unwrap();
        // A name of its own: nspawn keeps a folder by machine name in /run, which on a
        // host whose /run is no tmpfs outlives the machine, and it refuses to boot
        // another of that name (the folder's name by default) while that is there.
        static BOOTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let machine = format!(
            "--machine=appliance-test-{}-{}",
            std::process::id(),
            BOOTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let nspawn = Command::new("systemd-nspawn")
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--private-network",
                &machine,
            ])
            .args(["--console=pipe", "-D"])
            .arg(root)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("systemd-nspawn runs (package systemd-container)");
        // nspawn's first child is a helper that makes the container's init and exits:
        // the leader is the child that is PID 1 of a namespace of its own.
        let is_init = |pid: &str| {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            (status.lines())
                .find_map(|line| line.strip_prefix("NSpid:"))
                .is_some_and(|ids| {
                    let ids: Vec<&str> = ids.split_whitespace().collect();
                    ids.len() > 1 && ids.last() == Some(&"1")
                })
        };
        let started = std::time::Instant::now();
        let leader = loop {
            let children = fs::read_to_string(format!(
                "/proc/{}/task/{}/children",
                nspawn.id(),
                nspawn.id()
            ))
            .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().find(|pid| is_init(pid)) {
                break pid.parse().unwrap();
            }
            assert!(started.elapsed().as_secs() < 30, "nspawn started no init");
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        Booted {
            nspawn,
            leader,
            log,
        }
    }

    /// Waits until the system has booted and says it is `running` with no failed unit.
    pub fn is_running(&self) {
        // Until systemd has its bus there is nothing to ask (systemctl says `offline`);
        // then it says when it is done.
        let started = std::time::Instant::now();
        let state = loop {
            let state = self.nsenter("-a", &["systemctl", "is-system-running"]);
            let state = state.trim().to_string();
            let booting = ["", "offline", "initializing", "starting"].contains(&state.as_str());
            if !booting || started.elapsed().as_secs() > 180 {
                break state;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        };
        let failed = self.inside(&["systemctl", "--failed", "--no-legend", "--plain"]);
        assert_eq!(
            state.trim(),
            "running",
            "failed units: {failed}\nboot log:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
        assert!(failed.trim().is_empty(), "{failed}");
    }

    /// Runs a program of the tree inside the container; fails the test if it fails.
    pub fn inside(&self, argv: &[&str]) -> String {
        self.nsenter("-a", argv)
    }

    /// Runs a program of the host in the container's network only (its loopback).
    pub fn net(&self, argv: &[&str]) -> String {
        self.nsenter("-n", argv)
    }

    fn nsenter(&self, namespaces: &str, argv: &[&str]) -> String {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), namespaces, "--"])
            .args(argv)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() || argv.contains(&"is-system-running"),
            "{argv:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        // SIGRTMIN+4 asks systemd to power off; nspawn ends with it.
        unsafe { libc::kill(self.leader as i32, libc::SIGRTMIN() + 4) };
        for _ in 0..300 {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// `appliance boot ARGS...` run in a folder, its console (stdout and stderr) read line
/// by line as it comes: in a process group of its own, so that qemu goes with it when
/// it is killed, as it is when this is dropped still running (a failed test leaves no
/// qemu behind).
pub struct Console {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Everything read so far, a line each.
    pub output: String,
}

impl Console {
    /// Starts `appliance ARGS...` in `dir`, its input a pipe [`Console::send`] writes to.
    pub fn start(dir: &Path, args: &[&str]) -> Console {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = command(dir, args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        let stdout = Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>;
        let stderr = Box::new(child.stderr.take().unwrap());
        for stream in [stdout, stderr] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Console {
            child,
            lines,
            output: String::new(),
        }
    }

    /// Reads until a line holds `marker` (true), the console closes or `deadline` passes.
    pub fn wait_for(&mut self, marker: &str, deadline: std::time::Instant) -> bool {
        self.read_until(Some(marker), deadline)
    }

    /// Reads until a line holds `marker`, if one is given (true), the console closes or
    /// `deadline` passes.
    fn read_until(&mut self, marker: Option<&str>, deadline: std::time::Instant) -> bool {
        use std::sync::mpsc::RecvTimeoutError;
        while std::time::Instant::now() < deadline {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                Ok(line) => {
                    self.output.push_str(&line);
                    self.output.push('\n');
                    if marker.is_some_and(|m| line.contains(m)) {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        false
    }

    /// Types `bytes` on the console.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(bytes).and_then(|()| stdin.flush()).unwrap();
    }

    /// Ends the input, as a pipe whose writer is done.
    pub fn end_input(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Reads the rest until the console closes or `deadline`, then gives the process 10
    /// more seconds to end: its exit code, or `None` when it had to be killed.
    pub fn finish(mut self, deadline: std::time::Instant) -> (String, Option<i32>) {
        self.read_until(None, deadline);
        let ending = std::time::Instant::now();
        let mut status = self.child.try_wait().unwrap();
        while status.is_none() && ending.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(100));
            status = self.child.try_wait().unwrap();
        }
        let output = std::mem::take(&mut self.output);
        (output, status.and_then(|s| s.code()))
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill has no memory effects; the group is the child's own.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}
