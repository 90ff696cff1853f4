//! Secrets, auth tokens, API keys and custom header values never appear in `Debug`, `Display`
//! or error text.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::*;
use tidings::{Auth, EndpointSpec, EndpointUpdate, Error, Result, Secret};

/// The base64 part of the known secret (32 bytes, easy to spot).
fn secret_body() -> String {
    base64::engine::general_purpose::STANDARD.encode(b"tidings-test-secret-key-32-bytes")
}

fn known_secret() -> String {
    format!("whsec_{}", secret_body())
}

const BEARER: &str = "bearer-tok-5f1e2d3c4b5a69788796a5b4";
const API_KEY: &str = "apikey-9a8b7c6d5e4f30211203f4e5";
const HEADER_VALUE: &str = "hdrval-0d1e2f3a4b5c6d7e8f90a1b2";

/// Every sensitive value, and a distinctive piece of each (in case of partial echoes).
fn sensitive() -> Vec<String> {
    let body = secret_body();
    vec![
        known_secret(),
        body.clone(),
        body[..16].to_string(),
        BEARER.to_string(),
        BEARER[11..].to_string(),
        API_KEY.to_string(),
        API_KEY[7..].to_string(),
        HEADER_VALUE.to_string(),
        HEADER_VALUE[7..].to_string(),
    ]
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for needle in sensitive() {
        assert!(!text.contains(&needle), "{what} leaks {needle:?}: {text}");
    }
}

fn secret_spec(auth: Auth) -> EndpointSpec {
    EndpointSpec {
        secret: Some(known_secret()),
        auth: Some(auth),
        headers: BTreeMap::from([("X-Custom".into(), HEADER_VALUE.into())]),
        ..EndpointSpec::new("https://example.com/hook")
    }
}

#[test]
fn endpoints_specs_updates_and_secrets_are_redacted_in_debug() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let bearer_spec = secret_spec(Auth::Bearer(BEARER.into()));
    let api_key_spec = secret_spec(Auth::ApiKey { header: "X-Api-Key".into(), value: API_KEY.into() });
    let with_bearer = store.create_endpoint(&bearer_spec)?;
    let with_api_key = store.create_endpoint(&api_key_spec)?;
    // The values really are stored (so the redaction is not hiding an empty field).
    assert_eq!(with_bearer.secret.expose(), known_secret());
    assert_eq!(with_bearer.spec.auth, Some(Auth::Bearer(BEARER.into())));
    assert_eq!(with_api_key.spec.headers.get("X-Custom").map(String::as_str), Some(HEADER_VALUE));

    let update = EndpointUpdate {
        auth: Some(Some(Auth::ApiKey { header: "X-Api-Key".into(), value: API_KEY.into() })),
        headers: Some(BTreeMap::from([("X-Custom".into(), HEADER_VALUE.into())])),
        ..Default::default()
    };
    let secret = Secret::parse(&known_secret())?;
    let texts = [
        ("Endpoint (bearer)", format!("{with_bearer:?}")),
        ("Endpoint (api key)", format!("{with_api_key:?}")),
        ("Endpoint (pretty)", format!("{with_api_key:#?}")),
        ("EndpointSpec (bearer)", format!("{bearer_spec:?}")),
        ("EndpointSpec (api key)", format!("{api_key_spec:#?}")),
        ("EndpointUpdate", format!("{update:?}")),
        ("Auth::Bearer", format!("{:?}", Auth::Bearer(BEARER.into()))),
        ("Auth::ApiKey", format!("{:?}", Auth::ApiKey { header: "X-Api-Key".into(), value: API_KEY.into() })),
        ("Secret", format!("{secret:?}")),
        ("endpoint list", format!("{:?}", store.list_endpoints(None)?)),
        ("Store", format!("{store:?}")),
    ];
    for (what, text) in &texts {
        assert_clean(what, text);
    }
    // The Debug output still says what it is about.
    assert!(texts[0].1.contains(&with_bearer.id));
    assert!(texts[3].1.contains("https://example.com/hook"));
    assert!(texts[5].1.contains("X-Api-Key") || texts[5].1.contains("ApiKey"));
    Ok(())
}

