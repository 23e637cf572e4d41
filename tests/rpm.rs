//! End to end for the RPM backend (issue 13), against the RPM world of
//! `tests/common/rpm_world.rs`, built with Debian's `rpmbuild`, `rpm` and `createrepo_c`.
//! Needs root, as rpm does to run scriptlets in a chroot.

mod common;

use std::path::Path;
use std::process::Command;

use common::rpm_world::{RpmWorld, rpm_world};
use common::{names, tool};

/// The world itself is a sound RPM system by rpm's own account, so that what later tests
/// find wrong in a compiled or materialised tree is the backend's doing, not the world's.
#[test]
fn rpm_world_is_a_real_rpm_system() {
    let world = rpm_world();
    let installed = world.rpm(&["-qa", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n"]);
    let mut installed: Vec<&str> = installed.lines().collect();
    installed.sort();
    assert_eq!(
        installed,
        [
            "busybox-1.35.0-1.x86_64",
            "filesystem-3.18-1.noarch",
            "glibc-2.36-1.x86_64",
            "oldfood-1.0-1.x86_64",
            "setup-2.14-1.noarch",
            "shadow-utils-4.13-1.x86_64",
        ]
    );
    assert!(
        world.sysroot.join("var/lib/rpm/rpmdb.sqlite").is_file(),
        "no rpmdb.sqlite"
    );
    assert_eq!(world.rpm(&["-Va"]), "", "rpm -Va is not silent");
    // glibc's %post ran ldconfig in the chroot: a real install, scriptlets and all.
    assert!(world.sysroot.join("etc/ld.so.cache").is_file());
    let sysroot = world.sysroot.to_str().unwrap();
    assert_eq!(
        tool("chroot", &[sysroot, "/bin/sh", "-c", "echo ok"]),
        "ok\n"
    );

    assert!(world.repo.join("repodata/repomd.xml").is_file());
    let mut in_repo = names(&world.repo);
    in_repo.retain(|n| n != "repodata");
    assert_eq!(in_repo, names(&world.rpms), "the repository lacks packages");
    assert_eq!(in_repo.len(), 13);
    let food = world.rpm_file("food-2.0-1.x86_64");
    let requires = tool("rpm", &["-qp", "--requires", food.to_str().unwrap()]);
    for wanted in [
        "(food-data or food-data-alt)",
        "libfoo.so.1()(64bit)",
        "shadow-utils",
    ] {
        assert!(
            requires.lines().any(|l| l == wanted),
            "food does not require {wanted}:\n{requires}"
        );
    }
    let libfoo = world.rpm_file("libfoo-1.0-1.x86_64");
    let provides = tool("rpm", &["-qp", "--provides", libfoo.to_str().unwrap()]);
    assert!(
        provides.lines().any(|l| l == "libfoo.so.1()(64bit)"),
        "{provides}"
    );
    // The i686 trap is there, and is a newer release than the x86_64 one.
    world.rpm_file("libfoo-1.0-2.i686");
}

/// `rpm -Va` on the tree at `root`: the lines rpm reports.
fn verify_all(root: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("rpm")
        .arg("--root")
        .arg(root)
        .args(["--dbpath", "/var/lib/rpm", "-Va"])
        .output()
        .unwrap();
    let mut lines: Vec<String> = (String::from_utf8_lossy(&out.stdout).lines())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// A workspace with the project's groups and a private copy of the RPM world, whose
/// commands run on the world's sysroot, with its repository as a pool where `pooled`.
struct RpmWorkspace {
    dir: tempfile::TempDir,
    world: RpmWorld,
}

impl RpmWorkspace {
    fn new() -> RpmWorkspace {
        let dir = tempfile::tempdir().unwrap();
        common::example_workspace(dir.path());
        let world = rpm_world().copy_to(&dir.path().join("world"));
        RpmWorkspace { dir, world }
    }

    fn ws(&self) -> &Path {
        self.dir.path()
    }

    /// `appliance --sysroot SYSROOT ARGS [--pool REPO]`, run in the workspace.
    fn command(&self, args: &[&str], pooled: bool) -> Command {
        let mut all = vec!["--sysroot", self.world.sysroot.to_str().unwrap()];
        all.extend_from_slice(args);
        if pooled {
            all.extend_from_slice(&["--pool", self.world.repo.to_str().unwrap()]);
        }
        common::command(self.ws(), &all)
    }

    /// Puts `bytes` in the world's repository as `name` and remakes its metadata with
    /// createrepo_c (the metadata is what a compile reads).
    fn publish(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.world.repo.join(name), bytes).unwrap();
        let repo = self.world.repo.to_str().unwrap();
        tool("createrepo_c", &["--quiet", "--no-database", repo]);
    }

    /// [`RpmWorkspace::command`] with the pool, which must succeed: its stdout.
    fn ok(&self, args: &[&str]) -> String {
        common::succeeds(self.command(args, true))
    }
}

/// The RPM world's sysroot compiled with its repository, then materialised: a working
/// RPM system, by rpm's own account and by running it.
#[test]
fn an_rpm_sysroot_compiles_into_a_working_rpm_system() {
    let w = RpmWorkspace::new();
    let ws = w.ws();
    let compiled = w.ok(&["compile", "groups/food.kdl"]);
    assert!(compiled.contains("stored: 9 packages"), "{compiled}");
    // The repository given as a base URL is the same pool.
    let url = format!("file://{}", w.world.repo.display());
    let again = common::succeeds(w.command(&["compile", "groups/food.kdl", "--pool", &url], false));
    assert!(again.contains("unchanged"), "{again}");
    let shown = common::succeeds(w.command(&["show", "food", "--flavor", "openvz"], false));
    // The obsoleted oldfood stays out, the i686 libfoo too, and the rich `or` takes
    // food-data at its newest, since food-data-alt conflicts with it.
    for line in [
        "food 2.0-1 x86_64 [pool] named in group food",
        "food-data 1.1-1 noarch [pool]",
        "libfoo 1.0-1 x86_64 [pool]",
        "glibc 2.36-1 x86_64 [installed]",
    ] {
        assert!(shown.contains(line), "{line} missing from:\n{shown}");
    }
    assert!(
        !shown.contains("oldfood") && !shown.contains("i686"),
        "{shown}"
    );

    w.ok(&common::materialise("food", "chroot", "tree"));
    let tree = ws.join("tree");
    let listed =
        common::rpm_world::rpm_in(&tree, &["-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\n"]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    let locked: Vec<String> = (shown.lines())
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(listed, locked);
    // Every file is as its header says, its time included; what the group excludes
    // (`docs=#true`: the %doc README and the manual page rpmbuild marks %doc) is the one
    // difference. (The accounts food's %pre added are not one: setup marks them
    // `%verify(not md5 size mtime)`, as Fedora's does.)
    assert_eq!(
        verify_all(&tree),
        [
            "missing   d /usr/share/doc/food/README",
            "missing   d /usr/share/man/man8/food.8"
        ]
    );
    assert!(
        tree.join("usr/share/licenses/food/COPYING").is_file(),
        "a %license went with the docs"
    );
    let owner = common::rpm_world::rpm_in(&tree, &["-qf", "/usr/sbin/food"]);
    assert_eq!(owner.trim(), "food-2.0-1.x86_64");
    let passwd = std::fs::read_to_string(tree.join("etc/passwd")).unwrap();
    assert!(passwd.contains("food:x:999:999:"), "{passwd}");
    assert!(
        tree.join("var/lib/food/initialised").is_file(),
        "food's %post did not run"
    );
    assert!(
        !tree.join("var/log/food.log").exists(),
        "a %ghost was created"
    );
    let root = tree.to_str().unwrap();
    assert_eq!(tool("chroot", &[root, "/bin/sh", "-c", "echo ok"]), "ok\n");
    // libfoo is in /usr/lib64, which the loader finds only through ld.so.cache.
    assert_eq!(
        tool("chroot", &[root, "/usr/sbin/food"]),
        "food 2.0, libfoo 1\n"
    );
    let meta = std::fs::metadata(tree.join("var/lib/food")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 999);

    for out in ["one.tar", "two.tar"] {
        w.ok(&common::materialise("food", "tar", out));
    }
    assert_eq!(
        std::fs::read(ws.join("one.tar")).unwrap(),
        std::fs::read(ws.join("two.tar")).unwrap(),
        "two tars of one lock differ"
    );
    w.ok(&["materialise", "food", "--flavor", "openvz"]);
    assert!(
        names(ws).contains(&"food-1-x86_64-food.tar.gz".to_string()),
        "{:?}",
        names(ws)
    );
}

/// A file of an installed package changed under the sysroot: verify names it, and
/// compile takes the package from its archive, or refuses, naming the file, without one.
#[test]
fn host_drift_is_named_and_the_archive_taken_or_the_compile_refused() {
    let w = RpmWorkspace::new();
    let compile = ["compile", "groups/food.kdl"];
    w.ok(&compile);
    std::fs::write(w.world.sysroot.join("usr/bin/getent"), "changed\n").unwrap();
    let verified = (w.command(&["verify", "food", "--flavor", "openvz"], false))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        !verified.status.success() && said.contains("/usr/bin/getent (package glibc)"),
        "{said}"
    );
    let out = w.command(&compile, true).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("/usr/bin/getent of glibc-2.36-1.x86_64 differs on the host")
            && stderr.contains("glibc-2.36-1.x86_64.rpm"),
        "{stderr}"
    );
    // Without glibc's archive, nothing can supply the changed file.
    std::fs::remove_file(w.world.repo.join("glibc-2.36-1.x86_64.rpm")).unwrap();
    std::fs::remove_dir_all(w.world.repo.join("repodata")).unwrap();
    let refused = common::refused(w.command(&compile, true));
    assert!(
        refused.contains("/usr/bin/getent of glibc-2.36-1.x86_64 differs on the host"),
        "{refused}"
    );
}

/// A file whose header names an owner the configured tree has no account for belongs to
/// root, as rpm leaves it, with a warning: never a name with another account's id.
#[test]
fn an_owner_the_tree_lacks_becomes_root_with_a_warning() {
    let w = RpmWorkspace::new();
    let spec = common::rpm_world::spec(
        "stray",
        "1.0",
        "1",
        "BuildArch: noarch",
        &format!(
            "%install\n{}\n%files\n%attr(0640,nobodyhere,nogrouphere) /usr/share/stray/file\n",
            common::rpm_world::put("%{buildroot}/usr/share/stray/file", "0640", "stray\n")
        ),
    );
    let built = common::rpm_world::build_rpm(&w.ws().join("build"), &spec);
    w.publish("stray-1.0-1.noarch.rpm", &std::fs::read(built).unwrap());
    std::fs::write(
        w.ws().join("groups/stray.kdl"),
        "group stray version=\"1.0\" {\n    flavors openvz\n    package stray\n    package busybox\n}\n",
    )
    .unwrap();
    let out = w
        .command(&["compile", "groups/stray.kdl"], true)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "/usr/share/stray/file of stray: owner nobodyhere:nogrouphere is not an account of \
             the tree: root owns it, as rpm does"
        ),
        "{stderr}"
    );
    let files =
        common::succeeds(w.command(&["show", "stray", "--flavor", "openvz", "--files"], false));
    let line = (files.lines())
        .find(|l| l.ends_with("/usr/share/stray/file  (stray)"))
        .unwrap_or_else(|| panic!("no stray file in:\n{files}"));
    assert!(line.contains(" 0640 root:root "), "{line}");
}

