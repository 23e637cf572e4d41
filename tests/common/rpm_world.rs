//! A real RPM distribution for the RPM backend's end-to-end tests (issue 13), made by
//! Debian's own `rpmbuild`, `rpm` and `createrepo_c` from spec files written here; no
//! package is committed. Built once per test process, and shared between test binaries
//! through `target/tmp/rpm-world-HASH`, HASH covering every spec: see [`rpm_world`].
//!
//! What it holds, and what each piece is for:
//! - `filesystem` 3.18-1 (noarch): the directory skeleton with merged /usr (`/bin`,
//!   `/sbin`, `/lib`, `/lib64` are links into `/usr`), `/tmp` 1777 and `/root` 0550: lock
//!   entries for directories, links and odd modes.
//! - `setup` 2.14-1 (noarch): `/etc/passwd` and `/etc/group` as `%config(noreplace)`, the
//!   accounts a tree's owners are named from and that scriptlets add to; as Fedora's
//!   setup does, `%verify(not md5 size mtime)`, since every useradd changes them.
//! - `glibc` 2.36-1: the host's `ld-linux-x86-64.so.2` (in `/usr/lib64`, where the
//!   programs' interpreter path `/lib64/...` leads), the other libraries `ldd` says the
//!   shipped programs need (`libc.so.6`, in `/usr/lib`, which the host's loader searches
//!   without a cache), `/usr/sbin/ldconfig` with `Provides: /sbin/ldconfig` (as Fedora's,
//!   under merged /usr), `/usr/bin/getent`, `/etc/ld.so.conf` naming `/usr/lib64`, a
//!   `%ghost` `/etc/ld.so.cache`, `%post -p /sbin/ldconfig` and a `%transfiletriggerin` on
//!   `/usr/lib64` running ldconfig: soname provides made by rpmbuild, `-p` scriptlets and
//!   file triggers. `libfoo` lives in `/usr/lib64`, which the loader finds only through
//!   the cache, so `food` runs only once ldconfig has run.
//! - `busybox` 1.35.0-1: the host's busybox with applet links (`/usr/bin/sh`...,
//!   `/usr/sbin/nologin`) and `Provides: /bin/sh`, as Fedora's bash does under merged /usr
//!   (rpm itself finds `/bin/sh` through the link on disk; metadata alone does not): the
//!   shell every scriptlet runs with. Not its `rpm` applet.
//! - `shadow-utils` 4.13-1: `/usr/sbin/useradd` and `groupadd`, shell scripts that really
//!   append to `/etc/passwd` and `/etc/group` inside a chroot of the world.
//! - `oldfood` 1.0-1: installed, and obsoleted by `food`.
//! - `libfoo` 1.0-1: `libfoo.so.1` built with cc; rpmbuild gives it `libfoo.so.1()(64bit)`.
//! - `libfoo` 1.0-2 (i686): a higher release of the same name for the wrong arch, which a
//!   resolver ranking versions before arches would wrongly take on x86_64.
//! - `food` 2.0-1: a daemon linked to libfoo (so it auto-requires `libfoo.so.1()(64bit)`),
//!   `Requires(pre): shadow-utils` and a `%pre` adding its user and group, a `%post`
//!   writing `/var/lib/food/initialised`, `/usr/lib/sysusers.d/food.conf`,
//!   `%config(noreplace) /etc/food.conf`, `%ghost /var/log/food.log`, `/var/lib/food`
//!   owned by food, a `%doc` and a `%license`, `Requires: (food-data or food-data-alt)`,
//!   `Obsoletes: oldfood < 2` and `Provides: oldfood = 2`; xz payload.
//! - `food-data` 1.0-1 and 1.1-1 (noarch, xz payload): two versions, so the newest is
//!   preferred and an installed one can be upgraded.
//! - `food-data-alt` 1.0-1 (noarch): the rich dependency's other branch, with
//!   `Conflicts: food-data`.
//! - `food-tools` 2.0-1: `Requires: (food-data if food)` (a conditional: with food, only
//!   food-data will do), a file require `/usr/bin/getent` met only by the file's owner,
//!   and `Recommends: food-data-alt`, a weak dependency which, wrongly taken, conflicts.
//!
//! `sysroot` has filesystem, setup, glibc, busybox, shadow-utils and oldfood installed by
//! `rpm --root SYSROOT --dbpath /var/lib/rpm -i` (scriptlets run: a real install); `repo`
//! is a createrepo_c folder with every package; `rpms` is every `.rpm`, a plain pool.
//! Payloads are gzip unless said (glibc and busybox are zstd). Needs root (rpm chroots for
//! scriptlets), like the tests that use it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::tool;

