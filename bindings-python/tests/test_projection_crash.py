"""A projection run in a child process killed with SIGKILL at random moments and restarted
(the Rust suite has the 100,000-event version): the read model equals the one an
uninterrupted run builds, and no event was applied twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tidings

CHILD = Path(__file__).resolve().parent / "projection_child.py"
SCHEMA = """
CREATE TABLE balances (account TEXT PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE applied (position INTEGER NOT NULL);
"""
EVENTS = 3000


def fill(path: Path) -> None:
    rng = random.Random(20)
    with tidings.Store(path) as store:
        store.executescript(SCHEMA)
        for start in range(0, EVENTS, 500):
            with store.transaction() as tx:
                for n in range(start, start + 500):
                    tx.append(f"account-{rng.randrange(40)}", "account.deposited", {"amount": rng.randrange(1, 100)})
                    if n % 7 == 0:
                        tx.append("audit", "audit.noted", {"amount": 10_000})  # not matching


def child(path: Path, pause: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(path), str(pause)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_model(path: Path) -> tuple[list[Any], list[Any], int]:
    with tidings.Store(path) as store:
        balances = [tuple(r) for r in store.query("SELECT account, total FROM balances ORDER BY account")]
        twice = [tuple(r) for r in store.query("SELECT position FROM applied GROUP BY position HAVING COUNT(*) > 1")]
        applied = int(store.query("SELECT COUNT(*) FROM applied")[0][0])  # type: ignore[arg-type]
    return balances, twice, applied


def test_kill_9_and_restart_builds_the_uninterrupted_read_model(tmp_path: Path) -> None:
    plain, killed = tmp_path / "plain.db", tmp_path / "killed.db"
    fill(plain)
    fill(killed)

    done = child(plain, 0.0)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert out.splitlines()[-1] == "caught up"

    rng = random.Random()
    positions: list[int] = []
    for _ in range(5):
        proc = child(killed, 0.02)
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.1, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with tidings.Store(killed) as store:
            positions.append(store.subscription_status("balances").position)
    with tidings.Store(killed) as store:
        head = store.last_position()
    assert positions == sorted(positions), "the position never goes back"
    assert positions[0] < head, "the first kill landed before the projection finished"
    assert positions[-1] > 0, "the runs made progress between kills"

    last = child(killed, 0.0)
    out, err = last.communicate(timeout=120)
    assert last.returncode == 0, err

    expected = read_model(plain)
    got = read_model(killed)
    assert got == expected
    balances, twice, applied = got
    assert twice == [] and applied == EVENTS and len(balances) == 40


STANDBY = Path(__file__).resolve().parent / "standby_child.py"


def start_standby(path: Path, until: int) -> subprocess.Popen[str]:
    """A ``standby_child.py`` on ``path`` that has subscribed (it printed ``standby``)."""
    proc = subprocess.Popen(
        [sys.executable, str(STANDBY), str(path), str(until)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line == "standby\n", proc.stderr.read()
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The rest of a child's output, through the buffered readers ``readline`` used."""
    assert proc.stdout is not None and proc.stderr is not None
    with proc.stdout, proc.stderr:
        return proc.stdout.read(), proc.stderr.read()


def test_a_second_process_stands_by_and_takes_over_after_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "handover.db"
    # Both children subscribe before there are events: a process opening the store while
    # another's handler holds the writer in every batch could wait past its busy timeout.
    with tidings.Store(path) as store:
        store.execute("CREATE TABLE applied (position INTEGER NOT NULL, pid INTEGER NOT NULL)")
        first = start_standby(path, 1000)
        second = start_standby(path, 1000)
        try:
            assert first.stdout is not None and first.stdout.readline() == "active\n"
            store.append_many("s", [{"type": "t.happened", "data": {"n": n}} for n in range(1000)])
            time.sleep(0.3)
            pids = {int(r[0]) for r in store.query("SELECT DISTINCT pid FROM applied")}  # type: ignore[arg-type]
            os.kill(first.pid, signal.SIGKILL)
            assert store.subscription_status("balances").position < 1000, "killed mid-way"
            assert pids == {first.pid}, "only the active process applies events"
            finish(first)
            assert first.wait(timeout=30) == -signal.SIGKILL
            began = time.monotonic()
            assert second.stdout is not None and second.stdout.readline() == "active\n"
            assert time.monotonic() - began < 5.0, "the standby took over within seconds"
            rest, err = finish(second)
            assert second.wait(timeout=120) == 0 and rest == "caught up\n", err
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.kill()
                    finish(proc)
                    proc.wait()
        counts = store.query("SELECT COUNT(*), COUNT(DISTINCT position), COUNT(DISTINCT pid) FROM applied")[0]
    assert tuple(counts) == (1000, 1000, 2)
