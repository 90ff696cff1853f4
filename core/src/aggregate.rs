//! Aggregates: state folded from one stream's events, loaded from its latest snapshot plus the
//! events after it, and saved by appending the new events at the version it was loaded at (a
//! [`Error::Concurrency`] when another writer saved first: reload and run the command again).
//!
//! The parts every language shares live here: [`Store::load_aggregate`] reads the snapshot and
//! the newer events in one read (so they agree), ignoring a snapshot whose state has another
//! shape; [`SnapshotPolicy`] says when a save also snapshots. Rust gets the [`Aggregate`] trait
//! and the [`Repository`] on top; the bindings build their idioms (a Python base class) on the
//! same two calls.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::consumers::{self, Snapshot};
use crate::error::{Error, Result};
use crate::event::{ExpectedVersion, NewEvent, RecordedEvent};
use crate::log::{self, ReadStreamOptions};
use crate::store::Store;
use crate::subscription::HandlerError;
use crate::transaction::Transaction;

/// What loading an aggregate's stream gives: a usable snapshot (if any) and the events after it.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateHistory {
    /// The latest snapshot, when its state has the shape asked for.
    pub snapshot: Option<Snapshot>,
    /// The events after the snapshot (all of them without one), in version order.
    pub events: Vec<RecordedEvent>,
    /// The stream's version: what a save appends after (0: no stream yet).
    pub version: u64,
}

/// When saving an aggregate also saves a snapshot: each time its version crosses a multiple
/// of `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot every this many events (at least 1).
    pub every: u64,
}

impl SnapshotPolicy {
    /// Whether a save that moved the version from `before` to `after` should snapshot.
    pub fn due(&self, before: u64, after: u64) -> bool {
        self.every > 0 && after / self.every > before / self.every
    }
}

fn history(conn: &rusqlite::Connection, stream: &str, state_version: u32) -> Result<AggregateHistory> {
    let snapshot = consumers::load_snapshot(conn, stream)?.filter(|s| s.schema_version == state_version);
    let from = snapshot.as_ref().map_or(1, |s| s.version + 1);
    let events = log::read_stream(conn, stream, &ReadStreamOptions { from_version: Some(from), ..Default::default() })?;
    let version = log::stream_version(conn, stream)?.unwrap_or(0);
    Ok(AggregateHistory { snapshot, events, version })
}

impl Store {
    /// The snapshot of `stream` (if its state has shape `state_version`) and the events after
    /// it, read together; upcasters apply to the events.
    pub fn load_aggregate(&self, stream: &str, state_version: u32) -> Result<AggregateHistory> {
        let mut history = self.shared().read(|conn| history(conn, stream, state_version))?;
        self.shared().upcasters.apply(&mut history.events)?;
        Ok(history)
    }
}

impl Transaction {
    /// [`Store::load_aggregate`] as this transaction sees the stream.
    pub fn load_aggregate(&self, stream: &str, state_version: u32) -> Result<AggregateHistory> {
        let (conn, shared) = self.parts()?;
        let mut history = history(conn, stream, state_version)?;
        shared.upcasters.apply(&mut history.events)?;
        Ok(history)
    }
}

/// State folded from one stream's events.
pub trait Aggregate: Default + Serialize + DeserializeOwned {
    /// Streams of this aggregate are named `{STREAM_PREFIX}-{id}`.
    const STREAM_PREFIX: &'static str;
    /// The shape of the serialized state: bump it when the state's fields change, and older
    /// snapshots are ignored (the state is folded from the events again).
    const STATE_VERSION: u32 = 1;

    /// Folds one event into the state (events recorded by commands, and stored ones).
    fn apply(&mut self, event_type: &str, data: &serde_json::Value) -> std::result::Result<(), HandlerError>;
}

/// An aggregate loaded at a version, with the events its commands recorded since.
#[derive(Debug)]
pub struct Loaded<A> {
    id: String,
    /// The current state (stored events and recorded ones applied).
    pub state: A,
    version: u64,
    pending: Vec<NewEvent>,
}

impl<A: Aggregate> Loaded<A> {
    /// The aggregate's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The stream version it was loaded (or last saved) at.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The events recorded and not saved yet.
    pub fn pending(&self) -> &[NewEvent] {
        &self.pending
    }

