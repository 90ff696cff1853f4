//! Connections to NATS servers, shared by the JetStream destination and the inbox of one store.
//!
//! - One tokio runtime per store (two worker threads, named `tidings-nats`), made on first use;
//!   the delivery engine's sending threads and the inbox's thread wait on it with `block_on`.
//! - One client per server URL and credentials, kept while it works (at most
//!   [`MAX_CLIENTS`], least recently used dropped); a failed connect is not kept, so the next
//!   attempt tries again.
//! - **Egress**: the host is resolved here and every address checked against the store's
//!   egress policy before anything is contacted. A `nats://` client connects to the first
//!   allowed address itself, so a later DNS answer cannot move it; a `tls://` client connects
//!   by name (the certificate is checked against it) after every resolved address was allowed.
//!   Servers a server advertises (cluster gossip) are ignored: a client only ever reconnects
//!   to the address it was given.
//! - Credentials: a bearer token is the NATS token; a `.creds` file's text (JWT and NKey seed)
//!   is [`crate::Auth::NatsCredentials`]. Errors never carry them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::delivery::http::{SendError, SendErrorKind};
use crate::egress::EgressPolicy;
use crate::endpoint::Auth;

/// Clients kept at once (one per server URL and credentials).
pub(crate) const MAX_CLIENTS: usize = 64;

/// The longest connect, whatever the endpoint's timeout.
const MAX_CONNECT: Duration = Duration::from_secs(5);

/// A context's own timeout: the longest endpoint timeout (each call is bounded by its own).
const CONTEXT_TIMEOUT: Duration = Duration::from_secs(300);

/// The NATS port when a URL names none.
const DEFAULT_PORT: u16 = 4222;

/// A store's NATS connections and the runtime they run on.
pub(crate) struct Broker {
    runtime: Option<tokio::runtime::Runtime>,
    policy: EgressPolicy,
    clients: Mutex<LruCache<[u8; 32], async_nats::jetstream::Context>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Never block (or panic, inside another runtime) while dropping: the runtime's threads
        // end on their own.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Where a URL's client connects.
struct Target {
    /// What async-nats is given: `nats://<address>` or `tls://<host>:<port>`.
    address: String,
    tls: bool,
}

impl Broker {
    /// A broker whose connections obey `policy`.
    pub(crate) fn new(policy: EgressPolicy) -> std::io::Result<Broker> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tidings-nats")
            .enable_all()
            .build()?;
        let capacity = NonZeroUsize::new(MAX_CLIENTS).unwrap_or(NonZeroUsize::MIN);
        Ok(Broker { runtime: Some(runtime), policy, clients: Mutex::new(LruCache::new(capacity)) })
    }

    /// Runs `future` to its end on this broker's runtime, from a thread outside it.
    pub(crate) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => unreachable!("the runtime is taken only when the broker is dropped"),
        }
    }

    /// Runs `future` on this broker's runtime in the background.
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(future);
        }
    }

    /// The JetStream context of the client for `url` with `auth`, connecting (within
    /// `timeout`, at most 5 s) if none is kept. Its own timeout is the longest an endpoint may
    /// have: callers bound each call by theirs. Must not be called from inside the runtime.
    pub(crate) fn jetstream(
        &self,
        url: &str,
        auth: Option<&Auth>,
        timeout: Duration,
    ) -> Result<async_nats::jetstream::Context, SendError> {
        let key = client_key(url, auth);
        if let Some(context) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(context.clone());
        }
        let target = self.resolve(url)?;
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(timeout.min(MAX_CONNECT))
            .ignore_discovered_servers()
            .name(concat!("tidings/", env!("CARGO_PKG_VERSION")));
        if target.tls {
            options = options.require_tls(true);
        }
        options = match auth {
            Some(Auth::Bearer(token)) => options.token(token.clone()),
            Some(Auth::NatsCredentials(creds)) => options
                .credentials(creds)
                .map_err(|_| SendError::invalid("the NATS credentials are not a valid .creds file"))?,
            Some(_) => return Err(SendError::invalid("this auth kind does not apply to a NATS server")),
            None => options,
        };
        let context = self.block_on(async {
            let client = options.connect(target.address.as_str()).await.map_err(connect_error)?;
            // A context starts a task of its own: made inside the runtime.
            Ok::<_, SendError>(async_nats::jetstream::ContextBuilder::new().timeout(CONTEXT_TIMEOUT).build(client))
        })?;
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).put(key, context.clone());
        Ok(context)
    }

    /// Resolves `url`'s host and checks every address against the egress policy.
    fn resolve(&self, url: &str) -> Result<Target, SendError> {
        let parsed = url::Url::parse(url).map_err(|_| SendError::invalid("not a valid NATS URL"))?;
        let tls = parsed.scheme() == "tls";
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.trim_start_matches('[').trim_end_matches(']').to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(SendError::invalid("the NATS URL has no host")),
        };
        let port = parsed.port().unwrap_or(DEFAULT_PORT);
        let resolved: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| SendError {
                kind: SendErrorKind::Dns,
                message: format!("the host name did not resolve: {e}"),
            })?
            .collect();
        let show = self.policy.shows_addresses();
        let mut allowed = Vec::new();
        for addr in &resolved {
            match self.policy.check(addr.ip()) {
                Ok(()) => allowed.push(*addr),
                // A TLS client connects by name, so every address the name has must be allowed.
                Err(refused) if tls => {
                    return Err(SendError { kind: SendErrorKind::EgressRefused, message: refused.describe(show) });
                }
                Err(_) => {}
            }
        }
        let Some(first) = allowed.first() else {
            return Err(SendError {
                kind: SendErrorKind::EgressRefused,
                message: "the host has no address the egress policy allows".to_string(),
            });
        };
        let address = match (tls, host.contains(':')) {
            (true, true) => format!("tls://[{host}]:{port}"),
            (true, false) => format!("tls://{host}:{port}"),
            (false, _) => format!("nats://{first}"),
        };
        Ok(Target { address, tls })
    }

    /// Forgets the client of `url` with `auth` (after a failure that a new connection may cure).
    pub(crate) fn forget(&self, url: &str, auth: Option<&Auth>) {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).pop(&client_key(url, auth));
    }
}

/// The cache key: a digest, so no credential is kept as a key.
fn client_key(url: &str, auth: Option<&Auth>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(url.as_bytes());
    match auth {
        Some(Auth::Bearer(token)) => {
            hash.update(b"\0bearer\0");
            hash.update(token.as_bytes());
        }
        Some(Auth::NatsCredentials(creds)) => {
            hash.update(b"\0creds\0");
            hash.update(creds.as_bytes());
        }
        Some(Auth::ApiKey { header, value }) => {
            hash.update(b"\0apikey\0");
            hash.update(header.as_bytes());
            hash.update(value.as_bytes());
        }
        None => {}
    }
    hash.finalize().into()
}

fn connect_error(e: async_nats::ConnectError) -> SendError {
    use async_nats::ConnectErrorKind as K;
    let kind = match e.kind() {
        K::TimedOut => SendErrorKind::Timeout,
        K::Tls => SendErrorKind::Tls,
        K::Dns => SendErrorKind::Dns,
        K::ServerParse => SendErrorKind::InvalidRequest,
        _ => SendErrorKind::Connect,
    };
    // The kind's words only: a server's message could echo what the client sent.
    SendError { kind, message: format!("connecting to the NATS server failed: {}", e.kind()) }
}
