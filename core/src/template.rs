//! Payload templates: the body an endpoint receives, rendered from the event at send time.
//!
//! This module owns the template language, the default body ([`RenderContext::envelope`],
//! [`default_body`]) and the choice of template per event type ([`TemplateSet`]).
//!
//! A template is a JSON document. Placeholders `{{name}}` live only inside JSON strings:
//! a string that is exactly one placeholder (`"{{data}}"`) becomes the typed value; a string
//! with placeholders among other text (`"Order {{data.id}}"`) stays a string with each
//! placeholder replaced by the value's text. Object keys are never templated.
//!
//! Guarantees:
//! - rendering always yields valid JSON, and a value can never add structure to it nor be
//!   expanded again (values are inserted into the parsed tree, never into template text);
//! - every placeholder is checked when the template is parsed, so rendering cannot fail;
//! - a template is at most [`MAX_TEMPLATE_BYTES`] long and holds at most
//!   [`MAX_PLACEHOLDERS`] placeholders, which bounds how much a render can copy.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use time::{OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};
use crate::pattern::{Pattern, is_system_type};

/// The longest template text, in bytes (64 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The most placeholders one template may hold.
pub const MAX_PLACEHOLDERS: usize = 256;

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T05:51:54.123Z`.
pub fn rfc3339_millis(ts: OffsetDateTime) -> String {
    // Converting can only fail at the very edges of the supported years; keep the wall
    // clock then rather than fail.
    let utc = ts.checked_to_offset(UtcOffset::UTC).unwrap_or(ts);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    )
}

/// Everything a template can refer to: one event as it is sent.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The event id.
    pub id: &'a str,
    /// The event type.
    pub event_type: &'a str,
    /// When the event was recorded.
    pub timestamp: OffsetDateTime,
    /// The event's source.
    pub source: &'a str,
    /// The stream the event belongs to.
    pub stream: &'a str,
    /// The event's version within its stream.
    pub version: u64,
    /// The event's global position in the log.
    pub position: u64,
    /// The event's tenant, if any.
    pub tenant: Option<&'a str>,
    /// The event's data.
    pub data: &'a Value,
    /// The event's metadata.
    pub metadata: &'a Value,
}

/// The default body in its documented key order.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    source: &'a str,
    stream: &'a str,
    version: u64,
    position: u64,
    tenant: Option<&'a str>,
    data: &'a Value,
    metadata: &'a Value,
}

impl RenderContext<'_> {
    /// The default body as a JSON object with the keys `id`, `type`, `timestamp` (see
    /// [`rfc3339_millis`]), `source`, `stream`, `version`, `position`, `tenant` (null when
    /// absent), `data` and `metadata`.
    ///
    /// A [`Value`] object keeps its keys sorted; [`default_body`] writes them in the order
    /// above.
    pub fn envelope(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "type": self.event_type,
            "timestamp": rfc3339_millis(self.timestamp),
            "source": self.source,
            "stream": self.stream,
            "version": self.version,
            "position": self.position,
            "tenant": self.tenant,
            "data": self.data,
            "metadata": self.metadata,
        })
    }

    fn ordered_envelope(&self) -> Envelope<'_> {
        Envelope {
            id: self.id,
            event_type: self.event_type,
            timestamp: rfc3339_millis(self.timestamp),
            source: self.source,
            stream: self.stream,
            version: self.version,
            position: self.position,
            tenant: self.tenant,
            data: self.data,
            metadata: self.metadata,
        }
    }
}

/// The default body as compact JSON, keys in the order `id, type, timestamp, source, stream,
/// version, position, tenant, data, metadata`.
pub fn default_body(ctx: &RenderContext<'_>) -> Vec<u8> {
    // Serialising borrowed strings and `Value`s cannot fail; fall back to the sorted form.
    serde_json::to_vec(&ctx.ordered_envelope()).unwrap_or_else(|_| ctx.envelope().to_string().into_bytes())
}

/// What a placeholder refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Id,
    Type,
    Timestamp,
    Source,
    Stream,
    Version,
    Position,
    Tenant,
    Event,
    /// A path into the data; empty for the whole data.
    Data(Vec<String>),
    /// A path into the metadata; empty for the whole metadata.
    Metadata(Vec<String>),
}

