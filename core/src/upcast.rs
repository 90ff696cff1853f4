//! Upcasting: stored events are never rewritten; functions registered per (event type, schema
//! version) turn an old event's `data` into the current shape as it is read.
//!
//! An event's schema version is the integer `schema_version` in its metadata (1 when absent;
//! [`crate::NewEvent::with_schema_version`] sets it). The upcaster registered for
//! (`type`, `v`) takes data of version `v` and returns data of version `v + 1`; reads apply
//! them in a chain until no upcaster is registered for the event's version, and record the
//! version reached in the returned event's metadata.
//!
//! Upcasters apply on every read path of the store: `read_stream` (store and transaction),
//! `read_all`, `event`, subscriptions. Webhook deliveries send events as stored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::event::RecordedEvent;

pub use crate::event::SCHEMA_VERSION_KEY;

/// An upcaster: data of one schema version in, data of the next out.
pub type Upcaster =
    Arc<dyn Fn(Value) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// The registered upcasters of a store.
#[derive(Default)]
pub(crate) struct Upcasters {
    by_type: RwLock<HashMap<String, BTreeMap<u32, Upcaster>>>,
}

/// The schema version an event's metadata gives (1 when absent or not a positive integer).
pub fn schema_version_of(metadata: &Value) -> u32 {
    metadata
        .get(SCHEMA_VERSION_KEY)
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v >= 1)
        .unwrap_or(1)
}

impl Upcasters {
    /// Registers `upcaster` for events of `event_type` at schema version `from_version`.
    pub(crate) fn register(&self, event_type: &str, from_version: u32, upcaster: Upcaster) -> Result<()> {
        crate::pattern::validate_event_type(event_type)?;
        crate::event::validate_schema_version("from_version", u64::from(from_version))?;
        let mut by_type = self.by_type.write().unwrap_or_else(|p| p.into_inner());
        let versions = by_type.entry(event_type.to_owned()).or_default();
        if versions.contains_key(&from_version) {
            return Err(Error::invalid(
                "from_version",
                format!("an upcaster for {event_type} at schema version {from_version} is already registered"),
            ));
        }
        versions.insert(from_version, upcaster);
        Ok(())
    }

    /// Brings each event to its type's current shape.
    pub(crate) fn apply(&self, events: &mut [RecordedEvent]) -> Result<()> {
        let by_type = self.by_type.read().unwrap_or_else(|p| p.into_inner());
        if by_type.is_empty() {
            return Ok(());
        }
        for event in events {
            let Some(versions) = by_type.get(&event.event_type) else { continue };
            let start = schema_version_of(&event.metadata);
            let mut version = start;
            while let Some(upcaster) = versions.get(&version) {
                let data = std::mem::take(&mut event.data);
                event.data = upcaster(data).map_err(|e| {
                    Error::Storage(format!(
                        "upcasting event {} ({}) from schema version {version} failed: {e}",
                        event.id, event.event_type
                    ))
                })?;
                version += 1;
            }
            if version != start
                && let Value::Object(metadata) = &mut event.metadata
            {
                metadata.insert(SCHEMA_VERSION_KEY.to_owned(), Value::from(version));
            }
        }
        Ok(())
    }
}
