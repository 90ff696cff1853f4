"""The engine handle's two waits (``wait_idle`` vs ``drain``), the engine's pool and circuit
options, and each endpoint's circuit breaker and concurrency as Python sees them.

The receiver runs in this process and needs the GIL to answer, so every wait here that ends
after a request was answered also shows that the wait released the GIL.
"""

from __future__ import annotations

import pathlib
import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Receiver, wait_until

import tidings

RETRY_IN_1S = {"Retry-After": "1"}


def circuit_events(store: tidings.Store, endpoint_id: str) -> list[tidings.Event]:
    """The circuit's system events in the endpoint's stream, oldest first."""
    stream = store.read_stream(f"tidings.endpoint.{endpoint_id}")
    return [e for e in stream if e.type.startswith("tidings.endpoint.circuit_")]


def test_wait_idle_returns_before_a_scheduled_retry_and_drain_after_it(
    store: tidings.Store, receiver: Receiver
) -> None:
    receiver.script = [(503, RETRY_IN_1S), (503, RETRY_IN_1S)]  # then the default 200
    ep = store.create_endpoint(receiver.url())
    event = store.append("s", "a.b", {"n": 1})
    with store.start_delivery(workers=1) as delivery:
        # Nothing is due now once the first attempt failed: its retry is a second away.
        assert delivery.wait_idle(30.0) is True
        assert len(receiver.requests) == 1
        [record] = store.deliveries(endpoint_id=ep.id)
        assert (record.state, record.attempts, record.last_status_code) == ("retrying", 1, 503)
        assert record.next_attempt_at is not None

        # drain waits through both retries.
        assert delivery.drain(30.0) is True
        assert len(receiver.requests) == 3
        [record] = store.deliveries(endpoint_id=ep.id)
        assert (record.state, record.attempts, record.last_status_code) == ("succeeded", 3, 200)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.id] * 3
    assert [a.status_code for a in store.attempts(record.id)] == [503, 503, 200]


def test_drain_times_out_while_a_delivery_keeps_failing(store: tidings.Store, receiver: Receiver) -> None:
    receiver.status, receiver.headers = 503, RETRY_IN_1S
    ep = store.create_endpoint(receiver.url())
    store.append("s", "a.b", {})
    with store.start_delivery(workers=1) as delivery:
        started = time.monotonic()
        assert delivery.drain(0.5) is False
        assert time.monotonic() - started >= 0.45  # it waited out its timeout
        receiver.wait_for(1)
        [record] = store.deliveries(endpoint_id=ep.id)
        assert record.state in ("pending", "sending", "retrying")

        # Once the receiver recovers, the same engine drains.
        receiver.status, receiver.headers = 200, {}
        assert delivery.drain(30.0) is True
        assert store.deliveries(endpoint_id=ep.id)[0].state == "succeeded"

        with pytest.raises(tidings.InvalidInputError) as info:
            delivery.drain(-1.0)
        assert info.value.field == "timeout"
    # A stopped engine drains nothing.
    assert delivery.running is False
    assert delivery.drain(0.1) is False


def test_a_new_endpoint_has_a_closed_circuit_and_concurrency_one(store: tidings.Store) -> None:
    ep = store.create_endpoint("https://example.com/hook")
    assert (ep.circuit, ep.circuit_until, ep.concurrency) == ("closed", None, 1)
    assert store.get_endpoint(ep.id).circuit == "closed"
    [per] = store.stats()["endpoints"]
    assert per["endpoint_id"] == ep.id
    assert (per["circuit"], per["concurrency"]) == ("closed", 1)
    assert circuit_events(store, ep.id) == []


