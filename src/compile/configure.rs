//! The configure stage: the packages' own maintainer scripts, run as dpkg runs them,
//! confined in the staged tree.
//!
//! The order is mmdebstrap's and apt's: every package is unpacked already (the stage
//! wrote its files and a dpkg database saying `install ok unpacked`, with the scripts
//! in `info/`). The essential packages and what they depend on go first, as
//! mmdebstrap's essential stage installs them: each `preinst install`, base-passwd's
//! before any (it makes `/etc/passwd`), then all of them configured (`base-files` makes
//! `/usr/local/share` before `ca-certificates` looks for it). Then every other
//! `preinst`, each after what its package pre-depends on is configured (see
//! [`super::steps`]), and `dpkg --configure -a` the rest, in dependency order, and the
//! triggers. Daemons are never started: `policy-rc.d` denies every
//! action and `start-stop-daemon` is a stand-in, as in mmdebstrap, and `ischroot` says
//! yes: the tree is not a running system, so nothing may restart its init (libc6's
//! postinst would `telinit u` and sleep a second, since PID 1 of the sandbox looks
//! like a booted system's). Nor does a script make what capture drops when an empty
//! file in its place says it is made ([`PLACEHOLDERS`]: SSH and dropbear host keys).
//! The kernel's own hooks are skipped on purpose (`update-initramfs` is a stand-in and
//! `INITRD=No`): an image carries appliance's initramfs, so the packages' would only
//! cost time and make the lock differ from run to run. Once the packages are
//! configured, what the group asks of the tree besides ([`Ask`]: accounts no script
//! made, systemd units to enable or disable) is done with the tree's own `groupadd`,
//! `useradd` and `systemctl`. The stand-ins are gone again when the stage ends, and
//! what the scripts leave that must not be locked (host keys, logs, backups) is for the
//! capture stage to drop.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::steps::{Step, steps};
use crate::confine::{ConfineError, Confined, IdShift};
use crate::lang::{Account, AccountKind};
use crate::resolve::{Resolution, Universe};
use crate::system::PLACEHOLDERS;

/// One package whose `preinst install` runs, as dpkg names it in `info/`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unpacked {
    /// Package name.
    pub name: String,
    /// Debian architecture.
    pub arch: String,
    /// `Multi-Arch: same`: its info files are `name:arch.*`.
    pub multi_arch_same: bool,
    /// When it is configured.
    #[serde(flatten)]
    pub needs: Needs,
}

/// The settings every maintainer script runs with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    /// `SOURCE_DATE_EPOCH`: shadow's last-change day and every time a script writes.
    pub source_date_epoch: u64,
    /// The version of dpkg in the tree, as `DPKG_RUNNING_VERSION`.
    pub dpkg_version: String,
    /// debconf preseed lines (`tzdata tzdata/Areas select Etc`), set before any script.
    pub preseeds: Vec<String>,
    /// What is done once the packages are configured, in order.
    pub asked: Vec<Asked>,
    /// Packages purged once everything is configured: the essential ones a group
    /// removes, which scripts may need while they run, and what only they brought.
    pub purge: Vec<String>,
}

/// Something done in the tree once its packages are configured.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ask {
    /// An account, made unless a package's script made it (then its id must agree).
    Account(Account),
    /// A systemd unit enabled (`true`) or disabled.
    Unit {
        /// The unit's name.
        name: String,
        /// Enable, else disable.
        enable: bool,
    },
}

/// An [`Ask`] with who asked, to name in its error: a statement's `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Asked {
    /// What to do.
    pub ask: Ask,
    /// Who asked.
    pub origin: String,
}

