//! A real HTTP/1.1 webhook receiver on `127.0.0.1` for end-to-end tests, built on `std::net`
//! alone.
//!
//! It owns one listening socket on an ephemeral loopback port, an accept thread and one thread
//! per connection. Each request it fully reads is recorded ([`Recorded`]) and answered according
//! to a programmable [`Behavior`]: a default for every request, per-path defaults, and one-shot
//! scripts consumed one step per request. It speaks enough HTTP/1.1 for a real client:
//! `content-length` and `chunked` request bodies, `Expect: 100-continue`, keep-alive (unless the
//! client sends `connection: close` or speaks HTTP/1.0 without `keep-alive`) and pipelining.
//!
//! Guarantees: it only ever listens on `127.0.0.1`. Dropping the [`Receiver`] stops the accept
//! loop and every connection thread (each one notices the shutdown within about 50 ms, hung and
//! delayed ones included) and joins them, so no thread or socket outlives it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked reads, writes and sleeps look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// Longest accepted request line or header line, and the whole header block.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What the receiver does with one request (after reading it completely and recording it).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behavior {
    /// Answer with this status and a small JSON body: `{"ok":true}` for 2xx, `{"ok":false}`
    /// otherwise (no body for 1xx, 204 and 304).
    Status(u16),
    /// Like [`Behavior::Status`] plus these response headers (e.g. 429 with `Retry-After`).
    StatusWithHeaders(u16, Vec<(String, String)>),
    /// Answer with this status and exactly this body (`text/plain`).
    Body(u16, String),
    /// Never answer: hold the socket open until the client closes it or the receiver is
    /// dropped.
    Hang,
    /// Wait this long, then answer like [`Behavior::Status`].
    Delay(Duration, u16),
    /// Close the socket with `SO_LINGER` 0 so the client sees a connection reset (on platforms
    /// other than Linux, Android, macOS/iOS and the BSDs: a plain close).
    Reset,
    /// Close the connection cleanly without writing anything.
    CloseBeforeHeaders,
    /// Send a 200 with `content-length: total`, then the body one byte at a time at this rate.
    SlowBody {
        /// Body bytes per second (0 counts as 1).
        bytes_per_sec: u32,
        /// Body length in bytes.
        total: usize,
    },
    /// Send a 200 with a body of this many bytes, as fast as the client reads.
    HugeBody(usize),
    /// Answer `302 Found` with this `Location`.
    Redirect(String),
}

impl Default for Behavior {
    /// `Status(200)`, with body `{"ok":true}`.
    fn default() -> Self {
        Behavior::Status(200)
    }
}

