//! A fault-injecting HTTP server on `127.0.0.1` for the faults that [`crate::receiver`] does
//! not script, because they happen below HTTP: a reset in the middle of a response (after the
//! head and part of the body), a response whose head trickles in a byte at a time, and a
//! socket that is accepted and never read nor answered. `hyper` still parses every request
//! and frames every answer; the faults are the connection's (`conn.rs`): a reset of the
//! socket, a socket that writes one byte at a time, and a connection never handed to `hyper`.
//!
//! One server has one [`Fault`] for every request. It counts accepted connections and the
//! requests it read. Dropping it closes every connection and joins its thread.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::conn::Control;
use crate::respond::{bad_request, full, read_body, streamed};
use crate::server::{Body, Handler, Options, Server};

/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

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
    server: Server,
    shared: Arc<Shared>,
}

struct Shared {
    fault: Fault,
    requests: AtomicUsize,
}

impl FaultServer {
    /// Binds `127.0.0.1:0` and serves `fault`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test machine).
    pub fn start(fault: Fault) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let shared = Arc::new(Shared { fault, requests: AtomicUsize::new(0) });
        let options = Options { silent: fault == Fault::SilentAccept, ..Options::default() };
        let server = Server::start(listener, Arc::clone(&shared), options, "fault").expect("start the fault server");
        FaultServer { server, shared }
    }

    /// `http://127.0.0.1:PORT/fault`.
    pub fn url(&self) -> String {
        format!("http://{}/fault", self.server.addr())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections()
    }

    /// Requests read completely so far (a silent server reads none).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for FaultServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultServer").field("fault", &self.shared.fault).finish_non_exhaustive()
    }
}

impl Handler for Shared {
    async fn handle(self: Arc<Self>, request: Request<Incoming>, control: Arc<Control>) -> Response<Body> {
        if read_body(request.into_body(), MAX_BODY_BYTES).await.is_none() {
            return bad_request();
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::ResetMidBody => streamed(&[("content-type", "text/plain")], 1000, move |mut feed| async move {
                let _ = feed.send_data(Bytes::from(vec![b'x'; 100])).await;
                // Let the partial response reach the client before the reset.
                tokio::time::sleep(Duration::from_millis(20)).await;
                control.reset();
            }),
            Fault::SlowHead { bytes_per_sec } => {
                control.trickle(Duration::from_secs_f64(1.0 / f64::from(bytes_per_sec.max(1))));
                full(200, &[("content-type", "text/plain")], "ok")
            }
            // Never handed to `hyper` (the server is silent).
            Fault::SilentAccept => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn connect(server: &FaultServer) -> TcpStream {
        let addr = server.url().trim_start_matches("http://").trim_end_matches("/fault").to_owned();
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream
    }

    const REQUEST: &[u8] = b"POST /fault HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";

    #[test]
    fn reset_mid_body_sends_the_head_and_part_of_the_body_then_resets() {
        let server = FaultServer::start(Fault::ResetMidBody);
        let mut stream = connect(&server);
        stream.write_all(REQUEST).unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            match stream.read(&mut chunk) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) => break Some(e.kind()),
            }
        };
        assert_eq!(end, Some(ErrorKind::ConnectionReset), "{}", String::from_utf8_lossy(&got));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.contains("content-length: 1000\r\n"), "{text}");
        assert!(text.ends_with(&"x".repeat(100)), "{text}");
        assert_eq!((server.connections(), server.requests()), (1, 1));
    }

    #[test]
    fn slow_head_trickles_the_status_line() {
        let server = FaultServer::start(Fault::SlowHead { bytes_per_sec: 20 });
        let mut stream = connect(&server);
        stream.write_all(REQUEST).unwrap();
        let started = Instant::now();
        let mut got = Vec::new();
        let mut byte = [0u8; 16];
        while !got.ends_with(b"HTTP/1.1 200") {
            let n = stream.read(&mut byte).unwrap();
            assert!(n <= 1, "{n} bytes in one read");
            got.extend_from_slice(&byte[..n]);
        }
        assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
    }

    #[test]
    fn silent_accept_reads_nothing_and_stops_on_drop() {
        let server = FaultServer::start(Fault::SilentAccept);
        let mut stream = connect(&server);
        stream.write_all(REQUEST).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let err = stream.read(&mut [0u8; 16]).unwrap_err();
        assert!(matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{err:?}");
        assert_eq!((server.connections(), server.requests()), (1, 0));
        let started = Instant::now();
        drop(server);
        assert!(started.elapsed() < Duration::from_secs(1));
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // Closed with unread data in its buffer: a reset rather than an end of stream.
        assert!(matches!(stream.read(&mut [0u8; 16]), Ok(0) | Err(_)));
    }
}
