//! Lines for the operator on stdout and stderr that survive a reader who left.
//!
//! `cardbench run … | head -2` closes the pipe after two lines. Rust ignores SIGPIPE, so the
//! next write fails with `BrokenPipe`, and `println!` would panic. Here a closed stream is
//! not an error: printing stops, the work goes on (a run finishes its cases and its trace,
//! a batch its cards: cutting a card's sequence short because nobody reads the console
//! would leave the card in doubt), and the exit code is the work's own.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

fn write_or_close(closed: &AtomicBool, w: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    if closed.load(Ordering::Relaxed) {
        return Ok(());
    }
    match w.write_all(bytes).and_then(|_| w.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        r => r,
    }
}

/// One line on stdout (`println!` without the panic).
pub fn out(args: std::fmt::Arguments) {
    let line = format!("{args}\n");
    if let Err(e) = write_or_close(&STDOUT_CLOSED, &mut std::io::stdout().lock(), line.as_bytes()) {
        // Not a pipe that closed (a full disk under a redirect, say): say so once, go on.
        if !STDOUT_CLOSED.swap(true, Ordering::Relaxed) {
            err(format_args!("cardbench: stdout: {e}; printing stops"));
        }
    }
}

/// One line on stderr (`eprintln!` without the panic).
pub fn err(args: std::fmt::Arguments) {
    let line = format!("{args}\n");
    if write_or_close(&STDERR_CLOSED, &mut std::io::stderr().lock(), line.as_bytes()).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Stdout as a `Write` for sinks (the run console): once the pipe is closed, writes succeed
/// and go nowhere, so the console never turns a closed pipe into a run error.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_or_close(&STDOUT_CLOSED, &mut std::io::stdout().lock(), buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        write_or_close(&STDOUT_CLOSED, &mut std::io::stdout().lock(), &[])
    }
}
