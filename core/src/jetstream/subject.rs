//! A JetStream endpoint's subject template: which subject each event is published on.
//!
//! The template is literal subject text with placeholders: `{type}` (the event type; its dots
//! stay token separators, so `tidings.{type}` puts `order.created` on
//! `tidings.order.created`), `{stream}` and `{tenant}` (each exactly one token: a dot in the
//! value becomes `_`; no tenant renders `_`) and `{partition:N}` (a stable partition of the
//! stream, `0` to `N-1`: the first eight bytes of the stream name's SHA-256, modulo `N`, the
//! same in every process and release). The default is [`DEFAULT_SUBJECT`].
//!
//! Checked at creation ([`SubjectTemplate::parse`]): at most [`MAX_SUBJECT_TEMPLATE`] bytes,
//! every placeholder known and closed, no empty token, no wildcard (`*`, `>`), no whitespace or
//! control character. Rendering never yields an invalid subject: characters a subject cannot
//! carry (whitespace, control characters, `*`, `>`) in a value become `_`, and so does an empty
//! token.

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The subject used when an endpoint names none.
pub const DEFAULT_SUBJECT: &str = "tidings.{type}";

/// The longest subject template accepted, in bytes.
pub const MAX_SUBJECT_TEMPLATE: usize = 256;

/// The most partitions `{partition:N}` may name.
pub const MAX_PARTITIONS: u32 = 4096;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Type,
    Stream,
    Tenant,
    Partition(u32),
}

/// A checked subject template (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate {
    parts: Vec<Part>,
}

/// What a subject is rendered from.
#[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
pub(crate) struct SubjectValues<'a> {
    pub event_type: &'a str,
    pub stream: &'a str,
    pub tenant: Option<&'a str>,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("subject", reason)
}

impl SubjectTemplate {
    /// Parses and checks `text`.
    ///
    /// ```
    /// use tidings::jetstream::SubjectTemplate;
    /// assert!(SubjectTemplate::parse("tidings.{type}").is_ok());
    /// assert!(SubjectTemplate::parse("orders.{partition:8}.{stream}").is_ok());
    /// assert!(SubjectTemplate::parse("orders.>").is_err());
    /// assert!(SubjectTemplate::parse("orders..{type}").is_err());
    /// assert!(SubjectTemplate::parse("orders.{kind}").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `subject`, naming the rule that failed.
    pub fn parse(text: &str) -> Result<SubjectTemplate> {
        if text.is_empty() || text.len() > MAX_SUBJECT_TEMPLATE {
            return Err(invalid(format!("must be 1 to {MAX_SUBJECT_TEMPLATE} bytes")));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain whitespace or control characters"));
        }
        if text.contains(['*', '>']) {
            return Err(invalid("must not contain wildcards (* or >): a message is published on one subject"));
        }
        let parts = parse_parts(text)?;
        // Placeholders always render at least one character, so a token is empty exactly when
        // the literal text around the placeholders leaves two dots (or an end) together.
        let skeleton: String = parts.iter().map(|p| if let Part::Literal(s) = p { s.as_str() } else { "x" }).collect();
        if skeleton.split('.').any(str::is_empty) {
            return Err(invalid("must not have empty tokens (a leading, trailing or doubled dot)"));
        }
        Ok(SubjectTemplate { parts })
    }

    /// The template of an endpoint: its own, or [`DEFAULT_SUBJECT`].
    pub(crate) fn of(subject: Option<&str>) -> Result<SubjectTemplate> {
        SubjectTemplate::parse(subject.unwrap_or(DEFAULT_SUBJECT))
    }

    /// The subject of one event.
    #[cfg_attr(not(feature = "jetstream"), allow(dead_code))]
    pub(crate) fn render(&self, values: &SubjectValues<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Type => push_value(&mut out, values.event_type, true),
                Part::Stream => push_value(&mut out, values.stream, false),
                Part::Tenant => push_value(&mut out, values.tenant.unwrap_or(""), false),
                Part::Partition(n) => out.push_str(&partition(values.stream, *n).to_string()),
            }
        }
        // A value's dots may leave an empty token (`a..b`, a leading dot): fill it.
        if out.split('.').any(str::is_empty) {
            out = out.split('.').map(|t| if t.is_empty() { "_" } else { t }).collect::<Vec<_>>().join(".");
        }
        out
    }
}

