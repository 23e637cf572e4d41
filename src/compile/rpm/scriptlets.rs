//! The configure stage of an RPM tree: the packages' own scriptlets, run confined in the
//! staged tree as rpm runs them for a fresh install of the whole set.
//!
//! Every file is in place already (the stage wrote the tree and its `rpmdb.sqlite`), so
//! the accounts of the packages' `sysusers.d` files are made first (rpm 4.19 does so as
//! it installs a package; the tree's own `groupadd`/`useradd` make them, as for the
//! group's `user` statements), then each package's `%pre` and `%post` in install order
//! (dependencies first), the `%filetriggerin` scripts (highest priority first) with the
//! paths they match on their input, every `%posttrans`, the `%transfiletriggerin`
//! scripts, and `ldconfig` when the tree has it. Then what the group asked. A script
//! that fails fails the compile: a tree whose `%post` failed is no working system. Each
//! script's text is written into a fresh folder of the tree's root, read by the
//! interpreter the header names, and removed with the folder when the stage ends (the sandbox's root may not remove
//! what real root made).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compile::configure::{Asked, ConfigureError, PRELUDE, Script};
use crate::confine::IdShift;

/// Where the scripts' texts are put in the tree while it is configured.
const FOLDER: &str = ".appliance-scriptlets";

/// One scriptlet run: what rpm would run, with its arguments and input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scriptlet {
    /// What it is, for messages: `%post of food`.
    pub what: String,
    /// The interpreter and its arguments (`/bin/sh`, or `/sbin/ldconfig` alone).
    pub program: Vec<String>,
    /// The script's text; `None` runs the program without one (`%post -p /sbin/ldconfig`).
    pub body: Option<String>,
    /// The arguments rpm passes after the script: the instance count (`1`, or `0` for
    /// `%posttrans`).
    pub args: Vec<String>,
    /// The input rpm gives a file trigger: the paths it matches, one a line.
    pub input: Option<String>,
}

/// What configuring an RPM tree runs, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpmScripts {
    /// Accounts the packages' `sysusers.d` files declare, made before any script.
    pub sysusers: Vec<Asked>,
    /// The scriptlets, in rpm's order.
    pub steps: Vec<Scriptlet>,
    /// What the group asks once the packages are configured.
    pub asked: Vec<Asked>,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
}

/// The script around the steps: accounts, the steps, `ldconfig`, what the group asked.
const RPM_SCRIPT: &str = r#"step() {
    what=$1 input=$2
    shift 2
    if [ "$input" = - ]; then "$@" </dev/null; else "$@" <"$input"; fi \
        || fail "$what exited with $?" 103
}
ask_all <<EOF
${APPLIANCE_SYSUSERS:-}
EOF
. /.appliance-scriptlets/steps
if [ -x /usr/sbin/ldconfig ] || [ -x /sbin/ldconfig ]; then
    ldconfig </dev/null || fail "ldconfig" 104
fi
ask_all <<EOF
${APPLIANCE_ASKED:-}
EOF
"#;

/// Runs `scripts` in the staged tree `root` (owned by `ids`); `log` receives all they
/// print. Returns how long they took.
pub fn configure(
    root: &Path,
    ids: IdShift,
    scripts: &RpmScripts,
    log: &Path,
) -> Result<Duration, ConfigureError> {
    let folder = root.join(FOLDER);
    let written = write_steps(&folder, &scripts.steps);
    let ran = written.and_then(|()| {
        let lines = |asked: &[Asked], first: usize| -> String {
            let lines: Vec<String> = (asked.iter().enumerate())
                .map(|(i, a)| format!("{} {}", first + i, a.ask.line()))
                .collect();
            lines.join("\n")
        };
        // One numbering for both lists, so a refused request names its statement.
        let sysusers = lines(&scripts.sysusers, 0);
        let asked = lines(&scripts.asked, scripts.sysusers.len());
        let every: Vec<Asked> = (scripts.sysusers.iter())
            .chain(&scripts.asked)
            .cloned()
            .collect();
        let vars = [
            ("APPLIANCE_SYSUSERS", sysusers.as_str()),
            ("APPLIANCE_ASKED", asked.as_str()),
        ];
        Script {
            text: [PRELUDE, RPM_SCRIPT].concat(),
            args: Vec::new(),
            vars: &vars,
            asked: &every,
            source_date_epoch: scripts.source_date_epoch,
        }
        .run(root, ids, log)
    });
    // Gone whatever happened: the capture stage must not lock it.
    let _ = std::fs::remove_dir_all(&folder);
    ran
}

/// Writes each step's text and input into `folder` (made here: a package cannot have
/// put a link in its place), and the `steps` file the script sources.
fn write_steps(folder: &Path, steps: &[Scriptlet]) -> Result<(), ConfigureError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| ConfigureError::Failed {
            what: format!("writing {}", path.display()),
            tail: source.to_string(),
        }
    };
    std::fs::create_dir(folder).map_err(io(folder))?;
    let put = |name: String, text: &str| -> Result<String, ConfigureError> {
        let path = folder.join(&name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
        Ok(format!("/{FOLDER}/{name}"))
    };
    let mut script = String::new();
    for (n, step) in steps.iter().enumerate() {
        if step.program.first().is_some_and(|p| p == "<lua>") {
            return Err(ConfigureError::Failed {
                what: step.what.clone(),
                tail: "it is written for rpm's built-in Lua interpreter, which appliance \
                       cannot run"
                    .into(),
            });
        }
        let input = match &step.input {
            Some(text) => put(format!("{n}.in"), text)?,
            None => "-".to_string(),
        };
        let mut words = vec![quote(&step.what), quote(&input)];
        words.extend(step.program.iter().map(|w| quote(w)));
        if let Some(body) = &step.body {
            words.push(quote(&put(n.to_string(), body)?));
        }
        words.extend(step.args.iter().map(|w| quote(w)));
        script += &format!("step {}\n", words.join(" "));
    }
    put("steps".into(), &script)?;
    Ok(())
}

/// `word` as one single-quoted shell word.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_with_quotes_stays_one_word() {
        let quoted = quote("it's $HOME `x`");
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf '%s|' {quoted}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        assert_eq!(out.ok().as_deref(), Some("it's $HOME `x`|"));
    }
}
