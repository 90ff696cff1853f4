//! The one HTTP test server of tidings' tests, on `hyper`'s HTTP/1.1 over a `tokio` runtime.
//!
//! Every server here listens on `127.0.0.1` only, runs on its own thread with its own
//! single-threaded `tokio` runtime (so blocking tests use it as they would any socket), and
//! stops when dropped: the accept loop ends, the runtime is dropped on its thread, which drops
//! every connection and closes its socket, and the thread is joined. Requests are parsed and
//! answers written by `hyper`; this crate only decides what to answer.
//!
//! - [`receiver::Receiver`]: records every request and answers by a programmable
//!   [`receiver::Behavior`] (statuses, bodies, delays, hangs, resets, trickles, redirects).
//! - [`counting::CountingReceiver`]: keeps only counts, for load tests and benches.
//! - [`faults::FaultServer`]: the faults below HTTP (a reset mid-body, a trickled head, a
//!   socket never read).
//! - [`tls::TlsReceiver`]: the recording receiver behind TLS (`rustls`).
//! - [`nats::NatsServer`]: not HTTP: a real `nats-server` with JetStream on a free loopback
//!   port, for the JetStream destination and inbox tests, with a small JetStream client.
//!
//! It does not depend on `tidings`, so that core's unit tests use it too; `tidings-tests`
//! re-exports its modules under the same names.

mod conn;
pub mod counting;
pub mod faults;
pub mod nats;
pub mod receiver;
mod respond;
mod server;
pub mod tls;
