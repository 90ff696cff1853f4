//! A lean webhook receiver on `127.0.0.1` for load tests: it answers every request at once and
//! keeps only a count per `(path, webhook-id)`, so that recording a million requests costs a
//! few tens of MiB rather than every body and header (the load tests measure the memory of
//! their own process, receiver included).
//!
//! It can be started on a chosen port ([`CountingReceiver::start_on`]), so a test can leave a
//! port closed ("receiver down") and bring the receiver up on it later.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::http_lite::LiteConn;

/// A running counting receiver; stops when dropped.
pub struct CountingReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Counts {
    /// path -> webhook-id key -> times received.
    by_path: HashMap<String, HashMap<u128, u32>>,
    total: usize,
    /// The smallest total a [`CountingReceiver::wait_total`] caller waits for (`usize::MAX`:
    /// none). Waiters are woken when it is reached, not on every request: a waiter woken per
    /// request would cost the process under test a wake-up per delivery.
    wanted: usize,
}

impl Default for Counts {
    fn default() -> Self {
        Counts { by_path: HashMap::new(), total: 0, wanted: usize::MAX }
    }
}

struct Shared {
    stop: AtomicBool,
    status: AtomicU16,
    counts: Mutex<Counts>,
    changed: Condvar,
    connections: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A compact key for a webhook id: the UUID's 128 bits, or a 64-bit hash for anything else.
pub fn id_key(id: &str) -> u128 {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32
        && let Ok(v) = u128::from_str_radix(&hex, 16)
    {
        return v;
    }
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    u128::from(h.finish()) | (1u128 << 127)
}

impl CountingReceiver {
    /// Binds `127.0.0.1:0`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub fn start() -> CountingReceiver {
        Self::start_on(0).expect("bind 127.0.0.1:0")
    }

    /// Binds `127.0.0.1:port` (0: any free port).
    pub fn start_on(port: u16) -> io::Result<CountingReceiver> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            status: AtomicU16::new(200),
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
            connections: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("counting-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(CountingReceiver { addr, shared, accept: Some(accept) })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status every later request is answered with (default 200).
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Requests received in all.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Connections accepted in all.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Distinct webhook ids received on `path`.
    pub fn distinct(&self, path: &str) -> usize {
        self.lock().by_path.get(path).map_or(0, HashMap::len)
    }

    /// Whether `id` was received on `path`, and how often.
    pub fn times(&self, path: &str, id: &str) -> u32 {
        self.lock().by_path.get(path).and_then(|m| m.get(&id_key(id))).copied().unwrap_or(0)
    }

    /// Ids received more than once on `path`.
    pub fn duplicates(&self, path: &str) -> usize {
        self.lock().by_path.get(path).map_or(0, |m| m.values().filter(|n| **n > 1).count())
    }

    /// Waits until `total` requests were received; `false` on timeout. The receiver wakes the
    /// caller once, when the total is reached.
    pub fn wait_total(&self, total: usize, timeout: Duration) -> bool {
        let mut guard = self.lock();
        guard.wanted = guard.wanted.min(total);
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |c| {
                // Woken for another waiter's smaller total: ask again for this one.
                c.wanted = c.wanted.min(total);
                c.total < total
            })
            .unwrap_or_else(|p| p.into_inner());
        guard.total >= total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.shared.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for CountingReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(&shared);
        if let Ok(handle) =
            thread::Builder::new().name("counting-conn".into()).spawn(move || serve(stream, conn_shared))
        {
            let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
            threads.retain(|h| !h.is_finished());
            threads.push(handle);
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut conn) = LiteConn::new(stream) else { return };
    while let Ok(Some(request)) = conn.read_request(&shared.stop) {
        let key = id_key(request.header("webhook-id").unwrap_or(""));
        let reached = {
            let mut counts = shared.counts.lock().unwrap_or_else(|p| p.into_inner());
            *counts.by_path.entry(request.path().to_owned()).or_default().entry(key).or_default() += 1;
            counts.total += 1;
            let reached = counts.total >= counts.wanted;
            if reached {
                counts.wanted = usize::MAX;
            }
            reached
        };
        if reached {
            shared.changed.notify_all();
        }
        let status = shared.status.load(Ordering::SeqCst);
        let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
        if conn.stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
        if request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Sends `n` requests to `path` on one keep-alive connection, reading each answer.
    fn send(receiver: &CountingReceiver, path: &str, n: usize) {
        let mut stream = TcpStream::connect(receiver.addr).expect("connect");
        for i in 0..n {
            let request =
                format!("POST {path} HTTP/1.1\r\nhost: x\r\nwebhook-id: msg-{i}\r\ncontent-length: 2\r\n\r\n{{}}");
            stream.write_all(request.as_bytes()).expect("write");
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            while !answer.ends_with(b"\r\n\r\n") {
                stream.read_exact(&mut byte).expect("answer");
                answer.push(byte[0]);
            }
            assert!(answer.starts_with(b"HTTP/1.1 200"));
        }
    }

    #[test]
    fn waiters_for_different_totals_are_each_woken_when_theirs_is_reached() {
        let receiver = Arc::new(CountingReceiver::start());
        let waiter = |total: usize| {
            let receiver = Arc::clone(&receiver);
            thread::spawn(move || receiver.wait_total(total, Duration::from_secs(30)))
        };
        let (small, large) = (waiter(2), waiter(5));
        send(&receiver, "/a", 3);
        assert!(small.join().expect("small waiter"), "a total of 2 was reached");
        send(&receiver, "/b", 2);
        assert!(large.join().expect("large waiter"), "a total of 5 was reached");
        assert_eq!(receiver.total(), 5);
        assert_eq!(receiver.distinct("/a"), 3);
        // Reached already: at once; never reached: false after the timeout.
        assert!(receiver.wait_total(5, Duration::ZERO));
        assert!(!receiver.wait_total(6, Duration::from_millis(100)));
    }
}
