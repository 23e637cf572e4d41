//! What the user sees on stderr while a command works. On a terminal: a bar for long
//! steps (downloading, hashing, copying, compressing, making file systems) and a
//! spinner for each stage of a compile. Elsewhere: with `-v`, one line per finished
//! stage (`compile web[openvz]: fetch 9 archives (3.2 s)`), else nothing. With `-q`,
//! nothing at all; warnings and errors are not progress, and print whatever the
//! verbosity.

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// How much the user asked to hear about a command's progress (`-q`, neither, `-v`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: no progress, no stage lines.
    Quiet,
    /// Progress on a terminal only.
    #[default]
    Normal,
    /// `-v`: also one line per finished stage, on a terminal or not.
    Verbose,
}

/// Tells the user how a command is going, as its [`Verbosity`] and stderr allow; the
/// library's stages report through it, never by printing themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter {
    verbosity: Verbosity,
    /// Whether stderr is a terminal, where bars and spinners draw.
    terminal: bool,
}

impl Reporter {
    /// The reporter for `verbosity` on this process's stderr.
    pub fn new(verbosity: Verbosity) -> Reporter {
        Reporter {
            verbosity,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Whether `-v` asked for more: every stale package, every stage line.
    pub fn verbose(&self) -> bool {
        self.verbosity == Verbosity::Verbose
    }

    /// Whether bars and spinners draw.
    fn draws(&self) -> bool {
        self.terminal && self.verbosity != Verbosity::Quiet
    }

    /// A bar for a long step; hidden unless it [draws](Reporter::draws).
    pub(crate) fn progress(&self) -> Progress {
        Progress::new(self.draws())
    }

    /// Starts stage `name` of the work `subject` names (`compile web[openvz]`): a
    /// spinner on a terminal until [`Stage::done`].
    pub(crate) fn stage(&self, subject: &str, name: &str) -> Stage {
        let label = format!("{subject}: {name}");
        let spinner = self.draws().then(|| {
            let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bar = ProgressBar::new_spinner()
                .with_style(style)
                .with_message(label.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Stage {
            label,
            started: Instant::now(),
            spinner,
            draws: self.draws(),
            line: self.verbose(),
        }
    }
}

/// A stage of a command under way; see [`Reporter::stage`].
pub(crate) struct Stage {
    label: String,
    started: Instant,
    spinner: Option<ProgressBar>,
    /// Whether bars draw (see [`Reporter::draws`]).
    draws: bool,
    /// Whether its end is told in a line (`-v`).
    line: bool,
}

impl Stage {
    /// A bar for the stage's long step (hashing), which takes the spinner's place: two
    /// drawings on one line would overwrite each other.
    pub fn progress(&mut self) -> Progress {
        if let Some(spinner) = self.spinner.take() {
            spinner.finish_and_clear();
        }
        Progress::new(self.draws)
    }

    /// Says on the spinner how far the stage is (`3/9 archives`).
    pub fn status(&self, text: impl fmt::Display) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(format!("{} {text}", self.label));
        }
    }

    /// Ends the stage; with `-v`, a line says what it did (`9 archives`, or nothing)
    /// and how long it took. A stage dropped without this (a failure) says nothing.
    pub fn done(self, what: impl fmt::Display) {
        if self.line {
            let what = what.to_string();
            let space = if what.is_empty() { "" } else { " " };
            let took = self.started.elapsed().as_secs_f64();
            let text = format!("{}{space}{what} ({took:.1} s)", self.label);
            match &self.spinner {
                Some(spinner) => spinner.suspend(|| crate::stderr::line(&text)),
                None => crate::stderr::line(&text),
            }
        }
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

/// A progress bar on stderr when it is a terminal; silent otherwise.
pub(crate) struct Progress {
    bar: ProgressBar,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    /// A bar that never draws.
    pub(crate) fn hidden() -> Progress {
        Progress::new(false)
    }

    /// A bar that draws only when `draws` ([`Reporter::progress`] decides).
    fn new(draws: bool) -> Progress {
        let bar = if draws {
            ProgressBar::new(0).with_style(bar_style())
        } else {
            ProgressBar::hidden()
        };
        Progress {
            bar,
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }

    /// Starts a phase (`hashing`, `checking`, `copying`, `writing`) over `entries` and
    /// `bytes`.
    pub fn phase(&self, label: &'static str, entries: usize, bytes: u64) {
        if !self.bar.is_hidden() {
            self.bar.disable_steady_tick();
            self.bar.set_style(bar_style());
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(entries, Ordering::Relaxed);
        self.bar.set_prefix(label);
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar.set_message(format!("0/{entries} entries"));
    }

    /// Starts a step of unknown length (an external tool's run): a spinner named `label`
    /// until the next phase or step.
    pub fn step(&self, label: &'static str) {
        if self.bar.is_hidden() {
            return;
        }
        let style = ProgressStyle::with_template("{prefix:>9} {spinner} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        self.bar.set_style(style);
        self.bar.set_prefix(label);
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }

    /// Counts one entry of the phase, with its content bytes.
    pub fn entry(&self, bytes: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.inc(bytes);
        if !self.bar.is_hidden() {
            let total = self.total.load(Ordering::Relaxed);
            self.bar.set_message(format!("{done}/{total} entries"));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {msg} ({eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
