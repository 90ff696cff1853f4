//! Validation of endpoint specs: every field of an [`super::EndpointSpec`] checked before anything is
//! written. Error reasons name the rule, never a secret or header value.

use std::time::Duration;

use base64::Engine as _;

use super::{Auth, EndpointSpec};
use crate::error::{Error, Result};
use crate::event::validate_tenant;
use crate::pattern::PatternSet;
use crate::signing::Secret;
use crate::template::TemplateSet;

/// The smallest `rate_limit`: one request a day. Below it a bucket's wait for a token stops
/// being a time the scheduler can use.
const MIN_RATE_LIMIT: f64 = 1.0 / 86_400.0;
/// Headers tidings sets on every request itself; an endpoint may not override them. The
/// framing and hop-by-hop headers the HTTP sender refuses (`host`, `trailer`,
/// `proxy-connection`, ...) are refused too, from the sender's own list, so an accepted
/// endpoint never fails at send time for a header it was allowed to have.
const SET_BY_TIDINGS: &[&str] = &["content-type", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature"];

/// Whether `name` is a header tidings or its HTTP sender owns.
fn is_reserved(name: &str) -> bool {
    SET_BY_TIDINGS.iter().chain(crate::delivery::http::FRAMING_HEADERS).any(|r| r.eq_ignore_ascii_case(name))
}

/// A spec that passed validation, with its parsed parts.
pub(crate) struct Checked {
    pub secret: Option<Secret>,
    /// The URL to store: as given, or percent-encoded where the HTTP client needs it.
    pub url: String,
}

/// Checks every field of `spec`.
pub(crate) fn check(spec: &EndpointSpec) -> Result<Checked> {
    let url = check_destination(spec)?;
    if let Some(name) = &spec.name
        && (name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control))
    {
        return Err(Error::invalid("name", "must be 1 to 200 characters without control characters"));
    }
    PatternSet::parse(&spec.events)?;
    if let Some(tenant) = &spec.tenant {
        validate_tenant(tenant)?;
    }
    let secret = spec.secret.as_deref().map(Secret::parse).transpose()?;
    if let Some(auth) = &spec.auth {
        check_auth(auth)?;
    }
    if spec.headers.len() > 64 {
        return Err(Error::invalid("headers", "at most 64 custom headers"));
    }
    for (name, value) in &spec.headers {
        check_header_name("headers", name)?;
        if value.len() > 8192 || !is_header_text(value) {
            return Err(Error::invalid(
                "headers",
                format!(
                    "the value of {name:?} must be at most 8 KiB of printable ASCII, without leading or trailing spaces"
                ),
            ));
        }
    }
    if spec.timeout < Duration::from_millis(10) || spec.timeout > Duration::from_secs(300) {
        return Err(Error::invalid("timeout", "must be between 10 ms and 5 minutes"));
    }
    spec.retry.validate()?;
    if let Some(rate) = spec.rate_limit
        && !(rate.is_finite() && (MIN_RATE_LIMIT..=100_000.0).contains(&rate))
    {
        return Err(Error::invalid(
            "rate_limit",
            "must be between one request a day (0.0000116) and 100000 requests per second",
        ));
    }
    if let Some(burst) = spec.burst {
        if spec.rate_limit.is_none() {
            return Err(Error::invalid("burst", "needs a rate_limit"));
        }
        if burst == 0 || burst > 100_000 {
            return Err(Error::invalid("burst", "must be between 1 and 100000"));
        }
    }
    if spec.max_in_flight == 0 || spec.max_in_flight > 1024 {
        return Err(Error::invalid("max_in_flight", "must be between 1 and 1024"));
    }
    if let Some(pem) = &spec.ca_cert {
        check_ca_cert(pem)?;
    }
    if let Some(header) = &spec.signature_header {
        check_header_name("signature_header", header)?;
    }
    check_no_duplicate_headers(spec)?;
    TemplateSet::parse(&spec.templates)?;
    if let Some(every) = spec.keepalive
        && (every < Duration::from_secs(1) || every > Duration::from_secs(86_400))
    {
        return Err(Error::invalid("keepalive", "must be between 1 second and 1 day"));
    }
    for status in &spec.final_statuses {
        if !(300..=599).contains(status) {
            return Err(Error::invalid("final_statuses", "must be HTTP statuses between 300 and 599"));
        }
    }
    Ok(Checked { secret, url })
}

/// Checks where the endpoint sends: a JetStream endpoint's URL and settings
/// ([`crate::jetstream::check_spec`]), or a webhook's URL, which takes no JetStream setting.
fn check_destination(spec: &EndpointSpec) -> Result<String> {
    if crate::jetstream::is_nats_url(&spec.url) {
        crate::jetstream::check_spec(spec)?;
        return Ok(spec.url.clone());
    }
    if spec.subject.is_some() {
        return Err(Error::invalid("subject", "applies to JetStream endpoints (nats:// or tls:// URLs) only"));
    }
    if matches!(spec.auth, Some(Auth::NatsCredentials(_))) {
        return Err(Error::invalid("auth", "NATS credentials apply to JetStream endpoints only"));
    }
    check_url(&spec.url)
}

