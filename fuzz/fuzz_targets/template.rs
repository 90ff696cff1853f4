//! Payload templates: `Template::parse` never panics on any text; a template it accepts
//! renders, for any event data and metadata, to valid JSON that keeps the template's top-level
//! keys.
//!
//! Input: `template text \0 data JSON \0 metadata JSON` (invalid JSON data is used as a string).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tidings::template::{RenderContext, Template};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let json = |p: Option<&[u8]>| {
        let raw = String::from_utf8_lossy(p.unwrap_or_default()).into_owned();
        serde_json::from_str::<Value>(&raw).unwrap_or(Value::String(raw))
    };
    let event_data = json(parts.next());
    let metadata = json(parts.next());
    let Ok(template) = Template::parse(&text) else { return };
    assert_eq!(template.text(), text);
    let ctx = RenderContext {
        id: "0190c5e1-7b7a-7cc3-9d2e-1b2c3d4e5f60",
        event_type: "order.created",
        timestamp: time::OffsetDateTime::UNIX_EPOCH,
        source: "fuzz",
        stream: "order-1",
        version: 1,
        position: 1,
        tenant: Some("acme"),
        data: &event_data,
        metadata: &metadata,
    };
    // Without a limit a render cannot fail; `template_memory` fuzzes the limit.
    let bytes = template.render_bytes(&ctx, usize::MAX).expect("a render without a limit cannot fail");
    let rendered: Value = serde_json::from_slice(&bytes).expect("rendering produced invalid JSON");
    if let (Ok(Value::Object(source)), Value::Object(out)) = (serde_json::from_str::<Value>(&text), &rendered) {
        let a: Vec<&String> = source.keys().collect();
        let b: Vec<&String> = out.keys().collect();
        assert_eq!(a, b, "rendering changed the template's keys");
    }
});