impl Field {
    /// Reads the text between `{{` and `}}` (already trimmed).
    fn parse(name: &str) -> std::result::Result<Field, String> {
        if name.is_empty() {
            return Err("empty placeholder \"{{}}\"".to_owned());
        }
        let (head, path) = match name.split_once('.') {
            Some((head, path)) => (head, Some(path)),
            None => (name, None),
        };
        let simple = match head {
            "id" => Some(Field::Id),
            "type" => Some(Field::Type),
            "timestamp" => Some(Field::Timestamp),
            "source" => Some(Field::Source),
            "stream" => Some(Field::Stream),
            "version" => Some(Field::Version),
            "position" => Some(Field::Position),
            "tenant" => Some(Field::Tenant),
            "event" => Some(Field::Event),
            "data" | "metadata" => None,
            _ => return Err(format!("unknown placeholder {}", quoted(name))),
        };
        if let Some(simple) = simple {
            return match path {
                None => Ok(simple),
                Some(_) => Err(format!("placeholder {}: only data and metadata take a path", quoted(name))),
            };
        }
        let mut segments = Vec::new();
        if let Some(path) = path {
            for segment in path.split('.') {
                if segment.is_empty() || segment.contains(['{', '}']) {
                    return Err(format!("placeholder {}: invalid path", quoted(name)));
                }
                segments.push(segment.to_owned());
            }
        }
        Ok(if head == "data" { Field::Data(segments) } else { Field::Metadata(segments) })
    }

    /// The value this placeholder stands for, or `None` when a path leads nowhere.
    fn resolve<'c>(&self, ctx: &RenderContext<'c>) -> Option<Cow<'c, Value>> {
        let owned = |v: Value| Some(Cow::Owned(v));
        match self {
            Field::Id => owned(Value::from(ctx.id)),
            Field::Type => owned(Value::from(ctx.event_type)),
            Field::Timestamp => owned(Value::from(rfc3339_millis(ctx.timestamp))),
            Field::Source => owned(Value::from(ctx.source)),
            Field::Stream => owned(Value::from(ctx.stream)),
            Field::Version => owned(Value::from(ctx.version)),
            Field::Position => owned(Value::from(ctx.position)),
            Field::Tenant => owned(ctx.tenant.map_or(Value::Null, Value::from)),
            Field::Event => owned(ctx.envelope()),
            Field::Data(path) => lookup(ctx.data, path).map(Cow::Borrowed),
            Field::Metadata(path) => lookup(ctx.metadata, path).map(Cow::Borrowed),
        }
    }
}

/// `{{name}}` quoted for an error message, the name cut to 64 characters.
fn quoted(name: &str) -> String {
    const MAX_CHARS: usize = 64;
    match name.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("\"{{{{{}…}}}}\"", &name[..cut]),
        None => format!("\"{{{{{name}}}}}\""),
    }
}

/// Follows `path` from `root`: object keys by name, array elements by decimal index.
fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut current = root;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => {
                if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                items.get(segment.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(current)
}

/// One piece of an interpolated string.
#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Placeholder(Field),
}

/// A compiled template node.
#[derive(Debug, Clone)]
enum Node {
    /// Output as is (no placeholder inside).
    Literal(Value),
    /// A string that is exactly one placeholder: the typed value (null when missing).
    Whole(Field),
    /// A string mixing text and placeholders: stays a string.
    Interpolated(Vec<Part>),
    Array(Vec<Node>),
    /// Keys are verbatim.
    Object(Vec<(String, Node)>),
}

