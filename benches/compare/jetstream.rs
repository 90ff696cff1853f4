//! The JetStream rows (issue 15), against a real `nats-server` on loopback (started here, one
//! per run, with its own store directory; `.ci/install-nats` installs the pinned binary):
//!
//! - `jetstream_relay`: tidings relaying a backlog of events (appended 100 per transaction
//!   beforehand) through a JetStream endpoint with 16 sending threads and `max_in_flight` 16,
//!   from the engine's start until every delivery succeeded; against a raw `async-nats` loop
//!   publishing the same bodies with the same headers count and 16 acks outstanding.
//! - `jetstream_latency`: append-to-ack latency, one event committed every 2 ms; the ack time
//!   is when the server stored the message (its own clock, the same machine's).
//! - `jetstream_inbox`: the inbox's events/s consuming a filled stream into a store, against a
//!   raw pull-consumer loop that fetches the same batches and acks each message without storing.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use tidings::jetstream::InboxOptions;
use tidings::{DeliveryOptions, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent, Store, StoreOptions};
use tidings_test_server::nats::NatsServer;

use super::{Config, Row, median, percentile, ratio_row, series};
use crate::append::{event_data, event_metadata};

const SENDERS: usize = 16;

thread_local! {
    /// Each tidings relay run's mean attempt duration, µs (a publish and its ack, from its
    /// start on a sending thread to the ack).
    static ATTEMPT_US: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn store(path: &Path) -> Store {
    let options =
        StoreOptions { egress: tidings::egress::EgressPolicy::allow_all_private(), ..StoreOptions::default() };
    Store::open(path, options).expect("open")
}

fn append_backlog(store: &Store, count: usize) {
    for chunk in (0..count as u64).collect::<Vec<_>>().chunks(100) {
        store
            .transaction(|tx| {
                for i in chunk {
                    let event = NewEvent::new("order.created", event_data(*i)).with_metadata(event_metadata());
                    tx.append(&format!("order-{}", i % 1000), &[event], ExpectedVersion::Any)?;
                }
                Ok::<_, tidings::Error>(())
            })
            .expect("append");
    }
}

fn endpoint(nats: &NatsServer) -> EndpointSpec {
    EndpointSpec { max_in_flight: SENDERS as u32, ..EndpointSpec::new(nats.url()) }
}

/// tidings: events/s from the engine's start until all `count` deliveries succeeded.
fn relay_tidings(dir: &Path, nats: &NatsServer, count: usize) -> f64 {
    let store = store(&dir.join("relay.db"));
    store.create_endpoint(&endpoint(nats)).expect("endpoint");
    append_backlog(&store, count);
    let started = Instant::now();
    let engine = store.start_delivery(DeliveryOptions { workers: SENDERS, ..Default::default() }).expect("engine");
    assert!(engine.drain(Duration::from_secs(600)), "the relay did not drain");
    let rate = count as f64 / started.elapsed().as_secs_f64();
    // What one publish took inside tidings (its attempt's duration), for the notes.
    let mean: f64 = match store.query("SELECT avg(duration_us) FROM tidings_attempts", []).expect("attempts").first() {
        Some(row) => match row.first() {
            Some(tidings::rusqlite::types::Value::Real(us)) => *us,
            _ => f64::NAN,
        },
        None => f64::NAN,
    };
    ATTEMPT_US.with(|cell| cell.borrow_mut().push(mean));
    let succeeded: HashMap<_, _> = store.delivery_counts(None).expect("counts").into_iter().collect();
    assert_eq!(succeeded.get(&DeliveryState::Succeeded), Some(&(count as u64)));
    rate
}

/// The bodies and subjects tidings would publish: the default envelope of the same events.
fn bodies(count: usize) -> Vec<(String, String, Vec<u8>)> {
    (0..count as u64)
        .map(|i| {
            let id = uuid::Uuid::now_v7().to_string();
            let body = serde_json::json!({
                "id": id, "type": "order.created", "timestamp": "2026-12-07T00:00:00.000Z", "source": "tidings",
                "stream": format!("order-{}", i % 1000), "version": i / 1000 + 1, "position": i + 1, "tenant": null,
                "data": event_data(i), "metadata": event_metadata(),
            });
            (id, "tidings.order.created".to_string(), serde_json::to_vec(&body).expect("json"))
        })
        .collect()
}

/// A raw async-nats loop: `SENDERS` tasks, each publishing and awaiting its ack, with the
/// message id and the ten headers tidings sends; events/s.
fn relay_raw(nats: &NatsServer, count: usize) -> f64 {
    let messages = bodies(count);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let context = async_nats::jetstream::new(client);
        let queue = std::sync::Arc::new(std::sync::Mutex::new(messages));
        let started = Instant::now();
        let tasks: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (context, queue) = (context.clone(), queue.clone());
                tokio::spawn(async move {
                    loop {
                        let Some((id, subject, body)) = queue.lock().expect("queue").pop() else { break };
                        let mut headers = async_nats::HeaderMap::new();
                        for name in ["Tidings-Stream", "Tidings-Version", "Tidings-Position", "Tidings-Type"] {
                            headers.insert(name, "x");
                        }
                        for name in ["Tidings-Source", "webhook-id", "webhook-timestamp", "webhook-signature"] {
                            headers.insert(name, "y");
                        }
                        let message = async_nats::jetstream::message::PublishMessage::build()
                            .payload(body.into())
                            .headers(headers)
                            .message_id(&id);
                        let ack = context.send_publish(subject, message).await.expect("publish");
                        ack.await.expect("ack");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        count as f64 / started.elapsed().as_secs_f64()
    })
}

/// Append-to-ack latencies (ms, sorted): one event committed every 2 ms for `seconds`.
fn latency(dir: &Path, nats: &NatsServer, seconds: u64) -> Vec<f64> {
    let store = store(&dir.join("latency.db"));
    store.create_endpoint(&endpoint(nats)).expect("endpoint");
    let engine = store.start_delivery(DeliveryOptions::default()).expect("engine");
    let mut committed: HashMap<String, i128> = HashMap::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut i = 0u64;
    while Instant::now() < end {
        let event = NewEvent::new("order.created", event_data(i)).with_metadata(event_metadata());
        let recorded = store.append(&format!("order-{}", i % 1000), vec![event], ExpectedVersion::Any).expect("append");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as i128;
        committed.insert(recorded[0].id.clone(), now);
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(engine.drain(Duration::from_secs(60)), "drain");
    let mut out: Vec<f64> = nats
        .messages("EVENTS")
        .iter()
        .filter_map(|m| {
            let sent = committed.get(m.header("Nats-Msg-Id")?)?;
            Some((m.stored_at_nanos - sent) as f64 / 1e6)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// tidings' inbox: events/s consuming the `count` messages of stream `EVENTS` into a store.
fn inbox_tidings(dir: &Path, nats: &NatsServer, count: usize, consumer: &str) -> f64 {
    let store = store(&dir.join(format!("inbox-{consumer}.db")));
    let started = Instant::now();
    let inbox = store.relay_in(InboxOptions::new(nats.url(), "EVENTS", consumer), |_, _| Ok(())).expect("inbox");
    while inbox.status().appended < count as u64 {
        assert!(started.elapsed() < Duration::from_secs(600), "the inbox is stuck: {:?}", inbox.status());
        std::thread::sleep(Duration::from_millis(1));
    }
    count as f64 / started.elapsed().as_secs_f64()
}

/// A raw pull-consumer loop: batches of 100, each message acked, the last one confirmed (as
/// the inbox does); nothing stored. Events/s.
fn inbox_raw(nats: &NatsServer, count: usize, consumer: &str) -> f64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    runtime.block_on(async {
        use futures_core::Stream;
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let context = async_nats::jetstream::new(client);
        let stream = context.get_stream("EVENTS").await.expect("stream");
        let config = pull::Config {
            durable_name: Some(consumer.to_string()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        };
        let consumer = stream.get_or_create_consumer(consumer, config).await.expect("consumer");
        let started = Instant::now();
        let mut seen = 0;
        while seen < count {
            let mut batch = consumer.fetch().max_messages(100).messages().await.expect("fetch");
            let mut messages = Vec::new();
            while let Some(m) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut batch).poll_next(cx)).await {
                messages.push(m.expect("message"));
            }
            for (i, m) in messages.iter().enumerate() {
                if i + 1 == messages.len() { m.double_ack().await.expect("ack") } else { m.ack().await.expect("ack") }
            }
            seen += messages.len();
        }
        count as f64 / started.elapsed().as_secs_f64()
    })
}

/// The three rows (each runs when asked for: `jetstream` runs all).
pub(super) fn rows(cfg: &Config, rows: &mut Vec<Row>) {
    let count = if cfg.quick { 300 } else { 20_000 };
    if cfg.wants("jetstream_relay") {
        relay_row(cfg, rows, count);
    }
    if cfg.wants("jetstream_latency") {
        latency_row(cfg, rows);
    }
    if cfg.wants("jetstream_inbox") {
        inbox_row(cfg, rows, count);
    }
}

/// A running server with the stream `EVENTS` capturing `tidings.>`.
fn server() -> NatsServer {
    let nats = NatsServer::started();
    nats.create_stream("EVENTS", &["tidings.>"], None);
    nats
}

fn relay_row(cfg: &Config, rows: &mut Vec<Row>, count: usize) {
    let (mut t, mut raw) = (Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        for who in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            let (nats, dir) = (server(), cfg.scratch());
            match who {
                0 => t.push(relay_tidings(dir.path(), &nats, count)),
                _ if cfg.only_tidings => {}
                _ => raw.push(relay_raw(&nats, count)),
            }
        }
    }
    let mut row = ratio_row(
        "jetstream_relay",
        &format!("relay into JetStream, {count} events, 16 senders"),
        "events/s",
        series("tidings, JetStream endpoint", t),
        vec![series("raw async-nats loop, 16 acks outstanding", raw)],
        0.6,
    );
    row.notes.push(
        "events appended 100 per transaction beforehand; tidings timed from the engine's start to the last \
         delivery recorded (claims, leases and records included); one nats-server on loopback, file storage"
            .into(),
    );
    let attempt_us = ATTEMPT_US.with(|cell| median(&cell.borrow()));
    let raw_us = SENDERS as f64 * 1e6 / row.baselines[0].median;
    row.notes.push(format!(
        "one publish and its ack: {attempt_us:.0} us inside tidings (from its start on a sending thread to the \
         ack reported) against {raw_us:.0} us per publish in the raw loop (16 outstanding on the runtime's \
         own threads)"
    ));
    rows.push(row);
}

fn latency_row(cfg: &Config, rows: &mut Vec<Row>) {
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..cfg.rounds {
        let (nats, dir) = (server(), cfg.scratch());
        let sorted = latency(dir.path(), &nats, if cfg.quick { 1 } else { 10 });
        p50.push(percentile(&sorted, 0.50));
        p99.push(percentile(&sorted, 0.99));
    }
    let (m50, m99) = (median(&p50), median(&p99));
    rows.push(Row {
        key: "jetstream_latency".into(),
        title: "append -> JetStream ack latency at 500 events/s".into(),
        unit: "ms".into(),
        tidings: series("tidings p50", p50),
        baselines: vec![series("tidings p99", p99)],
        ratio: None,
        target: "report".into(),
        met: None,
        notes: vec![format!("p50 {m50:.2} ms, p99 {m99:.2} ms (ack time: when the server stored the message)")],
    });
}

fn inbox_row(cfg: &Config, rows: &mut Vec<Row>, count: usize) {
    let (mut t, mut raw) = (Vec::new(), Vec::new());
    for round in 0..cfg.rounds {
        let (nats, dir) = (server(), cfg.scratch());
        let filler = store(&dir.path().join("filler.db"));
        filler.create_endpoint(&endpoint(&nats)).expect("endpoint");
        append_backlog(&filler, count);
        let engine = filler.start_delivery(DeliveryOptions { workers: SENDERS, ..Default::default() }).expect("engine");
        assert!(engine.drain(Duration::from_secs(600)), "filling the stream");
        for who in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            match who {
                0 => t.push(inbox_tidings(dir.path(), &nats, count, &format!("t{round}"))),
                _ if cfg.only_tidings => {}
                _ => raw.push(inbox_raw(&nats, count, &format!("r{round}"))),
            }
        }
    }
    let mut row = ratio_row(
        "jetstream_inbox",
        &format!("inbox from JetStream, {count} messages"),
        "events/s",
        series("tidings inbox (append + commit + ack)", t),
        vec![series("raw pull consumer, ack without storing", raw)],
        0.0,
    );
    row.target = "report the ratio".into();
    row.met = None;
    row.notes.push("batches of 100 (the inbox's default); one transaction per batch, acked after its commit".into());
    rows.push(row);
}
