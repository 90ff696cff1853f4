//! Hostile and bad input through the public API.
//!
//! Property tests (proptest) over event data, metadata, stream names, types and tenants, over
//! endpoint specs and over templates: every input either succeeds and reads back exactly as
//! given, or fails with a typed error and leaves the database byte-for-byte unchanged (a full
//! dump through a separate connection). An endpoint that is accepted must also be deliverable:
//! a test request to a loopback receiver never fails as an invalid request, and carries the
//! configured auth and header values.
//!
//! SQL injection payloads go through every string field (stream, type, tenant, data and
//! metadata keys and values, endpoint name, tenant, URL query, header names and values, auth,
//! templates, disable reason, checkpoint names, snapshot streams, read filters, ids) and
//! change nothing but what they were meant to write; LIKE wildcards match only themselves.
//!
//! `TIDINGS_SLOW_TESTS=1` runs ten times more cases.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tidings::template::{RenderContext, Template};
use tidings::{
    Auth, DeliveryFilter, EndpointSpec, Error, ExpectedVersion, NewEvent, ReadAllOptions, ReadStreamOptions, Result,
    Store, StoreOptions,
};
use tidings_tests::procs::{dump, slow_tests};
use tidings_tests::receiver::Receiver;
use tidings_tests::{loopback_options, tempdir};

fn cases() -> u32 {
    if slow_tests() { 640 } else { 64 }
}

fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

/// Strings that have broken SQL built by string concatenation somewhere.
const INJECTIONS: &[&str] = &[
    "'; DROP TABLE tidings_events; --",
    "\"; DROP TABLE app_orders; --",
    "x' OR '1'='1",
    "1) OR (1=1",
    "Robert'); DELETE FROM app_orders; --",
    "*/ DELETE FROM tidings_endpoints /*",
    "1; ATTACH DATABASE 'evil.db' AS evil; --",
    "%",
    "_",
    "%_%",
    "\\",
    "'",
    "\"",
    "?1",
    ":name",
    "@p",
    "$1",
    "tidings_meta",
    "NULL",
    "sqlite_schema",
];

/// Any JSON value, nested a few levels, with hostile strings among the leaves and keys.
fn arb_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![any::<String>(), proptest::sample::select(INJECTIONS).prop_map(String::from)];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        text.clone().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text.clone(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_.:-]{1,24}",
        2 => any::<String>(),
        2 => proptest::sample::select(INJECTIONS).prop_map(String::from),
        1 => "\\PC{250,260}",
        1 => Just(String::new()),
        1 => "[a-z]{1,5}[\\x00-\\x1f\\x7f][a-z]{1,5}",
    ]
}

fn arb_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9_:-]{0,8}(\\.[a-zA-Z0-9_:-]{1,8}){0,3}",
        1 => "tidings\\.[a-z]{1,8}",
        1 => any::<String>(),
        1 => proptest::sample::select(INJECTIONS).prop_map(String::from),
        1 => "[a-z]{1,5}\\.\\.[a-z]{1,5}",
    ]
}

/// What a refused call must look like: a typed error, never a storage failure or a panic.
fn typed(err: &Error) -> bool {
    matches!(err, Error::InvalidInput { .. } | Error::NotFound { .. } | Error::Concurrency { .. })
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Runs `op`; on `Err` checks that it is typed and that the file did not change.
fn refused_or<T>(path: &Path, op: impl FnOnce() -> Result<T>) -> std::result::Result<Option<T>, TestCaseError> {
    let before = dump(path).map_err(|e| fail(e.to_string()))?;
    match op() {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            prop_assert!(typed(&e), "untyped error {e:?}");
            let after = dump(path).map_err(|e| fail(e.to_string()))?;
            prop_assert!(before == after, "the database changed although the call failed with {e:?}");
            Ok(None)
        }
    }
}

fn fresh() -> Result<(tempfile::TempDir, std::path::PathBuf, Store)> {
    let dir = tempdir()?;
    let path = dir.path().join("app.db");
    let store = Store::open(&path, StoreOptions { max_event_size: 64 * 1024, ..loopback_options() })?;
    store.execute("CREATE TABLE app_orders (id INTEGER PRIMARY KEY, note TEXT)", [])?;
    store.execute("INSERT INTO app_orders (note) VALUES ('one'), ('two')", [])?;
    Ok((dir, path, store))
}

