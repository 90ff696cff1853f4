//! # tidings
//!
//! An embedded, SQLite-backed event log with a transactional outbox and a webhook delivery
//! engine. The application's own rows and its events are written in **one SQLite
//! transaction**: each event goes to an append-only log (streams, versions, global positions)
//! and, for every matching webhook endpoint, to an outbox row. Nothing is sent that was not
//! committed; nothing committed is lost.
//!
//! ```
//! # fn main() -> tidings::Result<()> {
//! use serde_json::json;
//! use tidings::{EndpointSpec, ExpectedVersion, NewEvent, Store};
//!
//! let dir = tempfile::tempdir().map_err(|e| tidings::Error::Storage(e.to_string()))?;
//! let store = Store::open(dir.path().join("app.db"), Default::default())?;
//! store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)", [])?;
//!
//! // A webhook endpoint for every order event (a secret is generated).
//! let endpoint = store.create_endpoint(&EndpointSpec {
//!     events: vec!["order.*".into()],
//!     ..EndpointSpec::new("https://example.com/hooks/orders")
//! })?;
//!
//! // The app row, the event and its outbox row commit together, or not at all.
//! store.transaction(|tx| {
//!     tx.execute("INSERT INTO orders (id, total) VALUES (?1, ?2)", (42, 9.99))?;
//!     tx.append("order-42", &[NewEvent::new("order.created", json!({"total": 9.99}))],
//!               ExpectedVersion::NoStream)?;
//!     Ok::<_, tidings::Error>(())
//! })?;
//!
//! let queued = store.deliveries(&tidings::DeliveryFilter {
//!     endpoint_id: Some(endpoint.id.clone()),
//!     ..Default::default()
//! })?;
//! assert_eq!(queued.len(), 1);
//! assert_eq!(queued[0].state, tidings::DeliveryState::Pending);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod aggregate;
#[cfg(feature = "tokio")]
mod asynchronous;
mod clock;
mod consumers;
mod db;
pub mod defaults;
mod delivery;
pub mod egress;
mod endpoint;
mod error;
mod event;
mod expected_version;
pub mod jetstream;
mod log;
mod migrations;
mod options;
mod outbox;
pub mod pattern;
mod rates;
mod retention;
pub mod retry;
mod schema;
mod shared;
pub mod signing;
mod sql_guard;
mod store;
mod subscription;
pub mod template;
mod transaction;
pub mod upcast;

pub use rusqlite;

pub use aggregate::{Aggregate, AggregateHistory, Loaded, Repository, SnapshotPolicy};
pub use consumers::Snapshot;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub use delivery::bench_support;
pub use delivery::{
    Attempt, CLAIM_AHEAD, DEFAULT_MAX_WORKERS, DeliveryEngine, DeliveryOptions, EndpointStats, MIN_CLAIM_AHEAD,
    Response, Stats,
};
pub use endpoint::{Auth, CircuitState, Endpoint, EndpointHealth, EndpointSpec, EndpointUpdate, redacted_url};
pub use error::{Error, Result, SignatureFailure, non_negative};
pub use event::{ExpectedVersion, MAX_JSON_DEPTH, NewEvent, RecordedEvent, validate_schema_version};
pub use log::{ReadAllOptions, ReadStreamOptions};
pub use options::{Durability, StoreOptions};
pub use outbox::{DeliveryFilter, DeliveryRecord, DeliveryState};
pub use rates::{RateMode, RateStats, TenantRate};
pub use retention::RetentionRule;
pub use retry::RetryPolicy;
pub use schema::{SCHEMA_VERSION, schema_version};
pub use signing::{Secret, Verified, verify};
pub use store::Store;
pub use subscription::{HandlerError, OnFailure, ParkedEvent, Subscription, SubscriptionOptions, SubscriptionStatus};
pub use transaction::{QueryResult, Transaction, TransactionThreads};

/// The delivery engine's handle under its old name.
#[deprecated(note = "renamed DeliveryEngine")]
pub type Delivery = DeliveryEngine;

/// The README's code blocks, compiled (and run unless marked `no_run`) as doctests so the
/// README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
