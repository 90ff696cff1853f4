//! The demo's webhook receiver: `hyper`'s HTTP/1.1 server on `127.0.0.1`, on a
//! single-threaded `tokio` runtime of its own thread, that verifies the Standard Webhooks
//! signature of every request with [`tidings::verify`].
//!
//! Each route is one endpoint of the demo with its secret and a number of requests to fail
//! (`503`) before it recovers. A request whose signature does not verify is answered `401`, a
//! path that is no route `404`. Every request to a route is reported on a channel as a
//! [`Receipt`] the moment it is answered, which is what the demo prints live.
//!
//! `hyper` speaks the protocol (keep-alive, `content-length` and chunked bodies,
//! `Expect: 100-continue`). [`Receiver::stop`] (or drop) ends the accept loop, drops the
//! runtime, which closes every connection, and joins the thread, so nothing outlives it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running receiver.
pub struct Receiver {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Binds an ephemeral port on 127.0.0.1 and serves `routes`, reporting on `receipts`.
    pub fn start(routes: Vec<Route>, receipts: Sender<Receipt>) -> io::Result<Receiver> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State { routes, served: HashMap::new(), attempts: HashMap::new() }),
            receipts: Mutex::new(receipts),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new().name("demo-receiver".into()).spawn(move || {
            runtime.block_on(accept_loop(listener, shared, stopped));
            // Every connection is dropped, and its socket closed, with the runtime.
            drop(runtime);
        })?;
        Ok(Receiver { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, closes every connection and joins the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Accepts connections until told to stop; `hyper` serves each one on its own task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            next = listener.accept() => match next {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        let service = service_fn(move |request| answer(request, Arc::clone(&shared)));
        tokio::spawn(async move {
            // A connection that fails just ends; the engine sees it and retries.
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Reads the whole request, decides the status and answers it with a small JSON body.
async fn answer(request: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (head, body) = request.into_parts();
    let status = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(body) => {
            let headers: Vec<(&str, String)> = head
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes()).trim().to_owned()))
                .collect();
            handle(head.uri.path(), &headers, &body.to_bytes(), &shared)
        }
        Err(_) => 400,
    };
    let body = if (200..300).contains(&status) { r#"{"ok":true}"# } else { r#"{"ok":false}"# };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

/// Verifies, decides the answer, and reports the receipt.
fn handle(path: &str, headers: &[(&str, String)], body: &[u8], shared: &Shared) -> u16 {
    let at = Instant::now();
    let mut state = lock(&shared.state);
    let Some(route) = state.routes.iter().find(|r| r.path == path).cloned() else { return 404 };
    let verification =
        tidings::verify(body, headers.iter().map(|(k, v)| (*k, v.as_str())), &[route.secret.as_str()], TOLERANCE);
    let event_id = match &verification {
        Ok(v) => v.id.clone(),
        Err(_) => headers.iter().find(|(k, _)| *k == "webhook-id").map(|(_, v)| v.clone()).unwrap_or_default(),
    };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
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
