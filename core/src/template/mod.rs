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
use crate::event::StoredEvent;
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

impl<'a> RenderContext<'a> {
    /// The context of a recorded event sent from `source` (what a delivery renders).
    pub fn of(event: &'a crate::RecordedEvent, source: &'a str) -> Self {
        RenderContext {
            id: &event.id,
            event_type: &event.event_type,
            timestamp: event.recorded_at,
            source,
            stream: &event.stream,
            version: event.version,
            position: event.position,
            tenant: event.tenant.as_deref(),
            data: &event.data,
            metadata: &event.metadata,
        }
    }
}

/// The default body in its documented key order; `D` is [`Value`], or [`RawValue`](serde_json::value::RawValue) for JSON
/// text written verbatim.
#[derive(Serialize)]
struct Envelope<'a, D: ?Sized> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    source: &'a str,
    stream: &'a str,
    version: u64,
    position: u64,
    tenant: Option<&'a str>,
    data: &'a D,
    metadata: &'a D,
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

    fn ordered_envelope(&self) -> Envelope<'_, Value> {
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

/// The default body of a stored event, its data and metadata written as the log stores them
/// (checked JSON text) instead of parsed and serialised again. The delivery engine sends events
/// this way; the bytes equal [`default_body`]'s, because the log stores `serde_json`'s compact
/// form. Fails when the stored text is not JSON.
pub(crate) fn stored_default_body(event: &StoredEvent, source: &str) -> Result<Vec<u8>> {
    let (data, metadata) = event.raw()?;
    let envelope = Envelope {
        id: &event.id,
        event_type: &event.event_type,
        timestamp: rfc3339_millis(event.recorded_at),
        source,
        stream: &event.stream,
        version: event.version,
        position: event.position,
        tenant: event.tenant.as_deref(),
        data,
        metadata,
    };
    // Borrowed strings, numbers and checked JSON text cannot fail to serialise.
    Ok(serde_json::to_vec(&envelope).unwrap_or_default())
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
mod tests;
