"""NATS JetStream against a real nats-server (the ``nats_server`` fixture): endpoints whose URL
is ``nats://`` publish each event to a JetStream stream, and ``Store.relay_in`` consumes a
stream into another store's log exactly once. The test creates and reads the streams with
nats-py."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import nats.js
import pytest
from conftest import NatsServer, wait_until
from nats.js.api import RawStreamMsg, StreamInfo

import tidings

# Passes core's check of a `.creds` file (a user JWT and an NKey seed); never sent anywhere.
FAKE_CREDS = """-----BEGIN NATS USER JWT-----
eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.not-a-real-jwt.c2lnbmF0dXJl
------END NATS USER JWT------

-----BEGIN USER NKEY SEED-----
SUAIBDPBAUTWCWBKIO6XHQNINK5FWJW4OHLXC3HQ2KFE4PEJUA44CNHTC4
------END USER NKEY SEED------
"""


def add_stream(server: NatsServer, name: str, subjects: list[str]) -> None:
    async def add(js: nats.js.JetStreamContext) -> StreamInfo:
        return await js.add_stream(name=name, subjects=subjects)

    server.jetstream(add)


def messages(server: NatsServer, stream: str) -> list[RawStreamMsg]:
    """Every message of ``stream``, in order."""

    async def read(js: nats.js.JetStreamContext) -> list[RawStreamMsg]:
        info = await js.stream_info(stream)
        count = info.state.messages
        return [await js.get_msg(stream, seq) for seq in range(1, count + 1)]

    return server.jetstream(read)


def deliver_orders(server: NatsServer, path: Path, count: int) -> list[tidings.Event]:
    """A store at ``path`` appends ``count`` order events and delivers them to ``server``'s
    stream ORDERS (subjects ``orders.>``), which this creates."""
    add_stream(server, "ORDERS", ["orders.>"])
    with tidings.Store(path, allow_private=True) as store:
        endpoint = store.create_endpoint(server.url, events=["order.*"], subject="orders.{stream}")
        events = [store.append(f"order-{i}", "order.created", {"n": i}, metadata={"by": "test"}) for i in range(count)]
        store.append("user-1", "user.created", {})  # not the endpoint's
        with store.start_delivery() as delivery:
            assert delivery.drain(30.0)
        records = store.deliveries(endpoint_id=endpoint.id)
        assert sorted(r.state for r in records) == ["succeeded"] * count
    return events


def test_endpoint_publishes_each_event_to_jetstream(tmp_path: Path, nats_server: NatsServer) -> None:
    events = deliver_orders(nats_server, tmp_path / "a.db", 5)
    published = messages(nats_server, "ORDERS")
    assert len(published) == len(events)
    by_id = {m.headers["Nats-Msg-Id"]: m for m in published if m.headers}
    assert set(by_id) == {e.id for e in events}
    for event in events:
        assert by_id[event.id].subject == f"orders.{event.stream}"


def test_endpoint_subject_is_stored_updated_and_checked(tmp_path: Path) -> None:
    url = "nats://127.0.0.1:4222"  # creating an endpoint contacts nothing
    with tidings.Store(tmp_path / "a.db", allow_private=True) as store:
        endpoint = store.create_endpoint(url, subject="orders.{tenant}.{partition:8}")
        assert endpoint.subject == "orders.{tenant}.{partition:8}"
        assert store.create_endpoint(url).subject is None  # core's default, tidings.{type}
        with pytest.raises(tidings.InvalidInputError) as bad:
            store.create_endpoint(url, subject="orders.>")
        assert bad.value.field == "subject"
        with pytest.raises(tidings.InvalidInputError) as webhook:
            store.create_endpoint("https://hooks.example.com/in", subject="orders.{type}")
        assert webhook.value.field == "subject"
        assert len(store.list_endpoints()) == 2  # the refused ones created nothing

        with pytest.raises(tidings.InvalidInputError):
            store.update_endpoint(endpoint.id, subject="orders.*")
        assert store.get_endpoint(endpoint.id).subject == "orders.{tenant}.{partition:8}"
        assert store.update_endpoint(endpoint.id, subject="orders.{stream}").subject == "orders.{stream}"
        assert store.update_endpoint(endpoint.id, subject=None).subject is None

        named, created = store.upsert_endpoint(url, name="bus", subject="bus.{type}")
        assert created and named.subject == "bus.{type}"
        with store.transaction() as tx:
            assert tx.create_endpoint(url, subject="tx.{type}").subject == "tx.{type}"


def test_nats_credentials_are_redacted_and_checked(tmp_path: Path) -> None:
    creds = tidings.NatsCredentials(FAKE_CREDS)
    assert repr(creds) == "NatsCredentials(<redacted>)"
    assert creds.creds == FAKE_CREDS
    with tidings.Store(tmp_path / "a.db", allow_private=True) as store:
        endpoint = store.create_endpoint("nats://127.0.0.1:4222", auth=creds)
        assert endpoint.auth == creds
        for shown in (repr(endpoint), repr(endpoint.auth), str(store.list_endpoints())):
            assert "NKEY" not in shown and "SUAIB" not in shown and "eyJ0" not in shown
        assert store.create_endpoint("nats://127.0.0.1:4222", auth=tidings.Bearer("t0ken")).auth == tidings.Bearer("t0ken")

        with pytest.raises(tidings.InvalidInputError) as not_creds:
            store.create_endpoint("nats://127.0.0.1:4222", auth=tidings.NatsCredentials("not a creds file"))
        assert not_creds.value.field == "auth" and "not a creds file" not in str(not_creds.value)
        with pytest.raises(tidings.InvalidInputError) as on_webhook:
            store.create_endpoint("https://hooks.example.com/in", auth=creds)
        assert on_webhook.value.field == "auth"
        cleared = store.update_endpoint(endpoint.id, auth=None)
        assert cleared.auth is None
        assert len(store.list_endpoints()) == 2


def test_relay_in_appends_each_message_once_with_the_handlers_rows(tmp_path: Path, nats_server: NatsServer) -> None:
    events = deliver_orders(nats_server, tmp_path / "a.db", 6)
    with tidings.Store(tmp_path / "b.db", allow_private=True) as store:
        store.execute("CREATE TABLE seen (event_id TEXT PRIMARY KEY, stream TEXT, n INTEGER)")

        def handler(tx: tidings.Transaction, new: list[tidings.Event]) -> None:
            for event in new:
                tx.execute("INSERT INTO seen VALUES (?, ?, ?)", (event.id, event.stream, event.data["n"]))

        with store.relay_in(nats_server.url, "ORDERS", "warehouse", handler, batch=4) as inbox:
            assert wait_until(lambda: inbox.status().appended == len(events))
            status = inbox.status()
            assert (status.duplicates, status.rejected, status.last_error, status.running) == (0, 0, None, True)
            assert repr(status).startswith("InboxStatus(appended=6, duplicates=0, rejected=0, last_error=None")
        assert not inbox.status().running

        # In the order JetStream got them (the endpoint is not `ordered`), each once.
        relayed = {e.id: e for e in store.read_all()}
        assert len(relayed) == len(events) == len(store.read_all())
        for theirs in events:
            mine = relayed[theirs.id]
            assert (mine.stream, mine.type, mine.data) == (theirs.stream, theirs.type, theirs.data)
            assert mine.metadata["by"] == "test"
        rows = store.query("SELECT event_id, stream, n FROM seen ORDER BY n")
        assert [tuple(r) for r in rows] == [(e.id, e.stream, e.data["n"]) for e in events]

        # Another consumer reads the same messages: every event is already in the log.
        with store.relay_in(nats_server.url, "ORDERS", "audit", handler) as again:
            assert wait_until(lambda: again.status().duplicates == len(events))
            assert again.status().appended == 0
        assert len(store.read_all()) == len(events)
        assert store.query("SELECT count(*) FROM seen")[0][0] == len(events)


def test_relay_in_handler_failure_rolls_the_batch_back(tmp_path: Path, nats_server: NatsServer) -> None:
    deliver_orders(nats_server, tmp_path / "a.db", 2)
    with tidings.Store(tmp_path / "b.db", allow_private=True) as store:

        def handler(tx: tidings.Transaction, new: list[tidings.Event]) -> None:
            raise RuntimeError("not today")

        # ack_wait=1.0: the server redelivers the messages of a rolled-back batch a second later.
        with store.relay_in(nats_server.url, "ORDERS", "failing", handler, ack_wait=1.0) as inbox:
            assert wait_until(lambda: "RuntimeError: not today" in (inbox.status().last_error or ""))
            assert inbox.status().appended == 0
        assert store.read_all() == []
        # Without a handler the same consumer's messages go into the log.
        with store.relay_in(nats_server.url, "ORDERS", "failing") as inbox:
            assert wait_until(lambda: inbox.status().appended == 2)
        assert len(store.read_all()) == 2


def test_relay_in_checks_its_arguments(tmp_path: Path) -> None:
    url = "nats://127.0.0.1:4222"
    with tidings.Store(tmp_path / "a.db", allow_private=True) as store:
        cases: list[tuple[str, Callable[[], object]]] = [
            ("url", lambda: store.relay_in("https://example.com", "S", "c")),
            ("stream", lambda: store.relay_in(url, "a.b", "c")),
            ("consumer", lambda: store.relay_in(url, "S", "")),
            ("batch", lambda: store.relay_in(url, "S", "c", batch=0)),
            ("ack_wait", lambda: store.relay_in(url, "S", "c", ack_wait=0.1)),
            ("handler", lambda: store.relay_in(url, "S", "c", 42)),  # type: ignore[arg-type]
            ("auth", lambda: store.relay_in(url, "S", "c", auth="token")),  # type: ignore[arg-type]
        ]
        for field, call in cases:
            with pytest.raises(tidings.InvalidInputError) as bad:
                call()
            assert bad.value.field == field, field
