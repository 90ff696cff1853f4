//! Helpers for the reliability suite: child processes that are killed when the test ends,
//! this process's memory and CPU time (from `/proc/self`), a small seeded random number
//! generator for kill moments, and consistency checks on a database file through a separate
//! raw connection.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tidings::rusqlite::{self, Connection, OpenFlags, types::Value as SqlValue};
use tidings::{Error, Result};

/// Whether the slow cases were asked for (`TIDINGS_SLOW_TESTS=1`).
pub fn slow_tests() -> bool {
    std::env::var("TIDINGS_SLOW_TESTS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A child process that is killed (SIGKILL) and reaped when dropped, whose stdout lines are
/// read on a thread so the test can wait for one with a deadline.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Spawns `program args...` with piped stdin and stdout (stderr inherited).
    pub fn spawn(program: &str, args: &[&str]) -> Result<Proc> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Storage(format!("spawn {program}: {e}")))?;
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().ok_or_else(|| Error::Storage("no child stdout".into()))?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, stdin, lines })
    }

    /// The next stdout line, or an error if none came within `timeout` (or the child closed
    /// its stdout).
    pub fn line(&self, timeout: Duration) -> Result<String> {
        self.lines.recv_timeout(timeout).map_err(|e| Error::Storage(format!("child said nothing: {e}")))
    }

    /// Waits for a line equal to `expected` (other lines are skipped).
    pub fn expect_line(&self, expected: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.line(left)?;
            if line.trim() == expected {
                return Ok(());
            }
        }
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self.stdin.as_mut().ok_or_else(|| Error::Storage("stdin closed".into()))?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|e| Error::Storage(format!("child stdin: {e}")))
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child already exited on its own (it should still be running).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the child to exit on its own (up to `timeout`, then kills it); whether it
    /// exited successfully.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    self.kill();
                    return false;
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small, seeded pseudo-random generator (xorshift64*) for kill moments and data; the seed
/// is printed by the tests so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `TIDINGS_TEST_SEED` if set, else from the clock.
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("TIDINGS_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
        });
        eprintln!("random seed: TIDINGS_TEST_SEED={seed}");
        Rng::new(seed)
    }

    /// A generator with this seed (0 is replaced by a constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }
}

/// A `VmRSS`-style line of `/proc/self/status`, in KiB (0 where `/proc` is missing).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// This process's resident set size, KiB.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// This process's peak resident set size so far, KiB.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// CPU time (user + system, all threads) this process has used, from `/proc/self/stat`
/// (clock ticks of `USER_HZ`, which is 100 on Linux).
pub fn cpu_time() -> Duration {
    const USER_HZ: u64 = 100;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let total = ticks(11) + ticks(12);
    Duration::from_millis(total * 1000 / USER_HZ)
}

/// CPU time used per wall-clock time over a stretch of time.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    cpu: Duration,
    wall: Instant,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start() -> CpuMeter {
        CpuMeter { cpu: cpu_time(), wall: Instant::now() }
    }

    /// CPU seconds used per wall second since the start (1.0 = one core busy all the time),
    /// with the two durations.
    pub fn ratio(&self) -> (f64, Duration, Duration) {
        let cpu = cpu_time().saturating_sub(self.cpu);
        let wall = self.wall.elapsed();
        (cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9), cpu, wall)
    }
}

