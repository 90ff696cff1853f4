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
//!   expanded again (values are written as JSON values or escaped string contents, never into
//!   template text);
//! - every placeholder is checked when the template is parsed, so a render can only fail by
//!   passing its size limit;
//! - a template is at most [`MAX_TEMPLATE_BYTES`] long and holds at most
//!   [`MAX_PLACEHOLDERS`] placeholders;
//! - rendering streams: the output is written into one buffer as the template is walked, each
//!   value serialised from the event by reference, never copied per placeholder; the buffer is
//!   checked against a limit at every write, so a render holds at most its limit whatever the
//!   template multiplies. The delivery engine gives a template
//!   [`max_rendered_bytes`] of the store's `max_event_size` and fails a delivery whose body
//!   would be larger, at its first attempt and for good (the default body is never limited: it
//!   holds the event once).

mod compile;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::{OffsetDateTime, UtcOffset};

use crate::error::{Error, Result};
use crate::event::StoredEvent;
use crate::pattern::{Pattern, is_system_type};
use compile::Node;
pub use render::TooLarge;

/// The longest template text, in bytes (64 KiB).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

/// The most placeholders one template may hold.
pub const MAX_PLACEHOLDERS: usize = 256;

/// A template's rendered body may be this many times the store's `max_event_size` (plus
/// [`RENDER_HEADROOM`]); see [`max_rendered_bytes`].
pub const MAX_RENDER_FACTOR: usize = 4;

/// Bytes a template's rendered body may take beyond [`MAX_RENDER_FACTOR`] × `max_event_size`
/// (1 MiB): room for the template's own text and the event's fixed fields, so that only a
/// template that copies the event's data or metadata many times can pass the limit.
pub const RENDER_HEADROOM: usize = 1024 * 1024;

/// The most bytes a template may render for one event in a store whose `max_event_size` is
/// `max_event_size`: [`MAX_RENDER_FACTOR`] × `max_event_size` + [`RENDER_HEADROOM`] (5 MiB
/// with the default 1 MiB). This also bounds the memory one delivery spends on its body.
///
/// ```
/// assert_eq!(tidings::template::max_rendered_bytes(1024 * 1024), 5 * 1024 * 1024);
/// ```
pub fn max_rendered_bytes(max_event_size: usize) -> usize {
    max_event_size.saturating_mul(MAX_RENDER_FACTOR).saturating_add(RENDER_HEADROOM)
}

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
    /// placeholder closed and known, at most [`MAX_PLACEHOLDERS`] of them.
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
        Ok(Template { text: text.to_owned(), root })
    }

    /// The template text as given to [`Template::parse`].
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Renders the template for one event as compact JSON of at most `limit` bytes, streaming:
    /// the output buffer is the only large allocation and never holds more than `limit` bytes.
    ///
    /// The bytes are `serde_json`'s compact form of the rendered document: a string that is
    /// exactly one placeholder becomes the typed value (`null` when a path leads nowhere), a
    /// string mixing text and placeholders stays a string, the rest is copied as written.
    ///
    /// # Errors
    ///
    /// [`TooLarge`] as soon as the output would pass `limit` (nothing is returned then).
    pub fn render_bytes(&self, ctx: &RenderContext<'_>, limit: usize) -> std::result::Result<Vec<u8>, TooLarge> {
        render::render(&self.root, ctx, limit)
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
    /// Templates for prefix patterns with their keys as written, longest prefix first.
    prefixes: Vec<(Pattern, String, Template)>,
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
                prefix => set.prefixes.push((prefix, key.clone(), template)),
            }
        }
        set.prefixes.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.as_str().len()));
        Ok(set)
    }

    /// The template for `event_type`: the exact one, else the one of the longest matching
    /// prefix pattern, else the `*` one (never for a system type); `None` means the default
    /// body.
    pub fn select(&self, event_type: &str) -> Option<&Template> {
        self.select_keyed(event_type).map(|(_, template)| template)
    }

    /// [`TemplateSet::select`], with the pattern the template is kept under.
    fn select_keyed(&self, event_type: &str) -> Option<(&str, &Template)> {
        if let Some((key, template)) = self.exact.get_key_value(event_type) {
            return Some((key, template));
        }
        if let Some((_, key, template)) = self.prefixes.iter().find(|(p, _, _)| p.matches(event_type)) {
            return Some((key, template));
        }
        if is_system_type(event_type) {
            return None;
        }
        self.fallback.as_ref().map(|template| ("*", template))
    }

    /// The body to send for one event: the selected template rendered in at most `limit`
    /// bytes (see [`max_rendered_bytes`]), or [`default_body`], which is never limited.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `template` when the rendered body would pass `limit`;
    /// the reason names the limit and the template's pattern. It is deterministic: rendering
    /// the same event with the same template fails again.
    pub fn render_body(&self, ctx: &RenderContext<'_>, limit: usize) -> Result<Vec<u8>> {
        let Some((key, template)) = self.select_keyed(ctx.event_type) else { return Ok(default_body(ctx)) };
        template.render_bytes(ctx, limit).map_err(|too_large| {
            Error::invalid(
                "template",
                format!(
                    "{too_large} ({MAX_RENDER_FACTOR} × max_event_size + {RENDER_HEADROOM}) with the template \
                     for pattern {}; nothing was sent",
                    pattern_shown(key)
                ),
            )
        })
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
mod render_tests;
#[cfg(test)]
mod tests;
