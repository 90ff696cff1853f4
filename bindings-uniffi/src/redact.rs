//! The string forms of the records that hold secrets: [`Endpoint`], [`EndpointOptions`],
//! [`EndpointUpdate`], [`InboxOptions`] and [`Auth`]. They are exported as `Display`, so they are
//! what Kotlin's `toString()` (and string templates) and Swift's `description` print, in place of
//! uniffi's field-by-field data class form, which would print the signing secret.
//!
//! Shown as `<redacted>`: signing secrets, bearer tokens, API key values, NATS credentials and
//! every extra header's value; a URL goes through core's `redacted_url` (user info, query values and
//! fragment); templates and a CA certificate show only that they are there. Everything else is
//! printed as Kotlin prints a data class: `Endpoint(id=..., url=..., ...)`.

use std::collections::HashMap;
use std::fmt::{self, Display, Formatter};
use std::time::SystemTime;

use crate::endpoint::{Auth, Endpoint, EndpointOptions, EndpointUpdate};
use crate::inbox::InboxOptions;

const REDACTED: &str = "<redacted>";

/// `Name(a=1, b=2)`.
fn shape(f: &mut Formatter<'_>, name: &str, fields: &[(&str, String)]) -> fmt::Result {
    write!(f, "{name}(")?;
    for (i, (field, value)) in fields.iter().enumerate() {
        let comma = if i == 0 { "" } else { ", " };
        write!(f, "{comma}{field}={value}")?;
    }
    f.write_str(")")
}

fn opt<T: Display>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "null".to_string(), ToString::to_string)
}

fn list<T: Display>(values: &[T]) -> String {
    format!("[{}]", values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

/// Header names with their values redacted, in name order.
fn headers(map: &HashMap<String, String>) -> String {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    format!("{{{}}}", names.iter().map(|n| format!("{n}={REDACTED}")).collect::<Vec<_>>().join(", "))
}

/// Template patterns only (a template is long, and may quote anything).
fn templates(map: &HashMap<String, String>) -> String {
    let mut patterns: Vec<&String> = map.keys().collect();
    patterns.sort();
    list(&patterns)
}

fn url(raw: &str) -> String {
    tidings::redacted_url(raw)
}

fn present(value: &Option<String>) -> String {
    if value.is_some() { REDACTED.to_string() } else { "null".to_string() }
}

fn time(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.unix_timestamp().to_string())
}

impl Display for Auth {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Bearer { .. } => shape(f, "Bearer", &[("token", REDACTED.into())]),
            Auth::ApiKey { header, .. } => {
                shape(f, "ApiKey", &[("header", header.clone()), ("value", REDACTED.into())])
            }
            Auth::NatsCredentials { .. } => shape(f, "NatsCredentials", &[("creds", REDACTED.into())]),
        }
    }
}

impl Display for Endpoint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let e = self;
        shape(
            f,
            "Endpoint",
            &[
                ("id", e.id.clone()),
                ("secret", REDACTED.into()),
                ("url", url(&e.url)),
                ("name", opt(&e.name)),
                ("events", list(&e.events)),
                ("tenant", opt(&e.tenant)),
                ("headers", headers(&e.headers)),
                ("auth", opt(&e.auth)),
                ("timeout", e.timeout.to_string()),
                ("maxAttempts", e.max_attempts.to_string()),
                ("initialDelay", e.initial_delay.to_string()),
                ("maxDelay", e.max_delay.to_string()),
                ("multiplier", e.multiplier.to_string()),
                ("jitter", e.jitter.to_string()),
                ("rateLimit", opt(&e.rate_limit)),
                ("burst", opt(&e.burst)),
                ("maxInFlight", e.max_in_flight.to_string()),
                ("ordered", e.ordered.to_string()),
                ("verifyTls", e.verify_tls.to_string()),
                ("caCert", present(&e.ca_cert)),
                ("signatureHeader", opt(&e.signature_header)),
                ("templates", templates(&e.templates)),
                ("keepalive", opt(&e.keepalive)),
                ("finalStatuses", list(&e.final_statuses)),
                ("enabled", e.enabled.to_string()),
                ("subject", opt(&e.subject)),
                ("disabledReason", opt(&e.disabled_reason)),
                ("consecutiveFailures", e.consecutive_failures.to_string()),
                ("unhealthy", e.unhealthy.to_string()),
                ("lastSuccessAt", opt(&e.last_success_at.map(time))),
                ("circuit", format!("{:?}", e.circuit).to_uppercase()),
                ("circuitUntil", opt(&e.circuit_until.map(time))),
                ("concurrency", e.concurrency.to_string()),
                ("createdAt", time(e.created_at)),
                ("updatedAt", time(e.updated_at)),
            ],
        )
    }
}

