//! Full and read-only filesystems, end to end through the binary (root only: the tests
//! mount small tmpfs filesystems, and switch to `nobody` for a read-only folder). A run
//! that cannot write must say why and name what it was making, leave the previous OUT
//! and the repository as they were, and leave no temporaries on the full filesystem.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{
    Mount, World, blob_store, build_deb, bulky_packages, is_root, materialise, names, noise,
    output_state, report, verified_revisions,
};

/// Group `big` does not fit in the 2 MiB filesystems below; `small` does.
const GROUPS: [(&str, &str); 2] = [
    (
        "big",
        "group big version=\"1.0\" {\n    flavors openvz\n    package bulk\n    hostfile \"/srv/host/*\"\n}\n",
    ),
    (
        "small",
        "group small version=\"1.0\" {\n    flavors openvz\n    package bash\n}\n",
    ),
];

/// A world with both groups, or `None` (said so) when not running as root.
fn world() -> Option<World> {
    if !is_root() {
        report("skipped: mounting filesystems and switching users need root");
        return None;
    }
    let w = World::new(&bulky_packages(), &GROUPS);
    w.host_files("srv/host", "first");
    Some(w)
}

/// The outputs made in the tests: a directory and tarballs, plain and compressed.
const OUTPUTS: [(&str, &str); 3] = [
    ("chroot", "tree"),
    ("tar", "big.tar"),
    ("tar", "big.tar.gz"),
];

#[test]
fn a_full_filesystem_fails_materialise_clearly_and_keeps_the_previous_out() {
    let Some(w) = world() else { return };
    w.ok(&["compile", "groups/big.kdl", "groups/small.kdl"]);
    let repo = w.ws.join("store/repo.sqlite");
    let before = verified_revisions(&repo);
    for (i, (format, name)) in OUTPUTS.into_iter().enumerate() {
        let full = Mount::tmpfs(&w.ws.join(format!("full{i}")), "2m");
        let out = format!("full{i}/{name}");
        w.ok(&materialise("small", format, &out));
        let previous = output_state(&full.path().join(name));
        let err = w.fails(&materialise("big", format, &out));
        report(&format!(
            "-o {out} (--format {format}) on a full 2 MiB tmpfs:\n{err}"
        ));
        assert!(
            err.starts_with(&format!(
                "error: {out}: no space left on the device while writing"
            )),
            "{err}"
        );
        assert_eq!(
            output_state(&full.path().join(name)),
            previous,
            "{out} changed"
        );
        assert_eq!(
            names(full.path()),
            [format!(".{name}.appliance-stamp"), name.to_string()],
            "temporaries left on the full filesystem"
        );
        assert!(names(&w.tmp).is_empty(), "{:?}", names(&w.tmp));
    }
    assert_eq!(verified_revisions(&repo), before);
}

#[test]
fn a_full_filesystem_stops_a_pool_archive_s_unpacking_with_a_clear_error() {
    let Some(w) = world() else { return };
    let debs = w.ws.join("debs");
    fs::create_dir(&debs).unwrap();
    // Noise, so that the archive's 3 MiB stay 3 MiB when unpacked beside OUT.
    let big = noise("pool", 3 << 20);
    build_deb(
        &debs,
        "pooled",
        "1.0-1",
        &[("/usr/share/pooled/big", &big)],
        &[],
        &[],
    );
    let group = "group pooled version=\"1.0\" {\n    flavors openvz\n    package pooled\n}\n";
    fs::write(w.ws.join("groups/pooled.kdl"), group).unwrap();
    w.ok(&["compile", "groups/pooled.kdl", "--pool", "debs"]);
    let full = Mount::tmpfs(&w.ws.join("full"), "2m");
    let mut args = materialise("pooled", "tar", "full/pooled.tar");
    args.extend(["--pool", "debs"]);
    let err = w.fails(&args);
    report(&format!(
        "a pool archive unpacked beside OUT on a full 2 MiB tmpfs:\n{err}"
    ));
    assert!(
        err.starts_with("error: full/pooled.tar: no space left on the device while writing /usr/share/pooled/big"),
        "{err}"
    );
    assert!(names(full.path()).is_empty(), "{:?}", names(full.path()));
}