impl Node {
    fn compile(value: Value, placeholders: &mut usize) -> std::result::Result<Node, String> {
        Ok(match value {
            Value::String(text) => {
                let mut parts = split_placeholders(&text)?;
                let found = parts.iter().filter(|p| matches!(p, Part::Placeholder(_))).count();
                *placeholders += found;
                if *placeholders > MAX_PLACEHOLDERS {
                    return Err(format!("more than {MAX_PLACEHOLDERS} placeholders"));
                }
                if found == 0 {
                    Node::Literal(Value::String(text))
                } else if parts.len() == 1 {
                    match parts.pop() {
                        Some(Part::Placeholder(source)) => Node::Whole(source),
                        _ => Node::Literal(Value::String(text)),
                    }
                } else {
                    Node::Interpolated(parts)
                }
            }
            Value::Array(items) => {
                let nodes = items
                    .into_iter()
                    .map(|item| Node::compile(item, placeholders))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Literal(_))) {
                    Node::Literal(Value::Array(nodes.into_iter().map(Node::into_literal).collect()))
                } else {
                    Node::Array(nodes)
                }
            }
            Value::Object(map) => {
                let entries = map
                    .into_iter()
                    .map(|(key, item)| Ok((key, Node::compile(item, placeholders)?)))
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                if entries.iter().all(|(_, n)| matches!(n, Node::Literal(_))) {
                    Node::Literal(Value::Object(entries.into_iter().map(|(k, n)| (k, n.into_literal())).collect()))
                } else {
                    Node::Object(entries)
                }
            }
            scalar => Node::Literal(scalar),
        })
    }

    /// The value of a node known to be a literal.
    fn into_literal(self) -> Value {
        match self {
            Node::Literal(value) => value,
            _ => Value::Null,
        }
    }

    fn render(&self, ctx: &RenderContext<'_>) -> Value {
        match self {
            Node::Literal(value) => value.clone(),
            Node::Whole(source) => source.resolve(ctx).map_or(Value::Null, Cow::into_owned),
            Node::Interpolated(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(text) => out.push_str(text),
                        Part::Placeholder(source) => match source.resolve(ctx).as_deref() {
                            None => {}
                            Some(Value::String(s)) => out.push_str(s),
                            Some(other) => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            Node::Array(items) => Value::Array(items.iter().map(|n| n.render(ctx)).collect()),
            Node::Object(entries) => {
                Value::Object(entries.iter().map(|(k, n)| (k.clone(), n.render(ctx))).collect::<Map<_, _>>())
            }
        }
    }
}

/// Splits a template string into text and placeholders.
fn split_placeholders(text: &str) -> std::result::Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("unterminated \"{{\" (a placeholder is closed with \"}}\")".to_owned());
        };
        parts.push(Part::Placeholder(Field::parse(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// A parsed payload template; see the [module documentation](self) for the language.
#[derive(Debug, Clone)]
pub struct Template {
    /// The template as written.
    text: String,
    /// The compiled tree.
    root: Node,
}

impl Template {
    /// Parses and checks a template: valid JSON of at most [`MAX_TEMPLATE_BYTES`], every
    /// placeholder closed and known, at most [`MAX_PLACEHOLDERS`] of them. The template is
    /// also rendered once against a sample event to make sure its output serialises.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `template` naming the rule that failed.
    pub fn parse(text: &str) -> Result<Template> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(Error::invalid("template", format!("must be at most {MAX_TEMPLATE_BYTES} bytes")));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| Error::invalid("template", format!("not valid JSON: {e}")))?;
        let mut placeholders = 0;
        let root = Node::compile(value, &mut placeholders).map_err(|reason| Error::invalid("template", reason))?;
        let template = Template { text: text.to_owned(), root };

        let empty = Value::Object(Map::new());
        let sample = RenderContext {
            id: "msg_sample",
            event_type: "sample.event",
            timestamp: OffsetDateTime::UNIX_EPOCH,
            source: "sample",
            stream: "sample-1",
            version: 1,
            position: 1,
            tenant: None,
            data: &empty,
            metadata: &empty,
        };
        serde_json::to_vec(&template.render(&sample))
            .map_err(|e| Error::invalid("template", format!("the rendered output does not serialise: {e}")))?;
        Ok(template)
    }

    /// The template text as given to [`Template::parse`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Renders the template for one event.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Value {
        self.root.render(ctx)
    }

    /// Renders the template for one event as compact JSON.
    pub fn render_bytes(&self, ctx: &RenderContext<'_>) -> Vec<u8> {
        self.render(ctx).to_string().into_bytes()
    }
}

/// An endpoint's templates keyed by event type pattern.
///
/// [`TemplateSet::select`] prefers an exact type, then the longest matching prefix pattern,
/// then `*`; system types are only selected by patterns that name them. The default (empty)
/// set always sends the default body.
#[derive(Debug, Clone, Default)]
pub struct TemplateSet {
    /// Templates for exact types.
    exact: BTreeMap<String, Template>,
    /// Templates for prefix patterns, longest prefix first.
    prefixes: Vec<(Pattern, Template)>,
    /// The `*` template.
    fallback: Option<Template>,
}

/// Rewords an [`Error::InvalidInput`] for field `template`, prefixing its reason.
fn as_template_error(err: Error, context: &str) -> Error {
    match err {
        Error::InvalidInput { reason, .. } => Error::invalid("template", format!("{context}{reason}")),
        other => other,
    }
}

