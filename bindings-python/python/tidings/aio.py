"""tidings for asyncio: an awaitable store, transactions that may await inside, a ``read_all``
that follows the log as an async iterator, and the delivery engine's waits as coroutines.

    import tidings.aio

    async def main() -> None:
        async with await tidings.aio.open("app.db") as store:
            async with store.transaction() as tx:
                tx.execute("INSERT INTO orders (ref) VALUES (?)", ("A-1",))
                await notify_somebody()          # awaiting inside is safe
                tx.append("order-A-1", "order.created", {"ref": "A-1"})
            async for event in store.read_all(wait=30.0):
                print(event.position, event.type)

How it works, and what that means for a caller:

- Calls that wait (opening, appends and other store-level writes, reads, commits) run in a
  thread pool with the GIL released; the event loop's thread never waits for SQLite's lock.
- ``async with store.transaction() as tx`` serialises the loop's own transactions with an
  ``asyncio.Lock`` (a coroutine waiting for its turn holds no thread), begins the SQLite
  transaction on a thread of its own and then gives it to the event loop's thread, and commits
  (or rolls back, when the block raises) on that thread again. ``tx`` is the ordinary
  :class:`tidings.Transaction`: its calls run at once on the loop's thread (the transaction
  already holds the writer, so none of them waits for a lock); from another thread they raise
  :class:`tidings.WrongThreadError`.
- While such a transaction is open, a *synchronous* store write on the loop's thread
  (``store.sync.append(...)``) raises :class:`tidings.TransactionOpenError` at once rather than
  block the loop; writes from other threads wait for the commit, as they do for any
  transaction. A store-level write (or a second transaction) awaited by the task that holds
  the transaction raises :class:`tidings.TransactionOpenError` too: it would wait for a commit
  that waits for it. Other tasks' writes wait for the commit; so a task that the block itself
  awaits must not write through the store (it would wait the busy timeout, then raise
  :class:`tidings.BusyError`).
- ``read_all`` waits for new events on one thread per store and loop, shared by every waiting
  iterator; commits of other processes are seen within the store's ``poll_interval``.
- Cancelling a task cancels its wait; a transaction whose block is cancelled rolls back.
- ``await store.subscribe(name, handler, **options)`` starts a subscription (the options are
  :meth:`tidings.Store.subscribe`'s) and returns an :class:`AsyncSubscription`, whose
  ``wait_for_position`` and ``stop`` are coroutines. The handler is a plain function run on the
  subscription's runner thread, not on the loop: it gets ``(tx, events)``, writes through
  ``tx`` and must not await; its writes and the new position commit together.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import os
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, TypeVar, Union

from ._aio_subscription import AsyncSubscription
from ._commit_watcher import CommitWatcher
from ._sql import ExecuteResult
from ._tidings import (
    DeliveryEngine,
    Endpoint,
    Event,
    InvalidInputError,
    Row,
    Snapshot,
    Store,
    SubscriptionStatus,
    TenantRate,
    Transaction,
    TransactionOpenError,
)

if TYPE_CHECKING:  # the stub's aliases, so these signatures stay Store's
    from ._tidings import _JSON, _ExpectedVersion, _ParamSets, _SqlParams

__all__ = ["AsyncDeliveryEngine", "AsyncStore", "AsyncSubscription", "open"]

_T = TypeVar("_T")

_ENGINE_SLICE = 0.25
"""Longest one thread-pool call of an engine wait lasts, so a cancelled wait frees its thread
within this."""

_OpenTransactions = tuple[tuple[Store, "Optional[asyncio.Task[Any]]", Transaction], ...]

_open_transactions: contextvars.ContextVar[_OpenTransactions] = contextvars.ContextVar(
    "tidings_aio_open_transactions", default=()
)
"""The (store, task, transaction) triples opened by ``AsyncStore.transaction`` in this context.
Tasks started inside a block inherit the context, hence the task: only the one that opened
the transaction is refused what would wait for it."""


@dataclass
class _LoopState:
    """What an ``AsyncStore`` keeps per event loop."""

    lock: asyncio.Lock
    watcher: CommitWatcher
    # One thread begins, commits and rolls back this loop's transactions, which the lock
    # serialises: a pool clogged by writers waiting for the writer cannot delay a commit.
    transactions: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="tidings-aio-tx")
    )


def _invalid(field_name: str, reason: str) -> InvalidInputError:
    """An ``InvalidInputError`` as the native module makes them (message, ``field``, ``reason``)."""
    error = InvalidInputError(f"invalid {field_name}: {reason}")
    error.field = field_name
    error.reason = reason
    return error


def _begin_detached(store: Store) -> Transaction:
    """On a pool thread: begins a transaction held by no thread yet (so this pool thread's next
    job, should it write, waits for it instead of being refused)."""
    tx = store.begin()
    try:
        tx._set_threads("detached")
    except BaseException:
        tx.rollback()
        raise
    return tx


def _roll_back_unwanted(job: asyncio.Future[Transaction]) -> None:
    """Rolls back a transaction whose ``__aenter__`` was cancelled while it was begun."""
    if not job.cancelled() and job.exception() is None:
        job.result().rollback()


class _TransactionBlock:
    """``async with store.transaction() as tx`` (see the module docs)."""

    def __init__(self, owner: AsyncStore) -> None:
        """A block on ``owner``'s store; nothing happens before ``async with``."""
        self._owner = owner
        self._state: Optional[_LoopState] = None
        self._tx: Optional[Transaction] = None
        self._token: Optional[contextvars.Token[_OpenTransactions]] = None

    async def __aenter__(self) -> Transaction:
        """Waits for the loop's turn and the writer, then returns the open transaction."""
        self._owner._refuse_if_open("a transaction")
        loop = asyncio.get_running_loop()
        state = self._owner._loop_state(loop)
        await state.lock.acquire()
        try:
            job = loop.run_in_executor(state.transactions, _begin_detached, self._owner.sync)
            try:
                tx = await asyncio.shield(job)
            except asyncio.CancelledError:
                job.add_done_callback(_roll_back_unwanted)
                raise
            try:
                # The loop's thread holds the writer now: its own synchronous writes are refused
                # at once, other threads' wait.
                tx._set_threads("pinned")
            except BaseException:
                tx.rollback()
                raise
        except BaseException:
            state.lock.release()
            raise
        self._state, self._tx = state, tx
        opened = (self._owner.sync, asyncio.current_task(), tx)
        self._token = _open_transactions.set(_open_transactions.get() + (opened,))
        return tx

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Commits when the block ended normally, rolls back when it raised (or was cancelled)."""
        state, tx, token = self._state, self._tx, self._token
        assert state is not None and tx is not None and token is not None, "entered first"
        self._state = self._tx = self._token = None
        try:
            if tx.active:
                await self._finish(state, tx, commit=exc_type is None)
        finally:
            _open_transactions.reset(token)
            state.lock.release()

    @staticmethod
    async def _finish(state: _LoopState, tx: Transaction, commit: bool) -> None:
        """Commits or rolls back on the loop's transaction thread; runs to its end even if the
        awaiting task is cancelled. A failed rollback after the block raised is reported to the
        loop's exception handler, so the block's own exception is the one the caller sees."""
        loop = asyncio.get_running_loop()
        try:
            # Nobody holds the writer while it commits: a write on the loop's thread now waits
            # for the commit (which needs nothing from the loop) instead of being refused.
            tx._set_threads("detached")
            await asyncio.shield(loop.run_in_executor(state.transactions, tx.commit if commit else tx.rollback))
        except Exception as err:
            if commit:
                raise
            loop.call_exception_handler({"message": "tidings.aio: rolling back failed", "exception": err})


class AsyncStore:
    """An awaitable view of a :class:`tidings.Store` for asyncio code (see the module docs).

    Make one with :func:`open` or ``AsyncStore(store)``; one may be used from several event
    loops (each gets its own transaction turn and commit watcher). ``sync`` is the underlying
    store, for the calls that have no coroutine here. Closing it (``await store.close()`` or
    ``async with``) closes the store.
    """

    def __init__(self, store: Store) -> None:
        """Wraps an open ``store``."""
        self._store = store
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()

    @property
    def sync(self) -> Store:
        """The underlying :class:`tidings.Store` (its calls block the calling thread)."""
        return self._store

    @property
    def path(self) -> str:
        """The path the store was opened with (or ``":memory:"``)."""
        return self._store.path

    def __repr__(self) -> str:
        """``AsyncStore('path')``."""
        return f"AsyncStore({self._store.path!r})"

    async def __aenter__(self) -> AsyncStore:
        """Returns the store itself."""
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Closes the store."""
        await self.close()

    def _loop_state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        """This loop's lock, commit watcher and transaction thread (made on first use)."""
        state = self._loops.get(loop)
        if state is None:
            state = _LoopState(asyncio.Lock(), CommitWatcher(self._store, loop))
            self._loops[loop] = state
        return state

    def _refuse_if_open(self, what: str) -> None:
        """Raises ``TransactionOpenError`` if this task holds an open transaction on the store:
        ``what`` would wait for a commit that waits for it."""
        task = asyncio.current_task()
        if any(store is self._store and t is task and tx.active for store, t, tx in _open_transactions.get()):
            raise TransactionOpenError(
                f"this task already holds an open tidings.aio transaction on this store, and {what} "
                "would wait for its commit: use the transaction"
            )

    async def _run(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Runs a blocking call of the store in the loop's default thread pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, functools.partial(call, *args, **kwargs))

    async def _write(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``_run`` for a store-level write, refused in a task holding a transaction."""
        self._refuse_if_open("a store-level write")
        return await self._run(call, *args, **kwargs)

    def transaction(self) -> _TransactionBlock:
        """A write transaction for ``async with store.transaction() as tx:`` (see the module
        docs): ``tx`` is a :class:`tidings.Transaction`; everything done through it commits when
        the block ends and rolls back when it raises or is cancelled. Awaiting inside is safe.
        Inside the block, read through ``tx`` to see the transaction's own writes."""
        return _TransactionBlock(self)

    async def close(self) -> None:
        """Closes the store (stopping its delivery engines first) and this view's threads."""
        await self._run(self._store.close)
        states = list(self._loops.values())
        self._loops.clear()  # a later call makes fresh ones, and gets ClosedError from the store
        for state in states:
            state.transactions.shutdown(wait=False)

    async def append(
        self,
        stream: str,
        type: str,
        data: _JSON,
        expected_version: _ExpectedVersion = None,
        metadata: Optional[Mapping[str, _JSON]] = None,
        tenant: Optional[str] = None,
        event_id: Optional[str] = None,
    ) -> Event:
        """:meth:`tidings.Store.append` as a coroutine (one event in its own transaction)."""
        return await self._write(self._store.append, stream, type, data, expected_version, metadata, tenant, event_id)

    async def append_many(
        self, stream: str, events: Sequence[Mapping[str, Any]], expected_version: _ExpectedVersion = None
    ) -> list[Event]:
        """:meth:`tidings.Store.append_many` as a coroutine (all or none, one transaction)."""
        return await self._write(self._store.append_many, stream, events, expected_version)

    async def execute(self, sql: str, params: _SqlParams = None) -> ExecuteResult:
        """:meth:`tidings.Store.execute` as a coroutine: one statement in its own transaction."""
        return await self._write(self._store.execute, sql, params)

    async def executemany(self, sql: str, params: _ParamSets) -> int:
        """:meth:`tidings.Store.executemany` as a coroutine (one transaction)."""
        return await self._write(self._store.executemany, sql, params)

    async def executescript(self, script: str) -> None:
        """:meth:`tidings.Store.executescript` as a coroutine (one transaction)."""
        await self._write(self._store.executescript, script)

    async def query(self, sql: str, params: _SqlParams = None) -> list[Row]:
        """:meth:`tidings.Store.query` as a coroutine (a read connection: committed data only)."""
        return await self._run(self._store.query, sql, params)

    async def read_stream(
        self, stream: str, from_version: Optional[int] = None, limit: Optional[int] = None, backwards: bool = False
    ) -> list[Event]:
        """:meth:`tidings.Store.read_stream` as a coroutine."""
        return await self._run(self._store.read_stream, stream, from_version, limit, backwards)

    async def stream_version(self, stream: str) -> Optional[int]:
        """:meth:`tidings.Store.stream_version` as a coroutine."""
        return await self._run(self._store.stream_version, stream)

    async def event(self, id: str) -> Event:
        """:meth:`tidings.Store.event` as a coroutine."""
        return await self._run(self._store.event, id)

    async def last_position(self) -> int:
        """:meth:`tidings.Store.last_position` as a coroutine."""
        return await self._run(self._store.last_position)

    async def checkpoint(self, name: str) -> Optional[int]:
        """:meth:`tidings.Store.checkpoint` as a coroutine."""
        return await self._run(self._store.checkpoint, name)

    async def set_checkpoint(self, name: str, position: int) -> None:
        """:meth:`tidings.Store.set_checkpoint` as a coroutine."""
        await self._write(self._store.set_checkpoint, name, position)

    async def load_snapshot(self, stream: str) -> Optional[Snapshot]:
        """:meth:`tidings.Store.load_snapshot` as a coroutine."""
        return await self._run(self._store.load_snapshot, stream)

    async def save_snapshot(self, stream: str, version: int, state: _JSON) -> None:
        """:meth:`tidings.Store.save_snapshot` as a coroutine."""
        await self._write(self._store.save_snapshot, stream, version, state)

    async def create_endpoint(self, url: str, **options: Any) -> Endpoint:
        """:meth:`tidings.Store.create_endpoint` as a coroutine (the same keyword options)."""
        return await self._write(self._store.create_endpoint, url, **options)

    async def upsert_endpoint(self, url: str, *, name: str, **options: Any) -> tuple[Endpoint, bool]:
        """:meth:`tidings.Store.upsert_endpoint` as a coroutine: ``(endpoint, created)``."""
        return await self._write(self._store.upsert_endpoint, url, name=name, **options)

    async def subscribe(
        self, name: str, handler: Callable[[Transaction, list[Event]], object], **options: Any
    ) -> AsyncSubscription:
        """:meth:`tidings.Store.subscribe` as a coroutine, returning an :class:`AsyncSubscription`.
        ``handler(tx, events)`` is a plain function run on the runner thread (see the module
        docs)."""
        return AsyncSubscription(await self._write(self._store.subscribe, name, handler, **options))

    async def subscription_status(self, name: str) -> SubscriptionStatus:
        """:meth:`tidings.Store.subscription_status` as a coroutine."""
        return await self._run(self._store.subscription_status, name)

    async def reset_subscription(self, name: str, position: int) -> None:
        """:meth:`tidings.Store.reset_subscription` as a coroutine."""
        await self._write(self._store.reset_subscription, name, position)

    async def start_delivery(self, workers: Optional[int] = None, **options: Any) -> AsyncDeliveryEngine:
        """:meth:`tidings.Store.start_delivery` (the same options) as a coroutine; returns the
        engine with awaitable waits."""
        engine = await self._run(self._store.start_delivery, workers, **options)
        return AsyncDeliveryEngine(engine)

    async def read_all(
        self,
        from_position: Optional[int] = None,
        *,
        types: Union[str, Sequence[str], None] = None,
        tenant: Optional[str] = None,
        stream: Optional[str] = None,
        wait: Optional[float] = None,
        limit: Optional[int] = None,
        batch: int = 1000,
    ) -> AsyncIterator[Event]:
        """Yields the global log's matching events from ``from_position`` on (default: the
        start), in position order, reading ``batch`` events at a time.

        At the end of the log: with ``wait=None`` the iteration ends; with ``wait`` it waits
        for the next matching event and ends when none came for ``wait`` seconds
        (``math.inf``: follow the log until the caller stops iterating). A wait holds no
        thread: one thread per store and loop watches this process's commits, and other
        processes' commits are seen within the store's ``poll_interval``. ``limit`` ends the
        iteration after that many events. Filters are those of :meth:`tidings.Store.read_all`.
        """
        if wait is not None and (math.isnan(wait) or wait < 0):
            raise _invalid("wait", "must be None, or a non-negative number of seconds (math.inf: no end)")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise _invalid("batch", "must be a positive int")
        loop = asyncio.get_running_loop()
        watcher = self._loop_state(loop).watcher
        poll = self._store._poll_interval()
        position, left = from_position or 0, limit
        deadline = None if wait is None else loop.time() + wait
        while left is None or left > 0:
            seen = self._store._commit_count()
            size = batch if left is None else min(batch, left)
            events = await self._run(
                self._store.read_all, position, size, types, tenant, None, stream, False
            )
            for event in events:
                yield event
            if events:
                position = events[-1].position + 1
                left = None if left is None else left - len(events)
                deadline = None if wait is None else loop.time() + wait
                if len(events) == size:
                    continue
            if deadline is None:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await watcher.wait(seen, min(remaining, poll))


class AsyncDeliveryEngine:
    """A :class:`tidings.DeliveryEngine` whose waits are coroutines. ``async with`` stops it
    at the end of the block (with the default grace)."""

    def __init__(self, engine: DeliveryEngine) -> None:
        """Wraps a running ``engine`` (as returned by ``Store.start_delivery``)."""
        self._engine = engine

    @property
    def sync(self) -> DeliveryEngine:
        """The underlying :class:`tidings.DeliveryEngine`."""
        return self._engine

    @property
    def running(self) -> bool:
        """Whether the engine runs (False once stopped, or in a forked child)."""
        return self._engine.running

    def __repr__(self) -> str:
        """``AsyncDeliveryEngine(running=...)``."""
        return f"AsyncDeliveryEngine(running={self.running})"

    async def __aenter__(self) -> AsyncDeliveryEngine:
        """Returns the engine itself."""
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Stops the engine."""
        await self.stop()

    async def _sliced(self, wait: Callable[[float], bool], timeout: float) -> bool:
        """Runs a blocking engine wait in the thread pool in slices of ``_ENGINE_SLICE`` up to
        ``timeout`` seconds, so cancelling the awaiting task frees its thread soon."""
        if not timeout >= 0:
            return wait(timeout)  # refused at once (InvalidInputError) by the engine
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = max(deadline - loop.time(), 0.0)
            step = min(left, _ENGINE_SLICE)
            if await loop.run_in_executor(None, wait, step):
                return True
            if left <= step or not self._engine.running:
                return False

    async def wait_idle(self, timeout: float = 10.0) -> bool:
        """:meth:`tidings.DeliveryEngine.wait_idle` as a coroutine: True once nothing is due or
        in flight, False after ``timeout`` seconds or if the engine stopped."""
        return await self._sliced(self._engine.wait_idle, timeout)

    async def drain(self, timeout: float) -> bool:
        """:meth:`tidings.DeliveryEngine.drain` as a coroutine: True once every delivery is
        finished, False after ``timeout`` seconds or if the engine stopped."""
        return await self._sliced(self._engine.drain, timeout)

    async def stop(self, timeout: float = 5.0) -> None:
        """:meth:`tidings.DeliveryEngine.stop` as a coroutine (it waits up to ``timeout``
        seconds for requests in flight)."""
        await asyncio.get_running_loop().run_in_executor(None, self._engine.stop, timeout)


async def open(
    path: Union[str, os.PathLike[str]],
    *,
    source: Optional[str] = None,
    durability: Literal["normal", "full"] = "normal",
    allow_private: bool = False,
    allowed_networks: Optional[Sequence[str]] = None,
    busy_timeout: Optional[float] = None,
    max_event_size: Optional[int] = None,
    rotation_grace: Optional[float] = None,
    poll_interval: Optional[float] = None,
    tenant_rates: Optional[Sequence[TenantRate]] = None,
) -> AsyncStore:
    """Opens (or creates) a store off the event loop's thread; the options are
    :class:`tidings.Store`'s. ``async with await tidings.aio.open(path) as store:`` closes it at
    the end of the block."""
    options: dict[str, Any] = {
        "source": source,
        "durability": durability,
        "allow_private": allow_private,
        "allowed_networks": allowed_networks,
        "busy_timeout": busy_timeout,
        "max_event_size": max_event_size,
        "rotation_grace": rotation_grace,
        "poll_interval": poll_interval,
        "tenant_rates": tenant_rates,
    }
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(None, functools.partial(Store, path, **options))
    return AsyncStore(store)