/// A flavor's kernel flag holds for RPM groups as for Debian ones: a kernel where it is
/// off is refused at the statement that brings it, and a kernel flavor without one is
/// warned about, with the package an RPM group names.
#[test]
fn the_kernel_rule_holds_for_rpm_groups() {
    let w = RpmWorkspace::new();
    let spec = common::rpm_world::spec(
        "kernel-core",
        "6.1.0",
        "1",
        "Provides: installonlypkg(kernel)",
        &format!(
            "%install\n{}\n%files\n/usr/lib/modules/6.1.0/vmlinuz\n",
            common::rpm_world::put("%{buildroot}/usr/lib/modules/6.1.0/vmlinuz", "0644", "k\n")
        ),
    );
    let built = common::rpm_world::build_rpm(&w.ws().join("build"), &spec);
    w.publish(
        "kernel-core-6.1.0-1.x86_64.rpm",
        &std::fs::read(built).unwrap(),
    );
    let group = |body: &str| {
        let text = format!("group boxed version=\"1.0\" {{\n    package busybox\n{body}}}\n");
        std::fs::write(w.ws().join("groups/boxed.kdl"), text).unwrap();
    };
    group("    package kernel-core\n");
    let out = (w.command(&["compile", "groups/boxed.kdl", "--flavor", "openvz"], true))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("groups/boxed.kdl:3:5: package kernel-core brings a kernel (kernel-core)"),
        "{stderr}"
    );
    assert!(
        !w.ws().join("store/repo.sqlite").exists(),
        "a refused compile stored"
    );

    group("    when kernel { package kernel-core; }\n");
    let out = (w.command(&["compile", "groups/boxed.kdl", "--flavor", "openvz"], true))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    group("");
    let out = (w.command(&["compile", "groups/boxed.kdl", "--flavor", "kvm"], true))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("add a kernel package under `when kernel { package kernel-core }`"),
        "{stderr}"
    );
}

