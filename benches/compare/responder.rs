//! The receiver every delivery row posts to: a minimal HTTP/1.1 keep-alive responder on
//! `127.0.0.1`, one thread per connection, that reads each request (head and
//! `content-length` body), answers `200` with an empty body and counts it (optionally with
//! the receipt time of each request whose body carries a `"seq"` number).
//!
//! It does as little as an HTTP server can, so that the client side (tidings or the raw
//! `ureq` loop) is what the rows measure, and both contenders pay for it equally.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";

/// A running responder; stops accepting when dropped (connection threads end with their
/// connections).
pub struct Responder {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    count: AtomicU64,
    stop: AtomicBool,
    /// Receipt times by `seq`, when timing is on.
    receipts: Mutex<Option<Vec<(u64, Instant)>>>,
}

impl Responder {
    /// Starts a responder on an ephemeral loopback port.
    pub fn start() -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the responder");
        let addr = listener.local_addr().expect("responder address");
        let shared =
            Arc::new(Shared { count: AtomicU64::new(0), stop: AtomicBool::new(false), receipts: Mutex::new(None) });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                // Named, so that a profile tells the responder's threads from the client's.
                let named = std::thread::Builder::new().name("responder".into());
                named.spawn(move || serve(stream, &shared)).expect("a responder thread");
            }
        });
        Responder { addr, shared }
    }

    /// The URL to post to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Requests answered so far.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Waits until `n` requests were answered; false after `timeout`.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Starts recording the receipt time of every request whose body has a `"seq":N` field.
    pub fn record_receipts(&self) {
        *self.shared.receipts.lock().expect("receipts") = Some(Vec::new());
    }

    /// The receipt times recorded so far.
    pub fn receipts(&self) -> Vec<(u64, Instant)> {
        self.shared.receipts.lock().expect("receipts").clone().unwrap_or_default()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut length = 0usize;
        let mut first = true;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                if first {
                    continue;
                }
                break;
            }
            first = false;
            if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let received = Instant::now();
        if writer.write_all(RESPONSE).is_err() {
            return;
        }
        shared.count.fetch_add(1, Ordering::Relaxed);
        let mut receipts = shared.receipts.lock().expect("receipts");
        if let Some(list) = receipts.as_mut()
            && let Some(seq) = seq_of(&body)
        {
            list.push((seq, received));
        }
    }
}

/// The number after the first `"seq":` in a body.
fn seq_of(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find("\"seq\":")? + 6..];
    let digits: String = rest.chars().skip_while(|c| c.is_whitespace()).take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