/// Checks a URL: an absolute `http`/`https` URL with a host, no credentials, that the HTTP
/// client can send to as written (so every accepted endpoint is deliverable and its URL
/// round-trips exactly). Returns it unchanged.
fn check_url(raw: &str) -> Result<String> {
    if raw.len() > 2048 {
        return Err(Error::invalid("url", "must be at most 2048 bytes"));
    }
    let url = url::Url::parse(raw).map_err(|e| Error::invalid("url", format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::invalid("url", "the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid("url", "a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("url", "must not carry credentials; use auth instead"));
    }
    if !crate::delivery::http::is_sendable_url(raw) {
        return Err(Error::invalid(
            "url",
            "has characters that must be percent-encoded (such as spaces, quotes, <, >, `, { or })",
        ));
    }
    Ok(raw.to_string())
}

/// Refuses, at creation, a URL whose host is an address literal (or `localhost`) that the
/// egress policy would refuse at every delivery: better a clear error now than failures later.
/// Host names are not resolved here (what they resolve to may change): the delivery-time check
/// stays the one that holds.
pub(crate) fn check_egress(raw: &str, policy: &crate::egress::EgressPolicy) -> Result<()> {
    use std::net::{IpAddr, Ipv4Addr};
    let Ok(url) = url::Url::parse(raw) else { return Ok(()) };
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        // A URL of a scheme the URL standard does not know (`nats://`) keeps its host as text.
        Some(url::Host::Domain(name))
            if name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() =>
        {
            name.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name != "localhost" && !name.ends_with(".localhost") {
                return Ok(());
            }
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        None => return Ok(()),
    };
    policy.check(ip).map_err(|refused| {
        Error::invalid(
            "url",
            format!(
                "{}; allow it in the store's egress policy (allow_private or allowed_networks)",
                refused.describe(policy.shows_addresses())
            ),
        )
    })
}

fn check_auth(auth: &Auth) -> Result<()> {
    match auth {
        Auth::Bearer(token) => {
            if token.is_empty() || token.len() > 4096 || !token.chars().all(|c| c.is_ascii_graphic()) {
                return Err(Error::invalid(
                    "auth",
                    "a bearer token must be 1 to 4096 printable ASCII characters without spaces",
                ));
            }
        }
        Auth::ApiKey { header, value } => {
            check_header_name("auth", header)?;
            if value.is_empty() || value.len() > 4096 || !is_header_text(value) {
                return Err(Error::invalid(
                    "auth",
                    "an API key must be 1 to 4096 printable ASCII characters, without leading or trailing spaces",
                ));
            }
        }
        Auth::NatsCredentials(creds) => {
            let looks_right = creds.contains("BEGIN NATS USER JWT") && creds.contains("BEGIN USER NKEY SEED");
            if creds.len() > 16 * 1024 || !looks_right {
                return Err(Error::invalid(
                    "auth",
                    "NATS credentials must be a .creds file's text (a user JWT and an NKey seed), at most 16 KiB",
                ));
            }
        }
    }
    Ok(())
}

/// Header text every HTTP stack accepts and sends unchanged: printable ASCII, spaces and tabs
/// inside, none at the ends (HTTP clients trim them, so they would not round-trip).
fn is_header_text(value: &str) -> bool {
    value.chars().all(|c| c.is_ascii_graphic() || c == ' ' || c == '\t') && value.trim() == value
}

/// Each header is sent once: no two custom headers differ only in case, and neither the auth
/// header (`authorization` for a bearer token, the API key's header) nor `signature_header`
/// repeats another header. Names are compared case-insensitively, as HTTP does.
fn check_no_duplicate_headers(spec: &EndpointSpec) -> Result<()> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    let auth = spec.auth.as_ref().map(|auth| match auth {
        Auth::Bearer(_) => "authorization",
        Auth::ApiKey { header, .. } => header.as_str(),
        // Sent when connecting, never as a header.
        Auth::NatsCredentials(_) => "",
    });
    let auth = auth.filter(|h| !h.is_empty());
    let named = spec.headers.keys().map(|h| ("headers", h.as_str()));
    let named =
        named.chain(auth.map(|h| ("auth", h))).chain(spec.signature_header.as_deref().map(|h| ("signature_header", h)));
    for (field, name) in named {
        let lower = name.to_ascii_lowercase();
        if let Some((_, first)) = seen.iter().find(|(seen, _)| *seen == lower) {
            let reason = if *first == field {
                format!("sets {name:?} twice (header names are case-insensitive)")
            } else {
                format!("sets {name:?}, which {first} also sets; a header is sent once")
            };
            return Err(Error::invalid(field, reason));
        }
        seen.push((lower, field));
    }
    Ok(())
}

