//! Rendering a compiled template: the node tree is walked once and JSON is written straight
//! into one output buffer, each placeholder's value serialised from the event by reference.
//!
//! Guarantees:
//! - no value is copied into an intermediate tree: a render allocates its output buffer and
//!   little else (a timestamp's text, an interpolated number's digits), whatever the number
//!   of placeholders;
//! - the output buffer never holds more than the limit a render is given, neither in length
//!   nor in capacity: the render stops with [`TooLarge`] at the first write that would pass
//!   it, so a template that multiplies a large event costs at most the limit;
//! - the bytes equal `serde_json`'s compact serialisation of the rendered document (strings
//!   escaped as `serde_json` escapes them, object keys in the order a [`serde_json::Map`]
//!   keeps them, including the keys of the `{{event}}` envelope).

use std::fmt;
use std::io::{self, Write};
use std::sync::OnceLock;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::compile::{Field, Node, Part, lookup};
use super::{RenderContext, rfc3339_millis};

/// A render stopped because its output would be longer than the limit it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The limit, in bytes.
    pub limit: usize,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the rendered body would exceed {} bytes", self.limit)
    }
}

impl std::error::Error for TooLarge {}

/// The first allocation of an output buffer, in bytes (most bodies are small).
const FIRST_CAPACITY: usize = 256;

/// An output buffer that refuses to grow past `limit`: a write that would pass it fails (and
/// writes nothing), and its capacity is never raised above the limit.
#[derive(Debug)]
pub(crate) struct Bounded {
    buf: Vec<u8>,
    limit: usize,
}

impl Bounded {
    /// An empty buffer for at most `limit` bytes (nothing is allocated yet).
    pub(crate) fn new(limit: usize) -> Bounded {
        Bounded { buf: Vec::new(), limit }
    }

    /// The bytes written so far.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes allocated for the buffer (never more than the limit).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The bytes written.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

impl Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let Some(needed) = self.buf.len().checked_add(bytes.len()).filter(|n| *n <= self.limit) else {
            return Err(io::Error::other(TooLarge { limit: self.limit }));
        };
        if needed > self.buf.capacity() {
            // Doubling, as a Vec does, but never past the limit.
            let grown = self.buf.capacity().saturating_mul(2).max(FIRST_CAPACITY);
            let capacity = grown.max(needed).min(self.limit);
            self.buf.reserve_exact(capacity - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what it is given as the contents of a JSON string (between the quotes), escaped as
/// `serde_json` escapes strings: `"`, `\` and control characters; everything else verbatim.
/// Escaping works byte by byte, so text may arrive in pieces cut anywhere.
struct Escaping<'b> {
    out: &'b mut Bounded,
}

/// How `serde_json` writes a byte inside a string when not verbatim: the escape and its length.
fn escape(byte: u8) -> Option<([u8; 6], usize)> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x08 => b'b',
        0x0c => b'f',
        0x00..=0x1f => {
            let (high, low) = (HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]);
            return Some(([b'\\', b'u', b'0', b'0', high, low], 6));
        }
        _ => return None,
    };
    Some(([b'\\', short, 0, 0, 0, 0], 2))
}

impl Write for Escaping<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut verbatim_from = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            if let Some((escaped, len)) = escape(byte) {
                self.out.write_all(&bytes[verbatim_from..i])?;
                self.out.write_all(&escaped[..len])?;
                verbatim_from = i + 1;
            }
        }
        self.out.write_all(&bytes[verbatim_from..])?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a placeholder stands for in one event, borrowed from it where possible.
enum Resolved<'c> {
    Text(&'c str),
    Timestamp(time::OffsetDateTime),
    Number(u64),
    Null,
    Json(&'c Value),
    /// The default envelope of the event.
    Event(&'c RenderContext<'c>),
}

/// The value of `field` in `ctx`, or `None` when a path leads nowhere.
fn resolve<'c>(field: &'c Field, ctx: &'c RenderContext<'c>) -> Option<Resolved<'c>> {
    Some(match field {
        Field::Id => Resolved::Text(ctx.id),
        Field::Type => Resolved::Text(ctx.event_type),
        Field::Timestamp => Resolved::Timestamp(ctx.timestamp),
        Field::Source => Resolved::Text(ctx.source),
        Field::Stream => Resolved::Text(ctx.stream),
        Field::Version => Resolved::Number(ctx.version),
        Field::Position => Resolved::Number(ctx.position),
        Field::Tenant => ctx.tenant.map_or(Resolved::Null, Resolved::Text),
        Field::Event => Resolved::Event(ctx),
        Field::Data(path) => Resolved::Json(lookup(ctx.data, path)?),
        Field::Metadata(path) => Resolved::Json(lookup(ctx.metadata, path)?),
    })
}

/// Serialises `value` compactly into `out`.
fn serialise<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::from)
}

/// Writes a placeholder that is a whole string: the typed value, `null` when missing.
fn write_typed(value: Option<Resolved<'_>>, out: &mut Bounded) -> io::Result<()> {
    match value {
        None | Some(Resolved::Null) => out.write_all(b"null"),
        Some(Resolved::Text(text)) => serialise(out, text),
        Some(Resolved::Timestamp(ts)) => serialise(out, &rfc3339_millis(ts)),
        Some(Resolved::Number(n)) => serialise(out, &n),
        Some(Resolved::Json(value)) => serialise(out, value),
        Some(Resolved::Event(ctx)) => serialise(out, &EventObject(ctx)),
    }
}

