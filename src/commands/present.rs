//! What every command shares in writing for a person or a program: JSON, short ids,
//! standard output's errors, and error reports.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Writes `value` as pretty JSON and a newline.
pub(super) fn write_json(out: &mut dyn Write, value: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| stdout_error(e.into()))
        .and_then(|()| writeln!(out).map_err(stdout_error))
}

/// The first 12 characters of a lock id, as lines show it.
pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A failure to write standard output, as the error that names it `-`.
pub(super) fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("-"),
        source,
    }
}

/// Prints an error for a person: language errors with their source snippet, others as
/// one `error:` line followed by their causes.
pub fn report(err: &Error) {
    // Transparent wrappers (a compile's) hand on the span of the statement at fault.
    if miette::Diagnostic::source_code(err).is_some() {
        let theme = if std::io::stderr().is_terminal() {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let mut text = String::new();
        // Unwrapped, as rustc and cargo print: a message is found whole by grep and by tests.
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_wrap_lines(false);
        if handler.render_report(&mut text, err).is_ok() {
            crate::stderr::print(format_args!("error: {text}"));
            return;
        }
    }
    crate::stderr::line(format_args!("error: {err}"));
    if let Some(help) = miette::Diagnostic::help(err) {
        crate::stderr::line(format_args!("  help: {help}"));
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !err.to_string().contains(&text) {
            crate::stderr::line(format_args!("  caused by: {text}"));
        }
        source = cause.source();
    }
}