/// A header name must be an HTTP token and not one tidings sets itself.
fn check_header_name(field: &str, name: &str) -> Result<()> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || name.len() > 256 || !name.chars().all(token) {
        return Err(Error::invalid(field, format!("{name:?} is not a valid header name")));
    }
    if is_reserved(name) {
        return Err(Error::invalid(
            field,
            format!(
                "the header {name:?} is set by tidings or its HTTP client (framing and hop-by-hop headers cannot be set)"
            ),
        ));
    }
    Ok(())
}

/// A CA bundle must hold at least one well-formed PEM certificate block and nothing else
/// that looks like a private key.
fn check_ca_cert(pem: &str) -> Result<()> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    if pem.len() > 1024 * 1024 {
        return Err(Error::invalid("ca_cert", "must be at most 1 MiB"));
    }
    if pem.contains("PRIVATE KEY") {
        return Err(Error::invalid("ca_cert", "holds a private key; give only certificates"));
    }
    let mut rest = pem;
    let mut found = 0;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or_else(|| Error::invalid("ca_cert", "a certificate block is not terminated"))?;
        let body: String = after[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| Error::invalid("ca_cert", "a certificate block is not valid base64"))?;
        if der.first() != Some(&0x30) {
            return Err(Error::invalid("ca_cert", "a certificate block is not DER"));
        }
        found += 1;
        rest = &after[end + END.len()..];
    }
    if found == 0 {
        return Err(Error::invalid("ca_cert", "no PEM certificate found"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(spec: &EndpointSpec) -> String {
        match check(spec) {
            Err(Error::InvalidInput { field, .. }) => field,
            Err(other) => format!("other error {other}"),
            Ok(_) => "ok".into(),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(field_of(&EndpointSpec::new("https://example.com/hook")), "ok");
    }

    #[test]
    fn each_bad_field_is_named() {
        let base = || EndpointSpec::new("https://example.com/hook");
        let cases: Vec<(EndpointSpec, &str)> = vec![
            (EndpointSpec::new("ftp://example.com"), "url"),
            (EndpointSpec::new("not a url"), "url"),
            (EndpointSpec::new("https://user:pw@example.com"), "url"),
            (EndpointSpec { events: vec![], ..base() }, "events"),
            (EndpointSpec { events: vec!["or*der".into()], ..base() }, "events"),
            (EndpointSpec { secret: Some("nope".into()), ..base() }, "secret"),
            (EndpointSpec { rate_limit: Some(0.0), ..base() }, "rate_limit"),
            (EndpointSpec { rate_limit: Some(f64::NAN), ..base() }, "rate_limit"),
            (EndpointSpec { rate_limit: Some(1e-300), ..base() }, "rate_limit"),
            (EndpointSpec { burst: Some(3), ..base() }, "burst"),
            (EndpointSpec { max_in_flight: 0, ..base() }, "max_in_flight"),
            (EndpointSpec { timeout: Duration::ZERO, ..base() }, "timeout"),
            (EndpointSpec { auth: Some(Auth::Bearer(String::new())), ..base() }, "auth"),
            (EndpointSpec { headers: [("Content-Type".into(), "x".into())].into(), ..base() }, "headers"),
            (EndpointSpec { headers: [("X-A".into(), "a\r\nb".into())].into(), ..base() }, "headers"),
            (EndpointSpec { signature_header: Some("bad header".into()), ..base() }, "signature_header"),
            (EndpointSpec { ca_cert: Some("hello".into()), ..base() }, "ca_cert"),
            (EndpointSpec { templates: [("*".into(), "{not json".into())].into(), ..base() }, "template"),
            (EndpointSpec { keepalive: Some(Duration::from_millis(5)), ..base() }, "keepalive"),
            (EndpointSpec { final_statuses: vec![200], ..base() }, "final_statuses"),
            (EndpointSpec { name: Some(String::new()), ..base() }, "name"),
            (EndpointSpec { tenant: Some(String::new()), ..base() }, "tenant"),
            (EndpointSpec { headers: [("Trailer".into(), "x".into())].into(), ..base() }, "headers"),
            (EndpointSpec { headers: [("Proxy-Connection".into(), "x".into())].into(), ..base() }, "headers"),
            (EndpointSpec { signature_header: Some("Trailer".into()), ..base() }, "signature_header"),
            (
                EndpointSpec {
                    auth: Some(Auth::ApiKey { header: "proxy-connection".into(), value: "k".into() }),
                    ..base()
                },
                "auth",
            ),
            (
                EndpointSpec { headers: [("X-A".into(), "1".into()), ("x-a".into(), "2".into())].into(), ..base() },
                "headers",
            ),
            (
                EndpointSpec {
                    signature_header: Some("Authorization".into()),
                    auth: Some(Auth::Bearer("t".into())),
                    ..base()
                },
                "signature_header",
            ),
            (
                EndpointSpec {
                    headers: [("X-Key".into(), "1".into())].into(),
                    auth: Some(Auth::ApiKey { header: "x-key".into(), value: "k".into() }),
                    ..base()
                },
                "auth",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(field_of(&spec), field, "{spec:?}");
        }
    }
}
