//! Crash safety, end to end through the binary: `materialise`, `compile`, `gc` and `rm`
//! are killed with SIGKILL at points spread over a run. After each kill, OUT is absent, the
//! previous output or the complete new one; the repository passes SQLite's integrity
//! check and every revision in it loads with a verified lock id; the blob store holds
//! only complete blobs under final names. The next run then succeeds and leaves no
//! temporaries behind.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{World, blob_store, bulky_packages, names, output_state, report, verified_revisions};

/// Kills per kind of run.
const TRIALS: usize = 20;

/// The kill delays' seed: every run of the test kills at the same fractions of a run.
const SEED: u64 = 0x5eed_c4a5;

/// The tests measure how long a run takes: one at a time, so they do not slow each other.
static SERIAL: Mutex<()> = Mutex::new(());

const GROUP: &str = r#"group big version="1.0" {
    flavors openvz
    package bash
    package bulk
    hostfile "/srv/trial/*"
}
"#;

/// A world with two revisions of group `big` compiled.
fn compiled() -> World {
    let w = World::new(&bulky_packages(), &[("big", GROUP)]);
    for round in 0..2 {
        w.host_files("srv/trial", round);
        w.ok(&["compile", "groups/big.kdl"]);
    }
    w
}

/// Kill delays between 0 and `run`: one drawn at random (fixed seed) from each of
/// `n` equal slices of the run, so the kills cover it evenly.
fn delays(n: usize, run: Duration) -> Vec<Duration> {
    let mut state = SEED;
    (0..n)
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let fraction = (state >> 11) as f64 / (1u64 << 53) as f64;
            run.mul_f64((i as f64 + fraction) / n as f64)
        })
        .collect()
}

