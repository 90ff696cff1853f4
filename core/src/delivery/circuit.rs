//! How an endpoint's health moves with each attempt: concurrency (additive increase,
//! multiplicative decrease), the circuit breaker (closed → open → half-open → closed), and the
//! unhealthy and auto-disable thresholds. Pure functions on [`HealthState`]; the recorder
//! ([`super::complete`]) loads the state, applies a batch's outcomes in order and writes it
//! back with the system events of the [`Change`]s; the claim ([`super::claim`]) asks
//! [`gate`] what the endpoint may be sent now.
//!
//! - Each success adds one to the endpoint's concurrency (up to its `max_in_flight`); each
//!   failure halves it (down to one). A new endpoint starts at one.
//! - `circuit_after` failures in a row open the circuit: nothing is sent for the cool-down
//!   (`circuit_cooldown`, doubled at each opening since the circuit last closed, at most
//!   [`MAX_COOLDOWN`] or the first cool-down if that is longer). Then one probe goes out
//!   (half-open); its success closes the circuit (concurrency back to one), its failure opens
//!   it again.
//! - `unhealthy_after` failures in a row mark the endpoint unhealthy until a success; failing
//!   for `disable_after` without a success, or a `410 Gone`, disables it.

use std::time::Duration;

use crate::clock;
use crate::endpoint::CircuitState;
use crate::endpoint::state::HealthState;

/// The longest cool-down reached by doubling (a longer first cool-down is kept as it is).
pub(crate) const MAX_COOLDOWN: Duration = Duration::from_secs(600);

/// How often `last_success_at` is rewritten while an endpoint keeps succeeding: it is that
/// precise, and a busy endpoint's successes do not each cost a row update.
const LAST_SUCCESS_PRECISION_MICROS: i64 = 1_000_000;

/// The thresholds, from the delivery options.
#[derive(Debug, Clone)]
pub(crate) struct HealthPolicy {
    pub unhealthy_after: u32,
    pub disable_after: Duration,
    pub circuit_after: u32,
    pub circuit_cooldown: Duration,
}

/// What one attempt said about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Outcome {
    /// A 2xx.
    Success,
    /// Anything else: `status` if the receiver answered, `gone` for a 410.
    Failure { status: Option<u16>, gone: bool },
}

/// A transition that is announced as a system event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// `tidings.endpoint.unhealthy`.
    Unhealthy { failures: u32, status: Option<u16> },
    /// `tidings.endpoint.recovered`.
    Recovered,
    /// `tidings.endpoint.circuit_opened`: nothing is sent until `until`.
    CircuitOpened { failures: u32, until: i64, cooldown: Duration },
    /// `tidings.endpoint.circuit_half_opened`: one probe is out until `probe_until`.
    CircuitHalfOpened { probe_until: i64 },
    /// `tidings.endpoint.circuit_closed`.
    CircuitClosed,
    /// The endpoint must be disabled (`tidings.endpoint.disabled`).
    Disable { reason: String, status: Option<u16> },
}

/// What the engine may send to an endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Closed: up to `limit` requests in flight.
    Send { limit: u32 },
    /// The cool-down is over (or the last probe's lease ended): one probe may go.
    Probe,
    /// Nothing until `until`.
    Wait { until: i64 },
}

/// What the engine may send to an endpoint in `health` at `now`.
pub(crate) fn gate(health: &HealthState, now: i64) -> Gate {
    match (health.circuit, health.circuit_until) {
        (CircuitState::Closed, _) => Gate::Send { limit: health.concurrency.max(1) },
        (_, Some(until)) if now < until => Gate::Wait { until },
        _ => Gate::Probe,
    }
}

/// The cool-down after the `trips`-th opening since the circuit last closed.
pub(crate) fn cooldown(first: Duration, trips: u32) -> Duration {
    let doubled = first.saturating_mul(1u32 << trips.saturating_sub(1).min(20));
    doubled.min(MAX_COOLDOWN.max(first))
}

/// Applies one attempt's outcome at `now` to an endpoint allowing `max_in_flight`, pushing
/// the transitions to announce.
pub(crate) fn apply(
    health: &mut HealthState,
    outcome: Outcome,
    now: i64,
    max_in_flight: u32,
    policy: &HealthPolicy,
    changes: &mut Vec<Change>,
) {
    match outcome {
        Outcome::Success => succeed(health, now, max_in_flight, changes),
        Outcome::Failure { status, gone } => fail(health, now, status, gone, policy, changes),
    }
}