/// Two flavors whose trees differ are configured at once, as for dpkg: when openvz's
/// `%post` fails while xen's tree is configured, the compile fails naming the scriptlet,
/// stores nothing, and both jobs have removed their scratch trees.
#[test]
fn a_tree_that_fails_while_another_is_configured_fails_the_compile_and_leaves_nothing() {
    let w = RpmWorkspace::new();
    let spec = common::rpm_world::spec(
        "broken",
        "1.0",
        "1",
        "BuildArch: noarch",
        &format!(
            "%install\n{}\n%post\necho 'broken: cannot configure' >&2\nexit 3\n\n\
             %files\n/usr/share/broken/data\n",
            common::rpm_world::put("%{buildroot}/usr/share/broken/data", "0644", "x\n")
        ),
    );
    let built = common::rpm_world::build_rpm(&w.ws().join("build"), &spec);
    w.publish("broken-1.0-1.noarch.rpm", &std::fs::read(built).unwrap());
    let text = "group pair version=\"1.0\" {\n    flavors xen openvz\n    package busybox\n    \
                when openvz { package broken; }\n}\n";
    std::fs::write(w.ws().join("groups/pair.kdl"), text).unwrap();
    w.ok(&["compile", "groups/food.kdl"]);
    let listed = common::succeeds(w.command(&["list"], false));
    let refused = common::refused(w.command(&["compile", "groups/pair.kdl"], true));
    assert!(
        refused.contains("broken") && refused.contains("cannot configure"),
        "{refused}"
    );
    assert_eq!(common::succeeds(w.command(&["list"], false)), listed);
    let store: Vec<String> = names(&w.ws().join("store"));
    assert!(
        !store.iter().any(|name| name.contains("configure")),
        "{store:?}"
    );
}