/// The built world's three folders; shared by all tests of a process, so read only: take
/// a [`RpmWorld::copy_to`] to change anything.
pub struct RpmWorld {
    /// A root with the installed part of the world and its `var/lib/rpm/rpmdb.sqlite`.
    pub sysroot: PathBuf,
    /// A createrepo_c folder (`repodata/repomd.xml`) with every package of the world.
    pub repo: PathBuf,
    /// Every built `.rpm`, in one folder.
    pub rpms: PathBuf,
}

impl RpmWorld {
    fn at(dir: &Path) -> RpmWorld {
        RpmWorld {
            sysroot: dir.join("sysroot"),
            repo: dir.join("repo"),
            rpms: dir.join("rpms"),
        }
    }

    /// A private copy of the world in `dir` (made if missing), for tests that change it.
    pub fn copy_to(&self, dir: &Path) -> RpmWorld {
        fs::create_dir_all(dir).unwrap();
        let from = self.sysroot.parent().unwrap();
        for sub in ["sysroot", "repo", "rpms"] {
            let copied = Command::new("cp")
                .arg("-a")
                .arg(from.join(sub))
                .arg(dir)
                .status()
                .unwrap();
            assert!(copied.success(), "cp -a {}", from.join(sub).display());
        }
        RpmWorld::at(dir)
    }

    /// `rpm --root SYSROOT --dbpath /var/lib/rpm ARGS...`'s stdout; fails the test when
    /// rpm fails.
    pub fn rpm(&self, args: &[&str]) -> String {
        rpm_in(&self.sysroot, args)
    }

    /// The path of the built `.rpm` named `NAME-VERSION-RELEASE.ARCH`.
    pub fn rpm_file(&self, nevra: &str) -> PathBuf {
        let path = self.rpms.join(format!("{nevra}.rpm"));
        assert!(path.is_file(), "the RPM world has no {}", path.display());
        path
    }
}

/// `rpm` on the database of `root` (Debian's rpm keeps its own in `~/.rpmdb` unless told).
pub fn rpm_in(root: &Path, args: &[&str]) -> String {
    let root = root.to_str().unwrap();
    let mut all = vec!["--root", root, "--dbpath", "/var/lib/rpm"];
    all.extend_from_slice(args);
    tool("rpm", &all)
}

/// One package of the world: its spec, rpmbuild's `--target`, and whether the sysroot
/// has it installed.
struct Member {
    spec: String,
    target: &'static str,
    installed: bool,
}

/// The world, built on first use. Several test binaries may ask at once: each builds in a
/// private folder and renames it into place, and a loser of that race takes the winner's.
pub fn rpm_world() -> &'static RpmWorld {
    static WORLD: OnceLock<RpmWorld> = OnceLock::new();
    WORLD.get_or_init(|| {
        assert!(
            super::is_root(),
            "the RPM world needs root: rpm chroots to run scriptlets"
        );
        let members = members();
        let mut key = blake3::Hasher::new();
        for m in &members {
            key.update(format!("{}\0{}\0{}\0", m.spec, m.target, m.installed).as_bytes());
        }
        let key = key.finalize().to_hex();
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("rpm-world-{}", &key[..16]));
        if !dir.exists() {
            let building = tmp.join(format!("rpm-world-{}.{}", &key[..16], std::process::id()));
            let _ = fs::remove_dir_all(&building);
            let started = std::time::Instant::now();
            build_world(&building, &members);
            super::report(&format!(
                "RPM world built in {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            if fs::rename(&building, &dir).is_err() {
                assert!(
                    dir.exists(),
                    "cannot move the RPM world to {}",
                    dir.display()
                );
                fs::remove_dir_all(&building).unwrap();
            }
        }
        remove_stale_worlds(tmp, &dir);
        RpmWorld::at(&dir)
    })
}

