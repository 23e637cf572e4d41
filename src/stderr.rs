//! Standard error for people. Every line the binary and the library write there goes
//! through here, because `eprintln!` panics when stderr is a broken pipe
//! (`appliance ... 2>&1 | head -1`): a line that cannot be written is lost, and the
//! command goes on to its own end and exit code.

use std::fmt;
use std::io::Write;

/// Writes `text` as it is, ignoring a stderr that cannot take it.
pub(crate) fn print(text: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// Writes `text` and a newline.
pub(crate) fn line(text: impl fmt::Display) {
    print(format_args!("{text}\n"));
}

/// Writes `warning: TEXT`: something the user should know that does not fail the
/// command.
pub(crate) fn warning(text: impl fmt::Display) {
    print(format_args!("warning: {text}\n"));
}
