//! Egress refusal on the default policy, end to end: every spelling of a loopback address
//! (`127.0.0.1`, `localhost`, `[::1]`, IPv4-mapped `[::ffff:127.0.0.1]`, short and numeric
//! forms) is refused by `send_test`, `call` and the delivery engine, and real listeners on
//! `127.0.0.1` and `[::1]` prove that nothing connected. Private and metadata addresses
//! (`10.0.0.1`, `169.254.169.254`, `[::ffff:10.0.0.1]`) are refused by `send_test` run in a
//! child process inside an empty network namespace (`unshare -n`), so that not one packet
//! could leave this machine even if the policy failed; where namespaces are unavailable the
//! policy itself is checked instead. An allow-list opens exactly what it names.

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tidings::egress::EgressPolicy;
use tidings::{
    DeliveryFilter, DeliveryOptions, DeliveryState, EndpointSpec, Error, ExpectedVersion, NewEvent, Result, Store,
    StoreOptions,
};
use tidings_tests::receiver::Receiver;
use tidings_tests::{fast_retry, tempdir};

const CHILD: &str = env!("CARGO_BIN_EXE_tidings-test-child");

/// A listener on `[::1]` that counts the connections it accepts (none, if egress holds).
struct V6Listener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl V6Listener {
    fn start() -> Option<V6Listener> {
        let listener = TcpListener::bind("[::1]:0").ok()?;
        let port = listener.local_addr().ok()?.port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Some(V6Listener { port, accepted })
    }
}

fn loopback_spellings(port: u16, v6_port: Option<u16>) -> Vec<String> {
    let mut urls = vec![
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://LOCALHOST:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://[::ffff:7f00:1]:{port}/hook"),
        format!("http://127.1:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.0.0.2:{port}/hook"),
    ];
    if let Some(v6) = v6_port {
        urls.push(format!("http://[::1]:{v6}/hook"));
        urls.push(format!("http://[0:0:0:0:0:0:0:1]:{v6}/hook"));
    }
    urls
}

#[test]
fn every_spelling_of_loopback_is_refused_at_creation_by_default() -> Result<()> {
    let dir = tempdir()?;
    let store = Store::open(dir.path().join("app.db"), StoreOptions::default())?;
    let receiver = Receiver::start();
    let v6 = V6Listener::start();
    for url in loopback_spellings(receiver.port(), v6.as_ref().map(|l| l.port)) {
        match store.create_endpoint(&EndpointSpec::new(url.clone())) {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "url", "{url}");
                // A spelling the URL parser rejects says so; every other names the refusal.
                assert!(reason.contains("loopback") || reason.contains("not a valid URL"), "{url}: {reason}");
                assert!(!reason.contains("127.0.0.1") && !reason.contains("::1"), "{url}: the address is not named");
            }
            other => panic!("{url}: not refused at creation: {other:?}"),
        }
    }
    // A host name is not resolved at creation: only the delivery-time check can refuse it.
    let named = store.create_endpoint(&EndpointSpec::new("http://hooks.invalid/x"))?;
    store.delete_endpoint(&named.id)?;
    let upsert =
        store.upsert_endpoint(&EndpointSpec { name: Some("n".into()), ..EndpointSpec::new("http://[::1]:9/hook") });
    assert!(matches!(upsert, Err(Error::InvalidInput { ref field, .. }) if field == "url"), "{upsert:?}");
    assert_eq!(store.list_endpoints(None)?.len(), 0, "nothing was created");
    Ok(())
}

