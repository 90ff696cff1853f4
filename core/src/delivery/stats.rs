//! Delivery statistics ([`crate::Store::stats`]): counts of delivery records by state (every
//! state present, zero included), the success rate over retained records (succeeded /
//! (succeeded + failed)), attempt latency percentiles (nearest rank over the most recent
//! attempts that got a response), store-wide and per endpoint with the endpoint's health.
//! Read-only: it reads `tidings_deliveries`, `tidings_attempts` and the endpoints, and writes
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::Connection;

use crate::endpoint;
use crate::error::Result;
use crate::outbox::DeliveryState;
use crate::store::Store;

/// Delivery statistics for one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointStats {
    /// The endpoint's id.
    pub endpoint_id: String,
    /// Its name.
    pub name: Option<String>,
    /// Deliveries by state (every state present, zero included).
    pub by_state: BTreeMap<String, u64>,
    /// Succeeded / (succeeded + failed), over retained records.
    pub success_rate: Option<f64>,
    /// Median latency of attempts that got a response.
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// Whether it is unhealthy.
    pub unhealthy: bool,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Its circuit breaker.
    pub circuit: crate::CircuitState,
    /// Requests the engine lets be in flight to it now, per process.
    pub concurrency: u32,
}

/// Delivery statistics for the whole store.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Events in the log.
    pub events: u64,
    /// Deliveries by state.
    pub by_state: BTreeMap<String, u64>,
    /// Succeeded / (succeeded + failed).
    pub success_rate: Option<f64>,
    /// Median attempt latency.
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// Per endpoint.
    pub endpoints: Vec<EndpointStats>,
}

/// Most recent attempts whose latency feeds the percentiles.
const LATENCY_SAMPLE: i64 = 100_000;

fn percentile(sorted: &[i64], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(Duration::from_micros(sorted[index].max(0) as u64))
}

fn empty_states() -> BTreeMap<String, u64> {
    DeliveryState::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect()
}

fn success_rate(states: &BTreeMap<String, u64>) -> Option<f64> {
    let ok = states.get("succeeded").copied().unwrap_or(0);
    let failed = states.get("failed").copied().unwrap_or(0);
    (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
}

fn stats(conn: &Connection) -> Result<Stats> {
    let events: u64 = conn.query_row("SELECT count(*) FROM tidings_events", [], |r| r.get(0))?;
    let mut by_state = empty_states();
    let mut per_endpoint: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
    let mut stmt = conn
        .prepare_cached("SELECT endpoint_seq, state, count(*) FROM tidings_deliveries GROUP BY endpoint_seq, state")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, u64>(2)?)))?;
    for row in rows {
        let (seq, state, n) = row?;
        let name = DeliveryState::from_code(state).as_str().to_string();
        *by_state.entry(name.clone()).or_default() += n;
        *per_endpoint.entry(seq).or_insert_with(empty_states).entry(name).or_default() += n;
    }
    let mut latencies: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT d.endpoint_seq, a.duration_us FROM tidings_attempts a JOIN tidings_deliveries d ON d.id = a.delivery_id
             WHERE a.status_code IS NOT NULL ORDER BY a.delivery_id DESC LIMIT ?1",
        )?
        .query_map([LATENCY_SAMPLE], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut all: Vec<i64> = latencies.iter().map(|(_, d)| *d).collect();
    all.sort_unstable();
    latencies.sort_unstable();
    let mut by_endpoint: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for (seq, d) in latencies {
        by_endpoint.entry(seq).or_default().push(d);
    }
    let mut endpoints = Vec::new();
    let mut stmt = conn
        .prepare_cached("SELECT seq, id, name, enabled FROM tidings_endpoints WHERE deleted_at IS NULL ORDER BY seq")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<(i64, String, Option<String>, bool)>>>()?;
    for (seq, endpoint_id, name, enabled) in rows {
        let health = endpoint::state::load_health(conn, seq)?;
        let states = per_endpoint.remove(&seq).unwrap_or_else(empty_states);
        let lat = by_endpoint.remove(&seq).unwrap_or_default();
        endpoints.push(EndpointStats {
            endpoint_id,
            name,
            success_rate: success_rate(&states),
            by_state: states,
            p50: percentile(&lat, 50.0),
            p95: percentile(&lat, 95.0),
            p99: percentile(&lat, 99.0),
            consecutive_failures: health.consecutive_failures,
            unhealthy: health.unhealthy,
            enabled,
            circuit: health.circuit,
            concurrency: health.concurrency,
        });
    }
    Ok(Stats {
        events,
        success_rate: success_rate(&by_state),
        by_state,
        p50: percentile(&all, 50.0),
        p95: percentile(&all, 95.0),
        p99: percentile(&all, 99.0),
        endpoints,
    })
}

impl Store {
    /// Delivery statistics: counts by state, success rate, latency percentiles, per endpoint.
    pub fn stats(&self) -> Result<Stats> {
        self.shared().read(stats)
    }

    /// Counts of deliveries in every state, in lifecycle order ([`DeliveryState::ALL`]), zero
    /// included, for every endpoint or one: what the bindings and the CLI show.
    /// [`Store::delivery_counts`] lists only the states that have deliveries.
    pub fn delivery_counts_every_state(&self, endpoint_id: Option<&str>) -> Result<Vec<(DeliveryState, u64)>> {
        Ok(every_state(&self.delivery_counts(endpoint_id)?))
    }
}

/// `counts` with every state, in lifecycle order, zero for those it lacks.
fn every_state(counts: &[(DeliveryState, u64)]) -> Vec<(DeliveryState, u64)> {
    let count = |state| counts.iter().filter(|(s, _)| *s == state).map(|(_, n)| n).sum();
    DeliveryState::ALL.into_iter().map(|state| (state, count(state))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&[], 50.0), None);
        let mut states = empty_states();
        assert_eq!(success_rate(&states), None);
        states.insert("succeeded".into(), 3);
        states.insert("failed".into(), 1);
        assert_eq!(success_rate(&states), Some(0.75));
    }

    #[test]
    fn counts_name_every_state_in_lifecycle_order() {
        let counts = every_state(&[(DeliveryState::Failed, 2), (DeliveryState::Pending, 3)]);
        assert_eq!(counts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), DeliveryState::ALL);
        let n = |state| counts.iter().find(|(s, _)| *s == state).map(|(_, n)| *n);
        assert_eq!((n(DeliveryState::Pending), n(DeliveryState::Failed)), (Some(3), Some(2)));
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 5);
    }

    #[test]
    fn an_empty_store_counts_zero_in_every_state() -> Result<()> {
        let store = Store::open_in_memory()?;
        let zeros: Vec<_> = DeliveryState::ALL.into_iter().map(|s| (s, 0)).collect();
        assert_eq!(store.delivery_counts_every_state(None)?, zeros);
        assert!(matches!(store.delivery_counts_every_state(Some("nope")), Err(crate::Error::NotFound { .. })));
        Ok(())
    }
}
