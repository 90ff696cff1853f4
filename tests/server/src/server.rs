//! The engine under every server of this crate: a listening socket on `127.0.0.1`, an accept
//! loop on a single-threaded `tokio` runtime of its own thread, and `hyper`'s HTTP/1.1
//! connection (optionally behind TLS) for each accepted socket, answering with a [`Handler`].
//!
//! Contract: [`Server::start`] returns once the socket listens, so a client may connect at
//! once. Dropping the [`Server`] ends the accept loop, drops the runtime on its own thread
//! (which drops every connection task, pending answers included, and closes their sockets)
//! and joins that thread: nothing outlives it. A handler's [`Control`] may end its connection
//! early (see [`crate::conn`]); a silent server never reads nor writes what it accepts.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::conn::{Control, FaultIo};

/// The body of every answer.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Decides the answer to each request; one implementation per kind of server.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers `request`, which arrived on the connection `control` steers.
    fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        control: Arc<Control>,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// How accepted sockets are served.
#[derive(Default)]
pub(crate) struct Options {
    /// Serve HTTPS: a TLS handshake first, then HTTP/1.1 inside it.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Hold every accepted socket, never reading nor writing it, until the server stops.
    pub(crate) silent: bool,
}

/// A running server; stops when dropped.
pub(crate) struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `listener` (bound to a loopback address) with `handler`, on a thread named
    /// `name-PORT`.
    pub(crate) fn start<H: Handler>(
        listener: std::net::TcpListener,
        handler: Arc<H>,
        options: Options,
        name: &str,
    ) -> io::Result<Server> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let options = Arc::new(options);
        let thread = std::thread::Builder::new().name(format!("{name}-{}", addr.port())).spawn(move || {
            runtime.block_on(accept_loop(listener, handler, options, accepted, stopped));
            // Every connection task is dropped with the runtime, here, on this thread.
            drop(runtime);
        })?;
        Ok(Server { addr, connections, stop: Some(stop), thread: Some(thread) })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// TCP connections accepted so far (failed TLS handshakes included).
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    options: Arc<Options>,
    accepted: Arc<AtomicUsize>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            next = listener.accept() => match next {
                Ok((stream, _)) => {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(connection(stream, Arc::clone(&handler), Arc::clone(&options)));
                }
                // Out of descriptors, or the like: breathe, then accept again.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

/// Serves one accepted socket until it closes, its handler ends it, or the server stops.
async fn connection<H: Handler>(stream: TcpStream, handler: Arc<H>, options: Arc<Options>) {
    if options.silent {
        let _held = stream;
        return std::future::pending().await;
    }
    let _ = stream.set_nodelay(true);
    let control = Arc::new(Control::default());
    let io = FaultIo::new(stream, Arc::clone(&control));
    match &options.tls {
        None => serve_http(io, handler, control).await,
        Some(acceptor) => {
            // A client that rejects the certificate ends here, before any request.
            if let Ok(tls) = acceptor.accept(io).await {
                serve_http(tls, handler, control).await;
            }
        }
    }
}

/// `hyper`'s HTTP/1.1 on `io` (keep-alive, pipelining, chunked bodies, `100-continue`), until
/// the connection ends or the handler ends it through `control`.
async fn serve_http<I, H>(io: I, handler: Arc<H>, control: Arc<Control>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Handler,
{
    let for_requests = Arc::clone(&control);
    let service = service_fn(move |request| {
        let answer = Arc::clone(&handler).handle(request, Arc::clone(&for_requests));
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let http = http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = http => {}
        () = control.ended() => {}
    }
}
