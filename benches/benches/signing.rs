//! Standard Webhooks signatures, per request, on the body the engine would send for an
//! `order.created` event (the default envelope, about 370 bytes; the size is printed first):
//!
//! - `signing/sign`: what the engine does per attempt, `tidings::signing::sign` with one
//!   secret (HMAC-SHA256 over `"{id}.{timestamp}.{body}"`, base64);
//! - `signing/verify`: what a receiver does per request, `tidings::verify` with the three
//!   `webhook-*` headers and the endpoint's secret string (parsing the secret included, as a
//!   receiver holding the `whsec_` string pays it too).
//!
//! Run with `cargo bench -p tidings-benches --bench signing`.

mod fixture;

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings::signing::{self, Secret};
use tidings::template::{RenderContext, default_body};
use tidings::{ExpectedVersion, Store};

/// The default webhook body of one recorded order event, and that event's id.
fn body_and_id() -> (Vec<u8>, String) {
    let store = Store::open_in_memory().expect("open an in-memory store");
    let event =
        store.append("order-1042", &[fixture::order_event(1042)], ExpectedVersion::Any).expect("append").remove(0);
    (default_body(&RenderContext::of(&event, "api-1.example.internal")), event.id.clone())
}

fn signing(c: &mut Criterion) {
    let (body, id) = body_and_id();
    eprintln!("signing: a body of {} bytes", body.len());
    let secret = Secret::generate();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs())
        .expect("seconds fit in i64");
    let timestamp = now.to_string();
    let signature = signing::sign(&secret, &id, now, &body);
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", id.as_str()),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", signature.as_str()),
    ];

    let mut group = c.benchmark_group("signing");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| signing::sign(&secret, black_box(&id), now, black_box(&body))));
    group.bench_function("verify", |b| {
        b.iter(|| {
            tidings::verify(black_box(&body), headers, &[secret.expose()], Duration::from_secs(300))
                .expect("the signature verifies")
        })
    });
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
