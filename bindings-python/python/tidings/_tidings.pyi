"""Type stubs of the native module ``tidings._tidings`` (re-exported by ``tidings``).

Times are timezone-aware ``datetime`` objects in UTC; durations are float seconds. _JSON values
(event data, metadata, snapshot state) cross as ``None``, ``bool``, ``int``, ``float``,
``str``, ``list`` and ``dict`` (str keys), and come back as the same types; ``Decimal``,
``UUID`` and datetimes go in as strings, other types through the store's ``json_default``
hook (see :class:`Store`). Every call that can
block (SQLite, waiting, HTTP) releases the GIL, and one ``Store`` may be used from many
threads at once.
"""

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Literal, Optional, Protocol, Union, final, overload

from typing_extensions import Self

from tidings._sql import ExecuteResult

_JSON = Any
"""A _JSON value: None, bool, int, float, str, list or dict with str keys."""

_SqlValue = Union[None, int, float, str, bytes]
"""A value of an application SQL row or parameter."""

_SqlParams = Union[Sequence[Union[_SqlValue, bool, bytearray]], Mapping[str, Union[_SqlValue, bool, bytearray]], None]
"""Positional parameters (tuple or list, for ``?`` / ``?1``) or named ones (dict, for ``:name``)."""

_ParamSets = Union[
    Iterable[Sequence[Union[_SqlValue, bool, bytearray]]], Iterable[Mapping[str, Union[_SqlValue, bool, bytearray]]]
]
"""The parameter sets of ``executemany``: all positional or all named."""

class _Headers(Protocol):
    """Received headers: anything with ``items()`` giving (name, value) str pairs, such as a
    ``dict``, Starlette's ``Headers`` or ``http.server``'s ``email.message.Message``."""

    def items(self) -> Iterable[tuple[str, str]]: ...

__all__ = [
    "Error",
    "ConcurrencyError",
    "IdempotencyConflictError",
    "NotFoundError",
    "InvalidInputError",
    "SignatureError",
    "RateLimitedError",
    "ClosedError",
    "ForkedError",
    "BusyError",
    "StorageError",
    "DeliveryError",
    "TransactionOpenError",
    "ExecuteResult",
    "IntegrityError",
    "WrongThreadError",
    "IncompatibleDatabaseError",
    "ReadOnlyError",
    "TransactionFailedError",
    "EngineStartError",
    "Store",
    "Transaction",
    "Endpoint",
    "Bearer",
    "ApiKey",
    "NatsCredentials",
    "DeliveryEngine",
    "RetentionRule",
    "TenantRate",
    "Event",
    "DeliveryRecord",
    "Attempt",
    "Response",
    "Snapshot",
    "Subscription",
    "SubscriptionStatus",
    "ParkedEvent",
    "Inbox",
    "InboxStatus",
    "AggregateHistory",
    "Row",
    "EventIterator",
    "StreamExists",
    "STREAM_EXISTS",
    "SCHEMA_VERSION",
    "__version__",
    "verify",
]

__version__: Final[str]
SCHEMA_VERSION: Final[int]

@final
class StreamExists:
    """The type of :data:`STREAM_EXISTS`."""

STREAM_EXISTS: Final[StreamExists]
"""``expected_version`` meaning "the stream must already exist"."""

_ExpectedVersion = Union[int, StreamExists, None]
"""None: any version; 0: the stream must not exist; n >= 1: exactly n; STREAM_EXISTS."""

_CircuitState = Literal["closed", "open", "half_open"]
"""An endpoint's circuit breaker (see :meth:`Store.start_delivery`'s ``circuit_after``)."""

class Error(Exception):
    """Base class of every error raised by tidings."""

class ConcurrencyError(Error):
    """The stream's version was not the expected one; nothing was written."""

    stream: str
    expected: _ExpectedVersion
    actual: int

class IdempotencyConflictError(Error):
    """An event id already exists with different content."""

    event_id: str

class NotFoundError(Error):
    """The endpoint, delivery, event or stream does not exist."""

    kind: str
    id: str

class InvalidInputError(Error, ValueError):
    """The input breaks a rule; nothing was written. Also a ``ValueError``.

    ``field`` names the argument at fault, ``reason`` says what is wrong with it. This is
    also what a negative int or one too large for an int argument raises (``must not be
    negative``, ``is too large (at most N)``), and a str with a lone surrogate such as
    ``"\\ud800"`` (``is not valid text (it contains a lone surrogate)``), instead of
    ``OverflowError`` or ``UnicodeEncodeError``; a value of the wrong type is a ``TypeError``.
    """

    field: str
    reason: str

class SignatureError(Error):
    """A webhook signature did not verify.

    ``reason`` is ``missing_header``, ``malformed_header``, ``timestamp_too_old``,
    ``timestamp_in_future``, ``no_match`` or ``invalid_secret``.
    """

    reason: str

class RateLimitedError(Error):
    """A tenant is over its enforced event rate; the append was refused."""

    tenant: str
    limit: int

class ClosedError(Error):
    """The store, transaction or delivery engine is closed."""

class ForkedError(ClosedError):
    """This process was forked after the store was opened (gunicorn ``--preload``,
    ``os.fork``): the parent's store and delivery engine refuse to work in the child (the
    engine reports ``running`` False). Open the store again in the child."""

class BusyError(Error):
    """The database stayed locked past the busy timeout."""

class StorageError(Error):
    """SQLite failed (I/O, a full disk, a damaged file or stored value).

    Inside a transaction, roll it back: SQLite may have rolled it back itself, and an append
    that failed while writing fails the transaction (:class:`TransactionFailedError`). A broken
    constraint of the application's SQL is :class:`IntegrityError`, not this.
    """

class IntegrityError(Error):
    """The application's SQL broke a constraint (UNIQUE, NOT NULL, CHECK, FOREIGN KEY, a
    primary key). Only that statement was undone: the transaction is still usable, so a
    handler can answer it (HTTP 409, another key) and go on or roll back. Not a
    :class:`StorageError`.
    """

    code: int
    """SQLite's extended result code: 2067 UNIQUE, 1555 PRIMARY KEY, 1299 NOT NULL, 275 CHECK,
    787 FOREIGN KEY."""
    constraint: Optional[str]
    """The constraint as SQLite names it (``"orders.ref"`` for a unique column, a CHECK
    constraint's name), or None."""

class WrongThreadError(Error):
    """A transaction that belongs to one thread was used from another; nothing was done. Use
    it on the thread that began it; it is still usable there."""

class ReadOnlyError(StorageError):
    """Nothing can be written: SQLite found the database file or its folder not writable."""

class TransactionFailedError(StorageError):
    """An earlier append in this transaction failed after it had started writing.

    The transaction can only be rolled back: leave the ``with`` block and start again.
    """

class EngineStartError(StorageError):
    """The delivery engine could not start a thread (out of threads or memory); nothing was started."""

    reason: str

class IncompatibleDatabaseError(StorageError):
    """The file is not a tidings store this version can use, and was left as it was.

    Not an SQLite database, or tidings tables of a newer schema version (an older one is
    migrated). ``found`` is the file's schema version (None when it has none);
    ``supported`` is :data:`SCHEMA_VERSION`.
    """

    found: int | None
    supported: int

