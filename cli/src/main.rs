//! `tidings`: the command line of the tidings outbox.
//!
//! - `args` declares the command line (clap derive);
//! - `commands/` runs each command; `demo/` is the self-contained end-to-end demo with its own
//!   signature-verifying receiver;
//! - `db` finds and checks the database (never creating one by accident) and opens it, read-only
//!   for the inspection commands;
//! - `output` formats text and JSON (escaping control characters, hiding secrets and URL
//!   credentials), `progress` draws spinners and status lines on stderr;
//! - `sources` reads secret values from `env:NAME`, `file:PATH` or `stdin` (`--…-from`), so
//!   they stay out of the process list;
//! - `error` maps every failure to one stderr line and an exit code.

/// `print!` to stdout; a closed pipe (`tidings ... | head`) ends the process quietly.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// `println!` to stdout; a closed pipe ends the process quietly.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod args;
mod commands;
mod db;
mod error;
mod output;
mod progress;
mod sources;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages may quote what a receiver or the database said: printed inert.
            eprintln!("error: {}", output::clean(&e.message));
            ExitCode::from(e.kind.exit_code())
        }
    }
}
