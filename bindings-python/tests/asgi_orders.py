"""A small order service in plain ASGI, for test_asgi.py: run as
``python asgi_orders.py DB_PATH FD``, it serves the listening socket ``FD`` (inherited from the
test) with a real uvicorn until SIGINT or SIGTERM.

``POST /orders/<n>`` inserts the order row and appends its ``order.created`` event in one
``tidings.aio`` transaction, awaiting inside it (as a handler that calls another service
would), and answers ``{"n": n, "position": p}``. ``GET /health`` answers 200 once the store is
open. The store opens at lifespan startup and closes at shutdown (saying so on stderr).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable, Optional

import uvicorn

import tidings.aio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class OrderService:
    """The ASGI application."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.store: Optional[tidings.aio.AsyncStore] = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
        elif scope["type"] == "http":
            await self.http(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.store = await tidings.aio.open(self.path)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.store is not None:
                    await self.store.close()
                    print("store closed", file=sys.stderr, flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/health":
            await respond(send, 200, {"ok": True})
        elif method == "POST" and path.startswith("/orders/"):
            await respond(send, 200, await self.create_order(int(path.rsplit("/", 1)[1])))
        else:
            await respond(send, 404, {"error": "not found"})

    async def create_order(self, n: int) -> dict[str, int]:
        assert self.store is not None
        async with self.store.transaction() as tx:
            tx.execute("INSERT INTO orders (ref, n) VALUES (?, ?)", (f"A-{n}", n))
            await asyncio.sleep(0.002)  # another service's answer, say
            event = tx.append(f"order-{n}", "order.created", {"n": n}, expected_version=0)
            await asyncio.sleep(0)
        return {"n": n, "position": event.position}


async def respond(send: Send, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def main(path: str, fd: int) -> None:
    config = uvicorn.Config(OrderService(path), lifespan="on", log_level="warning")
    listener = socket.socket(fileno=fd)
    asyncio.run(uvicorn.Server(config).serve(sockets=[listener]))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
