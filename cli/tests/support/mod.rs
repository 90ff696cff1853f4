//! Helpers shared by the CLI tests: a store in a temporary folder, and running `tidings`
//! against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use tidings::{Store, StoreOptions};

/// A temporary folder with a tidings store at `db`.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
}

impl Env {
    /// A folder with a fresh (closed) store in it.
    pub fn new() -> Env {
        let env = Env::empty();
        env.store().close();
        env
    }

    /// A folder with no database yet (`db` names a file that does not exist).
    pub fn empty() -> Env {
        let dir = tempfile::tempdir().expect("temporary folder");
        let db = dir.path().join("app.db");
        Env { dir, db }
    }

    /// Opens the store in this process (loopback allowed, for tests that deliver).
    pub fn store(&self) -> Store {
        Store::open(&self.db, tidings_tests::loopback_options()).expect("open the test store")
    }

    /// Opens the store with default options.
    pub fn plain_store(&self) -> Store {
        Store::open(&self.db, StoreOptions::default()).expect("open the test store")
    }

    /// `tidings ARGS --db DB`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = tidings();
        cmd.args(args).arg("--db").arg(&self.db);
        cmd
    }

    /// Runs `tidings ARGS --db DB` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run tidings")
    }

    /// Runs `tidings ARGS --db DB --json`, checks it succeeded, and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd(args).arg("--json").output().expect("run tidings");
        assert_eq!(code(&out), 0, "tidings {args:?} failed: {}", stderr(&out));
        parse(&out)
    }

    /// Creates an endpoint in-process and returns its id.
    pub fn endpoint(&self, spec: &tidings::EndpointSpec) -> String {
        let store = self.store();
        let id = store.create_endpoint(spec).expect("create endpoint").id;
        store.close();
        id
    }
}

/// `tidings` without `--db`.
pub fn tidings() -> Command {
    let mut cmd = Command::cargo_bin("tidings").expect("the tidings binary");
    cmd.env_remove("TIDINGS_DB");
    cmd
}

/// The path of the built binary (for tests that drive a child process by hand).
pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("tidings")
}

/// The exit code (-1 when killed by a signal).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Parses stdout as one JSON document.
pub fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

/// Parses stdout as JSON lines.
pub fn parse_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l}")))
        .collect()
}

/// Asserts a failure: exit code, one line on stderr containing `needle`.
pub fn assert_fails(out: &Output, expected_code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(code(out), expected_code, "stderr: {err} stdout: {}", stdout(out));
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

/// Asserts a failure reported by tidings itself: exactly one `error:` line on stderr.
pub fn assert_error_line(out: &Output, expected_code: i32, needle: &str) {
    assert_fails(out, expected_code, needle);
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "more than one stderr line: {err}");
    assert!(err.starts_with("error: "), "{err}");
}

/// The bytes of a file.
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

/// A plain SQLite connection to a file (for corrupting or inspecting it).
pub fn sqlite(path: &Path) -> tidings::rusqlite::Connection {
    tidings::rusqlite::Connection::open(path).expect("open with rusqlite")
}