class DeliveryError(Error):
    """A synchronous send (``send_test``, ``call``) failed.

    ``kind`` is ``timeout``, ``connect``, ``tls``, ``dns``, ``egress_refused``, ...
    """

    kind: str
    reason: str

class TransactionOpenError(Error):
    """This thread already holds an open transaction on this store.

    Use that transaction instead of starting a second one or calling a store write.
    """

@final
class Bearer:
    """``Authorization: Bearer <token>`` sent with every request to an endpoint."""

    def __new__(cls, token: str) -> Self: ...
    @property
    def token(self) -> str:
        """The token (``repr()`` shows it redacted)."""

@final
class ApiKey:
    """An API key sent as ``<header>: <value>`` with every request to an endpoint."""

    def __new__(cls, header: str, value: str) -> Self: ...
    @property
    def header(self) -> str:
        """The header's name."""
    @property
    def value(self) -> str:
        """The key (``repr()`` shows it redacted)."""

@final
class NatsCredentials:
    """A NATS ``.creds`` file's text (user JWT and NKey seed), the credential of a JetStream
    endpoint (``nats://`` / ``tls://``) or of :meth:`Store.relay_in`."""

    def __new__(cls, creds: str) -> Self: ...
    @property
    def creds(self) -> str:
        """The ``.creds`` file's text (``repr()`` shows it redacted)."""

@final
class TenantRate:
    """A per-tenant event rate limit, a ``Store`` option.

    ``tenant=None`` makes it the default for every tenant without its own rule. ``mode``:
    ``"warn"`` counts a warning and appends one ``tidings.rate_limit.exceeded`` event per
    minute; ``"enforce"`` refuses the append with :class:`RateLimitedError`.
    """

    def __new__(cls, per_minute: int, tenant: Optional[str] = None, mode: Literal["warn", "enforce"] = "warn") -> Self: ...
    @property
    def per_minute(self) -> int:
        """Events per minute allowed."""
    @property
    def tenant(self) -> Optional[str]:
        """The tenant, or None for every tenant without its own rule."""
    @property
    def mode(self) -> str:
        """``"warn"`` (count and record) or ``"enforce"`` (refuse with ``RateLimitedError``)."""

@final
class RetentionRule:
    """Keep events whose type matches ``pattern`` at most ``max_age`` seconds old and/or only
    the newest ``max_count`` of them (events with unfinished deliveries are always kept)."""

    def __new__(cls, pattern: str, max_age: Optional[float] = None, max_count: Optional[int] = None) -> Self: ...
    @property
    def pattern(self) -> str:
        """The event type pattern the rule applies to."""
    @property
    def max_age(self) -> Optional[float]:
        """Most seconds an event is kept, or None."""
    @property
    def max_count(self) -> Optional[int]:
        """Most events kept (the newest), or None."""

@final
class Event:
    """An event as stored in the log."""

    @property
    def id(self) -> str:
        """The event id (UUID); also the ``webhook-id`` of every delivery of it."""
    @property
    def stream(self) -> str:
        """The stream it belongs to."""
    @property
    def version(self) -> int:
        """1, 2, ... within the stream."""
    @property
    def position(self) -> int:
        """Global position: gap-free, in commit order."""
    @property
    def type(self) -> str:
        """Its dotted type (``order.created``)."""
    @property
    def data(self) -> _JSON:
        """The payload, a JSON value."""
    @property
    def metadata(self) -> dict[str, _JSON]:
        """The metadata, a dict."""
    @property
    def tenant(self) -> Optional[str]:
        """The tenant, or None."""
    @property
    def recorded_at(self) -> datetime:
        """When the store recorded it (UTC)."""
    @property
    def replayed(self) -> bool:
        """True when an idempotent append (a caller-chosen ``event_id`` already stored with the
        same content) returned the event stored earlier instead of writing it; False when the
        append wrote it now, and for events read from the log."""
    def __eq__(self, other: object, /) -> bool:
        """Equal when every stored field is (``replayed`` aside): the same event read twice,
        or as appended and as read back, compares equal."""
    def __hash__(self) -> int: ...

@final
class Row:
    """One row of a query: ``row[0]`` and ``row["name"]`` (a column name, ASCII case ignored
    when no column has the exact name) both work, as do ``len(row)``, iteration and unpacking.

    A row equals another row or a tuple holding the same values (column names are not
    compared), and hashes like that tuple; ``keys()`` gives the column names and ``as_dict()``
    a ``dict`` of name to value.
    """

    @overload
    def __getitem__(self, key: Union[int, str], /) -> _SqlValue: ...
    @overload
    def __getitem__(self, key: slice, /) -> tuple[_SqlValue, ...]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[_SqlValue]: ...
    def __contains__(self, value: object, /) -> bool: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def keys(self) -> list[str]:
        """The column names, in order."""
    def as_dict(self) -> dict[str, _SqlValue]:
        """The row as a ``dict`` of column name to value (the first column of a repeated name wins)."""

@final
class EventIterator:
    """An iterator over the global log in position order, read lazily one page (``batch``
    events) at a time; returned by :meth:`Store.iter_all`.

    Not for sharing between threads while it runs: a second thread calling ``next()`` at the
    same time gets a ``RuntimeError`` (already borrowed).
    """

    def __iter__(self) -> Self: ...
    def __next__(self) -> Event:
        """The next event, reading the next page when this one is used up."""

@final
class Snapshot:
    """A stream's saved state."""

    @property
    def version(self) -> int:
        """The stream version the state is at."""
    @property
    def state(self) -> _JSON:
        """The saved state, a JSON value."""
    @property
    def schema_version(self) -> int:
        """The shape of the state (``save_snapshot``'s ``schema_version``; 1 unless saved with
        another): a reader expecting another shape ignores the snapshot."""
    @property
    def saved_at(self) -> datetime:
        """When it was saved (UTC)."""


@final
class DeliveryRecord:
    """One delivery record: an event on its way to one endpoint."""

    @property
    def id(self) -> int:
        """The delivery id."""
    @property
    def event_id(self) -> Optional[str]:
        """None once the event was deleted with its stream."""
    @property
    def event_position(self) -> int:
        """The event's global position."""
    @property
    def event_type(self) -> Optional[str]:
        """The event's type, or None once the event was deleted."""
    @property
    def endpoint_id(self) -> str:
        """The endpoint it goes to."""
    @property
    def state(self) -> str:
        """``pending``, ``sending``, ``retrying``, ``paused``, ``succeeded``, ``failed`` or ``cancelled``."""
    @property
    def attempts(self) -> int:
        """Attempts made in the current attempt series."""
    @property
    def last_status_code(self) -> Optional[int]:
        """The HTTP status of the last attempt, or None."""
    @property
    def last_error(self) -> Optional[str]:
        """The last attempt's error, or None."""
    @property
    def next_attempt_at(self) -> Optional[datetime]:
        """When the next attempt is due, or None."""
    @property
    def created_at(self) -> datetime:
        """When the delivery was queued (UTC)."""
    @property
    def touched_at(self) -> datetime:
        """When its row last changed (UTC)."""
    @property
    def completed_at(self) -> Optional[datetime]:
        """When it finished (succeeded, failed or cancelled), or None."""