/// Removes the finished worlds in `tmp` other than `current`: they were built from specs
/// since changed, and no test binary of this source uses them. Worlds still being built
/// (`rpm-world-HASH.PID`) are left to their builders.
fn remove_stale_worlds(tmp: &Path, current: &Path) {
    for entry in fs::read_dir(tmp).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        let finished = name.starts_with("rpm-world-") && !name.contains('.');
        if finished && path != current {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Builds every member into `dir/rpms`, the repository `dir/repo` from all of them, and
/// installs the installed ones into `dir/sysroot`.
fn build_world(dir: &Path, members: &[Member]) {
    let world = RpmWorld::at(dir);
    for folder in [&world.sysroot, &world.repo, &world.rpms] {
        fs::create_dir_all(folder).unwrap();
    }
    let built: Vec<PathBuf> = std::thread::scope(|s| {
        let builds: Vec<_> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let work = dir.join(format!("build/{i}"));
                s.spawn(move || build_rpm_for(&work, &m.spec, m.target))
            })
            .collect();
        builds.into_iter().map(|b| b.join().unwrap()).collect()
    });
    let mut installed = Vec::new();
    for (rpm, member) in built.iter().zip(members) {
        let name = rpm.file_name().unwrap();
        fs::rename(rpm, world.rpms.join(name)).unwrap();
        fs::copy(world.rpms.join(name), world.repo.join(name)).unwrap();
        if member.installed {
            installed.push(world.rpms.join(name).to_str().unwrap().to_string());
        }
    }
    fs::remove_dir_all(dir.join("build")).unwrap();
    tool("createrepo_c", &["--quiet", world.repo.to_str().unwrap()]);
    let mut install = vec!["-i"];
    install.extend(installed.iter().map(String::as_str));
    world.rpm(&install);
}

/// Builds the one binary package of `spec` for x86_64 (or noarch, when the spec says
/// `BuildArch: noarch`) in the rpmbuild tree `dir`, and returns its path.
pub fn build_rpm(dir: &Path, spec: &str) -> PathBuf {
    build_rpm_for(dir, spec, "x86_64")
}

/// [`build_rpm`] for rpmbuild's `--target` (`i686` makes a package of that arch, as long
/// as it compiles nothing). Timestamps come from a fixed `SOURCE_DATE_EPOCH`, no debuginfo
/// or build-id links are made, and nothing is stripped, so that copied host files keep
/// their bytes.
pub fn build_rpm_for(dir: &Path, spec: &str, target: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let spec_path = dir.join("package.spec");
    fs::write(&spec_path, spec).unwrap();
    let topdir = format!("_topdir {}", dir.display());
    let mut args = vec!["-bb", "--quiet", "--target", target, "--define", &topdir];
    for define in [
        "debug_package %{nil}",
        "__os_install_post %{nil}",
        "_build_id_links none",
        "_docdir_fmt %{NAME}",
        "_buildhost rpm-world",
        "use_source_date_epoch_as_buildtime 1",
        "clamp_mtime_to_source_date_epoch 1",
    ] {
        args.extend(["--define", define]);
    }
    args.push(spec_path.to_str().unwrap());
    let out = Command::new("rpmbuild")
        .args(&args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rpmbuild {}: {}",
        spec_path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rpms: Vec<PathBuf> = fs::read_dir(dir.join("RPMS"))
        .unwrap()
        .flat_map(|arch| fs::read_dir(arch.unwrap().path()).unwrap())
        .map(|rpm| rpm.unwrap().path())
        .collect();
    assert_eq!(rpms.len(), 1, "{} built {rpms:?}", spec_path.display());
    rpms.pop().unwrap()
}

/// A spec: the tags every package has, `tags`, a description, then `sections`.
pub fn spec(name: &str, version: &str, release: &str, tags: &str, sections: &str) -> String {
    format!(
        "Name: {name}\nVersion: {version}\nRelease: {release}\nSummary: {name}, of the \
         appliance tests' RPM world\nLicense: MIT\n{tags}\n%description\n{name} of the \
         RPM world.\n\n{sections}"
    )
}

/// Shell lines writing `content` to `path` with `mode`, making its folder (`%` doubled,
/// since rpm expands macros in a spec's sections).
pub fn put(path: &str, mode: &str, content: &str) -> String {
    let content = content.replace('%', "%%");
    format!(
        "mkdir -p \"$(dirname {path})\"\ncat > {path} <<'WORLD_EOF'\n{content}WORLD_EOF\n\
         chmod {mode} {path}\n"
    )
}

/// Shell lines for `%install` copying the host's `from` to `path` in the buildroot.
fn copy_in(from: &Path, path: &str) -> String {
    format!(
        "mkdir -p \"$(dirname %{{buildroot}}{path})\"\n\
         cp -L {} %{{buildroot}}{path}\nchmod 0755 %{{buildroot}}{path}\n",
        from.display()
    )
}

/// The path of the host's program `name`, from `PATH`.
fn host_program(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("the RPM world needs the host's {name}"))
}

