//! What a handler may do to its connection beyond answering: end it without an answer
//! (cleanly, or with a TCP reset), or slow every later write down to one byte at a time.
//!
//! [`Control`] is shared by the connection's task and the handler of each of its requests;
//! [`FaultIo`] is the socket under `hyper` that carries the control out: it passes reads and
//! writes through, trickles writes when asked, and sets `SO_LINGER` to 0 before it closes when
//! a reset was asked, so the peer sees `RST` rather than `FIN`. Neither touches HTTP framing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Sleep;

/// The handle a handler has on its connection.
#[derive(Debug, Default)]
pub(crate) struct Control {
    ended: Notify,
    reset: AtomicBool,
    /// The pause after each written byte, in nanoseconds (0: writes are not trickled).
    trickle_nanos: AtomicU64,
}

impl Control {
    /// Ends the connection now, without writing anything more: its task drops the socket.
    pub(crate) fn close(&self) {
        self.ended.notify_one();
    }

    /// Ends the connection with a TCP reset.
    pub(crate) fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.close();
    }

    /// From now on, writes one byte at a time with `pause` after each.
    pub(crate) fn trickle(&self, pause: Duration) {
        let nanos = u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.trickle_nanos.store(nanos, Ordering::SeqCst);
    }

    /// Completes when [`Control::close`] or [`Control::reset`] was called.
    pub(crate) async fn ended(&self) {
        self.ended.notified().await;
    }

    fn pause(&self) -> Option<Duration> {
        match self.trickle_nanos.load(Ordering::SeqCst) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// An accepted socket that obeys its connection's [`Control`].
pub(crate) struct FaultIo {
    stream: TcpStream,
    control: std::sync::Arc<Control>,
    /// The pause running after the last trickled byte.
    pause: Option<Pin<Box<Sleep>>>,
}

impl FaultIo {
    pub(crate) fn new(stream: TcpStream, control: std::sync::Arc<Control>) -> FaultIo {
        FaultIo { stream, control, pause: None }
    }

    /// Writes at most one byte once the previous byte's pause is over.
    fn poll_trickle(&mut self, cx: &mut Context<'_>, buf: &[u8], pause: Duration) -> Poll<io::Result<usize>> {
        if let Some(sleep) = self.pause.as_mut() {
            ready!(sleep.as_mut().poll(cx));
            self.pause = None;
        }
        let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &buf[..buf.len().min(1)]))?;
        self.pause = Some(Box::pin(tokio::time::sleep(pause)));
        Poll::Ready(Ok(n))
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.control.pause() {
            Some(pause) => this.poll_trickle(cx, buf, pause),
            None => Pin::new(&mut this.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.control.pause() {
            Some(pause) => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &**b);
                this.poll_trickle(cx, first, pause)
            }
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.control.reset.load(Ordering::SeqCst) {
            // Closing with a zero linger sends RST; it does not block (nothing is flushed).
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}
