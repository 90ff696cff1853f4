"""Transactions: the application's rows and its events commit together or not at all."""

from __future__ import annotations

import pytest

import tidings


@pytest.fixture
def orders(store: tidings.Store) -> tidings.Store:
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL, note TEXT, raw BLOB)")
    return store


def test_commit_on_exit_writes_row_and_event(orders: tidings.Store) -> None:
    with orders.transaction() as tx:
        assert tx.active
        assert tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", (42, 9.99)) == 1
        assert tx.query("SELECT id, total FROM orders WHERE id = ?", (42,)) == [(42, 9.99)]
        event = tx.append("order-42", "order.created", {"total": 9.99})
        assert (event.stream, event.version, event.type) == ("order-42", 1, "order.created")
    assert not tx.active
    assert orders.query("SELECT id, total FROM orders") == [(42, 9.99)]
    assert [e.id for e in orders.read_stream("order-42")] == [event.id]


def test_exception_in_with_leaves_no_row_and_no_event(orders: tidings.Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with orders.transaction() as tx:
            tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", (7, 1.0))
            tx.append("order-7", "order.created", {"total": 1.0})
            raise Boom()
    assert orders.query("SELECT count(*) FROM orders") == [(0,)]
    assert orders.read_stream("order-7") == []
    assert orders.stream_version("order-7") is None
    assert orders.last_position() == 0
    # The writer is free again.
    orders.append("order-7", "order.created", {"total": 1.0}, expected_version=0)


def test_explicit_begin_commit_and_rollback(orders: tidings.Store) -> None:
    tx = orders.begin()
    tx.execute("INSERT INTO orders (id) VALUES (1)")
    tx.rollback()
    with pytest.raises(tidings.ClosedError):
        tx.execute("INSERT INTO orders (id) VALUES (2)")
    with pytest.raises(tidings.ClosedError):
        tx.commit()
    tx = orders.begin()
    tx.execute("INSERT INTO orders (id) VALUES (3)")
    tx.commit()
    assert orders.query("SELECT id FROM orders") == [(3,)]


def test_commit_inside_with_is_kept(orders: tidings.Store) -> None:
    with orders.transaction() as tx:
        tx.execute("INSERT INTO orders (id) VALUES (5)")
        tx.commit()
    assert orders.query("SELECT id FROM orders") == [(5,)]


def test_a_failed_append_keeps_the_transaction_usable(orders: tidings.Store) -> None:
    with orders.transaction() as tx:
        tx.append("s", "a.b", {})
        with pytest.raises(tidings.ConcurrencyError):
            tx.append("s", "a.b", {}, expected_version=0)
        tx.execute("INSERT INTO orders (id) VALUES (1)")
    assert orders.stream_version("s") == 1
    assert orders.query("SELECT id FROM orders") == [(1,)]


def test_an_append_failing_while_writing_fails_the_transaction(orders: tidings.Store) -> None:
    # A trigger refuses a stream's third event: the first two of the batch are written by then.
    orders.execute(
        "CREATE TRIGGER refuse_third BEFORE INSERT ON tidings_events WHEN NEW.version = 3 "
        "BEGIN SELECT RAISE(ABORT, 'the third event is refused'); END"
    )
    tx = orders.begin()
    tx.execute("INSERT INTO orders (id) VALUES (1)")
    # The trigger's RAISE is a constraint failure: an IntegrityError, which an append that
    # had started writing turns into a failed transaction all the same.
    with pytest.raises(tidings.IntegrityError):
        tx.append_many("s", [{"type": "a.b", "data": {"n": n}} for n in range(5)])
    with pytest.raises(tidings.TransactionFailedError, match="rolled back"):
        tx.execute("INSERT INTO orders (id) VALUES (2)")
    with pytest.raises(tidings.TransactionFailedError, match="rolled back"):
        tx.commit()
    assert issubclass(tidings.TransactionFailedError, tidings.StorageError), "caught as before"
    assert orders.query("SELECT count(*) FROM orders") == [(0,)]
    assert orders.stream_version("s") is None


def test_second_write_on_the_same_thread_is_a_typed_error(orders: tidings.Store) -> None:
    with orders.transaction() as tx:
        tx.execute("INSERT INTO orders (id) VALUES (1)")
        with pytest.raises(tidings.TransactionOpenError):
            orders.append("s", "a.b", {})
        with pytest.raises(tidings.TransactionOpenError):
            orders.transaction()
    assert orders.query("SELECT id FROM orders") == [(1,)]


def test_dropped_transaction_rolls_back(orders: tidings.Store) -> None:
    tx = orders.begin()
    tx.execute("INSERT INTO orders (id) VALUES (1)")
    with pytest.warns(ResourceWarning, match="garbage collected while open"):
        del tx
    assert orders.query("SELECT count(*) FROM orders") == [(0,)]
    orders.execute("INSERT INTO orders (id) VALUES (2)")


def test_sql_values_round_trip(orders: tidings.Store) -> None:
    orders.execute(
        "INSERT INTO orders (id, total, note, raw) VALUES (?, ?, ?, ?)", [1, 2.5, "héllo", b"\x00\xffbytes"]
    )
    orders.execute("INSERT INTO orders (id, total, note, raw) VALUES (:id, :total, :note, :raw)",
                   {"id": 2, "total": None, "note": None, "raw": bytearray(b"ab")})
    orders.execute("INSERT INTO orders (id, total) VALUES (?, ?)", (3, True))
    rows = orders.query("SELECT id, total, note, raw FROM orders ORDER BY id")
    assert rows == [(1, 2.5, "héllo", b"\x00\xffbytes"), (2, None, None, b"ab"), (3, 1.0, None, None)]
    assert [type(v) for v in rows[0]] == [int, float, str, bytes]
    assert orders.query("SELECT 1, 'x', NULL, 2.0") == [(1, "x", None, 2.0)]


def test_json_values_round_trip_exactly(store: tidings.Store) -> None:
    data = {
        "int": 1,
        "big": 2**63 - 1,
        "unsigned": 2**64 - 1,
        "negative": -(2**63),
        "float": 1.0,
        "pi": 3.141592653589793,
        "true": True,
        "false": False,
        "none": None,
        "str": "ünïcode ✓",
        "list": [1, 2.0, "3", [None, {"a": []}]],
        "dict": {"nested": {"deep": [True]}},
    }
    event = store.append("json", "json.sample", data, metadata={"actor": "alice", "n": 2})
    for got in (event, store.read_stream("json")[0], store.event(event.id)):
        assert got.data == data
        assert type(got.data["float"]) is float and type(got.data["int"]) is int
        assert type(got.data["true"]) is bool
        assert got.metadata == {"actor": "alice", "n": 2}
    for scalar in (None, 0, -1.5, "text", [1, "a"], True):
        assert store.append("scalars", "json.scalar", scalar).data == scalar
    # Tuples are JSON arrays.
    assert store.append("scalars", "json.scalar", (1, 2)).data == [1, 2]


def test_checkpoint_commits_with_the_read_model(orders: tidings.Store) -> None:
    for i in range(3):
        orders.append(f"order-{i}", "order.created", {"total": i})
    with orders.transaction() as tx:
        for event in orders.read_all(from_position=1):
            tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", (event.position, event.data["total"]))
            tx.set_checkpoint("totals", event.position)
        assert tx.checkpoint("totals") == 3
    assert orders.checkpoint("totals") == 3
    with pytest.raises(RuntimeError):
        with orders.transaction() as tx:
            tx.set_checkpoint("totals", 99)
            raise RuntimeError("projection failed")
    assert orders.checkpoint("totals") == 3
    assert orders.checkpoint("unknown") is None
    orders.set_checkpoint("other", 2)
    assert orders.checkpoint("other") == 2


def test_snapshots(store: tidings.Store) -> None:
    for i in range(1, 4):
        store.append("cart-1", "cart.item_added", {"n": i})
    assert store.load_snapshot("cart-1") is None
    store.save_snapshot("cart-1", 2, {"items": [1, 2]})
    snap = store.load_snapshot("cart-1")
    assert snap is not None
    assert (snap.version, snap.state) == (2, {"items": [1, 2]})
    assert snap.saved_at.tzinfo is not None
    with store.transaction() as tx:
        tx.save_snapshot("cart-1", 3, {"items": [1, 2, 3]})
    snap = store.load_snapshot("cart-1")
    assert snap is not None and snap.version == 3
    with pytest.raises(tidings.InvalidInputError) as info:
        store.save_snapshot("cart-1", 9, {})
    assert info.value.field == "version"
    with pytest.raises(tidings.NotFoundError):
        store.save_snapshot("no-such-stream", 1, {})


def test_endpoint_changes_join_the_transaction(store: tidings.Store) -> None:
    with pytest.raises(KeyError):
        with store.transaction() as tx:
            created = tx.create_endpoint("https://example.com/a")
            assert tx.get_endpoint(created.id) == created
            raise KeyError("undo")
    assert store.list_endpoints() == []
    with store.transaction() as tx:
        created = tx.create_endpoint("https://example.com/a", events=["order.*"])
        tx.update_endpoint(created.id, name="Orders")
        tx.disable_endpoint(created.id, reason="maintenance")
        tx.append("order-1", "order.created", {})
    got = store.get_endpoint(created.id)
    assert (got.name, got.enabled, got.disabled_reason) == ("Orders", False, "maintenance")
    assert store.deliveries(endpoint_id=created.id) == []
