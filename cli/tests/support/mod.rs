//! Helpers shared by the CLI tests: a store in a temporary folder, and running `tidings`
//! against it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// Upper bound for anything a child-process test waits for (a guard against hanging, not a
/// timing claim).
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// A child whose stdout lines arrive on a channel; killed when dropped.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `tidings ARGS --db DB` (stdout piped; stderr piped when `quiet` is false).
    pub fn start(env: &Env, args: &[&str]) -> Running {
        let mut child = std::process::Command::new(binary())
            .args(args)
            .arg("--db")
            .arg(&env.db)
            .env_remove("TIDINGS_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tidings");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next stdout line (bounded wait).
    pub fn next_line(&self) -> String {
        self.lines.recv_timeout(PATIENCE).expect("a line from the child before the deadline")
    }

    /// Waits for the exit status (bounded).
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends signal `name` (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The stdout lines still to come, until the child closes it (bounded).
    pub fn rest_of_stdout(&self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
