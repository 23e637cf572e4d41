//! End to end on the real machine: the project's `groups/minimal.kdl` compiled from this
//! host's kernel (linux-image-amd64) into a bootable image, twice with the same bytes,
//! checked with e2fsck, debugfs and qemu-img, booted under qemu, where the disk's own
//! bash runs, and built by an unprivileged user with the same bytes. Needs root (CI is
//! root): another user gets a message that it skipped.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Console, appliance, example_workspace, is_root, ok, tool};

/// How long a boot may take to print the marker (TCG boots take 10-30 s here).
const BOOT_LIMIT: Duration = Duration::from_secs(180);

fn needs_a_kernel() {
    let kernels = fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false);
    assert!(
        kernels,
        "this test needs an installed kernel: apt-get install linux-image-amd64"
    );
}

#[test]
fn minimal_kvm_image_is_reproducible_valid_and_boots_to_the_disk_bash() {
    if !is_root() {
        eprintln!("skipped: building and booting the image is checked as root");
        return;
    }
    needs_a_kernel();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    ok(ws, &["compile", "groups/minimal.kdl", "--flavor", "kvm"]);

    let started = Instant::now();
    let built = ok(
        ws,
        &[
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "--format",
            "image",
            "-o",
            "a",
        ],
    );
    let build_time = started.elapsed();
    assert!(built.contains("-> a (image, raw disk):"), "{built}");
    ok(
        ws,
        &[
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "--format",
            "image",
            "-o",
            "b",
        ],
    );
    let (a, b) = (ws.join("a"), ws.join("b"));
    for name in ["initrd.img", "disk.raw", "vmlinuz", "cmdline"] {
        assert!(
            fs::read(a.join(name)).unwrap() == fs::read(b.join(name)).unwrap(),
            "{name} differs between two runs of the same lock"
        );
    }
    assert_eq!(
        fs::read_to_string(a.join("cmdline")).unwrap(),
        "console=ttyS0 root=/dev/vda panic=-1\n"
    );
    assert!(!a.join("xen.cfg").exists());

    let disk = a.join("disk.raw");
    let disk_arg = disk.to_str().unwrap();
    tool("e2fsck", &["-fn", disk_arg]);
    let bash = tool("debugfs", &["-R", "stat /usr/bin/bash", disk_arg]);
    assert!(bash.contains("User:     0   Group:     0"), "{bash}");
    assert!(bash.contains("Mode:  0755"), "{bash}");
    let console = tool("debugfs", &["-R", "stat /dev/console", disk_arg]);
    assert!(console.contains("Type: character special"), "{console}");
    let label = tool("dumpe2fs", &["-h", disk_arg]);
    assert!(label.contains("appliance-root"), "{label}");
    let modules = tool(
        "cpio",
        &["-t", "-F", a.join("initrd.img").to_str().unwrap()],
    );
    for wanted in ["init", "init.conf", "virtio_blk.ko", "ext4.ko", "jbd2.ko"] {
        assert!(
            modules.lines().any(|l| l.ends_with(wanted)),
            "{wanted} not in the initramfs:\n{modules}"
        );
    }

    ok(
        ws,
        &[
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "--format",
            "image",
            "--disk",
            "qcow2",
            "-o",
            "q",
        ],
    );
    let info = tool(
        "qemu-img",
        &[
            "info",
            "--output=json",
            ws.join("q/disk.qcow2").to_str().unwrap(),
        ],
    );
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], fs::metadata(&disk).unwrap().len());
    assert!(!ws.join("q/disk.raw").exists());

    // The boot builds nothing more: the image in store/images is the same request.
    ok(
        ws,
        &[
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "--format",
            "image",
            "-o",
            "store/images/minimal-kvm",
        ],
    );
    let (output, boot_time, code) = boot(ws);
    let init_line = "appliance-init: minimal up, running /bin/bash -c echo APPLIANCE-MARKER-";
    assert!(
        output.contains(init_line) && output.contains("APPLIANCE-MARKER-42"),
        "no marker within {BOOT_LIMIT:?}; console:\n{output}"
    );
    assert!(output.contains("image up to date, booting"), "{output}");
    assert!(
        output.contains("appliance-init: /bin/bash exited with status 0"),
        "{output}"
    );
    assert_eq!(code, Some(0), "qemu's exit code; console:\n{output}");
    let told = output
        .lines()
        .find(|l| l.starts_with("boot: the guest runs under "));
    assert!(
        told.is_some_and(|l| l.contains("KVM: ") || l.contains("TCG, qemu's software emulation")),
        "boot says which accelerator and why; console:\n{output}"
    );

    // Without a program, input that is not a terminal is typed on the guest's shell,
    // and its end ends the shell, then the guest.
    let started = Instant::now();
    let mut piped = Console::start(ws, &["boot", "minimal", "--flavor", "kvm"]);
    piped.send(b"echo PIPED-$((6*7))\n");
    piped.end_input();
    let (output, code) = piped.finish(started + BOOT_LIMIT);
    assert!(
        output.contains("PIPED-42"),
        "the piped line did not run; console:\n{output}"
    );
    assert!(
        output.contains("appliance-init: /bin/sh exited with status 0"),
        "{output}"
    );
    assert_eq!(code, Some(0), "the guest's exit at end of input:\n{output}");
    let piped_time = started.elapsed();

    kvm_is_used_or_refused_in_one_message(ws);

    let initrd = fs::metadata(a.join("initrd.img")).unwrap();
    let disk = fs::metadata(&disk).unwrap();
    eprintln!(
        "measured: initrd.img {} bytes; disk.raw {} bytes ({} allocated); image build {:.1} s; \
         boot to the marker {:.1} s; piped boot to power-off {:.1} s",
        initrd.len(),
        disk.len(),
        disk.blocks() * 512,
        build_time.as_secs_f64(),
        boot_time.as_secs_f64(),
        piped_time.as_secs_f64()
    );
}

