"""A child process for test_projection_crash.py: runs subscription ``balances`` on the store
at ``argv[1]`` until it has passed the log's last position, then prints ``caught up``. Each
batch sleeps a little, so the parent's ``kill -9`` lands in the middle of the projection."""

from __future__ import annotations

import sys
import time

import tidings


def project(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
    """Adds each deposit to its account's balance and logs every application."""
    for event in events:
        tx.execute(
            "INSERT INTO balances (account, total) VALUES (?, ?) "
            "ON CONFLICT (account) DO UPDATE SET total = total + excluded.total",
            (event.stream, event.data["amount"]),
        )
        tx.execute("INSERT INTO applied (position) VALUES (?)", (event.position,))
    time.sleep(float(sys.argv[2]))


def main() -> None:
    with tidings.Store(sys.argv[1]) as store:
        with store.subscribe("balances", project, types="account.*", batch_size=25) as sub:
            print("started", flush=True)
            if not sub.wait_for_position(store.last_position(), 120.0):
                sys.exit(f"did not catch up: {sub.error}")
    print("caught up", flush=True)


if __name__ == "__main__":
    main()
