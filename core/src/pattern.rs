//! Event type names and the patterns endpoints subscribe with.
//!
//! This module owns the rules for an event type (dot-separated segments of ASCII letters,
//! digits, `_`, `-` and `:`, at most [`MAX_TYPE_LEN`] bytes) and for filter patterns: `*`
//! (every non-system type), `x.y.*` (every type below `x.y.`) and exact types.
//!
//! Guarantee: system events (types starting with [`SYSTEM_PREFIX`], `tidings.`) are never
//! matched by `*`; a subscriber receives them only through a pattern that names them
//! (`tidings.*`, `tidings.endpoint.*` or an exact type).

use crate::error::{Error, Result};

/// The prefix of the event types that tidings itself emits.
pub const SYSTEM_PREFIX: &str = "tidings.";

/// The longest event type, in bytes.
pub const MAX_TYPE_LEN: usize = 200;

/// The pattern matching every event type except system ones: an endpoint's default `events`,
/// and the key of a template meant for every type.
pub const ANY: &str = "*";

/// `s` quoted for an error message, cut to its first 64 characters.
fn shown(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Checks an event type and says which rule it breaks.
fn check_type(t: &str) -> std::result::Result<(), &'static str> {
    if t.is_empty() || t.len() > MAX_TYPE_LEN {
        return Err("must be 1 to 200 bytes long");
    }
    for segment in t.split('.') {
        if segment.is_empty() {
            return Err("segments separated by '.' must not be empty");
        }
        if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':')) {
            return Err("may only contain ASCII letters, digits, '_', '-', ':' and '.'");
        }
    }
    Ok(())
}

/// Checks an event type: 1 to [`MAX_TYPE_LEN`] bytes of non-empty segments separated by `.`,
/// each made of ASCII letters, digits, `_`, `-` and `:`.
///
/// # Errors
///
/// [`Error::InvalidInput`] on field `type` naming the rule that failed.
pub fn validate_event_type(t: &str) -> Result<()> {
    check_type(t).map_err(|reason| Error::invalid("type", reason))
}

/// Whether `t` is a system event type (starts with [`SYSTEM_PREFIX`]).
pub fn is_system_type(t: &str) -> bool {
    t.starts_with(SYSTEM_PREFIX)
}

/// One filter pattern over event types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// `*`: every event type except system types.
    All,
    /// `x.y.*`: every type that starts with the held prefix, which ends with a dot (`"x.y."`).
    Prefix(String),
    /// One exact event type.
    Exact(String),
}

impl Pattern {
    /// Reads a pattern: `*`, `x.y.*` (where `x.y` is a valid event type) or an exact event type.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `events` for anything else (an empty pattern, a `*`
    /// anywhere but as the whole last segment, an invalid type).
    pub fn parse(s: &str) -> Result<Pattern> {
        let invalid = |reason: &str| Error::invalid("events", format!("pattern {}: {reason}", shown(s)));
        if s == ANY {
            return Ok(Pattern::All);
        }
        if let Some(base) = s.strip_suffix(".*") {
            if base.contains('*') {
                return Err(invalid("'*' may only stand alone as the last segment"));
            }
            check_type(base).map_err(invalid)?;
            return Ok(Pattern::Prefix(format!("{base}.")));
        }
        if s.contains('*') {
            return Err(invalid("'*' may only stand alone as the last segment"));
        }
        check_type(s).map_err(invalid)?;
        Ok(Pattern::Exact(s.to_owned()))
    }

    /// The pattern as written: `*`, `x.y.*` or the exact type.
    pub fn as_str(&self) -> String {
        match self {
            Pattern::All => ANY.to_owned(),
            Pattern::Prefix(prefix) => format!("{prefix}*"),
            Pattern::Exact(t) => t.clone(),
        }
    }

    /// Whether `event_type` is selected by this pattern. `*` never selects system types.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Pattern::All => !is_system_type(event_type),
            Pattern::Prefix(prefix) => event_type.len() > prefix.len() && event_type.starts_with(prefix.as_str()),
            Pattern::Exact(t) => event_type == t,
        }
    }
}

/// The non-empty set of patterns an endpoint subscribes with; an event type is selected when
/// any pattern matches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSet {
    /// Distinct patterns, in the order first given.
    patterns: Vec<Pattern>,
}

