//! Secrets never leak, end to end through the binary: `hostfile` and folder `overlay`
//! statements refuse the host's shadow files, SSH host keys and files others may not
//! read unless the group says `secret=#true`, pointing at the statement; the store keeps
//! what it holds private to its owner, whatever the umask.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{FakePackage, World, blob_store, succeeds, write_file};

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