/// Runs `command`, SIGKILLs it after `delay`; returns whether it was still running then
/// (a run that finished first must have succeeded).
fn killed_after(mut command: Command, delay: Duration) -> bool {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    // Not yet reaped, so the pid is still the child's even if it has exited.
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.signal() {
        Some(libc::SIGKILL) => true,
        None => {
            assert!(
                out.status.success(),
                "{command:?} failed before the kill:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
        Some(signal) => panic!("{command:?} died of signal {signal}"),
    }
}

/// Materialises the two revisions alternately into OUT, killing each run.
fn materialise_survives_kills(format: &str, name: &str, lock: bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = compiled();
    let versions = ["1.0-1", "1.0-2"];
    let args = |version: &'static str, out: &str| {
        let mut args = vec![
            "materialise",
            "big",
            "--flavor",
            "openvz",
            "--version",
            version,
        ];
        args.extend(["--format", format, "-o"]);
        args.push(out);
        if lock {
            args.extend(["--lock", "build.lock"]);
        }
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run = |args: &[String]| w.command(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The reference outputs, and how long an unkilled run takes, the longest of one
    // that makes OUT and one that replaces it.
    fs::create_dir(w.ws.join("refs")).unwrap();
    let mut reference = Vec::new();
    let mut duration = Duration::ZERO;
    for version in versions {
        let out = format!("refs/{name}");
        let start = Instant::now();
        common::succeeds(run(&args(version, &out)));
        duration = duration.max(start.elapsed());
        // A copy to compare with; the output stays for the second run to replace (a
        // copy is not an output appliance made, and would be refused).
        let copy = w.ws.join(format!("refs/{version}"));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(w.ws.join(&out))
            .arg(&copy)
            .status()
            .unwrap();
        assert!(copied.success());
        reference.push(output_state(&copy).unwrap());
    }
    assert_ne!(reference[0], reference[1]);

    fs::create_dir(w.ws.join("outs")).unwrap();
    let out = w.ws.join("outs").join(name);
    let out_arg = format!("outs/{name}");
    let stamp = format!(".{name}.appliance-stamp");
    let mut killed = 0;
    let mut left_temporaries = 0;
    let mut before = None;
    for (i, delay) in delays(TRIALS, duration).into_iter().enumerate() {
        let version = i % 2;
        let args = args(versions[version], &out_arg);
        let was_killed = killed_after(run(&args), delay);
        killed += usize::from(was_killed);

        let after = output_state(&out);
        let new = Some(reference[version].clone());
        if was_killed {
            assert!(
                after == before || after == new,
                "trial {i}: OUT is neither the previous output nor the new one"
            );
        } else {
            assert_eq!(after, new, "trial {i}: a finished run left another OUT");
        }
        let beside = names(&w.ws.join("outs"));
        for left in &beside {
            assert!(
                left == name || left.starts_with(&format!(".{name}.")),
                "trial {i}: {left} beside OUT"
            );
        }
        let temporaries = beside.iter().filter(|n| n.contains(".tmp-")).count();
        left_temporaries += usize::from(temporaries > 0);
        verified_revisions(&w.ws.join("store/repo.sqlite"));

        // With --lock, the next run also asks --if-newer: the stamp a killed run left
        // must not pass off the wrong OUT as current.
        let mut next = args.clone();
        if lock {
            next.push("--if-newer".to_string());
        }
        common::succeeds(run(&next));
        before = output_state(&out);
        assert_eq!(before, new, "trial {i}: the next run's OUT");
        let left = names(&w.ws.join("outs"));
        assert_eq!(
            left,
            [stamp.clone(), name.to_string()],
            "trial {i}: leftovers"
        );
        assert_eq!(names(&w.tmp), Vec::<String>::new(), "trial {i}: TMPDIR");
    }
    report(&format!(
        "materialise --format {format}: {TRIALS} trials over a {duration:.2?} run: {killed} killed mid-run ({left_temporaries} leaving temporaries that the next run removed), {} finished; {TRIALS} survived",
        TRIALS - killed
    ));
}

#[test]
fn materialise_chroot_survives_sigkill() {
    materialise_survives_kills("chroot", "tree", false);
}

#[test]
fn materialise_tar_survives_sigkill() {
    materialise_survives_kills("tar", "big.tar.gz", true);
}

#[test]
fn compile_survives_sigkill() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = compiled();
    let repo = w.ws.join("store/repo.sqlite");
    let store = w.ws.join("store/blobs");
    let compile = || w.command(&["compile", "groups/big.kdl"]);

    // How long a compile that stores new blobs and a new revision takes.
    w.host_files("srv/trial", 2);
    let start = Instant::now();
    common::succeeds(compile());
    let duration = start.elapsed();

    let mut killed = 0;
    let mut left_temporaries = 0;
    for (i, delay) in delays(TRIALS, duration).into_iter().enumerate() {
        w.host_files("srv/trial", i + 3);
        let before = verified_revisions(&repo);
        let (blobs_before, _) = blob_store(&store);
        let was_killed = killed_after(compile(), delay);
        killed += usize::from(was_killed);

        let after = verified_revisions(&repo);
        let added: Vec<_> = after.difference(&before).collect();
        assert!(before.is_subset(&after), "trial {i}: a revision went");
        assert!(added.len() <= 1, "trial {i}: {added:?}");
        assert!(
            was_killed || added.len() == 1,
            "trial {i}: a finished compile stored nothing"
        );
        let (blobs_after, temporaries) = blob_store(&store);
        assert!(
            blobs_before.is_subset(&blobs_after),
            "trial {i}: a blob went"
        );
        left_temporaries += usize::from(!temporaries.is_empty());

        let printed = common::succeeds(compile());
        let status = if added.is_empty() {
            "stored"
        } else {
            "unchanged"
        };
        assert!(printed.contains(status), "trial {i}: {printed}");
        assert_eq!(
            verified_revisions(&repo).len(),
            before.len() + 1,
            "trial {i}"
        );
        let (_, temporaries) = blob_store(&store);
        assert!(temporaries.is_empty(), "trial {i}: {temporaries:?}");
        let left = names(&w.ws.join("store"));
        assert_eq!(
            left,
            ["blobs", "pool", "repo.sqlite"],
            "trial {i}: leftovers"
        );
        assert_eq!(names(&w.tmp), Vec::<String>::new(), "trial {i}: TMPDIR");
    }
    report(&format!(
        "compile: {TRIALS} trials over a {duration:.2?} run: {killed} killed mid-run ({left_temporaries} leaving blob temporaries or scratch folders that the next run removed), {} finished; {TRIALS} survived",
        TRIALS - killed
    ));
}

/// Kills `args` (`gc` or `rm`) at points spread over a run, each time over a repository
/// that a compile has just given one more revision (new host files, so new blobs).
/// After each kill the repository is intact, the newest revision is still there, and
/// every revision left materialises: no blob a kept lock needs is gone. The next sweep
/// then finishes and leaves no temporaries.
fn collection_survives_kills(what: &str, args: impl Fn(&World) -> Vec<String>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = compiled();
    let repo = w.ws.join("store/repo.sqlite");
    let run = |args: &[String]| w.command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let revision = |address: &str| -> u32 {
        let tail = address
            .split('[')
            .next()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap();
        tail.parse().unwrap()
    };
    let newest = || {
        let held = verified_revisions(&repo);
        held.into_iter()
            .max_by_key(|(address, _)| revision(address))
            .unwrap()
    };
    // Every revision left materialises, its hostfile bytes from the blob store alone
    // (the host's files have changed since).
    let materialises = |trial: usize| {
        for (address, _) in verified_revisions(&repo) {
            let version = address
                .split('=')
                .nth(1)
                .unwrap()
                .split('[')
                .next()
                .unwrap();
            let out = format!("check-{trial}.tar");
            common::succeeds(w.command(&common::materialise_revision("big", version, &out)));
            fs::remove_file(w.ws.join(&out)).unwrap();
            fs::remove_file(w.ws.join(format!(".{out}.appliance-stamp"))).unwrap();
        }
    };

    // How long an unkilled run takes.
    w.host_files("srv/trial", 2);
    w.ok(&["compile", "groups/big.kdl"]);
    let start = Instant::now();
    common::succeeds(run(&args(&w)));
    let duration = start.elapsed();

    let mut killed = 0;
    for (i, delay) in delays(TRIALS, duration).into_iter().enumerate() {
        w.host_files("srv/trial", i + 3);
        w.ok(&["compile", "groups/big.kdl"]);
        let kept = newest();
        let args = args(&w);
        let was_killed = killed_after(run(&args), delay);
        killed += usize::from(was_killed);
        assert!(
            verified_revisions(&repo).contains(&kept),
            "trial {i}: the newest went"
        );
        let (_, temporaries) = blob_store(&w.ws.join("store/blobs"));
        assert!(temporaries.is_empty(), "trial {i}: {temporaries:?}");
        materialises(i);
        // A sweep that removes no revision finishes what the killed run began.
        w.ok(&["gc", "--keep", "1000"]);
        materialises(i);
        // What materialise kept unpacked from archives, if it unpacked any, holds no
        // temporary once a sweep has run either.
        let mut left = names(&w.ws.join("store"));
        if left.iter().any(|name| name == "unpacked") {
            let (_, temporaries) = blob_store(&w.ws.join("store/unpacked"));
            assert!(temporaries.is_empty(), "trial {i}: {temporaries:?}");
            left.retain(|name| name != "unpacked");
        }
        assert_eq!(
            left,
            ["blobs", "pool", "repo.sqlite"],
            "trial {i}: leftovers"
        );
    }
    report(&format!(
        "{what}: {TRIALS} trials over a {duration:.2?} run: {killed} killed mid-run, {} finished; {TRIALS} survived",
        TRIALS - killed
    ));
}

#[test]
fn gc_survives_sigkill() {
    collection_survives_kills("gc", |_| vec!["gc".into(), "--keep".into(), "1".into()]);
}

#[test]
fn rm_survives_sigkill() {
    // The oldest revision each time.
    collection_survives_kills("rm", |w| {
        let repo = appliance::repo::Repository::open_read_only(&w.ws.join("store/repo.sqlite"));
        let oldest = repo.unwrap().revisions().unwrap().remove(0);
        vec![
            "rm".into(),
            format!("big={}-{}", oldest.version, oldest.revision),
        ]
    });
}
