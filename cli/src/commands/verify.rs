//! `tidings verify --secret S < request.json`: checks a received webhook's Standard Webhooks
//! signature (and optionally a `sha256=<hex>` header), for people debugging a receiver.
//!
//! The request file is JSON:
//!
//! ```json
//! {
//!   "body": "{\"id\":\"...\",\"type\":\"order.created\",...}",
//!   "headers": {
//!     "webhook-id": "0190c5e1-...",
//!     "webhook-timestamp": "1767225600",
//!     "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
//!   }
//! }
//! ```
//!
//! `body` is the raw body exactly as received, as a JSON string (an object would be
//! re-serialised and its bytes would change); `body_base64` may replace it. `headers` is an
//! object (a value may be a list for repeated headers) or a list of `[name, value]` pairs;
//! names match in any letter case.
//!
//! At most [`MAX_REQUEST_BYTES`] is read. A rejection says which part of the request is wrong
//! (a missing or malformed header, the timestamp's distance from now, no v1 signature, or v1
//! signatures that match none of the secrets), but never what the right signature would be:
//! printing it would let anyone holding the CLI and a secret's output forge requests.

use std::io::Read;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use tidings::signing::{self, Secret};
use tidings::{Error as CoreError, SignatureFailure};

use super::Ctx;
use crate::args::VerifyArgs;
use crate::error::{CliError, Kind, Result};
use crate::output;
use crate::sources::Reader;

/// A request read from stdin.
#[derive(Debug, PartialEq)]
pub struct Request {
    /// The raw body.
    pub body: Vec<u8>,
    /// Header pairs, in order.
    pub headers: Vec<(String, String)>,
}

fn header_value(name: &str, value: &Value, out: &mut Vec<(String, String)>) -> Result<()> {
    match value {
        Value::String(s) => out.push((name.to_string(), s.clone())),
        Value::Number(n) => out.push((name.to_string(), n.to_string())),
        Value::Array(items) => {
            for item in items {
                header_value(name, item, out)?;
            }
        }
        _ => return Err(CliError::invalid(format!("request file: header {name:?} must be a string"))),
    }
    Ok(())
}

