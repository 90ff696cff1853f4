"""Threads: one Store shared by many Python threads, and the GIL released while core blocks.

The GIL tests use no timing thresholds: a ticker thread counts while another thread is inside
a blocking call, and the main thread only wakes that call after it has seen the ticker
advance. Had the blocked thread kept the GIL, neither the ticker nor the main thread could
have run, and the call would have come back empty-handed at its own timeout instead.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Callable, Optional

import pytest
from conftest import Receiver, wait_until

import tidings


class Ticker:
    """Counts in a thread of its own until stopped."""

    def __init__(self) -> None:
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.count += 1

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def ticker() -> Iterator[Ticker]:
    with Ticker() as t:
        yield t


def in_call(thread: threading.Thread, function: str) -> bool:
    """Whether ``thread``'s innermost Python frame is the one that calls ``function``."""
    frame: Optional[FrameType] = sys._current_frames().get(thread.ident or -1)
    return frame is not None and function in (frame.f_code.co_name, *frame.f_code.co_names)


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(target()), daemon=True)
    thread.start()
    return thread, result


def test_eight_threads_append_at_once(store: tidings.Store) -> None:
    store.execute("CREATE TABLE hits (thread INTEGER, n INTEGER)")
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait(30)
            for n in range(50):
                if n % 2:
                    store.append(f"thread-{t}", "hit.counted", {"n": n})
                else:
                    with store.transaction() as tx:
                        tx.execute("INSERT INTO hits VALUES (?, ?)", (t, n))
                        tx.append(f"thread-{t}", "hit.counted", {"n": n})
                store.read_stream(f"thread-{t}", limit=1)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert store.last_position() == 400
    assert [e.position for e in store.read_all()] == list(range(1, 401))
    assert all(store.stream_version(f"thread-{t}") == 50 for t in range(8))
    assert store.query("SELECT count(*) FROM hits") == [(200,)]


def test_ticker_runs_while_read_all_waits(store: tidings.Store, ticker: Ticker) -> None:
    start = store.last_position() + 1
    reader, result = run_in_thread(lambda: store.read_all(from_position=start, wait=60.0))
    assert wait_until(lambda: in_call(reader, "read_all"))
    seen = ticker.count
    assert wait_until(lambda: ticker.count >= seen + 20)
    assert reader.is_alive()
    event = store.append("wake", "reader.woken", {})
    reader.join(60)
    assert not reader.is_alive()
    assert [[e.id for e in events] for events in result] == [[event.id]]  # type: ignore[attr-defined]
    assert ticker.count > seen


def test_ticker_runs_while_wait_idle_waits(store: tidings.Store, receiver: Receiver, ticker: Ticker) -> None:
    receiver.hold.add("/slow")
    ep = store.create_endpoint(receiver.url("/slow"), timeout=120.0)
    with store.start_delivery(workers=2) as delivery:
        store.append("s", "slow.event", {})
        assert receiver.arrived.wait(60)  # the request is in flight, held by the receiver
        waiter, result = run_in_thread(lambda: delivery.wait_idle(120.0))
        assert wait_until(lambda: in_call(waiter, "wait_idle"))
        seen = ticker.count
        assert wait_until(lambda: ticker.count >= seen + 20)
        assert waiter.is_alive()
        receiver.gate.set()
        waiter.join(120)
        assert not waiter.is_alive()
        assert result == [True]
    assert [d.state for d in store.deliveries(endpoint_id=ep.id)] == ["succeeded"]
    assert ticker.count > seen


def test_threads_share_one_store_for_reads_and_writes(store: tidings.Store) -> None:
    done = threading.Event()
    reads: list[int] = []

    def reader() -> None:
        while not done.is_set():
            reads.append(len(store.read_all(limit=10)))

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(100):
        store.append("shared", "x.y", {"i": i})
    done.set()
    for r in readers:
        r.join(30)
    assert reads and store.stream_version("shared") == 100
