//! Secrets never leak, end to end through the binary: `hostfile` and folder `overlay`
//! statements refuse the host's shadow files, SSH host keys and files others may not
//! read unless the group says `secret=#true`, pointing at the statement; the store keeps
//! what it holds private to its owner, whatever the umask.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{AS_NOBODY, FakePackage, World, blob_store, is_root, succeeds, write_file};

/// What every secret of the fake host holds, to look for in the store afterwards.
const MARK: &str = "HOSTSECRET";

fn world() -> World {
    let w = World::new(
        &[FakePackage::new("bash", "5.2.15-2+b2").file("/bin/bash", "#!fake bash\n")],
        &[],
    );
    // The fake sysroot's secrets. /etc/shadow as a sysroot unpacked without its modes
    // would have it, readable by all: its name alone must keep it out.
    for (path, mode) in [
        ("etc/shadow", 0o644),
        ("etc/gshadow", 0o640),
        ("etc/ssh/ssh_host_ed25519_key", 0o600),
        ("srv/app/token", 0o600),
    ] {
        write_file(&w.sysroot.join(path), &format!("{MARK} {path}\n"), mode);
    }
    write_file(&w.sysroot.join("etc/hostname"), "fakehost\n", 0o644);
    w
}

/// Writes group `sec`, whose fourth line is `statement`.
fn group(w: &World, statement: &str) {
    let text = format!(
        "group sec version=\"1.0\" {{\n    flavors openvz\n    package bash\n    {statement}\n}}\n"
    );
    fs::write(w.ws.join("groups/sec.kdl"), text).unwrap();
}

/// Every file below `dir` with its mode and bytes (nothing when `dir` is absent).
fn contents(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(path) = todo.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            todo.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        let bytes = if meta.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        found.push((name, meta.permissions().mode() & 0o7777, bytes));
    }
    found.sort();
    found
}

fn holds_mark(store: &[(String, u32, Vec<u8>)]) -> bool {
    store
        .iter()
        .any(|(_, _, bytes)| bytes.windows(MARK.len()).any(|w| w == MARK.as_bytes()))
}

