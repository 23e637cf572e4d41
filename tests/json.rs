//! The JSON the command line prints, end to end through the binary: `compile --json`,
//! and modes as octal strings wherever a file entry is shown.

mod common;

use common::{FakePackage, World};

fn packages() -> Vec<FakePackage> {
    common::core_packages(&[])
}

const BASE: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
    file "/etc/motd" content="hello\n" mode=0o600
}
"#;

#[test]
fn compile_json_describes_each_lock_made() {
    let w = World::new(&packages(), &[("base", BASE)]);
    let first = w.ok(&["compile", "groups/base.kdl", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&first).unwrap();
    let locks = json["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{first}");
    let lock = &locks[0];
    assert_eq!(lock["address"], "base=1.0-1[!kernel,openvz is: x86_64]");
    assert_eq!(lock["group"], "base");
    assert_eq!(lock["version"], "1.0");
    assert_eq!(lock["revision"], 1);
    assert_eq!(lock["flavor"], "[!kernel,openvz is: x86_64]");
    assert_eq!(lock["status"], "stored");
    assert_eq!(lock["packages"], 3, "{first}");
    assert!(lock["files"].as_u64().unwrap() > 3, "{first}");
    assert!(
        lock["warnings"].is_array() && json["warnings"].is_array(),
        "{first}"
    );
    let id = lock["lock_id"].as_str().unwrap();
    assert_eq!(id.len(), 64, "{first}");
    // The id is the one the lock is stored under.
    let show: serde_json::Value = serde_json::from_str(&w.ok(&["show", "--json"])).unwrap();
    assert_eq!(show["lock_id"], id);

    let again = w.ok(&["compile", "groups/base.kdl", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(json["locks"][0]["status"], "unchanged", "{again}");
    assert_eq!(json["locks"][0]["revision"], 1, "{again}");
}

#[test]
fn modes_are_octal_strings_in_json() {
    let w = World::new(&packages(), &[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let text = w.ok(&["show", "--files", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let files = json["lock"]["files"].as_array().unwrap();
    let mode = |path: &str| {
        let file = files.iter().find(|f| f["path"] == path).unwrap();
        file["mode"].clone()
    };
    assert_eq!(mode("/etc/motd"), "0600", "{text}");
    assert_eq!(mode("/usr/bin/bash"), "0755", "{text}");
    assert_eq!(mode("/"), "0755", "{text}");

    // diff --files --json shows entries the same way.
    let changed = BASE.replace("mode=0o600", "mode=0o640");
    std::fs::write(w.ws.join("groups/base.kdl"), changed).unwrap();
    w.ok(&["compile", "groups/base.kdl"]);
    let text = w.ok(&["diff", "base=1.0-1", "base=1.0-2", "--files", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let motd = (json["paths"].as_array().unwrap().iter())
        .find(|p| p["path"] == "/etc/motd")
        .unwrap();
    assert_eq!(
        (&motd["old"]["mode"], &motd["new"]["mode"]),
        (&"0600".into(), &"0640".into()),
        "{text}"
    );
}

#[test]
fn verify_json_says_what_supplies_a_drifted_file() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new(&packages(), &[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let bash = w.sysroot.join("usr/bin/bash");
    std::fs::write(&bash, "changed").unwrap();
    let libc = w.sysroot.join("usr/lib/x86_64-linux-gnu/libc.so.6");
    std::fs::set_permissions(&libc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = w.command(&["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = json.as_array().unwrap();
    let row = |path: &str| rows.iter().find(|r| r["path"] == path).unwrap();
    // Drifted bytes and no pool or blob to take them from: why, not who.
    let bash = row("/usr/bin/bash");
    assert_eq!(bash["package"], "bash");
    assert!(
        bash["origin"].is_null() && bash["supplied_by"].is_null(),
        "{text}"
    );
    assert!(
        bash["unsupplied"].as_str().unwrap().contains("bash"),
        "{text}"
    );
    // Only the mode differs: materialise takes it from the lock, so neither is set.
    let libc = row("/usr/lib/x86_64-linux-gnu/libc.so.6");
    assert_eq!(
        libc["problems"][0], "wrong mode (lock: 0644, host: 0600)",
        "{text}"
    );
    assert!(
        libc["supplied_by"].is_null() && libc["unsupplied"].is_null(),
        "{text}"
    );
}
