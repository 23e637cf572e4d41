//! `appliance completions SHELL` and `appliance man -o DIR` through the binary: the bash
//! script names every command and bash accepts it; one man page per command, which
//! man (or groff) renders.

mod common;

use std::fs;
use std::process::Command;

use common::{appliance, fails, ok};

/// The commands `appliance --help` lists, without `help`.
fn commands(dir: &std::path::Path) -> Vec<String> {
    let help = ok(dir, &["--help"]);
    let listed = help
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_else(|| panic!("no Commands: section in\n{help}"));
    let names: Vec<String> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() > 10, "{names:?}");
    names
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn the_bash_completion_names_every_command_and_bash_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let script = ok(dir.path(), &["completions", "bash"]);
    for command in commands(dir.path()) {
        assert!(script.contains(&command), "{command} not in the script");
    }
    assert!(
        !script.contains("configure-job"),
        "a hidden command is offered"
    );
    let file = dir.path().join("appliance.bash");
    fs::write(&file, &script).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        checked.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    // Sourced, it completes the commands after `appliance `.
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(appliance ma); COMP_CWORD=1; COMP_LINE='appliance ma'; \
             COMP_POINT=12; _appliance appliance ma appliance; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&completed.stdout);
    let mut offered: Vec<&str> = offered.lines().collect();
    offered.sort();
    assert_eq!(
        offered,
        ["man", "materialise", "materialize"],
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );

    // The global options are offered after a command too.
    let global = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}; COMP_WORDS=(appliance boot --w); COMP_CWORD=2; \
             _appliance appliance --w boot; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&global.stdout), "--workspace\n");

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = ok(dir.path(), &["completions", shell]);
        assert!(script.contains("materialise"), "{shell}: {script}");
    }
    let refused = appliance(dir.path(), &["completions", "tcsh"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
}

#[test]
fn man_writes_a_page_per_command_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("share/man/man1");
    let printed = ok(dir.path(), &["man", "-o", out.to_str().unwrap()]);
    let mut expected: Vec<String> = commands(dir.path())
        .iter()
        .map(|c| format!("appliance-{c}.1"))
        .collect();
    expected.push("appliance.1".to_string());
    expected.sort();
    let mut written: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    assert_eq!(printed.lines().count(), expected.len(), "{printed}");

    let page = out.join("appliance-boot.1");
    let roff = fs::read_to_string(&page).unwrap();
    assert!(roff.contains(".TH appliance-boot 1 "), "{roff}");
    if has("man") {
        let shown = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success(), "{text}");
        for wanted in [
            "appliance-boot",
            "--accel <A>",
            "--forward <HOST:GUEST>",
            "Example:",
        ] {
            assert!(text.contains(wanted), "{wanted} not in:\n{text}");
        }
    } else {
        eprintln!("no man here: only the pages' .TH headers were checked");
    }

    // A folder that cannot be made is named, and nothing is written.
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = fails(dir.path(), &["man", "-o", "file/man1"]);
    assert!(err.contains("file/man1"), "{err}");
}
