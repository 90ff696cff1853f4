//! A fault-injecting HTTP server on `127.0.0.1` for the faults that [`crate::receiver`] does
//! not script: a reset in the middle of a response (after the head and part of the body), a
//! response whose head trickles in a byte at a time, and a socket that is accepted and never
//! read nor answered.
//!
//! One server has one [`Fault`] for every request. It counts accepted connections and the
//! requests it read. Dropping it stops every thread within about [`crate::http_lite::POLL`].

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::http_lite::{self, LiteConn, POLL};

/// What the server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Read the request, send `200` with `content-length: 1000` and 100 body bytes, then
    /// reset the connection (RST).
    ResetMidBody,
    /// Read the request, then send a complete `200` response one byte at a time at this rate
    /// (the status line and headers included).
    SlowHead {
        /// Bytes per second (0 counts as 1).
        bytes_per_sec: u32,
    },
    /// Accept the connection and never read from it nor write to it.
    SilentAccept,
}

/// A running fault server; stops when dropped.
pub struct FaultServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    fault: Fault,
    stop: AtomicBool,
    connections: AtomicUsize,
    requests: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl FaultServer {
    /// Binds `127.0.0.1:0` and serves `fault`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine).
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            fault,
            stop: AtomicBool::new(false),
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("fault-accept".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn the accept thread");
        FaultServer { addr, shared, accept: Some(accept) }
    }

    /// `http://127.0.0.1:PORT/fault`.
    pub fn url(&self) -> String {
        format!("http://{}/fault", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests read completely so far (a silent server reads none).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
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
        if let Ok(handle) = thread::Builder::new().name("fault-conn".into()).spawn(move || serve(stream, conn_shared)) {
            let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
            threads.retain(|h| !h.is_finished());
            threads.push(handle);
        }
    }
}

/// Sleeps `d` in slices; `false` if the server is stopping.
fn pause(shared: &Shared, d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        thread::sleep((end - Instant::now()).min(POLL));
    }
    true
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    if shared.fault == Fault::SilentAccept {
        // Hold the socket, unread, until the client gives up or the server stops.
        while pause(&shared, POLL) {}
        drop(stream);
        return;
    }
    let Ok(mut conn) = LiteConn::new(stream) else { return };
    loop {
        match conn.read_request(&shared.stop) {
            Ok(Some(_request)) => {
                shared.requests.fetch_add(1, Ordering::SeqCst);
            }
            _ => return,
        }
        match shared.fault {
            Fault::ResetMidBody => {
                let mut response =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n".to_vec();
                response.extend(std::iter::repeat_n(b'x', 100));
                let _ = conn.stream.write_all(&response);
                let _ = conn.stream.flush();
                // Let the partial response reach the client before the reset.
                pause(&shared, Duration::from_millis(20));
                http_lite::reset(conn.stream);
                return;
            }
            Fault::SlowHead { bytes_per_sec } => {
                let step = Duration::from_secs_f64(1.0 / f64::from(bytes_per_sec.max(1)));
                let response = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                for byte in response {
                    if conn.stream.write_all(&[*byte]).is_err() || !pause(&shared, step) {
                        return;
                    }
                }
            }
            Fault::SilentAccept => return,
        }
    }
}
