"""Fixtures: a store on a temporary file, a webhook receiver on 127.0.0.1, a nats-server with
JetStream on 127.0.0.1, and a dump of the database taken by another process (the app must not
open the file with ``sqlite3`` in this process; see README)."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Optional, TypeVar

import nats
import nats.js

import pytest

import tidings


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver in this process: records every request and answers with ``status``
    and ``reply`` (per path, or the defaults) and the extra ``headers``. The first requests
    get the answers in ``script`` instead, in order: (status, extra headers) each. Requests to
    a path in ``hold`` wait for ``gate`` first."""

    port: int = 0
    status: int = 200
    reply: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    replies: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    hold: set[str] = field(default_factory=set)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def record(self, received: Received) -> tuple[int, bytes, dict[str, str]]:
        """Records a request and returns the answer to it: status, body, extra headers."""
        with self.changed:
            self.requests.append(received)
            self.changed.notify_all()
            if self.script:
                status, headers = self.script.pop(0)
                return status, self.reply, headers
        status, reply = self.replies.get(received.path, (self.status, self.reply))
        return status, reply, self.headers

    def wait_for(self, count: int, path: Optional[str] = None, timeout: float = 30.0) -> list[Received]:
        """The requests (to ``path``, if given) once there are at least ``count``."""

        def matching() -> list[Received]:
            return [r for r in self.requests if path is None or r.path == path]

        with self.changed:
            self.changed.wait_for(lambda: len(matching()) >= count, timeout)
            found = matching()
        assert len(found) >= count, f"expected {count} requests, got {len(found)}"
        return found


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if self.path in receiver.hold:
                receiver.arrived.set()
                receiver.gate.wait(60)
            status, reply, headers = receiver.record(received)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[tidings.Store]:
    with tidings.Store(db_path, source="test-host", allow_private=True) as s:
        yield s


_DUMP = """
import sqlite3, sys
conn = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for line in conn.iterdump():
    print(line)
conn.close()
"""


@pytest.fixture
def dump(db_path: Path) -> Callable[[], list[str]]:
    """The database as SQL text, read by a separate process."""

    def take() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", _DUMP, str(db_path)], check=True, capture_output=True, text=True, timeout=60
        )
        return out.stdout.splitlines()

    return take


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Polls ``predicate`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# The nats-server binary `.ci/install-nats` installs (TIDINGS_NATS_SERVER overrides it).
NATS_SERVER = Path(__file__).resolve().parents[2] / ".tools" / "nats" / "bin" / "nats-server"

T = TypeVar("T")


@dataclass
class NatsServer:
    """A nats-server with JetStream on ``127.0.0.1:port``, storing in a temporary directory."""

    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def jetstream(self, action: Callable[[nats.js.JetStreamContext], Awaitable[T]]) -> T:
        """Runs ``action`` with a JetStream context of a fresh connection (nats-py), and
        returns what it returns."""

        async def main() -> T:
            client = await nats.connect(self.url)
            try:
                return await action(client.jetstream())
            finally:
                await client.close()

        return asyncio.run(main())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """Starts ``nats-server -c CONF`` (JetStream on, a free loopback port) and kills it at the end."""
    binary = Path(os.environ.get("TIDINGS_NATS_SERVER") or NATS_SERVER)
    if not binary.is_file():
        pytest.fail(f"no nats-server at {binary}: run .ci/install-nats (or set TIDINGS_NATS_SERVER)")
    port = _free_port()
    store_dir = tmp_path / "nats-store"
    conf = tmp_path / "nats.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: {json.dumps(str(store_dir))} }}\n')
    log = (tmp_path / "nats.log").open("wb")
    process = subprocess.Popen([str(binary), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20.0
        while True:
            if process.poll() is not None:
                pytest.fail(f"nats-server exited ({process.returncode}): {(tmp_path / 'nats.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nats-server did not listen on 127.0.0.1:{port} within 20 s")
                time.sleep(0.05)
        yield NatsServer(port)
    finally:
        process.kill()
        process.wait(10)
        log.close()
