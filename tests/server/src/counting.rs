//! A lean webhook receiver on `127.0.0.1` for load tests: it answers every request at once and
//! keeps only a count per `(path, webhook-id)`, so that recording a million requests costs a
//! few tens of MiB rather than every body and header (the load tests measure the memory of
//! their own process, receiver included). It runs on the same engine as every server here
//! (`server.rs`: `hyper` on one thread), and reads each body only to discard it.
//!
//! It can be started on a chosen port ([`CountingReceiver::start_on`]), so a test can leave a
//! port closed ("receiver down") and bring the receiver up on it later.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::conn::Control;
use crate::respond::{bad_request, full, read_body};
use crate::server::{Body, Handler, Options, Server};

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A running counting receiver; stops when dropped.
pub struct CountingReceiver {
    server: Server,
    shared: Arc<Shared>,
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
    status: AtomicU16,
    counts: Mutex<Counts>,
    changed: Condvar,
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
        let shared = Arc::new(Shared {
            status: AtomicU16::new(200),
            counts: Mutex::new(Counts::default()),
            changed: Condvar::new(),
        });
        let server = Server::start(listener, Arc::clone(&shared), Options::default(), "counting")?;
        Ok(CountingReceiver { server, shared })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
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
        self.server.connections()
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
        self.shared.lock()
    }
}

impl std::fmt::Debug for CountingReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingReceiver").field("addr", &self.addr()).finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one request; wakes the waiters when their total is reached.
    fn count(&self, path: &str, webhook_id: &str) {
        let key = id_key(webhook_id);
        let reached = {
            let mut counts = self.lock();
            *counts.by_path.entry(path.to_owned()).or_default().entry(key).or_default() += 1;
            counts.total += 1;
            let reached = counts.total >= counts.wanted;
            if reached {
                counts.wanted = usize::MAX;
            }
            reached
        };
        if reached {
            self.changed.notify_all();
        }
    }
}

impl Handler for Shared {
    async fn handle(self: Arc<Self>, request: Request<Incoming>, _: Arc<Control>) -> Response<Body> {
        let (head, body) = request.into_parts();
        // Read (and dropped) so that the connection stays in step for the next request.
        if read_body(body, MAX_BODY_BYTES).await.is_none() {
            return bad_request();
        }
        let id = head.headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("");
        self.count(head.uri.path(), id);
        full(self.status.load(Ordering::SeqCst), &[], Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::thread;

    /// Sends `n` requests to `path` on one keep-alive connection, reading each answer.
    fn send(receiver: &CountingReceiver, path: &str, n: usize) {
        let mut stream = TcpStream::connect(receiver.addr()).expect("connect");
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
        assert_eq!(receiver.times("/a", "msg-1"), 1);
        assert_eq!(receiver.connections(), 2);
        // Reached already: at once; never reached: false after the timeout.
        assert!(receiver.wait_total(5, Duration::ZERO));
        assert!(!receiver.wait_total(6, Duration::from_millis(100)));
    }
}