fn succeed(health: &mut HealthState, now: i64, max_in_flight: u32, changes: &mut Vec<Change>) {
    health.consecutive_failures = 0;
    health.failing_since = None;
    if health.last_success_at.is_none_or(|at| at < now.saturating_sub(LAST_SUCCESS_PRECISION_MICROS)) {
        health.last_success_at = Some(now);
    }
    if health.circuit == CircuitState::Closed {
        health.concurrency = health.concurrency.saturating_add(1).min(max_in_flight.max(1));
    } else {
        // A probe (or a request sent before the circuit opened) got through: start small again.
        health.circuit = CircuitState::Closed;
        health.circuit_until = None;
        health.trips = 0;
        health.concurrency = 1;
        changes.push(Change::CircuitClosed);
    }
    if health.unhealthy {
        health.unhealthy = false;
        changes.push(Change::Recovered);
    }
}

fn fail(
    health: &mut HealthState,
    now: i64,
    status: Option<u16>,
    gone: bool,
    policy: &HealthPolicy,
    changes: &mut Vec<Change>,
) {
    health.consecutive_failures = health.consecutive_failures.saturating_add(1);
    let failing_since = *health.failing_since.get_or_insert(now);
    health.concurrency = (health.concurrency / 2).max(1);
    if !health.unhealthy && health.consecutive_failures >= policy.unhealthy_after {
        health.unhealthy = true;
        changes.push(Change::Unhealthy { failures: health.consecutive_failures, status });
    }
    let open = match health.circuit {
        CircuitState::Closed => health.consecutive_failures >= policy.circuit_after,
        CircuitState::HalfOpen => true,
        // A request sent before the circuit opened failed too: it stays open as it is.
        CircuitState::Open => false,
    };
    if open {
        health.trips = health.trips.saturating_add(1);
        let cooldown = cooldown(policy.circuit_cooldown, health.trips);
        let until = now.saturating_add(clock::duration_micros(cooldown));
        health.circuit = CircuitState::Open;
        health.circuit_until = Some(until);
        changes.push(Change::CircuitOpened { failures: health.consecutive_failures, until, cooldown });
    }
    let cutoff = now.saturating_sub(clock::duration_micros(policy.disable_after));
    if gone {
        changes.push(Change::Disable { reason: "the receiver answered 410 Gone".to_string(), status });
    } else if failing_since <= cutoff {
        let reason = format!("no successful delivery for {} s while failing", policy.disable_after.as_secs());
        changes.push(Change::Disable { reason, status });
    }
}