impl Ask {
    /// The request as the script reads it: `KIND NAME ID GROUP HOME SHELL SYSTEM`, `-` for
    /// what is left to the tools. Names, ids and paths hold no blank (the language's
    /// rules), so the fields split at spaces.
    pub(super) fn line(&self) -> String {
        let or_dash = |value: Option<&str>| value.unwrap_or("-").to_string();
        let fields = match self {
            Ask::Account(account) => {
                let (group, home, shell) = match &account.kind {
                    AccountKind::Group => (None, None, None),
                    AccountKind::User { group, home, shell } => {
                        (group.as_deref(), home.as_deref(), shell.as_deref())
                    }
                };
                [
                    account.kind.statement().to_string(),
                    account.name.clone(),
                    account
                        .id
                        .map_or_else(|| "-".to_string(), |id| id.to_string()),
                    or_dash(group),
                    or_dash(home),
                    or_dash(shell),
                    u8::from(account.system).to_string(),
                ]
            }
            Ask::Unit { name, enable } => [
                (if *enable { "enable" } else { "disable" }).to_string(),
                name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "0".into(),
            ],
        };
        fields.join(" ")
    }
}

/// How long the whole configuration may take: a script waiting for input it will never
/// get must not hang a compile.
const LIMIT: Duration = Duration::from_secs(30 * 60);

/// Why the packages could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    /// The sandbox could not be made or the scripts ran too long.
    #[error(transparent)]
    Confine(#[from] ConfineError),
    /// The child that configures for a user other than root failed; its message.
    #[error("configuring the packages failed: {0}")]
    Child(String),
    /// A maintainer script or dpkg failed; the log's end says why.
    #[error("configuring the packages failed: {what}\n{tail}")]
    Failed {
        /// What failed (`preinst of base-passwd`, `dpkg --configure -a`).
        what: String,
        /// The last lines of the log.
        tail: String,
    },
    /// What the group asked could not be done: an account that exists with another id,
    /// a unit the tree lacks.
    #[error("{origin}: {message}")]
    Asked {
        /// Who asked (a statement's `file:line:column`).
        origin: String,
        /// What went wrong, with the tool's own words.
        message: String,
    },
}

/// What every configure script starts with: `fail` names the failed step (the last
/// line the log gets) with an exit code above 100, and `ask_all` does what the group asked
/// ([`Ask::line`] lines on its input, numbered), exiting 108 with the request's number
/// when the tree refuses one.
pub(super) const PRELUDE: &str = r#"set -u
fail() { echo "appliance-step: $1"; exit "$2"; }
asked() {
    printf 'appliance-asked: %s %s\n' "$1" "$(printf '%s' "$2" | tr '\n' ' ')"
    exit 108
}
# One request a line (see `Ask::line`), numbered; the tools read no input.
ask_all() {
    while read -r index kind name id group home shell system; do
        case $kind in
        group|user)
            database=$kind
            [ "$kind" = user ] && database=passwd
            have=$(getent "$database" "$name" | cut -d: -f3)
            if [ -n "$have" ]; then
                [ "$id" = - ] || [ "$id" = "$have" ] \
                    || asked "$index" "$kind $name exists already with id $have (a package made it), not $id"
                continue
            fi
            if [ "$kind" = group ]; then
                set -- groupadd
                [ "$id" = - ] || set -- "$@" --gid "$id"
                [ "$system" = 1 ] && set -- "$@" --system
            else
                set -- useradd
                [ "$id" = - ] || set -- "$@" --uid "$id"
                if [ "$group" != - ]; then
                    set -- "$@" --gid "$group"
                elif getent group "$name" >/dev/null; then
                    set -- "$@" --gid "$name"
                else
                    set -- "$@" --user-group
                fi
                create=--create-home
                if [ "$system" = 1 ]; then
                    set -- "$@" --system
                    [ "$home" != - ] || { home=/nonexistent; create=--no-create-home; }
                    [ "$shell" != - ] || shell=/usr/sbin/nologin
                fi
                [ "$home" = - ] || set -- "$@" --home-dir "$home"
                [ "$shell" = - ] || set -- "$@" --shell "$shell"
                set -- "$@" "$create"
            fi
            out=$("$@" "$name" 2>&1 </dev/null) || asked "$index" "$1 $name: $out"
            ;;
        enable|disable)
            out=$(SYSTEMD_OFFLINE=1 systemctl "$kind" "$name" 2>&1 </dev/null) \
                || asked "$index" "systemctl $kind $name: $out"
            ;;
        esac
    done
}
"#;

