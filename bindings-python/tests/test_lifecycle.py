"""Lifecycle: ``close()`` stops the engine first, Ctrl-C ends the blocking waits, a forked child
refuses the parent's store and engine, and a transaction dropped open warns.

The Ctrl-C and fork cases run in a child Python process: SIGINT reaches that process's main
thread, and forking is done away from pytest's own threads.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Receiver

import tidings


def test_close_stops_the_engine_first(
    db_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tidings")
    receiver.hold.add("/slow")
    store = tidings.Store(db_path, allow_private=True)
    ep = store.create_endpoint(receiver.url("/slow"))
    store.append("s", "a.b", {})
    engine = store.start_delivery(workers=1)
    assert receiver.arrived.wait(30), "the request is in flight"
    threading.Timer(0.3, receiver.gate.set).start()  # answered within the engine's grace
    store.close()
    assert not engine.running
    engine.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "could not record" in m], messages
    with tidings.Store(db_path) as reopened:
        [record] = reopened.deliveries(endpoint_id=ep.id)
        assert (record.state, record.last_status_code) == ("succeeded", 200)


WAITS = {
    "read_all": "store.read_all(from_position=store.last_position() + 1, wait=30.0)",
    "wait_idle": "engine.wait_idle(30.0)",
    "drain": "engine.drain(30.0)",
    "wait_for_position": "store.subscribe('s', lambda tx, events: None).wait_for_position(10**6, 30.0)",
}

CHILD = """
import signal, socket, sys, tidings
# Ctrl-C as a terminal delivers it, whatever this process inherited (a shell runs background
# jobs with SIGINT ignored, and Python then keeps it ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
store = tidings.Store(sys.argv[1], allow_private=True)
# A receiver that accepts connections and never answers: the delivery stays in flight.
silent = socket.create_server(("127.0.0.1", 0))
store.create_endpoint(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", timeout=120.0)
store.append("s", "a.b", {})
engine = store.start_delivery(workers=1)
print("waiting", flush=True)
try:
    WAIT
finally:
    engine.stop(0.0)
"""


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_ctrl_c_ends_a_blocking_wait(tmp_path: Path, db_path: Path, wait: str) -> None:
    script = tmp_path / "child.py"  # a file, so the traceback shows the line it was in
    script.write_text(CHILD.replace("WAIT", WAITS[wait]), encoding="utf-8")
    child = subprocess.Popen(
        [sys.executable, str(script), str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "waiting\n"
        time.sleep(1.0)  # inside the 30 s wait by now
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
        took = time.monotonic() - interrupted
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
    assert child.returncode != 0
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert WAITS[wait] in stderr, "interrupted inside the wait"
    assert took < 5.0


FORK = """
import json, os, sys, time, tidings
store = tidings.Store(sys.argv[1], allow_private=True)
store.append("s", "a.b", {})
engine = store.start_delivery(workers=1)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    seen = {"running": engine.running}
    for name, call in [
        ("append", lambda: store.append("s", "a.b", {})),
        ("read", lambda: store.read_stream("s")),
        ("transaction", lambda: store.transaction()),
    ]:
        try:
            call()
            seen[name] = "worked"
        except tidings.Error as err:
            seen[name] = [type(err).__name__, isinstance(err, tidings.ClosedError), str(err)]
    started = time.monotonic()
    engine.stop(5.0)  # returns at once: the engine's threads are the parent's
    seen["stop took"] = time.monotonic() - started
    os.write(write, json.dumps(seen).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read) as pipe:
    seen = json.loads(pipe.read())
os.waitpid(pid, 0)
seen["parent"] = store.append("s", "a.b", {}).version
seen["parent running"] = engine.running
engine.stop()
store.close()
print(json.dumps(seen))
"""


def test_a_forked_child_refuses_the_parents_store_and_engine(db_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", FORK, str(db_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["running"] is False
    for name in ("append", "read", "transaction"):
        kind, closed, message = seen[name]
        assert (kind, closed) == ("ForkedError", True), seen
        assert "open it again" in message
    assert seen["stop took"] < 1.0
    assert (seen["parent"], seen["parent running"]) == (2, True), "the parent's store and engine go on"


def test_a_transaction_dropped_open_warns_and_rolls_back(store: tidings.Store) -> None:
    store.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    tx = store.begin()
    tx.execute("INSERT INTO orders (id) VALUES (1)")
    with pytest.warns(ResourceWarning, match="garbage collected while open"):
        del tx
        gc.collect()
    assert store.query("SELECT count(*) FROM orders")[0][0] == 0
    store.execute("INSERT INTO orders (id) VALUES (2)")  # the writer is free
    # A finished transaction does not warn (pytest's filter turns a warning into an error).
    finished = store.begin()
    finished.rollback()
    del finished
    gc.collect()
