//! Shell completion scripts and man pages, both generated from the command line's clap
//! definition (which the binary hands over), so they name exactly the commands and
//! options the binary takes.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

use crate::{Error, Result};

/// Writes `shell`'s completion script for `cli` to `out`; hidden commands are not
/// offered.
pub fn completions(cli: clap::Command, shell: Shell, out: &mut dyn Write) -> Result<()> {
    let mut cli = without_hidden(&cli);
    let name = cli.get_name().to_string();
    // clap_complete panics on a failed write: it writes to memory, and a closed stdout
    // is an error like any other command's.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cli, name, &mut script);
    out.write_all(&script).map_err(|source| Error::Io {
        path: PathBuf::from("-"),
        source,
    })
}

/// `cli` without its hidden subcommands, which clap_complete would offer: a copy with
/// its name, version, options and visible subcommands, built afresh (its `help`
/// subcommand then names only those).
fn without_hidden(cli: &clap::Command) -> clap::Command {
    let copy = clap::Command::new(cli.get_name().to_string())
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    match cli.get_version() {
        Some(version) => copy.version(version.to_string()),
        None => copy,
    }
}

/// Writes `cli`'s man pages into `dir` (made if missing): `NAME.1` for the command and
/// `NAME-COMMAND.1` for each of its visible subcommands, as git and cargo name theirs;
/// prints each file's path to `out`.
pub fn man_pages(cli: clap::Command, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let source = format!(
        "{} {}",
        cli.get_name(),
        cli.get_version().unwrap_or_default()
    );
    // Built, subcommands know their display names (`appliance-boot`).
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut pages = vec![cli.clone()];
    pages.extend(cli.get_subcommands().filter(|c| !c.is_hide_set()).cloned());
    for page in pages {
        let man = clap_mangen::Man::new(page).source(source.clone());
        let path = dir.join(man.get_filename());
        let mut roff = Vec::new();
        man.render(&mut roff).map_err(io(&path))?;
        fs::write(&path, roff).map_err(io(&path))?;
        writeln!(out, "{}", path.display()).map_err(io(Path::new("-")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("tool")
            .version("1.2")
            .about("A tool.")
            .subcommand(clap::Command::new("build").about("Builds."))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn one_page_per_visible_subcommand_and_one_for_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        man_pages(cli(), &dir.path().join("man"), &mut out).unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["tool-build.1", "tool.1"]);
        let page = fs::read_to_string(dir.path().join("man/tool-build.1")).unwrap();
        assert!(page.starts_with(".ie"), "{page}");
        assert!(page.contains(".TH tool-build 1  \"tool 1.2\""), "{page}");
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        let err = man_pages(cli(), &file.join("man"), &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("file/man"), "{err}");
    }

    #[test]
    fn a_completion_script_names_the_subcommands() {
        let mut out = Vec::new();
        completions(cli(), Shell::Bash, &mut out).unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("tool,build)"), "{script}");
        assert!(script.contains("--version"), "{script}");
        assert!(
            !script.contains("secret"),
            "a hidden command is offered: {script}"
        );
    }
}
