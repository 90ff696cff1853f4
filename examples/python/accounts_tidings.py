"""Bank accounts with tidings: an account aggregate (commands, snapshots every 5 events, an
upcaster for an old event shape, retry on conflict) and a balance projection run in a second
process, exactly once, into a table of the same SQLite file.

    python accounts_tidings.py bank.db
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import tidings


class Account(tidings.Aggregate):
    stream_prefix = "account"

    def __init__(self) -> None:
        self.owner = ""
        self.balance = 0

    def open(self, owner: str) -> None:
        self.record("account.opened", {"owner": owner})

    def deposit(self, amount: int) -> None:
        self.record("account.deposited", {"amount": amount}, schema_version=2)

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.record("account.withdrawn", {"amount": amount})

    @tidings.applies("account.opened")
    def _opened(self, data: dict[str, Any]) -> None:
        self.owner = data["owner"]

    @tidings.applies("account.deposited")
    def _deposited(self, data: dict[str, Any]) -> None:
        self.balance += data["amount"]

    @tidings.applies("account.withdrawn")
    def _withdrawn(self, data: dict[str, Any]) -> None:
        self.balance -= data["amount"]


def open_store(path: str) -> tidings.Store:
    store = tidings.Store(path)
    # Version 1 of account.deposited carried cents, as a string.
    store.register_upcaster("account.deposited", 1, lambda data: {"amount": int(data["cents"]) // 100})
    return store


def project(tx: tidings.Transaction, events: list[tidings.Event]) -> None:
    for event in events:
        if event.type == "account.opened":
            tx.execute("INSERT INTO balances VALUES (?, ?, 0)", (event.stream, event.data["owner"]))
        else:
            amount = event.data["amount"] * (-1 if event.type == "account.withdrawn" else 1)
            tx.execute("UPDATE balances SET balance = balance + ? WHERE account = ?", (amount, event.stream))


def run_projection(path: str) -> None:
    with open_store(path) as store, store.subscribe("balances", project, types="account.*") as balances:
        balances.wait_for_position(store.last_position(), 30.0)


def main(path: str) -> None:
    with open_store(path) as store:
        store.execute("CREATE TABLE balances (account TEXT PRIMARY KEY, owner TEXT, balance INTEGER)")
        accounts = tidings.Repository(store, Account, snapshot_every=5)
        for n, owner in enumerate(["ada", "grace", "edsger"], start=1):
            accounts.update(owner, lambda account: account.open(owner))
            for amount in range(1, 11):
                accounts.update(owner, lambda account: account.deposit(amount * n))
        accounts.update("ada", lambda account: account.withdraw(20))
        subprocess.run([sys.executable, __file__, path, "project"], check=True)
        for name, balance in store.query("SELECT owner, balance FROM balances ORDER BY owner"):
            print(name, balance)
        print("ada loaded:", accounts.get("ada").balance)


if __name__ == "__main__":
    run_projection(sys.argv[1]) if sys.argv[2:] == ["project"] else main(sys.argv[1])
