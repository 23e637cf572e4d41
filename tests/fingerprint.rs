//! A compile whose inputs are unchanged is answered from its fingerprint, and every
//! input that can change the lock makes it compile again.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{FakePackage, World, build_deb, lock_id};

const BASE: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
    file "/etc/hostname" content="fake\n"
}
"#;

/// A world with base's packages installed, whose files are already older than the
/// racy window (2 s): a file changed within it that the lock holds otherwise than the
/// host (a generated one) cannot be told from one changed during the compile, and is
/// never answered for.
fn world() -> World {
    let w = World::new(&packages(), &[("base", BASE)]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    w
}

/// What `-v` says when the fingerprint answers.
const ANSWERED: &str = "compile: fingerprint inputs unchanged (";

fn packages() -> Vec<FakePackage> {
    common::core_packages(&[])
}

/// A stanza of apt's lists for a package no group asks for.
fn stanza(name: &str) -> String {
    format!(
        "Package: {name}\nVersion: 1\nArchitecture: amd64\nDescription: test\n\
         Filename: pool/main/{name}.deb\nSize: 1\nSHA256: {}\n\n",
        "0".repeat(64)
    )
}

/// A compile of base with `-v --offline`: its result line, and whether the fingerprint
/// answered it.
fn compile(w: &World, more: &[&str]) -> (String, bool) {
    let mut args = vec!["-v", "compile", "groups/base.kdl", "--offline"];
    args.extend_from_slice(more);
    let out = w.command(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answered = stderr.contains(ANSWERED);
    if answered {
        let id = lock_id(&stdout).unwrap();
        assert!(stderr.contains(&format!("{ANSWERED}{id}): answered from the repository")));
        // Nothing was read: no stage ran.
        assert!(!stderr.contains("installed packages"), "{stderr}");
    }
    (stdout, answered)
}

/// Compiles after a change: it must compile for real, with `status` and the lock id
/// `same` as `before`'s or not; the next compile is answered with that result.
fn compiles_again(w: &World, before: &str, status: &str, same: bool) -> String {
    let (after, answered) = compile(w, &[]);
    assert!(!answered, "answered after a change: {after}");
    assert!(after.contains(&format!(" {status}: ")), "{after}");
    assert_eq!(lock_id(&after) == lock_id(before), same, "{before}{after}");
    let (again, answered) = compile(w, &[]);
    assert!(answered, "{again}");
    assert_eq!(again, after.replace(" stored: ", " unchanged: "));
    after
}

#[test]
fn an_unchanged_compile_is_answered_and_each_changed_input_compiles_again() {
    let w = world();
    let lists = w.sysroot.join("var/lib/apt/lists");
    fs::create_dir_all(&lists).unwrap();
    let list = lists.join("site_dists_x_main_binary-amd64_Packages");
    fs::write(&list, stanza("extra")).unwrap();

    let (first, answered) = compile(&w, &[]);
    assert!(!answered);
    assert!(first.contains(" stored: "), "{first}");
    let (second, answered) = compile(&w, &[]);
    assert!(answered, "{second}");
    assert_eq!(second, first.replace(" stored: ", " unchanged: "));
    // --json says what a compile that stores nothing says.
    let json = |args: &[&str]| {
        let mut all = vec!["compile", "groups/base.kdl", "--offline", "--json"];
        all.extend_from_slice(args);
        w.ok(&all)
    };
    let answered_json = json(&[]);
    assert!(
        answered_json.contains("\"status\": \"unchanged\""),
        "{answered_json}"
    );

    // The group file.
    let edited = BASE.replace("fake\\n", "edited\\n");
    fs::write(w.ws.join("groups/base.kdl"), &edited).unwrap();
    let now = compiles_again(&w, &second, "stored", false);

    // dpkg's status, only touched: read again, the same lock.
    let status = w.sysroot.join("var/lib/dpkg/status");
    let touched = Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(&status)
        .status()
        .unwrap();
    assert!(touched.success());
    let now = compiles_again(&w, &now, "unchanged", true);

    // An apt list, edited in place.
    let mut text = fs::read_to_string(&list).unwrap();
    text += &stanza("another");
    fs::write(&list, text).unwrap();
    let now = compiles_again(&w, &now, "unchanged", true);

    // A host file the lock takes from an installed package: its mode (new bytes would
    // make bash altered, and the compile take it from an archive).
    let bash = w.sysroot.join("bin/bash");
    fs::set_permissions(&bash, fs::Permissions::from_mode(0o700)).unwrap();
    let now = compiles_again(&w, &now, "stored", false);

    // The flavor: its default format is part of the recipe, not of the lock.
    let flavor = w.ws.join("flavors/openvz.kdl");
    let text = fs::read_to_string(&flavor).unwrap();
    fs::write(&flavor, text.replace("format openvz", "format tar")).unwrap();
    let now = compiles_again(&w, &now, "unchanged", true);

    // An archive added to the store's pool, which compile reads. Every compile makes
    // the pool folder first, so the first download into it does not change every key.
    let pool = w.ws.join("store/pool");
    assert!(pool.is_dir());
    build_deb(
        &pool,
        "unasked",
        "1",
        &[("/usr/share/unasked", "x")],
        &[],
        &[],
    );
    let now = compiles_again(&w, &now, "unchanged", true);

    // A removed lock is not answered from its stale fingerprint.
    let (address, _) = now.split_once("] ").unwrap();
    w.ok(&["rm", &format!("{address}]")]);
    let (after, answered) = compile(&w, &[]);
    assert!(!answered, "{after}");
    assert!(after.contains(" stored: "), "{after}");
}

#[test]
fn json_of_an_answered_compile_is_the_stored_compile_s_with_its_status() {
    let w = world();
    let args = ["compile", "groups/base.kdl", "--offline", "--json"];
    let stored = w.ok(&args);
    let answered = w.ok(&args);
    assert_eq!(
        answered,
        stored.replace("\"status\": \"stored\"", "\"status\": \"unchanged\"")
    );
    let (_, was_answered) = compile(&w, &[]);
    assert!(was_answered);
}