#[test]
fn every_spelling_of_loopback_is_refused_at_delivery_and_nothing_connects() -> Result<()> {
    let dir = tempdir()?;
    let path = dir.path().join("app.db");
    let receiver = Receiver::start();
    let v6 = V6Listener::start();
    let mut accepted = Vec::new();
    // The endpoints were made under a policy that allowed them (or the policy changed since,
    // or a host name resolves to loopback now): every send re-checks the resolved address.
    let permissive =
        Store::open(&path, StoreOptions { egress: EgressPolicy::allow_all_private(), ..Default::default() })?;
    let store = Store::open(&path, StoreOptions::default())?;
    for url in loopback_spellings(receiver.port(), v6.as_ref().map(|l| l.port)) {
        let spec =
            EndpointSpec { retry: fast_retry(Duration::from_millis(10), 1.0, 1), ..EndpointSpec::new(url.clone()) };
        let endpoint = match permissive.create_endpoint(&spec) {
            Ok(e) => e,
            Err(Error::InvalidInput { .. }) => continue,
            Err(e) => return Err(e),
        };
        let attempt = store.send_test(&endpoint.id)?;
        assert_eq!(attempt.error_kind.as_deref(), Some("egress_refused"), "{url}: {attempt:?}");
        assert!(attempt.error.as_deref().is_some_and(|e| e.contains("refused")), "{url}: {attempt:?}");
        match store.call(&endpoint.id, "access.request", json!({}), Duration::from_secs(2)) {
            Err(Error::Delivery { kind, .. }) => assert_eq!(kind, "egress_refused", "{url}"),
            other => panic!("{url}: call was not refused: {other:?}"),
        }
        accepted.push((url, endpoint.id));
    }
    assert!(accepted.len() >= 5, "too few spellings were accepted to test anything: {accepted:?}");
    // The engine refuses them too, as a final failure with the reason recorded.
    let delivery = store.start_delivery(DeliveryOptions { workers: 2, ..Default::default() })?;
    store.append("s", &[NewEvent::new("thing.happened", json!({}))], ExpectedVersion::Any)?;
    assert!(delivery.wait_idle(Duration::from_secs(20)));
    delivery.shutdown(Duration::from_secs(1))?;
    for (url, id) in &accepted {
        let rows = store.deliveries(&DeliveryFilter { endpoint_id: Some(id.clone()), ..Default::default() })?;
        assert_eq!(rows.len(), 1, "{url}");
        assert_eq!(rows[0].state, DeliveryState::Failed, "{url}");
        assert_eq!(store.attempts(rows[0].id)?[0].error_kind.as_deref(), Some("egress_refused"), "{url}");
    }
    assert_eq!(receiver.count(), 0, "a request reached the IPv4 loopback receiver");
    if let Some(v6) = v6 {
        assert_eq!(v6.accepted.load(Ordering::SeqCst), 0, "something connected to [::1]");
    }
    Ok(())
}

/// Whether this machine can run a command in an empty network namespace.
fn netns_available() -> bool {
    Command::new("unshare").args(["-n", "true"]).status().is_ok_and(|s| s.success())
}

#[test]
fn private_and_metadata_addresses_are_refused_without_a_packet_leaving() -> Result<()> {
    let targets = [
        ("10.0.0.1", "http://10.0.0.1:9/hook"),
        ("169.254.169.254", "http://169.254.169.254/latest/meta-data/"),
        ("::ffff:10.0.0.1", "http://[::ffff:10.0.0.1]:9/hook"),
        ("::ffff:169.254.169.254", "http://[::ffff:169.254.169.254]/latest/meta-data/"),
        ("fd00:ec2::254", "http://[fd00:ec2::254]/latest/meta-data/"),
    ];
    let policy = EgressPolicy::default();
    for (ip, _) in &targets {
        let refused = policy.check(ip.parse().map_err(|e| Error::Storage(format!("{ip}: {e}")))?);
        assert!(refused.is_err(), "the default policy allows {ip}");
    }
    if !netns_available() {
        eprintln!("no network namespaces here: only the policy was checked for non-loopback addresses");
        return Ok(());
    }
    let dir = tempdir()?;
    for (i, (ip, url)) in targets.iter().enumerate() {
        let db = dir.path().join(format!("ns-{i}.db"));
        // In an empty namespace even a policy failure could reach nothing: it would show as a
        // `connect` error instead of `egress_refused`.
        let out = Command::new("unshare")
            .args(["-n", CHILD, "send-test", &db.display().to_string(), url])
            .output()
            .map_err(|e| Error::Storage(format!("unshare: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{ip}: child failed: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout.trim(), "kind=egress_refused status=none", "{ip}");
    }
    Ok(())
}

#[test]
fn an_allow_list_opens_exactly_the_networks_it_names() -> Result<()> {
    let dir = tempdir()?;
    let policy = EgressPolicy::new(false, ["127.0.0.0/8"])?;
    let store = Store::open(dir.path().join("app.db"), StoreOptions { egress: policy, ..Default::default() })?;
    let receiver = Receiver::start();
    let v6 = V6Listener::start();
    let port = receiver.port();
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ] {
        let endpoint = store.create_endpoint(&EndpointSpec::new(url.clone()))?;
        let attempt = store.send_test(&endpoint.id)?;
        assert_eq!(attempt.status_code, Some(200), "{url}: {attempt:?}");
    }
    assert_eq!(receiver.count(), 3);
    if let Some(v6) = v6 {
        let url = format!("http://[::1]:{}/hook", v6.port);
        let refused = store.create_endpoint(&EndpointSpec::new(url.clone()));
        assert!(matches!(refused, Err(Error::InvalidInput { .. })), "[::1] is not in 127.0.0.0/8: {refused:?}");
        // Made under a wider policy, it is still refused when sent under this one.
        let wide = StoreOptions { egress: EgressPolicy::allow_all_private(), ..Default::default() };
        let endpoint = Store::open(dir.path().join("app.db"), wide)?.create_endpoint(&EndpointSpec::new(url))?;
        let attempt = store.send_test(&endpoint.id)?;
        assert_eq!(attempt.error_kind.as_deref(), Some("egress_refused"), "[::1] is not in 127.0.0.0/8");
        assert_eq!(v6.accepted.load(Ordering::SeqCst), 0);
    }
    Ok(())
}
