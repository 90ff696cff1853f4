"""A real ASGI app under concurrent load: uvicorn serves ``asgi_orders.py`` in a child process
on 127.0.0.1, and 200 concurrent requests each run a ``tidings.aio`` transaction that awaits
inside. Every request must succeed, and every row and event be there exactly once.

(With ``with store.transaction()`` and an await inside, most of these requests failed with
``TransactionOpenError``: the coroutines share the event loop's thread.)
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import tidings

APP = Path(__file__).resolve().parent / "asgi_orders.py"
REQUESTS = 200


@pytest.fixture
def server(db_path: Path) -> Iterator[str]:
    """The app's base URL; the listening socket is made here, so requests queue until uvicorn
    accepts them."""
    with tidings.Store(db_path) as store:
        store.execute("CREATE TABLE orders (ref TEXT PRIMARY KEY, n INTEGER NOT NULL)")
    listener = socket.create_server(("127.0.0.1", 0), backlog=REQUESTS)
    port = listener.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, str(APP), str(db_path), str(listener.fileno())],
        pass_fds=[listener.fileno()],
        stderr=subprocess.PIPE,
        text=True,
    )
    listener.close()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        child.send_signal(signal.SIGTERM)
        try:
            _, stderr = child.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            _, stderr = child.communicate()
        assert child.returncode in (0, -signal.SIGTERM), stderr
        assert "store closed" in stderr and "Traceback" not in stderr, stderr


async def post_orders(base: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0) as client:
        assert (await client.get("/health")).status_code == 200
        return await asyncio.gather(*(client.post(f"/orders/{n}") for n in range(REQUESTS)))


def test_200_concurrent_requests_awaiting_inside_transactions(server: str, db_path: Path) -> None:
    responses = asyncio.run(post_orders(server))
    failed = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert failed == []
    bodies = [r.json() for r in responses]
    assert [b["n"] for b in bodies] == list(range(REQUESTS))
    assert sorted(b["position"] for b in bodies) == list(range(1, REQUESTS + 1))

    with tidings.Store(db_path) as store:
        rows = store.query("SELECT ref, n FROM orders ORDER BY n")
        assert [tuple(row) for row in rows] == [(f"A-{n}", n) for n in range(REQUESTS)]
        events = store.read_all(limit=10 * REQUESTS)
        assert sorted(e.stream for e in events) == sorted(f"order-{n}" for n in range(REQUESTS))
        assert {e.type for e in events} == {"order.created"}
        assert all(e.data == {"n": int(e.stream.split("-")[1])} for e in events)