#[test]
fn a_read_only_filesystem_fails_materialise_clearly_and_changes_nothing() {
    let Some(w) = world() else { return };
    w.ok(&["compile", "groups/big.kdl", "groups/small.kdl"]);
    let ro = Mount::tmpfs(&w.ws.join("ro"), "16m");
    let outs: Vec<String> = OUTPUTS
        .iter()
        .map(|(_, name)| format!("ro/{name}"))
        .collect();
    for ((format, _), out) in OUTPUTS.iter().zip(&outs) {
        w.ok(&materialise("small", format, out));
    }
    let previous: Vec<_> = outs
        .iter()
        .map(|out| output_state(&w.ws.join(out)))
        .collect();
    let listing = names(ro.path());
    ro.read_only();
    for (((format, _), out), previous) in OUTPUTS.iter().zip(&outs).zip(previous) {
        let err = w.fails(&materialise("big", format, out));
        report(&format!(
            "-o {out} (--format {format}) on a read-only tmpfs:\n{err}"
        ));
        assert!(
            err.starts_with(&format!("error: {out}: cannot create a temporary")),
            "{err}"
        );
        assert!(err.contains("Read-only file system"), "{err}");
        assert_eq!(output_state(&w.ws.join(out)), previous, "{out} changed");
    }
    assert_eq!(names(ro.path()), listing);
}

#[test]
fn a_read_only_folder_fails_materialise_as_nobody_and_changes_nothing() {
    let Some(w) = world() else { return };
    w.ok(&["compile", "groups/big.kdl", "groups/small.kdl"]);
    let locked = w.ws.join("locked");
    fs::create_dir(&locked).unwrap();
    w.give_to_nobody();
    for (format, name) in OUTPUTS {
        common::succeeds(w.as_nobody(&materialise("small", format, &format!("locked/{name}"))));
    }
    let previous: Vec<_> = OUTPUTS
        .iter()
        .map(|(_, name)| output_state(&locked.join(name)))
        .collect();
    let listing = names(&locked);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    for ((format, name), previous) in OUTPUTS.into_iter().zip(previous) {
        let out = format!("locked/{name}");
        let err = common::refused(w.as_nobody(&materialise("big", format, &out)));
        report(&format!(
            "-o {out} (--format {format}) in a 0555 folder, as nobody:\n{err}"
        ));
        assert!(
            err.starts_with(&format!("error: {out}: cannot create a temporary")),
            "{err}"
        );
        assert!(err.contains("Permission denied"), "{err}");
        assert_eq!(output_state(&locked.join(name)), previous, "{out} changed");
    }
    assert_eq!(names(&locked), listing);
}

#[test]
fn a_full_store_fails_compile_clearly_and_keeps_the_repository() {
    let Some(w) = world() else { return };
    let store = Mount::tmpfs(&w.ws.join("store"), "2m");
    let repo = store.path().join("repo.sqlite");
    w.ok(&["compile", "groups/small.kdl"]);
    let before = verified_revisions(&repo);
    // No room at all, then room for SQLite's WAL index (32 KiB) but not the blobs.
    for (spare, fails) in [
        (
            0,
            format!(
                "{}: no space left on the device while reading its schema",
                repo.display()
            ),
        ),
        (
            64 << 10,
            "no space left on the device while writing a blob".to_string(),
        ),
    ] {
        store.fill(spare);
        let err = w.fails(&["compile", "groups/big.kdl"]);
        report(&format!(
            "compile with the store on a full 2 MiB tmpfs ({spare} bytes free):\n{err}"
        ));
        assert!(err.starts_with("error: ") && err.contains(&fails), "{err}");
        fs::remove_file(store.path().join(".filler")).unwrap();
        assert_eq!(verified_revisions(&repo), before);
        let (_, temporaries) = blob_store(&store.path().join("blobs"));
        assert!(temporaries.is_empty(), "{temporaries:?}");
        assert_eq!(names(store.path()), ["blobs", "pool", "repo.sqlite"]);
        assert!(names(&w.tmp).is_empty(), "{:?}", names(&w.tmp));
    }

    // The repository alone on a full filesystem: the blobs go in, its rows cannot.
    let repo_fs = Mount::tmpfs(&w.ws.join("repo-fs"), "2m");
    let repo = "repo-fs/repo.sqlite";
    w.ok(&["--repo", repo, "compile", "groups/small.kdl"]);
    let before = verified_revisions(&w.ws.join(repo));
    repo_fs.fill(64 << 10);
    let err = w.fails(&["--repo", repo, "compile", "groups/big.kdl"]);
    report(&format!(
        "compile with the repository on a full 2 MiB tmpfs (65536 bytes free):\n{err}"
    ));
    // SQLite writes the rows out when the transaction commits.
    assert!(
        err.starts_with(&format!(
            "error: {repo}: no space left on the device while committing big=1.0"
        )),
        "{err}"
    );
    assert_eq!(verified_revisions(&w.ws.join(repo)), before);

    // Room again: the same compile goes through, to a repository that works.
    fs::remove_file(repo_fs.path().join(".filler")).unwrap();
    let stored = w.ok(&["--repo", repo, "compile", "groups/big.kdl"]);
    assert!(
        stored.contains("big=1.0-1[!kernel,openvz is: x86_64] stored"),
        "{stored}"
    );
    assert_eq!(verified_revisions(&w.ws.join(repo)).len(), before.len() + 1);
}

