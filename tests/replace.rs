//! What `materialise` may replace, end to end through the binary: OUT when nothing is
//! there, an empty folder is, or an output appliance made; anything else only with
//! `--force`; and never, forced or not, the workspace, the store, the repository and its
//! journals, the sysroot, `/`, a mount point, a device node, a FIFO or a socket, nor
//! what holds one of them. A refusal exits 1 naming OUT and changes nothing anywhere in
//! the test's folder (its whole snapshot is compared).
//!
//! Every victim is a stand-in inside the test's folder: `etc` and `data` trees, a
//! `passwd` file, a device node made with mknod. The cases that need a mount, and the
//! one aimed at `/`, run in a private mount namespace whose `/` is read-only (root only).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{FakePackage, World, is_root, names, report, snapshot};

const GROUP: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
}
"#;

/// The template name `--format openvz` gives the `base` lock in a folder.
const TEMPLATE: &str = "debian-12-x86_64-base.tar.gz";

/// The formats whose OUT is the path given (an OpenVZ template goes inside a folder);
/// `image` is refused before the lock's missing kernel is noticed.
const FORMATS: [&str; 4] = ["chroot", "tar", "image", "oci"];

/// A world with group `base` compiled, and `victims/` holding stand-ins for a
/// machine's `/etc` (`etc`), a data folder (`data`), a lone `passwd` file and an empty
/// folder.
fn world() -> World {
    let w = World::new(
        &[
            FakePackage::new("base-files", "12.4+deb12u5")
                .essential()
                .file("/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
            FakePackage::new("bash", "5.2.15-2+b2")
                .depends("base-files")
                .file("/bin/bash", "#!fake bash\n"),
        ],
        &[("base", GROUP)],
    );
    w.ok(&["compile", "groups/base.kdl"]);
    let victims = w.dir.path().join("victims");
    for (path, content) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/hostname", "precious\n"),
        ("etc/ssh/sshd_config", "PermitRootLogin no\n"),
        ("data/precious", "years of work\n"),
        ("passwd", "root:x:0:0:root:/root:/bin/bash\n"),
    ] {
        let path = victims.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    fs::create_dir(victims.join("empty")).unwrap();
    w
}

/// `materialise base --flavor openvz --format FORMAT -o OUT` and `extra`.
fn args<'a>(format: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = common::materialise("base", format, out);
    args.extend_from_slice(extra);
    args
}

/// Runs `command`, which must be refused with a message that names `out` and
/// contains `why`, and checks that nothing in the test's folder changed.
fn refused(w: &World, command: Command, out: &str, why: &str) {
    let before = snapshot(w.dir.path());
    let stderr = common::refused(command);
    assert!(
        stderr.contains(&format!("refusing to replace {out}: ")) && stderr.contains(why),
        "{out}: {stderr}"
    );
    assert_eq!(snapshot(w.dir.path()), before, "{out}: something changed");
}

/// [`refused`] for `materialise` with [`args`].
fn refuses(w: &World, format: &str, out: &str, extra: &[&str], why: &str) {
    refused(w, w.command(&args(format, out, extra)), out, why);
}

