//! Classifying an attempt's result (the "classify" step of docs/architecture.md).
//!
//! 2xx succeeds. 410 fails the delivery and disables the endpoint. Statuses the endpoint lists
//! as final fail at once. Timeouts, connection errors and every other status (408, 429 and 5xx
//! included) are retried with backoff, honouring `Retry-After`. An egress refusal or a request
//! that cannot be built is final: retrying cannot change it.

use std::time::{Duration, SystemTime};

use super::http::{HttpResponse, SendError, SendErrorKind};
use crate::retry::parse_retry_after;

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    /// The receiver took it.
    Success,
    /// Try again later (`retry_after` from the response, if any).
    Retry { retry_after: Option<Duration> },
    /// Fail now; with `disable`, also disable the endpoint (410 Gone).
    Fail { disable: bool },
}

/// Classifies one attempt.
pub(crate) fn classify(result: &Result<HttpResponse, SendError>, final_statuses: &[u16], now: SystemTime) -> Verdict {
    match result {
        Ok(response) => match response.status {
            200..=299 => Verdict::Success,
            410 => Verdict::Fail { disable: true },
            status if final_statuses.contains(&status) => Verdict::Fail { disable: false },
            _ => {
                Verdict::Retry { retry_after: response.retry_after.as_deref().and_then(|v| parse_retry_after(v, now)) }
            }
        },
        Err(err) => match err.kind {
            SendErrorKind::EgressRefused | SendErrorKind::InvalidRequest => Verdict::Fail { disable: false },
            _ => Verdict::Retry { retry_after: None },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: Option<&str>) -> Result<HttpResponse, SendError> {
        Ok(HttpResponse { status, retry_after: retry_after.map(str::to_string), body: Vec::new(), content_type: None })
    }

    #[test]
    fn classifies_statuses_and_errors() {
        let now = SystemTime::now();
        assert_eq!(classify(&response(200, None), &[], now), Verdict::Success);
        assert_eq!(classify(&response(204, None), &[], now), Verdict::Success);
        assert_eq!(classify(&response(410, None), &[], now), Verdict::Fail { disable: true });
        assert_eq!(classify(&response(404, None), &[404], now), Verdict::Fail { disable: false });
        assert_eq!(classify(&response(404, None), &[], now), Verdict::Retry { retry_after: None });
        assert_eq!(classify(&response(302, None), &[], now), Verdict::Retry { retry_after: None });
        assert_eq!(
            classify(&response(429, Some("2")), &[], now),
            Verdict::Retry { retry_after: Some(Duration::from_secs(2)) }
        );
        let timeout = Err(SendError { kind: SendErrorKind::Timeout, message: "timed out".into() });
        assert_eq!(classify(&timeout, &[], now), Verdict::Retry { retry_after: None });
        let refused = Err(SendError { kind: SendErrorKind::EgressRefused, message: "private".into() });
        assert_eq!(classify(&refused, &[], now), Verdict::Fail { disable: false });
    }
}
