//! The README's command table is the user's reference, so it is checked against the
//! binary itself: every command `appliance --help` lists has a row, and every option its
//! own `--help` lists is named in that row (or, for the options every command takes, in
//! the README's global options). A flag added without its documentation fails here.

use std::process::Command;

const README: &str = include_str!("../README.md");

/// `appliance ARGS --help`'s standard output.
fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_appliance"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The lines of a `--help` section (`Commands:`, `Options:`) up to the blank line.
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != title)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// The options of an `Options:` section, without `--help`: each long name, with its
/// short one (`-o`) when it has one, which the README may write instead.
fn options(help: &str) -> Vec<(String, Option<String>)> {
    let word = |from: &str| -> String {
        from.chars()
            .take_while(|c| *c == '-' || c.is_ascii_alphanumeric())
            .collect()
    };
    section(help, "Options:")
        .iter()
        .filter_map(|line| {
            let long = word(&line[line.find("--")?..]);
            let short = (line.trim_start().strip_prefix('-'))
                .filter(|rest| !rest.starts_with('-'))
                .map(|rest| format!("-{}", word(rest)));
            (long != "--help").then_some((long, short))
        })
        .collect()
}

/// The README's global options: the paragraph that begins `Global options`.
fn global_options() -> String {
    let lines: Vec<&str> = (README.lines())
        .skip_while(|l| !l.starts_with("Global options"))
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(
        !lines.is_empty(),
        "the README has a `Global options` paragraph"
    );
    lines.join(" ")
}

#[test]
fn every_command_and_option_is_in_the_readme_command_table() {
    let top = help(&[]);
    // `appliance --version` prints the version, as every tool's does; a command's own
    // `--version V` is one of its options.
    let globals: Vec<String> = (options(&top).into_iter())
        .map(|(long, _)| long)
        .filter(|long| long != "--version")
        .collect();
    let documented = global_options();
    for option in &globals {
        assert!(
            documented.contains(option.as_str()),
            "global option {option} is not in the README's `Global options` line"
        );
    }
    let commands: Vec<&str> = section(&top, "Commands:")
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() > 10, "{top}");
    let mut missing = Vec::new();
    for command in commands {
        let head = format!("| `appliance {command}");
        let Some(row) = README.lines().find(|l| {
            l.strip_prefix(head.as_str())
                .is_some_and(|rest| rest.starts_with([' ', '`']))
        }) else {
            missing.push(format!("no row for `appliance {command}`"));
            continue;
        };
        // The row's first cell: the usage, where the options are written.
        let usage = row.split(" | ").next().unwrap_or(row);
        for (long, short) in options(&help(&[command])) {
            // A short option is written as a word of its own: `-o OUT`, `[-v]`.
            let short_written = short
                .is_some_and(|short| (usage.split([' ', '[', ']', '`'])).any(|word| word == short));
            if !globals.contains(&long) && !usage.contains(long.as_str()) && !short_written {
                missing.push(format!("`appliance {command}` row lacks {long}"));
            }
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
