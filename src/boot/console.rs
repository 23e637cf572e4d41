//! The guest's console on this process's standard streams. A terminal is qemu's own
//! (raw, Ctrl-A X quits), and is put back as it was after a qemu that died without
//! doing so. Input that is not a terminal (a file, a pipe, /dev/null) is typed on the
//! console once the guest's program has started, and its end is typed as ^D, the end of
//! input on a terminal: a shell there exits as at the end of a script, and the guest
//! powers off, instead of waiting forever for input that will never come.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::mpsc;

use crate::materialise::{INIT_SAYS, INIT_UP};

/// The end-of-input character of a terminal (VEOF, ^D): at the start of a line, a
/// program reading the terminal reads the end of its input.
const END_OF_INPUT: u8 = 0x04;

/// The longest console line searched for the init's words: the rest of a longer line
/// is not kept.
const LONGEST_LINE: usize = 4096;

/// The terminal settings of standard input, put back when this is dropped: qemu makes
/// its terminal raw and restores it as it exits, which a qemu killed by a signal (an
/// assertion that failed) never does.
pub(super) struct SavedTerminal(Option<libc::termios>);

impl SavedTerminal {
    /// Saves standard input's settings, when it is a terminal.
    pub fn save() -> SavedTerminal {
        if !io::stdin().is_terminal() {
            return SavedTerminal(None);
        }
        // SAFETY: a zeroed termios is a valid value for tcgetattr to fill in.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes into a local that outlives the call.
        let saved = unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut settings) } == 0;
        SavedTerminal(saved.then_some(settings))
    }
}

impl Drop for SavedTerminal {
    fn drop(&mut self) {
        if let Some(settings) = &self.0 {
            // SAFETY: tcsetattr reads a termios that tcgetattr filled in.
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, settings) };
        }
    }
}

/// Whether boot types its input on the guest's console itself: when the input is not a
/// terminal and the guest runs its own program, which may read it. A program given on
/// the command line is left qemu's input as it is.
pub(super) fn types_input(program_given: bool) -> bool {
    !program_given && !io::stdin().is_terminal()
}

/// Copies the console's output (qemu's stdout) to `to` as it comes, and tells `up` once
/// the init said it started the guest's program. Output that cannot be written is
/// dropped, never left to stall the guest.
pub(super) fn watch(mut from: impl Read, mut to: impl Write, up: mpsc::Sender<()>) {
    let mut line = Vec::new();
    let mut told = false;
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let _ = to.write_all(&buf[..n]).and_then(|()| to.flush());
        if told {
            continue;
        }
        for &byte in &buf[..n] {
            if byte == b'\n' {
                if says_up(&line) {
                    told = true;
                    let _ = up.send(());
                    break;
                }
                line.clear();
            } else if line.len() < LONGEST_LINE {
                line.push(byte);
            }
        }
    }
}

/// Whether a console line is the init's `GROUP up, running PROGRAM`.
fn says_up(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    line.find(INIT_SAYS)
        .is_some_and(|at| line[at + INIT_SAYS.len()..].contains(INIT_UP))
}

/// Once `up` tells that the guest's program started, types `input` on the console, then
/// its end: a line end if the last line lacks one (a shell runs a last line at the end
/// of a script), then ^D. Types nothing when the guest ends before its program starts
/// (`up` closes), nor once the console is gone.
pub(super) fn type_input(mut input: impl Read, mut console: impl Write, up: mpsc::Receiver<()>) {
    if up.recv().is_err() {
        return;
    }
    let mut buf = [0u8; 4096];
    let mut last = b'\n';
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Unreadable input ends like input that ended.
            Err(_) => break,
        };
        if console
            .write_all(&buf[..n])
            .and_then(|()| console.flush())
            .is_err()
        {
            return;
        }
        last = buf[n - 1];
    }
    let end: &[u8] = if last == b'\n' {
        &[END_OF_INPUT]
    } else {
        &[b'\n', END_OF_INPUT]
    };
    let _ = console.write_all(end).and_then(|()| console.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its chunks one read at a time.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn the_inits_words_are_found_across_reads_and_everything_is_copied() {
        let (up, started) = mpsc::channel();
        let mut copied = Vec::new();
        let chunks: Vec<&'static [u8]> = vec![
            b"[    1.2] Run /init as init process\r\n",
            b"appliance-init: loaded ext4\r\nappliance-init: mini",
            b"mal up, run",
            b"ning /bin/sh\r\n# ",
        ];
        watch(Chunks(chunks.clone()), &mut copied, up);
        assert!(started.try_recv().is_ok());
        assert_eq!(copied, chunks.concat());

        let (up, started) = mpsc::channel();
        let quiet = Chunks(vec![b"appliance-init: error: no root disk\r\n"]);
        watch(quiet, io::sink(), up);
        assert!(
            started.try_recv().is_err(),
            "a guest that never ran its program"
        );
    }

    #[test]
    fn input_is_typed_once_the_program_runs_and_ends_with_eof() {
        for (input, typed) in [
            (&b""[..], &b"\x04"[..]),
            (b"echo hi\n", b"echo hi\n\x04"),
            (b"echo hi", b"echo hi\n\x04"),
        ] {
            let (up, started) = mpsc::channel();
            up.send(()).unwrap();
            let mut console = Vec::new();
            type_input(input, &mut console, started);
            assert_eq!(console, typed, "{:?}", String::from_utf8_lossy(input));
        }
        let (up, started) = mpsc::channel::<()>();
        drop(up);
        let mut console = Vec::new();
        type_input(&b"echo hi\n"[..], &mut console, started);
        assert!(console.is_empty(), "nothing typed for a guest that ended");
    }
}
