"""A small order service on tidings, written as an application would be (and type-checked with
``mypy --strict`` in CI; ``tests/test_examples.py`` runs it).

- the schema with ``executescript``; orders and their ``order.created`` events commit together;
- a duplicate order reference is an ``IntegrityError`` the handler answers with 409, and the
  transaction goes on;
- prices are ``Decimal`` and order ids ``UUID``s in event data; a ``json_default`` hook
  encodes the application's own ``Enum``;
- a webhook receiver (``http.server``) verifies each delivery with ``tidings.verify``;
- a projection reads the whole log with ``iter_all`` and records its checkpoint.

Run: ``python orders_service.py [DATABASE]`` (default: a temporary file).
"""

from __future__ import annotations

import enum
import http.server
import sys
import tempfile
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import tidings

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    total TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_totals (day TEXT PRIMARY KEY, orders INTEGER NOT NULL);
"""


class Channel(enum.Enum):
    WEB = "web"
    SHOP = "shop"


def encode(value: object) -> Any:
    """The store's ``json_default``: the application's own types in event data."""
    if isinstance(value, Channel):
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__}")


def place_order(store: tidings.Store, ref: str, total: Decimal, channel: Channel) -> tuple[int, Optional[int]]:
    """Inserts an order and its event in one transaction; returns (HTTP status, order row id)."""
    with store.transaction() as tx:
        try:
            inserted = tx.execute("INSERT INTO orders (ref, total) VALUES (?, ?)", (ref, str(total)))
        except tidings.IntegrityError as err:
            if err.constraint == "orders.ref":
                return 409, None  # the transaction is still usable; nothing was written
            raise
        tx.append(
            f"order-{ref}",
            "order.created",
            {"ref": ref, "total": total, "order_id": uuid.uuid4(), "channel": channel},
            expected_version=0,
        )
        return 201, inserted.lastrowid


received: list[dict[str, Any]] = []
secrets: dict[str, str] = {}


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            payload = tidings.verify(body, self.headers, secrets["orders"])
        except tidings.SignatureError:
            self.send_response(401)
        else:
            received.append(payload)
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def project(store: tidings.Store) -> int:
    """Counts orders in the log with a checkpointed projection; returns the events read."""
    start = (store.checkpoint("totals") or 0) + 1
    seen = 0
    with store.transaction() as tx:
        for event in store.iter_all(from_position=start, batch=100, types="order.*"):
            tx.execute(
                "INSERT INTO order_totals (day, orders) VALUES (?, 1) "
                "ON CONFLICT (day) DO UPDATE SET orders = orders + 1",
                (event.recorded_at.date().isoformat(),),
            )
            tx.set_checkpoint("totals", event.position)
            seen += 1
    return seen


def main(path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
    try:
        with tidings.Store(path, allow_private=True, json_default=encode) as store:
            store.executescript(SCHEMA)
            endpoint, created = store.upsert_endpoint(url, name="orders", events=["order.*"])
            secrets["orders"] = endpoint.secret
            print("endpoint", "created" if created else "updated")

            print("first", place_order(store, "A-1", Decimal("19.90"), Channel.WEB))
            print("again", place_order(store, "A-1", Decimal("19.90"), Channel.WEB))
            print("second", place_order(store, "A-2", Decimal("5.00"), Channel.SHOP))
            rows = store.query("SELECT id, ref, total FROM orders ORDER BY id")
            print("orders", [(row["ref"], row["total"]) for row in rows])

            with store.start_delivery() as delivery:
                delivery.drain(timeout=10.0)
            print("received", sorted((p["data"]["ref"], p["data"]["total"]) for p in received))
            print("projected", project(store), "events")
            print("totals", [tuple(row) for row in store.query("SELECT orders FROM order_totals")])
    finally:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder) / "orders.db")
