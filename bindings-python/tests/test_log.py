"""The event log: expected versions, idempotency, reads, stream lifecycle."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

import tidings


def test_expected_versions_and_concurrency_error(store: tidings.Store) -> None:
    first = store.append("order-1", "order.created", {"n": 1}, expected_version=0)
    assert (first.version, first.position) == (1, 1)
    second = store.append("order-1", "order.paid", {"n": 2}, expected_version=1)
    assert second.version == 2
    store.append("order-1", "order.shipped", {}, expected_version=tidings.STREAM_EXISTS)
    store.append("order-1", "order.noted", {}, expected_version=None)

    with pytest.raises(tidings.ConcurrencyError) as info:
        store.append("order-1", "order.paid", {}, expected_version=2)
    err = info.value
    assert isinstance(err, tidings.Error)
    assert (err.stream, err.expected, err.actual) == ("order-1", 2, 4)

    with pytest.raises(tidings.ConcurrencyError) as info:
        store.append("order-1", "order.created", {}, expected_version=0)
    assert (info.value.expected, info.value.actual) == (0, 4)

    with pytest.raises(tidings.ConcurrencyError) as info:
        store.append("order-2", "order.paid", {}, expected_version=tidings.STREAM_EXISTS)
    assert info.value.expected is tidings.STREAM_EXISTS
    assert info.value.actual == 0
    assert store.stream_version("order-1") == 4
    assert store.stream_version("order-2") is None
    assert repr(tidings.STREAM_EXISTS) == "tidings.STREAM_EXISTS"


def test_idempotent_append_with_caller_id(store: tidings.Store) -> None:
    event_id = str(uuid.uuid4())
    first = store.append("pay-1", "payment.captured", {"amount": 5}, event_id=event_id)
    again = store.append("pay-1", "payment.captured", {"amount": 5}, event_id=event_id, expected_version=0)
    assert (again.id, again.position, again.version) == (first.id, first.position, first.version)
    assert first.id == event_id
    with pytest.raises(tidings.IdempotencyConflictError) as info:
        store.append("pay-1", "payment.captured", {"amount": 6}, event_id=event_id)
    assert info.value.event_id == event_id
    assert store.stream_version("pay-1") == 1


def test_event_fields(store: tidings.Store) -> None:
    event = store.append("t-1", "ticket.opened", {"x": 1}, metadata={"actor": "bob"}, tenant="acme")
    assert uuid.UUID(event.id).version == 7
    assert event.tenant == "acme"
    assert event.metadata == {"actor": "bob"}
    assert event.recorded_at.tzinfo is not None
    assert event.recorded_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(timezone.utc) - event.recorded_at).total_seconds()) < 3600
    assert "ticket.opened" in repr(event)
    assert store.event(event.id).position == event.position
    with pytest.raises(tidings.NotFoundError) as info:
        store.event(str(uuid.uuid4()))
    assert info.value.kind == "event"


def test_read_stream_forwards_backwards_and_limits(store: tidings.Store) -> None:
    for i in range(1, 6):
        store.append("s", "item.added", {"i": i})
    assert [e.version for e in store.read_stream("s")] == [1, 2, 3, 4, 5]
    assert [e.version for e in store.read_stream("s", from_version=3)] == [3, 4, 5]
    assert [e.version for e in store.read_stream("s", from_version=2, limit=2)] == [2, 3]
    assert [e.version for e in store.read_stream("s", backwards=True)] == [5, 4, 3, 2, 1]
    assert [e.version for e in store.read_stream("s", from_version=3, backwards=True, limit=2)] == [3, 2]
    assert store.read_stream("missing") == []
    with store.transaction() as tx:
        tx.append("s", "item.added", {"i": 6})
        assert [e.version for e in tx.read_stream("s", from_version=5)] == [5, 6]
        assert tx.stream_version("s") == 6


def test_read_all_filters(store: tidings.Store) -> None:
    store.append("a", "order.created", {}, tenant="acme")
    store.append("b", "user.created", {})
    store.append("c", "order.paid", {}, tenant="globex")
    store.append("a", "order.paid", {}, tenant="acme")
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert [e.position for e in store.read_all(from_position=3)] == [3, 4]
    assert [e.position for e in store.read_all(limit=2)] == [1, 2]
    assert [e.type for e in store.read_all(types=["order.*"])] == ["order.created", "order.paid", "order.paid"]
    assert [e.type for e in store.read_all(types="user.created")] == ["user.created"]
    assert [e.position for e in store.read_all(tenant="acme")] == [1, 4]
    assert [e.position for e in store.read_all(types=["order.paid"], tenant="acme")] == [4]
    assert store.read_all(from_position=5, wait=0.05) == []
    assert store.last_position() == 4
    assert [e.position for e in store.read_all(stream="a")] == [1, 4]
    assert [e.position for e in store.read_all(backwards=True, limit=3)] == [4, 3, 2]
    assert [e.position for e in store.read_all(backwards=True, from_position=2)] == [2, 1]


def test_delete_and_truncate_stream(store: tidings.Store) -> None:
    for i in range(5):
        store.append("keep", "a.b", {"i": i})
        store.append("gone", "a.b", {"i": i})
    assert store.truncate_stream("keep", before_version=3) == 2
    assert [e.version for e in store.read_stream("keep")] == [3, 4, 5]
    assert store.stream_version("keep") == 5
    assert store.delete_stream("gone") == 5
    assert store.read_stream("gone") == []
    assert store.stream_version("gone") is None
    with pytest.raises(tidings.NotFoundError):
        store.delete_stream("gone")
    # Positions of other events are unchanged.
    assert [e.position for e in store.read_stream("keep")] == [5, 7, 9]
    with store.transaction() as tx:
        assert tx.truncate_stream("keep", before_version=4) == 1
        assert tx.delete_stream("keep") == 2


def test_prune_events_by_retention_rule(store: tidings.Store) -> None:
    for i in range(5):
        store.append("metrics", "metric.sampled", {"i": i})
    store.append("orders", "order.created", {})
    rule = tidings.RetentionRule("metric.*", max_count=2)
    assert (rule.pattern, rule.max_count, rule.max_age) == ("metric.*", 2, None)
    assert store.prune_events([rule]) == 3
    assert [e.data["i"] for e in store.read_stream("metrics")] == [3, 4]
    assert len(store.read_stream("orders")) == 1
    assert store.prune_events([tidings.RetentionRule("*", max_age=3600.0)]) == 0


def test_append_many_is_one_atomic_append(store: tidings.Store) -> None:
    store.append("cart-1", "cart.opened", {})
    events = store.append_many(
        "cart-1",
        [
            {"type": "cart.item_added", "data": {"sku": "A"}, "metadata": {"actor": "u1"}},
            {"type": "cart.item_added", "data": {"sku": "B"}},
            {"type": "cart.checked_out", "data": None},
        ],
        expected_version=1,
    )
    assert [(e.version, e.type) for e in events] == [
        (2, "cart.item_added"),
        (3, "cart.item_added"),
        (4, "cart.checked_out"),
    ]
    assert [e.position for e in events] == [2, 3, 4]
    assert events[0].metadata == {"actor": "u1"} and events[2].data is None
    # One version check for all: a stale expectation writes none of them.
    with pytest.raises(tidings.ConcurrencyError):
        store.append_many("cart-1", [{"type": "cart.noted", "data": {}}], expected_version=1)
    # Bad input names the event and writes nothing.
    with pytest.raises(tidings.InvalidInputError, match="event 1 has no \"type\""):
        store.append_many("cart-1", [{"type": "cart.noted", "data": {}}, {"data": {}}])
    with pytest.raises(tidings.InvalidInputError, match="sequence of mappings"):
        store.append_many("cart-1", {"type": "cart.noted", "data": {}})  # type: ignore[arg-type]
    with pytest.raises(tidings.InvalidInputError):
        store.append_many("cart-1", [])
    assert store.stream_version("cart-1") == 4
    with store.transaction() as tx:
        more = tx.append_many("cart-2", [{"type": "cart.opened", "data": {}, "id": str(uuid.uuid4())}] * 1)
        assert more[0].version == 1
    assert store.stream_version("cart-2") == 1
