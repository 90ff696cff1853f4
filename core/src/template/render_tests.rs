//! Tests of streamed rendering: the bytes equal the tree rendering's, the size limit is checked
//! at every write, and a render never holds more than its limit (issue 19 #1: 256 `{{data}}`
//! over a 0.94 MB event used to build 1.4 GB of copies).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::render::{Bounded, render_into};
use super::tests::{Event, NO_LIMIT, order, render_checked, set};
use super::*;

/// The repro of the finding: 256 keys, each the whole data.
fn multiplying_template() -> Template {
    let keys: Map<String, Value> = (0..MAX_PLACEHOLDERS).map(|i| (format!("k{i}"), Value::from("{{data}}"))).collect();
    Template::parse(&Value::Object(keys).to_string()).expect("256 placeholders are allowed")
}

/// `[0, 1, ..., 149999]`: 938,891 bytes of JSON, 4.8 MB as a `Value`.
fn large_data() -> Value {
    Value::from((0..150_000u64).collect::<Vec<_>>())
}

#[test]
fn a_template_multiplying_a_large_event_stops_at_the_limit_holding_no_more() {
    let e = Event::new(large_data());
    assert_eq!(serde_json::to_vec(&e.data).expect("serialises").len(), 938_891);
    let t = multiplying_template();
    let limit = max_rendered_bytes(1024 * 1024);
    let started = Instant::now();
    let mut out = Bounded::new(limit);
    assert_eq!(render_into(&t.root, &e.ctx(), &mut out), Err(TooLarge { limit }));
    // Never more than the limit, in length or in allocation; and it stopped only at the limit
    // (the data's numbers are written a few bytes at a time).
    assert!(out.bytes().len() <= limit, "{} bytes written", out.bytes().len());
    assert!(out.capacity() <= limit, "{} bytes allocated for a limit of {limit}", out.capacity());
    assert!(out.bytes().len() + 16 > limit, "stopped early, at {} bytes", out.bytes().len());
    assert!(out.bytes().starts_with(b"{\"k0\":[0,1,2,3,"));
    // Stopping early is what makes it cheap: 5 MiB written, not 240 MB.
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert_eq!(t.render_bytes(&e.ctx(), limit), Err(TooLarge { limit }));
}

