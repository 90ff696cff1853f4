//! A tiny HTTPS receiver on `127.0.0.1` for TLS tests, built on `rustls` and `std` threads.
//!
//! It owns one listening socket on an ephemeral loopback port, an accept thread and one thread
//! per connection. Each connection completes a TLS handshake with the certificate and key it
//! was started with, then answers every HTTP/1.1 request (`content-length` bodies; keep-alive
//! unless the client sends `connection: close`) with `200` and `{"ok":true}`. It counts the
//! requests it answered and the TCP connections it accepted; a client that rejects the
//! certificate is accepted as a connection but never counted as a request.
//!
//! Guarantees: it only ever listens on `127.0.0.1`. Dropping the [`TlsReceiver`] stops the
//! accept loop and every connection thread (each one notices the shutdown within about 50 ms)
//! and joins them.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How often blocked reads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest accepted request head.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest accepted request body.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// The answer to every request.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";

/// A running HTTPS receiver on `127.0.0.1`; stops when dropped.
pub struct TlsReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    config: Arc<ServerConfig>,
    shutdown: AtomicBool,
    requests: AtomicUsize,
    connections: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl TlsReceiver {
    /// Binds `127.0.0.1:0` and serves HTTPS with this certificate chain and private key (PEM).
    ///
    /// # Panics
    /// If the PEM is not a certificate chain and a matching private key, or no loopback port
    /// can be bound (a broken test).
    pub fn start(cert_pem: &str, key_pem: &str) -> TlsReceiver {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().expect("certificate PEM");
        assert!(!certs.is_empty(), "the certificate PEM holds no certificate");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("private key PEM");
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("certificate and key match");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address of the receiver");
        let shared = Arc::new(Shared {
            config: Arc::new(config),
            shutdown: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("tls-receiver-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))
            .expect("spawn the receiver's accept thread");
        TlsReceiver { addr, shared, accept: Some(accept) }
    }

    /// The socket address the receiver listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("https://{}/hook", self.addr)
    }

    /// How many requests were answered.
    pub fn count(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// How many TCP connections were accepted (handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for TlsReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReceiver").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        // Unblock `accept` by connecting to ourselves; only join if that worked.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
        let threads = std::mem::take(&mut *self.shared.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new().name("tls-receiver-conn".to_owned()).spawn(move || {
            // A failed handshake or a closed connection just ends the thread.
            let _ = serve(stream, &conn_shared);
        });
        if let Ok(handle) = spawned {
            let mut threads = shared.threads.lock().unwrap_or_else(PoisonError::into_inner);
            threads.retain(|h| !h.is_finished());
            threads.push(handle);
        }
    }
}

/// Serves one connection until the client closes it, an error, or shutdown.
fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_nodelay(true)?;
    let conn = ServerConnection::new(Arc::clone(&shared.config)).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_until_head_end(&mut tls, &mut buf, shared)? else { return Ok(()) };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let mut length = 0usize;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                match name.trim() {
                    "content-length" => {
                        length = value.trim().parse().map_err(|_| io::Error::other("bad content-length"))?;
                    }
                    "connection" => close = value.split(',').any(|t| t.trim() == "close"),
                    _ => {}
                }
            }
        }
        if length > MAX_BODY_BYTES {
            return Err(io::Error::other("body too large"));
        }
        let total = head_end + 4 + length;
        while buf.len() < total {
            if !fill(&mut tls, &mut buf, shared)? {
                return Ok(());
            }
        }
        buf.drain(..total);
        // Counted before answering, so a client that has the answer sees the count.
        shared.requests.fetch_add(1, Ordering::SeqCst);
        tls.write_all(RESPONSE)?;
        tls.flush()?;
        if close {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            return Ok(());
        }
    }
}

/// Reads until `buf` holds a whole request head; its length without the blank line, or `None`
/// when the client closed the connection first.
fn read_until_head_end(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    buf: &mut Vec<u8>,
    shared: &Shared,
) -> io::Result<Option<usize>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(io::Error::other("request head too large"));
        }
        if !fill(tls, buf, shared)? {
            return Ok(None);
        }
    }
}

/// Reads more plaintext into `buf`; `Ok(false)` at end of stream or shutdown.
fn fill(tls: &mut StreamOwned<ServerConnection, TcpStream>, buf: &mut Vec<u8>, shared: &Shared) -> io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if shared.shutdown.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match tls.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
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
