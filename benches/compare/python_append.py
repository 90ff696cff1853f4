"""The Python rows of `compare`: tidings' Python package against `eventsourcing` and against
Python's own `sqlite3` doing the same inserts, in one process, round after round.

    python benches/compare/python_append.py [--quick] [--rounds N] [--out DIR] [ROW...]

Every contender writes, per transaction, what `benches/compare/append.rs` writes: events with
the same JSON body and metadata, round-robin over 1,000 streams. tidings and raw sqlite3 also
write one application row (`orders`) and one outbox row per event; eventsourcing writes its
event rows only (it has neither), which favours it. All run at the same durability: WAL with
`synchronous = NORMAL` (tidings' `durability="normal"`).

Rows (the same shape as `compare.json`), written to `DIR/python.json`:

- `python_append_1`: 1 event per transaction; tidings vs eventsourcing vs raw sqlite3.
- `python_append_100`: 100 events per transaction; tidings vs eventsourcing.

Contenders alternate within each round (the order reversed every other round), each on a new
file in a new temporary directory. `--quick` runs tiny sizes, to check that the rows run.

tidings links its own SQLite; Python's `sqlite3` (used by the raw contender and by
eventsourcing) never opens a tidings file here: every contender has a file of its own.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any, Callable, Optional

import tidings
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.sqlite import SQLiteConnection, SQLiteConnectionPool, SQLiteFactory

STREAMS = 1_000
"""Streams (aggregates) written round-robin."""

METADATA = {"actor": "bench", "correlation_id": "2f1e0c4a"}


def event_data(n: int) -> dict[str, Any]:
    """The event body every contender writes (the same as append.rs)."""
    return {"order_id": n, "customer": "c-1042", "total": 99.5, "currency": "EUR", "lines": [{"sku": "A-1", "qty": 2}]}


# --- tidings -------------------------------------------------------------------------------


def tidings_run(directory: pathlib.Path, count: int, per_tx: int) -> float:
    """`count` transactions, each an app row and `per_tx` events appended to one stream (one
    `append`, or one `append_many` of them all); events/s."""
    with tidings.Store(directory / "tidings.db", durability="normal") as store:
        store.create_endpoint("https://example.com/hook", events=["order.*"])
        store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total REAL NOT NULL)")
        streams = [f"order-{i}" for i in range(STREAMS)]
        start = time.perf_counter()
        for n in range(count):
            stream = streams[n % STREAMS]
            with store.transaction() as tx:
                tx.execute("INSERT INTO orders (customer, total) VALUES (?, ?)", ("c-1042", 99.5))
                if per_tx == 1:
                    tx.append(stream, "order.created", event_data(n), metadata=METADATA)
                else:
                    tx.append_many(
                        stream,
                        [
                            {"type": "order.created", "data": event_data(n * per_tx + i), "metadata": METADATA}
                            for i in range(per_tx)
                        ],
                    )
        elapsed = time.perf_counter() - start
        # Outside the clock: every event is there, with its outbox row.
        assert store.last_position() == count * per_tx, "tidings lost events"
        assert store.deliveries(limit=1), "tidings queued no deliveries"
    return count * per_tx / elapsed


def tidings_sqlite_version() -> str:
    with tidings.Store(":memory:") as store:
        return str(store.query("SELECT sqlite_version()")[0][0])


# --- eventsourcing -------------------------------------------------------------------------


class _NormalSyncPool(SQLiteConnectionPool):
    """eventsourcing's SQLite pool, plus `synchronous = NORMAL` on every new connection.

    eventsourcing turns WAL on itself but leaves `synchronous` at the library default (FULL:
    an fsync per commit). It has no setting for it, so this subclass sets it.
    """

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection.cursor().execute("PRAGMA synchronous = NORMAL")
        return connection


class NormalSyncSQLiteFactory(SQLiteFactory):
    """eventsourcing's SQLite persistence with `_NormalSyncPool`; chosen by PERSISTENCE_MODULE."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        default_pool = self.datastore.pool
        self.datastore.pool = _NormalSyncPool(db_name=default_pool.db_name, lock_timeout=default_pool.lock_timeout)
        default_pool.close()


class Order(Aggregate):
    """An aggregate per stream; every event carries the same body and metadata as tidings'."""

    @event("Created")
    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.events = 1

    @event("Placed")
    def place(self, data: dict[str, Any], metadata: dict[str, Any]) -> None:
        self.events += 1