/// One request the receiver read completely.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method, as sent (`POST`).
    pub method: String,
    /// The request target, as sent, query included (`/hook?x=1`).
    pub path: String,
    /// Headers in arrival order; names lowercased, values trimmed.
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
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    recorded_changed: Condvar,
    shutdown: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    default: Behavior,
    script: VecDeque<Behavior>,
    by_path: HashMap<String, Behavior>,
    scripts_by_path: HashMap<String, VecDeque<Behavior>>,
    recorded: Vec<Recorded>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the receiver");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            recorded_changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("receiver-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn the receiver's accept thread");
        Receiver { addr, shared, accept: Some(accept) }
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the receiver listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        self.url_for("/hook")
    }

    /// `http://127.0.0.1:PORT` followed by `path` (a leading `/` is added when missing).
    pub fn url_for(&self, path: &str) -> String {
        let slash = if path.starts_with('/') { "" } else { "/" };
        format!("http://{}{slash}{path}", self.addr)
    }

    /// Sets the behavior for every request that no path setting or script claims.
    pub fn set_behavior(&self, behavior: Behavior) {
        lock(&self.shared.state).default = behavior;
    }

    /// Sets the behavior for requests to `path` (query ignored), overriding the default and
    /// the global script for that path.
    pub fn set_behavior_for(&self, path: &str, behavior: Behavior) {
        lock(&self.shared.state).by_path.insert(route_of(path).to_owned(), behavior);
    }

    /// Appends one-shot steps, consumed one per request (not claimed by a path setting), before
    /// falling back to the default behavior.
    pub fn push_script(&self, steps: Vec<Behavior>) {
        lock(&self.shared.state).script.extend(steps);
    }

    /// Appends one-shot steps for requests to `path` (query ignored); they come before
    /// everything else for that path.
    pub fn push_script_for(&self, path: &str, steps: Vec<Behavior>) {
        lock(&self.shared.state).scripts_by_path.entry(route_of(path).to_owned()).or_default().extend(steps);
    }

    /// Every recorded request, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.state).recorded.clone()
    }

    /// The recorded requests whose path (query ignored) is `path`, oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let route = route_of(path);
        lock(&self.shared.state).recorded.iter().filter(|r| route_of(&r.path) == route).cloned().collect()
    }

    /// How many requests were recorded.
    pub fn count(&self) -> usize {
        lock(&self.shared.state).recorded.len()
    }

    /// Waits until at least `n` requests are recorded; `false` if `timeout` passed first.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let state = lock(&self.shared.state);
        let (state, _) = self
            .shared
            .recorded_changed
            .wait_timeout_while(state, timeout, |s| s.recorded.len() < n)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.recorded.len() >= n
    }

    /// Forgets the recorded requests (behaviors and scripts stay).
    pub fn clear(&self) {
        lock(&self.shared.state).recorded.clear();
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Unblock `accept` by connecting to ourselves; only join if that worked.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for connection in connections {
            let _ = connection.join();
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Sleeps `d` in slices; `false` if the receiver shut down meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            thread::sleep((end - now).min(POLL));
        }
    }

    fn next_behavior(&self, target: &str) -> Behavior {
        let route = route_of(target);
        let mut state = lock(&self.state);
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

    fn record(&self, request: &Request, behavior: Behavior) {
        let recorded = Recorded {
            method: request.method.clone(),
            path: request.target.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            at: Instant::now(),
            behavior,
        };
        lock(&self.state).recorded.push(recorded);
        self.recorded_changed.notify_all();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping() {
            break;
        }
        let Ok(stream) = stream else { continue };
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("receiver-conn".to_owned())
            .spawn(move || serve_connection(stream, conn_shared));
        if let Ok(handle) = spawned {
            let mut connections = lock(&shared.connections);
            connections.retain(|h| !h.is_finished());
            connections.push(handle);
        }
    }
}

/// What happens to the connection after one exchange.
enum After {
    KeepAlive,
    Close,
    Reset,
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A connection with its read buffer (bytes received but not consumed yet).
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    shared: Arc<Shared>,
}

fn bad(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-request")
}

fn stopped() -> io::Error {
    io::Error::other("receiver shut down")
}