@final
class Attempt:
    """One attempt to deliver (or the result of ``send_test``)."""

    @property
    def number(self) -> int:
        """1 for the first attempt of the series, 2, ..."""
    @property
    def started_at(self) -> datetime:
        """When the request started (UTC)."""
    @property
    def duration(self) -> float:
        """Seconds."""
    @property
    def status_code(self) -> Optional[int]:
        """The HTTP status, or None when no answer came."""
    @property
    def error_kind(self) -> Optional[str]:
        """``status``, ``timeout``, ``connect``, ``tls``, ``dns``, ``egress_refused``, ``io``."""
    @property
    def error(self) -> Optional[str]:
        """What went wrong, or None."""
    @property
    def response_body(self) -> Optional[str]:
        """The first KiB of the response body."""

@final
class Response:
    """The answer to a synchronous :meth:`Store.call`."""

    @property
    def status(self) -> int:
        """HTTP status."""
    @property
    def body(self) -> bytes:
        """The body (at most 1 MiB is read)."""
    @property
    def content_type(self) -> Optional[str]:
        """The response's content type."""
    def json(self) -> _JSON:
        """The body parsed as _JSON (InvalidInputError if it is not _JSON)."""

@final
class Endpoint:
    """A webhook endpoint as stored. Compare with ``==``.

    ``repr()`` shows the URL redacted (user info, every query value and the fragment read
    ``redacted``: ``?token=redacted``), as webhook URLs often carry a credential; ``url``
    is the full URL.
    """

    @property
    def id(self) -> str:
        """Public id (UUID text)."""
    @property
    def secret(self) -> str:
        """The current signing secret, ``whsec_<base64>``."""
    @property
    def url(self) -> str:
        """The full URL, query included (``repr()`` shows it redacted)."""
    @property
    def name(self) -> Optional[str]:
        """A name for people (None if not given)."""
    @property
    def events(self) -> list[str]:
        """Event type patterns: exact, ``prefix.*`` or ``*`` (which excludes ``tidings.*``)."""
    @property
    def tenant(self) -> Optional[str]:
        """The tenant whose events it gets (None: every tenant's)."""
    @property
    def enabled(self) -> bool:
        """Whether deliveries are sent to it (False once disabled, by hand or by the engine)."""
    @property
    def auth(self) -> Union[Bearer, ApiKey, NatsCredentials, None]:
        """``Bearer``, ``ApiKey``, ``NatsCredentials`` or None: the credential sent with every
        request (a JetStream endpoint's: a NATS token or ``.creds``, sent when connecting)."""
    @property
    def subject(self) -> Optional[str]:
        """A JetStream endpoint's subject template as given (None: core's default,
        ``tidings.{type}``; webhooks have none)."""
    @property
    def headers(self) -> dict[str, str]:
        """Extra headers sent with every request."""
    @property
    def timeout(self) -> float:
        """Seconds a request may take."""
    @property
    def max_attempts(self) -> int:
        """Attempts per delivery before it fails."""
    @property
    def initial_delay(self) -> float:
        """Seconds before the first retry."""
    @property
    def max_delay(self) -> float:
        """Most seconds between two retries."""
    @property
    def multiplier(self) -> float:
        """What each retry delay is multiplied by."""
    @property
    def jitter(self) -> float:
        """Random spread of retry delays, as a fraction (0.2: plus or minus 20 %)."""
    @property
    def rate_limit(self) -> Optional[float]:
        """Most requests per second to it, or None."""
    @property
    def burst(self) -> Optional[int]:
        """Requests allowed at once above ``rate_limit``, or None."""
    @property
    def max_in_flight(self) -> int:
        """Most requests in flight to it at once, per delivering process."""
    @property
    def ordered(self) -> bool:
        """Whether a stream's events are delivered in version order, one at a time."""
    @property
    def verify_tls(self) -> bool:
        """Whether the receiver's TLS certificate is verified."""
    @property
    def ca_cert(self) -> Optional[str]:
        """A PEM CA certificate trusted for it, or None."""
    @property
    def signature_header(self) -> Optional[str]:
        """A header that also gets ``sha256=<hex>`` of the body, or None."""
    @property
    def template(self) -> Union[str, dict[str, str], None]:
        """As given: one template (str) for every type, a dict by type pattern, or None."""
    @property
    def templates(self) -> dict[str, str]:
        """Every template by type pattern (``"*"`` for one given as a str)."""
    @property
    def keepalive(self) -> Optional[float]:
        """Seconds of idleness after which a ``tidings.ping`` is sent, or None."""
    @property
    def final_statuses(self) -> list[int]:
        """HTTP statuses that fail a delivery at once (no retry)."""
    @property
    def disabled_reason(self) -> Optional[str]:
        """Why it was disabled, or None."""
    @property
    def consecutive_failures(self) -> int:
        """Failed attempts in a row."""
    @property
    def unhealthy(self) -> bool:
        """Whether the engine counts it unhealthy (``unhealthy_after`` failures in a row)."""
    @property
    def last_success_at(self) -> Optional[datetime]:
        """When a delivery to it last succeeded, or None."""
    @property
    def circuit(self) -> _CircuitState:
        """The circuit breaker. ``"closed"``: requests flow, up to :attr:`concurrency`.
        ``"open"``: too many failures in a row; nothing is sent until :attr:`circuit_until`.
        ``"half_open"``: one probe request is out; its success closes the circuit, its failure
        opens it again for a longer cool-down."""
    @property
    def circuit_until(self) -> Optional[datetime]:
        """Open: when the half-open probe may go. Half-open: when the probe's lease ends.
        None while closed."""
    @property
    def concurrency(self) -> int:
        """Requests the engine lets be in flight to this endpoint now, per delivering process:
        1 for a new endpoint, +1 per success up to :attr:`max_in_flight`, halved per failure."""
    @property
    def created_at(self) -> datetime:
        """When it was created (UTC)."""
    @property
    def updated_at(self) -> datetime:
        """When it was last changed (UTC)."""

