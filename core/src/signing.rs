//! Webhook signing and verification in the [Standard Webhooks] form.
//!
//! This module owns the endpoint [`Secret`] (`whsec_<base64>`), the `webhook-signature`
//! value that the delivery engine sends ([`sign`], [`signature_header`]), the GitHub-style
//! `X-Hub-Signature-256` value ([`sha256_hex`]) and the receiver side check ([`verify`]).
//!
//! Guarantees:
//! - a secret's key never appears in `Debug` output nor in any error text; [`Secret`] has no
//!   `Display`, and [`Secret::expose`] is the one way to read the stored string;
//! - signatures are compared in constant time, and [`verify`] examines at most
//!   [`MAX_SIGNATURE_ENTRIES`] entries of a signature header, so a hostile header cannot
//!   cost unbounded work;
//! - [`verify`] accepts the `svix-*` header aliases and header names in any letter case.
//!
//! [Standard Webhooks]: https://www.standardwebhooks.com/

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result, SignatureFailure};

/// The prefix of every secret string.
pub const SECRET_PREFIX: &str = "whsec_";

/// The fewest key bytes a secret may decode to.
pub const MIN_SECRET_BYTES: usize = 24;

/// The most key bytes a secret may decode to.
pub const MAX_SECRET_BYTES: usize = 64;

/// How many entries of a signature header [`verify`] examines at most; later ones are ignored.
pub const MAX_SIGNATURE_ENTRIES: usize = 64;

/// Bytes of a generated secret's key.
const GENERATED_SECRET_BYTES: usize = 32;

/// Standard base64 alphabet that accepts input with or without `=` padding.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding, used for everything this module produces.
const STANDARD: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// HMAC-SHA256 over the concatenation of `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length (long keys are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A webhook signing secret: the string `whsec_<base64>` and the key bytes it decodes to.
///
/// `Debug` shows only `Secret(whsec_…redacted)`; there is no `Display`. Two secrets are
/// equal when their keys are equal (compared in constant time).
#[derive(Clone)]
pub struct Secret {
    /// The whole string as configured, `whsec_` included.
    full: String,
    /// The decoded key.
    key: Vec<u8>,
}

impl Secret {
    /// Makes a new secret: `whsec_` followed by the padded standard base64 of 32 bytes from
    /// the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Panics when the operating system cannot provide random bytes, in which case no secret
    /// could be made safely.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; GENERATED_SECRET_BYTES];
        getrandom::fill(&mut key).expect("the operating system's random number generator failed");
        let full = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        Secret { full, key }
    }

    /// Reads a secret of the form `whsec_<standard base64>` whose key is
    /// [`MIN_SECRET_BYTES`]`..=`[`MAX_SECRET_BYTES`] bytes long. `=` padding is optional.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] on field `secret` when the prefix, the base64 or the key
    /// length is wrong. The message never repeats the input.
    pub fn parse(s: &str) -> Result<Secret> {
        let Some(encoded) = s.strip_prefix(SECRET_PREFIX) else {
            return Err(Error::invalid("secret", "must start with \"whsec_\""));
        };
        let key = LENIENT_STANDARD
            .decode(encoded)
            .map_err(|_| Error::invalid("secret", "the part after \"whsec_\" must be standard base64"))?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(Error::invalid(
                "secret",
                format!(
                    "the key must decode to {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, \
                     not {}",
                    key.len()
                ),
            ));
        }
        Ok(Secret { full: s.to_owned(), key })
    }

    /// The whole secret string, `whsec_` included, exactly as configured (for storing it).
    pub fn expose(&self) -> &str {
        &self.full
    }

    /// The decoded key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(whsec_…redacted)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.key.ct_eq(&other.key).into()
    }
}

impl Eq for Secret {}

/// The raw HMAC of the Standard Webhooks signed content `"{msg_id}.{timestamp}.{body}"`.
fn v1_mac(key: &[u8], msg_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    hmac_sha256(key, &[msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body])
}

/// Signs one message: `v1,<standard base64 of HMAC-SHA256(key, "{msg_id}.{timestamp}." + body)>`.
///
/// `timestamp` is in seconds since the Unix epoch, the value sent as `webhook-timestamp`.
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = v1_mac(secret.key(), msg_id, &timestamp.to_string(), body);
    format!("v1,{}", STANDARD.encode(mac))
}

/// The `webhook-signature` header value: one [`sign`] entry per secret, separated by single
/// spaces, in the order given (during a secret rotation both the old and the new secret sign).
pub fn signature_header(secrets: &[&Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::new();
    for secret in secrets {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&sign(secret, msg_id, timestamp, body));
    }
    out
}

/// The GitHub-style `X-Hub-Signature-256` value: `sha256=<lowercase hex>` of HMAC-SHA256 over
/// the raw body, keyed with the secret STRING exactly as configured (the bytes of
/// `whsec_...`, prefix included), not with the decoded key.
pub fn sha256_hex(secret: &Secret, body: &[u8]) -> String {
    let mac = hmac_sha256(secret.expose().as_bytes(), &[body]);
    format!("sha256={}", hex::encode(mac))
}

/// What a successful [`verify`] learned from the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The message id from `webhook-id` (or `svix-id`): use it to drop duplicate deliveries.
    pub id: String,
    /// The `webhook-timestamp` (or `svix-timestamp`) in seconds since the Unix epoch.
    pub timestamp: i64,
}

/// The three headers [`verify_at`] reads, each `webhook-*` value preferred over `svix-*`.
#[derive(Default)]
struct SignedHeaders<'a> {
    id: Option<&'a str>,
    svix_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    svix_timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    svix_signature: Option<&'a str>,
}