def test_failures_in_a_row_open_the_circuit(store: tidings.Store, receiver: Receiver) -> None:
    receiver.status = 500
    ep = store.create_endpoint(receiver.url())
    store.append("s", "a.b", {"n": 1})
    store.append("s", "a.b", {"n": 2})
    before = datetime.now(timezone.utc)
    with store.start_delivery(workers=1, circuit_after=2, circuit_cooldown=60) as delivery:
        assert wait_until(lambda: store.get_endpoint(ep.id).circuit == "open")
        now = datetime.now(timezone.utc)
        opened = store.get_endpoint(ep.id)
        until = opened.circuit_until
        assert isinstance(until, datetime) and until.tzinfo is not None
        # Opened by the second failure, after `before`, for the 60 s cool-down.
        assert now < until
        assert before + timedelta(seconds=59) <= until <= now + timedelta(seconds=61)
        assert (opened.consecutive_failures, opened.unhealthy, opened.concurrency) == (2, False, 1)

        per = next(e for e in store.stats()["endpoints"] if e["endpoint_id"] == ep.id)
        assert (per["circuit"], per["concurrency"], per["consecutive_failures"]) == ("open", 1, 2)

        [event] = circuit_events(store, ep.id)
        assert event.type == "tidings.endpoint.circuit_opened"
        assert event.data["endpoint_id"] == ep.id
        assert event.data["consecutive_failures"] == 2
        assert event.data["cooldown_ms"] == 60_000

        # Nothing more goes out while it is open, so nothing drains.
        assert delivery.drain(0.3) is False
        assert len(receiver.requests) == 2
        assert store.delivery_counts(ep.id)["retrying"] == 2


def test_the_probe_after_the_cooldown_closes_the_circuit(store: tidings.Store, receiver: Receiver) -> None:
    receiver.script = [(500, {}), (500, {})]  # then the default 200
    ep = store.create_endpoint(receiver.url(), initial_delay=0.05, jitter=0.0)
    store.append("s", "a.b", {"n": 1})
    store.append("s", "a.b", {"n": 2})
    with store.start_delivery(workers=1, circuit_after=2, circuit_cooldown=0.2) as delivery:
        assert delivery.drain(30.0) is True
    assert store.delivery_counts(ep.id)["succeeded"] == 2
    assert len(receiver.requests) == 4
    closed = store.get_endpoint(ep.id)
    assert (closed.circuit, closed.circuit_until, closed.consecutive_failures) == ("closed", None, 0)
    # The probe's success closed it at concurrency 1; the next success added one.
    assert closed.concurrency == 2
    events = circuit_events(store, ep.id)
    assert [e.type for e in events] == [
        "tidings.endpoint.circuit_opened",
        "tidings.endpoint.circuit_half_opened",
        "tidings.endpoint.circuit_closed",
    ]
    assert events[0].data["cooldown_ms"] == 200


def test_start_delivery_accepts_and_validates_the_pool_and_circuit_options(
    store: tidings.Store, receiver: Receiver
) -> None:
    store.create_endpoint(receiver.url())
    store.append("s", "a.b", {})
    with store.start_delivery(workers=2, max_workers=2, circuit_after=1, circuit_cooldown=0.5) as delivery:
        assert delivery.drain(30.0) is True
    assert len(receiver.requests) == 1

    with pytest.raises(tidings.InvalidInputError) as info:
        store.start_delivery(workers=8, max_workers=4)
    assert info.value.field == "max_workers"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.start_delivery(max_workers=5000)
    assert info.value.field == "max_workers"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.start_delivery(circuit_after=0)
    assert info.value.field == "circuit_after"
    assert isinstance(info.value, ValueError)
    for cooldown in (0.001, 2 * 24 * 3600.0, -1.0, float("nan")):
        with pytest.raises(tidings.InvalidInputError) as info:
            store.start_delivery(circuit_cooldown=cooldown)
        assert info.value.field == "circuit_cooldown"


def test_more_workers_than_the_default_max_workers_raise_the_max(tmp_path: pathlib.Path) -> None:
    # max_workers left unset is 256 or workers, whichever is more.
    with tidings.Store(str(tmp_path / "w.db")) as store:
        with store.start_delivery(workers=300) as delivery:
            assert delivery.running