/// The shared libraries `ldd` says `programs` load (a static one loads none).
fn host_libraries(programs: &[&Path]) -> std::collections::BTreeSet<PathBuf> {
    let mut libraries = std::collections::BTreeSet::new();
    for program in programs {
        let out = Command::new("ldd").arg(program).output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, to)) => to.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|p| p.starts_with('/')) {
                libraries.insert(PathBuf::from(path));
            }
        }
    }
    libraries
}

/// The library `libfoo.so.1` exports; `food` links against it.
const LIBFOO_C: &str = "int foo_version(void) { return 1; }\n";

const FOOD_C: &str = r#"#include <stdio.h>
int foo_version(void);
int main(void) {
    printf("food 2.0, libfoo %d\n", foo_version());
    return 0;
}
"#;

/// `groupadd [-r] [-g GID] [-f] NAME` (and the long forms), as shadow's does for these
/// options.
const GROUPADD: &str = r#"#!/bin/sh
set -e
kind=user gid=
while [ $# -gt 1 ]; do
    case $1 in
        -r|--system) kind=system; shift ;;
        -g|--gid) gid=$2; shift 2 ;;
        -f|--force) shift ;;
        *) echo "groupadd: unknown option $1" >&2; exit 2 ;;
    esac
done
name=$1
free=$(/usr/libexec/shadow/new-id /etc/group "$name" $kind)
echo "$name:x:${gid:-$free}:" >> /etc/group
"#;

/// `useradd [-r] [-u UID] [-g GROUP] [-d HOME] [-s SHELL] [-c COMMENT] NAME` (and the
/// long forms; home folders are never made); without
/// `-g` the user gets a group of its own name, as shadow's does by default.
const USERADD: &str = r#"#!/bin/sh
set -e
kind=user uid= group= home= shell=/bin/sh comment=
while [ $# -gt 1 ]; do
    case $1 in
        -r|--system) kind=system; shift ;;
        -u|--uid) uid=$2; shift 2 ;;
        -g|--gid) group=$2; shift 2 ;;
        -d|--home-dir) home=$2; shift 2 ;;
        -s|--shell) shell=$2; shift 2 ;;
        -c|--comment) comment=$2; shift 2 ;;
        -M|-m|-N|-U|--no-create-home|--create-home|--user-group) shift ;;
        *) echo "useradd: unknown option $1" >&2; exit 2 ;;
    esac
done
name=$1
free=$(/usr/libexec/shadow/new-id /etc/passwd "$name" $kind)
if [ -z "$group" ]; then
    if [ $kind = system ]; then groupadd -r "$name"; else groupadd "$name"; fi
    group=$name
fi
gid=$(awk -F: -v g="$group" '$1 == g || $3 == g { print $3; exit }' /etc/group)
if [ -z "$gid" ]; then
    echo "useradd: group '$group' does not exist" >&2
    exit 6
fi
echo "$name:x:${uid:-$free}:$gid:$comment:${home:-/home/$name}:$shell" >> /etc/passwd
"#;

