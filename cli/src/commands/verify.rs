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

use std::io::Read;

use base64::Engine;
use serde_json::{Value, json};
use tidings::signing::{self, Secret};
use tidings::{Error as CoreError, SignatureFailure};

use super::Ctx;
use crate::args::VerifyArgs;
use crate::error::{CliError, Kind, Result};
use crate::output;

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

/// The signature the first secret would give, for a "no match" explanation.
fn expected_signature(request: &Request, secret: &str) -> Option<String> {
    let secret = Secret::parse(secret).ok()?;
    let id = header(request, "webhook-id").or_else(|| header(request, "svix-id"))?.trim();
    let timestamp: i64 =
        header(request, "webhook-timestamp").or_else(|| header(request, "svix-timestamp"))?.trim().parse().ok()?;
    Some(signing::sign(&secret, id, timestamp, &request.body))
}

/// Runs `tidings verify`.
pub fn run(ctx: &Ctx, args: &VerifyArgs) -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::invalid(format!("cannot read the request from stdin: {e}")))?;
    let request = parse_request(&text)?;
    let secrets: Vec<&str> = args.secrets.iter().map(String::as_str).collect();
    let pairs = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let result = if args.ignore_timestamp {
        let now = header(&request, "webhook-timestamp")
            .or_else(|| header(&request, "svix-timestamp"))
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp());
        signing::verify_at(&request.body, pairs, &secrets, args.tolerance, now)
    } else {
        tidings::verify(&request.body, pairs, &secrets, args.tolerance)
    };
    let verified = match result {
        Ok(v) => v,
        Err(err) => {
            let mut message = err.to_string();
            let mut expected = None;
            match err {
                CoreError::Signature(SignatureFailure::NoMatch) => {
                    expected = expected_signature(&request, secrets[0]);
                    if let Some(sig) = &expected {
                        message.push_str(&format!(" (the first secret signs this body as {sig})"));
                    }
                }
                CoreError::Signature(SignatureFailure::TimestampTooOld | SignatureFailure::TimestampInFuture) => {
                    message.push_str(" (--ignore-timestamp checks a captured request's signature only)");
                }
                CoreError::Signature(SignatureFailure::InvalidSecret) => {
                    message.push_str(" (a secret looks like whsec_ followed by base64)");
                }
                _ => {}
            }
            if ctx.json {
                output::print_json(&json!({"valid": false, "reason": err.to_string(), "expected_signature": expected}));
            }
            let kind = if matches!(err, CoreError::Signature(_)) { Kind::Signature } else { CliError::from(err).kind };
            return Err(CliError::new(kind, message));
        }
    };
    if let Some(name) = &args.signature_header {
        let got = header(&request, name)
            .ok_or_else(|| CliError::new(Kind::Signature, format!("signature rejected: no {name} header")))?;
        let matches = secrets
            .iter()
            .filter_map(|s| Secret::parse(s).ok())
            .any(|s| signing::sha256_hex(&s, &request.body).eq_ignore_ascii_case(got.trim()));
        if !matches {
            if ctx.json {
                output::print_json(&json!({"valid": false, "reason": format!("{name} does not match")}));
            }
            return Err(CliError::new(
                Kind::Signature,
                format!("signature rejected: the {name} header does not match"),
            ));
        }
    }
    let when = time::OffsetDateTime::from_unix_timestamp(verified.timestamp).map(output::time).unwrap_or_default();
    if ctx.json {
        output::print_json(&json!({"valid": true, "id": verified.id, "timestamp": verified.timestamp}));
    } else {
        outln!("signature valid: webhook-id {}, sent at {when} ({})", verified.id, verified.timestamp);
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
}