/// Parses the request file (see the module docs).
pub fn parse_request(text: &str) -> Result<Request> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| CliError::invalid(format!("request file is not JSON: {e}")))?;
    let body = match (value.get("body"), value.get("body_base64")) {
        (Some(Value::String(s)), _) => s.as_bytes().to_vec(),
        (Some(Value::Null) | None, Some(Value::String(b64))) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| CliError::invalid(format!("request file: body_base64 is not base64: {e}")))?,
        (Some(_), _) => {
            return Err(CliError::invalid(
                "request file: \"body\" must be the raw body as a JSON string (re-serialising an object would change \
                 its bytes and so its signature)",
            ));
        }
        (None, _) => return Err(CliError::invalid("request file: missing \"body\" (or \"body_base64\")")),
    };
    let mut headers = Vec::new();
    match value.get("headers") {
        Some(Value::Object(map)) => {
            for (name, v) in map {
                header_value(name, v, &mut headers)?;
            }
        }
        Some(Value::Array(pairs)) => {
            for pair in pairs {
                match pair.as_array().map(Vec::as_slice) {
                    Some([Value::String(name), v]) => header_value(name, v, &mut headers)?,
                    _ => return Err(CliError::invalid("request file: \"headers\" pairs must be [name, value]")),
                }
            }
        }
        _ => return Err(CliError::invalid("request file: missing \"headers\" (an object or a list of pairs)")),
    }
    Ok(Request { body, headers })
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The most `tidings verify` reads from stdin: 16 MiB. tidings has no fixed body size (a
/// store's `max_event_size`, 1 MiB by default, is configurable, and a body adds an envelope and
/// JSON or base64 escaping), so this leaves room for any real webhook while `< /dev/zero` ends
/// with an error instead of filling the memory.
pub const MAX_REQUEST_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the request file, refusing one larger than [`MAX_REQUEST_BYTES`] (reading one byte
/// more than the limit, never the rest).
fn read_request(input: impl Read) -> Result<String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::invalid(format!("cannot read the request from stdin: {e}")))?;
    if bytes.len() as u64 > MAX_REQUEST_BYTES {
        return Err(CliError::invalid(format!(
            "the request on stdin is larger than {} MiB, the most `tidings verify` reads",
            MAX_REQUEST_BYTES / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::invalid("cannot read the request from stdin: it is not UTF-8 (use \"body_base64\")"))
}

/// A secret to verify with, and how to name it without showing it.
struct Key {
    value: String,
    label: String,
}

/// The secrets of `--secret` and `--secret-from`, in that order.
fn keys(args: &VerifyArgs) -> Result<Vec<Key>> {
    let mut reader = Reader::without_stdin("the request in `tidings verify`");
    let from = reader.read_all("--secret-from", &args.secrets_from)?;
    let count = args.secrets.len() + from.len();
    let given = args.secrets.iter().map(|v| (v.clone(), String::new()));
    let read = from.into_iter().zip(&args.secrets_from).map(|(v, source)| (v, format!(" (--secret-from {source})")));
    Ok(given
        .chain(read)
        .enumerate()
        .map(|(i, (value, source))| Key { value, label: format!("secret {} of {count}{source}", i + 1) })
        .collect())
}

/// Runs `tidings verify`.
pub fn run(ctx: &Ctx, args: &VerifyArgs) -> Result<()> {
    let keys = keys(args)?;
    let request = parse_request(&read_request(std::io::stdin().lock())?)?;
    let secrets: Vec<&str> = keys.iter().map(|k| k.value.as_str()).collect();
    let pairs = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let result = if args.ignore_timestamp {
        let now = signed_header(&request, "timestamp")
            .and_then(|(_, t)| t.trim().parse::<i64>().ok())
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        signing::verify_at(&request.body, pairs, &secrets, args.tolerance, now)
    } else {
        tidings::verify(&request.body, pairs, &secrets, args.tolerance)
    };
    let verified = result.map_err(|err| reject(ctx, err, &request, &keys, args))?;
    if let Some(name) = &args.signature_header {
        check_sha256_header(ctx, &request, &secrets, name)?;
    }
    let when = time::OffsetDateTime::from_unix_timestamp(verified.timestamp).map(output::time).unwrap_or_default();
    if ctx.json {
        output::print_json(&json!({"valid": true, "id": verified.id, "timestamp": verified.timestamp}));
    } else {
        outln!("signature valid: webhook-id {}, sent at {when} ({})", verified.id, verified.timestamp);
    }
    Ok(())
}

/// The error for a rejected signature: core's reason and what exactly was wrong (never the
/// signature that would have matched), also printed as JSON with `--json`.
fn reject(ctx: &Ctx, err: CoreError, request: &Request, keys: &[Key], args: &VerifyArgs) -> CliError {
    let CoreError::Signature(failure) = err else {
        return err.into();
    };
    let message = match explain(failure, request, keys, args) {
        Some(detail) => format!("{err}: {detail}"),
        None => err.to_string(),
    };
    if ctx.json {
        output::print_json(&json!({"valid": false, "failure": failure.as_str(), "reason": message}));
    }
    CliError::new(Kind::Signature, message)
}

/// What exactly is wrong, for each of core's reasons.
fn explain(failure: SignatureFailure, request: &Request, keys: &[Key], args: &VerifyArgs) -> Option<String> {
    match failure {
        SignatureFailure::MissingHeader => Some(missing_headers(request)),
        SignatureFailure::MalformedHeader => Some(malformed_header(request)),
        SignatureFailure::TimestampTooOld | SignatureFailure::TimestampInFuture => timestamp_skew(request, args),
        SignatureFailure::NoMatch => Some(no_match(request, keys.len())),
        SignatureFailure::InvalidSecret => keys.iter().find(|k| Secret::parse(&k.value).is_err()).map(|k| {
            format!("{} is not of the whsec_<base64> form (whsec_ and the base64 of 24 to 64 bytes)", k.label)
        }),
        _ => None,
    }
}

/// The header a signature check reads for `part` (`id`, `timestamp`, `signature`): its name
/// and value, `webhook-*` preferred over `svix-*`, as core does.
fn signed_header<'a>(request: &'a Request, part: &str) -> Option<(String, &'a str)> {
    ["webhook", "svix"].iter().find_map(|prefix| {
        let name = format!("{prefix}-{part}");
        header(request, &name).map(|value| (name, value))
    })
}

fn missing_headers(request: &Request) -> String {
    let missing: Vec<String> = ["id", "timestamp", "signature"]
        .iter()
        .filter(|part| signed_header(request, part).is_none())
        .map(|part| format!("webhook-{part}"))
        .collect();
    let names = match missing.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "signed".to_string(),
    };
    format!("the request has no {names} header (svix-* names work too)")
}

fn malformed_header(request: &Request) -> String {
    match signed_header(request, "id") {
        Some((name, id)) if id.trim().is_empty() => format!("{name} is empty"),
        _ => match signed_header(request, "timestamp") {
            Some((name, ts)) => {
                format!("{name} is not a whole number of seconds since 1970 ({:?})", output::shorten(ts.trim(), 40))
            }
            None => "a signed header is not in its expected form".to_string(),
        },
    }
}

fn timestamp_skew(request: &Request, args: &VerifyArgs) -> Option<String> {
    let (name, raw) = signed_header(request, "timestamp")?;
    let sent: i64 = raw.trim().parse().ok()?;
    let skew = time::OffsetDateTime::now_utc().unix_timestamp().saturating_sub(sent);
    let direction = if skew >= 0 { "ago" } else { "ahead" };
    let when = time::OffsetDateTime::from_unix_timestamp(sent).map(output::time).unwrap_or_default();
    Some(format!(
        "{name} {sent} ({when}) is {} {direction}, outside the {} tolerance (--tolerance widens it; \
         --ignore-timestamp checks a captured request's signature only)",
        output::duration(Duration::from_secs(skew.unsigned_abs())),
        output::duration(args.tolerance)
    ))
}

/// Whether a signature entry is a well-formed `v1,<base64 of 32 bytes>`, as core reads them.
fn well_formed_v1(entry: &str) -> bool {
    signing::v1_signature(entry).is_some()
}

/// Why no signature matched: none was a v1 signature, or none matched any of the secrets.
fn no_match(request: &Request, secrets: usize) -> String {
    let Some((name, value)) = signed_header(request, "signature") else {
        return "the request has no signature".to_string();
    };
    let entries: Vec<&str> = value.split_ascii_whitespace().take(signing::MAX_SIGNATURE_ENTRIES).collect();
    let v1 = entries.iter().filter(|e| well_formed_v1(e)).count();
    let plural = |n: usize, word: &str| if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") };
    if v1 == 0 {
        let mut versions: Vec<String> =
            entries.iter().map(|e| output::shorten(e.split_once(',').map_or(*e, |(v, _)| v), 20)).collect();
        versions.dedup();
        let seen = if versions.is_empty() { "nothing".to_string() } else { versions.join(", ") };
        return format!(
            "{name} holds no well-formed v1 signature (v1,<base64 of 32 bytes>), the version tidings verifies; \
             it holds: {seen}"
        );
    }
    format!(
        "the {} in {name} {} not match for any of the {} given (a wrong secret, or the body, \
         webhook-id or webhook-timestamp changed after signing)",
        plural(v1, "v1 signature"),
        if v1 == 1 { "does" } else { "do" },
        plural(secrets, "secret")
    )
}

/// Checks the `sha256=<hex>` header `name` against every secret.
fn check_sha256_header(ctx: &Ctx, request: &Request, secrets: &[&str], name: &str) -> Result<()> {
    let reject = |failure: &str, message: String| {
        if ctx.json {
            output::print_json(&json!({"valid": false, "failure": failure, "reason": message}));
        }
        CliError::new(Kind::Signature, message)
    };
    let got = header(request, name)
        .ok_or_else(|| reject("missing_header", format!("signature rejected: no {name} header")))?;
    let matches = secrets
        .iter()
        .filter_map(|s| Secret::parse(s).ok())
        .any(|s| signing::sha256_hex(&s, &request.body).eq_ignore_ascii_case(got.trim()));
    if !matches {
        return Err(reject("no_match", format!("signature rejected: the {name} header does not match")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_files_in_every_accepted_shape() -> Result<()> {
        let a = parse_request(r#"{"body": "{\"a\":1}", "headers": {"Webhook-Id": "x", "multi": ["1", "2"]}}"#)?;
        assert_eq!(a.body, br#"{"a":1}"#);
        assert_eq!(header(&a, "webhook-id"), Some("x"));
        assert_eq!(a.headers.len(), 3);
        let b = parse_request(r#"{"body_base64": "aGk=", "headers": [["webhook-id", "y"]]}"#)?;
        assert_eq!(b.body, b"hi");
        assert_eq!(header(&b, "WEBHOOK-ID"), Some("y"));
        for bad in [r#"{"body": {"a": 1}, "headers": {}}"#, r#"{"headers": {}}"#, r#"{"body": ""}"#, "nope"] {
            assert_eq!(parse_request(bad).map_err(|e| e.kind).err(), Some(Kind::Invalid), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn requests_are_read_up_to_the_limit() {
        let limit = usize::try_from(MAX_REQUEST_BYTES).expect("fits");
        assert_eq!(read_request(vec![b' '; limit].as_slice()).map(|t| t.len()).ok(), Some(limit));
        let err = read_request(std::io::repeat(b'x')).expect_err("an endless input is cut");
        assert_eq!(err.kind, Kind::Invalid);
        assert!(err.message.contains("larger than 16 MiB"), "{}", err.message);
    }

    #[test]
    fn signature_entries_are_read_as_core_reads_them() {
        let mac = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(well_formed_v1(&format!("v1,{mac}")));
        assert!(well_formed_v1(&format!("v1,{}", mac.trim_end_matches('='))));
        for bad in [format!("v2,{mac}"), "v1,short".into(), format!("v1a,{mac}"), "v1".into()] {
            assert!(!well_formed_v1(&bad), "{bad}");
        }
    }
}
