//! `appliance log` and `appliance diff` end to end through the binary, over a store made
//! by compiling a tiny group twice in a hermetic world: a fake sysroot, and a pool
//! holding a newer bash.

mod common;

use std::fs;

use common::{FakePackage, World, build_deb};

const OPENVZ: &str = "[!kernel,openvz is: x86_64]";
const LEAN: &str = "[!kernel is: x86_64]";

fn packages() -> Vec<FakePackage> {
    let mut packages = common::core_packages(&[]);
    packages.extend([
        FakePackage::new("coreutils", "9.1-1")
            .depends("libc6")
            .file("/bin/ls", "fake ls\n"),
        FakePackage::new("mawk", "1.3.4-1")
            .extra("Provides: awk\n")
            .file("/usr/bin/mawk", "fake mawk\n"),
    ]);
    packages
}

/// The first revision: bash, and awk in the openvz flavor only.
const FIRST: &str = r#"group base version="1.0" {
    flavors openvz lean
    package bash
    package awk when=openvz
    file "/etc/hostname" mode=0o644 content="one\n"
}
"#;

/// The second: coreutils instead of awk, another hostname and mode, bash from the pool.
const SECOND: &str = r#"group base version="1.0" {
    flavors openvz lean
    prefer newest
    package bash
    package coreutils
    file "/etc/hostname" mode=0o600 content="two\n"
}
"#;

/// A world whose store holds revisions 1 and 2 of `base` for flavors openvz and lean
/// (a flavor of the workspace's own with neither kernel nor openvz).
fn two_revisions() -> World {
    let w = World::new(&packages(), &[("base", FIRST)]);
    fs::write(
        w.ws.join("flavors/lean.kdl"),
        "flavor lean {\n    arch x86_64\n    use kernel=#false\n}\n",
    )
    .unwrap();
    let pool = w.ws.join("debs");
    fs::create_dir_all(&pool).unwrap();
    build_deb(
        &pool,
        "bash",
        "5.2.15-2+b9",
        &[("/bin/bash", "#!new bash\n")],
        &[],
        &[],
    );
    w.ok(&["compile", "groups/base.kdl"]);
    recompile(&w, SECOND);
    w
}

fn recompile(w: &World, group: &str) {
    fs::write(w.ws.join("groups/base.kdl"), group).unwrap();
    w.ok(&["compile", "groups/base.kdl", "--pool", "debs", "--offline"]);
}

