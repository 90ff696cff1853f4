//! The receiver every delivery row posts to: a minimal HTTP/1.1 keep-alive responder on
//! `127.0.0.1`, one thread per connection, that reads each request (head and
//! `content-length` body), answers `200` with an empty body and counts it (optionally with
//! the receipt time of each request whose body carries a `"seq"` number, or with its
//! `webhook-id`).
//!
//! For the isolation rows the path picks the answer: `/hang/...` is held without an answer for
//! [`HOLD`] (or until the responder is dropped), `/fail/...` gets `500`, `/slow/...` gets its
//! `200` after [`SLOW`]; only `200`s count in [`Responder::count`].
//!
//! It does as little as an HTTP server can, so that the client side (tidings or the raw
//! `ureq` loop) is what the rows measure, and both contenders pay for it equally.
//!
//! Why it is not `hyper`, like the tests' server and the demo's receiver: a `hyper` responder
//! with the same API was measured in its place, alternating with this one four times (the
//! `deliver_` rows, three rounds each, medians of the four runs). On one `tokio` thread it
//! moved `deliver_4` by -27% for tidings and -11% for the raw loop, `deliver_16` by +20% and
//! +11%; on two `tokio` workers `deliver_4` by -20% and -24%, `deliver_16` by -3% and 0%
//! (figures in docs/benchmarks.md). The responder's scheduling would set the rows, not the
//! client's work, so this one (a thread per connection, like the clients) stays.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
const FAILURE: &[u8] = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";

/// How long a `/hang/` request is held: past the default 15 s timeout.
pub const HOLD: Duration = Duration::from_secs(20);

/// How long a `/slow/` request waits for its answer.
pub const SLOW: Duration = Duration::from_millis(20);

/// A running responder; stops accepting when dropped (connection threads end with their
/// connections).
pub struct Responder {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    count: AtomicU64,
    /// The count a [`Responder::wait_for`] caller waits for (`u64::MAX`: nobody waits).
    target: AtomicU64,
    /// Told when the count reaches `target`.
    reached: Condvar,
    reached_lock: Mutex<()>,
    stop: AtomicBool,
    /// Receipt times by `seq`, when timing is on.
    receipts: Mutex<Option<Vec<(u64, Instant)>>>,
    /// `webhook-id` and receipt time of every request, when `recording_ids` is on.
    ids: Mutex<Option<Vec<(String, Instant)>>>,
    recording_ids: AtomicBool,
    /// Requests answered 500 (`/fail/`) and requests held (`/hang/`).
    failed: AtomicU64,
    held: AtomicU64,
}

impl Responder {
    /// Starts a responder on an ephemeral loopback port.
    pub fn start() -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the responder");
        let addr = listener.local_addr().expect("responder address");
        let shared = Arc::new(Shared {
            count: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Condvar::new(),
            reached_lock: Mutex::new(()),
            stop: AtomicBool::new(false),
            receipts: Mutex::new(None),
            ids: Mutex::new(None),
            recording_ids: AtomicBool::new(false),
            failed: AtomicU64::new(0),
            held: AtomicU64::new(0),
        });
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

