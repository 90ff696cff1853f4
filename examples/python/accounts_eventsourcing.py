"""The program of accounts_tidings.py written with the `eventsourcing` package (9.4): the same
account aggregate (snapshots every 5 events, an upcaster for an old event shape, retry on
conflict) and the same balance projection, run in a second process with a tracking record in
the view's transaction and a lock so that one projection process runs at a time. (Its
SQLite recorder has no subscriptions, so the projection pulls the notification log.)

    python accounts_eventsourcing.py bank.db
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from functools import singledispatchmethod
from typing import Any, Callable
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder


class Account(Aggregate):
    @staticmethod
    def create_id(owner: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/accounts/{owner}")

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    class Deposited(Aggregate.Event):
        class_version = 2
        amount: int

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # Version 1 carried cents, as a string.
            state["amount"] = int(state.pop("cents")) // 100

    @event(Deposited)
    def deposit(self, amount: int) -> None:
        self.balance += amount

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self._withdraw(amount)

    @event("Withdrawn")
    def _withdraw(self, amount: int) -> None:
        self.balance -= amount


class Bank(Application[UUID]):
    snapshotting_intervals = {Account: 5}

    def open(self, owner: str) -> None:
        self.save(Account(owner))

    def update(self, owner: str, command: Callable[[Account], None], attempts: int = 5) -> Account:
        for attempt in range(attempts):
            account: Account = self.repository.get(Account.create_id(owner))
            command(account)
            try:
                self.save(account)
                return account
            except IntegrityError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError


class BalancesView(SQLiteTrackingRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.create_table_statements.append(
            "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, owner TEXT, balance INTEGER)"
        )

    def write(self, sql: str, params: tuple[Any, ...], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(sql, params)
            self._insert_tracking(c, tracking)


class Balances(Projection[BalancesView]):
    name = "balances"

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: Account.Opened, tracking: Tracking) -> None:
        sql = "INSERT INTO balances VALUES (?, ?, 0)"
        self.view.write(sql, (str(domain_event.originator_id), domain_event.owner), tracking)

    @process_event.register
    def _(self, domain_event: Account.Deposited, tracking: Tracking) -> None:
        sql = "UPDATE balances SET balance = balance + ? WHERE account = ?"
        self.view.write(sql, (domain_event.amount, str(domain_event.originator_id)), tracking)

    @process_event.register
    def _(self, domain_event: Account.Withdrawn, tracking: Tracking) -> None:
        sql = "UPDATE balances SET balance = balance - ? WHERE account = ?"
        self.view.write(sql, (domain_event.amount, str(domain_event.originator_id)), tracking)


def environment(path: str) -> dict[str, str]:
    return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "10"}


def run_projection(path: str) -> None:
    with open(path + ".balances.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one projection process at a time
        bank = Bank(env=environment(path))
        projection = Balances(bank.factory.tracking_recorder(BalancesView))
        while True:
            start = (projection.view.max_tracking_id(bank.name) or 0) + 1
            notifications = bank.recorder.select_notifications(start, limit=100)
            if not notifications:
                return
            for notification in notifications:
                domain_event = bank.mapper.to_domain_event(notification)
                projection.process_event(domain_event, Tracking(bank.name, notification.id))


def main(path: str) -> None:
    bank = Bank(env=environment(path))
    for n, owner in enumerate(["ada", "grace", "edsger"], start=1):
        bank.open(owner)
        for amount in range(1, 11):
            bank.update(owner, lambda account: account.deposit(amount * n))
    bank.update("ada", lambda account: account.withdraw(20))
    subprocess.run([sys.executable, __file__, path, "project"], check=True)
    view = BalancesView(bank.factory.datastore)  # type: ignore[attr-defined]
    with view.datastore.transaction(commit=False) as c:
        c.execute("SELECT owner, balance FROM balances ORDER BY owner")
        for row in c.fetchall():
            print(row["owner"], row["balance"])
    print("ada loaded:", bank.repository.get(Account.create_id("ada")).balance)


if __name__ == "__main__":
    run_projection(sys.argv[1]) if sys.argv[2:] == ["project"] else main(sys.argv[1])