@final
class DeliveryEngine:
    """The running delivery engine returned by :meth:`Store.start_delivery`.

    A context manager: leaving the ``with`` block stops it (5 s grace). Dropping it stops it too.
    """

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is due *now* or in flight, or until ``timeout`` seconds passed.
        Returns whether the engine became idle (False on the timeout or once stopped). Ctrl-C
        ends the wait (``KeyboardInterrupt``).

        Deliveries waiting for a later retry, endpoints whose circuit is open and other
        engines' claims do not count: use it to let a burst settle. To know every delivery
        is finished, use :meth:`drain`."""
    def drain(self, timeout: float) -> bool:
        """Block until every delivery is finished: none is pending, sending or retrying, in
        this process or any other on the file (paused ones, of disabled endpoints, do not
        count), or until ``timeout`` seconds passed. Returns whether that happened (False on
        the timeout or once stopped). Ctrl-C ends the wait (``KeyboardInterrupt``).

        Unlike :meth:`wait_idle`, it also waits for retries scheduled later, endpoints whose
        circuit is open and other engines' claims: use it before stopping, in tests, or in a
        script that must know everything was delivered (or failed for good). A retry may be
        hours away, so there is no default ``timeout``."""
    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; requests in flight may finish within ``timeout`` seconds; claims not
        finished by then are released for the next run. Idempotent."""
    @property
    def running(self) -> bool:
        """Whether the engine runs (False once stopped)."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...

@final
class Transaction:
    """An open write transaction (``BEGIN IMMEDIATE``).

    ``with store.transaction() as tx:`` commits when the block ends normally and rolls back when
    it raises. Everything done through ``tx`` (application SQL, appends, checkpoints,
    snapshots, endpoint changes) commits together. While it is open, other writes on the same
    thread raise :class:`TransactionOpenError`; other threads wait for it.

    Errors that leave the transaction usable (nothing was written, or only the failing SQL
    statement was undone; catch them and go on, or roll back): :class:`IntegrityError` from
    the application's SQL (``execute``, ``executemany``, ``executescript``),
    :class:`ConcurrencyError`, :class:`IdempotencyConflictError`, :class:`InvalidInputError`,
    :class:`RateLimitedError`, :class:`NotFoundError`, :class:`TransactionOpenError`,
    :class:`WrongThreadError`.

    Errors that poison it: an append that fails after it started writing (a
    :class:`StorageError` such as a full disk, or an :class:`IntegrityError` raised by the
    application's own trigger on tidings' tables) fails the transaction; every later call and
    ``commit()`` raise :class:`TransactionFailedError`, and it can only be rolled back (leaving
    the ``with`` block by the exception does). After any other :class:`StorageError` (SQLite
    may have rolled the transaction back itself), roll back too.
    """

    @property
    def active(self) -> bool:
        """Whether the transaction is still open."""
    def commit(self) -> None:
        """Commits everything done in the transaction."""
    def rollback(self) -> None:
        """Rolls back everything done in the transaction."""
    def _set_threads(self, policy: Literal["follow", "pinned", "detached"]) -> None:
        """Private, for ``tidings.aio``: how this transaction relates to threads."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        _exc_value: Optional[BaseException],
        _traceback: Optional[TracebackType],
    ) -> None:
        """Commit when the block ended normally, roll back when it raised; the exception is
        never swallowed."""
    @property
    def lastrowid(self) -> Optional[int]:
        """The rowid the last ``execute`` in this transaction that inserted a row (``INSERT`` or
        ``REPLACE``) inserted, as ``sqlite3``'s ``cursor.lastrowid``; None before any.
        ``executemany``, ``executescript`` and tidings' own writes (appends) leave it unchanged."""
    def execute(self, sql: str, params: _SqlParams = None) -> ExecuteResult:
        """Run one statement of the application's SQL in this transaction; see :meth:`Store.execute`."""
    def executemany(self, sql: str, params: _ParamSets) -> int:
        """Run one statement once per parameter set; see :meth:`Store.executemany`."""
    def executescript(self, script: str) -> None:
        """Run a script of SQL statements in this transaction; see :meth:`Store.executescript`."""
    def query(self, sql: str, params: _SqlParams = None) -> list[Row]:
        """Run a query of the application's SQL, as this transaction sees the database; see
        :meth:`Store.query`."""
    def append(
        self,
        stream: str,
        type: str,
        data: _JSON,
        expected_version: _ExpectedVersion = None,
        metadata: Optional[Mapping[str, _JSON]] = None,
        tenant: Optional[str] = None,
        event_id: Optional[str] = None,
        *,
        schema_version: Optional[int] = None,
    ) -> Event:
        """Append one event to ``stream``; see :meth:`Store.append`."""
    def append_many(
        self, stream: str, events: Sequence[Mapping[str, Any]], expected_version: _ExpectedVersion = None
    ) -> list[Event]:
        """Append several events to ``stream`` at once; see :meth:`Store.append_many`."""
    def read_stream(
        self, stream: str, from_version: Optional[int] = None, limit: Optional[int] = None, backwards: bool = False
    ) -> list[Event]:
        """Read a stream in version order (newest first with ``backwards``), from
        ``from_version`` (default: the first, or the last when backwards), at most ``limit`` events."""
    def stream_version(self, stream: str) -> Optional[int]:
        """The stream's current version, or None if it does not exist."""
    def checkpoint(self, name: str) -> Optional[int]:
        """Consumer ``name``'s recorded position, or None."""
    def set_checkpoint(self, name: str, position: int) -> None:
        """Record consumer ``name``'s position, atomically with the rest of the transaction."""
    def save_snapshot(self, stream: str, version: int, state: _JSON, schema_version: int = 1) -> None:
        """Save ``state`` (a JSON value, encoded as event data is) as the stream's snapshot at
        ``version``; ``schema_version`` names the state's shape, so a reader expecting another
        shape (:meth:`load_aggregate`) ignores it and folds the events instead."""
    def delete_stream(self, stream: str) -> int:
        """Hard-delete a stream's events (their unfinished deliveries are cancelled); returns how
        many were deleted."""
    def truncate_stream(self, stream: str, before_version: int, *, past_snapshot: bool = False) -> int:
        """Delete a stream's events below ``before_version`` (the stream keeps its version);
        returns how many were deleted. A cut past the latest snapshot is refused
        (:class:`InvalidInputError`) unless ``past_snapshot=True``."""
    def load_snapshot(self, stream: str) -> Optional[Snapshot]:
        """The stream's saved snapshot (``Snapshot``) as this transaction sees it, or None."""
    def load_aggregate(self, stream: str, state_version: int) -> AggregateHistory:
        """:meth:`Store.load_aggregate` as this transaction sees the stream."""
    def reset_subscription(self, name: str, position: int) -> None:
        """:meth:`Store.reset_subscription` inside this transaction, so a read model can be
        cleared and its subscription reset together."""
    def create_endpoint(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        tenant: Optional[str] = None,
        secret: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: Union[Bearer, ApiKey, NatsCredentials, None] = None,
        timeout: Optional[float] = None,
        max_attempts: Optional[int] = None,
        initial_delay: Optional[float] = None,
        max_delay: Optional[float] = None,
        multiplier: Optional[float] = None,
        jitter: Optional[float] = None,
        rate_limit: Optional[float] = None,
        burst: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        ordered: Optional[bool] = None,
        verify_tls: Optional[bool] = None,
        ca_cert: Optional[str] = None,
        signature_header: Optional[str] = None,
        template: Union[str, Mapping[str, str], None] = None,
        keepalive: Optional[float] = None,
        final_statuses: Optional[Sequence[int]] = None,
        enabled: Optional[bool] = None,
        subject: Optional[str] = None,
    ) -> Endpoint:
        """Create an endpoint in this transaction; see :meth:`Store.create_endpoint`."""
    def upsert_endpoint(self, url: str, *, name: str, **options: Any) -> tuple[Endpoint, bool]:
        """Declare an endpoint by its unique ``name``, idempotently (for configuration applied
        at every start): create it, or bring the live endpoint of that name to these settings
        (every option; the secret only when ``secret`` is given and differs, as a rotation).
        Takes :meth:`create_endpoint`'s keyword options. Returns ``(endpoint, created)``."""
    def get_endpoint(self, id: str) -> Endpoint:
        """The endpoint with this id (``NotFoundError`` if there is none)."""
    def update_endpoint(self, id: str, **changes: Any) -> Endpoint:
        """Change the given fields (any ``create_endpoint`` option but ``secret``); None clears an
        optional field. An unknown name raises ``TypeError``. Returns the endpoint as changed."""
    def delete_endpoint(self, id: str) -> None:
        """Soft-delete the endpoint: its unfinished deliveries are cancelled."""
    def rotate_secret(self, id: str, secret: Optional[str] = None) -> Endpoint:
        """Replace the endpoint's signing secret (generated unless given); the old one keeps
        signing for the store's ``rotation_grace``. Returns the endpoint."""
    def disable_endpoint(self, id: str, reason: Optional[str] = None) -> Endpoint:
        """Disable the endpoint: its deliveries pause until it is enabled. Returns it."""
    def enable_endpoint(self, id: str, catch_up: bool = True) -> Endpoint:
        """Enable the endpoint; with ``catch_up``, events appended while it was disabled are
        delivered too. Returns it."""
    def retry(self, delivery_id: int) -> DeliveryRecord:
        """Put a failed or succeeded delivery back to pending (a new attempt series); returns it."""
    def recover(self, endpoint_id: str, since: datetime) -> int:
        """Put every failed delivery of the endpoint whose event was recorded at or after
        ``since`` (a timezone-aware datetime) back to pending. Returns how many."""
    def replay(self, endpoint_id: str, from_position: int, to_position: Optional[int] = None) -> int:
        """Re-deliver every matching event of the position range to the endpoint. Returns the
        delivery rows created or reset."""