    /// The URL of a path (`/hang/7`, `/fail/3`, `/slow/a`, `/ok/1`).
    pub fn url_for(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests answered `200` so far.
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// Requests answered `500` (`/fail/`) and requests held (`/hang/`) so far.
    pub fn failed_and_held(&self) -> (u64, u64) {
        (self.shared.failed.load(Ordering::Relaxed), self.shared.held.load(Ordering::Relaxed))
    }

    /// Starts recording the `webhook-id` and receipt time of every request.
    pub fn record_ids(&self) {
        *self.shared.ids.lock().expect("ids") = Some(Vec::new());
        self.shared.recording_ids.store(true, Ordering::SeqCst);
    }

    /// The ids recorded so far, in arrival order.
    pub fn ids(&self) -> Vec<(String, Instant)> {
        self.shared.ids.lock().expect("ids").clone().unwrap_or_default()
    }

    /// Waits until `n` requests were answered; false after `timeout`.
    ///
    /// The waiting thread sleeps until the responder thread that answers the `n`-th request
    /// wakes it: a waiter that polled would wake thousands of times a second on the machine it
    /// measures, and only the tidings side of a delivery row waits here while it is timed.
    pub fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.shared.target.store(n, Ordering::SeqCst);
        let mut guard = self.shared.reached_lock.lock().expect("reached lock");
        let reached = loop {
            if self.shared.count.load(Ordering::SeqCst) >= n {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            // The bound only guards against a missed wake-up; the responder's notify ends the wait.
            let wait = (deadline - now).min(Duration::from_millis(100));
            guard = self.shared.reached.wait_timeout(guard, wait).expect("reached lock").0;
        };
        drop(guard);
        self.shared.target.store(u64::MAX, Ordering::SeqCst);
        reached
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
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        let recording = shared.recording_ids.load(Ordering::Relaxed);
        let Some(head) = read_head(&mut reader, &mut line, recording) else { return };
        body.resize(head.length, 0);
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let received = Instant::now();
        if recording && let Some(list) = shared.ids.lock().expect("ids").as_mut() {
            list.push((head.webhook_id.clone().unwrap_or_default(), received));
        }
        if head.route == Route::Hang {
            shared.held.fetch_add(1, Ordering::SeqCst);
            let until = received + HOLD;
            while Instant::now() < until && !shared.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        if head.route == Route::Fail {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            if writer.write_all(FAILURE).is_err() {
                return;
            }
            continue;
        }
        if head.route == Route::Slow {
            std::thread::sleep(SLOW);
        }
        if writer.write_all(RESPONSE).is_err() {
            return;
        }
        let answered = shared.count.fetch_add(1, Ordering::SeqCst) + 1;
        if answered == shared.target.load(Ordering::SeqCst) {
            // Taking the lock orders this notify after the waiter's check of the count.
            let _guard = shared.reached_lock.lock().expect("reached lock");
            shared.reached.notify_all();
        }
        let mut receipts = shared.receipts.lock().expect("receipts");
        if let Some(list) = receipts.as_mut()
            && let Some(seq) = seq_of(&body)
        {
            list.push((seq, received));
        }
    }
}

/// What a request's path asks of the responder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Ok,
    Hang,
    Fail,
    Slow,
}

/// What the responder needs of a request head.
struct Head {
    route: Route,
    length: usize,
    /// Read only while ids are recorded (it costs an allocation per request).
    webhook_id: Option<String>,
}

/// Reads one request head (`None` at the end of the connection), into `line`'s buffer.
fn read_head(reader: &mut BufReader<TcpStream>, line: &mut String, want_id: bool) -> Option<Head> {
    let mut head = Head { route: Route::Ok, length: 0, webhook_id: None };
    let mut first = true;
    loop {
        line.clear();
        match reader.read_line(line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            if first {
                continue;
            }
            return Some(head);
        }
        if first {
            let path = trimmed.split_whitespace().nth(1).unwrap_or("/");
            head.route = if path.starts_with("/hang/") {
                Route::Hang
            } else if path.starts_with("/fail/") {
                Route::Fail
            } else if path.starts_with("/slow/") {
                Route::Slow
            } else {
                Route::Ok
            };
            first = false;
            continue;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                head.length = value.trim().parse().unwrap_or(0);
            } else if want_id && name.eq_ignore_ascii_case("webhook-id") {
                head.webhook_id = Some(value.trim().to_string());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Posts `n` requests on one keep-alive connection and reads the answers.
    fn post(addr: SocketAddr, n: usize) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut answers = BufReader::new(stream.try_clone().expect("clone"));
        for seq in 0..n {
            let body = format!("{{\"seq\":{seq}}}");
            let request = format!("POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len());
            stream.write_all(request.as_bytes()).expect("write");
            let mut head = vec![0u8; RESPONSE.len()];
            answers.read_exact(&mut head).expect("answer");
            assert_eq!(head, RESPONSE);
        }
    }

    #[test]
    fn wait_for_returns_once_the_requests_are_answered_and_times_out_otherwise() {
        let responder = Responder::start();
        let addr = responder.addr;
        // The requests arrive while the caller already waits (and one before it does).
        post(addr, 1);
        let client = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            post(addr, 2);
        });
        assert!(responder.wait_for(3, Duration::from_secs(30)), "three requests were answered");
        client.join().expect("client");
        assert_eq!(responder.count(), 3);
        // A count already reached returns at once; one never reached times out.
        assert!(responder.wait_for(2, Duration::from_millis(1)));
        assert!(!responder.wait_for(4, Duration::from_millis(150)));
        post(addr, 1);
        assert!(responder.wait_for(4, Duration::from_secs(30)), "a later waiter is woken too");
    }
}
