//! Tests of template parsing, rendering and selection.
use super::compile::{Field, Node, Part, lookup};
use super::*;
use serde_json::{Map, json};
use time::macros::datetime;

pub(super) struct Event {
    pub(super) data: Value,
    pub(super) metadata: Value,
    pub(super) tenant: Option<&'static str>,
    pub(super) event_type: &'static str,
}

impl Event {
    pub(super) fn new(data: Value) -> Event {
        Event {
            data,
            metadata: json!({"actor": "alice", "trace": {"id": "t-1"}}),
            tenant: Some("acme"),
            event_type: "order.created",
        }
    }

    pub(super) fn ctx(&self) -> RenderContext<'_> {
        RenderContext {
            id: "evt_1",
            event_type: self.event_type,
            timestamp: datetime!(2026-11-22 06:51:54.123456 +01:00),
            source: "shop",
            stream: "order-42",
            version: 3,
            position: 1234,
            tenant: self.tenant,
            data: &self.data,
            metadata: &self.metadata,
        }
    }
}

pub(super) fn order() -> Event {
    Event::new(json!({
        "id": "ord_42",
        "total": 12.5,
        "paid": true,
        "customer": {"name": "Zoë \"Z\" O'Neil"},
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
        "tags": null
    }))
}

/// No limit on the rendered size.
pub(super) const NO_LIMIT: usize = usize::MAX;

/// A placeholder's value as the tree renderer copied it (before rendering streamed).
fn reference_field(field: &Field, ctx: &RenderContext<'_>) -> Option<Value> {
    Some(match field {
        Field::Id => Value::from(ctx.id),
        Field::Type => Value::from(ctx.event_type),
        Field::Timestamp => Value::from(rfc3339_millis(ctx.timestamp)),
        Field::Source => Value::from(ctx.source),
        Field::Stream => Value::from(ctx.stream),
        Field::Version => Value::from(ctx.version),
        Field::Position => Value::from(ctx.position),
        Field::Tenant => ctx.tenant.map_or(Value::Null, Value::from),
        Field::Event => ctx.envelope(),
        Field::Data(path) => lookup(ctx.data, path)?.clone(),
        Field::Metadata(path) => lookup(ctx.metadata, path)?.clone(),
    })
}

/// The rendering before it streamed: a `Value` tree with every value copied in. The streamed
/// bytes must equal its serialisation.
pub(super) fn reference(node: &Node, ctx: &RenderContext<'_>) -> Value {
    match node {
        Node::Literal(value) => value.clone(),
        Node::Whole(field) => reference_field(field, ctx).unwrap_or(Value::Null),
        Node::Interpolated(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(text) => out.push_str(text),
                    Part::Placeholder(field) => match reference_field(field, ctx) {
                        None => {}
                        Some(Value::String(s)) => out.push_str(&s),
                        Some(other) => out.push_str(&other.to_string()),
                    },
                }
            }
            Value::String(out)
        }
        Node::Array(items) => Value::Array(items.iter().map(|n| reference(n, ctx)).collect()),
        Node::Object(entries) => {
            Value::Object(entries.iter().map(|(k, n)| (k.clone(), reference(n, ctx))).collect::<Map<_, _>>())
        }
    }
}

/// Renders without a limit and checks the bytes against the tree rendering.
pub(super) fn render_checked(t: &Template, ctx: &RenderContext<'_>) -> Vec<u8> {
    let bytes = t.render_bytes(ctx, NO_LIMIT).expect("no limit");
    assert_eq!(
        String::from_utf8(bytes.clone()).expect("utf-8"),
        reference(&t.root, ctx).to_string(),
        "the streamed bytes differ from the tree rendering of {}",
        t.text()
    );
    bytes
}

fn render(template: &str, event: &Event) -> Value {
    let t = Template::parse(template).expect("template parses");
    let bytes = render_checked(&t, &event.ctx());
    serde_json::from_slice(&bytes).expect("output is valid JSON")
}

fn template_error(text: &str) -> String {
    match Template::parse(text) {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "template");
            reason
        }
        other => panic!("{text:?} should be rejected, got {other:?}"),
    }
}

