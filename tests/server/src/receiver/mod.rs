//! A real HTTP/1.1 webhook receiver on `127.0.0.1` for end-to-end tests, on `hyper` (see
//! `server.rs` for the threads, the runtime and the shutdown).
//!
//! Each request it reads whole is recorded ([`Recorded`]) and answered according to a
//! programmable [`Behavior`]: a default for every request, per-path defaults, and one-shot
//! scripts consumed one step per request. `hyper` speaks the protocol: `content-length` and
//! `chunked` request bodies, `Expect: 100-continue`, keep-alive (unless the client sends
//! `connection: close` or speaks HTTP/1.0 without `keep-alive`), pipelining, and `400` for a
//! malformed request (never recorded).
//!
//! Guarantees: it only ever listens on `127.0.0.1`. A request is recorded before it is
//! answered, so a client that saw the answer also sees the record. Dropping the [`Receiver`]
//! closes every connection, hung and delayed ones included, and joins its thread, so no
//! thread or socket outlives it.

mod behavior;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, Response};

pub use self::behavior::Behavior;
use crate::conn::Control;
use crate::respond::{bad_request, read_body};
use crate::server::{Body, Handler, Options, Server};

/// Largest accepted request body; a larger one is answered `400` and not recorded.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One request the receiver read completely.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method, as sent (`POST`).
    pub method: String,
    /// The request target, as sent, query included (`/hook?x=1`).
    pub path: String,
    /// Headers in arrival order (the values of a repeated name together, in their order);
    /// names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// When the request was completely read.
    pub at: Instant,
    /// How the receiver answered it.
    pub behavior: Behavior,
}

impl Recorded {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A running receiver on `127.0.0.1`; stops when dropped.
pub struct Receiver {
    server: Server,
    scheme: &'static str,
    recording: Arc<Recording>,
}

/// The receiver's state, shared with the handler of every request.
#[derive(Default)]
struct Recording {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    default: Behavior,
    script: VecDeque<Behavior>,
    by_path: HashMap<String, Behavior>,
    scripts_by_path: HashMap<String, VecDeque<Behavior>>,
    recorded: Vec<Recorded>,
}

/// The path part of a request target, without query or fragment.
fn route_of(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

impl Receiver {
    /// Binds `127.0.0.1:0` and starts serving.
    ///
    /// # Panics
    /// If no loopback port can be bound or no thread can be spawned (a broken test machine).
    pub fn start() -> Receiver {
        Receiver::serve(Options::default(), "http")
    }

    /// Like [`Receiver::start`], serving HTTPS with this certificate chain and private key
    /// (PEM); [`Receiver::url`] is then `https://127.0.0.1:PORT/hook`.
    ///
    /// # Panics
    /// If the PEM is not a certificate chain and a matching private key, or as
    /// [`Receiver::start`].
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Receiver {
        let options = Options { tls: Some(crate::tls::acceptor(cert_pem, key_pem)), ..Options::default() };
        Receiver::serve(options, "https")
    }

    fn serve(options: Options, scheme: &'static str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let recording = Arc::new(Recording::default());
        let server =
            Server::start(listener, Arc::clone(&recording), options, "receiver").expect("start the receiver's thread");
        Receiver { server, scheme, recording }
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The port the receiver listens on.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `http://127.0.0.1:PORT/hook` (`https` when started with [`Receiver::start_tls`]).
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// `http://127.0.0.1:PORT` followed by `path` (a leading `/` is added when missing).
    pub fn url_for(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("{}://{}{slash}{path}", self.scheme, self.addr())
    }

    /// TCP connections accepted so far (failed TLS handshakes included).
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Sets the behavior for every request that no path setting or script claims.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.state().default = behavior;
    }

    /// Sets the behavior for requests to `path` (query ignored), overriding the default and
    /// the global script for that path.
    pub fn set_behavior_for(&self, path: &str, behavior: Behavior) {
        self.state().by_path.insert(route_of(path).to_owned(), behavior);
    }

    /// Appends one-shot steps, consumed one per request (not claimed by a path setting), before
    /// falling back to the default behavior.
    pub fn push_script(&self, steps: Vec<Behavior>) {
        self.state().script.extend(steps);
    }

    /// Appends one-shot steps for requests to `path` (query ignored); they come before
    /// everything else for that path.
    pub fn push_script_for(&self, path: &str, steps: Vec<Behavior>) {
        self.state().scripts_by_path.entry(route_of(path).to_owned()).or_default().extend(steps);
    }

    /// Every recorded request, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().recorded.clone()
    }

    /// The recorded requests whose path (query ignored) is `path`, oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let route = route_of(path);
        self.state().recorded.iter().filter(|r| route_of(&r.path) == route).cloned().collect()
    }

    /// How many requests were recorded.
    pub fn count(&self) -> usize {
        self.state().recorded.len()
    }

    /// Waits until at least `n` requests are recorded; `false` if `timeout` passed first.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let state = self.state();
        let (state, _) = self
            .recording
            .changed
            .wait_timeout_while(state, timeout, |s| s.recorded.len() < n)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.recorded.len() >= n
    }

    /// Forgets the recorded requests (behaviors and scripts stay).
    pub fn clear(&self) {
        self.state().recorded.clear();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.recording.lock()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr()).finish_non_exhaustive()
    }
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The path script's next step, else the path setting, else the global script's next
    /// step, else the default.
    fn next_behavior(&self, target: &str) -> Behavior {
        let route = route_of(target);
        let mut state = self.lock();
        if let Some(step) = state.scripts_by_path.get_mut(route).and_then(VecDeque::pop_front) {
            return step;
        }
        if let Some(b) = state.by_path.get(route) {
            return b.clone();
        }
        if let Some(step) = state.script.pop_front() {
            return step;
        }
        state.default.clone()
    }
}

impl Handler for Recording {
    async fn handle(self: Arc<Self>, request: Request<Incoming>, control: Arc<Control>) -> Response<Body> {
        let (head, body) = request.into_parts();
        let Some(body) = read_body(body, MAX_BODY_BYTES).await else { return bad_request() };
        let at = Instant::now();
        let path = head.uri.to_string();
        let behavior = self.next_behavior(&path);
        let headers = head
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).trim().to_owned()))
            .collect();
        let method = head.method.as_str().to_owned();
        let recorded = Recorded { method, path, headers, body: body.to_vec(), at, behavior: behavior.clone() };
        self.lock().recorded.push(recorded);
        self.changed.notify_all();
        behavior::answer(&behavior, &control).await
    }
}