/// Sends the half-open probe: the circuit is half-open until `probe_until` (the probe's
/// lease). Announced only when the circuit was open (a lost probe's replacement is not news).
pub(crate) fn probe(health: &mut HealthState, probe_until: i64, changes: &mut Vec<Change>) {
    if health.circuit == CircuitState::Open {
        changes.push(Change::CircuitHalfOpened { probe_until });
    }
    health.circuit = CircuitState::HalfOpen;
    health.circuit_until = Some(probe_until);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            unhealthy_after: 3,
            disable_after: Duration::from_secs(3600),
            circuit_after: 5,
            circuit_cooldown: Duration::from_secs(10),
        }
    }

    fn failure() -> Outcome {
        Outcome::Failure { status: None, gone: false }
    }

    #[test]
    fn concurrency_grows_by_one_per_success_and_halves_per_failure() {
        let mut h = HealthState::default();
        let mut changes = Vec::new();
        for _ in 0..10 {
            apply(&mut h, Outcome::Success, 0, 4, &policy(), &mut changes);
        }
        assert_eq!(h.concurrency, 4, "capped at max_in_flight");
        apply(&mut h, failure(), 0, 4, &policy(), &mut changes);
        assert_eq!(h.concurrency, 2);
        apply(&mut h, failure(), 0, 4, &policy(), &mut changes);
        apply(&mut h, failure(), 0, 4, &policy(), &mut changes);
        assert_eq!(h.concurrency, 1, "never below one");
        assert!(h.unhealthy);
        assert_eq!(changes, vec![Change::Unhealthy { failures: 3, status: None }]);
        assert_eq!(gate(&h, 0), Gate::Send { limit: 1 });
    }

    #[test]
    fn the_circuit_opens_probes_after_its_cooldown_and_closes_on_success() {
        let p = policy();
        let mut h = HealthState { concurrency: 4, last_success_at: Some(0), ..HealthState::default() };
        let mut changes = Vec::new();
        for i in 0..5 {
            apply(&mut h, failure(), i * SECOND, 4, &p, &mut changes);
        }
        assert_eq!(h.circuit, CircuitState::Open);
        let until = 4 * SECOND + 10 * SECOND;
        assert_eq!(h.circuit_until, Some(until));
        assert_eq!(changes.last(), Some(&Change::CircuitOpened { failures: 5, until, cooldown: p.circuit_cooldown }));
        assert_eq!(gate(&h, until - 1), Gate::Wait { until });
        assert_eq!(gate(&h, until), Gate::Probe);

        // The probe fails: open again for twice as long.
        changes.clear();
        probe(&mut h, until + 45 * SECOND, &mut changes);
        assert_eq!(changes, vec![Change::CircuitHalfOpened { probe_until: until + 45 * SECOND }]);
        assert_eq!(gate(&h, until + SECOND), Gate::Wait { until: until + 45 * SECOND }, "one probe at a time");
        apply(&mut h, failure(), until + SECOND, 4, &p, &mut changes);
        assert_eq!(h.circuit, CircuitState::Open);
        assert_eq!(h.trips, 2);
        assert_eq!(h.circuit_until, Some(until + SECOND + 20 * SECOND));

        // The next probe succeeds: closed, concurrency from one, recovered.
        changes.clear();
        probe(&mut h, until + 100 * SECOND, &mut changes);
        apply(&mut h, Outcome::Success, until + 60 * SECOND, 4, &p, &mut changes);
        assert_eq!(h.circuit, CircuitState::Closed);
        assert_eq!((h.trips, h.concurrency, h.circuit_until), (0, 1, None));
        assert_eq!(
            changes,
            vec![
                Change::CircuitHalfOpened { probe_until: until + 100 * SECOND },
                Change::CircuitClosed,
                Change::Recovered
            ]
        );
        assert_eq!(gate(&h, until + 60 * SECOND), Gate::Send { limit: 1 });
    }

    #[test]
    fn a_lost_probe_is_replaced_after_its_lease_without_a_new_announcement() {
        let mut h = HealthState { circuit: CircuitState::HalfOpen, circuit_until: Some(50), ..HealthState::default() };
        assert_eq!(gate(&h, 49), Gate::Wait { until: 50 });
        assert_eq!(gate(&h, 50), Gate::Probe);
        let mut changes = Vec::new();
        probe(&mut h, 90, &mut changes);
        assert!(changes.is_empty());
        assert_eq!(h.circuit_until, Some(90));
    }

    #[test]
    fn cooldowns_double_up_to_the_cap() {
        let first = Duration::from_secs(30);
        assert_eq!(cooldown(first, 1), first);
        assert_eq!(cooldown(first, 2), Duration::from_secs(60));
        assert_eq!(cooldown(first, 6), MAX_COOLDOWN);
        assert_eq!(cooldown(first, u32::MAX), MAX_COOLDOWN);
        assert_eq!(cooldown(Duration::from_secs(3600), 3), Duration::from_secs(3600), "a longer first one is kept");
    }

    #[test]
    fn gone_and_long_failing_endpoints_are_disabled() {
        let p = policy();
        let mut h = HealthState::default();
        let mut changes = Vec::new();
        apply(&mut h, Outcome::Failure { status: Some(410), gone: true }, 0, 4, &p, &mut changes);
        assert!(matches!(changes.last(), Some(Change::Disable { status: Some(410), .. })));
        changes.clear();
        apply(&mut h, failure(), 3600 * SECOND, 4, &p, &mut changes);
        assert!(matches!(changes.last(), Some(Change::Disable { reason, .. }) if reason.contains("3600 s")));
    }

    #[test]
    fn successes_in_a_row_leave_the_state_alone_once_at_full_concurrency() {
        let mut h = HealthState { concurrency: 4, last_success_at: Some(10 * SECOND), ..HealthState::default() };
        let before = h.clone();
        let mut changes = Vec::new();
        apply(&mut h, Outcome::Success, 10 * SECOND + 500_000, 4, &policy(), &mut changes);
        assert_eq!(h, before, "nothing to write");
        apply(&mut h, Outcome::Success, 12 * SECOND, 4, &policy(), &mut changes);
        assert_eq!(h.last_success_at, Some(12 * SECOND));
        assert!(changes.is_empty());
    }
}
