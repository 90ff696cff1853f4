//! Checking a received webhook: [`verify`] (headers as every JVM HTTP server hands them over,
//! several values per name) and [`verify_single_valued`] (one value per name). Both delegate to
//! `tidings::verify` and return a [`Verified`]: the message id, the signed time and the body
//! as JSON text, exactly as received.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::convert;
use crate::error::{Result, TidingsError};
use crate::types::Verified;

/// Verifies a received Standard Webhooks request and returns its id, signed time and body.
///
/// `body` as received; `headers` as the HTTP server gives them, several values per name
/// (`com.sun.net.httpserver.Headers`, Spring's `HttpHeaders`, OkHttp's `toMultimap()`, Ktor's
/// `toMap()`); names in any letter case; of `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` (or their `svix-` aliases) the first value counts. `secrets`: the
/// endpoint's `whsec_...` secrets, any of which may match (rotations); at least one, or
/// `InvalidInput` naming `secrets`. `toleranceSeconds`: the clock skew accepted.
///
/// Throws `Signature` when it does not verify, and `InvalidInput` naming `body` when it does
/// but the body is not JSON text.
#[uniffi::export(default(tolerance_seconds = 300.0))]
pub fn verify(
    body: Vec<u8>,
    headers: HashMap<String, Vec<String>>,
    secrets: Vec<String>,
    tolerance_seconds: f64,
) -> Result<Verified> {
    let pairs = headers.iter().flat_map(|(name, values)| values.iter().map(move |v| (name.as_str(), v.as_str())));
    verified(body, pairs, &secrets, tolerance_seconds)
}

/// [`verify`] with one value per header name.
#[uniffi::export(default(tolerance_seconds = 300.0))]
pub fn verify_single_valued(
    body: Vec<u8>,
    headers: HashMap<String, String>,
    secrets: Vec<String>,
    tolerance_seconds: f64,
) -> Result<Verified> {
    verified(body, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &secrets, tolerance_seconds)
}

fn verified<'a>(
    body: Vec<u8>,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    secrets: &[String],
    tolerance_seconds: f64,
) -> Result<Verified> {
    let tolerance = convert::seconds("tolerance_seconds", tolerance_seconds)?;
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let checked = tidings::verify(&body, headers, &secrets, tolerance)?;
    let payload =
        String::from_utf8(body).map_err(|_| TidingsError::invalid("body", "the signed body is not UTF-8 text"))?;
    convert::json("body", &payload)?;
    Ok(Verified { id: checked.id, timestamp: unix_time(checked.timestamp)?, payload })
}

/// Seconds since the Unix epoch as a point in time.
fn unix_time(seconds: i64) -> Result<SystemTime> {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map(convert::time)
        .map_err(|_| TidingsError::invalid("webhook-timestamp", "out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SignatureFailure;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    fn headers(signatures: Vec<&str>) -> HashMap<String, Vec<String>> {
        HashMap::from([
            ("Webhook-Id".to_string(), vec!["msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".to_string()]),
            ("webhook-timestamp".to_string(), vec!["1649367553".to_string()]),
            ("webhook-signature".to_string(), signatures.into_iter().map(String::from).collect()),
        ])
    }

    #[test]
    fn the_standard_vector_verifies_with_its_payload() -> Result<()> {
        let good = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        // The vector's timestamp is old: a tolerance of 300 s refuses it, a huge one accepts it.
        let old = verify(BODY.to_vec(), headers(vec![good]), vec![SECRET.into()], 300.0);
        assert!(matches!(old, Err(TidingsError::Signature { failure: SignatureFailure::TimestampTooOld, .. })));
        let ok = verify(BODY.to_vec(), headers(vec![good]), vec![SECRET.into()], 1e12)?;
        assert_eq!(ok.timestamp, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_649_367_553));
        assert_eq!(ok.payload.as_bytes(), BODY);
        let single: HashMap<String, String> =
            headers(vec![good]).into_iter().map(|(k, mut v)| (k, v.remove(0))).collect();
        assert_eq!(verify_single_valued(BODY.to_vec(), single, vec![SECRET.into()], 1e12)?, ok);
        Ok(())
    }

    #[test]
    fn no_secret_is_invalid_input_and_a_body_not_json_is_refused() {
        // Core refuses an empty secret list as invalid input, before looking at the headers.
        let none = verify(BODY.to_vec(), headers(vec![]), vec![], 1e12);
        assert!(matches!(none, Err(TidingsError::InvalidInput { field, .. }) if field == "secrets"));
        let missing = verify(BODY.to_vec(), headers(vec![]), vec![SECRET.into()], 1e12);
        assert!(matches!(missing, Err(TidingsError::Signature { failure: SignatureFailure::MissingHeader, .. })));
    }
}
