"""``tidings.aio``: transactions that await inside, the loop thread's own writes, cancellation,
``read_all`` as an async iterator whose waits hold no thread, and the engine's waits.

Each test drives its own event loop with ``asyncio.run`` (no pytest plugin needed).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

import pytest
from conftest import Receiver

import tidings
import tidings.aio

T = TypeVar("T")
SCHEMA = "CREATE TABLE orders (ref TEXT PRIMARY KEY, n INTEGER NOT NULL)"


@pytest.fixture
def astore(db_path: Path) -> Iterator[tidings.aio.AsyncStore]:
    with tidings.Store(db_path, allow_private=True, busy_timeout=5.0) as store:
        store.execute(SCHEMA)
        yield tidings.aio.AsyncStore(store)


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        return await main()

    return asyncio.run(wrapped())


def orders(store: tidings.Store) -> list[str]:
    return [str(row[0]) for row in store.query("SELECT ref FROM orders ORDER BY n")]


def test_200_concurrent_transactions_awaiting_inside_all_commit(astore: tidings.aio.AsyncStore) -> None:
    async def order(n: int) -> int:
        async with astore.transaction() as tx:
            tx.execute("INSERT INTO orders (ref, n) VALUES (?, ?)", (f"A-{n}", n))
            await asyncio.sleep(0.001)  # another service's answer, say
            event = tx.append(f"order-{n}", "order.created", {"n": n}, expected_version=0)
            await asyncio.sleep(0)
        return event.position

    async def main() -> list[int]:
        return await asyncio.gather(*(order(n) for n in range(200)))

    positions = run(main)
    assert sorted(positions) == list(range(1, 201))
    assert orders(astore.sync) == [f"A-{n}" for n in range(200)]
    events = astore.sync.read_all(limit=1000)
    assert sorted(e.stream for e in events) == sorted(f"order-{n}" for n in range(200))
    assert all(astore.sync.stream_version(f"order-{n}") == 1 for n in range(200))


def test_a_sync_write_on_the_loop_thread_fails_fast_and_other_threads_wait(astore: tidings.aio.AsyncStore) -> None:
    other: list[tidings.Event] = []
    thread = threading.Thread(target=lambda: other.append(astore.sync.append("other", "a.b", {})))

    async def main() -> float:
        async with astore.transaction() as tx:
            tx.append("mine", "a.b", {})
            started = time.monotonic()
            with pytest.raises(tidings.TransactionOpenError):
                astore.sync.append("loop", "a.b", {})  # would block the loop for the busy timeout
            refused_after = time.monotonic() - started
            thread.start()
            await asyncio.sleep(0.3)
            assert thread.is_alive() and not other, "another thread's write waits for the commit"
        return refused_after

    assert run(main) < 1.0  # at once; the busy timeout is 5 s
    thread.join(10)
    [theirs] = other
    [mine] = astore.sync.read_stream("mine")
    assert theirs.position > mine.position
    assert astore.sync.stream_version("loop") is None


def test_a_task_holding_a_transaction_is_refused_what_would_wait_for_it(astore: tidings.aio.AsyncStore) -> None:
    async def main() -> None:
        waiter_done = asyncio.Event()

        async def another_task() -> None:
            await astore.append("other-task", "a.b", {})  # waits for the commit, then succeeds
            waiter_done.set()

        async with astore.transaction() as tx:
            tx.execute("INSERT INTO orders (ref, n) VALUES ('A', 1)")
            with pytest.raises(tidings.TransactionOpenError):
                await astore.append("same-task", "a.b", {})
            with pytest.raises(tidings.TransactionOpenError):
                async with astore.transaction():
                    pass
            task = asyncio.create_task(another_task())
            await asyncio.sleep(0.2)
            assert not waiter_done.is_set()
        await asyncio.wait_for(task, 10)
        # After the block, the same task writes again.
        await astore.append("same-task", "a.b", {})

    run(main)
    assert orders(astore.sync) == ["A"]
    assert [astore.sync.stream_version(s) for s in ("other-task", "same-task")] == [1, 1]


def test_a_block_that_raises_or_is_cancelled_rolls_back(astore: tidings.aio.AsyncStore) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="refused"):
            async with astore.transaction() as tx:
                tx.execute("INSERT INTO orders (ref, n) VALUES ('raised', 1)")
                await asyncio.sleep(0)
                raise ValueError("refused")

        entered = asyncio.Event()

        async def cancelled() -> None:
            async with astore.transaction() as tx:
                tx.execute("INSERT INTO orders (ref, n) VALUES ('cancelled', 2)")
                entered.set()
                await asyncio.sleep(60)

        task = asyncio.create_task(cancelled())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with astore.transaction() as tx:  # the turn and the writer are free again
            tx.execute("INSERT INTO orders (ref, n) VALUES ('kept', 3)")

    run(main)
    assert orders(astore.sync) == ["kept"]


def test_a_task_cancelled_while_beginning_leaves_the_writer_free(astore: tidings.aio.AsyncStore) -> None:
    held = astore.sync.begin()  # this thread holds the writer; the loop runs on another one
    result: list[BaseException] = []

    async def main() -> None:
        beginning = asyncio.create_task(astore.transaction().__aenter__())
        await asyncio.sleep(0.2)  # it waits for the writer on its pool thread
        beginning.cancel()
        await asyncio.wait({beginning})
        release.set()
        started = time.monotonic()
        async with astore.transaction() as tx:
            tx.execute("INSERT INTO orders (ref, n) VALUES ('after', 1)")
        assert time.monotonic() - started < 3.0, "the cancelled begin's transaction was rolled back"

    release = threading.Event()

    def loop_thread() -> None:
        try:
            run(main)
        except BaseException as err:  # noqa: BLE001
            result.append(err)

    thread = threading.Thread(target=loop_thread)
    thread.start()
    assert release.wait(10)
    held.rollback()
    thread.join(20)
    assert not thread.is_alive() and result == []
    assert orders(astore.sync) == ["after"]


def test_read_all_iterates_the_log_in_batches_then_ends(astore: tidings.aio.AsyncStore) -> None:
    for n in range(5):
        astore.sync.append("s", "a.b" if n % 2 == 0 else "c.d", {"n": n})

    async def main() -> tuple[list[int], list[int], list[int]]:
        every = [e.data["n"] async for e in astore.read_all(batch=2)]
        typed = [e.data["n"] async for e in astore.read_all(types="a.*", batch=1)]
        limited = [e.data["n"] async for e in astore.read_all(2, limit=2)]
        return every, typed, limited

    assert run(main) == ([0, 1, 2, 3, 4], [0, 2, 4], [1, 2])


def test_read_all_with_wait_follows_new_events_then_ends_when_idle(astore: tidings.aio.AsyncStore) -> None:
    async def main() -> tuple[list[int], float]:
        got: list[int] = []

        async def follow() -> None:
            async for event in astore.read_all(wait=0.5):
                got.append(event.data["n"])

        task = asyncio.create_task(follow())
        for n in range(3):
            await asyncio.sleep(0.1)
            await astore.append("s", "a.b", {"n": n})
        started = time.monotonic()
        await asyncio.wait_for(task, 10)
        return got, time.monotonic() - started

    got, idle = run(main)
    assert got == [0, 1, 2]
    assert 0.3 <= idle < 5.0  # it ended about `wait` seconds after the last event


def test_fifty_waiting_iterators_hold_one_thread_and_all_wake(astore: tidings.aio.AsyncStore) -> None:
    async def main() -> tuple[int, int, int, float]:
        # The reads run in the loop's pool, bounded here; the waits must add one thread.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4))
        before = threading.active_count()
        woken: list[int] = []

        async def follow() -> None:
            async for event in astore.read_all(1, wait=30.0):
                woken.append(event.position)
                return

        tasks = [asyncio.create_task(follow()) for _ in range(50)]
        await asyncio.sleep(0.5)
        waiting_threads = threading.active_count() - before
        watchers = sum(t.name == "tidings-aio-commits" for t in threading.enumerate())
        started = time.monotonic()
        await astore.append("s", "a.b", {})
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return waiting_threads, watchers, len(woken), time.monotonic() - started

    waiting_threads, watchers, woken, latency = run(main)
    assert watchers == 1
    assert waiting_threads <= 5, "the pool's 4 and the watcher (a thread per waiter would be 50)"
    assert woken == 50
    assert latency < 5.0


def test_read_all_sees_another_process_commit(astore: tidings.aio.AsyncStore, db_path: Path) -> None:
    code = "import sys, tidings; tidings.Store(sys.argv[1]).append('s', 'from.child', {})"

    async def main() -> list[str]:
        async def follow() -> list[str]:
            return [e.type async for e in astore.read_all(wait=30.0, limit=1)]

        task = asyncio.create_task(follow())
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", code, str(db_path))
        assert await asyncio.wait_for(child.wait(), 60) == 0
        return await asyncio.wait_for(task, 60)

    assert run(main) == ["from.child"]


def test_bad_read_all_arguments_are_typed_errors(astore: tidings.aio.AsyncStore) -> None:
    async def first(**kwargs: object) -> None:
        async for _ in astore.read_all(**kwargs):  # type: ignore[arg-type]
            pass

    for kwargs, field in (({"wait": -1.0}, "wait"), ({"wait": float("nan")}, "wait"), ({"batch": 0}, "batch")):
        with pytest.raises(tidings.InvalidInputError) as caught:
            run(lambda: first(**kwargs))
        assert caught.value.field == field


def test_engine_waits_are_awaitable(astore: tidings.aio.AsyncStore, receiver: Receiver) -> None:
    async def main() -> tuple[bool, bool, bool]:
        await astore.create_endpoint(receiver.url())
        await astore.append("s", "a.b", {"n": 1})
        async with await astore.start_delivery(workers=2) as engine:
            idle = await engine.wait_idle(30.0)
            drained = await engine.drain(30.0)
            running = engine.running
        return idle, drained, running and not engine.running

    assert run(main) == (True, True, True)
    [request] = receiver.wait_for(1)
    assert request.json()["data"] == {"n": 1}  # type: ignore[index]


def test_open_and_close(tmp_path: Path) -> None:
    async def main() -> str:
        async with await tidings.aio.open(tmp_path / "o.db", source="aio") as store:
            await store.append("s", "a.b", {})
            kept = store
        with pytest.raises(tidings.ClosedError):
            await kept.append("s", "a.b", {})
        with pytest.raises(tidings.ClosedError):
            async with kept.transaction():
                pass
        with pytest.raises(tidings.ClosedError):
            [e async for e in kept.read_all()]
        return f"{kept!r} {kept.sync.source}"

    assert run(main) == f"AsyncStore({str(tmp_path / 'o.db')!r}) aio"
    with tidings.Store(tmp_path / "o.db") as store:
        assert store.stream_version("s") == 1
