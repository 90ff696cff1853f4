//! The demo's summary: per endpoint, what was expected, delivered, retried and verified, with
//! latency percentiles and health, then the health events the engine logged; as a table or as
//! one JSON document.

use std::time::Duration;

use serde_json::{Value, json};
use tidings::{ReadAllOptions, RecordedEvent};

use super::{Demo, DemoEndpoint, Location, Outcome, Receipt};
use crate::error::Result;
use crate::output::{self, Table};

/// Everything the summary shows, read from the store after the run.
pub(super) struct Report {
    table: Table,
    endpoints: Vec<Value>,
    health_events: Vec<RecordedEvent>,
    /// Order rows marked paid in the app's table.
    order_rows: i64,
    elapsed: Duration,
}

impl Report {
    /// Reads the statistics, the app's rows and the health events, and builds the rows.
    pub(super) fn gather(demo: &Demo, outcome: &Outcome, elapsed: Duration) -> Result<Report> {
        let stats = demo.store.stats()?;
        let order_rows = match demo.store.query("SELECT count(*) FROM orders WHERE status = 'paid'", [])?.first() {
            Some(row) => match row.first() {
                Some(tidings::rusqlite::types::Value::Integer(n)) => *n,
                _ => 0,
            },
            None => 0,
        };
        let types = Some(vec!["tidings.*".into()]);
        let health_events = demo.store.read_all(ReadAllOptions { types, ..Default::default() })?;
        let mut table =
            Table::new(["ENDPOINT", "EVENTS", "DELIVERED", "REQUESTS", "RETRIED", "VERIFIED", "P50", "P99", "HEALTH"]);
        let mut endpoints = Vec::new();
        for e in &demo.endpoints {
            let st = stats.endpoints.iter().find(|s| s.endpoint_id == e.id);
            let (p50, p99) = (st.and_then(|s| s.p50), st.and_then(|s| s.p99));
            let unhealthy = demo.store.get_endpoint(&e.id)?.health.unhealthy;
            let row = EndpointRow::of(e, outcome);
            table.row(vec![
                format!("{} ({})", e.name, e.events),
                row.wanted.to_string(),
                row.got.to_string(),
                row.requests.to_string(),
                row.failed_answers.to_string(),
                format!("{}/{}", row.verified, row.requests),
                output::opt_latency(p50),
                output::opt_latency(p99),
                if unhealthy { "unhealthy".to_string() } else { "ok".to_string() },
            ]);
            endpoints.push(json!({
                "endpoint": e.name,
                "endpoint_id": e.id,
                "events": e.events,
                "expected": row.wanted,
                "delivered": row.got,
                "requests": row.requests,
                "answered_with_error": row.failed_answers,
                "verified": row.verified,
                "p50_ms": p50.map(output::millis),
                "p99_ms": p99.map(output::millis),
                "unhealthy": unhealthy,
            }));
        }
        Ok(Report { table, endpoints, health_events, order_rows, elapsed })
    }

    /// The summary as one JSON document.
    pub(super) fn print_json(&self, location: &Location, outcome: &Outcome) {
        output::print_json(&json!({
            "ok": outcome.ok(),
            "store": location.path.display().to_string(),
            "temporary": location.temp.is_some(),
            "elapsed_ms": output::millis(self.elapsed),
            "orders_paid": self.order_rows,
            "events": outcome.appended.len(),
            "expected_deliveries": outcome.expected.len(),
            "delivered": outcome.expected.len() - outcome.missing,
            "rejected_signatures": outcome.rejected,
            "endpoints": self.endpoints,
            "health_events": self.health_events.iter().map(|e| json!({"type": e.event_type, "data": e.data})).collect::<Vec<Value>>(),
            "requests": outcome.receipts.iter().map(|(r, latency)| request_json(r, *latency)).collect::<Vec<_>>(),
        }));
    }

    /// The summary table, the health events and the verdict, for people.
    pub(super) fn print_human(&self, demo: &Demo, location: &Location, outcome: &Outcome, orders: u32) {
        let order_rows = self.order_rows;
        outln!(
            "\nSummary ({} events from {orders} orders; {order_rows} order rows paid in the app table)\n",
            outcome.appended.len()
        );
        out!("{}", self.table.render(2));
        if !self.health_events.is_empty() {
            outln!();
            for event in &self.health_events {
                let endpoint = event.data.get("endpoint_id").and_then(Value::as_str).unwrap_or("");
                let name = demo.endpoints.iter().find(|e| e.id == endpoint).map_or(endpoint, |e| e.name);
                outln!("  health event #{}: {} ({name})", event.position, event.event_type);
            }
        }
        outln!();
        if outcome.ok() {
            outln!(
                "All {} deliveries succeeded and all {} signatures verified, in {}.",
                outcome.expected.len(),
                outcome.receipts.len(),
                output::latency(self.elapsed)
            );
            if location.temp.is_none() {
                let p = location.path.display();
                outln!("The store is kept: try `tidings stats --db {p}` or `tidings deliveries list --db {p}`.");
            }
        }
    }
}

/// One endpoint's counts from the receipts.
struct EndpointRow {
    wanted: usize,
    got: usize,
    requests: usize,
    verified: usize,
    /// Requests answered with something other than 200 (the retried ones).
    failed_answers: usize,
}

impl EndpointRow {
    fn of(e: &DemoEndpoint, outcome: &Outcome) -> EndpointRow {
        let requests: Vec<&Receipt> =
            outcome.receipts.iter().map(|(r, _)| r).filter(|r| r.endpoint == e.name).collect();
        EndpointRow {
            wanted: outcome.expected.iter().filter(|(name, _)| name == e.name).count(),
            got: outcome.delivered.iter().filter(|(name, _)| name == e.name).count(),
            requests: requests.len(),
            verified: requests.iter().filter(|r| r.verified).count(),
            failed_answers: requests.iter().filter(|r| r.status != 200).count(),
        }
    }
}

fn request_json(r: &Receipt, latency: Option<Duration>) -> Value {
    json!({
        "event_id": r.event_id,
        "event_type": r.event_type,
        "position": r.position,
        "endpoint": r.endpoint,
        "attempt": r.attempt,
        "status": r.status,
        "verified": r.verified,
        "latency_ms": latency.map(output::millis),
    })
}