#[test]
fn timestamp_is_utc_with_milliseconds() {
    assert_eq!(rfc3339_millis(datetime!(2026-11-22 06:51:54.123456 +01:00)), "2026-11-22T05:51:54.123Z");
    assert_eq!(rfc3339_millis(OffsetDateTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
}

#[test]
fn envelope_and_default_body() {
    let e = order();
    let env = e.ctx().envelope();
    let keys: Vec<&str> = env.as_object().expect("object").keys().map(String::as_str).collect();
    let mut expected =
        vec!["id", "type", "timestamp", "source", "stream", "version", "position", "tenant", "data", "metadata"];
    let mut sorted_keys = keys.clone();
    sorted_keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(sorted_keys, expected);
    assert_eq!(env["type"], "order.created");
    assert_eq!(env["timestamp"], "2026-11-22T05:51:54.123Z");
    assert_eq!(env["version"], 3);
    assert_eq!(env["position"], 1234);
    assert_eq!(env["tenant"], "acme");
    assert_eq!(env["data"], e.data);

    let body = default_body(&e.ctx());
    let text = String::from_utf8(body.clone()).expect("utf-8");
    let order_of: Vec<usize> = [
        "\"id\":",
        "\"type\":",
        "\"timestamp\":",
        "\"source\":",
        "\"stream\":",
        "\"version\":",
        "\"position\":",
        "\"tenant\":",
        "\"data\":",
        "\"metadata\":",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} missing in {text}")))
    .collect();
    assert!(order_of.windows(2).all(|w| w[0] < w[1]), "keys out of order: {text}");
    assert!(text.starts_with("{\"id\":\"evt_1\",\"type\":\"order.created\""));
    let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
    assert_eq!(parsed, env);

    let mut no_tenant = order();
    no_tenant.tenant = None;
    assert_eq!(no_tenant.ctx().envelope()["tenant"], Value::Null);
    assert!(String::from_utf8(default_body(&no_tenant.ctx())).expect("utf-8").contains("\"tenant\":null"));
}

#[test]
fn whole_string_placeholders_are_typed() {
    let e = order();
    let out = render(
        r#"{"d": "{{data}}", "v": "{{version}}", "p": "{{ position }}", "t": "{{tenant}}",
            "m": "{{metadata}}", "total": "{{data.total}}", "paid": "{{data.paid}}",
            "tags": "{{data.tags}}", "id": "{{id}}", "ts": "{{timestamp}}",
            "src": "{{source}}", "s": "{{stream}}", "ty": "{{type}}",
            "list": ["{{data.items.1}}", 7, "plain"], "n": null}"#,
        &e,
    );
    assert_eq!(out["d"], e.data);
    assert_eq!(out["v"], json!(3));
    assert_eq!(out["p"], json!(1234));
    assert_eq!(out["t"], json!("acme"));
    assert_eq!(out["m"], e.metadata);
    assert_eq!(out["total"], json!(12.5));
    assert_eq!(out["paid"], json!(true));
    assert_eq!(out["tags"], Value::Null);
    assert_eq!(out["id"], "evt_1");
    assert_eq!(out["ts"], "2026-11-22T05:51:54.123Z");
    assert_eq!(out["src"], "shop");
    assert_eq!(out["s"], "order-42");
    assert_eq!(out["ty"], "order.created");
    assert_eq!(out["list"], json!([{"sku": "B-2", "qty": 1}, 7, "plain"]));
    assert_eq!(out["n"], Value::Null);

    let mut no_tenant = order();
    no_tenant.tenant = None;
    assert_eq!(render(r#"{"t":"{{tenant}}"}"#, &no_tenant)["t"], Value::Null);
    // The whole template may be a single placeholder.
    assert_eq!(render(r#""{{data.customer}}""#, &e), e.data["customer"]);
}

#[test]
fn event_placeholder_is_the_envelope() {
    let e = order();
    let out = render(r#"{"wrapped": "{{event}}", "kind": "x"}"#, &e);
    assert_eq!(out["wrapped"], e.ctx().envelope());
    assert_eq!(out["kind"], "x");
}

#[test]
fn interpolation_uses_text_forms() {
    let e = order();
    let out = render(
        r#"{"a": "Order {{data.id}} by {{metadata.actor}}",
            "b": "total={{data.total}} paid={{data.paid}} tags={{data.tags}} v{{version}}",
            "c": "item: {{data.items.0}}", "d": "[{{data.missing}}] [{{data.items.9.sku}}]",
            "e": " {{data.id}}", "f": "{{data.id}}{{data.id}}", "g": "tenant {{tenant}}"}"#,
        &e,
    );
    assert_eq!(out["a"], "Order ord_42 by alice");
    assert_eq!(out["b"], "total=12.5 paid=true tags=null v3");
    let item = out["c"].as_str().and_then(|c| c.strip_prefix("item: ")).expect("prefix");
    assert!(!item.contains(' ') && !item.contains('\n'), "compact: {item}");
    assert_eq!(serde_json::from_str::<Value>(item).ok(), Some(e.data["items"][0].clone()));
    assert_eq!(out["d"], "[] []");
    assert_eq!(out["e"], " ord_42");
    assert_eq!(out["f"], "ord_42ord_42");
    assert_eq!(out["g"], "tenant acme");
}

#[test]
fn interpolation_escapes_and_never_reexpands() {
    let nasty = "quote \" backslash \\ newline \n tab \t {{data.secret}} {{ foo }} {{ \u{0} end\"}";
    let e = Event::new(json!({"note": nasty, "secret": "SHOULD-NOT-APPEAR", "k": "{{id}}"}));
    let t = Template::parse(r#"{"text": "Note: {{data.note}}!", "raw": "{{data.note}}", "k": "{{data.k}}"}"#)
        .expect("parses");
    let bytes = render_checked(&t, &e.ctx());
    let out: Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(out["text"], format!("Note: {nasty}!"));
    assert_eq!(out["raw"], nasty);
    assert_eq!(out["k"], "{{id}}");
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(!text.contains("SHOULD-NOT-APPEAR"));
    assert!(!text.contains("evt_1"));
    assert_eq!(out.as_object().map(Map::len), Some(3), "no structure injected");
}

#[test]
fn array_indexing_and_missing_paths() {
    let e = order();
    let out = render(
        r#"{"sku0": "{{data.items.0.sku}}", "qty1": "{{data.items.1.qty}}",
            "oob": "{{data.items.2}}", "notnum": "{{data.items.first}}",
            "plus": "{{data.items.+1}}", "into_scalar": "{{data.id.x}}",
            "missing": "{{data.nope.deeper}}", "meta": "{{metadata.trace.id}}",
            "meta_missing": "{{metadata.nope}}", "name": "{{data.customer.name}}"}"#,
        &e,
    );
    assert_eq!(out["sku0"], "A-1");
    assert_eq!(out["qty1"], 1);
    assert_eq!(out["oob"], Value::Null);
    assert_eq!(out["notnum"], Value::Null);
    assert_eq!(out["plus"], Value::Null);
    assert_eq!(out["into_scalar"], Value::Null);
    assert_eq!(out["missing"], Value::Null);
    assert_eq!(out["meta"], "t-1");
    assert_eq!(out["meta_missing"], Value::Null);
    assert_eq!(out["name"], "Zoë \"Z\" O'Neil");
    // Numeric keys of objects are looked up by name.
    let numbered = Event::new(json!({"0": "zero", "list": [[10, 11]]}));
    let out = render(r#"{"a": "{{data.0}}", "b": "{{data.list.0.1}}"}"#, &numbered);
    assert_eq!(out["a"], "zero");
    assert_eq!(out["b"], 11);
    // Data that is not an object at all.
    let scalar = Event::new(json!(5));
    let out = render(r#"{"a": "{{data}}", "b": "{{data.x}}", "c": "x{{data.x}}y"}"#, &scalar);
    assert_eq!(out, json!({"a": 5, "b": null, "c": "xy"}));
}

#[test]
fn keys_are_never_templated() {
    let e = order();
    let out = render(r#"{"{{data.id}}": "{{data.id}}", "{{foo": 1}"#, &e);
    assert_eq!(out, json!({"{{data.id}}": "ord_42", "{{foo": 1}));
}

#[test]
fn parse_errors() {
    assert!(template_error(r#"{"a": "{{foo}}"}"#).contains("unknown placeholder \"{{foo}}\""));
    assert!(template_error(r#"{"a": "x {{ data.id }} {{nope.x}}"}"#).contains("unknown placeholder"));
    assert!(template_error(r#"{"a": "{{id.x}}"}"#).contains("only data and metadata"));
    assert!(template_error(r#"{"a": "{{}}"}"#).contains("empty placeholder"));
    assert!(template_error(r#"{"a": "{{   }}"}"#).contains("empty placeholder"));
    assert!(template_error(r#"{"a": "{{data..x}}"}"#).contains("invalid path"));
    assert!(template_error(r#"{"a": "{{data.}}"}"#).contains("invalid path"));
    assert!(template_error(r#"{"a": "{{{data}}}"}"#).contains("unknown placeholder"));
    assert!(template_error(r#"{"a": "ok {{data.id"}"#).contains("unterminated"));
    assert!(template_error(r#"["{{data}}", "{{"]"#).contains("unterminated"));
    assert!(template_error(r#"{"a": "{{DATA}}"}"#).contains("unknown placeholder"));
    // Invalid JSON.
    for bad in ["", "{", r#"{"a": }"#, "{a: 1}", r#"{"a": "{{data}}",}"#, "{{data}}"] {
        assert!(template_error(bad).contains("not valid JSON"), "{bad:?}");
    }
    // Size limit.
    let big = format!("\"{}\"", "x".repeat(MAX_TEMPLATE_BYTES));
    assert!(template_error(&big).contains("at most"));
    let fits = format!("\"{}\"", "x".repeat(MAX_TEMPLATE_BYTES - 2));
    assert!(Template::parse(&fits).is_ok());
    // Placeholder limit.
    let many = |n: usize| format!("[{}]", vec!["\"{{id}}\""; n].join(","));
    assert!(Template::parse(&many(MAX_PLACEHOLDERS)).is_ok());
    assert!(template_error(&many(MAX_PLACEHOLDERS + 1)).contains("placeholders"));
}

#[test]
fn literal_text_round_trips() {
    let e = order();
    let t = Template::parse(r#"{"a": [1, 2.5, true, null, {"b": "}} lone close"}]}"#).expect("parses");
    assert_eq!(t.text(), r#"{"a": [1, 2.5, true, null, {"b": "}} lone close"}]}"#);
    let out: Value = serde_json::from_slice(&render_checked(&t, &e.ctx())).expect("valid JSON");
    assert_eq!(out, json!({"a": [1, 2.5, true, null, {"b": "}} lone close"}]}));
}

#[test]
fn slack_style_example() {
    let e = order();
    let t = Template::parse(r#"{"text": "New order {{data.id}} ({{data.total}} EUR)"}"#).expect("parses");
    assert_eq!(render_checked(&t, &e.ctx()), br#"{"text":"New order ord_42 (12.5 EUR)"}"#.to_vec());
}

pub(super) fn set(entries: &[(&str, &str)]) -> Result<TemplateSet> {
    let map: BTreeMap<String, String> = entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    TemplateSet::parse(&map)
}

#[test]
fn selection_order() {
    let s = set(&[
        ("*", r#""all""#),
        ("order.*", r#""order-prefix""#),
        ("order.item.*", r#""item-prefix""#),
        ("order.created", r#""exact""#),
        ("tidings.endpoint.*", r#""system""#),
    ])
    .expect("valid");
    let chosen = |t: &str| s.select(t).map(|tpl| tpl.text().trim_matches('"').to_owned());
    assert_eq!(chosen("order.created").as_deref(), Some("exact"));
    assert_eq!(chosen("order.item.added").as_deref(), Some("item-prefix"));
    assert_eq!(chosen("order.shipped").as_deref(), Some("order-prefix"));
    assert_eq!(chosen("invoice.paid").as_deref(), Some("all"));
    assert_eq!(chosen("order").as_deref(), Some("all"));
    assert_eq!(chosen("tidings.endpoint.disabled").as_deref(), Some("system"));
    assert_eq!(chosen("tidings.delivery.failed"), None, "* never selects system types");
    assert!(!s.is_empty());
}

#[test]
fn render_body_uses_template_or_default() {
    let s = set(&[("order.*", r#"{"text": "{{data.id}}"}"#)]).expect("valid");
    let e = order();
    assert_eq!(s.render_body(&e.ctx(), NO_LIMIT).expect("no limit"), br#"{"text":"ord_42"}"#.to_vec());
    let mut other = order();
    other.event_type = "invoice.paid";
    assert_eq!(s.render_body(&other.ctx(), NO_LIMIT).expect("no limit"), default_body(&other.ctx()));

    let empty = TemplateSet::parse(&BTreeMap::new()).expect("empty is fine");
    assert!(empty.is_empty());
    assert!(empty.select("order.created").is_none());
    assert_eq!(empty.render_body(&e.ctx(), NO_LIMIT).expect("no limit"), default_body(&e.ctx()));
}

#[test]
fn template_set_errors_name_the_template_field() {
    for entries in [
        vec![("or*der", r#""x""#)],
        vec![("", r#""x""#)],
        vec![("order.*", r#"{"a": "{{foo}}"}"#)],
        vec![("order.*", "not json")],
    ] {
        match set(&entries) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "template");
                assert!(!reason.is_empty());
            }
            other => panic!("{entries:?} should fail, got {other:?}"),
        }
    }
    match set(&[("order.*", r#"{"a": "{{foo}}"}"#)]) {
        Err(Error::InvalidInput { reason, .. }) => {
            assert!(reason.contains("\"order.*\""), "{reason}");
            assert!(reason.contains("unknown placeholder"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_default_body_of_stored_json_text_is_the_bytes_of_the_parsed_event() {
    // The engine writes the log's JSON text into the default body verbatim; for any text the
    // log stores (serde_json's compact form), that must equal parsing it and serialising again.
    let values = [
        json!({"order_id": 7, "total": 99.5, "lines": [{"sku": "A-1", "qty": 2}]}),
        json!({"z": 1, "a": [1.0e-7, 1.2345678901234567, -0.0, 1e300, 0.1], "m": {"b": null, "a": true}}),
        json!({"text": "quote \" backslash \\ newline \n tab \t nul \u{0} é 漢 😀 \u{2028}"}),
        json!({"big": u64::MAX, "neg": i64::MIN, "deep": [[[[{"k": []}]]]]}),
        json!("a bare string"),
        json!(12.25),
        json!([]),
        json!({}),
    ];
    for data in values {
        let metadata = json!({"actor": "alice", "trace": {"id": "t-1"}});
        let stored_data = crate::event::to_json_text("data", &data).unwrap();
        let stored_metadata = crate::event::to_json_text("metadata", &metadata).unwrap();
        let timestamp = datetime!(2026-11-22 08:00:00.123456 UTC);
        let parsed = RenderContext {
            id: "0193a0c4-7b1e-7000-8000-000000000001",
            event_type: "order.created",
            timestamp,
            source: "shop",
            stream: "order-\"1\"",
            version: 3,
            position: 42,
            tenant: None,
            data: &serde_json::from_str(&stored_data).unwrap(),
            metadata: &serde_json::from_str(&stored_metadata).unwrap(),
        };
        let stored = StoredEvent {
            id: parsed.id.to_owned(),
            stream: parsed.stream.to_owned(),
            version: 3,
            position: 42,
            event_type: parsed.event_type.to_owned(),
            data: stored_data.clone(),
            metadata: stored_metadata,
            tenant: None,
            recorded_at: timestamp,
        };
        assert_eq!(
            String::from_utf8(stored_default_body(&stored, "shop").unwrap()).unwrap(),
            String::from_utf8(default_body(&parsed)).unwrap(),
            "data {stored_data}"
        );
    }
}