impl Conn {
    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if self.shared.stopping() {
                return Err(stopped());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One line without its `\r\n` (or bare `\n`); `Ok(None)` at a clean end of stream.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            scanned = self.buf.len();
            if scanned > MAX_HEADER_BYTES {
                return Err(bad("header line too long"));
            }
            if !self.fill()? {
                return if self.buf.is_empty() { Ok(None) } else { Err(eof()) };
            }
        }
    }

    fn read_exact_bytes(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<()> {
        while self.buf.len() < n {
            if !self.fill()? {
                return Err(eof());
            }
        }
        out.extend(self.buf.drain(..n));
        Ok(())
    }

    /// Reads one whole request; `Ok(None)` when the client closed between requests.
    fn read_request(&mut self) -> io::Result<Option<Request>> {
        // Tolerate empty lines before the request line (RFC 9112 section 2.2).
        let line = loop {
            match self.read_line()? {
                None => return Ok(None),
                Some(l) if l.is_empty() => continue,
                Some(l) => break l,
            }
        };
        let line = String::from_utf8(line).map_err(|_| bad("request line is not UTF-8"))?;
        let mut parts = line.split_whitespace();
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("malformed request line"));
        };
        if !version.starts_with("HTTP/1.") {
            return Err(bad("unsupported HTTP version"));
        }
        let mut headers = Vec::new();
        let mut header_bytes = 0;
        loop {
            let line = self.read_line()?.ok_or_else(eof)?;
            if line.is_empty() {
                break;
            }
            header_bytes += line.len();
            if header_bytes > MAX_HEADER_BYTES {
                return Err(bad("header block too large"));
            }
            let line = String::from_utf8_lossy(&line);
            let (name, value) = line.split_once(':').ok_or_else(|| bad("header without colon"))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut request = Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: Vec::new(),
            keep_alive: false,
        };
        let connection = request.header("connection").unwrap_or("").to_ascii_lowercase();
        let has_token = |t: &str| connection.split(',').any(|c| c.trim() == t);
        request.keep_alive = if version == "HTTP/1.0" { has_token("keep-alive") } else { !has_token("close") };
        let chunked = request.header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        let length = match request.header("content-length") {
            Some(v) => Some(v.parse::<usize>().map_err(|_| bad("bad content-length"))?),
            None => None,
        };
        if length.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(bad("body too large"));
        }
        let expects_continue = request.header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        if expects_continue && (chunked || length.is_some_and(|n| n > 0)) {
            self.write_checked(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = Vec::new();
        if chunked {
            self.read_chunked(&mut body)?;
        } else if let Some(n) = length {
            self.read_exact_bytes(n, &mut body)?;
        }
        request.body = body;
        Ok(Some(request))
    }

    fn read_chunked(&mut self, body: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let line = self.read_line()?.ok_or_else(eof)?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailer section, up to the empty line.
                while !self.read_line()?.ok_or_else(eof)?.is_empty() {}
                return Ok(());
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(bad("body too large"));
            }
            self.read_exact_bytes(size, body)?;
            if !self.read_line()?.ok_or_else(eof)?.is_empty() {
                return Err(bad("chunk not followed by CRLF"));
            }
        }
    }

    /// Writes everything, looking at the shutdown flag while the client does not read.
    fn write_checked(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.shared.stopping() {
                return Err(stopped());
            }
            match self.stream.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_head(
        &mut self,
        status: u16,
        headers: &[(&str, String)],
        extra: &[(String, String)],
        keep_alive: bool,
    ) -> io::Result<()> {
        use std::fmt::Write as _;
        let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        let all = headers.iter().map(|(n, v)| (*n, v.as_str()));
        for (name, value) in all.chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        if !keep_alive {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        self.write_checked(head.as_bytes())
    }

    /// A complete response with a body (dropped for HEAD, 1xx, 204 and 304).
    fn respond(
        &mut self,
        request: &Request,
        status: u16,
        content_type: &str,
        extra: &[(String, String)],
        body: &[u8],
    ) -> io::Result<()> {
        let bodiless = matches!(status, 100..=199 | 204 | 304);
        let mut headers = Vec::new();
        if !bodiless {
            headers.push(("content-type", content_type.to_owned()));
            headers.push(("content-length", body.len().to_string()));
        }
        self.write_head(status, &headers, extra, request.keep_alive)?;
        if !bodiless && request.method != "HEAD" {
            self.write_checked(body)?;
        }
        Ok(())
    }

    fn respond_status(&mut self, request: &Request, status: u16, extra: &[(String, String)]) -> io::Result<()> {
        let body: &[u8] = if (200..300).contains(&status) { b"{\"ok\":true}" } else { b"{\"ok\":false}" };
        self.respond(request, status, "application/json", extra, body)
    }

    /// Streams a 200 body of `total` bytes, `pause` between writes of `step` bytes.
    fn stream_body(&mut self, request: &Request, total: usize, step: usize, pause: Duration) -> io::Result<()> {
        let headers = [("content-type", "application/octet-stream".to_owned()), ("content-length", total.to_string())];
        self.write_head(200, &headers, &[], request.keep_alive)?;
        if request.method == "HEAD" {
            return Ok(());
        }
        let block = vec![b'x'; step.min(total).max(1)];
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            self.write_checked(&block[..n])?;
            left -= n;
            if left > 0 && !pause.is_zero() && !self.shared.sleep(pause) {
                return Err(stopped());
            }
        }
        Ok(())
    }

    /// Carries out `behavior` for `request`.
    fn act(&mut self, request: &Request, behavior: &Behavior) -> io::Result<After> {
        let after_answer = if request.keep_alive { After::KeepAlive } else { After::Close };
        match behavior {
            Behavior::Status(status) => self.respond_status(request, *status, &[])?,
            Behavior::StatusWithHeaders(status, extra) => self.respond_status(request, *status, extra)?,
            Behavior::Body(status, body) => {
                self.respond(request, *status, "text/plain; charset=utf-8", &[], body.as_bytes())?
            }
            Behavior::Hang => {
                self.hang();
                return Ok(After::Close);
            }
            Behavior::Delay(wait, status) => {
                if !self.shared.sleep(*wait) {
                    return Ok(After::Close);
                }
                self.respond_status(request, *status, &[])?;
            }
            Behavior::Reset => return Ok(After::Reset),
            Behavior::CloseBeforeHeaders => return Ok(After::Close),
            Behavior::SlowBody { bytes_per_sec, total } => {
                let pause = Duration::from_secs(1) / (*bytes_per_sec).max(1);
                self.stream_body(request, *total, 1, pause)?;
            }
            Behavior::HugeBody(total) => self.stream_body(request, *total, 64 * 1024, Duration::ZERO)?,
            Behavior::Redirect(location) => {
                let extra = [("location".to_owned(), location.clone())];
                self.respond(request, 302, "text/plain; charset=utf-8", &extra, b"")?;
            }
        }
        Ok(after_answer)
    }

    /// Holds the connection without answering until the client closes it or shutdown.
    fn hang(&mut self) {
        self.buf.clear();
        // `fill` returns on end of stream, on errors and on shutdown; data is discarded.
        while let Ok(true) = self.fill() {
            self.buf.clear();
        }
    }
}

fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let configured = stream
        .set_read_timeout(Some(POLL))
        .and_then(|()| stream.set_write_timeout(Some(POLL)))
        .and_then(|()| stream.set_nodelay(true));
    if configured.is_err() {
        return;
    }
    let mut conn = Conn { stream, buf: Vec::new(), shared };
    let after = loop {
        let request = match conn.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => break After::Close,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ =
                    conn.write_checked(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                break After::Close;
            }
            Err(_) => break After::Close,
        };
        let behavior = conn.shared.next_behavior(&request.target);
        // Recorded before answering, so a client that saw the answer also sees the record.
        conn.shared.record(&request, behavior.clone());
        match conn.act(&request, &behavior) {
            Ok(After::KeepAlive) => continue,
            Ok(other) => break other,
            Err(_) => break After::Close,
        }
    };
    match after {
        After::Reset => reset(&conn.stream),
        After::Close | After::KeepAlive => {
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
    }
}

/// Sets `SO_LINGER` to 0 so that closing the socket sends a reset instead of a FIN.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_int, c_void};

    #[repr(C)]
    struct Linger {
        l_onoff: c_int,
        l_linger: c_int,
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const LEVEL_AND_NAME: (c_int, c_int) = (1, 13); // SOL_SOCKET, SO_LINGER
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const LEVEL_AND_NAME: (c_int, c_int) = (0xffff, 0x0080); // SOL_SOCKET, SO_LINGER

    unsafe extern "C" {
        fn setsockopt(socket: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    }
    let linger = Linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor is open for the lifetime of `stream`, and `linger` is a valid
    // `struct linger` whose exact size is passed.
    unsafe {
        setsockopt(
            stream.as_raw_fd(),
            LEVEL_AND_NAME.0,
            LEVEL_AND_NAME.1,
            (&raw const linger).cast(),
            std::mem::size_of::<Linger>() as u32,
        );
    }
}

/// Without a known `SO_LINGER`, a reset degrades to a plain close.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn reset(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal raw HTTP/1.1 client over one connection.
    struct Client {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    #[derive(Debug)]
    struct Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Response {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    impl Client {
        fn connect(receiver: &Receiver) -> Client {
            let stream = TcpStream::connect(receiver.addr()).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            Client { stream, buf: Vec::new() }
        }

        fn send(&mut self, raw: &[u8]) {
            self.stream.write_all(raw).unwrap();
        }

        fn post(&mut self, path: &str, body: &str, extra: &str) {
            let raw = format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\n{extra}\r\n{body}",
                body.len()
            );
            self.send(raw.as_bytes());
        }

        fn fill(&mut self) -> io::Result<usize> {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            self.buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }

        fn response(&mut self) -> io::Result<Response> {
            let head_end = loop {
                if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            };
            let head = String::from_utf8(self.buf.drain(..head_end + 4).collect()).unwrap();
            let mut lines = head.trim_end().split("\r\n");
            let status_line = lines.next().unwrap();
            assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
            let status = status_line[9..12].parse().unwrap();
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            let len: usize = headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            let body = self.buf.drain(..len).collect();
            Ok(Response { status, headers, body })
        }

        /// Reads until end of stream or error; the bytes read and how it ended.
        fn read_to_end(&mut self) -> io::Result<usize> {
            let mut total = 0;
            loop {
                match self.fill()? {
                    0 => return Ok(total),
                    n => total += n,
                }
            }
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn answers_200_and_records_the_request() {
        let receiver = Receiver::start();
        assert!(receiver.url().starts_with("http://127.0.0.1:"));
        assert!(receiver.url().ends_with("/hook"));
        assert_eq!(receiver.url_for("x"), format!("http://127.0.0.1:{}/x", receiver.port()));
        let mut client = Client::connect(&receiver);
        client.post("/hook?a=1", r#"{"n":1}"#, "Webhook-Id: msg_1\r\n");
        let response = client.response().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"{\"ok\":true}");
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(receiver.wait_for(1, SECOND));
        let recorded = receiver.requests();
        assert_eq!(recorded.len(), 1);
        let r = &recorded[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hook?a=1");
        assert_eq!(r.body, br#"{"n":1}"#);
        assert_eq!(r.body_text(), r#"{"n":1}"#);
        assert_eq!(r.header("webhook-id"), Some("msg_1"));
        assert_eq!(r.header("WEBHOOK-ID"), Some("msg_1"));
        assert!(r.headers.iter().any(|(n, _)| n == "content-type"), "names are lowercased");
        assert_eq!(r.header("x-missing"), None);
        assert_eq!(r.behavior, Behavior::Status(200));
        assert_eq!(receiver.requests_to("/hook").len(), 1);
        assert_eq!(receiver.requests_to("/other").len(), 0);
        receiver.clear();
        assert_eq!(receiver.count(), 0);
    }

    #[test]
    fn keeps_the_connection_alive_and_pipelines() {
        let receiver = Receiver::start();
        let mut client = Client::connect(&receiver);
        client.post("/hook", "one", "");
        assert_eq!(client.response().unwrap().status, 200);
        client.post("/hook", "two", "");
        assert_eq!(client.response().unwrap().status, 200);
        // Two requests in one write.
        client.send(b"POST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\naPOST /p HTTP/1.1\r\nContent-Length: 1\r\n\r\nb");
        assert_eq!(client.response().unwrap().status, 200);
        assert_eq!(client.response().unwrap().status, 200);
        assert!(receiver.wait_for(4, SECOND));
        let bodies: Vec<_> = receiver.requests().into_iter().map(|r| r.body).collect();
        assert_eq!(bodies, [b"one".to_vec(), b"two".to_vec(), b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn connection_close_is_honoured() {
        let receiver = Receiver::start();
        let mut client = Client::connect(&receiver);
        client.post("/hook", "x", "Connection: close\r\n");
        let response = client.response().unwrap();
        assert_eq!(response.header("connection"), Some("close"));
        assert_eq!(client.read_to_end().unwrap(), 0, "server closes after the answer");

        let mut old = Client::connect(&receiver);
        old.send(b"GET /hook HTTP/1.0\r\n\r\n");
        assert_eq!(old.response().unwrap().status, 200);
        assert_eq!(old.read_to_end().unwrap(), 0, "HTTP/1.0 closes by default");
    }

    #[test]
    fn script_runs_before_the_default() {
        let receiver = Receiver::start();
        receiver.push_script(vec![Behavior::Status(500), Behavior::Status(500)]);
        let mut client = Client::connect(&receiver);
        let mut statuses = Vec::new();
        for _ in 0..3 {
            client.post("/hook", "{}", "");
            let response = client.response().unwrap();
            if response.status == 500 {
                assert_eq!(response.body, b"{\"ok\":false}");
            }
            statuses.push(response.status);
        }
        assert_eq!(statuses, [500, 500, 200]);
        let behaviors: Vec<_> = receiver.requests().into_iter().map(|r| r.behavior).collect();
        assert_eq!(behaviors, [Behavior::Status(500), Behavior::Status(500), Behavior::Status(200)]);
        receiver.set_behavior(Behavior::Status(503));
        client.post("/hook", "{}", "");
        assert_eq!(client.response().unwrap().status, 503);
    }

    #[test]
    fn per_path_behaviors_and_scripts() {
        let receiver = Receiver::start();
        receiver.set_behavior_for("/a", Behavior::Status(410));
        receiver.push_script_for("/b", vec![Behavior::Status(502)]);
        receiver.push_script(vec![Behavior::Status(201)]);
        let mut client = Client::connect(&receiver);
        let mut status = |path: &str| {
            client.post(path, "", "");
            client.response().unwrap().status
        };
        assert_eq!(status("/a"), 410, "path setting wins over the global script");
        assert_eq!(status("/a?x=1"), 410, "query ignored");
        assert_eq!(status("/b"), 502, "path script first");
        assert_eq!(status("/b"), 201, "then the global script");
        assert_eq!(status("/b"), 200, "then the default");
        assert_eq!(status("/a"), 410);
        assert_eq!(receiver.requests_to("/a").len(), 3);
    }

    #[test]
    fn status_with_headers_reaches_the_client() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::StatusWithHeaders(429, vec![("Retry-After".into(), "7".into())]));
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        let response = client.response().unwrap();
        assert_eq!(response.status, 429);
        assert_eq!(response.header("retry-after"), Some("7"));
    }

    #[test]
    fn body_redirect_and_bodiless_statuses() {
        let receiver = Receiver::start();
        receiver.push_script(vec![
            Behavior::Body(418, "teapot".into()),
            Behavior::Redirect("http://127.0.0.1:1/elsewhere".into()),
            Behavior::Status(204),
        ]);
        let mut client = Client::connect(&receiver);
        client.post("/hook", "", "");
        let r = client.response().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (418, &b"teapot"[..]));
        client.post("/hook", "", "");
        let r = client.response().unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("http://127.0.0.1:1/elsewhere"));
        client.post("/hook", "", "");
        let r = client.response().unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(r.header("content-length"), None);
        // The connection is still in sync after the bodiless answer.
        client.post("/hook", "", "");
        assert_eq!(client.response().unwrap().status, 200);
    }

    #[test]
    fn hang_holds_the_socket_until_drop() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Hang);
        let mut client = Client::connect(&receiver);
        client.stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        client.post("/hook", "{}", "");
        let err = client.response().unwrap_err();
        assert!(matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{err:?}");
        assert!(receiver.wait_for(1, SECOND), "a hung request is still recorded");
        assert_eq!(receiver.requests()[0].behavior, Behavior::Hang);
        client.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        drop(receiver);
        let dropped_in = started.elapsed();
        assert!(dropped_in < SECOND, "drop took {dropped_in:?}");
        assert_eq!(client.read_to_end().unwrap(), 0, "the socket is closed on drop");
    }

    #[test]
    fn delay_answers_late() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Delay(Duration::from_millis(200), 202));
        let mut client = Client::connect(&receiver);
        let started = Instant::now();
        client.post("/hook", "{}", "");
        assert_eq!(client.response().unwrap().status, 202);
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn drop_interrupts_a_long_delay() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Delay(Duration::from_secs(60), 200));
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        assert!(receiver.wait_for(1, SECOND));
        let started = Instant::now();
        drop(receiver);
        assert!(started.elapsed() < SECOND);
        assert!(client.response().is_err());
    }

    #[test]
    fn reset_is_seen_by_the_client() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::Reset);
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        let outcome = client.read_to_end();
        assert!(receiver.wait_for(1, SECOND));
        match &outcome {
            Ok(n) => assert_eq!(*n, 0, "nothing is written before the reset"),
            Err(e) => {
                assert!(matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted), "{e:?}")
            }
        }
        #[cfg(target_os = "linux")]
        assert_eq!(outcome.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn close_before_headers_is_a_clean_eof() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::CloseBeforeHeaders);
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        assert_eq!(client.read_to_end().unwrap(), 0);
        assert_eq!(receiver.count(), 1);
    }

    #[test]
    fn slow_body_trickles() {
        let receiver = Receiver::start();
        receiver.set_behavior(Behavior::SlowBody { bytes_per_sec: 50, total: 10 });
        let mut client = Client::connect(&receiver);
        let started = Instant::now();
        client.post("/hook", "{}", "");
        let response = client.response().unwrap();
        let took = started.elapsed();
        assert_eq!(response.status, 200);
        assert_eq!(response.body.len(), 10);
        assert!(took >= Duration::from_millis(170), "{took:?}");
        // Headers come before the body is complete.
        client.post("/hook", "{}", "");
        while !client.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            client.fill().unwrap();
        }
        let head_at = started.elapsed();
        client.response().unwrap();
        assert!(started.elapsed().saturating_sub(head_at) >= Duration::from_millis(100));
    }

    #[test]
    fn huge_body_is_sent_whole() {
        let receiver = Receiver::start();
        let size = 5 * 1024 * 1024 + 3;
        receiver.set_behavior(Behavior::HugeBody(size));
        let mut client = Client::connect(&receiver);
        client.post("/hook", "{}", "");
        let response = client.response().unwrap();
        assert_eq!(response.header("content-length"), Some(size.to_string().as_str()));
        assert_eq!(response.body.len(), size);
        client.post("/hook", "{}", "");
        // A client that stops reading does not keep the receiver from stopping.
        thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        drop(receiver);
        assert!(started.elapsed() < SECOND);
    }

    #[test]
    fn chunked_request_body_is_decoded() {
        let receiver = Receiver::start();
        let mut client = Client::connect(&receiver);
        client.send(
            b"POST /hook HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
              4\r\nWiki\r\n5;ext=1\r\npedia\r\na\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        assert_eq!(client.response().unwrap().status, 200);
        client.post("/hook", "after", "");
        assert_eq!(client.response().unwrap().status, 200);
        assert!(receiver.wait_for(2, SECOND));
        let last_two: Vec<_> = receiver.requests().into_iter().rev().take(2).collect();
        assert_eq!(last_two[1].body, b"Wikipedia0123456789");
        assert_eq!(last_two[0].body, b"after");
    }

    #[test]
    fn expect_continue_and_bad_requests() {
        let receiver = Receiver::start();
        let mut client = Client::connect(&receiver);
        client.send(b"POST /hook HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
        let interim = client.response().unwrap();
        assert_eq!(interim.status, 100);
        client.send(b"hi");
        assert_eq!(client.response().unwrap().status, 200);
        assert!(receiver.wait_for(1, SECOND));
        assert_eq!(receiver.requests()[0].body, b"hi");

        let mut client = Client::connect(&receiver);
        client.send(b"POST /hook HTTP/1.1\r\nContent-Length: nope\r\n\r\n");
        assert_eq!(client.response().unwrap().status, 400);
        assert_eq!(client.read_to_end().unwrap(), 0);
        assert_eq!(receiver.count(), 1, "bad requests are not recorded");
    }

    #[test]
    fn wait_for_times_out_without_busy_looping() {
        let receiver = Receiver::start();
        let started = Instant::now();
        assert!(!receiver.wait_for(1, Duration::from_millis(150)));
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert!(receiver.wait_for(0, Duration::ZERO));
        let addr = receiver.addr();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET /late HTTP/1.1\r\n\r\n").unwrap();
            let mut buf = [0u8; 256];
            let _ = stream.read(&mut buf);
        });
        assert!(receiver.wait_for(1, Duration::from_secs(5)));
        assert_eq!(receiver.requests()[0].path, "/late");
        sender.join().unwrap();
    }

    #[test]
    fn many_receivers_start_and_stop_quickly() {
        let started = Instant::now();
        for _ in 0..20 {
            let receiver = Receiver::start();
            let mut client = Client::connect(&receiver);
            client.post("/hook", "{}", "");
            assert_eq!(client.response().unwrap().status, 200);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
