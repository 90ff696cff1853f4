"""Subscriptions from asyncio: ``await store.subscribe(...)`` returns an AsyncSubscription whose
waits are coroutines; the (plain) handler runs on the runner thread, not the loop's."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import tidings
import tidings.aio


def test_subscribe_and_await_the_position(db_path: Path) -> None:
    threads: set[int] = set()

    def handler(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
        threads.add(threading.get_ident())
        tx.execute("CREATE TABLE IF NOT EXISTS seen (ref TEXT)")
        tx.executemany("INSERT INTO seen (ref) VALUES (?)", [(e.data["ref"],) for e in events])

    async def main() -> tuple[list[Any], int, bool]:
        async with await tidings.aio.open(db_path) as store:
            async with await store.subscribe("seen", handler, types="order.*") as sub:
                assert isinstance(sub, tidings.aio.AsyncSubscription) and sub.name == "seen"
                last = None
                for n in range(20):
                    last = await store.append("order-1", "order.created", {"ref": f"A-{n}"})
                assert last is not None
                assert await sub.wait_for_position(last.position, 10.0)
                assert sub.active and not sub.ended and sub.error is None and "seen" in repr(sub)
                assert await sub.wait_for_position(last.position + 5, 0.3) is False
                status = await store.subscription_status("seen")
                rows = [r[0] for r in await store.query("SELECT ref FROM seen")]
            await store.reset_subscription("seen", 0)
            assert (await store.subscription_status("seen")).position == 0
            return rows, status.position, bool(sub.ended)

    rows, position, ended = asyncio.run(main())
    assert rows == [f"A-{n}" for n in range(20)] and position == 20 and ended
    assert threading.get_ident() not in threads and len(threads) == 1
