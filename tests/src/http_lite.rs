//! The few pieces of HTTP/1.1 that the lean test servers ([`crate::faults`], [`crate::counting`])
//! share: reading one request head and its `content-length` body from a keep-alive
//! connection, and aborting a connection with a TCP reset.
//!
//! Only what `ureq` sends is supported (a head, then a body with `content-length`); anything
//! else ends the connection. Reads poll a shutdown flag every [`POLL`], so a server that owns
//! these connections can always stop.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often blocked reads look at the shutdown flag.
pub const POLL: Duration = Duration::from_millis(50);

/// Largest accepted request head.
const MAX_HEAD: usize = 64 * 1024;

/// Largest accepted request body.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One request read from a connection.
#[derive(Debug, Clone)]
pub struct LiteRequest {
    /// The request target (`/hook?x=1`).
    pub target: String,
    /// Header names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl LiteRequest {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The path of the target, without the query.
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or(&self.target)
    }
}

/// A connection with the bytes received but not consumed yet.
pub struct LiteConn {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl LiteConn {
    /// Wraps an accepted socket (sets the polling read timeout).
    pub fn new(stream: TcpStream) -> io::Result<LiteConn> {
        stream.set_read_timeout(Some(POLL))?;
        stream.set_nodelay(true)?;
        Ok(LiteConn { stream, buf: Vec::with_capacity(4096) })
    }

    /// Reads more bytes; `Ok(false)` at end of stream, `Err` when `stop` was raised.
    fn fill(&mut self, stop: &AtomicBool) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if stop.load(Ordering::SeqCst) {
                return Err(io::Error::other("server stopping"));
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

    /// Reads one whole request; `Ok(None)` when the client closed between requests.
    pub fn read_request(&mut self, stop: &AtomicBool) -> io::Result<Option<LiteRequest>> {
        let head_end = loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
            }
            if !self.fill(stop)? {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-head"))
                };
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end + 4).collect();
        let head = String::from_utf8_lossy(&head[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>())
            .transpose()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?
            .unwrap_or(0);
        if length > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        while self.buf.len() < length {
            if !self.fill(stop)? {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed mid-body"));
            }
        }
        let body = self.buf.drain(..length).collect();
        Ok(Some(LiteRequest { target, headers, body }))
    }
}

/// Closes `stream` with `SO_LINGER` 0, so the peer sees a connection reset (RST) rather than
/// a clean end of stream. Elsewhere than Linux: a plain shutdown.
#[cfg(target_os = "linux")]
pub fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_int, c_void};
    #[repr(C)]
    struct Linger {
        l_onoff: c_int,
        l_linger: c_int,
    }
    const SOL_SOCKET: c_int = 1;
    const SO_LINGER: c_int = 13;
    unsafe extern "C" {
        fn setsockopt(socket: c_int, level: c_int, name: c_int, value: *const c_void, len: u32) -> c_int;
    }
    let linger = Linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor stays open for the lifetime of `stream`, and `linger` is a valid
    // `struct linger` whose exact size is passed.
    unsafe {
        setsockopt(
            stream.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<Linger>() as u32,
        );
    }
    drop(stream);
}

/// Closes `stream` (a reset is only available on Linux).
#[cfg(not(target_os = "linux"))]
pub fn reset(stream: TcpStream) {
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
