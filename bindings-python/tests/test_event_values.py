"""Events as Python values: ``Decimal``, ``UUID`` and datetimes in event data encoded by the
documented rules, the store's ``json_default`` hook for other types, ``Event`` equality, an
idempotent append that says it was a replay, and reading the log in pages (``read_all``'s
default page, ``iter_all``)."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import tidings


def test_decimal_uuid_and_datetimes_are_encoded(store: tidings.Store) -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    when = datetime(2026, 12, 7, 20, 0, 1, 500, tzinfo=timezone(timedelta(hours=2)))
    event = store.append(
        "order-1",
        "order.created",
        {"total": Decimal("10.10"), "id": ident, "at": when, "day": date(2026, 12, 7), "slot": time(9, 30)},
        metadata={"trace": uuid.UUID(int=1)},
    )
    expected = {
        "total": "10.10",
        "id": "12345678-1234-5678-1234-567812345678",
        "at": "2026-12-07T20:00:01.000500+02:00",
        "day": "2026-12-07",
        "slot": "09:30:00",
    }
    assert event.data == expected
    assert store.read_stream("order-1")[0].data == expected
    assert event.metadata == {"trace": "00000000-0000-0000-0000-000000000001"}
    store.save_snapshot("order-1", 1, {"total": Decimal("1E+3")})
    snapshot = store.load_snapshot("order-1")
    assert snapshot is not None and snapshot.state == {"total": "1E+3"}


def test_other_types_are_refused_without_a_hook(store: tidings.Store) -> None:
    with pytest.raises(tidings.InvalidInputError, match="json_default") as info:
        store.append("s", "a.b", {"tags": {"x"}})
    assert info.value.field == "data"
    assert store.last_position() == 0


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Money:
    amount: Decimal
    currency: str


def encode(value: object) -> object:
    if isinstance(value, Colour):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def test_the_json_default_hook_encodes_other_types(db_path: Path) -> None:
    with tidings.Store(db_path, json_default=encode) as store:
        data = {"colour": Colour.RED, "price": Money(Decimal("2.50"), "EUR"), "tags": {"b", "a"}}
        event = store.append("s", "a.b", data)
        assert event.data == {"colour": "red", "price": {"amount": "2.50", "currency": "EUR"}, "tags": ["a", "b"]}
        with store.transaction() as tx:
            assert tx.append("s", "a.b", {"c": Colour.RED}).data == {"c": "red"}
            tx.save_snapshot("s", 2, {"tags": frozenset({"z"})})
        with pytest.raises(tidings.InvalidInputError, match="cannot encode bytes") as info:
            store.append_many("s", [{"type": "a.b", "data": {"raw": b"x"}}])
        assert info.value.field == "data"
        assert store.stream_version("s") == 2


def test_a_hook_that_raises_something_else_propagates(db_path: Path) -> None:
    def broken(value: object) -> object:
        raise RuntimeError("hook bug")

    with tidings.Store(db_path, json_default=broken) as store:
        with pytest.raises(RuntimeError, match="hook bug"):
            store.append("s", "a.b", {"x": object()})
    with pytest.raises(tidings.InvalidInputError, match="callable"):
        tidings.Store(db_path, json_default="not callable")  # type: ignore[arg-type]


def test_the_same_event_read_twice_compares_equal(store: tidings.Store) -> None:
    appended = store.append("s", "a.b", {"n": [1, 2]}, metadata={"m": 1}, tenant="t")
    [first] = store.read_all()
    [second] = store.read_stream("s")
    assert first == second == appended and first is not second
    assert hash(first) == hash(second) == hash(appended)
    assert len({first, second, appended}) == 1
    other = store.append("s", "a.b", {"n": [1, 2]}, tenant="t")
    assert other != first and first != ("not", "an", "event")


def test_an_idempotent_append_says_it_was_a_replay(store: tidings.Store) -> None:
    event_id = str(uuid.uuid4())
    first = store.append("s", "a.b", {"n": 1}, event_id=event_id)
    again = store.append("s", "a.b", {"n": 1}, event_id=event_id)
    assert (first.replayed, again.replayed) == (False, True)
    assert again == first and store.stream_version("s") == 1
    with store.transaction() as tx:
        [replayed] = tx.append_many("s", [{"type": "a.b", "data": {"n": 1}, "id": event_id}])
        assert replayed.replayed and replayed.position == first.position
    assert store.read_all()[0].replayed is False


def test_read_all_without_a_limit_reads_one_page(store: tidings.Store) -> None:
    store.append_many("bulk", [{"type": "a.b", "data": {"n": n}} for n in range(1005)])
    page = store.read_all()
    assert len(page) == 1000 and page[0].position == 1
    assert len(store.read_all(limit=None)) == 1000
    rest = store.read_all(from_position=page[-1].position + 1)
    assert [e.data["n"] for e in rest] == [1000, 1001, 1002, 1003, 1004]
    assert len(store.read_all(limit=2000)) == 1005


def test_iter_all_pages_lazily_with_filters(store: tidings.Store) -> None:
    for n in range(7):
        store.append(f"s-{n % 2}", "even.x" if n % 2 == 0 else "odd.x", {"n": n})
    iterator = store.iter_all(batch=2)
    assert iter(iterator) is iterator
    assert [e.data["n"] for e in iterator] == list(range(7))
    assert [e.data["n"] for e in store.iter_all(batch=3, types="odd.*")] == [1, 3, 5]
    assert [e.data["n"] for e in store.iter_all(from_position=5, stream="s-0")] == [4, 6]
    lazy = store.iter_all(batch=1, from_position=7)
    assert next(lazy).data == {"n": 6}
    store.append("s-1", "odd.x", {"n": 7})  # committed before the next page is read
    assert [e.data["n"] for e in lazy] == [7]
    with pytest.raises(tidings.InvalidInputError):
        store.iter_all(batch=0)
