//! The repository is appliance's own, end to end through the binary: a path that is not
//! one (another program's database, a device, a FIFO, a folder) is refused and left as
//! it was; commands that only read never make one; a repository an earlier appliance
//! made is adopted by the next compile; damage is an error from every command that
//! reads it, which changes nothing.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use common::{World, bulky_packages, digest, is_root, names};

const GROUP: &str =
    "group base version=\"1.0\" {\n    flavors openvz\n    package bash\n    package bulk\n}\n";

/// Every command that reads the repository, with its arguments.
const READERS: [&[&str]; 5] = [
    &["list"],
    &["show", "base", "--flavor", "openvz"],
    &["materialise", "base", "--flavor", "openvz", "-o", "out.tar"],
    &["why", "bash", "--group", "base", "--flavor", "openvz"],
    &["verify", "base", "--flavor", "openvz"],
];

/// The command that writes it.
const COMPILE: &[&str] = &["compile", "groups/base.kdl"];

/// The `PRAGMA application_id` appliance marks a repository with: "APPL".
const MARK: i64 = 0x4150_504C;

fn world() -> World {
    World::new(&bulky_packages(), &[("base", GROUP)])
}

/// `args` with `--repo repo` in front.
fn with_repo<'a>(repo: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--repo", repo];
    all.extend_from_slice(args);
    all
}

fn application_id(repo: &Path) -> i64 {
    rusqlite::Connection::open(repo)
        .unwrap()
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .unwrap()
}

/// Runs `program` with `args`, which must succeed.
fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}");
}

#[test]
fn what_is_not_a_repository_is_refused_and_left_as_it_was() {
    let w = world();
    let theirs = w.ws.join("theirs.sqlite");
    rusqlite::Connection::open(&theirs)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('theirs');")
        .unwrap();
    let fifo = w.ws.join("fifo");
    run("mkfifo", &[fifo.to_str().unwrap()]);
    let mut cases = vec![
        (
            "theirs.sqlite",
            "another program's SQLite database (tables: t)",
        ),
        ("fifo", "a FIFO"),
        ("groups", "a directory"),
    ];
    if is_root() {
        // `/dev/null`'s own numbers, in a folder the test owns.
        run(
            "mknod",
            &[w.ws.join("null").to_str().unwrap(), "c", "1", "3"],
        );
        cases.push(("null", "a character device"));
    }
    let listing = names(&w.ws);
    let bytes = digest(&theirs);
    for (repo, what) in cases {
        for args in READERS.iter().chain([&COMPILE]) {
            let err = w.fails(&with_repo(repo, args));
            assert!(
                err.starts_with(&format!(
                    "error: {repo} is not an appliance repository but {what}; appliance leaves it alone\n"
                )),
                "{repo} {args:?}: {err}"
            );
        }
    }
    // No -journal or -wal beside any of them, no store/ from compile, no output.
    assert_eq!(names(&w.ws), listing);
    assert_eq!(digest(&theirs), bytes);
}

#[test]
fn commands_that_read_never_make_a_repository() {
    let w = world();
    let empty = w.ws.join("empty.sqlite");
    fs::write(&empty, "").unwrap();
    let store = w.ws.join("store/repo.sqlite");
    for args in READERS {
        let err = w.fails(args);
        assert_eq!(
            err,
            format!(
                "error: no repository at {}: run `appliance compile` first\n",
                store.display()
            ),
            "{args:?}"
        );
        let err = w.fails(&with_repo("empty.sqlite", args));
        assert_eq!(
            err, "error: no repository at empty.sqlite: run `appliance compile` first\n",
            "{args:?}"
        );
    }
    assert!(!w.ws.join("store").exists());
    assert_eq!(fs::read(&empty).unwrap(), b"");
    assert_eq!(names(&w.ws), ["empty.sqlite", "flavors", "groups"]);

    // An empty file is where compile may make one.
    w.ok(&with_repo("empty.sqlite", COMPILE));
    assert_eq!(application_id(&empty), MARK);
    assert!(
        w.ok(&with_repo("empty.sqlite", &["list"]))
            .contains("base=1.0-1")
    );
}

