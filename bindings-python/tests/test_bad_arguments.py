"""Every public call given a negative int, an int too large for its argument, or a str holding a
lone surrogate raises ``InvalidInputError`` naming that argument (not ``OverflowError`` or
``UnicodeEncodeError``) and leaves the database as it was. A value of the wrong type is still a
``TypeError``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

import tidings

LONE = "\ud800"  # UTF-8 cannot encode a lone surrogate
HUGE = 2**70  # too large for any unsigned argument (u16 to u64)
URL = "https://hooks.example.com/in"
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)

Store = tidings.Store
Tx = tidings.Transaction
IntCall = Callable[[Store, str, int], object]
StrCall = Callable[[Store, str, str], object]


def in_tx(store: Store, call: Callable[[Tx], object]) -> object:
    """``call`` inside a transaction (rolled back when it raises)."""
    tx = store.transaction()
    with tx:
        result = call(tx)
    return result


# (case, argument the error must name, call(store, endpoint id, bad int))
INT_ARGS: list[tuple[str, str, IntCall]] = [
    ("Store", "max_event_size", lambda s, ep, n: Store(s.path, max_event_size=n)),
    ("TenantRate", "per_minute", lambda s, ep, n: tidings.TenantRate(n)),
    ("RetentionRule", "max_count", lambda s, ep, n: tidings.RetentionRule("a.*", max_count=n)),
    ("append", "expected_version", lambda s, ep, n: s.append("s", "a.b", {}, expected_version=n)),
    ("append_many", "expected_version", lambda s, ep, n: s.append_many("s", [{"type": "a.b", "data": 1}], n)),
    ("read_stream", "from_version", lambda s, ep, n: s.read_stream("s", from_version=n)),
    ("read_stream", "limit", lambda s, ep, n: s.read_stream("s", limit=n)),
    ("read_all", "from_position", lambda s, ep, n: s.read_all(from_position=n)),
    ("read_all", "limit", lambda s, ep, n: s.read_all(limit=n)),
    ("iter_all", "from_position", lambda s, ep, n: list(s.iter_all(from_position=n))),
    ("iter_all", "batch", lambda s, ep, n: list(s.iter_all(batch=n))),
    ("upsert_endpoint", "max_attempts", lambda s, ep, n: s.upsert_endpoint(URL, name="up", max_attempts=n)),
    ("truncate_stream", "before_version", lambda s, ep, n: s.truncate_stream("s", n)),
    ("set_checkpoint", "position", lambda s, ep, n: s.set_checkpoint("cp", n)),
    ("save_snapshot", "version", lambda s, ep, n: s.save_snapshot("s", n, {})),
    ("create_endpoint", "max_attempts", lambda s, ep, n: s.create_endpoint(URL, max_attempts=n)),
    ("create_endpoint", "burst", lambda s, ep, n: s.create_endpoint(URL, burst=n)),
    ("create_endpoint", "max_in_flight", lambda s, ep, n: s.create_endpoint(URL, max_in_flight=n)),
    ("update_endpoint", "max_attempts", lambda s, ep, n: s.update_endpoint(ep, max_attempts=n)),
    ("update_endpoint", "burst", lambda s, ep, n: s.update_endpoint(ep, burst=n)),
    ("update_endpoint", "max_in_flight", lambda s, ep, n: s.update_endpoint(ep, max_in_flight=n)),
    ("start_delivery", "workers", lambda s, ep, n: s.start_delivery(n)),
    ("start_delivery", "max_workers", lambda s, ep, n: s.start_delivery(max_workers=n)),
    ("start_delivery", "max_in_flight", lambda s, ep, n: s.start_delivery(max_in_flight=n)),
    ("start_delivery", "unhealthy_after", lambda s, ep, n: s.start_delivery(unhealthy_after=n)),
    ("start_delivery", "circuit_after", lambda s, ep, n: s.start_delivery(circuit_after=n)),
    ("start_delivery", "max_records", lambda s, ep, n: s.start_delivery(max_records=n)),
    ("deliveries", "limit", lambda s, ep, n: s.deliveries(limit=n)),
    ("deliveries", "before_id", lambda s, ep, n: s.deliveries(before_id=n)),
    ("delivery", "id", lambda s, ep, n: s.delivery(n)),
    ("attempts", "delivery_id", lambda s, ep, n: s.attempts(n)),
    ("retry", "delivery_id", lambda s, ep, n: s.retry(n)),
    ("replay", "from_position", lambda s, ep, n: s.replay(ep, n)),
    ("replay", "to_position", lambda s, ep, n: s.replay(ep, 1, to_position=n)),
    ("tx.append", "expected_version", lambda s, ep, n: in_tx(s, lambda tx: tx.append("s", "a.b", 1, n))),
    ("tx.read_stream", "from_version", lambda s, ep, n: in_tx(s, lambda tx: tx.read_stream("s", n))),
    ("tx.read_stream", "limit", lambda s, ep, n: in_tx(s, lambda tx: tx.read_stream("s", limit=n))),
    ("tx.set_checkpoint", "position", lambda s, ep, n: in_tx(s, lambda tx: tx.set_checkpoint("cp", n))),
    ("tx.save_snapshot", "version", lambda s, ep, n: in_tx(s, lambda tx: tx.save_snapshot("s", n, {}))),
    ("tx.truncate_stream", "before_version", lambda s, ep, n: in_tx(s, lambda tx: tx.truncate_stream("s", n))),
    ("tx.create_endpoint", "max_attempts", lambda s, ep, n: in_tx(s, lambda tx: tx.create_endpoint(URL, max_attempts=n))),
    ("tx.create_endpoint", "burst", lambda s, ep, n: in_tx(s, lambda tx: tx.create_endpoint(URL, burst=n))),
    ("tx.create_endpoint", "max_in_flight", lambda s, ep, n: in_tx(s, lambda tx: tx.create_endpoint(URL, max_in_flight=n))),
    ("tx.update_endpoint", "max_attempts", lambda s, ep, n: in_tx(s, lambda tx: tx.update_endpoint(ep, max_attempts=n))),
    ("tx.retry", "delivery_id", lambda s, ep, n: in_tx(s, lambda tx: tx.retry(n))),
    ("tx.replay", "from_position", lambda s, ep, n: in_tx(s, lambda tx: tx.replay(ep, n))),
    ("tx.replay", "to_position", lambda s, ep, n: in_tx(s, lambda tx: tx.replay(ep, 1, n))),
]

# (case, argument the error must name, call(store, endpoint id, bad str))
STR_ARGS: list[tuple[str, str, StrCall]] = [
    ("Store", "path", lambda s, ep, t: Store(t)),
    ("Store", "source", lambda s, ep, t: Store(s.path, source=t)),
    ("Store", "durability", lambda s, ep, t: Store(s.path, durability=t)),  # type: ignore[arg-type]
    ("Store", "allowed_networks", lambda s, ep, t: Store(s.path, allowed_networks=[t])),
    ("TenantRate", "tenant", lambda s, ep, t: tidings.TenantRate(5, tenant=t)),
    ("TenantRate", "mode", lambda s, ep, t: tidings.TenantRate(5, mode=t)),  # type: ignore[arg-type]
    ("RetentionRule", "pattern", lambda s, ep, t: tidings.RetentionRule(t)),
    ("Bearer", "token", lambda s, ep, t: tidings.Bearer(t)),
    ("ApiKey", "header", lambda s, ep, t: tidings.ApiKey(t, "v")),
    ("ApiKey", "value", lambda s, ep, t: tidings.ApiKey("X-Key", t)),
    ("verify", "body", lambda s, ep, t: tidings.verify(t, {}, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
    ("verify", "headers", lambda s, ep, t: tidings.verify(b"{}", {"webhook-id": t}, "whsec_x")),
    ("verify", "secret", lambda s, ep, t: tidings.verify(b"{}", {}, t)),
    ("verify", "secret", lambda s, ep, t: tidings.verify(b"{}", {}, ["whsec_x", t])),
    ("append", "stream", lambda s, ep, t: s.append(t, "a.b", {})),
    ("append", "type", lambda s, ep, t: s.append("s", t, {})),
    ("append", "data", lambda s, ep, t: s.append("s", "a.b", t)),
    ("append", "data", lambda s, ep, t: s.append("s", "a.b", {"k": [t]})),
    ("append", "data", lambda s, ep, t: s.append("s", "a.b", {t: 1})),
    ("append", "metadata", lambda s, ep, t: s.append("s", "a.b", {}, metadata={"k": t})),
    ("append", "tenant", lambda s, ep, t: s.append("s", "a.b", {}, tenant=t)),
    ("append", "event_id", lambda s, ep, t: s.append("s", "a.b", {}, event_id=t)),
    ("append_many", "stream", lambda s, ep, t: s.append_many(t, [{"type": "a.b", "data": 1}])),
    ("append_many", "events", lambda s, ep, t: s.append_many("s", [{"type": t, "data": 1}])),
    ("append_many", "events", lambda s, ep, t: s.append_many("s", [{"type": "a.b", "data": 1, "tenant": t}])),
    ("append_many", "events", lambda s, ep, t: s.append_many("s", [{"type": "a.b", "data": 1, "id": t}])),
    ("execute", "sql", lambda s, ep, t: s.execute(t)),
    ("execute", "params", lambda s, ep, t: s.execute("INSERT INTO notes (body) VALUES (?)", (t,))),
    ("execute", "params", lambda s, ep, t: s.execute("INSERT INTO notes (body) VALUES (:b)", {"b": t})),
    ("execute", "params", lambda s, ep, t: s.execute("INSERT INTO notes (body) VALUES (:b)", {t: "x"})),
    ("query", "sql", lambda s, ep, t: s.query(t)),
    ("executemany", "sql", lambda s, ep, t: s.executemany(t, [()])),
    ("executemany", "params", lambda s, ep, t: s.executemany("INSERT INTO notes (body) VALUES (?)", [("x",), (t,)])),
    ("executescript", "script", lambda s, ep, t: s.executescript(t)),
    ("read_stream", "stream", lambda s, ep, t: s.read_stream(t)),
    ("read_all", "types", lambda s, ep, t: s.read_all(types=t)),
    ("read_all", "types", lambda s, ep, t: s.read_all(types=["a.b", t])),
    ("read_all", "tenant", lambda s, ep, t: s.read_all(tenant=t)),
    ("read_all", "stream", lambda s, ep, t: s.read_all(stream=t)),
    ("stream_version", "stream", lambda s, ep, t: s.stream_version(t)),
    ("event", "id", lambda s, ep, t: s.event(t)),
    ("delete_stream", "stream", lambda s, ep, t: s.delete_stream(t)),
    ("truncate_stream", "stream", lambda s, ep, t: s.truncate_stream(t, 1)),
    ("checkpoint", "name", lambda s, ep, t: s.checkpoint(t)),
    ("set_checkpoint", "name", lambda s, ep, t: s.set_checkpoint(t, 1)),
    ("save_snapshot", "stream", lambda s, ep, t: s.save_snapshot(t, 1, {})),
    ("save_snapshot", "state", lambda s, ep, t: s.save_snapshot("s", 1, {"k": t})),
    ("load_snapshot", "stream", lambda s, ep, t: s.load_snapshot(t)),
    ("create_endpoint", "url", lambda s, ep, t: s.create_endpoint(URL + t)),
    ("create_endpoint", "events", lambda s, ep, t: s.create_endpoint(URL, events=[t])),
    ("create_endpoint", "name", lambda s, ep, t: s.create_endpoint(URL, name=t)),
    ("create_endpoint", "tenant", lambda s, ep, t: s.create_endpoint(URL, tenant=t)),
    ("create_endpoint", "secret", lambda s, ep, t: s.create_endpoint(URL, secret=t)),
    ("create_endpoint", "headers", lambda s, ep, t: s.create_endpoint(URL, headers={"X-A": t})),
    ("create_endpoint", "headers", lambda s, ep, t: s.create_endpoint(URL, headers={t: "a"})),
    ("create_endpoint", "ca_cert", lambda s, ep, t: s.create_endpoint(URL, ca_cert=t)),
    ("create_endpoint", "signature_header", lambda s, ep, t: s.create_endpoint(URL, signature_header=t)),
    ("create_endpoint", "template", lambda s, ep, t: s.create_endpoint(URL, template=t)),
    ("create_endpoint", "template", lambda s, ep, t: s.create_endpoint(URL, template={"a.*": t})),
    ("get_endpoint", "id", lambda s, ep, t: s.get_endpoint(t)),
    ("list_endpoints", "tenant", lambda s, ep, t: s.list_endpoints(tenant=t)),
    ("update_endpoint", "id", lambda s, ep, t: s.update_endpoint(t, name="x")),
    ("update_endpoint", "url", lambda s, ep, t: s.update_endpoint(ep, url=URL + t)),
    ("update_endpoint", "name", lambda s, ep, t: s.update_endpoint(ep, name=t)),
    ("update_endpoint", "events", lambda s, ep, t: s.update_endpoint(ep, events=[t])),
    ("update_endpoint", "tenant", lambda s, ep, t: s.update_endpoint(ep, tenant=t)),
    ("update_endpoint", "headers", lambda s, ep, t: s.update_endpoint(ep, headers={"X-A": t})),
    ("update_endpoint", "ca_cert", lambda s, ep, t: s.update_endpoint(ep, ca_cert=t)),
    ("update_endpoint", "signature_header", lambda s, ep, t: s.update_endpoint(ep, signature_header=t)),
    ("update_endpoint", "template", lambda s, ep, t: s.update_endpoint(ep, template=t)),
    ("delete_endpoint", "id", lambda s, ep, t: s.delete_endpoint(t)),
    ("rotate_secret", "id", lambda s, ep, t: s.rotate_secret(t)),
    ("rotate_secret", "secret", lambda s, ep, t: s.rotate_secret(ep, t)),
    ("disable_endpoint", "id", lambda s, ep, t: s.disable_endpoint(t)),
    ("disable_endpoint", "reason", lambda s, ep, t: s.disable_endpoint(ep, t)),
    ("enable_endpoint", "id", lambda s, ep, t: s.enable_endpoint(t)),
    ("start_delivery", "owner", lambda s, ep, t: s.start_delivery(owner=t)),
    ("deliveries", "endpoint_id", lambda s, ep, t: s.deliveries(endpoint_id=t)),
    ("deliveries", "state", lambda s, ep, t: s.deliveries(state=t)),
    ("deliveries", "event_id", lambda s, ep, t: s.deliveries(event_id=t)),
    ("delivery_counts", "endpoint_id", lambda s, ep, t: s.delivery_counts(t)),
    ("recover", "endpoint_id", lambda s, ep, t: s.recover(t, EPOCH)),
    ("replay", "endpoint_id", lambda s, ep, t: s.replay(t, 1)),
    ("send_test", "endpoint_id", lambda s, ep, t: s.send_test(t)),
    ("call", "endpoint_id", lambda s, ep, t: s.call(t, "a.b", {})),
    ("call", "type", lambda s, ep, t: s.call(ep, t, {})),
    ("call", "data", lambda s, ep, t: s.call(ep, "a.b", {"k": t})),
    ("rate_stats", "tenant", lambda s, ep, t: s.rate_stats(t)),
    ("tx.execute", "sql", lambda s, ep, t: in_tx(s, lambda tx: tx.execute(t))),
    ("tx.query", "sql", lambda s, ep, t: in_tx(s, lambda tx: tx.query(t))),
    ("tx.append", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.append(t, "a.b", {}))),
    ("tx.append", "type", lambda s, ep, t: in_tx(s, lambda tx: tx.append("s", t, {}))),
    ("tx.append", "tenant", lambda s, ep, t: in_tx(s, lambda tx: tx.append("s", "a.b", {}, tenant=t))),
    ("tx.append", "event_id", lambda s, ep, t: in_tx(s, lambda tx: tx.append("s", "a.b", {}, event_id=t))),
    ("tx.append_many", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.append_many(t, [{"type": "a.b", "data": 1}]))),
    ("tx.append_many", "events", lambda s, ep, t: in_tx(s, lambda tx: tx.append_many("s", [{"type": t, "data": 1}]))),
    ("tx.read_stream", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.read_stream(t))),
    ("tx.stream_version", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.stream_version(t))),
    ("tx.checkpoint", "name", lambda s, ep, t: in_tx(s, lambda tx: tx.checkpoint(t))),
    ("tx.set_checkpoint", "name", lambda s, ep, t: in_tx(s, lambda tx: tx.set_checkpoint(t, 1))),
    ("tx.save_snapshot", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.save_snapshot(t, 1, {}))),
    ("tx.delete_stream", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.delete_stream(t))),
    ("tx.truncate_stream", "stream", lambda s, ep, t: in_tx(s, lambda tx: tx.truncate_stream(t, 1))),
    ("tx.create_endpoint", "url", lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL + t))),
    ("tx.create_endpoint", "name", lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL, name=t))),
    ("tx.create_endpoint", "tenant", lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL, tenant=t))),
    ("tx.create_endpoint", "secret", lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL, secret=t))),
    ("tx.create_endpoint", "ca_cert", lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL, ca_cert=t))),
    (
        "tx.create_endpoint",
        "signature_header",
        lambda s, ep, t: in_tx(s, lambda tx: tx.create_endpoint(URL, signature_header=t)),
    ),
    ("tx.get_endpoint", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.get_endpoint(t))),
    ("tx.update_endpoint", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.update_endpoint(t, name="x"))),
    ("tx.update_endpoint", "name", lambda s, ep, t: in_tx(s, lambda tx: tx.update_endpoint(ep, name=t))),
    ("tx.delete_endpoint", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.delete_endpoint(t))),
    ("tx.rotate_secret", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.rotate_secret(t))),
    ("tx.rotate_secret", "secret", lambda s, ep, t: in_tx(s, lambda tx: tx.rotate_secret(ep, t))),
    ("tx.disable_endpoint", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.disable_endpoint(t))),
    ("tx.disable_endpoint", "reason", lambda s, ep, t: in_tx(s, lambda tx: tx.disable_endpoint(ep, t))),
    ("tx.enable_endpoint", "id", lambda s, ep, t: in_tx(s, lambda tx: tx.enable_endpoint(t))),
    ("tx.recover", "endpoint_id", lambda s, ep, t: in_tx(s, lambda tx: tx.recover(t, EPOCH))),
    ("tx.replay", "endpoint_id", lambda s, ep, t: in_tx(s, lambda tx: tx.replay(t, 1))),
]


def cases() -> Iterator[Any]:
    """Every argument with each bad value it can take, and the reason the error must give."""
    for name, field, call in INT_ARGS:
        for label, value, reason in (("negative", -1, "must not be negative"), ("huge", HUGE, "is too large")):
            yield pytest.param(field, call, value, reason, id=f"{name}-{field}-{label}")
    for name, field, text_call in STR_ARGS:
        reason = "is not valid text (it contains a lone surrogate)"
        yield pytest.param(field, text_call, LONE, reason, id=f"{name}-{field}-surrogate")


def contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through the store (the file is not opened in this process)."""
    tables = [str(row[0]) for row in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {t: sorted((tuple(row) for row in store.query(f'SELECT * FROM "{t}"')), key=repr) for t in tables}


@pytest.fixture
def seeded(store: Store) -> tuple[Store, str]:
    """A store with an application table, an endpoint, an event, a checkpoint and a snapshot."""
    store.execute("CREATE TABLE notes (body TEXT)")
    ep = store.create_endpoint(URL, events=["a.*"], name="kept")
    store.append("s", "a.b", {"seed": True})
    store.set_checkpoint("cp", 1)
    store.save_snapshot("s", 1, {"n": 1})
    return store, ep.id


@pytest.mark.parametrize("field,call,value,reason", list(cases()))
def test_bad_argument_is_invalid_input_and_changes_nothing(
    seeded: tuple[Store, str], field: str, call: Callable[[Store, str, Any], object], value: Any, reason: str
) -> None:
    store, ep = seeded
    before = (store.last_position(), store.list_endpoints(), contents(store))
    with pytest.raises(tidings.InvalidInputError) as info:
        call(store, ep, value)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field, str(info.value)
    assert reason in info.value.reason, info.value.reason
    assert (store.last_position(), store.list_endpoints(), contents(store)) == before


@pytest.mark.parametrize(
    "call,reason",
    [
        (lambda s: s.read_all(limit=-1), "must not be negative"),
        (lambda s: s.deliveries(limit=2**64), f"is too large (at most {2**64 - 1})"),
        (lambda s: s.create_endpoint(URL, max_attempts=2**32), f"is too large (at most {2**32 - 1})"),
        (lambda s: s.update_endpoint(s.list_endpoints()[0].id, burst=2**32), f"is too large (at most {2**32 - 1})"),
        (lambda s: s.append("s", "a.b", {}, expected_version=2**64), f"is too large (at most {2**64 - 1})"),
    ],
    ids=["negative", "usize", "u32", "u32-change", "expected_version"],
)
def test_the_reason_says_what_is_wrong(seeded: tuple[Store, str], call: Callable[[Store], object], reason: str) -> None:
    store, _ = seeded
    with pytest.raises(tidings.InvalidInputError) as info:
        call(store)
    assert info.value.reason == reason


def test_wrong_types_stay_type_errors_and_bools_count_as_ints(seeded: tuple[Store, str]) -> None:
    store, ep = seeded
    wrong: list[Callable[[], object]] = [
        lambda: store.read_all(limit="5"),  # type: ignore[arg-type]
        lambda: store.read_stream("s", from_version=1.5),  # type: ignore[arg-type]
        lambda: store.set_checkpoint("cp", None),  # type: ignore[arg-type]
        lambda: store.append(5, "a.b", {}),  # type: ignore[arg-type]
        lambda: store.checkpoint(b"cp"),  # type: ignore[arg-type]
        lambda: tidings.TenantRate("5"),  # type: ignore[arg-type]
        lambda: store.start_delivery(workers=2.0),  # type: ignore[arg-type]
        lambda: Store(Path(store.path), source=3),  # type: ignore[arg-type]
    ]
    for call in wrong:
        with pytest.raises(TypeError):
            call()
    assert len(store.read_all(limit=True)) == 1
    assert store.read_stream("s", from_version=False)[0].version == 1
    with contextlib.closing(Store(Path(store.path), max_event_size=2**20)):
        pass
    # A change of the wrong type to update_endpoint stays invalid input, as before.
    with pytest.raises(tidings.InvalidInputError) as info:
        store.update_endpoint(ep, max_attempts="3")
    assert (info.value.field, info.value.reason) == ("max_attempts", "must be an int")
