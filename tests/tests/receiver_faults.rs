//! Receiver faults, one per case, each against its own store and engine (run side by side):
//! every status class, a reset before and in the middle of a response, a socket accepted and
//! never answered or never read, a response trickling at 1 byte per second (head or body), a
//! huge body, a redirect, a close before the headers, a closed port.
//!
//! For each: the delivery ends in the documented state (docs/architecture.md, "Where each step happens": classify), every
//! attempt record says why (status code or error kind and message), no attempt holds its
//! worker much past the endpoint's timeout (a bound relative to the timeout), the faulty
//! endpoint's attempts run one after another through its single in-flight slot (so the worker
//! is freed each time), and a healthy endpoint of the same engine gets all its deliveries,
//! while the slow faults are still being waited on.

use std::time::Duration;

use serde_json::json;
use tidings::{
    Attempt, DeliveryFilter, DeliveryOptions, DeliveryRecord, DeliveryState, EndpointSpec, ExpectedVersion, NewEvent,
    Result, Store,
};
use tidings_tests::faults::{Fault, FaultServer};
use tidings_tests::procs::wait_until;
use tidings_tests::receiver::{Behavior, Receiver};
use tidings_tests::{fast_retry, open_store, tempdir};

/// The endpoint timeout of every faulty endpoint.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Events sent to the faulty endpoint; each gets `ATTEMPTS` attempts at most.
const FAULTY_EVENTS: usize = 2;
const ATTEMPTS: u32 = 2;
/// Events sent to the healthy endpoint.
const HEALTHY_EVENTS: usize = 10;

/// Where the faulty endpoint points.
enum Target {
    /// The scriptable receiver answering every request with this behavior.
    Receiver(Behavior),
    /// The fault server.
    Fault(Fault),
    /// A loopback port nothing listens on.
    ClosedPort,
}

/// What the faulty endpoint's deliveries must end as.
struct Expect {
    state: DeliveryState,
    attempts: u32,
    status: Option<u16>,
    error_kind: Option<&'static str>,
    /// The fault keeps a request waiting for about the timeout.
    slow: bool,
}

struct Case {
    name: &'static str,
    target: Target,
    final_statuses: Vec<u16>,
    expect: Expect,
}

fn failed(status: Option<u16>, kind: &'static str, slow: bool) -> Expect {
    Expect { state: DeliveryState::Failed, attempts: ATTEMPTS, status, error_kind: Some(kind), slow }
}

fn succeeded(status: u16) -> Expect {
    Expect { state: DeliveryState::Succeeded, attempts: 1, status: Some(status), error_kind: None, slow: false }
}

fn cases() -> Vec<Case> {
    let case = |name, target, expect| Case { name, target, final_statuses: vec![], expect };
    vec![
        case("2xx 201", Target::Receiver(Behavior::Status(201)), succeeded(201)),
        case("2xx 204 without body", Target::Receiver(Behavior::Status(204)), succeeded(204)),
        case(
            "3xx redirect (not followed)",
            Target::Receiver(Behavior::Redirect("/elsewhere".into())),
            failed(Some(302), "status", false),
        ),
        case("4xx 400", Target::Receiver(Behavior::Status(400)), failed(Some(400), "status", false)),
        Case {
            name: "4xx 422 listed as final",
            target: Target::Receiver(Behavior::Status(422)),
            final_statuses: vec![422],
            expect: Expect { attempts: 1, ..failed(Some(422), "status", false) },
        },
        case("4xx 408", Target::Receiver(Behavior::Status(408)), failed(Some(408), "status", false)),
        case(
            "5xx 500 with a 5000-byte body",
            Target::Receiver(Behavior::Body(500, "e".repeat(5000))),
            failed(Some(500), "status", false),
        ),
        case("5xx 503", Target::Receiver(Behavior::Status(503)), failed(Some(503), "status", false)),
        case("reset before the response", Target::Receiver(Behavior::Reset), failed(None, "io", false)),
        case("reset in the middle of the body", Target::Fault(Fault::ResetMidBody), failed(None, "io", false)),
        case("close before the headers", Target::Receiver(Behavior::CloseBeforeHeaders), failed(None, "io", false)),
        case("accepted, read, never answered", Target::Receiver(Behavior::Hang), failed(None, "timeout", true)),
        case("accepted, never read", Target::Fault(Fault::SilentAccept), failed(None, "timeout", true)),
        case(
            "body at 1 byte per second",
            Target::Receiver(Behavior::SlowBody { bytes_per_sec: 1, total: 60 }),
            failed(None, "timeout", true),
        ),
        case(
            "status line and headers at 1 byte per second",
            Target::Fault(Fault::SlowHead { bytes_per_sec: 1 }),
            failed(None, "timeout", true),
        ),
        case("huge body (64 MiB)", Target::Receiver(Behavior::HugeBody(64 * 1024 * 1024)), succeeded(200)),
        case("closed port", Target::ClosedPort, failed(None, "connect", false)),
    ]
}

