"""The commit watcher behind ``tidings.aio``'s long-polls: one thread per (store, event loop)
that waits for this process's commits and wakes every coroutine of that loop waiting for one.

A waiting coroutine holds an ``asyncio`` future, not a thread: a thousand ``read_all``
iterators at the end of the log cost one thread. The thread runs only while some coroutine
waits, and leaves within ``_IDLE_CHECK`` seconds of the last one leaving. Other processes'
commits do not wake it: a waiter re-reads at least every ``poll_interval`` for those
(``tidings.aio`` does).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Optional

from ._tidings import Store

_IDLE_CHECK = 1.0
"""Longest the thread waits for a commit before it looks whether anyone still waits."""


class CommitWatcher:
    """Wakes the coroutines of one event loop when this process commits on one store."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        """Watches ``store`` for the coroutines of ``loop`` (no thread until one waits)."""
        self._store = store
        self._loop = loop
        self._futures: set[asyncio.Future[None]] = set()
        self._lock = threading.Lock()
        self._waiting = 0
        self._thread: Optional[threading.Thread] = None

    async def wait(self, seen: int, timeout: float) -> None:
        """Returns once the store's commit count (``Store._commit_count``) is past ``seen``, or
        after ``timeout`` seconds, whichever comes first. Must run on the watcher's loop."""
        if self._store._commit_count() != seen:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._futures.add(future)
        self._started(seen)
        try:
            await asyncio.wait({future}, timeout=timeout)
        finally:
            self._futures.discard(future)
            future.cancel()
            with self._lock:
                self._waiting -= 1

    def _started(self, seen: int) -> None:
        """Counts one more waiter and starts the thread if none runs. The thread starts from
        ``seen``, which the caller just checked is current, so no commit is missed."""
        with self._lock:
            self._waiting += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(seen,), name="tidings-aio-commits", daemon=True
                )
                self._thread.start()

    def _run(self, seen: int) -> None:
        """The thread: waits for commits (GIL released) and wakes the loop's waiters at each."""
        while True:
            with self._lock:
                if self._waiting == 0:
                    self._thread = None
                    return
            try:
                count: Optional[int] = self._store._wait_for_commit(seen, _IDLE_CHECK)
            except Exception:  # noqa: BLE001 - the waiters re-read, and see the store's error
                count = None
            if count == seen:
                continue
            try:
                self._loop.call_soon_threadsafe(self._wake)
            except RuntimeError:  # the loop is closed: nobody is left to wake
                count = None
            if count is None:
                with self._lock:
                    self._thread = None
                return
            seen = count

    def _wake(self) -> None:
        """On the loop: resolves every waiting future."""
        for future in list(self._futures):
            if not future.done():
                future.set_result(None)
