"""The application's SQL, in a transaction and at store level, against a real file: rows
changed and ``lastrowid``, ``executemany``, ``executescript``, rows by column name, and
``IntegrityError`` (a broken constraint) that leaves the transaction usable."""

from __future__ import annotations

import pickle
import threading

import pytest

import tidings

SCHEMA = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE, total REAL CHECK (total >= 0));
CREATE TABLE lines (order_id INTEGER REFERENCES orders (id), sku TEXT);
"""


@pytest.fixture
def shop(store: tidings.Store) -> tidings.Store:
    store.executescript(SCHEMA)
    return store


def test_executescript_creates_the_schema_all_or_none(shop: tidings.Store) -> None:
    names = [row["name"] for row in shop.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    assert "orders" in names and "lines" in names
    with pytest.raises(tidings.StorageError):
        shop.executescript("CREATE TABLE extra (x); CREATE TABLE orders (again)")
    assert shop.query("SELECT count(*) FROM sqlite_master WHERE name = 'extra'") == [(0,)]
    with pytest.raises(tidings.InvalidInputError):
        shop.executescript("CREATE TABLE extra (x); COMMIT")


def test_execute_returns_rows_changed_with_lastrowid(shop: tidings.Store) -> None:
    first = shop.execute("INSERT INTO orders (ref, total) VALUES (?, ?)", ("A-1", 9.5))
    assert first == 1 and isinstance(first, int)
    assert (first.rowcount, first.lastrowid) == (1, 1)
    second = shop.execute("INSERT INTO orders (ref, total) VALUES (:ref, :total)", {"ref": "A-2", "total": 1.0})
    assert second.lastrowid == 2
    update = shop.execute("UPDATE orders SET total = total + 1")
    assert (update, update.lastrowid) == (2, None)
    assert repr(update) == "ExecuteResult(rowcount=2, lastrowid=None)"
    assert pickle.loads(pickle.dumps(second)).lastrowid == 2


def test_transaction_lastrowid_follows_inserts_only(shop: tidings.Store) -> None:
    with shop.transaction() as tx:
        assert tx.lastrowid is None
        done = tx.execute("INSERT INTO orders (ref) VALUES ('B-1')")
        assert tx.lastrowid == done.lastrowid == 1
        tx.append("order-1", "order.created", {"ref": "B-1"})  # tidings' own insert
        tx.execute("UPDATE orders SET total = 3 WHERE id = 1")
        assert tx.lastrowid == 1
        tx.execute("INSERT INTO orders (id, ref) VALUES (40, 'B-40')")
        assert tx.lastrowid == 40


def test_executemany_positional_and_named(shop: tidings.Store) -> None:
    changed = shop.executemany("INSERT INTO orders (ref, total) VALUES (?, ?)", [("C-1", 1.0), ("C-2", 2.0)])
    assert changed == 2
    with shop.transaction() as tx:
        sets: list[dict[str, float | str]] = [{"t": 5.0, "r": f"C-{i}"} for i in (1, 2)]
        assert tx.executemany("UPDATE orders SET total = :t WHERE ref = :r", iter(sets)) == 2
    assert shop.query("SELECT ref, total FROM orders ORDER BY ref") == [("C-1", 5.0), ("C-2", 5.0)]
    with pytest.raises(tidings.InvalidInputError, match="positional"):
        shop.executemany("INSERT INTO orders (ref) VALUES (?)", [("C-3",), {"ref": "C-4"}])  # type: ignore[arg-type]
    with pytest.raises(tidings.IntegrityError):
        shop.executemany("INSERT INTO orders (ref) VALUES (?)", [("C-5",), ("C-1",)])
    assert shop.query("SELECT count(*) FROM orders WHERE ref = 'C-5'") == [(0,)], "all or none at store level"


def test_rows_index_by_name_and_position(shop: tidings.Store) -> None:
    shop.execute("INSERT INTO orders (ref, total) VALUES ('D-1', 4.25)")
    [row] = shop.query("SELECT id, ref, total AS amount FROM orders")
    assert row[0] == 1 and row["ref"] == "D-1" and row["amount"] == 4.25 and row["AMOUNT"] == 4.25
    assert row[-1] == 4.25 and row[1:] == ("D-1", 4.25)
    assert row.keys() == ["id", "ref", "amount"]
    assert row.as_dict() == {"id": 1, "ref": "D-1", "amount": 4.25}
    ident, ref, amount = row
    assert (ident, ref, amount) == (1, "D-1", 4.25) and len(row) == 3 and "D-1" in row
    assert row == (1, "D-1", 4.25) and hash(row) == hash((1, "D-1", 4.25))
    assert repr(row) == "Row(id=1, ref='D-1', amount=4.25)"
    with pytest.raises(IndexError, match="no column named 'nope'"):
        row["nope"]
    with shop.transaction() as tx:
        [seen] = tx.query("SELECT ref FROM orders WHERE id = ?", (1,))
        assert seen["ref"] == "D-1"


def test_integrity_error_leaves_the_transaction_usable(shop: tidings.Store) -> None:
    shop.execute("INSERT INTO orders (ref) VALUES ('E-1')")
    with shop.transaction() as tx:
        tx.execute("INSERT INTO orders (ref) VALUES ('E-2')")
        with pytest.raises(tidings.IntegrityError) as info:
            tx.execute("INSERT INTO orders (ref) VALUES ('E-1')")
        assert (info.value.code, info.value.constraint) == (2067, "orders.ref")
        assert not isinstance(info.value, tidings.StorageError)
        with pytest.raises(tidings.IntegrityError) as check:
            tx.execute("INSERT INTO orders (ref, total) VALUES ('E-3', -1)")
        assert check.value.code == 275
        tx.append("order-e", "order.created", {"ref": "E-4"})
        tx.execute("INSERT INTO orders (ref) VALUES ('E-4')")
    refs = [row["ref"] for row in shop.query("SELECT ref FROM orders ORDER BY ref")]
    assert refs == ["E-1", "E-2", "E-4"]
    assert shop.stream_version("order-e") == 1


def test_store_level_integrity_error(shop: tidings.Store) -> None:
    shop.execute("INSERT INTO orders (ref) VALUES ('F-1')")
    with pytest.raises(tidings.IntegrityError) as info:
        shop.execute("INSERT INTO orders (ref) VALUES (NULL)")
    assert info.value.code == 1299 and info.value.constraint == "orders.ref"


def test_a_pinned_transaction_used_from_another_thread_is_wrong_thread(shop: tidings.Store) -> None:
    tx = shop.begin()
    tx._set_threads("pinned")
    errors: list[BaseException] = []

    def elsewhere() -> None:
        try:
            tx.execute("INSERT INTO orders (ref) VALUES ('G-1')")
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            errors.append(err)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], tidings.WrongThreadError)
    tx.execute("INSERT INTO orders (ref) VALUES ('G-2')")
    tx.commit()
    assert shop.query("SELECT ref FROM orders") == [("G-2",)]