#[test]
fn appended_events_round_trip_exactly_or_are_refused_without_a_trace() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    let strategy = (
        arb_name(),
        arb_type(),
        arb_json(),
        prop_oneof![3 => arb_json().prop_map(|v| json!({"m": v})), 1 => arb_json()],
        prop::option::of(arb_name()),
    );
    let mut runner = TestRunner::new(config());
    let outcome = runner.run(&strategy, |(stream, event_type, data, metadata, tenant)| {
        let mut event = NewEvent::new(event_type.clone(), data.clone()).with_metadata(metadata.clone());
        event.tenant = tenant.clone();
        let Some(recorded) = refused_or(&path, || store.append(&stream, &[event], ExpectedVersion::Any))? else {
            return Ok(());
        };
        let back = store.event(&recorded[0].id).map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(&back.stream, &stream);
        prop_assert_eq!(&back.event_type, &event_type);
        prop_assert_eq!(&back.data, &data);
        prop_assert_eq!(&back.metadata, &metadata);
        prop_assert_eq!(&back.tenant, &tenant);
        let last = store
            .read_stream(&stream, ReadStreamOptions { backwards: true, limit: Some(1), ..Default::default() })
            .map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(last.first().map(|e| e.id.as_str()), Some(back.id.as_str()));
        Ok(())
    });
    outcome.map_err(|e| Error::Storage(format!("{e}")))?;
    // The app's own table was never touched.
    assert_eq!(store.query("SELECT count(*) FROM app_orders", [])?[0][0], tidings::rusqlite::types::Value::Integer(2));
    Ok(())
}

fn arb_header_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop_oneof![3 => "[A-Za-z][A-Za-z0-9-]{0,12}", 1 => any::<String>(), 1 => proptest::sample::select(INJECTIONS).prop_map(String::from)],
        prop_oneof![3 => "[ -~]{0,40}", 1 => any::<String>(), 1 => proptest::sample::select(INJECTIONS).prop_map(String::from)],
        0..4,
    )
}

fn arb_auth() -> impl Strategy<Value = Option<Auth>> {
    prop_oneof![
        Just(None),
        prop_oneof!["[!-~]{1,40}", any::<String>()].prop_map(|t| Some(Auth::Bearer(t))),
        ("[A-Za-z][A-Za-z0-9-]{0,12}", prop_oneof!["[ -~]{1,40}", any::<String>()])
            .prop_map(|(header, value)| Some(Auth::ApiKey { header, value })),
    ]
}

/// A template: mostly JSON documents with placeholders (known and unknown), sometimes junk.
fn arb_template() -> impl Strategy<Value = String> {
    let placeholder = prop_oneof![
        proptest::sample::select(vec![
            "id",
            "type",
            "timestamp",
            "source",
            "stream",
            "version",
            "position",
            "tenant",
            "event",
            "data",
            "metadata",
            "data.a",
            "data.a.0",
            "metadata.m",
            "nope",
            "data..x",
            "type.x",
            "",
        ])
        .prop_map(|p| format!("{{{{{p}}}}}")),
        "[a-z{} .]{0,12}",
    ];
    prop_oneof![
        4 => prop::collection::btree_map("[a-z]{1,6}", (placeholder, "[ -~]{0,6}"), 0..5).prop_map(|m| {
            let doc: serde_json::Map<String, Value> =
                m.into_iter().map(|(k, (p, text))| (k, Value::String(format!("{text}{p}")))).collect();
            Value::Object(doc).to_string()
        }),
        1 => any::<String>(),
        1 => arb_json().prop_map(|v| v.to_string()),
    ]
}

fn arb_spec(url: String) -> impl Strategy<Value = EndpointSpec> {
    let url_tail = prop_oneof![
        3 => "[a-zA-Z0-9/_-]{0,20}",
        1 => any::<String>(),
        1 => proptest::sample::select(INJECTIONS).prop_map(String::from),
    ];
    let events = prop::collection::vec(
        prop_oneof![3 => Just("*".to_string()), 3 => arb_type(), 1 => arb_type().prop_map(|t| format!("{t}.*")), 1 => arb_name()],
        0..3,
    );
    let templates =
        prop::collection::btree_map(prop_oneof![Just("*".to_string()), arb_type(), arb_name()], arb_template(), 0..3);
    (
        (url_tail, prop::option::of(arb_name()), events, prop::option::of(arb_name())),
        (arb_header_map(), arb_auth(), templates),
        (
            prop::option::of(prop_oneof![any::<f64>(), 0.1f64..1000.0]),
            prop::option::of(0u32..200_000),
            0u32..2000,
            prop::option::of(prop_oneof!["X-[A-Za-z-]{1,12}", any::<String>()]),
            prop::collection::vec(0u16..700, 0..3),
        ),
    )
        .prop_map(
            move |((tail, name, events, tenant), (headers, auth, templates), (rate, burst, mif, sig, finals))| {
                EndpointSpec {
                    url: format!("{url}{tail}"),
                    name,
                    events,
                    tenant,
                    auth,
                    headers,
                    templates,
                    rate_limit: rate,
                    burst,
                    max_in_flight: mif,
                    signature_header: sig,
                    final_statuses: finals,
                    timeout: Duration::from_secs(2),
                    ..EndpointSpec::new(String::new())
                }
            },
        )
}