/// Writes a placeholder inside a string: its text (a string's characters, anything else as
/// compact JSON), nothing when missing.
fn write_text(value: Option<Resolved<'_>>, out: &mut Escaping<'_>) -> io::Result<()> {
    match value {
        None => Ok(()),
        Some(Resolved::Null) => out.write_all(b"null"),
        Some(Resolved::Text(text)) => out.write_all(text.as_bytes()),
        Some(Resolved::Timestamp(ts)) => out.write_all(rfc3339_millis(ts).as_bytes()),
        Some(Resolved::Number(n)) => write!(out, "{n}"),
        Some(Resolved::Json(Value::String(text))) => out.write_all(text.as_bytes()),
        Some(Resolved::Json(value)) => serialise(out, value),
        Some(Resolved::Event(ctx)) => serialise(out, &EventObject(ctx)),
    }
}

/// Writes one node of the template for `ctx`.
fn write_node(node: &Node, ctx: &RenderContext<'_>, out: &mut Bounded) -> io::Result<()> {
    match node {
        Node::Literal(value) => serialise(out, value),
        Node::Whole(field) => write_typed(resolve(field, ctx), out),
        Node::Interpolated(parts) => {
            out.write_all(b"\"")?;
            let mut text = Escaping { out: &mut *out };
            for part in parts {
                match part {
                    Part::Text(piece) => text.write_all(piece.as_bytes())?,
                    Part::Placeholder(field) => write_text(resolve(field, ctx), &mut text)?,
                }
            }
            out.write_all(b"\"")
        }
        Node::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_node(item, ctx, out)?;
            }
            out.write_all(b"]")
        }
        Node::Object(entries) => {
            out.write_all(b"{")?;
            for (i, (key, item)) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serialise(&mut *out, key)?;
                out.write_all(b":")?;
                write_node(item, ctx, out)?;
            }
            out.write_all(b"}")
        }
    }
}

/// Renders `root` for `ctx` into `out`; fails only when the output would pass `out`'s limit
/// (what was written until then stays in `out`).
pub(crate) fn render_into(root: &Node, ctx: &RenderContext<'_>, out: &mut Bounded) -> Result<(), TooLarge> {
    // The writers fail only at the limit, and serialising a `Value` cannot fail otherwise.
    write_node(root, ctx, out).map_err(|_| TooLarge { limit: out.limit })
}

/// Renders `root` for `ctx` as compact JSON of at most `limit` bytes.
pub(super) fn render(root: &Node, ctx: &RenderContext<'_>, limit: usize) -> Result<Vec<u8>, TooLarge> {
    let mut out = Bounded::new(limit);
    render_into(root, ctx, &mut out)?;
    Ok(out.into_bytes())
}

/// The envelope's keys, as [`RenderContext::envelope`] builds them.
const ENVELOPE_KEYS: [&str; 10] =
    ["id", "type", "timestamp", "source", "stream", "version", "position", "tenant", "data", "metadata"];

/// The envelope's keys in the order a [`Map`] keeps them (sorted, or as inserted when
/// `serde_json`'s `preserve_order` feature is on), so `{{event}}` writes them as the
/// [`Value`] of [`RenderContext::envelope`] would.
fn envelope_key_order() -> &'static [&'static str] {
    static ORDER: OnceLock<Vec<&'static str>> = OnceLock::new();
    ORDER.get_or_init(|| {
        let map: Map<String, Value> = ENVELOPE_KEYS.iter().map(|k| ((*k).to_owned(), Value::Null)).collect();
        map.keys().filter_map(|key| ENVELOPE_KEYS.iter().copied().find(|k| k == key)).collect()
    })
}

/// The `{{event}}` envelope, serialised from the event by reference.
struct EventObject<'c>(&'c RenderContext<'c>);

impl Serialize for EventObject<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ctx = self.0;
        let keys = envelope_key_order();
        let mut map = serializer.serialize_map(Some(keys.len()))?;
        for &key in keys {
            match key {
                "id" => map.serialize_entry(key, ctx.id)?,
                "type" => map.serialize_entry(key, ctx.event_type)?,
                "timestamp" => map.serialize_entry(key, &rfc3339_millis(ctx.timestamp))?,
                "source" => map.serialize_entry(key, ctx.source)?,
                "stream" => map.serialize_entry(key, ctx.stream)?,
                "version" => map.serialize_entry(key, &ctx.version)?,
                "position" => map.serialize_entry(key, &ctx.position)?,
                "tenant" => map.serialize_entry(key, &ctx.tenant)?,
                "data" => map.serialize_entry(key, ctx.data)?,
                _ => map.serialize_entry(key, ctx.metadata)?,
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_pieces_cut_anywhere_equals_serde_json() {
        let text: String = (0u8..=0x7f).map(char::from).chain("é 漢 😀 \u{2028}".chars()).collect();
        let expected = serde_json::to_string(&text).expect("serialises");
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut out = Bounded::new(usize::MAX);
            out.write_all(b"\"").expect("fits");
            let mut escaping = Escaping { out: &mut out };
            escaping.write_all(&bytes[..cut]).expect("fits");
            escaping.write_all(&bytes[cut..]).expect("fits");
            out.write_all(b"\"").expect("fits");
            assert_eq!(std::str::from_utf8(out.bytes()), Ok(expected.as_str()), "cut at {cut}");
        }
    }

    #[test]
    fn a_write_past_the_limit_writes_nothing() {
        let mut out = Bounded::new(10);
        out.write_all(b"12345678").expect("fits");
        assert!(out.write_all(b"abc").is_err());
        assert_eq!(out.bytes(), b"12345678");
        out.write_all(b"90").expect("fits exactly");
        assert_eq!(out.bytes(), b"1234567890");
        assert!(out.write_all(b"x").is_err());
        assert!(out.capacity() <= 10);
    }
}