/// The script PID 1 runs inside a dpkg tree: guards, preinsts, configure, triggers, what
/// the group asked, purges, audit, guards off.
const DPKG_SCRIPT: &str = r#"guard() {
    if [ -e "$1" ] || [ -L "$1" ]; then mv -f "$1" "$1.appliance-real"; fi
    printf '#!/bin/sh\n%s\n' "$2" > "$1" && chmod 0755 "$1"
}
unguard() {
    rm -f "$1"
    if [ -e "$1.appliance-real" ] || [ -L "$1.appliance-real" ]; then
        mv -f "$1.appliance-real" "$1"
    fi
}
guard /usr/sbin/policy-rc.d 'exit 101' || fail "installing policy-rc.d" 101
guard /usr/sbin/start-stop-daemon 'echo "appliance: start-stop-daemon not run during configuration" >&2' \
    || fail "replacing start-stop-daemon" 101
guard /usr/sbin/update-initramfs 'exit 0' || fail "replacing update-initramfs" 101
guard /usr/bin/ischroot 'exit 0' || fail "replacing ischroot" 101
placed=
for file in ${APPLIANCE_PLACEHOLDERS:-}; do
    if [ -d "${file%/*}" ] && [ ! -e "$file" ] && [ ! -L "$file" ]; then
        : > "$file" && placed="$placed $file"
    fi
done
if [ -n "${APPLIANCE_PRESEEDS:-}" ]; then
    printf '%s\n' "$APPLIANCE_PRESEEDS" | debconf-set-selections \
        || fail "debconf-set-selections" 102
fi
unset APPLIANCE_PRESEEDS
# A step is `preinst/PACKAGE/INFO/ARCH` or `configure/FOR/INFO...`: dpkg's names hold
# no `/` and no blank.
for step in "$@"; do
    kind=${step%%/*}
    rest=${step#*/}
    if [ "$kind" = configure ]; then
        asker=${rest%%/*}
        if [ -z "$asker" ]; then
            what="the essential packages"
        else
            what="what the preinst of $asker needs"
        fi
        # Triggers wait for the `dpkg --configure -a` below, as apt leaves them to its
        # last run: each run would otherwise process every trigger pending so far
        # (libc-bin's ldconfig after every step). Word splitting on purpose.
        dpkg --configure --no-triggers ${rest#*/} || fail "dpkg --configure of $what" 104
        continue
    fi
    package=${rest%%/*}
    rest=${rest#*/}
    info=${rest%%/*}
    arch=${rest#*/}
    script=/var/lib/dpkg/info/$info.preinst
    [ -e "$script" ] || continue
    DPKG_MAINTSCRIPT_NAME=preinst DPKG_MAINTSCRIPT_PACKAGE=$package \
        DPKG_MAINTSCRIPT_ARCH=$arch DPKG_MAINTSCRIPT_PACKAGE_REFCOUNT=1 \
        "$script" install || fail "preinst of $package" 103
done
dpkg --configure -a || fail "dpkg --configure -a" 104
dpkg --triggers-only -a || fail "dpkg --triggers-only -a" 105
ask_all <<EOF
${APPLIANCE_ASKED:-}
EOF
for package in ${APPLIANCE_PURGE:-}; do
    dpkg --purge --force-remove-essential --force-remove-protected --force-depends \
        --force-bad-path "$package" \
        || fail "dpkg --purge $package" 107
done
audit=$(dpkg --force-bad-path --audit)
if [ -n "$audit" ]; then echo "$audit"; fail "dpkg --audit" 106; fi
[ -z "$placed" ] || rm -f $placed
unguard /usr/bin/ischroot
unguard /usr/sbin/update-initramfs
unguard /usr/sbin/start-stop-daemon
unguard /usr/sbin/policy-rc.d
"#;

/// What decides when a package of a tree is configured.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Needs {
    /// Whether mmdebstrap's essential stage configures it, before the rest: an
    /// essential package, or one an essential package needs.
    pub essential: bool,
    /// The names of the tree's packages it pre-depends on: configured before its
    /// `preinst` runs.
    pub pre_depends: Vec<String>,
    /// The names of the tree's packages it depends or pre-depends on.
    pub depends: Vec<String>,
}

