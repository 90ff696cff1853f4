//! The demo's webhook receiver: a small HTTP/1.1 server on `127.0.0.1` (std::net only) that
//! verifies the Standard Webhooks signature of every request with [`tidings::verify`].
//!
//! Each route is one endpoint of the demo with its secret and a number of requests to fail
//! (`503`) before it recovers. A request whose signature does not verify is answered `401`.
//! Every request is reported on a channel as a [`Receipt`] the moment it is answered, which is
//! what the demo prints live.
//!
//! It speaks what a real client needs: keep-alive, `content-length` and chunked bodies,
//! `Expect: 100-continue`. [`Receiver::stop`] (or drop) shuts every socket down and joins every
//! thread, so nothing outlives it.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest header block accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest body accepted.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// How far a webhook-timestamp may be from now.
const TOLERANCE: Duration = Duration::from_secs(300);

/// One endpoint served by the receiver.
#[derive(Debug, Clone)]
pub struct Route {
    /// Display name (`billing`).
    pub name: String,
    /// Request path (`/billing`).
    pub path: String,
    /// The secret its signatures must verify with.
    pub secret: String,
    /// How many requests to answer 503 before answering 200.
    pub fail_first: u32,
}

/// One request as the receiver saw and answered it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The route's name.
    pub endpoint: String,
    /// `webhook-id` (the event id).
    pub event_id: String,
    /// The body's `type`.
    pub event_type: String,
    /// The body's `position`.
    pub position: u64,
    /// 1 for the first request of this event to this endpoint, 2 for the next...
    pub attempt: u32,
    /// The status answered.
    pub status: u16,
    /// Whether the signature verified.
    pub verified: bool,
    /// Why it did not, if it did not.
    pub verify_error: Option<String>,
    /// When the request was fully read.
    pub at: Instant,
}

struct State {
    routes: Vec<Route>,
    served: HashMap<String, u32>,
    attempts: HashMap<(String, String), u32>,
}

struct Shared {
    state: Mutex<State>,
    receipts: Mutex<Sender<Receipt>>,
    stopping: AtomicBool,
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running receiver.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds an ephemeral port on 127.0.0.1 and serves `routes`, reporting on `receipts`.
    pub fn start(routes: Vec<Route>, receipts: Sender<Receipt>) -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State { routes, served: HashMap::new(), attempts: HashMap::new() }),
            receipts: Mutex::new(receipts),
            stopping: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("demo-receiver".into())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(Receiver { addr, shared, accept: Some(accept) })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, closes every connection and joins every thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = accept.join();
        let connections = std::mem::take(&mut *lock(&self.shared.connections));
        for (stream, _) in &connections {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, handle) in connections {
            let _ = handle.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let Ok(handle_stream) = stream.try_clone() else { continue };
        let conn_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("demo-receiver-conn".into())
            .spawn(move || serve_connection(handle_stream, &conn_shared));
        if let Ok(handle) = spawned {
            lock(&shared.connections).push((stream, handle));
        }
    }
}

/// One parsed request.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

fn read_line_limited(reader: &mut impl BufRead, budget: &mut usize) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = reader.by_ref().take(*budget as u64 + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "header block too large"));
    }
    *budget -= n;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = MAX_HEADER_BYTES;
        let size_line = read_line_limited(reader, &mut budget)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "chunk size"))?;
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while let Some(line) = read_line_limited(reader, &mut budget)? {
                if line.is_empty() {
                    break;
                }
            }
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut budget = MAX_HEADER_BYTES;
    let request_line = loop {
        match read_line_limited(reader, &mut budget)? {
            None => return Ok(None),
            Some(line) if line.trim().is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split_whitespace();
    let (_method, target, version) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or("/"), parts.next().unwrap_or(""));
    let mut headers = Vec::new();
    loop {
        let line = read_line_limited(reader, &mut budget)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "headers"))?;
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let get = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let connection = get("connection").unwrap_or("").to_ascii_lowercase();
    let close = connection.contains("close") || (version == "HTTP/1.0" && !connection.contains("keep-alive"));
    if get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        reader.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body = if get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        read_chunked(reader)?
    } else {
        let length: usize = get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if length > MAX_BODY_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        body
    };
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    Ok(Some(Request { path, headers, body, close }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let Ok(write_half) = stream.try_clone() else { return };
    let mut writer = write_half;
    let mut reader = BufReader::new(stream);
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            _ => return,
        };
        let status = handle(&request, shared);
        let body = if (200..300).contains(&status) { r#"{"ok":true}"# } else { r#"{"ok":false}"# };
        let response = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{body}",
            reason(status),
            body.len(),
            if request.close { "connection: close\r\n" } else { "" }
        );
        if writer.write_all(response.as_bytes()).and_then(|()| writer.flush()).is_err() || request.close {
            return;
        }
    }
}

/// Verifies, decides the answer, and reports the receipt.
fn handle(request: &Request, shared: &Shared) -> u16 {
    let at = Instant::now();
    let mut state = lock(&shared.state);
    let Some(route) = state.routes.iter().find(|r| r.path == request.path).cloned() else { return 404 };
    let pairs = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let verification = tidings::verify(&request.body, pairs, &[route.secret.as_str()], TOLERANCE);
    let event_id = match &verification {
        Ok(v) => v.id.clone(),
        Err(_) => request.headers.iter().find(|(k, _)| k == "webhook-id").map(|(_, v)| v.clone()).unwrap_or_default(),
    };
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let served = state.served.entry(route.path.clone()).or_insert(0);
    *served += 1;
    let status = match &verification {
        Err(_) => 401,
        Ok(_) if *served <= route.fail_first => 503,
        Ok(_) => 200,
    };
    let attempt = state.attempts.entry((route.path.clone(), event_id.clone())).or_insert(0);
    *attempt += 1;
    let receipt = Receipt {
        endpoint: route.name.clone(),
        event_id,
        event_type: body.get("type").and_then(Value::as_str).unwrap_or("?").to_string(),
        position: body.get("position").and_then(Value::as_u64).unwrap_or(0),
        attempt: *attempt,
        status,
        verified: verification.is_ok(),
        verify_error: verification.err().map(|e| e.to_string()),
        at,
    };
    drop(state);
    let _ = lock(&shared.receipts).send(receipt);
    status
}
