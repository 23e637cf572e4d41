//! Progress on a terminal for long steps (hashing, copying, compressing, making file
//! systems): entries and bytes of the current phase, or a spinner while an external
//! tool runs; silent without a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr when it is a terminal; silent otherwise.
pub(crate) struct Progress {
    bar: ProgressBar,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    /// A bar that draws only when stderr is a terminal.
    pub fn new() -> Progress {
        let bar = if std::io::stderr().is_terminal() {
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