/// `new-id FILE NAME system|user`: refuses a NAME FILE (/etc/passwd or /etc/group) has
/// already, as shadow's tools do (exit 9), else prints the id a new entry gets: system ids
/// count down from 999, others up from 1000, as shadow's do.
const NEW_ID: &str = r#"#!/bin/sh
if grep -q "^$2:" "$1"; then
    echo "$2 is in $1 already" >&2
    exit 9
fi
awk -F: -v kind="$3" '{ used[$3] = 1 }
END {
    if (kind == "system") { for (i = 999; i > 0 && (i in used); i--) ; }
    else { for (i = 1000; i in used; i++) ; }
    print i
}' "$1"
"#;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin
";

const GROUP: &str = "root:x:0:
bin:x:1:
daemon:x:2:
wheel:x:10:
nobody:x:65534:
";

/// The applets the busybox package links, all in /usr/bin but nologin. Not `rpm`: the
/// real one must be what answers inside a materialised tree.
const APPLETS: &[&str] = &[
    "sh", "ash", "awk", "cat", "chmod", "chown", "cp", "cut", "echo", "env", "false", "grep",
    "head", "id", "ln", "ls", "mkdir", "mv", "readlink", "rm", "rmdir", "sed", "sleep", "sort",
    "stat", "tail", "test", "touch", "tr", "true", "uname", "wc",
];

/// Every package of the world, as the module doc describes them.
fn members() -> Vec<Member> {
    let busybox = host_program("busybox");
    let getent = host_program("getent");
    let ldconfig = host_program("ldconfig");
    vec![
        installed(filesystem()),
        installed(spec(
            "setup",
            "2.14",
            "1",
            "BuildArch: noarch",
            &format!(
                "%install\n{}{}\n%files\n\
                 %verify(not md5 size mtime) %config(noreplace) /etc/passwd\n\
                 %verify(not md5 size mtime) %config(noreplace) /etc/group\n",
                put("%{buildroot}/etc/passwd", "0644", PASSWD),
                put("%{buildroot}/etc/group", "0644", GROUP)
            ),
        )),
        installed(glibc(&[&busybox, &getent], &getent, &ldconfig)),
        installed(busybox_package(&busybox)),
        installed(spec(
            "shadow-utils",
            "4.13",
            "1",
            "Requires: setup\nRequires: busybox",
            &format!(
                "%install\n{}{}{}\n%files\n/usr/sbin/useradd\n/usr/sbin/groupadd\n\
                 /usr/libexec/shadow\n",
                put("%{buildroot}/usr/sbin/useradd", "0755", USERADD),
                put("%{buildroot}/usr/sbin/groupadd", "0755", GROUPADD),
                put("%{buildroot}/usr/libexec/shadow/new-id", "0755", NEW_ID)
            ),
        )),
        installed(spec(
            "oldfood",
            "1.0",
            "1",
            "Requires: filesystem",
            &format!(
                "%install\n{}{}\n%files\n%config(noreplace) /etc/oldfood.conf\n\
                 /usr/share/oldfood\n",
                put("%{buildroot}/etc/oldfood.conf", "0644", "portions = 1\n"),
                put(
                    "%{buildroot}/usr/share/oldfood/recipe",
                    "0644",
                    "the old recipe\n"
                )
            ),
        )),
        available(libfoo(), "x86_64"),
        available(
            spec(
                "libfoo",
                "1.0",
                "2",
                "",
                &format!(
                    "%install\n{}\n%files\n/usr/lib/libfoo-i686.txt\n",
                    put(
                        "%{buildroot}/usr/lib/libfoo-i686.txt",
                        "0644",
                        "not for x86_64\n"
                    )
                ),
            ),
            "i686",
        ),
        available(food(), "x86_64"),
        available(food_data("1.0", "the first menu\n"), "x86_64"),
        available(food_data("1.1", "the second menu\n"), "x86_64"),
        available(
            spec(
                "food-data-alt",
                "1.0",
                "1",
                "BuildArch: noarch\nConflicts: food-data",
                &format!(
                    "%install\n{}\n%files\n/usr/share/food-alt\n",
                    put(
                        "%{buildroot}/usr/share/food-alt/menu",
                        "0644",
                        "another menu\n"
                    )
                ),
            ),
            "x86_64",
        ),
        available(
            spec(
                "food-tools",
                "2.0",
                "1",
                "Requires: (food-data if food)\nRequires: /usr/bin/getent\n\
                 Recommends: food-data-alt",
                &format!(
                    "%install\n{}\n%files\n/usr/bin/food-report\n",
                    put(
                        "%{buildroot}/usr/bin/food-report",
                        "0755",
                        "#!/bin/sh\ngetent passwd food\n"
                    )
                ),
            ),
            "x86_64",
        ),
    ]
}