#[test]
fn a_repository_an_earlier_appliance_made_is_read_and_adopted() {
    let w = world();
    w.ok(COMPILE);
    let repo = w.ws.join("store/repo.sqlite");
    let listed = w.ok(&["list"]);
    // As the last unmarked schema (version 2) left it: no application id, no columns
    // for files' times and documentation marks, nor for locks' container configs, and
    // no index of apt's lists, table of compiles' fingerprints, kept trees, kept archive
    // reads nor installed packages found unchanged.
    rusqlite::Connection::open(&repo)
        .unwrap()
        .execute_batch(
            "PRAGMA application_id = 0; PRAGMA user_version = 2;
             ALTER TABLE package_files DROP COLUMN mtime;
             ALTER TABLE package_files DROP COLUMN documentation;
             ALTER TABLE lock_files DROP COLUMN mtime;
             ALTER TABLE lock_files DROP COLUMN documentation;
             ALTER TABLE locks DROP COLUMN container;
             DROP TABLE apt_provides; DROP TABLE apt_stanzas; DROP TABLE apt_lists;
             DROP TABLE fingerprints; DROP TABLE configurations; DROP TABLE archive_reads;
             DROP TABLE verified;",
        )
        .unwrap();
    let bytes = digest(&repo);
    // A reader does not migrate: it says what does, and writes nothing.
    for reader in &READERS[..2] {
        let out = w.command(reader).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("schema version 2, older than this appliance's")
                && stderr.contains("run `appliance compile` to upgrade it"),
            "{stderr}"
        );
    }
    assert_eq!(digest(&repo), bytes, "a command that reads wrote");
    assert_eq!(names(&w.ws.join("store")), ["blobs", "pool", "repo.sqlite"]);

    let out = w.command(COMPILE).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("base=1.0-1[!kernel,openvz is: x86_64] unchanged"),
        "{out:?}"
    );
    assert!(
        stderr.contains(&format!(
            "note: repository {} was made by an earlier appliance: marked it as appliance's",
            repo.display()
        )),
        "{stderr}"
    );
    assert_eq!(application_id(&repo), MARK);
    let again = w.command(COMPILE).output().unwrap();
    // Marked once: no note the second time (the fake packages' warning stays).
    assert!(
        again.status.success() && !String::from_utf8_lossy(&again.stderr).contains("note:"),
        "{again:?}"
    );
    assert_eq!(w.ok(&["list"]), listed);
}

/// Overwrites four pages in the middle of the SQLite file `repo` with a byte no page
/// header starts with.
fn damage(repo: &Path) {
    const PAGE: u64 = 4096;
    let mut file = fs::OpenOptions::new().write(true).open(repo).unwrap();
    let pages = file.metadata().unwrap().len() / PAGE;
    assert!(
        pages > 16,
        "{pages} pages: too small to damage in the middle"
    );
    file.seek(SeekFrom::Start((pages / 2 - 2) * PAGE)).unwrap();
    file.write_all(&[0xa5; 4 * PAGE as usize]).unwrap();
}

/// Runs each of `commands`, which must fail with one line saying the repository is
/// damaged (`how`), and change nothing.
fn damage_is_told_by(w: &World, commands: &[&[&str]], how: &str) {
    let repo = w.ws.join("store/repo.sqlite");
    let bytes = digest(&repo);
    for args in commands {
        let err = w.fails(args);
        assert!(
            err.starts_with(&format!(
                "error: repository {} is damaged{how}",
                repo.display()
            )),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(digest(&repo), bytes, "a failed command wrote");
    assert!(!w.ws.join("out.tar").exists());
}

#[test]
fn a_repository_with_damaged_pages_fails_every_command() {
    let w = world();
    w.ok(COMPILE);
    damage(&w.ws.join("store/repo.sqlite"));
    let commands: Vec<&[&str]> = [COMPILE].into_iter().chain(READERS).collect();
    damage_is_told_by(&w, &commands, ": ");
}

#[test]
fn rows_that_no_longer_hash_to_their_lock_fail_every_command_that_loads_it() {
    let w = world();
    w.ok(COMPILE);
    // A page SQLite finds sound, holding a value that is not what was stored.
    rusqlite::Connection::open(w.ws.join("store/repo.sqlite"))
        .unwrap()
        .execute(
            "UPDATE package_files SET size = size + 1 WHERE path = '/usr/bin/bash'",
            [],
        )
        .unwrap();
    // `list` loads no lock (it counts rows), so it is not among them.
    let commands: Vec<&[&str]> = [COMPILE]
        .into_iter()
        .chain(READERS.into_iter().skip(1))
        .collect();
    damage_is_told_by(
        &w,
        &commands,
        " at base=1.0-1[!kernel,openvz is: x86_64]: its rows hash to",
    );
}
