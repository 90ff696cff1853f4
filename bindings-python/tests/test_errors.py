"""Bad input raises the documented exception and leaves the database unchanged; the error
hierarchy; logging."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Callable

import pytest

import tidings

ERRORS = [
    tidings.ConcurrencyError,
    tidings.IdempotencyConflictError,
    tidings.NotFoundError,
    tidings.InvalidInputError,
    tidings.SignatureError,
    tidings.RateLimitedError,
    tidings.ClosedError,
    tidings.BusyError,
    tidings.StorageError,
    tidings.DeliveryError,
    tidings.TransactionOpenError,
    tidings.IncompatibleDatabaseError,
    tidings.ReadOnlyError,
    tidings.TransactionFailedError,
    tidings.EngineStartError,
]


def test_hierarchy() -> None:
    for error in ERRORS:
        assert issubclass(error, tidings.Error)
        assert error.__module__ == "tidings"
        assert error.__doc__
    assert issubclass(tidings.Error, Exception)
    assert issubclass(tidings.InvalidInputError, ValueError)
    assert not issubclass(tidings.NotFoundError, ValueError)
    for kind in [
        tidings.IncompatibleDatabaseError,
        tidings.ReadOnlyError,
        tidings.TransactionFailedError,
        tidings.EngineStartError,
    ]:
        assert issubclass(kind, tidings.StorageError), "code that catches StorageError still catches it"


class Unknown:
    pass


BAD_CALLS: list[tuple[str, Callable[[tidings.Store, str], Any], str]] = [
    ("reserved type", lambda s, ep: s.append("s", "tidings.fake", {}), "type"),
    ("empty type", lambda s, ep: s.append("s", "", {}), "type"),
    ("empty stream", lambda s, ep: s.append("", "a.b", {}), "stream"),
    ("object data", lambda s, ep: s.append("s", "a.b", {"x": Unknown()}), "data"),
    ("set data", lambda s, ep: s.append("s", "a.b", {1, 2}), "data"),
    ("int key", lambda s, ep: s.append("s", "a.b", {1: "x"}), "data"),
    ("nan", lambda s, ep: s.append("s", "a.b", {"x": math.nan}), "data"),
    ("huge int", lambda s, ep: s.append("s", "a.b", 2**70), "data"),
    ("list metadata", lambda s, ep: s.append("s", "a.b", {}, metadata=[1]), "metadata"),  # type: ignore[arg-type]
    ("bad event id", lambda s, ep: s.append("s", "a.b", {}, event_id="nope"), "id"),
    ("negative version", lambda s, ep: s.append("s", "a.b", {}, expected_version=-1), "expected_version"),
    ("str version", lambda s, ep: s.append("s", "a.b", {}, expected_version="1"), "expected_version"),  # type: ignore[arg-type]
    ("too big", lambda s, ep: s.append("s", "a.b", "x" * (2 * 1024 * 1024)), "data"),
    ("ftp url", lambda s, ep: s.create_endpoint("ftp://example.com/"), "url"),
    ("bad pattern", lambda s, ep: s.create_endpoint("https://x.example/", events=["a..b"]), "events"),
    ("events as str", lambda s, ep: s.create_endpoint("https://x.example/", events="order.*"), "events"),
    ("zero attempts", lambda s, ep: s.create_endpoint("https://x.example/", max_attempts=0), "max_attempts"),
    ("negative timeout", lambda s, ep: s.create_endpoint("https://x.example/", timeout=-1.0), "timeout"),
    ("bad secret", lambda s, ep: s.create_endpoint("https://x.example/", secret="hunter2"), "secret"),
    ("bad auth", lambda s, ep: s.create_endpoint("https://x.example/", auth="token"), "auth"),  # type: ignore[arg-type]
    ("bad template", lambda s, ep: s.create_endpoint("https://x.example/", template="{nope"), "template"),
    ("template type", lambda s, ep: s.create_endpoint("https://x.example/", template=3), "template"),  # type: ignore[arg-type]
    ("headers type", lambda s, ep: s.create_endpoint("https://x.example/", headers=["a"]), "headers"),  # type: ignore[arg-type]
    ("update jitter", lambda s, ep: s.update_endpoint(ep, jitter=5.0), "jitter"),
    ("update url", lambda s, ep: s.update_endpoint(ep, url="nope"), "url"),
    ("update events", lambda s, ep: s.update_endpoint(ep, events=[]), "events"),
    ("sql param", lambda s, ep: s.execute("INSERT INTO orders (id) VALUES (?)", (Unknown(),)), "params"),  # type: ignore[arg-type]
    ("sql params type", lambda s, ep: s.execute("INSERT INTO orders (id) VALUES (?)", 5), "params"),  # type: ignore[arg-type]
    ("checkpoint name", lambda s, ep: s.set_checkpoint("", 1), "name"),
    ("read_all wait", lambda s, ep: s.read_all(wait=-1.0), "wait"),
    ("tenant", lambda s, ep: s.append("s", "a.b", {}, tenant=""), "tenant"),
]


@pytest.mark.parametrize("name,call,field", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_input_raises_and_changes_nothing(
    store: tidings.Store, dump: Callable[[], list[str]], name: str, call: Callable[[tidings.Store, str], Any], field: str
) -> None:
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    ep = store.create_endpoint("https://example.com/hook")
    store.append("s", "a.b", {"seed": True})
    before = dump()
    with pytest.raises(tidings.InvalidInputError) as info:
        call(store, ep.id)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field, str(info.value)
    assert "hunter2" not in str(info.value)  # a rejected secret is never echoed
    assert dump() == before


def test_bad_input_inside_a_transaction_leaves_it_usable(store: tidings.Store, dump: Callable[[], list[str]]) -> None:
    store.append("s", "a.b", {})
    before = dump()
    with store.transaction() as tx:
        with pytest.raises(tidings.InvalidInputError):
            tx.append("s", "tidings.nope", {})
        with pytest.raises(tidings.InvalidInputError):
            tx.create_endpoint("gopher://x")
        tx.rollback()
    assert dump() == before


def test_not_found_errors(store: tidings.Store) -> None:
    for call in (
        lambda: store.get_endpoint("missing"),
        lambda: store.update_endpoint("missing", name="x"),
        lambda: store.rotate_secret("missing"),
        lambda: store.attempts(12345),
        lambda: store.delivery(12345),
        lambda: store.truncate_stream("missing", 3),
        lambda: store.send_test("missing"),
    ):
        with pytest.raises(tidings.NotFoundError):
            call()


def test_store_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(tidings.InvalidInputError) as info:
        tidings.Store(tmp_path / "a.db", durability="sometimes")  # type: ignore[arg-type]
    assert info.value.field == "durability"
    with pytest.raises(tidings.InvalidInputError) as info:
        tidings.Store(tmp_path / "a.db", allowed_networks=["not-a-network"])
    assert info.value.field == "allowed_networks"
    with pytest.raises(tidings.InvalidInputError):
        tidings.Store(tmp_path / "a.db", tenant_rates=[tidings.TenantRate(0)])
    with pytest.raises(tidings.InvalidInputError):
        tidings.TenantRate(5, mode="sometimes")  # type: ignore[arg-type]
    with pytest.raises(tidings.StorageError):
        tidings.Store(tmp_path)  # a directory


def test_closed_store(tmp_path: Path) -> None:
    store = tidings.Store(tmp_path / "c.db", durability="full", source="closing")
    assert (store.path, store.source) == (str(tmp_path / "c.db"), "closing")
    store.append("s", "a.b", {})
    store.close()
    for call in (lambda: store.append("s", "a.b", {}), lambda: store.transaction(), lambda: store.execute("SELECT 1")):
        with pytest.raises(tidings.ClosedError):
            call()
    store.close()


def test_busy_when_another_thread_holds_the_writer(tmp_path: Path) -> None:
    import threading

    with tidings.Store(tmp_path / "b.db", busy_timeout=0.05) as store:
        tx = store.transaction()
        errors: list[BaseException] = []

        def other() -> None:
            try:
                store.append("s", "a.b", {})
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(30)
        tx.rollback()
        assert len(errors) == 1 and isinstance(errors[0], tidings.BusyError)


def test_core_events_reach_python_logging(store: tidings.Store, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tidings"):
        ep = store.create_endpoint("https://example.com/hook")
        store.delete_endpoint(ep.id)
    records = [r for r in caplog.records if r.name == "tidings"]
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("endpoint created") and ep.id in m for m in messages), messages
    assert any(m.startswith("endpoint deleted") for m in messages), messages
    created = next(r for r in records if r.getMessage().startswith("endpoint created"))
    assert created.levelno == logging.INFO
    assert created.tidings_fields["endpoint"] == ep.id  # type: ignore[attr-defined]
    assert created.tidings_target.startswith("tidings")  # type: ignore[attr-defined]
    assert all(ep.secret not in m for m in messages)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tidings"):
        store.create_endpoint("https://example.com/quiet")
    assert [r for r in caplog.records if r.name == "tidings"] == []


def test_a_file_tidings_cannot_use_is_refused_and_left_alone(tmp_path: Path) -> None:
    import sqlite3

    text = tmp_path / "notes.txt"
    text.write_text("plain text, long enough to be read as a database header\n")
    with pytest.raises(tidings.IncompatibleDatabaseError) as info:
        tidings.Store(text)
    assert (info.value.found, info.value.supported) == (None, tidings.SCHEMA_VERSION)
    assert "not a tidings database" in str(info.value)
    assert text.read_text() == "plain text, long enough to be read as a database header\n"

    newer = tmp_path / "newer.db"
    tidings.Store(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute(
            "UPDATE tidings_meta SET value = ? WHERE key = 'schema_version'", (tidings.SCHEMA_VERSION + 1,)
        )
    conn.close()
    before = newer.read_bytes()
    with pytest.raises(tidings.StorageError) as caught:  # still caught as a StorageError
        tidings.Store(newer)
    assert isinstance(caught.value, tidings.IncompatibleDatabaseError)
    assert (caught.value.found, caught.value.supported) == (tidings.SCHEMA_VERSION + 1, tidings.SCHEMA_VERSION)
    assert "newer" in str(caught.value)
    assert newer.read_bytes() == before
