"""Upcasting: a function registered for (event type, schema version) turns old ``data`` into
the current shape on every read path (read_stream, read_all, iter_all, event, a transaction's
reads, subscriptions, aggregates); stored events never change."""

from __future__ import annotations

from typing import Any

import pytest

import tidings
from conftest import wait_until


def split_name(data: dict[str, Any]) -> dict[str, Any]:
    first, _, last = data["name"].partition(" ")
    return {"first": first, "last": last}


def add_title(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "title": None}


CURRENT = {"first": "Ada", "last": "Lovelace", "title": None}


@pytest.fixture
def upcast_store(store: tidings.Store) -> tidings.Store:
    store.append("user-1", "user.named", {"name": "Ada Lovelace"})  # version 1: no schema_version
    store.append("user-1", "user.named", {"first": "Ada", "last": "Lovelace"}, schema_version=2)
    store.append("user-1", "user.named", CURRENT, schema_version=3)
    store.register_upcaster("user.named", 1, split_name)
    store.register_upcaster("user.named", 2, add_title)
    return store


def test_every_read_path_upcasts(upcast_store: tidings.Store) -> None:
    store = upcast_store
    paths = {
        "read_stream": store.read_stream("user-1"),
        "read_all": store.read_all(),
        "iter_all": list(store.iter_all()),
        "event": [store.event(e.id) for e in store.read_stream("user-1")],
    }
    with store.transaction() as tx:
        paths["tx.read_stream"] = tx.read_stream("user-1")
        paths["tx.load_aggregate"] = tx.load_aggregate("user-1", 1).events
    paths["load_aggregate"] = store.load_aggregate("user-1", 1).events
    for name, events in paths.items():
        assert [e.data for e in events] == [CURRENT] * 3, name
        assert [e.metadata.get("schema_version") for e in events] == [3, 3, 3], name


def test_subscriptions_and_aggregates_see_the_current_shape(upcast_store: tidings.Store) -> None:
    store = upcast_store
    seen: list[Any] = []
    with store.subscribe("users", lambda tx, events: seen.extend(e.data for e in events)) as sub:
        assert sub.wait_for_position(3, 10.0)
    assert seen == [CURRENT] * 3

    class User(tidings.Aggregate):
        stream_prefix = "user"

        def __init__(self) -> None:
            self.names: list[str] = []

        @tidings.applies("user.named")
        def _named(self, data: dict[str, Any]) -> None:
            self.names.append(f"{data['first']} {data['last']}")

    assert tidings.Repository(store, User).get("1").names == ["Ada Lovelace"] * 3


def test_stored_events_never_change(upcast_store: tidings.Store) -> None:
    # Another store on the file, without upcasters, reads the events as they were written.
    with tidings.Store(upcast_store.path) as plain:
        assert [e.data for e in plain.read_stream("user-1")][0] == {"name": "Ada Lovelace"}
        assert [e.metadata for e in plain.read_stream("user-1")] == [{}, {"schema_version": 2}, {"schema_version": 3}]


def test_append_many_writes_schema_versions(store: tidings.Store) -> None:
    store.register_upcaster("t.x", 1, lambda d: {"v": 2})
    events = store.append_many("s", [{"type": "t.x", "data": {}}, {"type": "t.x", "data": {"v": 2}, "schema_version": 2}])
    assert [e.metadata for e in events] == [{}, {"schema_version": 2}]
    assert [e.data for e in store.read_stream("s")] == [{"v": 2}, {"v": 2}]


def test_a_failing_upcaster_fails_the_read_and_names_the_event(store: tidings.Store) -> None:
    event = store.append("s", "t.x", {})

    def broken(data: Any) -> Any:
        raise KeyError("field")

    store.register_upcaster("t.x", 1, broken)
    with pytest.raises(tidings.StorageError) as info:
        store.read_stream("s")
    assert event.id in str(info.value) and "KeyError" in str(info.value)
    failed = store.subscribe("s", lambda tx, events: None, max_attempts=1)
    assert wait_until(lambda: failed.ended, 10.0)
    assert failed.error is not None and "KeyError" in failed.error


def test_bad_upcaster_arguments(store: tidings.Store) -> None:
    store.register_upcaster("t.x", 1, add_title)
    with pytest.raises(tidings.InvalidInputError) as info:
        store.register_upcaster("t.x", 1, add_title)
    assert info.value.field == "from_version"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.register_upcaster("t.x", 0, add_title)
    assert info.value.field == "from_version"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.register_upcaster("t.x", 2, "no")  # type: ignore[arg-type]
    assert info.value.field == "upcaster"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.append("s", "t.x", {}, schema_version=0)
    assert info.value.field == "schema_version"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.append("s", "t.x", {}, schema_version=-1)
    assert info.value.field == "schema_version"