#[test]
fn host_secrets_are_refused_at_the_statement_and_nothing_is_stored() {
    let w = world();
    let store = w.ws.join("store");
    for (statement, path, why) in [
        (
            r#"hostfile "/etc/shadow""#,
            "/etc/shadow",
            "it holds the password hashes",
        ),
        (
            r#"hostfile "/etc/gshadow""#,
            "/etc/gshadow",
            "it holds the password hashes",
        ),
        // Each match of a glob: /etc/gshadow sorts first.
        (
            r#"hostfile "/etc/hostname" "/etc/*shadow*""#,
            "/etc/gshadow",
            "it holds the password hashes",
        ),
        (
            r#"hostfile "/etc/ssh/ssh_host_*_key""#,
            "/etc/ssh/ssh_host_ed25519_key",
            "it holds an SSH host private key",
        ),
        (
            r#"hostfile "/srv/app""#,
            "/srv/app/token",
            "others may not read it (mode 0600)",
        ),
    ] {
        group(&w, statement);
        let before = contents(&store);
        let err = w.fails(&["compile", "groups/sec.kdl"]);
        assert!(
            err.contains("groups/sec.kdl:4:5: hostfile `"),
            "{statement}: {err}"
        );
        assert!(
            err.contains(&format!("would copy {path}, a secret: {why}")),
            "{err}"
        );
        assert!(
            err.contains("write `secret=#true` on this statement"),
            "{err}"
        );
        // The statement is shown with its label, though a compile error wraps it.
        assert!(err.contains("copies a secret"), "{err}");
        assert!(!err.contains(MARK), "{err}");
        assert_eq!(contents(&store), before, "{statement} changed the store");
        assert!(!holds_mark(&before), "{statement}");
    }
    // Nothing at all was stored: no repository, no blob.
    assert!(!store.exists(), "{:?}", contents(&store));

    // Said so, the key is taken, and materialises with its mode.
    group(&w, r#"hostfile "/etc/ssh/ssh_host_*_key" secret=#true"#);
    w.ok(&["compile", "groups/sec.kdl"]);
    assert!(holds_mark(&contents(&store)));
    w.ok(&common::materialise("sec", "chroot", "tree"));
    let key = w.ws.join("tree/etc/ssh/ssh_host_ed25519_key");
    assert_eq!(
        fs::read_to_string(&key).unwrap(),
        format!("{MARK} etc/ssh/ssh_host_ed25519_key\n")
    );
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

#[test]
fn a_private_overlay_file_needs_secret_and_its_blob_stays_private() {
    let w = world();
    let overlay = w.ws.join("overlays/app");
    write_file(&overlay.join("etc/app/token"), "overlay token\n", 0o600);
    write_file(&overlay.join("etc/app/public"), "public\n", 0o644);
    group(&w, r#"overlay "../overlays/app""#);
    let err = w.fails(&["compile", "groups/sec.kdl"]);
    assert!(err.contains("groups/sec.kdl:4:5: overlay "), "{err}");
    assert!(
        err.contains("overlays/app/etc/app/token, a secret: others may not read it (mode 0600)"),
        "{err}"
    );
    assert!(!w.ws.join("store").exists());

    group(&w, r#"overlay "../overlays/app" secret=#true"#);
    w.ok(&["compile", "groups/sec.kdl"]);
    let hex = blake3::hash(b"overlay token\n").to_hex().to_string();
    let blob = w.ws.join("store/blobs").join(&hex[..2]).join(&hex);
    assert_eq!(fs::read_to_string(&blob).unwrap(), "overlay token\n");
    if !is_root() {
        eprintln!("skipped: reading as nobody needs root");
        return;
    }
    // Every folder down to the store is searchable by others, so only the store's
    // own modes keep nobody out: nobody reads the group file beside it.
    fs::set_permissions(w.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let cat = |path: &Path| {
        let (program, args) = AS_NOBODY.split_first().unwrap();
        Command::new(program)
            .args(args)
            .arg("cat")
            .arg(path)
            .output()
            .unwrap()
    };
    let public = cat(&w.ws.join("groups/sec.kdl"));
    assert!(
        public.status.success(),
        "{}",
        String::from_utf8_lossy(&public.stderr)
    );
    let private = cat(&blob);
    assert!(
        !private.status.success(),
        "nobody read the blob of a 0600 file"
    );
    assert!(!String::from_utf8_lossy(&private.stdout).contains("overlay token"));
}

#[test]
fn the_store_never_widens_whatever_the_umask() {
    let w = world();
    group(&w, r#"file "/etc/motd" content="hello\n""#);
    let compile = || {
        let mut command = w.command(&["compile", "groups/sec.kdl"]);
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        succeeds(command)
    };
    compile();
    let store = w.ws.join("store");
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    for (name, mode, _) in contents(&store) {
        assert_eq!(
            mode & 0o022,
            0,
            "store/{name} is {mode:04o}: others may write"
        );
    }
    assert_eq!(mode(&store.join("blobs")), 0o700);
    let (blobs, temporaries) = blob_store(&store.join("blobs"));
    assert!(
        !blobs.is_empty() && temporaries.is_empty(),
        "{temporaries:?}"
    );
    for hex in &blobs {
        assert_eq!(mode(&store.join("blobs").join(&hex[..2])), 0o700, "{hex}");
        assert_eq!(
            mode(&store.join("blobs").join(&hex[..2]).join(hex)),
            0o600,
            "{hex}"
        );
    }
    // A blobs folder an older appliance left open is narrowed by the next compile.
    fs::set_permissions(store.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(compile().contains("unchanged"));
    assert_eq!(mode(&store.join("blobs")), 0o700);
}