/// `--accel kvm` boots under KVM where it works; where /dev/kvm is missing, or KVM
/// cannot run the guest (qemu aborting on `kvm_buf_set_msrs` in a nested VM), it is one
/// message that says to use `--accel tcg`, not qemu's assertion.
fn kvm_is_used_or_refused_in_one_message(ws: &Path) {
    let deadline = Instant::now() + BOOT_LIMIT;
    let args = [
        "boot",
        "minimal",
        "--flavor",
        "kvm",
        "--accel",
        "kvm",
        "--",
        "/bin/true",
    ];
    let mut console = Console::start(ws, &args);
    console.end_input();
    let (output, code) = console.finish(deadline);
    if code == Some(0) {
        assert!(
            output.contains("boot: the guest runs under KVM: --accel kvm asks for it"),
            "{output}"
        );
        return;
    }
    assert_eq!(code, Some(1), "{output}");
    let errors: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{output}");
    assert!(errors[0].ends_with("--accel tcg"), "{output}");
    assert!(
        !output.contains("Assertion"),
        "qemu's assertion shown:\n{output}"
    );
}

/// Runs `appliance boot` with the marker program; returns the console output, the time
/// until the marker appeared (or the limit) and the exit code (None when killed).
fn boot(ws: &Path) -> (String, Duration, Option<i32>) {
    let start = Instant::now();
    let deadline = start + BOOT_LIMIT;
    let marker_program = ["/bin/bash", "-c", "echo APPLIANCE-MARKER-$((6*7))"];
    let mut args = vec!["boot", "minimal", "--flavor", "kvm", "--"];
    args.extend(marker_program);
    let mut console = Console::start(ws, &args);
    let marker = (console.wait_for("APPLIANCE-MARKER-42", deadline)).then(|| start.elapsed());
    let (output, code) = console.finish(deadline);
    (output, marker.unwrap_or(BOOT_LIMIT), code)
}

#[test]
fn an_unprivileged_user_builds_the_same_image_bytes() {
    if !is_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    needs_a_kernel();
    // World-searchable, unlike a tempdir, so that nobody reaches the workspace in it.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir(&ws).unwrap();
    example_workspace(&ws);
    ok(&ws, &["compile", "groups/minimal.kdl", "--flavor", "kvm"]);
    ok(
        &ws,
        &[
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "-o",
            "root-built",
        ],
    );
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&ws)
        .status()
        .unwrap();
    assert!(chown.success());
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_appliance"))
        .args([
            "materialise",
            "minimal",
            "--flavor",
            "kvm",
            "-o",
            "user-built",
        ])
        .current_dir(&ws)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "as nobody: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["initrd.img", "disk.raw"] {
        assert!(
            fs::read(ws.join("root-built").join(name)).unwrap()
                == fs::read(ws.join("user-built").join(name)).unwrap(),
            "{name} differs when built by nobody"
        );
    }
}

#[test]
fn minimal_xen_image_is_for_xl_and_boot_refuses_it() {
    if !is_root() {
        eprintln!("skipped: building the image is checked as root");
        return;
    }
    needs_a_kernel();
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    example_workspace(ws);
    ok(ws, &["compile", "groups/minimal.kdl", "--flavor", "xen"]);
    let built = ok(
        ws,
        &["materialise", "minimal", "--flavor", "xen", "-o", "x"],
    );
    assert!(
        built
            .trim_end()
            .ends_with("; on a Xen host: cd x && xl create xen.cfg"),
        "{built}"
    );
    // The folder works wherever it goes: xen.cfg names its files relative to it.
    let x = ws.join("elsewhere/x");
    fs::create_dir(ws.join("elsewhere")).unwrap();
    fs::rename(ws.join("x"), &x).unwrap();
    assert_eq!(
        fs::read_to_string(x.join("cmdline")).unwrap(),
        "console=hvc0 root=/dev/xvda panic=-1\n"
    );
    let cfg = fs::read_to_string(x.join("xen.cfg")).unwrap();
    let named: Vec<&str> = ["kernel = \"", "ramdisk = \"", "target="]
        .iter()
        .map(|key| {
            let at = cfg.find(key).unwrap_or_else(|| panic!("no {key} in {cfg}")) + key.len();
            let end = cfg[at..].find(['"', ',', ' ']).unwrap();
            &cfg[at..at + end]
        })
        .collect();
    assert_eq!(named, ["vmlinuz", "initrd.img", "disk.raw"], "{cfg}");
    assert!(named.iter().all(|file| x.join(file).is_file()));
    let initrd = tool(
        "cpio",
        &["-t", "-F", x.join("initrd.img").to_str().unwrap()],
    );
    assert!(initrd.contains("xen-blkfront.ko"), "{initrd}");
    assert!(!initrd.contains("virtio_blk.ko"), "{initrd}");

    let out = appliance(ws, &["boot", "minimal", "--flavor", "xen"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`cd OUT && xl create xen.cfg`"), "{stderr}");
}
