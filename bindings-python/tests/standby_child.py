"""A child process for test_projection_crash.py's handover test: runs subscription
``balances`` on the store at ``argv[1]``, recording which process applied each event, and
prints ``standby`` once subscribed, ``active`` once its runner holds the subscription's lease,
then ``caught up`` once it has passed position ``argv[2]``."""

from __future__ import annotations

import os
import sys
import time

import tidings


def project(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
    """Logs every application with this process's id; slowly, so a kill lands mid-way."""
    for event in events:
        tx.execute("INSERT INTO applied (position, pid) VALUES (?, ?)", (event.position, os.getpid()))
    time.sleep(0.05)


def main() -> None:
    with tidings.Store(sys.argv[1]) as store:
        with store.subscribe("balances", project, batch_size=10) as sub:
            print("standby", flush=True)
            while not sub.active:
                time.sleep(0.01)
            print("active", flush=True)
            if not sub.wait_for_position(int(sys.argv[2]), 120.0):
                sys.exit(f"did not catch up: {sub.error}")
    print("caught up", flush=True)


if __name__ == "__main__":
    main()