impl Display for EndpointOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let o = self;
        shape(
            f,
            "EndpointOptions",
            &[
                ("events", opt(&o.events.as_deref().map(list))),
                ("name", opt(&o.name)),
                ("tenant", opt(&o.tenant)),
                ("secret", present(&o.secret)),
                ("headers", headers(&o.headers)),
                ("auth", opt(&o.auth)),
                ("timeout", o.timeout.to_string()),
                ("maxAttempts", o.max_attempts.to_string()),
                ("rateLimit", opt(&o.rate_limit)),
                ("burst", opt(&o.burst)),
                ("maxInFlight", o.max_in_flight.to_string()),
                ("ordered", o.ordered.to_string()),
                ("verifyTls", o.verify_tls.to_string()),
                ("caCert", present(&o.ca_cert)),
                ("signatureHeader", opt(&o.signature_header)),
                ("templates", templates(&o.templates)),
                ("finalStatuses", list(&o.final_statuses)),
                ("enabled", o.enabled.to_string()),
                ("subject", opt(&o.subject)),
            ],
        )
    }
}

impl Display for EndpointUpdate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let u = self;
        shape(
            f,
            "EndpointUpdate",
            &[
                ("url", opt(&u.url.as_deref().map(url))),
                ("events", opt(&u.events.as_deref().map(list))),
                ("name", opt(&u.name)),
                ("tenant", opt(&u.tenant)),
                ("headers", opt(&u.headers.as_ref().map(headers))),
                ("auth", opt(&u.auth)),
                ("timeout", opt(&u.timeout)),
                ("maxAttempts", opt(&u.max_attempts)),
                ("maxInFlight", opt(&u.max_in_flight)),
                ("caCert", present(&u.ca_cert)),
                ("templates", opt(&u.templates.as_ref().map(templates))),
                ("enabled", opt(&u.enabled)),
                ("subject", opt(&u.subject)),
                ("clear", list(&u.clear)),
            ],
        )
    }
}

impl Display for InboxOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let o = self;
        shape(
            f,
            "InboxOptions",
            &[
                ("url", url(&o.url)),
                ("stream", o.stream.clone()),
                ("consumer", o.consumer.clone()),
                ("auth", opt(&o.auth)),
                ("filterSubject", opt(&o.filter_subject)),
                ("batch", o.batch.to_string()),
                ("ackWait", o.ack_wait.to_string()),
                ("streamPrefix", opt(&o.stream_prefix)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let auth = Auth::ApiKey { header: "X-Api-Key".into(), value: "key-SECRET".into() };
        let options = EndpointOptions {
            secret: Some("whsec_SECRET".into()),
            headers: HashMap::from([("Authorization".into(), "Basic SECRET".into())]),
            auth: Some(auth.clone()),
            ca_cert: Some("-----BEGIN CERTIFICATE----- SECRET".into()),
            templates: HashMap::from([("*".into(), r#"{"k": "SECRET"}"#.into())]),
            ..crate::declared_defaults::record(&crate::endpoint::UNIFFI_META_TIDINGS_UNIFFI_RECORD_ENDPOINTOPTIONS)
        };
        let update = EndpointUpdate {
            url: Some("https://user:SECRET@example.com/h?token=SECRET".into()),
            auth: Some(Auth::Bearer { token: "SECRET".into() }),
            headers: Some(options.headers.clone()),
            ..Default::default()
        };
        let creds = Auth::NatsCredentials {
            creds: "-----BEGIN NATS USER JWT-----\nSECRET\n-----BEGIN USER NKEY SEED-----\nSUSECRET".into(),
        };
        let inbox = InboxOptions {
            url: "nats://user:SECRET@127.0.0.1:4222".into(),
            stream: "EVENTS".into(),
            consumer: "app".into(),
            auth: Some(creds.clone()),
            filter_subject: None,
            batch: 100,
            ack_wait: 30.0,
            stream_prefix: None,
        };
        let nats_update =
            EndpointUpdate { auth: Some(creds.clone()), subject: Some("a.{type}".into()), ..Default::default() };
        for text in [
            options.to_string(),
            update.to_string(),
            auth.to_string(),
            creds.to_string(),
            format!("{creds:?}"),
            inbox.to_string(),
            format!("{inbox:?}"),
            nats_update.to_string(),
        ] {
            assert!(!text.contains("SECRET"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
        assert_eq!(auth.to_string(), "ApiKey(header=X-Api-Key, value=<redacted>)");
        assert_eq!(creds.to_string(), "NatsCredentials(creds=<redacted>)");
        assert!(nats_update.to_string().contains("subject=a.{type}"), "{nats_update}");
        assert!(options.to_string().contains("headers={Authorization=<redacted>}"), "{options}");
    }
}
