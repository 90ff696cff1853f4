//! Secret values read from the environment, a file or stdin instead of the command line.
//!
//! Arguments are readable by every local user (`/proc/PID/cmdline`, `ps`), so every option that
//! carries a secret (`--secret`, `--bearer`, `--api-key`, `--header`, and an endpoint's URL,
//! whose query often holds a token) has a `--…-from SOURCE` twin, and NATS credentials (a
//! multi-line `.creds` file with a private key seed) come only as `--nats-creds-from SOURCE`,
//! where SOURCE is one of:
//!
//! - `env:NAME`: the environment variable `NAME`, as it is;
//! - `file:PATH`: the file's content (a regular file, or a pipe such as `file:/dev/fd/3` or a
//!   shell's `<(…)`);
//! - `stdin`: standard input, for one option per command.
//!
//! One trailing newline (`\n` or `\r\n`) of a file or stdin value is dropped; an empty value is
//! refused; a file or stdin is read up to [`MAX_SOURCE_BYTES`]. Errors name the option and the
//! source (`--bearer-from env:HOOK_TOKEN: the variable is not set`), never the value.

use std::fmt;
use std::io::Read;
use std::path::PathBuf;

use crate::error::{CliError, Result};

/// The `value_name` of every `--…-from` option.
pub const VALUE_NAME: &str = "env:NAME|file:PATH|stdin";

/// The most read from one file or from stdin for one value (64 KiB: secrets, tokens, headers
/// and URLs are far smaller; `/dev/zero` is not read to its end).
pub const MAX_SOURCE_BYTES: u64 = 64 * 1024;

/// Where a `--…-from` option reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `env:NAME`.
    Env(String),
    /// `file:PATH`.
    File(PathBuf),
    /// `stdin`.
    Stdin,
}

impl Source {
    /// Parses `env:NAME`, `file:PATH` or `stdin` (the clap value parser).
    pub fn parse(text: &str) -> std::result::Result<Source, String> {
        let expected = "expected env:NAME, file:PATH or stdin";
        if text == "stdin" {
            return Ok(Source::Stdin);
        }
        match text.split_once(':') {
            Some(("env", name)) if !name.is_empty() && !name.contains(['=', '\0']) => Ok(Source::Env(name.into())),
            Some(("file", path)) if !path.is_empty() => Ok(Source::File(PathBuf::from(path))),
            Some(("env" | "file", _)) => Err(format!("{expected} (the name or path is empty or invalid)")),
            _ => Err(expected.to_string()),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env(name) => write!(f, "env:{name}"),
            Source::File(path) => write!(f, "file:{}", path.display()),
            Source::Stdin => f.write_str("stdin"),
        }
    }
}

/// Who may still read stdin.
#[derive(Debug)]
enum Stdin {
    /// Nobody has yet.
    Free,
    /// This option read it.
    ReadBy(String),
    /// The command itself reads it (the reason, for the message).
    Taken(&'static str),
}

/// Reads the sources of one command, allowing stdin to at most one of them.
#[derive(Debug)]
pub struct Reader {
    stdin: Stdin,
}

impl Reader {
    /// A reader for a command that does not read stdin itself.
    pub fn new() -> Reader {
        Reader { stdin: Stdin::Free }
    }

    /// A reader for a command that reads stdin itself (`why` says what for).
    pub fn without_stdin(why: &'static str) -> Reader {
        Reader { stdin: Stdin::Taken(why) }
    }

    /// The value of `option` (`--bearer-from`) from `source`.
    pub fn read(&mut self, option: &str, source: &Source) -> Result<String> {
        let at = || format!("{option} {source}");
        let value = match source {
            Source::Env(name) => match std::env::var_os(name) {
                None => return Err(CliError::invalid(format!("{}: the variable is not set", at()))),
                Some(v) => {
                    v.into_string().map_err(|_| CliError::invalid(format!("{}: the value is not UTF-8", at())))?
                }
            },
            Source::File(path) => {
                let file =
                    std::fs::File::open(path).map_err(|e| CliError::invalid(format!("{}: cannot read: {e}", at())))?;
                strip_newline(read_bounded(file, &at)?)
            }
            Source::Stdin => {
                self.claim_stdin(option)?;
                strip_newline(read_bounded(std::io::stdin().lock(), &at)?)
            }
        };
        if value.is_empty() {
            return Err(CliError::invalid(format!("{}: the value is empty", at())));
        }
        Ok(value)
    }

    /// The value of `option` from `source`, if one was given.
    pub fn read_opt(&mut self, option: &str, source: Option<&Source>) -> Result<Option<String>> {
        source.map(|s| self.read(option, s)).transpose()
    }

    /// The values of a repeatable `option`, one per source.
    pub fn read_all(&mut self, option: &str, sources: &[Source]) -> Result<Vec<String>> {
        sources.iter().map(|s| self.read(option, s)).collect()
    }

    fn claim_stdin(&mut self, option: &str) -> Result<()> {
        match &self.stdin {
            Stdin::Free => {
                self.stdin = Stdin::ReadBy(option.to_string());
                Ok(())
            }
            Stdin::ReadBy(first) => Err(CliError::usage(format!(
                "{option} stdin: only one option may read stdin, and {first} stdin already does \
                 (use env:NAME or file:PATH for the other)"
            ))),
            Stdin::Taken(why) => {
                Err(CliError::usage(format!("{option} stdin: stdin carries {why}; use env:NAME or file:PATH")))
            }
        }
    }
}

/// Reads at most [`MAX_SOURCE_BYTES`] as UTF-8; more is refused.
fn read_bounded(input: impl Read, at: &dyn Fn() -> String) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::invalid(format!("{}: cannot read: {e}", at())))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(CliError::invalid(format!("{}: longer than {} KiB", at(), MAX_SOURCE_BYTES / 1024)));
    }
    String::from_utf8(bytes).map_err(|_| CliError::invalid(format!("{}: the value is not UTF-8", at())))
}

/// Drops one trailing `\n` or `\r\n` (what `echo` and editors add).
fn strip_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_print_back() {
        for text in ["env:HOOK_TOKEN", "file:/run/secrets/hook", "file:relative:with:colons", "stdin"] {
            assert_eq!(Source::parse(text).map(|s| s.to_string()), Ok(text.to_string()));
        }
        for bad in ["", "env:", "file:", "env:A=B", "clipboard", "STDIN", "-", "https://x"] {
            assert!(Source::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn one_trailing_newline_is_dropped() {
        assert_eq!(strip_newline("tok\n".into()), "tok");
        assert_eq!(strip_newline("tok\r\n".into()), "tok");
        assert_eq!(strip_newline("tok\n\n".into()), "tok\n");
        assert_eq!(strip_newline("tok".into()), "tok");
    }

    #[test]
    fn stdin_goes_to_one_option_only() {
        let mut reader = Reader::new();
        assert!(reader.claim_stdin("--secret-from").is_ok());
        let err = reader.claim_stdin("--bearer-from").expect_err("a second reader");
        assert!(err.message.contains("only one option may read stdin"), "{}", err.message);
        let err = Reader::without_stdin("the request").claim_stdin("--secret-from").expect_err("taken");
        assert!(err.message.contains("stdin carries the request"), "{}", err.message);
    }

    #[test]
    fn values_are_bounded() {
        let at = || "--x file:big".to_string();
        let big = vec![b'a'; MAX_SOURCE_BYTES as usize + 1];
        assert!(read_bounded(big.as_slice(), &at).is_err());
        assert_eq!(read_bounded(&b"ok"[..], &at).ok().as_deref(), Some("ok"));
    }
}