impl PatternSet {
    /// Reads a list of patterns (see [`Pattern::parse`]); duplicates are dropped, the first
    /// occurrence keeping its place.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `events` when the list is empty or a pattern is
    /// invalid.
    pub fn parse<I, S>(patterns: I) -> Result<PatternSet>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed: Vec<Pattern> = Vec::new();
        for pattern in patterns {
            let pattern = Pattern::parse(pattern.as_ref())?;
            if !parsed.contains(&pattern) {
                parsed.push(pattern);
            }
        }
        if parsed.is_empty() {
            return Err(Error::invalid("events", "at least one pattern is required"));
        }
        Ok(PatternSet { patterns: parsed })
    }

    /// Whether any pattern of the set matches `event_type`.
    pub fn matches(&self, event_type: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(event_type))
    }

    /// The patterns as written (see [`Pattern::as_str`]), in order, without duplicates.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns.iter().map(Pattern::as_str).collect()
    }

    /// The parsed patterns, in order, without duplicates.
    pub fn as_slice(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether the set holds `*`, so that it matches every non-system event type.
    pub fn is_all(&self) -> bool {
        self.patterns.contains(&Pattern::All)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn valid_event_types() {
        for t in [
            "order",
            "order.created",
            "order.item.added",
            "A-b_c:d.9",
            "tidings.endpoint.disabled",
            "urn:x:y",
            &"a".repeat(200),
        ] {
            assert!(validate_event_type(t).is_ok(), "{t:?} should be valid");
        }
    }

    #[test]
    fn invalid_event_types() {
        for t in [
            "",
            ".",
            ".order",
            "order.",
            "order..created",
            "order created",
            "order/created",
            "order.*",
            "*",
            "ordér",
            "order\n",
            &"a".repeat(201),
        ] {
            let err = validate_event_type(t).expect_err(t);
            assert_eq!(field_of(err), "type", "{t:?}");
        }
    }

    #[test]
    fn system_types() {
        assert!(is_system_type("tidings.endpoint.disabled"));
        assert!(is_system_type("tidings.x"));
        assert!(!is_system_type("tidings"));
        assert!(!is_system_type("tidingsx.y"));
        assert!(!is_system_type("order.tidings.x"));
    }

    #[test]
    fn parse_forms() {
        assert_eq!(Pattern::parse("*").ok(), Some(Pattern::All));
        assert_eq!(Pattern::parse("order.*").ok(), Some(Pattern::Prefix("order.".into())));
        assert_eq!(Pattern::parse("x.y.*").ok(), Some(Pattern::Prefix("x.y.".into())));
        assert_eq!(Pattern::parse("order.created").ok(), Some(Pattern::Exact("order.created".into())));
        assert_eq!(Pattern::parse("tidings.*").ok(), Some(Pattern::Prefix("tidings.".into())));
    }

    #[test]
    fn parse_rejects_bad_patterns() {
        for p in [
            "",
            "or*der",
            "order.*.x",
            "*.order",
            ".*",
            "**",
            "order*",
            "order.**",
            "*.*",
            "order..*",
            "order .*",
            " *",
            "order.*.*",
        ] {
            let err = Pattern::parse(p).expect_err(p);
            assert_eq!(field_of(err), "events", "{p:?}");
        }
        // The base of a prefix must itself fit the length limit.
        let long = format!("{}.*", "a".repeat(201));
        assert!(Pattern::parse(&long).is_err());
        let ok = format!("{}.*", "a".repeat(200));
        assert!(Pattern::parse(&ok).is_ok());
    }

    #[test]
    fn as_str_round_trips() {
        for p in ["*", "order.*", "x.y.*", "order.created", "tidings.*"] {
            let parsed = Pattern::parse(p).expect(p);
            assert_eq!(parsed.as_str(), p);
            assert_eq!(Pattern::parse(&parsed.as_str()).ok(), Some(parsed));
        }
    }

    #[test]
    fn all_matches_everything_but_system_types() {
        let all = Pattern::All;
        assert!(all.matches("order.created"));
        assert!(all.matches("order"));
        assert!(all.matches("tidings"));
        assert!(!all.matches("tidings.endpoint.disabled"));
        assert!(!all.matches("tidings.x"));
    }

    #[test]
    fn prefix_matching() {
        let p = Pattern::parse("order.*").expect("valid");
        assert!(p.matches("order.created"));
        assert!(p.matches("order.item.added"));
        assert!(!p.matches("order"));
        assert!(!p.matches("order."));
        assert!(!p.matches("orders.x"));
        assert!(!p.matches("xorder.created"));
        assert!(!p.matches("tidings.order.created"));
    }

    #[test]
    fn system_events_need_a_pattern_that_names_them() {
        let t = "tidings.endpoint.disabled";
        assert!(Pattern::parse("tidings.*").expect("valid").matches(t));
        assert!(Pattern::parse("tidings.endpoint.*").expect("valid").matches(t));
        assert!(Pattern::parse(t).expect("valid").matches(t));
        assert!(!Pattern::parse("tidings.delivery.*").expect("valid").matches(t));
        assert!(!Pattern::parse("*").expect("valid").matches(t));
    }

    #[test]
    fn exact_matching() {
        let p = Pattern::parse("order.created").expect("valid");
        assert!(p.matches("order.created"));
        assert!(!p.matches("order.created.x"));
        assert!(!p.matches("order"));
        assert!(!p.matches("Order.created"));
    }

    #[test]
    fn pattern_set_rules() {
        let empty: [&str; 0] = [];
        let err = PatternSet::parse(empty).expect_err("empty");
        match err {
            Error::InvalidInput { field, reason } => {
                assert_eq!(field, "events");
                assert_eq!(reason, "at least one pattern is required");
            }
            other => panic!("{other:?}"),
        }
        let err = PatternSet::parse(["order.*", "bad*"]).expect_err("invalid member");
        assert_eq!(field_of(err), "events");

        let set = PatternSet::parse(vec![
            "order.*".to_string(),
            "invoice.paid".to_string(),
            "order.*".to_string(),
            "invoice.paid".to_string(),
        ])
        .expect("valid");
        assert_eq!(set.patterns(), vec!["order.*", "invoice.paid"]);
        assert_eq!(set.as_slice().len(), 2);
        assert!(!set.is_all());
        assert!(set.matches("order.created"));
        assert!(set.matches("invoice.paid"));
        assert!(!set.matches("invoice.created"));
        assert!(!set.matches("tidings.endpoint.disabled"));
    }

    #[test]
    fn pattern_set_with_all_and_system() {
        let set = PatternSet::parse(["*"]).expect("valid");
        assert!(set.is_all());
        assert!(set.matches("anything.at.all"));
        assert!(!set.matches("tidings.endpoint.disabled"));

        let set = PatternSet::parse(["*", "tidings.endpoint.*"]).expect("valid");
        assert!(set.is_all());
        assert!(set.matches("tidings.endpoint.disabled"));
        assert!(!set.matches("tidings.delivery.failed"));
    }
}