#[test]
fn endpoint_specs_round_trip_exactly_or_are_refused_without_a_trace() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let mut runner = TestRunner::new(config());
    let outcome = runner.run(&arb_spec("https://example.com/".into()), |spec| {
        let Some(created) = refused_or(&path, || store.create_endpoint(&spec))? else {
            return Ok(());
        };
        let got = store.get_endpoint(&created.id).map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(&got.spec, &created.spec, "the stored spec differs from the one returned");
        prop_assert_eq!(&got.spec.url, &spec.url);
        prop_assert_eq!(&got.spec.name, &spec.name);
        prop_assert_eq!(&got.spec.tenant, &spec.tenant);
        prop_assert_eq!(&got.spec.headers, &spec.headers);
        prop_assert_eq!(&got.spec.auth, &spec.auth);
        prop_assert_eq!(&got.spec.templates, &spec.templates);
        prop_assert_eq!(&got.spec.rate_limit, &spec.rate_limit);
        prop_assert_eq!(&got.spec.burst, &spec.burst);
        prop_assert_eq!(got.spec.max_in_flight, spec.max_in_flight);
        prop_assert_eq!(&got.spec.signature_header, &spec.signature_header);
        prop_assert_eq!(&got.spec.final_statuses, &spec.final_statuses);
        // Patterns keep their order; duplicates may be dropped.
        let mut distinct: Vec<String> = Vec::new();
        for p in &spec.events {
            if !distinct.contains(p) {
                distinct.push(p.clone());
            }
        }
        prop_assert_eq!(got.events(), distinct.as_slice());
        Ok(())
    });
    outcome.map_err(|e| Error::Storage(format!("{e}")))?;
    Ok(())
}

#[test]
fn an_accepted_endpoint_is_deliverable_with_its_auth_and_headers() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let receiver = Receiver::start();
    let base = receiver.url_for("/");
    let mut runner = TestRunner::new(Config { cases: cases() / 2, ..config() });
    let outcome = runner.run(&arb_spec(base), |mut spec| {
        spec.rate_limit = None;
        spec.burst = None;
        let Ok(endpoint) = store.create_endpoint(&spec) else {
            return Ok(());
        };
        receiver.clear();
        let attempt = store.send_test(&endpoint.id).map_err(|e| fail(e.to_string()))?;
        prop_assert!(
            attempt.error_kind.as_deref() != Some("invalid_request"),
            "an accepted endpoint cannot be sent to: {attempt:?} (url {:?})",
            spec.url
        );
        prop_assert_eq!(attempt.status_code, Some(200), "{:?}", attempt);
        let requests = receiver.requests();
        prop_assert_eq!(requests.len(), 1);
        let r = &requests[0];
        for (name, value) in &spec.headers {
            prop_assert_eq!(r.header(name), Some(value.trim()), "custom header {:?}", name);
        }
        match &spec.auth {
            Some(Auth::Bearer(token)) => {
                let expected = format!("Bearer {token}");
                prop_assert_eq!(r.header("authorization"), Some(expected.as_str()));
            }
            Some(Auth::ApiKey { header, value }) => prop_assert_eq!(r.header(header), Some(value.trim())),
            _ => {}
        }
        Ok(())
    });
    outcome.map_err(|e| Error::Storage(format!("{e}")))?;
    Ok(())
}