fn parse_parts(text: &str) -> Result<Vec<Part>> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if rest[..open].contains('}') {
            return Err(invalid("has a `}` without its `{`"));
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| invalid("has a `{` without its `}`"))?;
        parts.push(placeholder(&after[..close])?);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(invalid("has a `}` without its `{`"));
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(parts)
}

fn placeholder(name: &str) -> Result<Part> {
    match name {
        "type" => Ok(Part::Type),
        "stream" => Ok(Part::Stream),
        "tenant" => Ok(Part::Tenant),
        _ => {
            let n = name.strip_prefix("partition:").ok_or_else(|| {
                invalid(format!(
                    "unknown placeholder {{{name}}}: use {{type}}, {{stream}}, {{tenant}} or {{partition:N}}"
                ))
            })?;
            match n.parse::<u32>() {
                Ok(n) if (1..=MAX_PARTITIONS).contains(&n) => Ok(Part::Partition(n)),
                _ => Err(invalid(format!("{{partition:N}} needs N between 1 and {MAX_PARTITIONS}"))),
            }
        }
    }
}

/// Appends `value` as subject text: characters a subject cannot carry become `_`; with
/// `keep_dots` false a dot becomes `_` too (the value is one token); an empty value is `_`.
fn push_value(out: &mut String, value: &str, keep_dots: bool) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    out.extend(value.chars().map(|c| match c {
        '.' if keep_dots => '.',
        '.' | '*' | '>' => '_',
        c if c.is_whitespace() || c.is_control() => '_',
        c => c,
    }));
}

/// The stable partition of `stream` among `n`.
pub(crate) fn partition(stream: &str, n: u32) -> u32 {
    let digest = Sha256::digest(stream.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, event_type: &str, stream: &str, tenant: Option<&str>) -> String {
        SubjectTemplate::parse(template).unwrap().render(&SubjectValues { event_type, stream, tenant })
    }

    #[test]
    fn renders_each_placeholder() {
        assert_eq!(render(DEFAULT_SUBJECT, "order.created", "order-1", None), "tidings.order.created");
        assert_eq!(render("t.{tenant}.{stream}", "x", "order.1", Some("acme")), "t.acme.order_1");
        assert_eq!(render("t.{tenant}.{type}", "x", "s", None), "t._.x");
        assert_eq!(render("p{partition:4}.x", "x", "s", None), format!("p{}.x", partition("s", 4)));
        assert_eq!(render("a.{type}", "odd type*>", "s", None), "a.odd_type__");
        assert_eq!(render("a.{type}", ".lead..dots.", "s", None), "a._.lead._.dots._");
        assert_eq!(render("a.{stream}", "x", "", None), "a._");
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        // Fixed values: a change here re-shards every user's streams.
        assert_eq!(partition("order-1", 16), partition("order-1", 16));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let p = partition(&format!("stream-{i}"), 8);
            assert!(p < 8);
            seen.insert(p);
        }
        assert_eq!(seen.len(), 8, "200 streams cover all 8 partitions");
        let digest = Sha256::digest(b"order-1");
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap()) % 16;
        assert_eq!(u64::from(partition("order-1", 16)), expected);
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in [
            "",
            "a.*",
            "a.>",
            "a..b",
            ".a",
            "a.",
            "a b",
            "a.{nope}",
            "a.{type",
            "a.type}",
            "a.{partition:0}",
            "a.{partition:99999}",
            "a.{partition:x}",
            &"a".repeat(MAX_SUBJECT_TEMPLATE + 1),
        ] {
            let err = SubjectTemplate::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { ref field, .. } if field == "subject"), "{bad:?}: {err}");
        }
        for good in ["a", "a.{type}", "{type}", "{tenant}.{stream}.{partition:1}", "x{type}y.z"] {
            assert!(SubjectTemplate::parse(good).is_ok(), "{good}");
        }
    }
}