/// What decides when each package of `resolution` is configured, by name.
pub fn needs(universe: &Universe, resolution: &Resolution) -> HashMap<String, Needs> {
    let packages = universe.packages();
    let mut todo: Vec<usize> = (resolution.chosen.iter())
        .map(|c| c.index)
        .filter(|&i| packages[i].essential)
        .collect();
    let mut essential: HashSet<usize> = todo.iter().copied().collect();
    while let Some(i) = todo.pop() {
        for dependency in resolution.dependencies(i) {
            if essential.insert(dependency) {
                todo.push(dependency);
            }
        }
    }
    let mut needs = HashMap::new();
    for chosen in &resolution.chosen {
        let package = packages[chosen.index];
        let dependencies = resolution.dependencies(chosen.index);
        // The resolution's edges do not say which field made them: a dependency is a
        // pre-dependency when an alternative of `Pre-Depends` names it or what it
        // provides.
        let pre_depends = (dependencies.iter())
            .map(|&d| packages[d])
            .filter(|d| {
                (package.pre_depends.iter().flatten()).any(|relation| {
                    relation.name == d.name || d.provides.iter().any(|p| p.name == relation.name)
                })
            })
            .map(|d| d.name.clone())
            .collect();
        let entry: &mut Needs = needs.entry(package.name.clone()).or_default();
        entry.essential |= essential.contains(&chosen.index);
        entry.pre_depends = pre_depends;
        entry.depends = (dependencies.iter())
            .map(|&d| packages[d].name.clone())
            .collect();
    }
    needs
}

/// Runs the packages' maintainer scripts in the staged tree `root` (owned by `ids`),
/// `preinst` in the order of `packages` with base-passwd's first; `log` receives all
/// they print. Returns how long they took.
pub fn configure(
    root: &Path,
    ids: IdShift,
    packages: &[Unpacked],
    env: &Environment,
    log: &Path,
) -> Result<Duration, ConfigureError> {
    let first = packages.iter().filter(|p| p.name == "base-passwd");
    let rest = packages.iter().filter(|p| p.name != "base-passwd");
    let ordered: Vec<&Unpacked> = first.chain(rest).collect();
    // dpkg names a `Multi-Arch: same` package's files, and the package itself, by arch.
    let info = |p: &Unpacked| {
        if p.multi_arch_same {
            format!("{}:{}", p.name, p.arch)
        } else {
            p.name.clone()
        }
    };
    let args: Vec<String> = (steps(&ordered).into_iter())
        .map(|step| match step {
            Step::Preinst(i) => {
                let p = ordered[i];
                format!("preinst/{}/{}/{}", p.name, info(p), p.arch)
            }
            Step::Configure {
                packages,
                for_preinst,
            } => {
                let names: Vec<String> = packages.iter().map(|&i| info(ordered[i])).collect();
                let asker = for_preinst.map_or("", |i| ordered[i].name.as_str());
                format!("configure/{asker}/{}", names.join(" "))
            }
        })
        .collect();
    let preseeds = env.preseeds.join("\n");
    let purge = env.purge.join(" ");
    let asked: Vec<String> = (env.asked.iter().enumerate())
        .map(|(index, asked)| format!("{index} {}", asked.ask.line()))
        .collect();
    let asked = asked.join("\n");
    let placeholders = PLACEHOLDERS.join(" ");
    let vars = [
        ("DEBIAN_FRONTEND", "noninteractive"),
        ("DEBCONF_NONINTERACTIVE_SEEN", "true"),
        ("DEBCONF_NOWARNINGS", "yes"),
        ("INITRD", "No"),
        ("DPKG_ADMINDIR", "/var/lib/dpkg"),
        ("DPKG_ROOT", ""),
        ("DPKG_RUNNING_VERSION", env.dpkg_version.as_str()),
        ("APPLIANCE_PRESEEDS", &preseeds),
        ("APPLIANCE_PURGE", &purge),
        ("APPLIANCE_ASKED", &asked),
        ("APPLIANCE_PLACEHOLDERS", &placeholders),
    ];
    let script = Script {
        text: [PRELUDE, DPKG_SCRIPT].concat(),
        args,
        vars: &vars,
        asked: &env.asked,
        source_date_epoch: env.source_date_epoch,
    };
    script.run(root, ids, log)
}