@final
class Subscription:
    """A running subscription, from :meth:`Store.subscribe`.

    ``with store.subscribe(...) as sub:`` stops it at the end of the block; so do ``stop()``
    and dropping the object. Several processes may run the same name: one is ``active``, the
    others stand by and take over when it stops or dies.
    """

    @property
    def name(self) -> str:
        """The subscription's name."""
    @property
    def active(self) -> bool:
        """Whether this runner holds the subscription's lease and applies events."""
    @property
    def ended(self) -> bool:
        """Whether the runner ended (stopped, store closed, or stopped after failures)."""
    @property
    def error(self) -> Optional[str]:
        """Why the runner ended, if not by ``stop()``."""
    def wait_for_position(self, position: int, timeout: float = 10.0) -> bool:
        """Block (GIL released) until this runner has passed ``position``: True; False after
        ``timeout`` seconds or once the runner ended. Ctrl-C ends the wait."""
    def stop(self) -> None:
        """Stop the runner: it finishes (or rolls back) the batch in hand. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class SubscriptionStatus:
    """Where a subscription is, as stored (:meth:`Store.subscription_status`)."""

    @property
    def name(self) -> str:
        """The subscription's name."""
    @property
    def position(self) -> int:
        """Every event at or before this position was applied, skipped or parked."""
    @property
    def head(self) -> int:
        """The log's last position."""
    @property
    def lag_events(self) -> int:
        """Events after ``position`` (matching or not)."""
    @property
    def lag(self) -> float:
        """Seconds since the first event after ``position`` was recorded; 0.0 when caught up."""
    @property
    def stopped(self) -> bool:
        """Whether it stopped after failing every attempt at a batch."""
    @property
    def failures(self) -> int:
        """Failed attempts at the batch after ``position`` so far."""
    @property
    def last_error(self) -> Optional[str]:
        """The handler's last error (``TypeName: message``), or None."""
    @property
    def last_error_at(self) -> Optional[datetime]:
        """When the last error happened, or None."""
    @property
    def parked(self) -> int:
        """How many events it parked."""

@final
class ParkedEvent:
    """An event a subscription set aside after it failed every attempt (``on_failure="park"``)."""

    @property
    def position(self) -> int:
        """Its position in the log."""
    @property
    def event_id(self) -> str:
        """Its id."""
    @property
    def error(self) -> str:
        """The handler's last error for it."""

@final
class InboxStatus:
    """What an inbox has done since it started (:meth:`Inbox.status`). Compare with ``==``."""

    @property
    def appended(self) -> int:
        """Messages whose events this inbox appended (new events)."""
    @property
    def duplicates(self) -> int:
        """Messages whose events were already in the log (redeliveries, or published twice),
        acknowledged again and not handed to the handler."""
    @property
    def rejected(self) -> int:
        """Messages that can never become events (not JSON, a reserved ``tidings.`` type, an
        id reused with other content), terminated."""
    @property
    def last_error(self) -> Optional[str]:
        """The last failure (connecting, a batch, the handler), if the last try failed; else None."""
    @property
    def running(self) -> bool:
        """Whether its thread still runs."""

@final
class Inbox:
    """A running inbox, from :meth:`Store.relay_in`: a thread consumes a JetStream stream into
    the store's log, exactly once.

    ``with store.relay_in(...) as inbox:`` stops it at the end of the block; so do ``stop()``,
    dropping the object and closing the store.
    """

    def status(self) -> InboxStatus:
        """What it has done so far."""
    def stop(self) -> None:
        """Stop it: the batch in hand commits (or not) and is acknowledged; returns (GIL
        released) when its thread has ended. Idempotent."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class AggregateHistory:
    """A stream's latest usable snapshot and the events after it (:meth:`Store.load_aggregate`)."""

    @property
    def snapshot(self) -> Optional[Snapshot]:
        """The latest snapshot, when its ``schema_version`` is the one asked for."""
    @property
    def events(self) -> list[Event]:
        """The events after the snapshot (all of them without one), upcast, in version order."""
    @property
    def version(self) -> int:
        """The stream's version (0: no stream yet)."""