#[test]
fn a_full_filesystem_at_a_tarball_s_finish_fails_it_and_at_its_stamp_warns() {
    let Some(w) = world() else { return };
    w.ok(&["compile", "groups/big.kdl"]);
    for (i, name) in ["big.tar", "big.tar.gz", "big.tar.zst", "big.tar.xz"]
        .into_iter()
        .enumerate()
    {
        w.ok(&materialise("big", "tar", name));
        let size = fs::metadata(w.ws.join(name)).unwrap().len();
        // The archive goes out through a 1 MiB buffer: leave room for every whole MiB
        // but not for the rest, which only the finishing flush writes.
        let tail = size % (1 << 20);
        assert!(
            tail > 16 << 10,
            "{name}: {size} bytes leave no room to aim at"
        );
        let room = size - tail / 2;
        let full = Mount::tmpfs(&w.ws.join(format!("fill{i}")), &room.to_string());
        let out = format!("fill{i}/{name}");
        let err = w.fails(&materialise("big", "tar", &out));
        report(&format!(
            "-o {out} on a {room}-byte tmpfs (the archive has {size}):\n{err}"
        ));
        assert!(
            err.starts_with(&format!(
                "error: {out}: no space left on the device while writing fill{i}/.{name}.tmp-"
            )),
            "{err}"
        );
        assert!(names(full.path()).is_empty(), "{:?}", names(full.path()));
    }

    // Room for the archive to the last page, none for the claim that marks it as
    // appliance's before it is renamed to OUT: the run fails and leaves nothing.
    let size = fs::metadata(w.ws.join("big.tar")).unwrap().len();
    let room = size.div_ceil(4096) * 4096;
    let full = Mount::tmpfs(&w.ws.join("exact"), &room.to_string());
    let err = w.fails(&materialise("big", "tar", "exact/big.tar"));
    report(&format!(
        "-o exact/big.tar on a tmpfs of exactly its size:\n{err}"
    ));
    assert!(
        err.starts_with(
            "error: exact/big.tar: no space left on the device while writing exact/.big.tar.appliance-claim"
        ),
        "{err}"
    );
    assert!(names(full.path()).is_empty(), "{:?}", names(full.path()));

    // A page more holds the claim, none for the stamp: OUT is complete and still known
    // to be appliance's, and only --if-newer loses (a warning says so).
    let full = Mount::tmpfs(&w.ws.join("claim"), &(room + 4096).to_string());
    let out = w
        .command(&materialise("big", "tar", "claim/big.tar"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    report(&format!(
        "-o claim/big.tar on a tmpfs a page larger than it:\n{stderr}"
    ));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("warning: could not write the stamp claim/.big.tar.appliance-stamp")
            && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert_eq!(
        output_state(&full.path().join("big.tar")),
        output_state(&w.ws.join("big.tar"))
    );
    assert_eq!(names(full.path()), [".big.tar.appliance-claim", "big.tar"]);
}
