//! Progress indication on stderr: a spinner for operations that may take a while, and a
//! rewritable status line for long-running commands.
//!
//! Both draw only when stderr is a terminal (and JSON output was not asked for), so pipes,
//! logs and tests see clean output; stdout is never touched.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

/// Whether progress may be drawn: stderr is a terminal and output is for people.
pub fn enabled(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

const CLEAR_LINE: &str = "\r\x1b[2K";

/// A spinner with a message, drawn on its own thread until [`Spinner::finish`] (or drop).
pub struct Spinner {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts a spinner showing `message` (does nothing when `enabled` is false).
    pub fn start(message: &str, enabled: bool) -> Spinner {
        if !enabled {
            return Spinner { stop: None, thread: None };
        }
        let (tx, rx) = mpsc::channel::<()>();
        let message = message.to_string();
        let thread = std::thread::Builder::new()
            .name("tidings-spinner".into())
            .spawn(move || {
                let frames = ['|', '/', '-', '\\'];
                let mut i = 0;
                loop {
                    eprint!("{CLEAR_LINE}{} {message}", frames[i % frames.len()]);
                    let _ = std::io::stderr().flush();
                    i += 1;
                    match rx.recv_timeout(Duration::from_millis(100)) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
                eprint!("{CLEAR_LINE}");
                let _ = std::io::stderr().flush();
            })
            .ok();
        Spinner { stop: Some(tx), thread }
    }

    /// Stops and erases the spinner.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A status line: rewritten in place on a terminal; otherwise printed as a new line on stderr
/// each time its text changes.
pub struct StatusLine {
    terminal: bool,
    last: String,
}

impl StatusLine {
    /// A status line for output meant for people (`json` false) or scripts.
    pub fn new(json: bool) -> StatusLine {
        StatusLine { terminal: enabled(json), last: String::new() }
    }

    /// Shows `text`.
    pub fn show(&mut self, text: &str) {
        if self.terminal {
            eprint!("{CLEAR_LINE}{text}");
            let _ = std::io::stderr().flush();
        } else if text != self.last {
            eprintln!("{text}");
        }
        self.last = text.to_string();
    }

    /// Erases the line (on a terminal).
    pub fn clear(&mut self) {
        if self.terminal && !self.last.is_empty() {
            eprint!("{CLEAR_LINE}");
            let _ = std::io::stderr().flush();
        }
        self.last.clear();
    }
}