@final
class Store:
    """The handle to one tidings database (a file, or ``":memory:"``).

    Options (keyword-only; None keeps core's default, shown as ``name=value``):

    - ``source``: names this producer in every webhook body (default: the host name);
    - ``durability``: ``"normal"`` (WAL, survives any process crash; webhooks are only sent
      for events that are durable) or ``"full"`` (fsync every commit);
    - ``allow_private`` / ``allowed_networks``: the egress policy. By default webhooks to
      loopback, private, link-local and metadata addresses are refused; ``allow_private``
      True opens them all, ``allowed_networks`` such as ``["127.0.0.0/8"]`` only those
      networks;
    - ``busy_timeout=5.0`` seconds, ``max_event_size=1048576`` bytes (1 MiB),
      ``rotation_grace=86400.0`` seconds (24 h), ``poll_interval=0.1`` seconds,
      ``tenant_rates`` (a list of :class:`TenantRate`).

    A context manager: leaving the ``with`` block closes the store.
    """

    def __new__(
        cls,
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
        json_default: Optional[Callable[[Any], Any]] = None,
    ) -> Self: ...
    @property
    def path(self) -> str:
        """The path the store was opened with (or ":memory:")."""
    @property
    def source(self) -> str:
        """The `source` written into every webhook body."""
    def close(self) -> None:
        """Stop the delivery engines started on this store (letting requests in flight finish
        within their grace), then close the store; later calls raise :class:`ClosedError`."""
    def _poll_interval(self) -> float:
        """Private, for ``tidings.aio``: the store's ``poll_interval`` in seconds."""
    def _commit_count(self) -> int:
        """Private, for ``tidings.aio``: how many commits this process made on this store."""
    def _wait_for_commit(self, seen: int, timeout: float) -> int:
        """Private, for ``tidings.aio``: wait until the commit count moves past ``seen`` or
        ``timeout`` seconds pass; returns the count."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> None: ...
    def transaction(self) -> Transaction:
        """Begin a write transaction; use it as ``with store.transaction() as tx:``."""
    def begin(self) -> Transaction:
        """Same as :meth:`transaction`, for explicit ``commit()`` / ``rollback()``."""
    def append(
        self,
        stream: str,
        type: str,
        data: _JSON,
        expected_version: _ExpectedVersion = None,
        metadata: Optional[Mapping[str, _JSON]] = None,
        tenant: Optional[str] = None,
        event_id: Optional[str] = None,
        *,
        schema_version: Optional[int] = None,
    ) -> Event:
        """Append one event to ``stream`` in its own transaction, queueing one delivery per
        matching enabled endpoint.

        ``expected_version``: None (any), 0 (the stream must not exist), n (exactly n) or
        :data:`STREAM_EXISTS`; a mismatch raises :class:`ConcurrencyError`. A caller-chosen
        ``event_id`` (a UUID) makes the append idempotent: the same id with the same content
        returns the original event, with other content raises
        :class:`IdempotencyConflictError`. ``type`` must not start with ``tidings.``.
        """
    def append_many(
        self, stream: str, events: Sequence[Mapping[str, Any]], expected_version: _ExpectedVersion = None
    ) -> list[Event]:
        """Append several events to ``stream`` in one transaction, all or none: one version
        check, consecutive versions and positions. Each event is a mapping with ``type`` and
        ``data``, and optionally ``metadata``, ``tenant`` and ``id`` (as for :meth:`append`).
        """
    def execute(self, sql: str, params: _SqlParams = None) -> ExecuteResult:
        """Run one statement of the application's SQL in its own transaction.

        Returns a :class:`tidings.ExecuteResult`: an ``int``, the rows changed (as before),
        whose ``lastrowid`` is the rowid an ``INSERT`` / ``REPLACE`` inserted, or None.
        ``params``: a tuple or list for ``?`` / ``?1``, a dict for ``:name``. A broken
        constraint raises :class:`IntegrityError`; ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` /
        ``SAVEPOINT`` are refused (:class:`InvalidInputError`): the transaction is tidings'."""
    def executemany(self, sql: str, params: _ParamSets) -> int:
        """Run one statement once per parameter set (one prepared statement, all in one
        transaction: all or none) and return the rows changed in all. ``params`` is an
        iterable of tuples or lists, or of dicts (not a mix)."""
    def executescript(self, script: str) -> None:
        """Run a script of SQL statements without parameters (the application's schema, say)
        in one transaction, all or none. Transaction control in it is refused
        (:class:`InvalidInputError`)."""
    def query(self, sql: str, params: _SqlParams = None) -> list[Row]:
        """Run a query of the application's SQL on a read connection (committed data) and
        return its rows as :class:`Row` objects, which index by position and by column name
        (``row[0]``, ``row["total"]``) and equal the tuple of their values."""
    def read_stream(
        self, stream: str, from_version: Optional[int] = None, limit: Optional[int] = None, backwards: bool = False
    ) -> list[Event]:
        """Read a stream from ``from_version`` (default: the first, or the last when backwards)."""
    def read_all(
        self,
        from_position: Optional[int] = None,
        limit: Optional[int] = 1000,
        types: Union[str, Sequence[str], None] = None,
        tenant: Optional[str] = None,
        wait: Optional[float] = None,
        stream: Optional[str] = None,
        backwards: bool = False,
    ) -> list[Event]:
        """Read the global log in position order, at most ``limit`` events (default 1000, core's
        page; None means the same page, never the whole log: page on from the last event's
        ``position + 1``, or use :meth:`iter_all`), optionally filtered by type patterns, tenant
        and stream. With ``wait``, block up to that many seconds until a matching event at or
        past ``from_position`` exists (long-poll; Ctrl-C ends it with ``KeyboardInterrupt``).
        ``from_position=None`` starts at the beginning, or at the end with ``backwards=True``
        (newest first; ``wait`` is ignored). For asyncio, see ``tidings.aio``."""
    def iter_all(
        self,
        from_position: Optional[int] = None,
        batch: int = 1000,
        types: Union[str, Sequence[str], None] = None,
        tenant: Optional[str] = None,
        stream: Optional[str] = None,
    ) -> EventIterator:
        """Iterate over the global log in position order, reading it lazily ``batch`` events at
        a time (default 1000), so a large log is never one list. Same filters as
        :meth:`read_all`; iteration ends at the end of the log."""
    def stream_version(self, stream: str) -> Optional[int]:
        """The stream's current version, or None if it does not exist."""
    def event(self, id: str) -> Event:
        """One event by id (``NotFoundError`` if there is none)."""
    def last_position(self) -> int:
        """The last global position handed out (0 for an empty log)."""
    def delete_stream(self, stream: str) -> int:
        """Hard-delete a stream's events (their unfinished deliveries are cancelled)."""
    def truncate_stream(self, stream: str, before_version: int, *, past_snapshot: bool = False) -> int:
        """Delete a stream's events below ``before_version``; the stream keeps its version. A
        cut past the latest snapshot (``before_version`` above its version + 1) is refused
        (:class:`InvalidInputError`): the events after it are the only record of what it does
        not hold; ``past_snapshot=True`` cuts anyway."""
    def prune_events(self, rules: Sequence[RetentionRule]) -> int:
        """Delete the events the retention rules (``RetentionRule``) let go (never those with
        unfinished deliveries). Returns how many."""
    def checkpoint(self, name: str) -> Optional[int]:
        """Consumer ``name``'s recorded position."""
    def set_checkpoint(self, name: str, position: int) -> None:
        """Record consumer ``name``'s position (a negative one is an ``InvalidInputError``); in a
        transaction, atomically with the rest of it."""
    def save_snapshot(self, stream: str, version: int, state: _JSON, schema_version: int = 1) -> None:
        """Save ``state`` (a JSON value, encoded as event data is) as the stream's snapshot at
        ``version``; ``schema_version`` names the state's shape, so a reader expecting another
        shape (:meth:`load_aggregate`) ignores it and folds the events instead."""
    def load_snapshot(self, stream: str) -> Optional[Snapshot]:
        """The stream's saved snapshot (``Snapshot``), or None."""
    def register_upcaster(self, event_type: str, from_version: int, upcaster: Callable[[Any], Any]) -> None:
        """Register ``upcaster`` for events of ``event_type`` stored at schema version
        ``from_version`` (``metadata["schema_version"]``, 1 when absent; ``append``'s
        ``schema_version`` writes it): it takes the old ``data`` and returns the data of version
        ``from_version + 1``. Every read applies the chain (``read_stream``, ``read_all``,
        ``iter_all``, ``event``, subscriptions, aggregates) and puts the version reached in the
        event's metadata; stored events never change. An upcaster that raises makes the read
        raise :class:`StorageError` naming the event; a second one for the same type and
        version is an :class:`InvalidInputError`. It runs on the reading thread (a
        subscription's runner, say), holding the GIL."""
    def load_aggregate(self, stream: str, state_version: int) -> AggregateHistory:
        """The snapshot of ``stream`` if its state has shape ``state_version`` (else None: the
        state is folded from every event) and the events after it, read together and upcast.
        What :class:`tidings.Repository` loads."""
    def subscribe(
        self,
        name: str,
        handler: Callable[[Transaction, list[Event]], object],
        *,
        types: Union[str, Sequence[str], None] = None,
        tenant: Optional[str] = None,
        stream_prefix: Optional[str] = None,
        batch_size: int = 256,
        max_attempts: int = 5,
        initial_delay: float = 0.1,
        max_delay: float = 30.0,
        on_failure: Literal["stop", "park"] = "stop",
    ) -> Subscription:
        """Start subscription ``name``: a runner thread calls ``handler(tx, events)`` with each
        batch of matching events after the subscription's stored position; the handler's
        writes through ``tx`` and the new position commit together, so a read model in this
        file is updated exactly once per event, through crashes and restarts. Returns at once.

        The handler runs on the runner thread, holding the GIL; it may not commit or roll
        back ``tx``. An exception in it rolls the batch back and counts as a failed attempt
        (its text is recorded), retried after ``initial_delay`` seconds, doubling up to
        ``max_delay``. After ``max_attempts``: ``on_failure="stop"`` stops the subscription
        (:meth:`subscription_status` shows the error, :meth:`reset_subscription` clears it),
        ``"park"`` sets the failing event aside (:meth:`parked_events`) and goes on. Filters:
        ``types`` (patterns such as ``"order.*"``), ``tenant``, ``stream_prefix``; at most
        ``batch_size`` events per transaction. One runner per name is active across
        processes; the others stand by. Effects outside the file are at-least-once."""
    def relay_in(
        self,
        url: str,
        stream: str,
        consumer: str,
        handler: Optional[Callable[[Transaction, list[Event]], object]] = None,
        *,
        auth: Union[Bearer, NatsCredentials, None] = None,
        filter_subject: Optional[str] = None,
        batch: int = 100,
        ack_wait: float = 30.0,
        stream_prefix: Optional[str] = None,
    ) -> Inbox:
        """Consume JetStream stream ``stream`` on the NATS server ``url`` (``nats://host:port``
        or ``tls://host:port``) into this store's log, with the durable consumer ``consumer``
        (created when missing; the server keeps its position): the inbox. Returns an
        :class:`Inbox` at once; it connects, and retries connecting, on its own thread.

        Each batch of at most ``batch`` messages is one transaction: every message is appended
        as one event (its ``Nats-Msg-Id`` is the event id, so a redelivered or twice-published
        message is appended once, counted in ``duplicates``), ``handler(tx, events)`` (when
        given) gets the events that were new and writes through ``tx`` (it may not commit),
        and the transaction commits; only then are the messages acknowledged. So each
        message's event, and the handler's rows for it, commit exactly once. An exception in
        the handler rolls the batch back (``status().last_error``); it is fetched again after
        a backoff. The handler runs on the inbox's thread, holding the GIL.

        ``auth``: ``Bearer(token)`` (the NATS token) or ``NatsCredentials(creds)``.
        ``filter_subject``: only messages on matching subjects. ``ack_wait``: seconds the
        server waits for an ack before it redelivers. ``stream_prefix``: put before each
        event's stream name. The server's host must be allowed by the store's egress policy."""
    def subscription_status(self, name: str) -> SubscriptionStatus:
        """Where subscription ``name`` is; :class:`NotFoundError` if it was never started or reset."""
    def subscriptions(self) -> list[SubscriptionStatus]:
        """Every subscription's status, by name."""
    def reset_subscription(self, name: str, position: int) -> None:
        """Move subscription ``name`` to ``position`` (0: the start of the log, to rebuild its
        read model) and clear a stop. A running runner notices before its next batch."""
    def parked_events(self, name: str) -> list[ParkedEvent]:
        """The events subscription ``name`` parked, by position."""
    def create_endpoint(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        tenant: Optional[str] = None,
        secret: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: Union[Bearer, ApiKey, NatsCredentials, None] = None,
        timeout: Optional[float] = None,
        max_attempts: Optional[int] = None,
        initial_delay: Optional[float] = None,
        max_delay: Optional[float] = None,
        multiplier: Optional[float] = None,
        jitter: Optional[float] = None,
        rate_limit: Optional[float] = None,
        burst: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        ordered: Optional[bool] = None,
        verify_tls: Optional[bool] = None,
        ca_cert: Optional[str] = None,
        signature_header: Optional[str] = None,
        template: Union[str, Mapping[str, str], None] = None,
        keepalive: Optional[float] = None,
        final_statuses: Optional[Sequence[int]] = None,
        enabled: Optional[bool] = None,
        subject: Optional[str] = None,
    ) -> Endpoint:
        """Create a webhook endpoint. An argument left as None keeps core's default:
        ``events=["*"]``, ``timeout=15.0`` seconds, ``max_attempts=12``, ``initial_delay=5.0``
        seconds, ``max_delay=36000.0`` seconds (10 h), ``multiplier=3.0``, ``jitter=0.2``, no
        rate limit, ``max_in_flight=4``, ``ordered=False``, ``verify_tls=True``,
        ``enabled=True``. A secret (``whsec_...``) is generated unless given. ``template`` is one _JSON
        template (str, with ``"{{data}}"``-style placeholders) for every type, or a dict
        ``{type_pattern: template}``. ``signature_header`` (e.g. ``"X-Webhook-Signature"``)
        adds ``sha256=<hex>`` of the body keyed with the whole secret string. A URL whose host
        is a literal address the store's egress policy refuses (loopback, private, metadata)
        raises :class:`InvalidInputError` on ``url`` at once.

        A ``nats://host:port`` or ``tls://host:port`` URL makes a JetStream endpoint: each
        event is published to that NATS server (``Nats-Msg-Id`` the event id) on the subject
        ``subject`` gives, a template with ``{type}``, ``{stream}``, ``{tenant}`` and
        ``{partition:N}`` placeholders (default ``tidings.{type}``); ``auth`` is then
        ``Bearer(token)`` (the NATS token) or ``NatsCredentials(creds)``, and a JetStream
        stream must take the subject. ``subject`` on a webhook is an :class:`InvalidInputError`."""
    def upsert_endpoint(self, url: str, *, name: str, **options: Any) -> tuple[Endpoint, bool]:
        """Declare an endpoint by its unique ``name``, idempotently (for configuration applied
        at every start): create it, or bring the live endpoint of that name to these settings
        (every option; the secret only when ``secret`` is given and differs, as a rotation).
        Takes :meth:`create_endpoint`'s keyword options. Returns ``(endpoint, created)``."""
    def get_endpoint(self, id: str) -> Endpoint:
        """The endpoint with this id (``NotFoundError`` if there is none)."""
    def list_endpoints(self, tenant: Optional[str] = None) -> list[Endpoint]:
        """Every endpoint (not deleted), or those of one tenant."""
    def update_endpoint(self, id: str, **changes: Any) -> Endpoint:
        """Change the given fields (any ``create_endpoint`` argument but ``secret``); None
        clears an optional field. An unknown name raises TypeError."""
    def delete_endpoint(self, id: str) -> None:
        """Soft delete: the endpoint's unfinished deliveries are cancelled."""
    def rotate_secret(self, id: str, secret: Optional[str] = None) -> Endpoint:
        """Replace the secret (generated unless given); the old one keeps signing for the
        rotation grace period."""
    def disable_endpoint(self, id: str, reason: Optional[str] = None) -> Endpoint:
        """Disable the endpoint: its deliveries pause until it is enabled. Returns it."""
    def enable_endpoint(self, id: str, catch_up: bool = True) -> Endpoint:
        """Enable; with ``catch_up``, events appended while disabled are delivered too."""
    def start_delivery(
        self,
        workers: Optional[int] = None,
        *,
        max_workers: Optional[int] = None,
        max_in_flight: Optional[int] = None,
        lease_grace: Optional[float] = None,
        unhealthy_after: Optional[int] = None,
        circuit_after: Optional[int] = None,
        circuit_cooldown: Optional[float] = None,
        disable_after: Optional[float] = None,
        max_records: Optional[int] = None,
        max_record_age: Optional[float] = None,
        housekeeping_interval: Optional[float] = None,
        event_retention: Optional[Sequence[RetentionRule]] = None,
        owner: Optional[str] = None,
    ) -> DeliveryEngine:
        """Start the delivery engine. Use it as a context manager or call ``stop()``.

        Options (None keeps core's default, shown as ``name=value``; times in seconds):

        - ``workers=16``: sending threads kept for requests that make progress; a request
          in flight longer than 50 ms stops counting, and the pool starts another thread in
          its place while jobs wait;
        - ``max_workers`` (256, or ``workers`` if more): most sending threads, hence most
          requests in flight; at least ``workers``, at most 4096. Endpoints not proven
          healthy (new, failing, or with an open circuit) together get at most half;
        - ``max_in_flight``: most deliveries claimed at once (default: 4 per worker, at least
          512 and ``max_workers``);
        - ``lease_grace=30.0``: added to an endpoint's timeout to form a claim's lease;
        - ``unhealthy_after=5``: failed attempts in a row that mark an endpoint unhealthy;
        - ``circuit_after=5``: failed attempts in a row that open an endpoint's circuit:
          nothing is sent to it for ``circuit_cooldown``, then one probe, whose success closes
          the circuit;
        - ``circuit_cooldown=30.0``: how long an open circuit waits before its probe, doubled
          at each opening since it last closed, up to 10 minutes (or this, if longer); between
          0.01 and 86400;
        - ``disable_after=432000.0`` (5 days): an endpoint failing with no success for this
          long is disabled;
        - ``max_records=100000`` and ``max_record_age=2592000.0`` (30 days): finished delivery
          records kept;
        - ``housekeeping_interval=60.0``: how often retention and WAL checkpoints run;
        - ``event_retention``: log retention rules applied by housekeeping (default: keep all);
        - ``owner``: names this engine's leases (default: source, process id, random suffix).

        A value out of range raises :class:`InvalidInputError` naming the option."""
    def deliveries(
        self,
        endpoint_id: Optional[str] = None,
        state: Optional[str] = None,
        event_id: Optional[str] = None,
        limit: int = 100,
        before_id: Optional[int] = None,
    ) -> list[DeliveryRecord]:
        """List delivery records, newest first; ``state`` keeps those in one lifecycle state
        (``pending``, ``sending``, ``retrying``, ``paused``, ``succeeded``, ``failed``,
        ``cancelled``)."""
    def delivery(self, id: int) -> DeliveryRecord:
        """One delivery record by id (``NotFoundError`` if there is none)."""
    def delivery_counts(self, endpoint_id: Optional[str] = None) -> dict[str, int]:
        """Delivery counts by state name, every state present (zero included), in lifecycle
        order; for one endpoint or all."""
    def attempts(self, delivery_id: int) -> list[Attempt]:
        """The attempts (``Attempt``) made for one delivery, oldest first."""
    def retry(self, delivery_id: int) -> DeliveryRecord:
        """Put a failed or succeeded delivery back to pending (a new attempt series)."""
    def recover(self, endpoint_id: str, since: datetime) -> int:
        """Put every failed delivery of the endpoint whose event was recorded at or after
        ``since`` (timezone-aware) back to pending. Returns how many."""
    def replay(self, endpoint_id: str, from_position: int, to_position: Optional[int] = None) -> int:
        """Re-deliver every matching event in the position range. Returns rows created or reset."""
    def send_test(self, endpoint_id: str) -> Attempt:
        """Send a ``tidings.test`` event now and return the attempt (nothing is stored)."""
    def call(self, endpoint_id: str, type: str, data: _JSON, timeout: float = 5.0) -> Response:
        """Send an event synchronously and return the receiver's answer (nothing is stored);
        a transport failure raises :class:`DeliveryError`."""
    def stats(self) -> dict[str, Any]:
        """Counts by state, success rate and latency percentiles (seconds), overall and per
        endpoint: keys ``events``, ``by_state``, ``success_rate``, ``p50``, ``p95``, ``p99``,
        ``endpoints``. Each item of ``endpoints`` is a dict with ``endpoint_id``, ``name``,
        ``by_state``, ``success_rate``, ``p50``, ``p95``, ``p99``, ``consecutive_failures``,
        ``unhealthy``, ``enabled``, ``circuit`` (``"closed"``, ``"open"`` or ``"half_open"``)
        and ``concurrency`` (as on :class:`Endpoint`)."""
    def rate_stats(self, tenant: str) -> dict[str, Any]:
        """A tenant's event rate meter: ``tenant``, ``current`` (this minute), ``limit``,
        ``mode``, ``warnings``."""

def _core_defaults() -> dict[str, dict[str, Any]]:
    """Core's defaults by callable (``"Store"``, ``"Store.create_endpoint"``, ...) and argument,
    for the binding's own test that every default it shows is core's. Not part of the API."""

def _snapshot_due(every: int, before: int, after: int) -> bool:
    """Private, for ``tidings.Repository``: whether a save moving an aggregate from version
    ``before`` to ``after`` also snapshots, under core's policy of one every ``every`` events."""

def verify(
    body: Union[bytes, bytearray, str],
    headers: _Headers,
    secret: Union[str, Sequence[str]],
    tolerance: float = 300.0,
) -> Any:
    """Verify a received webhook and return its parsed _JSON body.

    Reads ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or their ``svix-*``
    aliases, any letter case). ``secret`` is one ``whsec_...`` secret or several (during a
    rotation). ``headers`` is anything with ``items()`` giving (name, value) pairs: a
    ``dict``, Starlette's ``request.headers``, ``http.server``'s ``self.headers``. Raises
    :class:`SignatureError` when the signature does not match or the timestamp is further
    than ``tolerance`` seconds from now.
    """
