"""Subscriptions (projections) from Python: the handler's writes and the position commit
together, failures follow the chosen policy (stop or park), reset rebuilds the same read
model, and bad arguments are typed errors naming the argument. The kill -9 rounds are in
test_projection_crash.py."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import tidings
from conftest import wait_until

SCHEMA = """
CREATE TABLE balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE applied (position INTEGER NOT NULL);
"""


def project(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
    """A balance read model; every application of an event is counted in ``applied``."""
    for event in events:
        tx.execute(
            "INSERT INTO balances (account, total) VALUES (?, ?) "
            "ON CONFLICT (account) DO UPDATE SET total = total + excluded.total",
            (event.stream, event.data["amount"]),
        )
        tx.execute("INSERT INTO applied (position) VALUES (?)", (event.position,))


def balances(store: tidings.Store) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in store.query("SELECT account, total FROM balances")}  # type: ignore[arg-type]


def deposit(store: tidings.Store, account: str, amount: int) -> tidings.Event:
    return store.append(account, "account.deposited", {"amount": amount})


def test_a_projection_applies_each_event_once_with_its_position(store: tidings.Store) -> None:
    store.executescript(SCHEMA)
    last = None
    for n in range(1, 21):
        last = deposit(store, f"account-{n % 3}", n)
    store.append("other", "note.added", {"amount": 1000})  # not matching: skipped, passed
    assert last is not None
    with store.subscribe("balances", project, types="account.*", batch_size=7) as sub:
        assert sub.name == "balances"
        assert sub.wait_for_position(last.position, 10.0)
        assert wait_until(lambda: store.subscription_status("balances").position == store.last_position())
        assert sub.active and not sub.ended
        assert "balances" in repr(sub)
    assert sub.ended and sub.error is None and not sub.active
    assert balances(store) == {
        "account-0": sum(n for n in range(1, 21) if n % 3 == 0),
        "account-1": sum(n for n in range(1, 21) if n % 3 == 1),
        "account-2": sum(n for n in range(1, 21) if n % 3 == 2),
    }
    assert store.query("SELECT COUNT(*), COUNT(DISTINCT position) FROM applied")[0] == (20, 20)
    status = store.subscription_status("balances")
    assert (status.position, status.head, status.lag_events, status.stopped) == (21, 21, 0, False)
    assert [s.name for s in store.subscriptions()] == ["balances"]


def test_live_events_are_applied_and_a_restart_resumes(store: tidings.Store) -> None:
    store.executescript(SCHEMA)
    with store.subscribe("balances", project) as sub:
        for n in range(5):
            event = deposit(store, "a", 1)
            assert sub.wait_for_position(event.position, 10.0)
    for n in range(5):
        deposit(store, "a", 1)  # while nobody runs it
    with store.subscribe("balances", project) as sub:
        assert sub.wait_for_position(store.last_position(), 10.0)
    assert balances(store) == {"a": 10}
    assert store.query("SELECT COUNT(*), COUNT(DISTINCT position) FROM applied")[0] == (10, 10)


def test_an_exception_rolls_the_batch_back_and_stop_keeps_the_position(
    store: tidings.Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tidings")
    store.executescript(SCHEMA)
    deposit(store, "a", 1)
    bad = store.append("a", "account.deposited", {"amount": "lots"})
    deposit(store, "a", 2)
    calls: list[int] = []

    def strict(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
        calls.append(len(events))
        for event in events:
            if not isinstance(event.data["amount"], int):
                raise ValueError(f"bad amount at {event.position}")
        project(tx, events)

    sub = store.subscribe("strict", strict, batch_size=1, max_attempts=3, initial_delay=0.01, max_delay=0.02)
    assert wait_until(lambda: sub.ended, 10.0)
    assert sub.error is not None and f"ValueError: bad amount at {bad.position}" in sub.error
    status = store.subscription_status("strict")
    assert status.stopped and status.position == bad.position - 1 and status.failures == 3
    assert status.last_error == f"ValueError: bad amount at {bad.position}"
    assert status.last_error_at is not None
    assert balances(store) == {"a": 1}  # the failing batch's writes were rolled back each time
    assert calls == [1, 1, 1, 1]
    raised = [r for r in caplog.records if r.getMessage() == "subscription strict: the handler raised"]
    assert len(raised) == 3 and raised[0].exc_info is not None  # with the traceback
    assert raised[0].exc_info[0] is ValueError
    # Restarting a stopped subscription ends at once; reset clears the stop.
    again = store.subscribe("strict", strict)
    assert wait_until(lambda: again.ended, 10.0) and "stopped at position" in (again.error or "")
    store.reset_subscription("strict", bad.position)  # skip the bad event by hand
    with store.subscribe("strict", strict) as fixed:
        assert fixed.wait_for_position(store.last_position(), 10.0)
    assert balances(store) == {"a": 3}


def test_park_sets_the_failing_event_aside_and_goes_on(store: tidings.Store) -> None:
    store.executescript(SCHEMA)
    for n in range(1, 6):
        deposit(store, "a", n)
    bad = store.append("a", "account.deposited", {"amount": None})
    for n in range(6, 11):
        deposit(store, "a", n)

    def strict(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
        for event in events:
            if event.data["amount"] is None:
                raise KeyError("amount")
        project(tx, events)

    options: dict[str, Any] = {"max_attempts": 2, "initial_delay": 0.01, "max_delay": 0.01}
    with store.subscribe("parking", strict, batch_size=4, on_failure="park", **options) as sub:
        assert sub.wait_for_position(store.last_position(), 15.0)
        assert not sub.ended
    assert balances(store) == {"a": sum(range(1, 11))}
    assert store.query("SELECT COUNT(*), COUNT(DISTINCT position) FROM applied")[0] == (10, 10)
    [parked] = store.parked_events("parking")
    assert (parked.position, parked.event_id) == (bad.position, bad.id)
    assert parked.error == "KeyError: 'amount'"
    assert store.subscription_status("parking").parked == 1
    assert str(bad.position) in repr(parked)


def test_reset_rebuilds_the_same_read_model(store: tidings.Store) -> None:
    store.executescript(SCHEMA)
    for n in range(30):
        deposit(store, f"acct-{n % 4}", n)
    with store.subscribe("balances", project, batch_size=8) as sub:
        assert sub.wait_for_position(store.last_position(), 10.0)
    first = balances(store)
    with store.transaction() as tx:  # clear the read model and reset, together
        tx.execute("DELETE FROM balances")
        tx.execute("DELETE FROM applied")
        tx.reset_subscription("balances", 0)
    assert store.subscription_status("balances").position == 0
    with store.subscribe("balances", project, batch_size=3) as sub:
        assert sub.wait_for_position(store.last_position(), 10.0)
    assert balances(store) == first and len(first) == 4


def test_the_handlers_transaction_is_lent_for_the_call(store: tidings.Store) -> None:
    kept: list[tidings.Transaction] = []
    refused: list[BaseException] = []

    def handler(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
        kept.append(tx)
        assert tx.active
        with pytest.raises(tidings.InvalidInputError) as info:
            tx.commit()
        refused.append(info.value)
        tx.execute("CREATE TABLE IF NOT EXISTS seen (n INTEGER)")
        tx.execute("INSERT INTO seen VALUES (?)", (len(events),))

    event = deposit(store, "a", 1)
    with store.subscribe("lent", handler) as sub:
        assert sub.wait_for_position(event.position, 10.0)
    assert refused and getattr(refused[0], "field") == "transaction"
    assert store.query("SELECT n FROM seen") == [(1,)]
    assert not kept[0].active
    with pytest.raises(tidings.ClosedError):
        kept[0].execute("SELECT 1")


def test_a_handler_failing_on_another_thread_does_not_block_the_caller(store: tidings.Store) -> None:
    """The caller's thread keeps the GIL free for the runner: appends, waits and stop work
    while a handler runs Python on the runner thread."""
    started = threading.Event()

    def slow(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
        started.set()
        time.sleep(0.2)

    sub = store.subscribe("slow", slow)
    deposit(store, "a", 1)
    assert started.wait(10.0)
    deposit(store, "a", 2)  # waits for the runner's transaction, GIL released
    assert sub.wait_for_position(store.last_position(), 10.0)
    sub.stop()
    sub.stop()  # idempotent
    assert sub.ended


def test_wait_for_position_times_out_and_status_of_an_unknown_name(store: tidings.Store) -> None:
    with store.subscribe("idle", lambda tx, events: None) as sub:
        began = time.monotonic()
        assert sub.wait_for_position(10, 0.2) is False
        assert time.monotonic() - began >= 0.15
    with pytest.raises(tidings.NotFoundError):
        store.subscription_status("never")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"on_failure": "retry"}, "on_failure"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -1}, "batch_size"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_delay": -1.0}, "initial_delay"),
        ({"initial_delay": 60.0, "max_delay": 1.0}, "initial_delay"),
        ({"types": ["bad pattern!"]}, "types"),
    ],
)
def test_bad_subscribe_arguments_name_the_argument(store: tidings.Store, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(tidings.InvalidInputError) as info:
        store.subscribe("s", lambda tx, events: None, **kwargs)
    assert info.value.field == field


def test_bad_name_and_handler(store: tidings.Store) -> None:
    with pytest.raises(tidings.InvalidInputError) as info:
        store.subscribe("", lambda tx, events: None)
    assert info.value.field == "name"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.subscribe("s", "not callable")  # type: ignore[arg-type]
    assert info.value.field == "handler"
    with pytest.raises(tidings.InvalidInputError) as info:
        store.reset_subscription("s", -1)
    assert info.value.field == "position"


def test_closing_the_store_ends_its_subscriptions(db_path: Path) -> None:
    store = tidings.Store(db_path)
    sub = store.subscribe("s", lambda tx, events: None)
    store.close()
    assert wait_until(lambda: sub.ended, 10.0)
    assert sub.error is None
