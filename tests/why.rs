//! `appliance why` end to end through the binary, and the lock a command names when its
//! GROUP or `--flavor` is left out: over a fake Debian sysroot where libc6 has two
//! dependers and base-files is essential.

mod common;

use common::{FakePackage, World};

fn packages() -> Vec<FakePackage> {
    let mut packages = common::core_packages(&[]);
    packages.extend([
        FakePackage::new("coreutils", "9.1-1")
            .depends("libc6")
            .file("/bin/ls", "fake ls\n"),
        FakePackage::new("mawk", "1.3.4-1").file("/usr/bin/mawk", "fake mawk\n"),
    ]);
    packages
}

const BASE: &str = r#"group base version="1.0" {
    flavors openvz
    package bash
    package coreutils
}
"#;

const TOOLS: &str = r#"group tools version="1.0" {
    flavors openvz
    package mawk
}
"#;

#[test]
fn why_shows_every_chain_of_the_only_group_and_flavor() {
    let w = World::new(&packages(), &[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);

    // No GROUP, no --flavor: the repository's only group, compiled for one flavor.
    let why = w.ok(&["why", "libc6"]);
    let chains: Vec<&str> = why.lines().take_while(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        chains,
        ["base -> bash -> libc6", "base -> coreutils -> libc6"],
        "{why}"
    );
    assert!(
        why.contains("  libc6 2.36-9+deb12u4 (amd64): dependency of bash, coreutils\n"),
        "{why}"
    );
    assert!(
        why.contains("  bash 5.2.15-2+b2 (amd64): named in group base\n"),
        "{why}"
    );
    // An essential package's chain is the essential set's.
    let essential = w.ok(&["why", "base-files", "base", "--flavor", "openvz"]);
    assert!(
        essential.starts_with("essential -> base-files\n"),
        "{essential}"
    );
    // The group as an option still works, as earlier versions took it.
    let old = w.ok(&["why", "libc6", "--group", "base", "--flavor", "openvz"]);
    assert_eq!(old, why);

    // `show`, `verify` and `materialise` name their lock the same way.
    let show = w.ok(&["show"]);
    assert!(
        show.starts_with("base=1.0-1[!kernel,openvz is: x86_64]\n"),
        "{show}"
    );
    let verify = w.ok(&["verify"]);
    assert!(verify.contains("host paths match the lock"), "{verify}");
    let tar = w.ws.join("base.tar");
    w.ok(&["materialise", "-o", tar.to_str().unwrap()]);
    assert!(tar.is_file());
}

#[test]
fn why_json_gives_the_chains() {
    let w = World::new(&packages(), &[("base", BASE)]);
    w.ok(&["compile", "groups/base.kdl"]);
    let text = w.ok(&["why", "libc6", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        json["lock"], "base=1.0-1[!kernel,openvz is: x86_64]",
        "{text}"
    );
    assert_eq!(json["package"]["name"], "libc6", "{text}");
    assert_eq!(
        (json["more"].as_u64(), json["complete"].as_bool()),
        (Some(0), Some(true))
    );
    let chains = json["chains"].as_array().unwrap();
    let names: Vec<Vec<&str>> = (chains.iter())
        .map(|chain| {
            let chain = chain.as_array().unwrap();
            chain.iter().map(|p| p["name"].as_str().unwrap()).collect()
        })
        .collect();
    assert_eq!(names, [["bash", "libc6"], ["coreutils", "libc6"]], "{text}");
    let bash = &chains[0][0];
    assert_eq!(bash["version"], "5.2.15-2+b2");
    assert_eq!(bash["arch"], "amd64");
    assert_eq!(bash["reason"]["kind"], "named");
    assert_eq!(bash["reason"]["group"], "base");
    let libc6 = &chains[0][1]["reason"];
    assert_eq!(libc6["kind"], "dependency", "{text}");
    assert_eq!(libc6["of"], "bash", "{text}");
    assert_eq!(libc6["also"], serde_json::json!(["coreutils"]), "{text}");
}

#[test]
fn why_refuses_what_it_cannot_name() {
    let w = World::new(&packages(), &[("base", BASE), ("tools", TOOLS)]);
    w.ok(&["compile", "groups/base.kdl"]);

    // A misspelt package: the nearest names of the lock.
    let err = w.fails(&["why", "libc7"]);
    assert!(
        err.contains("package libc7 is not in base=1.0[!kernel,openvz is: x86_64]")
            && err.contains("did you mean libc6?"),
        "{err}"
    );

    // Two groups and none named: an error listing them.
    w.ok(&["compile", "groups/tools.kdl"]);
    let err = w.fails(&["why", "libc6"]);
    assert!(
        err.contains("the repository holds several groups (base, tools): name one"),
        "{err}"
    );
    let err = w.fails(&["show"]);
    assert!(err.contains("several groups (base, tools)"), "{err}");
    assert!(
        w.ok(&["why", "mawk", "tools"])
            .starts_with("tools -> mawk\n")
    );
    // An unknown group: the ones there are.
    let err = w.fails(&["why", "libc6", "nope"]);
    assert!(err.contains("nope") && err.contains("base, tools"), "{err}");

    // A group compiled for two flavors and no --flavor: an error listing them.
    let plain = "[!kernel is: x86_64]";
    w.ok(&["compile", "groups/base.kdl", "--flavor", plain]);
    let err = w.fails(&["why", "libc6", "base"]);
    assert!(
        err.contains("group base was compiled for several flavors")
            && err.contains("[!kernel is: x86_64]")
            && err.contains("[!kernel,openvz is: x86_64]")
            && err.contains("pass --flavor"),
        "{err}"
    );
    let why = w.ok(&["why", "libc6", "base", "--flavor", plain]);
    assert!(why.starts_with("base -> bash -> libc6\n"), "{why}");
    // GROUP and --group together are refused by the parser, as usage errors are.
    let out = (w
        .command(&["why", "libc6", "base", "--group", "tools"])
        .output())
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}
