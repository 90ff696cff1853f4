"""The Python rows of issue 20: projecting a backlog into a read model with a checkpoint per
batch, and loading a long aggregate, tidings' Python package against `eventsourcing`, in one
process, round after round.

    python benches/compare/python_projection.py [--quick] [--rounds N] [--out DIR] [ROW...]

Rows (the shape of `compare.json`), written to `DIR/python_projection.json`:

- `python_projection_100k`: 100,000 `order.created` events (appended first, outside the clock,
  round-robin over 1,000 streams) projected into `order_totals` (one upsert per event, keyed
  by stream: orders counted, `total` summed from the event's data), the checkpoint committed
  with the writes. tidings: `Store.subscribe` with batches of 256, timed until its position
  passed the last event. eventsourcing: a `Projection` whose view is a `SQLiteTrackingRecorder`
  subclass (its documented way to keep a materialised view with tracking records), fed by
  pulling the application's notifications 256 at a time and converting them with the
  application's mapper. eventsourcing's `ProjectionRunner` needs a recorder that supports
  `subscribe()`, which its SQLite recorder does not (it raises `NotImplementedError` in
  9.5.6), so the pull loop stands in for the runner. Two eventsourcing contenders: *batched*
  (one transaction per 256 events with the last event's tracking record: the same checkpoint
  per batch as tidings; the flush rule knows the end of the backlog, which a live runner does
  not, so it favours eventsourcing) and *per event* (one transaction per event with its
  tracking record: what `Projection.process_event` is shaped for).
- `python_aggregate_load_1000` and `python_aggregate_load_1000_snapshot`: an aggregate of 1,000
  events loaded by id, without a snapshot and with one at its last version: tidings'
  `Repository.get` against eventsourcing's `app.repository.get` (its snapshot taken with
  `app.take_snapshot`, tidings' saved by `snapshot_every=1000`). Loads per second.

Durability: WAL and `synchronous = NORMAL` for every contender (tidings `durability="normal"`;
eventsourcing through the factory subclass of python_append.py, which checks it took).
`--quick` runs tiny sizes, to check that the rows run; its figures mean nothing.

The tidings side needs the Python package's `Store.subscribe` and `tidings.Repository`; a
build without them skips those rows with a note instead of failing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Optional

import tidings
from eventsourcing.application import Application
from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder

from python_append import METADATA, STREAMS, NormalSyncSQLiteFactory, Order, event_data, eventsourcing_app

BATCH = 256
"""Events per transaction (tidings' default batch size)."""

NAME = "order-totals"

READ_MODEL = "CREATE TABLE IF NOT EXISTS order_totals (stream TEXT PRIMARY KEY, orders INTEGER NOT NULL, total REAL NOT NULL)"

UPSERT = (
    "INSERT INTO order_totals (stream, orders, total) VALUES (?, 1, ?) "
    "ON CONFLICT (stream) DO UPDATE SET orders = orders + 1, total = total + excluded.total"
)


def copy_sqlite(template: pathlib.Path, target: pathlib.Path) -> None:
    """Copies a closed SQLite file with its WAL (if any)."""
    for suffix in ("", "-wal"):
        source = pathlib.Path(str(template) + suffix)
        if source.exists():
            shutil.copyfile(source, pathlib.Path(str(target) + suffix))


def check_read_model(rows: list[Any], events: int) -> None:
    streams, orders, total = rows[0]
    assert orders == events, f"{orders} events projected, not {events}"
    assert streams == min(events, STREAMS), f"{streams} read-model rows"
    assert abs(total - 99.5 * events) < 1e-6 * events, f"total {total}"


SUMS = "SELECT count(*), coalesce(sum(orders), 0), coalesce(sum(total), 0) FROM order_totals"


# --- tidings -------------------------------------------------------------------------------


def tidings_has_projections() -> bool:
    return hasattr(tidings.Store, "subscribe")


def tidings_has_repository() -> bool:
    return hasattr(tidings, "Repository") and hasattr(tidings, "Aggregate")


def tidings_template(directory: pathlib.Path, events: int) -> pathlib.Path:
    path = directory / "tidings-template.db"
    with tidings.Store(path, durability="normal") as store:
        store.execute(READ_MODEL)
        n = 0
        while n < events:
            end = min(n + 1_000, events)
            with store.transaction() as tx:
                for i in range(n, end):
                    tx.append(f"order-{i % STREAMS}", "order.created", event_data(i), metadata=METADATA)
            n = end
        assert store.last_position() == events
    return path


def tidings_projection(template: pathlib.Path, directory: pathlib.Path, events: int) -> float:
    """`Store.subscribe` over a copy of the template; events/s from the call until its position
    passed the last event."""
    path = directory / "run.db"
    copy_sqlite(template, path)
    with tidings.Store(path, durability="normal") as store:

        def handler(tx: Any, batch: Any) -> None:
            for event in batch:
                tx.execute(UPSERT, (event.stream, event.data["total"]))

        start = time.perf_counter()
        subscription = store.subscribe(NAME, handler, types=["order.*"], batch_size=BATCH)
        try:
            assert subscription.wait_for_position(events, timeout=600), "the projection stalled"
            elapsed = time.perf_counter() - start
        finally:
            subscription.stop()
        check_read_model(store.query(SUMS), events)
    return events / elapsed


# --- eventsourcing -------------------------------------------------------------------------


class OrderTotalsView(SQLiteTrackingRecorder):
    """A materialised view in eventsourcing's idiom: a tracking recorder with the view's table
    and methods that write it and the tracking record in one transaction."""

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), READ_MODEL]

    def add(self, rows: list[tuple[str, float]], tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for row in rows:
                cursor.execute(UPSERT, row)
            self._insert_tracking(cursor, tracking)

    def sums(self) -> list[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(SUMS)
            return [tuple(cursor.fetchone())]


class OrderTotals(Projection[OrderTotalsView]):
    """Per event: the upsert and its tracking record, one transaction (`batch` is None); or,
    batched, kept until `batch` events or the last one, then written with the last tracking."""

    batch: Optional[int] = None
    last: int = 0

    def __init__(self, view: OrderTotalsView) -> None:
        super().__init__(view)
        self.pending: list[tuple[str, float]] = []

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        row = (str(domain_event.originator_id), domain_event.data["total"])
        if self.batch is None:
            self.view.add([row], tracking)
            return
        self.pending.append(row)
        if len(self.pending) >= self.batch or tracking.notification_id >= self.last:
            self.view.add(self.pending, tracking)
            self.pending = []


def es_env(path: pathlib.Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": f"{NormalSyncSQLiteFactory.__module__}:{NormalSyncSQLiteFactory.__qualname__}",
        "SQLITE_DBNAME": str(path),
    }


def es_template(directory: pathlib.Path, events: int) -> pathlib.Path:
    """The same events in an eventsourcing application: 1,000 `Order` aggregates, each round of
    1,000 events saved in one transaction."""
    app = eventsourcing_app(directory)
    orders: list[Optional[Order]] = [None] * STREAMS
    n = 0
    while n < events:
        end = min(n + STREAMS, events)
        for i in range(n, end):
            order = orders[i % STREAMS]
            if order is None:
                orders[i % STREAMS] = Order(event_data(i), METADATA)
            else:
                order.place(event_data(i), METADATA)
        app.save(*[o for o in orders if o is not None])
        n = end
    assert app.recorder.max_notification_id() == events  # type: ignore[attr-defined]
    app.close()
    return directory / "eventsourcing.db"


def es_projection(batched: bool) -> Callable[[pathlib.Path, pathlib.Path, int], float]:
    def run(template: pathlib.Path, directory: pathlib.Path, events: int) -> float:
        path = directory / "eventsourcing.db"
        copy_sqlite(template, path)
        app = Application(env=es_env(path))
        view = NormalSyncSQLiteFactory(es_env(path)).tracking_recorder(OrderTotalsView)
        assert isinstance(view, OrderTotalsView)
        projection = OrderTotals(view)
        projection.batch = BATCH if batched else None
        projection.last = events
        recorder = app.recorder
        start = time.perf_counter()
        # What eventsourcing's runner does through a subscription, pulled by hand (its SQLite
        # recorder has no subscribe()): notifications after the view's tracking position.
        position = view.max_tracking_id(app.name) or 0
        while position < events:
            notifications = recorder.select_notifications(  # type: ignore[attr-defined]
                position, BATCH, inclusive_of_start=False
            )
            for notification in notifications:
                domain_event = app.mapper.to_domain_event(notification)
                projection.process_event(domain_event, Tracking(app.name, notification.id))
                position = notification.id
        elapsed = time.perf_counter() - start
        check_read_model(view.sums(), events)
        app.close()
        return events / elapsed

    return run


# --- aggregates ----------------------------------------------------------------------------


def tidings_aggregate_class() -> Any:
    class TidingsOrder(tidings.Aggregate):  # type: ignore[misc, name-defined]
        """An order stream's events folded into a count and a total."""

        stream_prefix = "order"

        def __init__(self) -> None:
            self.orders = 0
            self.total = 0.0

        def place(self, data: dict[str, Any]) -> None:
            self.record("order.created", data)

        @tidings.applies("order.created")  # type: ignore[attr-defined, untyped-decorator]
        def _created(self, data: dict[str, Any]) -> None:
            self.orders += 1
            self.total += data["total"]

    return TidingsOrder


def tidings_load(directory: pathlib.Path, events: int, snapshot: bool, loads: int) -> float:
    """Loads per second of one aggregate of `events` events, with `Repository.get`; with
    `snapshot`, the repository's policy snapshots it at its last version as it is saved."""
    order_class = tidings_aggregate_class()
    with tidings.Store(directory / "tidings.db", durability="normal") as store:
        repository = tidings.Repository(  # type: ignore[attr-defined]
            store, order_class, snapshot_every=events if snapshot else None
        )
        order = repository.get("1")
        for i in range(events):
            order.place(event_data(i))
        repository.save(order)
        assert (store.load_snapshot("order-1") is not None) == snapshot
        assert repository.get("1").orders == events
        start = time.perf_counter()
        for _ in range(loads):
            repository.get("1")
        return loads / (time.perf_counter() - start)


def es_load(directory: pathlib.Path, events: int, snapshot: bool, loads: int) -> float:
    """Loads per second of one aggregate of `events` events, with `app.repository.get`."""
    path = directory / "eventsourcing.db"
    env = es_env(path)
    if snapshot:
        env["IS_SNAPSHOTTING_ENABLED"] = "y"
    app = Application(env=env)
    order = Order(event_data(0), METADATA)
    for i in range(1, events):
        order.place(event_data(i), METADATA)
    app.save(order)
    if snapshot:
        app.take_snapshot(order.id)
    assert app.repository.get(order.id).events == events
    start = time.perf_counter()
    for _ in range(loads):
        app.repository.get(order.id)
    rate = loads / (time.perf_counter() - start)
    app.close()
    return rate


# --- rows ----------------------------------------------------------------------------------


def series(name: str, samples: list[float]) -> dict[str, Any]:
    return {"name": name, "samples": samples, "median": statistics.median(samples)}


def alternate(contenders: list[Callable[[pathlib.Path], float]], rounds: int) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in contenders]
    for r in range(rounds):
        order = list(range(len(contenders)))
        if r % 2 == 1:
            order.reverse()
        for who in order:
            with tempfile.TemporaryDirectory(prefix="compare-py-") as d:
                samples[who].append(contenders[who](pathlib.Path(d)))
    return samples


def skipped(key: str, title: str, why: str) -> dict[str, Any]:
    """Prints why a row did not run; the row is left out of the results."""
    print(f"{title}  [{key}]\n  skipped: {why}")
    return {}


def row_projection(rounds: int, events: int, common: list[str]) -> dict[str, Any]:
    key, title = "python_projection_100k", f"Python projection of {events} events, checkpoint per batch"
    if not tidings_has_projections():
        return skipped(key, title, "this tidings build has no Store.subscribe")
    with tempfile.TemporaryDirectory(prefix="compare-py-templates-") as d:
        t_dir, es_dir = pathlib.Path(d) / "t", pathlib.Path(d) / "es"
        t_dir.mkdir()
        es_dir.mkdir()
        t_template, es_template_path = tidings_template(t_dir, events), es_template(es_dir, events)
        contenders = [
            lambda p: tidings_projection(t_template, p, events),
            lambda p: es_projection(True)(es_template_path, p, events),
            lambda p: es_projection(False)(es_template_path, p, events),
        ]
        t, es_batched, es_single = alternate(contenders, rounds)
    tidings_s = series("tidings (Python) subscribe", t)
    batched_s = series(f"eventsourcing Projection, {BATCH} events per transaction", es_batched)
    single_s = series("eventsourcing Projection, one transaction per event", es_single)
    ratio = tidings_s["median"] / batched_s["median"]
    return {
        "key": key,
        "title": title,
        "unit": "events/s",
        "tidings": tidings_s,
        "baselines": [batched_s, single_s],
        "ratio": ratio,
        "target": ">= 2x",
        "met": ratio >= 2.0,
        "notes": [
            f"vs eventsourcing batched: {ratio:.2f}x (target >= 2x: {'met' if ratio >= 2 else 'MISSED'}); "
            f"vs eventsourcing per event: {tidings_s['median'] / single_s['median']:.2f}x",
            f"{events} events appended first (outside the clock, 1,000 streams), copied from one template per "
            f"contender for each run; one upsert per event, checkpoint in the same transaction; {rounds} round(s)",
            "eventsourcing: a Projection with a SQLiteTrackingRecorder view, fed by select_notifications + "
            "mapper.to_domain_event (its ProjectionRunner needs subscribe(), which its SQLite recorder lacks); "
            "the batched variant flushes at 256 events or at the known last event, which favours it",
            *common,
        ],
    }


def row_aggregate(rounds: int, events: int, loads: int, common: list[str]) -> list[dict[str, Any]]:
    """Two rows: loads without a snapshot, and with one at the last version."""
    key, title = "python_aggregate_load_1000", f"Python load of an aggregate of {events} events"
    if not tidings_has_repository():
        skipped(key, title, "this tidings build has no tidings.Repository")
        return []
    contenders = [
        lambda p: tidings_load(p, events, False, loads),
        lambda p: es_load(p, events, False, loads),
        lambda p: tidings_load(p, events, True, loads * 10),
        lambda p: es_load(p, events, True, loads * 10),
    ]
    t, es, t_snap, es_snap = alternate(contenders, rounds)
    rows = []
    for suffix, label, count, mine, theirs in [
        ("", "no snapshot", loads, t, es),
        ("_snapshot", "snapshot at the last version", loads * 10, t_snap, es_snap),
    ]:
        tidings_s = series(f"tidings Repository.get, {label}", mine)
        es_s = series(f"eventsourcing repository.get, {label}", theirs)
        ratio = tidings_s["median"] / es_s["median"]
        rows.append(
            {
                "key": key + suffix,
                "title": f"{title}, {label}",
                "unit": "loads/s",
                "tidings": tidings_s,
                "baselines": [es_s],
                "ratio": ratio,
                "target": "report the ratio",
                "met": None,
                "notes": [
                    f"{label}: {ratio:.2f}x eventsourcing",
                    f"one stream of {events} events (the append rows' data; eventsourcing's events also carry the "
                    f"metadata, tidings' Aggregate.record writes none); {count} loads per run, {rounds} round(s); "
                    "tidings: snapshot_every=1000 saved it with the events; eventsourcing: app.take_snapshot",
                    *common,
                ],
            }
        )
    return rows


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the rows run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (at least 3 unless --quick)")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("target/compare"))
    parser.add_argument("rows", nargs="*", metavar="ROW", help="only the rows whose key starts with one of these")
    args = parser.parse_args(argv)
    rounds = max(args.rounds, 1 if args.quick else 3)
    wants = lambda key: not args.rows or any(key.startswith(r) for r in args.rows)  # noqa: E731

    common = [
        "durability: WAL + synchronous=NORMAL for every contender (eventsourcing's SQLite factory subclassed to "
        "set NORMAL, as in python_append.py)",
        f"Python {sys.version.split()[0]}, eventsourcing {importlib.metadata.version('eventsourcing')}, "
        f"tidings {tidings.__version__}",
    ]
    if args.quick:
        common.append("--quick: tiny sizes; the figures mean nothing")

    rows = []
    if wants("python_projection_100k"):
        rows.append(row_projection(rounds, 2_000 if args.quick else 100_000, common))
    if wants("python_aggregate_load_1000"):
        rows.extend(row_aggregate(rounds, 1_000, 3 if args.quick else 100, common))
    rows = [r for r in rows if r]

    for row in rows:
        print(f"{row['title']}  [{row['key']}]")
        for s in [row["tidings"], *row["baselines"]]:
            print(f"  {s['name']:<62} {s['median']:>10.0f} {row['unit']}")
        print(f"  target {row['target']}: {'-' if row['met'] is None else 'met' if row['met'] else 'MISSED'}")
        print(f"  {row['notes'][0]}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "python_projection.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
