//! End to end for the RPM backend (issue 13), against the RPM world of
//! `tests/common/rpm_world.rs`, built with Debian's `rpmbuild`, `rpm` and `createrepo_c`.
//! Needs root, as rpm does to run scriptlets in a chroot.

mod common;

use common::rpm_world::rpm_world;
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