#[test]
fn a_rotated_out_secret_does_not_leak_either() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&secret_spec(Auth::Bearer(BEARER.into())))?;
    let rotated = store.rotate_secret(&endpoint.id)?;
    assert_ne!(rotated.secret.expose(), known_secret());
    assert_clean("rotated endpoint", &format!("{rotated:?}"));
    assert!(!format!("{rotated:?}").contains(rotated.secret.expose()), "the new secret leaks");
    Ok(())
}

/// Malformed secrets that still carry a recognisable sensitive part.
fn malformed_secrets() -> Vec<String> {
    let body = secret_body();
    vec![
        // Not base64.
        format!("whsec_{}!!", body),
        format!("whsec_{}$", &body[..20]),
        // Too short a key.
        format!("whsec_{}", &body[..16]),
        // Too long a key.
        format!("whsec_{}{}{}", body, body, body),
        // No prefix.
        body.clone(),
        format!("sk_{body}"),
        format!("WHSEC_{body}"),
    ]
}

#[test]
fn errors_about_malformed_secrets_do_not_repeat_them() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let endpoint = store.create_endpoint(&EndpointSpec::new("https://example.com/hook"))?;
    for bad in malformed_secrets() {
        let mut errors: Vec<Error> = Vec::new();
        errors.push(Secret::parse(&bad).map(drop).expect_err("a malformed secret parses"));
        errors.push(
            store
                .create_endpoint(&EndpointSpec {
                    secret: Some(bad.clone()),
                    ..EndpointSpec::new("https://example.com/h")
                })
                .map(drop)
                .expect_err("a malformed secret was accepted"),
        );
        errors.push(store.rotate_secret_to(&endpoint.id, &bad).map(drop).expect_err("a malformed rotation"));
        errors.push(
            tidings::verify(b"{}", [("webhook-id", "msg_1")], &[bad.as_str()], std::time::Duration::from_secs(300))
                .map(drop)
                .expect_err("verify with a malformed secret"),
        );
        for err in &errors {
            for text in [format!("{err}"), format!("{err:?}")] {
                assert!(!text.contains(&bad), "error text repeats the secret: {text}");
                assert!(!text.contains(&secret_body()[..16]), "error text repeats part of the secret: {text}");
            }
        }
    }
    Ok(())
}

#[test]
fn errors_about_bad_auth_and_headers_do_not_repeat_their_values() -> Result<()> {
    let (_dir, _path, store) = fresh()?;
    let base = || EndpointSpec::new("https://example.com/hook");
    let bad_specs = [
        // A bearer token may not contain a space.
        EndpointSpec { auth: Some(Auth::Bearer(format!("{BEARER} {BEARER}"))), ..base() },
        // An API key may not contain control characters.
        EndpointSpec {
            auth: Some(Auth::ApiKey { header: "X-Api-Key".into(), value: format!("{API_KEY}\n") }),
            ..base()
        },
        // A header value may not contain CR/LF.
        EndpointSpec {
            headers: BTreeMap::from([("X-Custom".into(), format!("{HEADER_VALUE}\r\nX-Evil: 1"))]),
            ..base()
        },
        // A password in the URL is refused without being repeated.
        EndpointSpec::new(format!("https://user:{API_KEY}@example.com/hook")),
    ];
    for spec in &bad_specs {
        let err = store.create_endpoint(spec).map(drop).expect_err("bad auth or header accepted");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert_clean("error", &format!("{err}"));
        assert_clean("error (debug)", &format!("{err:?}"));
    }
    for spec in &bad_specs[..3] {
        assert_clean("refused spec", &format!("{spec:?}"));
    }
    assert!(store.list_endpoints(None)?.is_empty());
    Ok(())
}

#[test]
fn debug_of_a_spec_does_not_show_a_password_given_in_its_url() {
    // Refused at create time, but an app that logs the refused spec must not log the password.
    let spec = EndpointSpec::new(format!("https://user:{API_KEY}@example.com/hook"));
    assert_clean("spec with credentials in its URL", &format!("{spec:?}"));
    let update = EndpointUpdate { url: Some(format!("https://user:{API_KEY}@example.com/hook")), ..Default::default() };
    assert_clean("update with credentials in its URL", &format!("{update:?}"));
}