def eventsourcing_app(directory: pathlib.Path) -> Application:
    app = Application(
        env={
            "PERSISTENCE_MODULE": f"{NormalSyncSQLiteFactory.__module__}:{NormalSyncSQLiteFactory.__qualname__}",
            "SQLITE_DBNAME": str(directory / "eventsourcing.db"),
        }
    )
    datastore = app.factory.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
    assert (journal_mode, synchronous) == ("wal", 1), f"eventsourcing at {journal_mode}/{synchronous}"
    return app


def eventsourcing_run(directory: pathlib.Path, count: int, per_tx: int) -> float:
    """`count` saves, each of one aggregate with `per_tx` new events; events/s.

    Aggregates stay in memory (no repository reads): a stream's first event is its `Created`.
    """
    app = eventsourcing_app(directory)
    orders: list[Optional[Order]] = [None] * STREAMS
    start = time.perf_counter()
    for n in range(count):
        s = n % STREAMS
        order = orders[s]
        first = 0
        if order is None:
            order = orders[s] = Order(event_data(n * per_tx), METADATA)
            first = 1
        for i in range(first, per_tx):
            order.place(event_data(n * per_tx + i), METADATA)
        app.save(order)
    elapsed = time.perf_counter() - start
    recorded = app.recorder.max_notification_id()  # type: ignore[attr-defined]
    assert recorded == count * per_tx, "eventsourcing lost events"
    app.close()
    return count * per_tx / elapsed


# --- raw sqlite3 ---------------------------------------------------------------------------

# tidings' own tables and indexes, the file the Rust raw contender uses too.
RAW_TIDINGS_SCHEMA = (pathlib.Path(__file__).parent / "raw_tidings_schema.sql").read_text()