/// A separate raw connection on the file (same SQLite library), read-write, 10 s busy timeout.
pub fn raw(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// One integer from a query on a raw connection.
pub fn int(conn: &Connection, sql: &str) -> Result<i64> {
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

/// `PRAGMA integrity_check` of the file, as one string (`ok` when healthy).
pub fn integrity(path: &Path) -> Result<String> {
    let conn = raw(path)?;
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows.join("; "))
}

/// Checks what must hold in every tidings file, whatever happened to the processes writing
/// it: integrity `ok`; positions `1..=last_position` with no gap where nothing was deleted
/// (`gap_free`); every stream's versions `1..=version`; no attempt without its delivery; no
/// delivery without its endpoint; `sending` rows carry a lease. Returns the number of events.
pub fn check_consistent(path: &Path, gap_free: bool) -> Result<i64> {
    let check = integrity(path)?;
    if check != "ok" {
        return Err(Error::Storage(format!("integrity_check: {check}")));
    }
    let conn = raw(path)?;
    let fail = |what: &str, n: i64| -> Result<()> {
        if n != 0 { Err(Error::Storage(format!("{what}: {n}"))) } else { Ok(()) }
    };
    let events = int(&conn, "SELECT count(*) FROM tidings_events")?;
    // The last position handed out: the newest event's, or the high-water mark deletions left.
    let max = int(&conn, "SELECT coalesce(max(position), 0) FROM tidings_events")?;
    let last = max.max(int(&conn, "SELECT value FROM tidings_meta WHERE key = 'last_position'")?);
    if gap_free {
        if events != last || max != last {
            return Err(Error::Storage(format!("positions have gaps: {events} events, last position {last}")));
        }
        fail(
            "stream versions with gaps",
            int(
                &conn,
                "SELECT count(*) FROM (SELECT max(s.version, coalesce(max(e.version), 0)) AS version,
                 count(e.version) AS events, coalesce(max(e.version), 0) AS newest
                 FROM tidings_streams s LEFT JOIN tidings_events e ON e.stream_id = s.id GROUP BY s.id)
                 WHERE version <> events OR version <> newest",
            )?,
        )?;
    }
    fail(
        "attempts without a delivery",
        int(
            &conn,
            "SELECT count(*) FROM tidings_attempts a WHERE NOT EXISTS
             (SELECT 1 FROM tidings_deliveries d WHERE d.id = a.delivery_id)",
        )?,
    )?;
    fail(
        "deliveries without an endpoint",
        int(
            &conn,
            "SELECT count(*) FROM tidings_deliveries d WHERE NOT EXISTS
             (SELECT 1 FROM tidings_endpoints e WHERE e.seq = d.endpoint_seq)",
        )?,
    )?;
    fail(
        "sending deliveries without a lease",
        int(&conn, "SELECT count(*) FROM tidings_deliveries WHERE state = 1 AND lease_owner IS NULL")?,
    )?;
    fail(
        "unfinished deliveries of missing events",
        int(
            &conn,
            "SELECT count(*) FROM tidings_deliveries d WHERE d.state IN (0, 1, 2, 3) AND NOT EXISTS
             (SELECT 1 FROM tidings_events e WHERE e.position = d.event_position)",
        )?,
    )?;
    Ok(events)
}

/// A value of a raw row rendered so rows can be sorted and compared.
fn render(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".to_string(),
        SqlValue::Integer(i) => format!("i:{i}"),
        SqlValue::Real(r) => format!("r:{r:?}"),
        SqlValue::Text(t) => format!("t:{t:?}"),
        SqlValue::Blob(b) => format!("b:{b:?}"),
    }
}

/// Everything in the file through a separate read-only connection: `user_version`, the schema
/// and every row of every table, sorted. Two equal dumps mean the same logical content.
pub fn dump(path: &Path) -> Result<Vec<String>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mut out = Vec::new();
    let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    out.push(format!("user_version={user_version}"));
    let schema: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut tables = Vec::new();
    for (kind, name, sql) in &schema {
        out.push(format!("schema {kind} {name}: {sql:?}"));
        if kind == "table" && !name.starts_with("sqlite_") {
            tables.push(name.clone());
        }
    }
    for table in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))?;
        let width = stmt.column_count();
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let cells = (0..width).map(|i| r.get::<_, SqlValue>(i).map(|v| render(&v)));
                Ok(cells.collect::<rusqlite::Result<Vec<_>>>()?.join(" | "))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        out.push(format!("table {table}: {} rows", rows.len()));
        out.extend(rows.into_iter().map(|row| format!("  {table}: {row}")));
    }
    Ok(out)
}

/// Polls `f` every 20 ms until it returns `Ok(true)` or `timeout` passes (then `false`).
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if f()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(20));
    }
}