/// `victims/NAME`, as an argument.
fn victim(w: &World, name: &str) -> String {
    w.dir
        .path()
        .join("victims")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn only_nothing_an_empty_folder_or_appliances_own_output_is_replaced() {
    let w = world();
    let foreign = "appliance did not make it";
    for format in FORMATS {
        let why = "it exists and appliance did not make it (a folder with 3 entries); remove it first or pass --force";
        refuses(&w, format, &victim(&w, "etc"), &[], why);
    }
    refuses(
        &w,
        "chroot",
        &victim(&w, "data"),
        &[],
        "(a folder with 1 entry)",
    );
    for format in ["chroot", "tar"] {
        let why = "(a file of 32 bytes); remove it first or pass --force";
        refuses(&w, format, &victim(&w, "passwd"), &[], why);
    }
    // The workspace's own folders, named as a user would from inside it.
    for own in ["groups", "flavors"] {
        refuses(&w, "chroot", own, &[], foreign);
    }
    // An OpenVZ template whose name, in the folder OUT names, is taken.
    let templates = w.dir.path().join("victims/templates");
    fs::create_dir(&templates).unwrap();
    fs::write(templates.join(TEMPLATE), "not a template").unwrap();
    let folder = format!("{}/", templates.display());
    let template = templates.join(TEMPLATE).display().to_string();
    refused(
        &w,
        w.command(&args("openvz", &folder, &[])),
        &template,
        foreign,
    );

    // An empty folder is taken; then each format replaces its own output, and
    // --if-newer still finds it current.
    let empty = victim(&w, "empty");
    w.ok(&args("chroot", &empty, &[]));
    assert!(Path::new(&empty).join("bin/bash").exists());
    fs::remove_file(templates.join(TEMPLATE)).unwrap();
    for (format, out) in [
        ("chroot", empty.as_str()),
        ("tar", "out.tar"),
        ("openvz", folder.as_str()),
        ("oci", "oci"),
    ] {
        for _ in 0..2 {
            let printed = w.ok(&args(format, out, &[]));
            assert!(printed.contains("entries"), "{format}: {printed}");
        }
        let printed = w.ok(&args(format, out, &["--if-newer"]));
        assert!(printed.contains("up to date"), "{format}: {printed}");
    }
    assert_eq!(
        names(&templates),
        [format!(".{TEMPLATE}.appliance-stamp"), TEMPLATE.into()]
    );
}

#[test]
fn a_stamp_beside_another_object_does_not_make_it_appliances() {
    let w = world();
    w.ok(&args("chroot", "tree", &[]));
    w.ok(&args("tar", "out.tar", &[]));
    // Its stamp copied beside a foreign folder.
    let victims = w.dir.path().join("victims");
    fs::copy(
        w.ws.join(".tree.appliance-stamp"),
        victims.join(".etc.appliance-stamp"),
    )
    .unwrap();
    let etc = victim(&w, "etc");
    refuses(&w, "chroot", &etc, &[], "did not make it");
    // Outputs removed and remade by someone else, their stamps left behind.
    fs::remove_dir_all(w.ws.join("tree")).unwrap();
    fs::create_dir(w.ws.join("tree")).unwrap();
    fs::write(w.ws.join("tree/precious"), "mine\n").unwrap();
    fs::remove_file(w.ws.join("out.tar")).unwrap();
    fs::write(w.ws.join("out.tar"), "not appliance's").unwrap();
    for (format, out) in [("chroot", "tree"), ("tar", "out.tar")] {
        refuses(&w, format, out, &[], "did not make it");
    }
}

#[test]
fn force_replaces_a_foreign_folder_or_file_and_a_symlink_but_not_its_target() {
    let w = world();
    let etc = victim(&w, "etc");
    w.ok(&args("chroot", &etc, &["--force"]));
    assert!(Path::new(&etc).join("bin/bash").exists());
    assert!(!Path::new(&etc).join("hostname").exists());
    let passwd = victim(&w, "passwd");
    w.ok(&args("tar", &passwd, &["--force"]));
    assert!(fs::read(&passwd).unwrap().len() > 1024);

    let victims = w.dir.path().join("victims");
    symlink(victims.join("data"), victims.join("link")).unwrap();
    let link = victim(&w, "link");
    let why = format!("(a symbolic link to {}/data)", victims.display());
    refuses(&w, "chroot", &link, &[], &why);
    let data = snapshot(&victims.join("data"));
    w.ok(&args("chroot", &link, &["--force"]));
    assert!(
        fs::symlink_metadata(&link).unwrap().is_dir(),
        "the link itself was replaced"
    );
    assert_eq!(snapshot(&victims.join("data")), data);
}

#[test]
fn devices_fifos_and_sockets_are_never_replaced_even_forced() {
    let w = world();
    let victims = w.dir.path().join("victims");
    let mut specials = vec![("fifo", "a FIFO"), ("socket", "a socket")];
    let fifo = std::ffi::CString::new(victims.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let _socket = UnixListener::bind(victims.join("socket")).unwrap();
    if is_root() {
        // Like /dev/null: character device 1, 3.
        let null = std::ffi::CString::new(victims.join("null").to_str().unwrap()).unwrap();
        // SAFETY: as above.
        let made =
            unsafe { libc::mknod(null.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(made, 0);
        specials.push(("null", "a character device"));
    } else {
        report("skipped the device node: mknod needs root");
    }
    for (name, kind) in specials {
        let out = victim(&w, name);
        for format in ["chroot", "tar"] {
            for extra in [&[][..], &["--force"]] {
                let why = format!("it is {kind}, which materialise never replaces");
                refuses(&w, format, &out, extra, &why);
            }
        }
    }
}

#[test]
fn the_repository_and_its_journals_are_never_replaced_even_forced() {
    let w = world();
    for name in [
        "repo.sqlite",
        "repo.sqlite-wal",
        "repo.sqlite-shm",
        "repo.sqlite-journal",
    ] {
        let out = format!("store/{name}");
        for format in ["chroot", "tar"] {
            for extra in [&[][..], &["--force"]] {
                refuses(&w, format, &out, extra, "the repository");
            }
        }
    }
    // A repository outside the store, and the folder holding it.
    let elsewhere = w.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let repo = elsewhere.join("my.sqlite");
    fs::copy(w.ws.join("store/repo.sqlite"), &repo).unwrap();
    let repo_arg = repo.display().to_string();
    let folder = elsewhere.display().to_string();
    for out in [&repo_arg, &folder] {
        let why = format!("the repository {repo_arg}");
        refuses(&w, "tar", out, &["--force", "--repo", &repo_arg], &why);
    }
}

#[test]
fn force_never_replaces_the_workspace_the_store_or_the_sysroot() {
    let w = world();
    let sysroot = w.sysroot.display().to_string();
    let root = w.dir.path().display().to_string();
    for (out, why) in [
        ("store", "it is the store"),
        ("store/blobs", "it is the blob store"),
        ("../ws", "it is the workspace"),
        (sysroot.as_str(), "it is the sysroot"),
        (root.as_str(), "it holds the sysroot"),
    ] {
        for format in ["chroot", "tar"] {
            refuses(&w, format, out, &["--force"], why);
        }
    }
}

/// `command` run in a private mount namespace in which the test's folder is mounted on
/// itself (so it stays writable), each of `mounts` (`mount` arguments) is mounted, and
/// then `/` is made read-only.
fn sandboxed(w: &World, command: Command, mounts: &[Vec<String>]) -> Command {
    let quote = |arg: &str| format!("'{}'", arg.replace('\'', r"'\''"));
    let mut script = format!(
        "set -e; mount --bind {0} {0}; ",
        quote(w.dir.path().to_str().unwrap())
    );
    for mount in mounts {
        let quoted: Vec<String> = mount.iter().map(|a| quote(a)).collect();
        script += &format!("mount {}; ", quoted.join(" "));
    }
    script += r#"mount -o remount,bind,ro /; exec "$@""#;
    let mut sandbox = Command::new("unshare");
    sandbox
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        sandbox.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => sandbox.env(key, value),
            None => sandbox.env_remove(key),
        };
    }
    sandbox
}

#[test]
fn force_never_replaces_root_a_mount_point_or_what_holds_one() {
    if !is_root() {
        report("skipped: mounting needs root");
        return;
    }
    let w = world();
    // In the namespace, the data folder is bind-mounted at holder/data and a tmpfs
    // at holder/tmpfs: replacing holder would remove the data through the mount.
    let holder: PathBuf = w.dir.path().join("victims/holder");
    for dir in ["data", "tmpfs"] {
        fs::create_dir_all(holder.join(dir)).unwrap();
    }
    let path = |p: &Path| p.display().to_string();
    let mounts = [
        vec![
            "--bind".into(),
            path(&w.dir.path().join("victims/data")),
            path(&holder.join("data")),
        ],
        vec![
            "-t".into(),
            "tmpfs".into(),
            "tmpfs".into(),
            path(&holder.join("tmpfs")),
        ],
    ];
    for (out, why) in [
        (
            path(&holder),
            format!("it holds the mount point {}/", holder.display()),
        ),
        (path(&holder.join("data")), "it is a mount point".into()),
        (path(&holder.join("tmpfs")), "it is a mount point".into()),
        ("/".into(), "it is the root folder".into()),
    ] {
        for format in ["chroot", "tar"] {
            let command = sandboxed(&w, w.command(&args(format, &out, &["--force"])), &mounts);
            refused(&w, command, &out, &why);
        }
    }
}

#[test]
fn boot_never_replaces_an_image_folder_appliance_did_not_make() {
    let w = world();
    w.ok(&["compile", "groups/base.kdl", "--flavor", "kvm"]);
    let image = w.ws.join("store/images/base-kvm");
    fs::create_dir_all(&image).unwrap();
    fs::write(image.join("precious"), "mine\n").unwrap();
    let out = image.display().to_string();
    let command = w.command(&["boot", "base", "--flavor", "kvm"]);
    refused(&w, command, &out, "(a folder with 1 entry)");
}
