//! How things are shown: aligned text for people, JSON for scripts.
//!
//! Human output goes to stdout as tables or `key  value` blocks; JSON output is one document
//! per command (pretty-printed), or one compact object per line for streams (`events tail`,
//! `stats --watch`, `deliver`). Auth tokens and custom header values never appear. The signing
//! secret appears only when the command was given `--show-secrets`, and so do the parts of an
//! endpoint URL that often hold a credential (user info, query values, fragment): otherwise a
//! URL is shown as [`tidings::redacted_url`] makes it (`https://h/in?token=redacted`), in text
//! and JSON alike (see [`url`]).
//!
//! Text from the database or from a receiver (names, URLs, reasons, response bodies) never
//! reaches the terminal raw: every write to stdout escapes control characters (`\u{1b}`), bar
//! the newlines of the layout, and JSON escapes them as `\u001b` (see [`clean`], [`json_text`]).

use std::borrow::Cow;
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A timestamp for people: `2026-05-01 12:00:00Z`.
pub fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A timestamp for scripts: RFC 3339 in UTC.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn opt_rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// A latency for people: `850 µs`, `1.2 ms`, `2.31 s`.
pub fn latency(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1_000.0)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// An optional latency for people (`-` when absent).
pub fn opt_latency(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), latency)
}

/// A configured duration for people: `15s`, `10h`, `1m 30s`.
pub fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Milliseconds for scripts (fractional below 1 ms).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

fn opt_millis(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(millis(d)))
}

/// A ratio as a percentage for people (`-` when absent).
pub fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0))
}

/// Shortens `text` to at most `max` characters, marking the cut with `…`.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Characters that must not reach a terminal as they are: C0 and C1 controls and DEL (escape
/// sequences, bells, carriage returns, backspaces) and the bidirectional overrides and isolates
/// (which reorder what is shown).
fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) && !keep(c) {
            // `\n`, `\r`, `\t`, or `\u{1b}`: visible, and inert on any terminal.
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` with every control character escaped (`\u{1b}`, `\n`...): one inert line, safe to
/// print whatever the database or a receiver put in it.
pub fn clean(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// Like [`clean`], but newlines are kept (for multi-line output).
pub fn clean_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

/// JSON text with the characters serde_json leaves raw inside strings (DEL, C1 controls,
/// bidirectional overrides) written as `\uXXXX` escapes: the same JSON value, inert on a
/// terminal. They can only occur inside strings, where the escape means the same character;
/// the only raw controls outside strings are the layout's whitespace, which stays.
pub fn json_text(serialized: String) -> String {
    let raw = |c: char| unsafe_char(c) && !matches!(c, '\n' | '\r' | '\t');
    if !serialized.chars().any(raw) {
        return serialized;
    }
    let mut out = String::with_capacity(serialized.len() + 16);
    for c in serialized.chars() {
        if raw(c) {
            // Every such character is in the Basic Multilingual Plane: one escape each.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes to stdout, control characters escaped (newlines excepted, see [`clean_lines`]).
/// When stdout was closed by its reader (`| head`), the process ends at once with status 0, as
/// Unix tools do, instead of panicking; other write errors are ignored.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let text = match args.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(args.to_string()),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(clean_lines(&text).as_bytes()).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a JSON document (pretty) on stdout.
pub fn print_json(value: &Value) {
    outln!("{}", json_text(serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())));
}

/// Prints one compact JSON object on its own line and flushes (for streams).
pub fn print_json_line(value: &Value) {
    outln!("{}", json_text(value.to_string()));
}

/// A text table with left-aligned columns separated by two spaces.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Table {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Adds a row (control characters in cells are escaped, so columns stay aligned).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| clean(&c).into_owned()).collect());
    }

    /// The table as text, one line per row, with `indent` spaces before each line.
    pub fn render(&self, indent: usize) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&" ".repeat(indent));
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                text.push_str(&" ".repeat(pad));
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        out!("{}", self.render(0));
    }
}

/// Prints `key  value` lines with the values aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (key, value) in fields {
        outln!("{key:<width$}  {value}");
    }
}

mod endpoints;
mod records;

pub use endpoints::*;
pub use records::*;

#[cfg(test)]
mod tests {
    use super::endpoints::url_text;
    use super::*;
    use tidings::CircuitState;

    #[test]
    fn latencies_read_well() {
        assert_eq!(latency(Duration::from_micros(850)), "850 µs");
        assert_eq!(latency(Duration::from_micros(1_250)), "1.2 ms");
        assert_eq!(latency(Duration::from_millis(2_310)), "2.31 s");
        assert_eq!(millis(Duration::from_micros(1_234)), 1.234);
    }

    #[test]
    fn tables_align_and_trim() {
        let mut t = Table::new(["A", "LONG HEADER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(2), "  A          LONG HEADER\n  wide cell  x\n");
    }

    #[test]
    fn control_characters_are_printed_inert() {
        assert!(matches!(clean("plain text, ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            clean("a\u{1b}[2Jb\u{7}\r\n\t\u{9b}\u{7f}\u{202e}"),
            "a\\u{1b}[2Jb\\u{7}\\r\\n\\t\\u{9b}\\u{7f}\\u{202e}"
        );
        assert_eq!(clean_lines("one\ntwo\u{1b}"), "one\ntwo\\u{1b}");
        let value = json!({"s": "x\u{1b}\u{9b}\u{7f}\u{202e}\n"});
        let text = json_text(serde_json::to_string_pretty(&value).expect("json"));
        assert!(!text.chars().any(|c| unsafe_char(c) && c != '\n'), "{text:?}");
        assert!(text.contains(r"\u009b") && text.contains(r"\u007f") && text.contains(r"\u202e"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).expect("still JSON"), value);
    }

    #[test]
    fn circuits_read_well() {
        let at = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(circuit_text(CircuitState::Closed, None), "closed");
        assert!(circuit_text(CircuitState::Open, Some(at)).starts_with("open until 1970-01-01 00:00:00Z"));
        assert!(circuit_text(CircuitState::HalfOpen, Some(at)).starts_with("half_open until 1970-01-01"));
    }

    #[test]
    fn urls_hide_their_credentials_unless_asked() {
        let raw = "https://u:pw@h.example/in?token=t0k&x=1#frag";
        assert_eq!(url(raw, false), "https://redacted@h.example/in?token=redacted&x=redacted#redacted");
        assert_eq!(url(raw, true), raw);
        assert_eq!(url_text("https://h.example/in", false), "https://h.example/in");
        assert!(url_text(raw, false).ends_with("(--show-secrets prints it in full)"));
    }

    #[test]
    fn shortening_marks_the_cut() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }
}
