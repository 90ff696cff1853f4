//! Defaults of the arguments core takes explicitly but the bindings let a caller leave out
//! (docs/architecture.md, "Defaults, and why").
//!
//! The option types carry their own defaults: [`crate::StoreOptions::default`],
//! [`crate::EndpointSpec::new`] (with [`crate::RetryPolicy::default`]),
//! [`crate::DeliveryOptions::default`], [`crate::DeliveryFilter::default`],
//! [`crate::Durability::default`], [`crate::RateMode::default`]. What is left are plain
//! arguments of single calls; their defaults live here so that the Python and Kotlin/Swift
//! bindings show the same ones, and each binding tests that the defaults its signatures
//! declare are these.

use std::time::Duration;

/// How long requests in flight may finish when an engine stops and the caller names no grace
/// ([`crate::DeliveryEngine::stop`]); also what dropping a running engine uses.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long [`crate::DeliveryEngine::wait_idle`] waits when the caller names no timeout.
pub const WAIT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout of a synchronous [`crate::Store::call`] when the caller names none.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How far a received webhook's timestamp may be from now ([`crate::verify`]) when the caller
/// names no tolerance: five minutes, as Standard Webhooks recommends.
pub const VERIFY_TOLERANCE: Duration = Duration::from_secs(300);

/// Whether [`crate::Store::enable_endpoint`] also delivers the events appended while the
/// endpoint was disabled, when the caller does not say.
pub const CATCH_UP: bool = true;

/// Longest a wait that can be interrupted ([`crate::Store::read_all_while`]) goes without
/// asking whether to go on: short enough that Ctrl-C or a cancelled coroutine ends it
/// within a tenth of a second, long enough to cost nothing measurable.
pub const INTERRUPT_CHECK: Duration = Duration::from_millis(50);