#[test]
fn render_body_refuses_a_body_past_the_limit_naming_the_limit_and_the_pattern() {
    let e = Event::new(large_data());
    let template = multiplying_template();
    let limit = max_rendered_bytes(1024 * 1024);
    for key in ["*", "order.*", "order.created"] {
        let s = set(&[(key, template.text())]).expect("valid");
        match s.render_body(&e.ctx(), limit) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "template");
                assert!(reason.contains(&format!("would exceed {limit} bytes")), "{reason}");
                assert!(reason.contains(&format!("pattern {key:?}")), "{reason}");
                assert!(reason.contains("max_event_size"), "{reason}");
            }
            other => panic!("{key}: expected the limit error, got {other:?}"),
        }
    }
    // The default body is not limited (it holds the event once), and other templates render.
    let s = set(&[("invoice.*", template.text()), ("order.*", r#"{"n": "{{data.1}}"}"#)]).expect("valid");
    assert_eq!(s.render_body(&e.ctx(), 64).expect("small"), br#"{"n":1}"#.to_vec());
    let mut other = Event::new(large_data());
    other.event_type = "shipment.sent";
    assert_eq!(s.render_body(&other.ctx(), 64).expect("default body"), default_body(&other.ctx()));
}

#[test]
fn the_limit_is_inclusive_and_checked_at_every_write() {
    let e = order();
    let t = Template::parse(
        r#"{"a": "{{data}}", "b": "x {{data.customer}} \"{{tenant}}\" y", "c": ["{{event}}", 1, "{{version}}"]}"#,
    )
    .expect("parses");
    let full = render_checked(&t, &e.ctx());
    assert_eq!(t.render_bytes(&e.ctx(), full.len()), Ok(full.clone()));
    for limit in 0..full.len() {
        let mut out = Bounded::new(limit);
        assert_eq!(render_into(&t.root, &e.ctx(), &mut out), Err(TooLarge { limit }));
        assert!(full.starts_with(out.bytes()), "limit {limit}: not a prefix");
        assert!(out.capacity() <= limit, "limit {limit}: {} bytes allocated", out.capacity());
    }
}

#[test]
fn the_event_placeholder_writes_the_bytes_of_the_envelope_value() {
    let mut e = order();
    for tenant in [Some("acme"), None] {
        e.tenant = tenant;
        let t = Template::parse(r#"["{{event}}", "e={{event}}"]"#).expect("parses");
        let envelope = e.ctx().envelope().to_string();
        let expected = format!("[{envelope},{}]", Value::from(format!("e={envelope}")));
        assert_eq!(String::from_utf8(render_checked(&t, &e.ctx())).expect("utf-8"), expected);
    }
}

#[test]
fn interpolated_text_is_escaped_as_serde_json_escapes_strings() {
    let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
    let text = format!("{every_ascii} é 漢 😀 \u{2028} \u{feff} {{{{id}}}}");
    let e = Event::new(json!({"s": text, "nested": {"q": "\"\\", "ctl": "\u{1}\u{1f}", "n": -0.5}}));
    for template in [
        r#""<{{data.s}}>""#,
        r#""{{data.nested}} and {{data.s}}""#,
        r#"{"k\"\u0001\n": "a{{metadata}}b{{data}}", "t": "\u0000{{timestamp}}\t{{position}}"}"#,
    ] {
        let t = Template::parse(template).expect("parses");
        let out: Value = serde_json::from_slice(&render_checked(&t, &e.ctx())).expect("valid JSON");
        assert!(out.is_string() || out.is_object());
    }
}

/// A small deterministic generator (xorshift), so the comparison covers many shapes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// A random template value of at most `depth` levels.
fn random_template(rng: &mut Rng, depth: usize) -> Value {
    const STRINGS: [&str; 12] = [
        "{{data}}",
        "{{metadata.trace}}",
        "{{event}}",
        "{{tenant}}",
        "{{data.items.0}}",
        "{{data.nope}}",
        "n={{version}}/{{position}}",
        "{{data.customer.name}}: {{data.total}} {{data.paid}} {{data.tags}}",
        "at {{timestamp}} {{ type }} {{id}}{{source}}{{stream}}",
        "\"quoted\" \\ {{data.items}}\n",
        "plain",
        "é 😀 \u{7}",
    ];
    match rng.below(if depth == 0 { 3 } else { 5 }) {
        0 => Value::from(rng.pick(&STRINGS)),
        1 => [json!(null), json!(1.5), json!(-7), json!(true), json!("lit")][rng.below(5)].clone(),
        2 => Value::from(rng.pick(&STRINGS)),
        3 => Value::Array((0..rng.below(4)).map(|_| random_template(rng, depth - 1)).collect()),
        _ => {
            let keys = ["b", "a", "k\"ey", "é", "10", "9", "{{data}}", ""];
            Value::Object(
                (0..rng.below(5)).map(|_| (rng.pick(&keys).to_owned(), random_template(rng, depth - 1))).collect(),
            )
        }
    }
}

#[test]
fn streamed_bytes_equal_the_tree_rendering_for_random_templates() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events = [order(), Event::new(json!(5)), Event::new(json!({"items": ["x", {"y": [1, 2]}], "total": 1e300}))];
    for _ in 0..500 {
        let template = random_template(&mut rng, 3).to_string();
        let Ok(t) = Template::parse(&template) else { continue };
        for e in &events {
            render_checked(&t, &e.ctx());
        }
    }
    // The limit never changes the bytes of a render that fits.
    let t = Template::parse(&json!({"a": "{{data}}", "b": ["{{event}}"]}).to_string()).expect("parses");
    let e = order();
    assert_eq!(t.render_bytes(&e.ctx(), NO_LIMIT), t.render_bytes(&e.ctx(), max_rendered_bytes(1024)));
}

#[test]
fn the_limit_is_a_stated_multiple_of_the_event_size_limit() {
    assert_eq!(max_rendered_bytes(1024 * 1024), MAX_RENDER_FACTOR * 1024 * 1024 + RENDER_HEADROOM);
    assert_eq!(max_rendered_bytes(1024), 4 * 1024 + 1024 * 1024);
    assert_eq!(max_rendered_bytes(usize::MAX), usize::MAX);
    // A template's own text and 256 small fields (1 KiB each) fit, whatever `max_event_size`.
    assert!(max_rendered_bytes(1024) > MAX_TEMPLATE_BYTES + MAX_PLACEHOLDERS * 1024);
}