impl<'a> SignedHeaders<'a> {
    fn collect(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut found = SignedHeaders::default();
        for (name, value) in headers {
            let slot = if name.eq_ignore_ascii_case("webhook-id") {
                &mut found.id
            } else if name.eq_ignore_ascii_case("svix-id") {
                &mut found.svix_id
            } else if name.eq_ignore_ascii_case("webhook-timestamp") {
                &mut found.timestamp
            } else if name.eq_ignore_ascii_case("svix-timestamp") {
                &mut found.svix_timestamp
            } else if name.eq_ignore_ascii_case("webhook-signature") {
                &mut found.signature
            } else if name.eq_ignore_ascii_case("svix-signature") {
                &mut found.svix_signature
            } else {
                continue;
            };
            // The first occurrence of a header wins.
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        found
    }
}

fn signature_error(failure: SignatureFailure) -> Error {
    Error::Signature(failure)
}

/// Verifies a received webhook against the current time; see [`verify_at`] for the rules.
///
/// `headers` are `(name, value)` pairs; names match in any letter case.
///
/// # Errors
///
/// As [`verify_at`].
pub fn verify<'a>(
    body: &[u8],
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    secrets: &[&str],
    tolerance: Duration,
) -> Result<Verified> {
    let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    verify_at(body, headers, secrets, tolerance, now)
}

/// The MAC of one entry of a signature header, if the entry is a well-formed `v1` signature:
/// `v1,` and the base64 (padded or not) of 32 bytes. Anything else is `None`: [`verify_at`]
/// skips such entries, and a receiver's tooling can tell "no v1 signature" from "no match".
pub fn v1_signature(entry: &str) -> Option<Vec<u8>> {
    let ("v1", encoded) = entry.split_once(',')? else {
        return None;
    };
    // A v1 signature is 32 bytes: 44 base64 characters with padding, 43 without.
    if encoded.len() > 44 {
        return None;
    }
    LENIENT_STANDARD.decode(encoded).ok().filter(|mac| mac.len() == 32)
}

/// Verifies a received webhook as if the time were `now_unix` (seconds since the Unix epoch).
///
/// Reads `webhook-id`, `webhook-timestamp` and `webhook-signature` (or their `svix-id`,
/// `svix-timestamp`, `svix-signature` aliases; names in any letter case, the first occurrence
/// of each used). The signature header holds space-separated `version,base64` entries;
/// entries of another version than `v1` or that are malformed are skipped, and only the first
/// [`MAX_SIGNATURE_ENTRIES`] entries are examined. Each `v1` signature is compared in constant
/// time with the expected signature of every secret, so any secret of a rotation verifies.
///
/// # Errors
///
/// - [`Error::InvalidInput`] on field `secrets` when `secrets` is empty;
/// - [`Error::Signature`] with [`SignatureFailure::InvalidSecret`] when a secret is not a
///   valid `whsec_` secret (checked before the headers);
/// - [`SignatureFailure::MissingHeader`] when one of the three headers is absent;
/// - [`SignatureFailure::MalformedHeader`] when the id is empty or the timestamp is not an
///   integer;
/// - [`SignatureFailure::TimestampTooOld`] / [`SignatureFailure::TimestampInFuture`] when the
///   timestamp is further than `tolerance` from `now_unix`;
/// - [`SignatureFailure::NoMatch`] when no examined signature matches any secret.
pub fn verify_at<'a>(
    body: &[u8],
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    secrets: &[&str],
    tolerance: Duration,
    now_unix: i64,
) -> Result<Verified> {
    if secrets.is_empty() {
        return Err(Error::invalid("secrets", "at least one secret is required"));
    }
    let keys = secrets
        .iter()
        .map(|s| Secret::parse(s).map_err(|_| signature_error(SignatureFailure::InvalidSecret)))
        .collect::<Result<Vec<Secret>>>()?;

    let found = SignedHeaders::collect(headers);
    let missing = || signature_error(SignatureFailure::MissingHeader);
    let id = found.id.or(found.svix_id).ok_or_else(missing)?;
    let raw_timestamp = found.timestamp.or(found.svix_timestamp).ok_or_else(missing)?;
    let signature = found.signature.or(found.svix_signature).ok_or_else(missing)?;

    let id = id.trim();
    if id.is_empty() {
        return Err(signature_error(SignatureFailure::MalformedHeader));
    }
    let raw_timestamp = raw_timestamp.trim();
    let timestamp: i64 = raw_timestamp.parse().map_err(|_| signature_error(SignatureFailure::MalformedHeader))?;

    // Compare in nanoseconds so that sub-second tolerances are honoured; i128 cannot overflow.
    let skew_nanos = (i128::from(now_unix) - i128::from(timestamp)) * 1_000_000_000;
    let tolerance_nanos = i128::try_from(tolerance.as_nanos()).unwrap_or(i128::MAX);
    if skew_nanos > tolerance_nanos {
        return Err(signature_error(SignatureFailure::TimestampTooOld));
    }
    if -skew_nanos > tolerance_nanos {
        return Err(signature_error(SignatureFailure::TimestampInFuture));
    }

    // The sender signed the timestamp as it wrote it into the header.
    let expected: Vec<[u8; 32]> = keys.iter().map(|secret| v1_mac(secret.key(), id, raw_timestamp, body)).collect();

    for entry in signature.split_ascii_whitespace().take(MAX_SIGNATURE_ENTRIES) {
        let Some(candidate) = v1_signature(entry) else {
            continue;
        };
        let mut matched = subtle::Choice::from(0);
        for mac in &expected {
            matched |= candidate.as_slice().ct_eq(mac.as_slice());
        }
        if bool::from(matched) {
            return Ok(Verified { id: id.to_owned(), timestamp });
        }
    }
    Err(signature_error(SignatureFailure::NoMatch))
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod tests;
