//! The small Debian system the bundle and registry tests move between machines: three
//! installed packages (base-files, libc6, bash), coreutils in the pool folder `debs`, and
//! a group `base` of bash and coreutils that writes `/etc/hostname`.

use std::fs;

use super::{FakePackage, World, build_deb};

/// A package's files: (path, content).
pub type Files = &'static [(&'static str, &'static str)];

/// The installed packages: (name, version, files).
pub const INSTALLED: &[(&str, &str, Files)] = &[
    (
        "base-files",
        "12.4+deb12u5",
        &[("/etc/debian_version", "12.5\n")],
    ),
    (
        "libc6",
        "2.36-9+deb12u4",
        &[("/usr/lib/x86_64-linux-gnu/libc.so.6", "not really libc")],
    ),
    ("bash", "5.2.15-2+b2", &[("/bin/bash", "#!fake bash\n")]),
];

/// The group `base`, its hostname `hostname`.
pub fn group(hostname: &str) -> String {
    format!(
        "group base version=\"1.0\" {{\n    flavors openvz\n    package bash\n    package coreutils\n    \
         file \"/etc/hostname\" mode=0o644 content=\"{hostname}\\n\"\n}}\n"
    )
}

/// A world whose store holds `base` (hostname `hostname`) for openvz, compiled offline
/// with coreutils from the pool `debs`, which also gets the installed packages' archives
/// when `pooled`.
pub fn compiled(hostname: &str, pooled: bool) -> World {
    let packages: Vec<FakePackage> = (INSTALLED.iter())
        .map(|(name, version, files)| {
            let mut p = FakePackage::new(name, version);
            if *name == "base-files" {
                p = p.essential();
            }
            if *name == "bash" {
                p = p.depends("base-files, libc6");
            }
            (files.iter()).fold(p, |p, (path, content)| p.file(path, content))
        })
        .collect();
    let world = World::new(&packages, &[("base", &group(hostname))]);
    let pool = world.ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    if pooled {
        for (name, version, files) in INSTALLED {
            build_deb(&pool, name, version, files, &[], &[]);
        }
    }
    let ls: Files = &[("/bin/ls", "fake ls\n")];
    build_deb(&pool, "coreutils", "9.1-1", ls, &[], &[]);
    world.ok(&["compile", "groups/base.kdl", "--pool", "debs", "--offline"]);
    world
}