/// A sysroot whose rpm database is a Berkeley DB is an RPM one that compile cannot read:
/// it says so, with the conversion to run, rather than taking it for a root without a
/// database; `--backend rpm` says the same, and nothing is stored.
#[test]
fn a_berkeley_db_rpm_database_is_refused_with_its_conversion() {
    let w = RpmWorkspace::new();
    let db = w.world.sysroot.join("var/lib/rpm");
    std::fs::remove_dir_all(&db).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    // A Berkeley DB hash file's magic, at offset 12.
    let mut bdb = vec![0u8; 4096];
    bdb[12..16].copy_from_slice(&0x0006_1561u32.to_le_bytes());
    std::fs::write(db.join("Packages"), bdb).unwrap();
    for backend in [&[][..], &["--backend", "rpm"][..]] {
        let mut args = vec!["compile", "groups/food.kdl"];
        args.extend_from_slice(backend);
        let refused = common::refused(w.command(&args, true));
        assert!(
            refused.contains("var/lib/rpm/Packages: a Berkeley DB rpm database")
                && refused.contains("--rebuilddb --define '_db_backend sqlite'"),
            "{refused}"
        );
    }
    assert!(
        !w.ws().join("store/repo.sqlite").exists(),
        "a lock was stored"
    );
}

/// An archive whose payload lies about a file's bytes, or ends early, is refused naming
/// the archive (and the file, when the lie is one file's), and nothing is stored.
#[test]
fn hostile_archives_are_refused_naming_the_archive_and_nothing_is_stored() {
    let w = RpmWorkspace::new();
    const MARKER: &str = "bytes the header vouches for\n";
    // An uncompressed payload, so the file's bytes can be edited in place.
    let spec = common::rpm_world::spec(
        "evil",
        "1.0",
        "1",
        "BuildArch: noarch\n%define _binary_payload w0.ufdio",
        &format!(
            "%install\n{}\n%files\n/usr/share/evil/data\n",
            common::rpm_world::put("%{buildroot}/usr/share/evil/data", "0644", MARKER)
        ),
    );
    let built = std::fs::read(common::rpm_world::build_rpm(&w.ws().join("build"), &spec)).unwrap();
    std::fs::write(
        w.ws().join("groups/evil.kdl"),
        "group evil version=\"1.0\" {\n    flavors openvz\n    package evil\n}\n",
    )
    .unwrap();
    let at = (built.windows(MARKER.len()))
        .position(|w| w == MARKER.as_bytes())
        .expect("the payload is not stored as is");
    let mut lying = built.clone();
    lying[at] ^= 0x20;
    let truncated = built[..at].to_vec();
    for (bytes, names_the_file) in [(lying, true), (truncated, false)] {
        w.publish("evil-1.0-1.noarch.rpm", &bytes);
        let refused = common::refused(w.command(&["compile", "groups/evil.kdl"], true));
        assert!(refused.contains("evil-1.0-1.noarch.rpm"), "{refused}");
        assert!(
            !names_the_file || refused.contains("/usr/share/evil/data"),
            "{refused}"
        );
        assert!(
            !w.ws().join("store/repo.sqlite").exists(),
            "a lock was stored"
        );
    }
}

/// A repository's archive swapped for another package's after createrepo_c wrote its
/// metadata is refused when compile stages it, naming the archive, the repository and
/// both checksums, and nothing is stored.
#[test]
fn a_swapped_archive_of_a_repository_is_refused_naming_it() {
    let w = RpmWorkspace::new();
    let archive = w.world.repo.join("food-data-1.1-1.noarch.rpm");
    assert!(archive.is_file(), "{}", archive.display());
    std::fs::copy(w.world.rpm_file("libfoo-1.0-1.x86_64"), &archive).unwrap();
    let refused = common::refused(w.command(&["compile", "groups/food.kdl"], true));
    let expected = format!(
        "{}: not the archive repository {} lists: its checksum is sha256:",
        archive.display(),
        w.world.repo.display()
    );
    assert!(refused.contains(&expected), "{refused}");
    assert!(refused.contains(", the metadata says sha256:"), "{refused}");
    assert!(
        !w.ws().join("store/repo.sqlite").exists(),
        "a lock was stored"
    );
}