    /// Records an event: applies it to the state now and keeps it for [`Repository::save`].
    /// An event the state refuses is [`Error::InvalidInput`] and is not kept.
    pub fn record(&mut self, event: NewEvent) -> Result<()> {
        self.state.apply(&event.event_type, &event.data).map_err(|e| Error::invalid("event", e.to_string()))?;
        self.pending.push(event);
        Ok(())
    }
}

/// Loads and saves aggregates of type `A` in a store.
#[derive(Debug, Clone)]
pub struct Repository<A> {
    store: Store,
    policy: Option<SnapshotPolicy>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Repository<A> {
    /// A repository without snapshots.
    pub fn new(store: &Store) -> Self {
        Repository { store: store.clone(), policy: None, _aggregate: PhantomData }
    }

    /// Snapshots the state every `every` events (saved with the events that cross a multiple).
    pub fn snapshot_every(mut self, every: u64) -> Result<Self> {
        if every == 0 {
            return Err(Error::invalid("every", "must be at least 1"));
        }
        self.policy = Some(SnapshotPolicy { every });
        Ok(self)
    }

    fn stream(id: &str) -> String {
        format!("{}-{id}", A::STREAM_PREFIX)
    }

    fn fold(id: &str, history: AggregateHistory) -> Result<Loaded<A>> {
        let mut state = match history.snapshot {
            Some(snapshot) => serde_json::from_value(snapshot.state)
                .map_err(|e| Error::Storage(format!("the snapshot of aggregate {id} does not fit its state: {e}")))?,
            None => A::default(),
        };
        for event in &history.events {
            state.apply(&event.event_type, &event.data).map_err(|e| {
                Error::Storage(format!("event {} of aggregate {id} does not apply to its state: {e}", event.version))
            })?;
        }
        Ok(Loaded { id: id.to_owned(), state, version: history.version, pending: Vec::new() })
    }

    /// Aggregate `id`: its snapshot and newer events folded (a new, default state at version 0
    /// when the stream does not exist).
    pub fn get(&self, id: &str) -> Result<Loaded<A>> {
        Self::fold(id, self.store.load_aggregate(&Self::stream(id), A::STATE_VERSION)?)
    }

    /// [`Repository::get`] inside a transaction.
    pub fn get_in(&self, tx: &Transaction, id: &str) -> Result<Loaded<A>> {
        Self::fold(id, tx.load_aggregate(&Self::stream(id), A::STATE_VERSION)?)
    }

    /// Appends the recorded events at the version the aggregate was loaded at, in `tx` (so the
    /// application's rows commit with them), and snapshots when the policy says so.
    /// [`Error::Concurrency`] when another writer saved first: nothing was written.
    pub fn save(&self, tx: &mut Transaction, loaded: &mut Loaded<A>) -> Result<Vec<RecordedEvent>> {
        if loaded.pending.is_empty() {
            return Ok(Vec::new());
        }
        let stream = Self::stream(&loaded.id);
        let expected =
            if loaded.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(loaded.version) };
        let written = tx.append(&stream, &loaded.pending, expected)?;
        let after = written.last().map_or(loaded.version, |e| e.version);
        if self.policy.is_some_and(|p| p.due(loaded.version, after)) {
            let state = serde_json::to_value(&loaded.state)?;
            tx.save_snapshot_versioned(&stream, after, &state, A::STATE_VERSION)?;
        }
        loaded.version = after;
        loaded.pending.clear();
        Ok(written)
    }

    /// Loads aggregate `id`, runs `command` on it and saves what it recorded, in one
    /// transaction; on [`Error::Concurrency`] (another writer saved first) runs it again on the
    /// fresh state, up to `attempts` times. Returns the command's value.
    pub fn update<T>(
        &self,
        id: &str,
        attempts: u32,
        mut command: impl FnMut(&mut Loaded<A>) -> Result<T>,
    ) -> Result<T> {
        let mut tries = 0;
        loop {
            tries += 1;
            let outcome = self.store.transaction(|tx| {
                let mut loaded = self.get_in(tx, id)?;
                let value = command(&mut loaded)?;
                self.save(tx, &mut loaded)?;
                Ok(value)
            });
            match outcome {
                Err(Error::Concurrency { .. }) if tries < attempts.max(1) => continue,
                other => return other,
            }
        }
    }
}