#[test]
fn templates_parse_or_are_refused_and_render_only_valid_json() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let mut runner = TestRunner::new(config());
    let strategy = (arb_template(), arb_json(), arb_json(), prop::option::of(arb_name()));
    let outcome = runner.run(&strategy, |(text, data, metadata_value, tenant)| {
        let metadata = json!({"m": metadata_value});
        let parsed = Template::parse(&text);
        let spec = EndpointSpec {
            templates: BTreeMap::from([("*".to_string(), text.clone())]),
            ..EndpointSpec::new("https://example.com/hook")
        };
        let created = refused_or(&path, || store.create_endpoint(&spec))?;
        prop_assert_eq!(parsed.is_ok(), created.is_some(), "Template::parse and create_endpoint disagree");
        let Ok(template) = parsed else { return Ok(()) };
        if let Some(endpoint) = created {
            let stored = store.get_endpoint(&endpoint.id).map_err(|e| fail(e.to_string()))?;
            prop_assert_eq!(stored.spec.templates.get("*"), Some(&text));
        }
        let ctx = RenderContext {
            id: "0190c5e1-7b7a-7cc3-9d2e-1b2c3d4e5f60",
            event_type: "order.created",
            timestamp: time::OffsetDateTime::UNIX_EPOCH,
            source: "src",
            stream: "s-1",
            version: 3,
            position: 9,
            tenant: tenant.as_deref(),
            data: &data,
            metadata: &metadata,
        };
        let bytes = template.render_bytes(&ctx, usize::MAX).map_err(|e| fail(e.to_string()))?;
        let rendered: Value =
            serde_json::from_slice(&bytes).map_err(|e| fail(format!("rendered invalid JSON: {e}")))?;
        // A value never adds structure: the rendered document has the template's keys.
        let template_doc: Value = serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?;
        if let (Value::Object(t), Value::Object(r)) = (&template_doc, &rendered) {
            let tk: Vec<&String> = t.keys().collect();
            let rk: Vec<&String> = r.keys().collect();
            prop_assert_eq!(tk, rk);
            for (k, v) in t {
                // A string that is exactly `{{data}}` is the data itself.
                if v == "{{data}}" {
                    prop_assert_eq!(&r[k], &data);
                }
            }
        }
        Ok(())
    });
    outcome.map_err(|e| Error::Storage(format!("{e}")))?;
    Ok(())
}