impl TemplateSet {
    /// Parses templates keyed by pattern (see [`Pattern::parse`]; `*` is the fallback).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `template` when a key is not a valid pattern or a
    /// template does not parse (see [`Template::parse`]); the reason names the key.
    pub fn parse(entries: &BTreeMap<String, String>) -> Result<TemplateSet> {
        let mut set = TemplateSet::default();
        for (key, text) in entries {
            let pattern = Pattern::parse(key).map_err(|e| as_template_error(e, ""))?;
            let template = Template::parse(text)
                .map_err(|e| as_template_error(e, &format!("for pattern {}: ", pattern_shown(key))))?;
            match pattern {
                Pattern::All => set.fallback = Some(template),
                Pattern::Exact(t) => {
                    set.exact.insert(t, template);
                }
                prefix => set.prefixes.push((prefix, template)),
            }
        }
        set.prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_str().len()));
        Ok(set)
    }

    /// The template for `event_type`: the exact one, else the one of the longest matching
    /// prefix pattern, else the `*` one (never for a system type); `None` means the default
    /// body.
    pub fn select(&self, event_type: &str) -> Option<&Template> {
        if let Some(template) = self.exact.get(event_type) {
            return Some(template);
        }
        if let Some((_, template)) = self.prefixes.iter().find(|(p, _)| p.matches(event_type)) {
            return Some(template);
        }
        if is_system_type(event_type) {
            return None;
        }
        self.fallback.as_ref()
    }

    /// The body to send for one event: the selected template rendered, or [`default_body`].
    pub fn render_body(&self, ctx: &RenderContext<'_>) -> Vec<u8> {
        match self.select(ctx.event_type) {
            Some(template) => template.render_bytes(ctx),
            None => default_body(ctx),
        }
    }

    /// Whether the set holds no template at all.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty() && self.fallback.is_none()
    }
}

/// A pattern key quoted for an error message, cut to 64 characters.
fn pattern_shown(key: &str) -> String {
    const MAX_CHARS: usize = 64;
    match key.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &key[..cut]),
        None => format!("{key:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    struct Event {
        data: Value,
        metadata: Value,
        tenant: Option<&'static str>,
        event_type: &'static str,
    }

    impl Event {
        fn new(data: Value) -> Event {
            Event {
                data,
                metadata: json!({"actor": "alice", "trace": {"id": "t-1"}}),
                tenant: Some("acme"),
                event_type: "order.created",
            }
        }

        fn ctx(&self) -> RenderContext<'_> {
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

    fn order() -> Event {
        Event::new(json!({
            "id": "ord_42",
            "total": 12.5,
            "paid": true,
            "customer": {"name": "Zoë \"Z\" O'Neil"},
            "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
            "tags": null
        }))
    }

    fn render(template: &str, event: &Event) -> Value {
        let t = Template::parse(template).expect("template parses");
        let bytes = t.render_bytes(&event.ctx());
        let reparsed: Value = serde_json::from_slice(&bytes).expect("output is valid JSON");
        assert_eq!(reparsed, t.render(&event.ctx()));
        reparsed
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
        let bytes = t.render_bytes(&e.ctx());
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
        assert_eq!(t.render(&e.ctx()), json!({"a": [1, 2.5, true, null, {"b": "}} lone close"}]}));
    }

    #[test]
    fn slack_style_example() {
        let e = order();
        let t = Template::parse(r#"{"text": "New order {{data.id}} ({{data.total}} EUR)"}"#).expect("parses");
        assert_eq!(t.render_bytes(&e.ctx()), br#"{"text":"New order ord_42 (12.5 EUR)"}"#.to_vec());
    }

    fn set(entries: &[(&str, &str)]) -> Result<TemplateSet> {
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
        assert_eq!(s.render_body(&e.ctx()), br#"{"text":"ord_42"}"#.to_vec());
        let mut other = order();
        other.event_type = "invoice.paid";
        assert_eq!(s.render_body(&other.ctx()), default_body(&other.ctx()));

        let empty = TemplateSet::parse(&BTreeMap::new()).expect("empty is fine");
        assert!(empty.is_empty());
        assert!(empty.select("order.created").is_none());
        assert_eq!(empty.render_body(&e.ctx()), default_body(&e.ctx()));
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
}