/// A configure script with what it is given, run confined as PID 1 of the tree.
pub(super) struct Script<'a> {
    /// The shell script, [`PRELUDE`] first.
    pub text: String,
    /// Its arguments (`$@`).
    pub args: Vec<String>,
    /// Its environment besides the common one (`PATH`, locale, `SOURCE_DATE_EPOCH`).
    pub vars: &'a [(&'a str, &'a str)],
    /// The requests `ask_all` reads, to name the statement of one the tree refused.
    pub asked: &'a [Asked],
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
}

impl Script<'_> {
    /// Runs the script confined in `root` (owned by `ids`), `log` receiving all it prints;
    /// returns how long it took, or which step failed, with the log's end.
    pub fn run(&self, root: &Path, ids: IdShift, log: &Path) -> Result<Duration, ConfigureError> {
        let epoch = self.source_date_epoch.to_string();
        let mut vars: Vec<(&str, &str)> = vec![
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("HOME", "/root"),
            ("LC_ALL", "C.UTF-8"),
            ("LANG", "C.UTF-8"),
            ("SOURCE_DATE_EPOCH", &epoch),
        ];
        vars.extend_from_slice(self.vars);
        let mut argv: Vec<&str> = vec!["/bin/sh", "-c", &self.text, "sh"];
        argv.extend(self.args.iter().map(String::as_str));
        let started = std::time::Instant::now();
        let ran = Confined {
            root,
            ids,
            argv: &argv,
            env: &vars,
            log,
            limit: LIMIT,
        }
        .run()?;
        if ran.code == 0 {
            return Ok(started.elapsed());
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let refused = (text.lines().rev())
            .find_map(|l| l.strip_prefix("appliance-asked: "))
            .and_then(|l| l.split_once(' '))
            .and_then(|(index, message)| {
                Some((self.asked.get(index.parse::<usize>().ok()?)?, message))
            });
        if let Some((asked, message)) = refused {
            return Err(ConfigureError::Asked {
                origin: asked.origin.clone(),
                message: message.trim().to_string(),
            });
        }
        let what = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("appliance-step: "))
            .map_or_else(
                || format!("the scripts exited with {}", ran.code),
                str::to_string,
            );
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("appliance-step: "))
            .collect();
        Err(ConfigureError::Failed {
            what,
            tail: telling_lines(&lines),
        })
    }
}

/// What of a failed run's log says why: its last 40 lines, or, when dpkg went on past
/// the first package that failed for longer than that, the 20 lines that led to that
/// failure and the last 10.
fn telling_lines(lines: &[&str]) -> String {
    const TAIL: usize = 40;
    let tail = lines.len().saturating_sub(TAIL);
    let first = (lines.iter()).position(|l| l.starts_with("dpkg: error processing package"));
    match first {
        Some(at) if at + 1 < tail => {
            let cause = &lines[at.saturating_sub(20)..=at + 1];
            let end = &lines[lines.len() - 10..];
            format!("{}\n[...]\n{}", cause.join("\n"), end.join("\n"))
        }
        _ => lines[tail..].join("\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::telling_lines;

    #[test]
    fn a_failure_shows_what_led_to_dpkgs_first_error() {
        let mut log: Vec<String> = (0..100).map(|i| format!("Setting up p{i} ...")).collect();
        log[30] = "update-alternatives: error: error creating symbolic link".into();
        log[31] = "dpkg: error processing package jre (--configure):".into();
        log[32] =
            " installed jre package post-installation script subprocess returned error".into();
        log.push("Errors were encountered while processing:".into());
        log.push(" jre".into());
        let lines: Vec<&str> = log.iter().map(String::as_str).collect();
        let shown = telling_lines(&lines);
        assert!(shown.starts_with("Setting up p11 ...\n"), "{shown}");
        assert!(
            shown.contains(
                "symbolic link\ndpkg: error processing package jre (--configure):\n installed jre"
            ),
            "{shown}"
        );
        assert!(shown.contains("\n[...]\nSetting up p92 ...\n"), "{shown}");
        assert!(shown.ends_with("processing:\n jre"), "{shown}");
        // Near the end, the tail holds it already.
        let short = &lines[..60];
        assert_eq!(telling_lines(short), short[20..].join("\n"));
    }
}