fn rows(store: &Store, endpoint: &str) -> Result<Vec<DeliveryRecord>> {
    store.deliveries(&DeliveryFilter { endpoint_id: Some(endpoint.to_string()), limit: 100, ..Default::default() })
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Runs one case; returns a description of what went wrong, if anything.
fn run(case: Case) -> Result<()> {
    let name = case.name;
    let dir = tempdir()?;
    let store = open_store(&dir.path().join("app.db"))?;
    let healthy_receiver = Receiver::start();
    let receiver = Receiver::start();
    let mut _fault = None;
    let url = match &case.target {
        Target::Receiver(behavior) => {
            receiver.set_behavior_for("/fault", behavior.clone());
            receiver.url_for("/fault")
        }
        Target::Fault(fault) => {
            let server = FaultServer::start(*fault);
            let url = server.url();
            _fault = Some(server);
            url
        }
        Target::ClosedPort => format!("http://127.0.0.1:{}/fault", closed_port()),
    };
    let faulty = store.create_endpoint(&EndpointSpec {
        events: vec!["faulty.*".into()],
        timeout: TIMEOUT,
        max_in_flight: 1,
        retry: fast_retry(Duration::from_millis(100), 1.0, ATTEMPTS),
        final_statuses: case.final_statuses.clone(),
        ..EndpointSpec::new(url)
    })?;
    let healthy = store.create_endpoint(&EndpointSpec {
        events: vec!["healthy.*".into()],
        ..EndpointSpec::new(healthy_receiver.url())
    })?;
    let delivery = store.start_delivery(DeliveryOptions { workers: 2, ..Default::default() })?;
    for i in 0..FAULTY_EVENTS {
        store.append("f", &[NewEvent::new("faulty.thing", json!({"i": i}))], ExpectedVersion::Any)?;
    }
    for i in 0..HEALTHY_EVENTS {
        store.append("h", &[NewEvent::new("healthy.thing", json!({"i": i}))], ExpectedVersion::Any)?;
    }
    // The healthy endpoint flows whatever the faulty one does.
    let flowed = wait_until(Duration::from_secs(30), || {
        Ok(rows(&store, &healthy.id)?.iter().filter(|d| d.state == DeliveryState::Succeeded).count() == HEALTHY_EVENTS)
    })?;
    assert!(flowed, "{name}: the healthy endpoint did not get its deliveries");
    if case.expect.slow {
        let waiting = rows(&store, &faulty.id)?.iter().filter(|d| d.state.is_unfinished()).count();
        assert!(waiting > 0, "{name}: the healthy endpoint only flowed after the faulty one finished");
    }
    let finished =
        wait_until(Duration::from_secs(60), || Ok(rows(&store, &faulty.id)?.iter().all(|d| !d.state.is_unfinished())))?;
    assert!(finished, "{name}: faulty deliveries never finished: {:?}", rows(&store, &faulty.id)?);
    delivery.shutdown(Duration::from_secs(2))?;

    let expect = &case.expect;
    let faulty_rows = rows(&store, &faulty.id)?;
    assert_eq!(faulty_rows.len(), FAULTY_EVENTS, "{name}");
    let mut all_attempts: Vec<Attempt> = Vec::new();
    for row in &faulty_rows {
        assert_eq!(row.state, expect.state, "{name}: delivery state");
        assert_eq!(row.attempts, expect.attempts, "{name}: attempts counted");
        let attempts = store.attempts(row.id)?;
        assert_eq!(attempts.len() as u32, expect.attempts, "{name}: attempts recorded");
        for (i, a) in attempts.iter().enumerate() {
            assert_eq!(a.number, i as u32 + 1, "{name}: attempt numbers");
            assert_eq!(a.status_code, expect.status, "{name}: status code recorded");
            assert_eq!(a.error_kind.as_deref(), expect.error_kind, "{name}: error kind recorded: {a:?}");
            match expect.error_kind {
                Some(_) => assert!(a.error.as_deref().is_some_and(|e| !e.is_empty()), "{name}: no error message"),
                None => assert_eq!(a.error, None, "{name}"),
            }
            if let Some(body) = &a.response_body {
                assert!(body.len() <= 1024, "{name}: {} response bytes recorded", body.len());
            }
            // The worker was held about one timeout at most (connect + head + body phases
            // are each bounded by it; a trickle must not hold it for its whole length).
            assert!(a.duration <= TIMEOUT * 4, "{name}: an attempt held its worker for {:?}", a.duration);
        }
        if row.state == DeliveryState::Failed {
            assert!(row.last_error.as_deref().is_some_and(|e| !e.is_empty()), "{name}: last_error is empty");
        }
        all_attempts.extend(attempts);
    }
    // One in-flight slot: the faulty endpoint's attempts never overlapped, so each one freed
    // its worker before the next began.
    all_attempts.sort_by_key(|a| a.started_at);
    for pair in all_attempts.windows(2) {
        let end = pair[0].started_at + pair[0].duration;
        assert!(end <= pair[1].started_at + Duration::from_millis(5), "{name}: attempts overlapped");
    }
    if let Target::Receiver(Behavior::Redirect(_)) = case.target {
        assert!(receiver.requests_to("/elsewhere").is_empty(), "{name}: the redirect was followed");
    }
    if let Target::Receiver(Behavior::Body(..)) = case.target {
        let body = faulty_rows.iter().map(|r| store.attempts(r.id)).next().transpose()?;
        assert_eq!(body.and_then(|a| a[0].response_body.clone()).map(|b| b.len()), Some(1024), "{name}");
    }
    let health = store.get_endpoint(&healthy.id)?.health;
    assert_eq!(health.consecutive_failures, 0, "{name}: the healthy endpoint's health moved");
    Ok(())
}

#[test]
fn every_receiver_fault_ends_in_its_documented_state_without_blocking_other_endpoints() {
    let results: Vec<(&str, std::thread::Result<Result<()>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases()
            .into_iter()
            .map(|case| {
                let name = case.name;
                (name, scope.spawn(move || run(case)))
            })
            .collect();
        handles.into_iter().map(|(name, h)| (name, h.join())).collect()
    });
    let mut failures = Vec::new();
    for (name, result) in results {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("{name}: error {e}")),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(msg);
            }
        }
    }
    assert!(failures.is_empty(), "{} of the fault cases failed:\n{}", failures.len(), failures.join("\n"));
}