def uuid7() -> str:
    """A UUIDv7 (48-bit millisecond time, then random bits), as tidings gives events."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return str(uuid.UUID(int=value))


def sqlite3_run(directory: pathlib.Path, count: int, per_tx: int) -> float:
    """The same three inserts by hand, `BEGIN IMMEDIATE` .. `COMMIT` per transaction; events/s."""
    conn = sqlite3.connect(directory / "raw.db", isolation_level=None, timeout=30.0)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(RAW_TIDINGS_SCHEMA)
    versions = [0] * STREAMS
    metadata = json.dumps(METADATA)
    start = time.perf_counter()
    for n in range(count):
        stream = n % STREAMS
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO orders (customer, total) VALUES (?, ?)", ("c-1042", 99.5))
        now = time.time_ns() // 1_000
        for i in range(per_tx):
            data = json.dumps(event_data(n * per_tx + i))
            versions[stream] += 1
            # Positions come from the database, as in append.rs.
            (position,) = conn.execute("SELECT coalesce(max(position), 0) + 1 FROM events").fetchone()
            conn.execute(
                "INSERT INTO events (position, id, stream_id, version, type, data, metadata, tenant, recorded_at)"
                " VALUES (?, ?, ?, ?, 'order.created', ?, ?, NULL, ?)",
                (position, uuid7(), stream, versions[stream], data, metadata, now),
            )
            conn.execute(
                "INSERT INTO deliveries (event_position, endpoint_seq, stream_id, state, next_attempt_at,"
                " created_at, touched_at) VALUES (?, 1, ?, 0, ?, ?, ?)",
                (position, stream, now, now, now),
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == count * per_tx, "sqlite3 lost rows"
    conn.close()
    return count * per_tx / elapsed


# --- rows ----------------------------------------------------------------------------------

Contender = Callable[[pathlib.Path, int, int], float]


def series(name: str, samples: list[float]) -> dict[str, Any]:
    return {"name": name, "samples": samples, "median": statistics.median(samples)}


def measure(contenders: list[Contender], rounds: int, count: int, per_tx: int, warmup: bool) -> list[list[float]]:
    """Runs every contender once per round, alternating; one list of events/s per contender."""
    if warmup:
        for run in contenders:
            with tempfile.TemporaryDirectory(prefix="compare-py-") as d:
                run(pathlib.Path(d), max(1, count // 20), per_tx)
    samples: list[list[float]] = [[] for _ in contenders]
    for r in range(rounds):
        order = list(range(len(contenders)))
        if r % 2 == 1:
            order.reverse()
        for who in order:
            with tempfile.TemporaryDirectory(prefix="compare-py-") as d:
                samples[who].append(contenders[who](pathlib.Path(d), count, per_tx))
    return samples


def verdict(ratio: float, target: float) -> str:
    return f"{ratio:.2f}x (target >= {target}x: {'met' if ratio >= target else 'MISSED'})"


def row_append_1(rounds: int, count: int, warmup: bool, common: list[str]) -> dict[str, Any]:
    t, es, raw = measure([tidings_run, eventsourcing_run, sqlite3_run], rounds, count, 1, warmup)
    tidings_s = series("tidings (Python)", t)
    es_s = series("eventsourcing (SQLite, WAL, synchronous=NORMAL)", es)
    raw_s = series("Python sqlite3, tidings' tables and indexes", raw)
    vs_es = tidings_s["median"] / es_s["median"]
    vs_raw = tidings_s["median"] / raw_s["median"]
    return {
        "key": "python_append_1",
        "title": "Python append, 1 event/tx",
        "unit": "events/s",
        "tidings": tidings_s,
        "baselines": [es_s, raw_s],
        "ratio": vs_es,
        "target": ">= 1.5x eventsourcing; >= 0.7x raw sqlite3",
        "met": vs_es >= 1.5 and vs_raw >= 0.7,
        "notes": [
            f"vs eventsourcing: {verdict(vs_es, 1.5)}",
            f"vs raw sqlite3: {verdict(vs_raw, 0.7)}",
            f"{count} transactions per contender per round, {rounds} round(s); each tx: tidings and raw sqlite3 "
            "write an app row, an event and an outbox row; eventsourcing saves one aggregate with one new event "
            "(its event row only: no app row, no outbox)",
            *common,
        ],
    }


def row_append_100(rounds: int, count: int, warmup: bool, common: list[str]) -> dict[str, Any]:
    t, es = measure([tidings_run, eventsourcing_run], rounds, count, 100, warmup)
    tidings_s = series("tidings (Python)", t)
    es_s = series("eventsourcing (SQLite, WAL, synchronous=NORMAL)", es)
    ratio = tidings_s["median"] / es_s["median"]
    return {
        "key": "python_append_100",
        "title": "Python append, 100 events/tx",
        "unit": "events/s",
        "tidings": tidings_s,
        "baselines": [es_s],
        "ratio": ratio,
        "target": ">= 1.2x",
        "met": ratio >= 1.2,
        "notes": [
            f"{count} transactions of 100 events per contender per round, {rounds} round(s), all 100 events on "
            "one stream; tidings: one store.transaction() with an app row and one tx.append_many of the 100 "
            "events; eventsourcing: one app.save() of one aggregate "
            "holding 100 pending events (one SQLite transaction, one INSERT per event)",
            *common,
        ],
    }


ROWS = {"python_append_1": row_append_1, "python_append_100": row_append_100}


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the rows run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 3 unless --quick)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("target/compare"))
    parser.add_argument("rows", nargs="*", metavar="ROW", help="only the rows whose key starts with one of these")
    args = parser.parse_args(argv)
    rounds = max(args.rounds, 1 if args.quick else 3)
    sizes = {"python_append_1": 100 if args.quick else 5_000, "python_append_100": 5 if args.quick else 200}

    common = [
        "durability: tidings durability='normal' (WAL, synchronous=NORMAL); eventsourcing and raw sqlite3 at WAL "
        "+ synchronous=NORMAL too (eventsourcing sets WAL itself and leaves synchronous at SQLite's default FULL; "
        "its SQLite factory is subclassed to set NORMAL on each connection)",
        f"Python {sys.version.split()[0]}, eventsourcing {importlib.metadata.version('eventsourcing')}, "
        f"tidings {tidings.__version__}; "
        f"SQLite {tidings_sqlite_version()} in tidings, {sqlite3.sqlite_version} in Python's sqlite3",
    ]
    if args.quick:
        common.append("--quick: tiny sizes; the figures mean nothing")

    rows = []
    for key, make in ROWS.items():
        if args.rows and not any(key.startswith(r) for r in args.rows):
            continue
        rows.append(make(rounds, sizes[key], not args.quick, common))

    for row in rows:
        print(f"{row['title']}  [{row['key']}]")
        for s in [row["tidings"], *row["baselines"]]:
            print(f"  {s['name']:<50} {s['median']:>10.0f} {row['unit']}")
        print(f"  target {row['target']}: {'met' if row['met'] else 'MISSED'}")
        for note in row["notes"]:
            if note.startswith("vs "):
                print(f"  {note}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "python.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