/// The lines of `log` that are about `flavor`.
fn log_lines(log: &str, flavor: &str) -> Vec<String> {
    (log.lines())
        .filter(|line| line.contains(&format!("{flavor}  ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn log_shows_every_revision_newest_first_with_what_changed() {
    let w = two_revisions();
    let log = w.ok(&["log", "base"]);
    assert_eq!(log.lines().count(), 4, "{log}");
    // Both second revisions come before both first ones.
    let revisions: Vec<bool> = log.lines().map(|l| l.contains("=1.0-2[")).collect();
    assert_eq!(revisions, [true, true, false, false], "{log}");
    let openvz = log_lines(&log, OPENVZ);
    assert_eq!(openvz.len(), 2, "{log}");
    assert!(
        openvz[0].starts_with(&format!("base=1.0-2{OPENVZ}  ")),
        "{log}"
    );
    assert!(
        openvz[0].ends_with("1 upgraded, 1 added, 1 removed"),
        "{log}"
    );
    assert!(openvz[1].ends_with("first revision"), "{log}");
    // A time, a 12-hex lock id and the counts.
    let fields: Vec<&str> = openvz[0].split("  ").collect();
    assert!(fields[1].ends_with('Z') && fields[1].len() == 20, "{log}");
    assert!(
        fields[2].len() == 12 && fields[2].chars().all(|c| c.is_ascii_hexdigit()),
        "{log}"
    );
    assert!(
        fields[3].ends_with(" packages") && fields[4].ends_with(" files"),
        "{log}"
    );
    let lean = log_lines(&log, LEAN);
    assert!(lean[0].ends_with("1 upgraded, 1 added"), "{log}");

    // Only the file changes: the packages are the same.
    recompile(&w, &SECOND.replace("two\\n", "three\\n"));
    let log = w.ok(&["log", "--flavor", "openvz"]);
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].starts_with(&format!("base=1.0-3{OPENVZ}")),
        "{log}"
    );
    // /etc/hostname, and /etc/hosts, which names the machine.
    assert!(
        lines[0].ends_with("packages unchanged, 2 files changed"),
        "{log}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&w.ok(&["log", "base", "--flavor", OPENVZ, "--json"])).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 3, "{json}");
    let second = &entries[1];
    assert_eq!(second["address"], format!("base=1.0-2{OPENVZ}"));
    assert_eq!(second["previous"], format!("base=1.0-1{OPENVZ}"));
    assert_eq!(second["lock_id"].as_str().unwrap().len(), 64, "{json}");
    assert_eq!(second["summary"], "1 upgraded, 1 added, 1 removed");
    let counts = &second["changes"];
    let count = |key: &str| counts[key].as_u64().unwrap();
    let seen = ["upgraded", "downgraded", "added", "removed"].map(count);
    assert_eq!(seen, [1, 0, 1, 1], "{json}");
    assert!(count("files") >= 3, "{json}");
    assert!(entries[2]["previous"].is_null() && entries[2]["changes"].is_null());
    assert_eq!(entries[2]["summary"], "first revision");
    assert_eq!(second["revision"], 2);
    assert!(second["packages"].as_u64().unwrap() > 0 && second["created"].is_i64());
}

#[test]
fn diff_shows_package_sections_with_sizes_and_every_changed_path() {
    let w = two_revisions();
    let diff = w.ok(&["diff", "base=1.0-1", "base=1.0-2", "--flavor", "openvz"]);
    // bash's one file shrank by a byte; coreutils' /usr/bin/ls is 8 bytes, mawk's 10.
    for wanted in [
        format!("from base=1.0-1{OPENVZ}\nto   base=1.0-2{OPENVZ}\n"),
        "Upgraded:\n  bash 5.2.15-2+b2 -> 5.2.15-2+b9  -1 B\n".to_string(),
        "Added:\n  coreutils 9.1-1  +8 B\n".to_string(),
        "Removed:\n  mawk 1.3.4-1  -10 B\n".to_string(),
    ] {
        assert!(diff.contains(&wanted), "{wanted:?} in\n{diff}");
    }
    assert!(!diff.contains("Downgraded"), "{diff}");
    assert!(diff.contains("(--files lists them)"), "{diff}");
    assert!(!diff.contains("/etc/hostname"), "{diff}");

    let files = w.ok(&[
        "diff",
        "base=1.0-1",
        "base=1.0-2",
        "--flavor",
        "openvz",
        "--files",
    ]);
    let line = |path: &str| {
        (files.lines())
            .find(|l| l.contains(&format!(" {path}  ")))
            .unwrap_or_else(|| panic!("no {path} in\n{files}"))
            .to_string()
    };
    let one = &blake3::hash(b"one\n").to_hex()[..8];
    let two = &blake3::hash(b"two\n").to_hex()[..8];
    assert_eq!(
        line("/etc/hostname"),
        format!("  ~ /etc/hostname  content 4 B {one} -> 4 B {two}, mode 0644 -> 0600")
    );
    let ls = &blake3::hash(b"fake ls\n").to_hex()[..8];
    assert_eq!(
        line("/usr/bin/ls"),
        format!("  + /usr/bin/ls  file 0755 root:root 8 B {ls}")
    );
    assert!(
        line("/usr/bin/mawk").starts_with("  - /usr/bin/mawk  file 0755"),
        "{files}"
    );
    assert!(
        line("/usr/bin/bash").starts_with("  ~ /usr/bin/bash  content 12 B"),
        "{files}"
    );

    // Two flavors of one group, by name or by canonical string, and a lock with itself.
    let flavors = w.ok(&["diff", "base[lean]", &format!("base=1.0-2{OPENVZ}")]);
    assert!(
        flavors.contains(&format!("from base=1.0-2{LEAN}\n")),
        "{flavors}"
    );
    assert!(flavors.contains("Also changed: flavor\n"), "{flavors}");
    assert!(flavors.contains("Packages unchanged\n"), "{flavors}");
    let old = w.ok(&["diff", "base=1.0-1[lean]", "base=1.0-1[openvz]"]);
    assert!(old.contains("Added:\n  mawk 1.3.4-1  +10 B\n"), "{old}");
    let same = w.ok(&["diff", "base", "base=1.0", "--flavor", "lean"]);
    assert!(same.ends_with("\nidentical\n"), "{same}");
}

#[test]
fn diff_json_has_the_documented_fields() {
    let w = two_revisions();
    let args = [
        "diff",
        "base=1.0-1",
        "base=1.0-2",
        "--flavor",
        "openvz",
        "--json",
    ];
    let json: serde_json::Value = serde_json::from_str(&w.ok(&args)).unwrap();
    assert_eq!(json["from"]["address"], format!("base=1.0-1{OPENVZ}"));
    assert_eq!(json["to"]["lock_id"].as_str().unwrap().len(), 64, "{json}");
    assert_eq!(json["backend"], "dpkg");
    assert_eq!(json["summary"], "1 upgraded, 1 added, 1 removed");
    let bash = &json["upgraded"][0];
    assert_eq!(
        (&bash["name"], &bash["arch"], &bash["old"], &bash["new"]),
        (
            &"bash".into(),
            &"amd64".into(),
            &"5.2.15-2+b2".into(),
            &"5.2.15-2+b9".into()
        )
    );
    assert_eq!(
        (&bash["old_size"], &bash["new_size"]),
        (&12.into(), &11.into())
    );
    assert_eq!(bash["size_change"], -1);
    assert_eq!(json["added"][0]["old"], serde_json::Value::Null);
    assert_eq!(json["removed"][0]["name"], "mawk");
    assert_eq!(json["downgraded"], serde_json::json!([]));
    // The group file changed too.
    assert_eq!(json["settings"], serde_json::json!(["group files"]));
    assert!(json["files"]["changed"].as_u64().unwrap() >= 2, "{json}");
    assert!(json.get("paths").is_none(), "paths without --files: {json}");

    let args = [&args[..], &["--files"]].concat();
    let json: serde_json::Value = serde_json::from_str(&w.ok(&args)).unwrap();
    let paths = json["paths"].as_array().unwrap();
    let hostname = paths.iter().find(|p| p["path"] == "/etc/hostname").unwrap();
    assert_eq!(hostname["change"], "changed");
    assert_eq!(hostname["aspects"], serde_json::json!(["content", "mode"]));
    assert_eq!(hostname["old"]["mode"], "0644");
    assert_eq!(hostname["new"]["mode"], "0600");
    assert_eq!(
        hostname["new"]["digest"],
        blake3::hash(b"two\n").to_hex().as_str()
    );
    let ls = paths.iter().find(|p| p["path"] == "/usr/bin/ls").unwrap();
    assert_eq!(
        (&ls["change"], &ls["old"]),
        (&"new".into(), &serde_json::Value::Null)
    );
    assert_eq!(ls["new"]["package"], "coreutils");
}

#[test]
fn bad_references_fail_with_one_message_naming_them() {
    let w = two_revisions();
    let fails = |args: &[&str], wanted: &[&str]| {
        let err = w.fails(args);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        for text in wanted {
            assert!(err.contains(text), "{args:?}: {text:?} in {err}");
        }
    };
    fails(
        &["diff", "base=9.9", "base", "--flavor", "openvz"],
        &[
            "`base=9.9`: ",
            "holds no version 9.9 of group `base`",
            "versions: 1.0",
        ],
    );
    fails(
        &["diff", "base=1.0-7", "base", "--flavor", "openvz"],
        &["`base=1.0-7`: ", "revisions: 1, 2"],
    );
    fails(
        &["diff", "web", "base"],
        &["`web`: ", "holds no group `web`; it holds groups: base"],
    );
    fails(
        &["diff", "base=1.0-1", "base=1.0-2"],
        &[&format!(
            "`base=1.0-1` names no flavor, and group `base` was compiled for several: \
             {LEAN}, {OPENVZ}; pass --flavor"
        )],
    );
    fails(
        &["diff", "base=", "base"],
        &["`base=` is no lock reference (it has no version after `=`): write GROUP"],
    );
    fails(
        &["diff", "base[openvz", "base"],
        &["`base[openvz` is no lock reference (its flavor does not end with `]`)"],
    );
    fails(&["diff", "base[nosuch]", "base"], &["nosuch"]);
    fails(
        &["diff", "base[kvm]", "base[lean]"],
        &["never compiled for flavor [kernel,kvm"],
    );
    fails(
        &["log", "web"],
        &["holds no group `web`; it holds groups: base"],
    );
    fails(
        &["log", "--flavor", "kvm"],
        &[&format!("it was compiled for: {LEAN}, {OPENVZ}")],
    );

    // With a second group, log must be told which.
    fs::write(
        w.ws.join("groups/other.kdl"),
        FIRST.replace("base", "other"),
    )
    .unwrap();
    w.ok(&["compile", "groups/other.kdl"]);
    fails(&["log"], &["several groups (base, other): name one"]);
}