/// A JSON value nested `depth` arrays deep.
fn nested(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

#[test]
fn deeply_nested_data_round_trips_or_is_refused() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    for depth in [64, 127, 128, 129, 200, 1000] {
        for (what, event) in [
            ("data", NewEvent::new("deep.data", nested(depth))),
            ("metadata", NewEvent::new("deep.metadata", json!({})).with_metadata(json!({"m": nested(depth)}))),
        ] {
            let before = dump(&path)?;
            let (data, metadata) = (event.data.clone(), event.metadata.clone());
            match store.append("deep", &[event], ExpectedVersion::Any) {
                Ok(recorded) => {
                    let back = store.event(&recorded[0].id)?;
                    assert_eq!(back.data, data, "{what} nested {depth} deep was accepted but reads back changed");
                    assert_eq!(back.metadata, metadata, "{what} nested {depth} deep: metadata changed");
                }
                Err(e) => {
                    assert!(matches!(e, Error::InvalidInput { .. }), "depth {depth}: untyped {e:?}");
                    assert_eq!(dump(&path)?, before, "depth {depth}: refused but the file changed");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn extreme_numbers_and_strings_round_trip_exactly() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let data = json!({
        "u64max": u64::MAX, "i64min": i64::MIN, "f64max": f64::MAX, "tiny": f64::MIN_POSITIVE,
        "subnormal": 5e-324, "neg_zero": -0.0, "nul": "a\u{0}b", "bidi": "\u{202e}abc",
        "astral": "𝄞😀", "bom": "\u{feff}x", "nfc": "é", "nfd": "e\u{301}", "quote": "\"'`",
        "": "empty key", "long": "x".repeat(60_000),
    });
    let recorded = store.append("s", &[NewEvent::new("thing.happened", data.clone())], ExpectedVersion::Any)?;
    assert_eq!(store.event(&recorded[0].id)?.data, data);
    // Two spellings of "é" are two streams.
    store.append("é", &[NewEvent::new("thing.happened", json!(1))], ExpectedVersion::NoStream)?;
    store.append("e\u{301}", &[NewEvent::new("thing.happened", json!(2))], ExpectedVersion::NoStream)?;
    assert_eq!(store.read_stream("é", ReadStreamOptions::default())?[0].data, json!(1));
    assert_eq!(store.read_stream("e\u{301}", ReadStreamOptions::default())?[0].data, json!(2));
    Ok(())
}

#[test]
fn sql_injection_through_every_string_field_changes_nothing_else() -> Result<()> {
    let (_dir, path, store) = fresh()?;
    let schema = |store: &Store| store.query("SELECT type, name, sql FROM sqlite_schema ORDER BY name", []);
    let schema_before = schema(&store)?;
    let other = store.create_endpoint(&EndpointSpec {
        name: Some("bystander".into()),
        ..EndpointSpec::new("https://example.com/other")
    })?;
    store.append(
        "bystander",
        &[NewEvent::new("thing.happened", json!({})).with_tenant("bystander")],
        ExpectedVersion::Any,
    )?;
    let mut appended = 1;
    for (i, p) in INJECTIONS.iter().enumerate() {
        let p = *p;
        // Stream, tenant, data and metadata keys and values.
        let event =
            NewEvent::new("thing.happened", json!({"k": p, p: p})).with_metadata(json!({p: [p]})).with_tenant(p);
        let recorded = store.append(p, &[event], ExpectedVersion::Any)?;
        appended += 1;
        let back = store.event(&recorded[0].id)?;
        assert_eq!((back.stream.as_str(), back.tenant.as_deref()), (p, Some(p)));
        assert_eq!(back.data, json!({"k": p, p: p}));
        assert_eq!(back.metadata, json!({p: [p]}));
        // A type made of it is refused with a typed error and nothing written, or (`_`,
        // `NULL`, `tidings_meta` are valid types) stored exactly.
        let before = dump(&path)?;
        match store.append("types", &[NewEvent::new(p, json!({}))], ExpectedVersion::Any) {
            Err(e) => {
                assert!(matches!(e, Error::InvalidInput { .. }), "type {p:?}: {e:?}");
                assert_eq!(dump(&path)?, before);
            }
            Ok(recorded) => {
                appended += 1;
                assert_eq!(store.event(&recorded[0].id)?.event_type, p);
                let only = store.read_all(ReadAllOptions { types: Some(vec![p.into()]), ..Default::default() })?;
                assert_eq!(only.len(), 1, "the pattern {p:?} matched other types");
            }
        }
        // Reads filtered by it see exactly what was written with it.
        let by_tenant = store.read_all(ReadAllOptions { tenant: Some(p.into()), ..Default::default() })?;
        assert_eq!(by_tenant.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec![back.id.as_str()], "tenant {p:?}");
        assert_eq!(store.read_stream(p, ReadStreamOptions::default())?.len(), 1, "stream {p:?}");
        assert_eq!(store.stream_version(p)?, Some(1));
        if let Err(e) = store.read_all(ReadAllOptions { types: Some(vec![p.into()]), ..Default::default() }) {
            assert!(matches!(e, Error::InvalidInput { .. }), "pattern {p:?}: {e:?}");
        }
        // Consumers and snapshots.
        store.set_checkpoint(p, i as u64 + 1)?;
        assert_eq!(store.checkpoint(p)?, Some(i as u64 + 1));
        store.save_snapshot(p, 1, &json!({"state": p}))?;
        assert_eq!(store.load_snapshot(p)?.map(|s| s.state), Some(json!({"state": p})));
        // Endpoint fields.
        let spec = EndpointSpec {
            name: Some(p.into()),
            tenant: Some(p.into()),
            url: format!("https://example.com/hook?q={}", url_escape(p)),
            headers: BTreeMap::from([("X-Note".to_string(), p.to_string())]),
            auth: Some(Auth::ApiKey { header: "X-Key".into(), value: p.into() }),
            templates: BTreeMap::from([("*".to_string(), json!({"note": p, "data": "{{data}}"}).to_string())]),
            ..EndpointSpec::new("")
        };
        let endpoint = store.create_endpoint(&spec)?;
        let got = store.get_endpoint(&endpoint.id)?;
        assert_eq!((got.spec.name.as_deref(), got.spec.tenant.as_deref()), (Some(p), Some(p)));
        assert_eq!(got.spec.headers, spec.headers);
        assert_eq!(got.spec.auth, spec.auth);
        assert_eq!(got.spec.templates, spec.templates);
        assert_eq!(got.spec.url, spec.url);
        assert_eq!(store.list_endpoints(Some(p))?.len(), 1, "list by tenant {p:?}");
        let disabled = store.disable_endpoint(&endpoint.id, Some(p))?;
        assert_eq!(disabled.disabled_reason.as_deref(), Some(p));
        store.delete_endpoint(&endpoint.id)?;
        // Header names and bearer tokens made of it are refused, typed, without a trace.
        for bad in [
            EndpointSpec {
                headers: BTreeMap::from([(p.to_string(), "v".to_string())]),
                ..EndpointSpec::new("https://example.com/")
            },
            EndpointSpec { auth: Some(Auth::Bearer(format!("{p} {p}"))), ..EndpointSpec::new("https://example.com/") },
        ] {
            let before = dump(&path)?;
            match store.create_endpoint(&bad) {
                Err(e) => {
                    assert!(typed(&e), "{e:?}");
                    assert_eq!(dump(&path)?, before);
                }
                // Some payloads ("%", "_", "'") are valid header tokens: stored exactly.
                Ok(created) => {
                    assert_eq!(store.get_endpoint(&created.id)?.spec.headers, bad.headers);
                    store.delete_endpoint(&created.id)?;
                }
            }
        }
        // Ids made of it find nothing and change nothing.
        let before = dump(&path)?;
        assert!(matches!(store.get_endpoint(p), Err(Error::NotFound { .. })));
        assert!(matches!(store.delete_endpoint(p), Err(Error::NotFound { .. })));
        assert!(matches!(store.rotate_secret(p), Err(Error::NotFound { .. })));
        assert!(matches!(store.event(p), Err(Error::InvalidInput { .. }) | Err(Error::NotFound { .. })));
        let filtered = store.deliveries(&DeliveryFilter { endpoint_id: Some(p.into()), ..Default::default() });
        assert!(matches!(&filtered, Ok(v) if v.is_empty()) || matches!(&filtered, Err(e) if typed(e)), "{filtered:?}");
        let filtered = store.deliveries(&DeliveryFilter { event_id: Some(p.into()), ..Default::default() });
        assert!(matches!(&filtered, Ok(v) if v.is_empty()) || matches!(&filtered, Err(e) if typed(e)), "{filtered:?}");
        assert!(matches!(store.delete_stream(&format!("{p}-missing")), Err(Error::NotFound { .. })));
        assert_eq!(store.rate_stats(p)?.tenant, p);
        assert_eq!(dump(&path)?, before, "a lookup by {p:?} changed the file");
    }
    // Nothing else moved: the schema, the app's rows, the bystanders.
    assert_eq!(schema(&store)?, schema_before, "the schema changed");
    assert_eq!(
        store.query("SELECT id, note FROM app_orders ORDER BY id", [])?,
        vec![
            vec![tidings::rusqlite::types::Value::Integer(1), tidings::rusqlite::types::Value::Text("one".into())],
            vec![tidings::rusqlite::types::Value::Integer(2), tidings::rusqlite::types::Value::Text("two".into())],
        ]
    );
    assert_eq!(store.get_endpoint(&other.id)?.spec.name.as_deref(), Some("bystander"));
    assert_eq!(store.read_all(ReadAllOptions::default())?.len(), appended);
    assert_eq!(store.read_all(ReadAllOptions { tenant: Some("bystander".into()), ..Default::default() })?.len(), 1);
    assert_eq!(store.list_endpoints(None)?.len(), 1, "only the bystander endpoint is left");
    let check: Vec<Vec<tidings::rusqlite::types::Value>> = store.query("PRAGMA integrity_check", [])?;
    assert_eq!(check, vec![vec![tidings::rusqlite::types::Value::Text("ok".into())]]);
    Ok(())
}

/// Percent-encodes everything but unreserved characters.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn unusual_urls_that_are_accepted_are_deliverable() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let receiver = Receiver::start();
    let base = receiver.url_for("/");
    let port = receiver.port();
    let urls = [
        format!("{base}a b"),
        format!("{base}caf\u{e9}"),
        format!("{base}a|b"),
        format!("{base}a{{b}}"),
        format!("{base}a\"b"),
        format!("{base}a^b"),
        format!("{base}a`b"),
        format!("{base}?q=a b"),
        format!("{base}?q=<x>"),
        format!("{base}#fragment"),
        format!("{base}a\\b"),
        format!("{base}%zz"),
        format!("HTTP://127.0.0.1:{port}/upper"),
        format!("http://127.1:{port}/short"),
        format!("http://127.0.0.1:{port}"),
    ];
    let mut undeliverable = Vec::new();
    for url in &urls {
        let Ok(endpoint) = store.create_endpoint(&EndpointSpec::new(url.clone())) else { continue };
        let attempt = store.send_test(&endpoint.id)?;
        if attempt.status_code != Some(200) {
            undeliverable.push(format!("{url:?} -> {:?}: {:?}", attempt.error_kind, attempt.error));
        }
    }
    assert!(
        undeliverable.is_empty(),
        "accepted endpoints that can never be delivered to:\n{}",
        undeliverable.join("\n")
    );
    Ok(())
}
