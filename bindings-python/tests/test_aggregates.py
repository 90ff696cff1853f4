"""Aggregates and repositories: commands record events that appliers fold, saves check the
version (the loser of a race gets ConcurrencyError, reloads and succeeds), snapshots give the
state a full replay gives, and the events commit with the application's rows."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import tidings


class Account(tidings.Aggregate):
    """A bank account."""

    stream_prefix = "account"

    def __init__(self) -> None:
        self.balance = 0
        self.deposits = 0

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("amount must be positive")
        self.record("account.deposited", {"amount": amount})

    def withdraw(self, amount: int) -> None:
        if amount > self.balance:
            raise ValueError("insufficient funds")
        self.record("account.withdrawn", {"amount": amount})

    @tidings.applies("account.deposited")
    def _deposited(self, data: dict[str, Any]) -> None:
        self.balance += data["amount"]
        self.deposits += 1

    @tidings.applies("account.withdrawn")
    def _withdrawn(self, data: dict[str, Any]) -> None:
        self.balance -= data["amount"]


def test_commands_record_and_fold_and_get_replays(store: tidings.Store) -> None:
    accounts = tidings.Repository(store, Account)
    account = accounts.get("1")
    assert (account.id, account.version, account.balance) == ("1", 0, 0)
    account.deposit(10)
    account.withdraw(4)
    assert account.balance == 6 and len(account.pending) == 2
    written = accounts.save(account)
    assert [e.type for e in written] == ["account.deposited", "account.withdrawn"]
    assert account.version == 2 and account.pending == []
    assert [e.stream for e in store.read_stream("account-1")] == ["account-1", "account-1"]
    again = accounts.get("1")
    assert (again.version, again.balance, again.deposits) == (2, 6, 1)
    assert repr(again) == "Account(id='1', version=2, balance=6, deposits=1)"
    assert accounts.save(again) == []  # nothing recorded: nothing written


def test_two_writers_one_wins_the_other_reloads_and_succeeds(store: tidings.Store) -> None:
    accounts = tidings.Repository(store, Account)
    accounts.update("1", lambda a: a.deposit(100))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def writer(name: str, amount: int) -> None:
        mine = accounts.get("1")
        mine.withdraw(amount)
        barrier.wait()  # both loaded at version 1 before either saves
        try:
            accounts.save(mine)
            outcomes[name] = "won"
        except tidings.ConcurrencyError as conflict:
            assert conflict.expected == 1 and conflict.actual == 2
            fresh = accounts.get("1")
            assert fresh.version == 2
            fresh.withdraw(amount)
            accounts.save(fresh)
            outcomes[name] = "retried"

    threads = [threading.Thread(target=writer, args=(n, a)) for n, a in (("a", 30), ("b", 20))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes.values()) == ["retried", "won"]
    final = accounts.get("1")
    assert (final.version, final.balance) == (3, 50)


def test_update_takes_turns_and_returns_the_commands_value(store: tidings.Store) -> None:
    accounts = tidings.Repository(store, Account, snapshot_every=7)

    def many() -> None:
        for _ in range(25):
            accounts.update("1", lambda a: a.deposit(2))

    threads = [threading.Thread(target=many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert accounts.update("1", lambda a: a.balance) == 200
    assert accounts.get("1").version == 100
    with pytest.raises(ValueError, match="insufficient"):
        accounts.update("1", lambda a: a.withdraw(1000))
    assert accounts.get("1").version == 100  # the failed command wrote nothing


def test_snapshots_give_the_state_a_full_replay_gives(store: tidings.Store) -> None:
    with_snapshots = tidings.Repository(store, Account, snapshot_every=10)
    for n in range(1, 36):

        def command(account: Account, n: int = n) -> None:
            if n % 5:
                account.deposit(n)
            else:
                account.withdraw(1)

        with_snapshots.update("1", command)
    snapshot = store.load_snapshot("account-1")
    assert snapshot is not None and (snapshot.version, snapshot.schema_version) == (30, 1)
    history = store.load_aggregate("account-1", 1)
    assert history.snapshot is not None and [e.version for e in history.events] == [31, 32, 33, 34, 35]
    replayed = Account()
    for event in store.read_stream("account-1"):
        replayed.apply(event.type, event.data)
    loaded = with_snapshots.get("1")
    assert loaded.snapshot() == replayed.snapshot() and loaded.version == 35
    # The snapshot holds the state: the events it covers may go, and the state stays.
    assert store.truncate_stream("account-1", 31) == 30
    assert with_snapshots.get("1").snapshot() == replayed.snapshot()


def test_a_snapshot_of_another_shape_is_ignored(store: tidings.Store) -> None:
    class AccountV2(Account):
        state_version = 2

    def two_deposits(account: Account) -> None:
        account.deposit(5)
        account.deposit(6)

    tidings.Repository(store, Account, snapshot_every=2).update("1", two_deposits)
    assert store.load_aggregate("account-1", 2).snapshot is None
    assert len(store.load_aggregate("account-1", 2).events) == 2
    v2 = tidings.Repository(store, AccountV2, snapshot_every=2)
    assert v2.get("1").balance == 11
    v2.update("1", two_deposits)
    snapshot = store.load_snapshot("account-1")
    assert snapshot is not None and snapshot.schema_version == 2
    assert v2.get("1").balance == 22


def test_save_in_the_callers_transaction_commits_with_its_rows(store: tidings.Store) -> None:
    store.execute("CREATE TABLE ledger (account TEXT, note TEXT)")
    accounts = tidings.Repository(store, Account)
    account = accounts.get("1")
    account.deposit(10)
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.execute("INSERT INTO ledger VALUES ('1', 'opened')")
            accounts.save(account, tx)
            raise RuntimeError("the request failed")
    assert store.query("SELECT COUNT(*) FROM ledger") == [(0,)] and store.stream_version("account-1") is None
    account = accounts.get("1")
    account.deposit(10)
    with store.transaction() as tx:
        tx.execute("INSERT INTO ledger VALUES ('1', 'opened')")
        accounts.save(account, tx)
        assert accounts.get("1", tx=tx).balance == 10  # the transaction sees its own events
    assert store.query("SELECT COUNT(*) FROM ledger") == [(1,)] and store.stream_version("account-1") == 1


def test_snapshot_in_a_transaction_and_truncate_past_it(store: tidings.Store) -> None:
    for n in range(5):
        store.append("s", "t.happened", {"n": n})
    with store.transaction() as tx:
        tx.save_snapshot("s", 3, {"sum": 3}, schema_version=4)
        loaded = tx.load_snapshot("s")
        assert loaded is not None and (loaded.version, loaded.state, loaded.schema_version) == (3, {"sum": 3}, 4)
        with pytest.raises(tidings.InvalidInputError) as info:
            tx.truncate_stream("s", 5)
        assert info.value.field == "before_version"
        assert tx.truncate_stream("s", 4) == 3
    with pytest.raises(tidings.InvalidInputError):
        store.truncate_stream("s", 6)
    assert store.truncate_stream("s", 6, past_snapshot=True) == 2
    assert "schema_version=4" in repr(store.load_snapshot("s"))
    with pytest.raises(tidings.InvalidInputError) as info:
        store.save_snapshot("s", 5, {}, schema_version=0)
    assert info.value.field == "schema_version"


def test_bad_aggregate_input_is_a_typed_error(store: tidings.Store) -> None:
    account = tidings.Repository(store, Account).get("1")
    with pytest.raises(tidings.InvalidInputError) as info:
        account.record("account.closed", {})
    assert info.value.field == "type" and account.pending == []
    with pytest.raises(tidings.InvalidInputError) as info:
        tidings.Repository(store, Account, snapshot_every=0)
    assert info.value.field == "snapshot_every"
    with pytest.raises(tidings.InvalidInputError) as info:
        tidings.Repository(store, dict)  # type: ignore[type-var]
    assert info.value.field == "aggregate"
    assert Account.stream_of("7") == "account-7"