fn installed(spec: String) -> Member {
    Member {
        spec,
        target: "x86_64",
        installed: true,
    }
}

fn available(spec: String, target: &'static str) -> Member {
    Member {
        spec,
        target,
        installed: false,
    }
}

fn filesystem() -> String {
    let dirs = [
        ("/", "0755"),
        ("/dev", "0755"),
        ("/etc", "0755"),
        ("/home", "0755"),
        ("/mnt", "0755"),
        ("/opt", "0755"),
        ("/proc", "0555"),
        ("/root", "0550"),
        ("/run", "0755"),
        ("/srv", "0755"),
        ("/sys", "0555"),
        ("/tmp", "1777"),
        ("/usr", "0755"),
        ("/usr/bin", "0755"),
        ("/usr/sbin", "0755"),
        ("/usr/lib", "0755"),
        ("/usr/lib/sysusers.d", "0755"),
        ("/usr/lib64", "0755"),
        ("/usr/libexec", "0755"),
        ("/usr/share", "0755"),
        ("/usr/share/doc", "0755"),
        ("/usr/share/licenses", "0755"),
        ("/var", "0755"),
        ("/var/lib", "0755"),
        ("/var/log", "0755"),
        ("/var/tmp", "1777"),
    ];
    let links = [
        ("/bin", "usr/bin"),
        ("/sbin", "usr/sbin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
    ];
    let mut install = String::from("%install\n");
    let mut files = String::from("%files\n");
    for (dir, mode) in dirs {
        install += &format!("mkdir -p %{{buildroot}}{dir}\n");
        files += &format!("%dir %attr({mode},root,root) {dir}\n");
    }
    for (link, to) in links {
        install += &format!("ln -s {to} %{{buildroot}}{link}\n");
        files += &format!("{link}\n");
    }
    spec(
        "filesystem",
        "3.18",
        "1",
        "BuildArch: noarch\nRequires(pre): setup",
        &format!("{install}\n{files}"),
    )
}

/// The host's loader in /usr/lib64 (where `/lib64/ld-linux-x86-64.so.2` leads), the other
/// libraries `programs` load in /usr/lib, `getent` and `ldconfig`.
fn glibc(programs: &[&Path], getent: &Path, ldconfig: &Path) -> String {
    let mut install = String::from("%install\n");
    let mut files = String::from("%files\n");
    for library in host_libraries(programs) {
        let name = library.file_name().unwrap().to_str().unwrap();
        let dir = if name.starts_with("ld-linux") {
            "/usr/lib64"
        } else {
            "/usr/lib"
        };
        install += &copy_in(&library, &format!("{dir}/{name}"));
        files += &format!("{dir}/{name}\n");
    }
    install += &copy_in(getent, "/usr/bin/getent");
    install += &copy_in(ldconfig, "/usr/sbin/ldconfig");
    install += &put("%{buildroot}/etc/ld.so.conf", "0644", "/usr/lib64\n");
    install += "touch %{buildroot}/etc/ld.so.cache\n";
    files += "/usr/bin/getent\n/usr/sbin/ldconfig\n%config(noreplace) /etc/ld.so.conf\n\
              %ghost %attr(0644,root,root) %config(missingok,noreplace) /etc/ld.so.cache\n";
    spec(
        "glibc",
        "2.36",
        "1",
        "Requires: filesystem\nProvides: rtld(GNU_HASH)\nProvides: /sbin/ldconfig\n%define _binary_payload w3.zstdio",
        &format!(
            "{install}\n{files}\n%post -p /sbin/ldconfig\n\n\
             %transfiletriggerin -P 2000000 -- /usr/lib64\n/sbin/ldconfig\n"
        ),
    )
}

fn busybox_package(busybox: &Path) -> String {
    let mut install = format!(
        "%install\n{}mkdir -p %{{buildroot}}/usr/sbin\n",
        copy_in(busybox, "/usr/bin/busybox")
    );
    let mut files = String::from("%files\n/usr/bin/busybox\n/usr/sbin/nologin\n");
    install += "ln -s ../bin/busybox %{buildroot}/usr/sbin/nologin\n";
    for applet in APPLETS {
        install += &format!("ln -s busybox %{{buildroot}}/usr/bin/{applet}\n");
        files += &format!("/usr/bin/{applet}\n");
    }
    spec(
        "busybox",
        "1.35.0",
        "1",
        "Provides: /bin/sh\n%define _binary_payload w3.zstdio",
        &format!("{install}\n{files}"),
    )
}

fn libfoo() -> String {
    spec(
        "libfoo",
        "1.0",
        "1",
        "",
        &format!(
            "%build\n{}\n\
             %install\ninstall -D -m 0755 libfoo.so.1.0 %{{buildroot}}/usr/lib64/libfoo.so.1.0\n\
             ln -s libfoo.so.1.0 %{{buildroot}}/usr/lib64/libfoo.so.1\n\n\
             %files\n/usr/lib64/libfoo.so.1.0\n/usr/lib64/libfoo.so.1\n",
            libfoo_build()
        ),
    )
}

/// Shell lines building `libfoo.so.1.0` (soname `libfoo.so.1`) and the `libfoo.so` link
/// `-lfoo` finds, in the current folder.
fn libfoo_build() -> String {
    put("foo.c", "0644", LIBFOO_C)
        + "cc -shared -fPIC -Wl,-soname,libfoo.so.1 -o libfoo.so.1.0 foo.c\n\
           ln -s libfoo.so.1.0 libfoo.so\n"
}

fn food() -> String {
    let tags = "Requires(pre): shadow-utils\nRequires: (food-data or food-data-alt)\n\
                Obsoletes: oldfood < 2\nProvides: oldfood = 2\n\
                %define _binary_payload w2.xzdio";
    let install = [
        put(
            "%{buildroot}/usr/lib/sysusers.d/food.conf",
            "0644",
            "u food - \"food daemon\" /var/lib/food /sbin/nologin\n",
        ),
        put("%{buildroot}/etc/food.conf", "0644", "port = 7070\n"),
        "mkdir -p %{buildroot}/var/lib/food %{buildroot}/var/log\n\
         touch %{buildroot}/var/log/food.log\n\
         install -D -m 0755 food %{buildroot}/usr/sbin/food\n\
         install -D -m 0644 README %{buildroot}/usr/share/man/man8/food.8\n"
            .to_string(),
    ]
    .concat();
    let build = [
        libfoo_build(),
        put("food.c", "0644", FOOD_C),
        "cc -o food food.c -L. -lfoo\n\
         echo 'food serves food.' > README\necho 'MIT' > COPYING\n"
            .to_string(),
    ]
    .concat();
    spec(
        "food",
        "2.0",
        "1",
        tags,
        &format!(
            "%build\n{build}\n%install\n{install}\n\
             %pre\ngetent group food >/dev/null || groupadd -r food\n\
             getent passwd food >/dev/null || \
             useradd -r -g food -d /var/lib/food -s /sbin/nologin food\n\n\
             %post\necho initialised > /var/lib/food/initialised\n\
             chown food:food /var/lib/food/initialised\n\n\
             %files\n/usr/sbin/food\n/usr/lib/sysusers.d/food.conf\n/usr/share/man/man8/food.8*\n\
             %config(noreplace) /etc/food.conf\n%ghost %attr(0640,root,root) /var/log/food.log\n\
             %attr(0750,food,food) %dir /var/lib/food\n%doc README\n%license COPYING\n"
        ),
    )
}

fn food_data(version: &str, menu: &str) -> String {
    spec(
        "food-data",
        version,
        "1",
        "BuildArch: noarch\n%define _binary_payload w2.xzdio",
        &format!(
            "%install\n{}\n%files\n/usr/share/food\n",
            put("%{buildroot}/usr/share/food/menu", "0644", menu)
        ),
    )
}
