"""Type stubs of the native module ``tidings._tidings`` (re-exported by ``tidings``).

Times are timezone-aware ``datetime`` objects in UTC; durations are float seconds. _JSON values
(event data, metadata, snapshot state) cross as ``None``, ``bool``, ``int``, ``float``,
``str``, ``list`` and ``dict`` (str keys), and come back as the same types. Every call that can
block (SQLite, waiting, HTTP) releases the GIL, and one ``Store`` may be used from many
threads at once.
"""

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, Optional, Union, final

from typing_extensions import Self

_JSON = Any
"""A _JSON value: None, bool, int, float, str, list or dict with str keys."""

_SqlValue = Union[None, int, float, str, bytes]
"""A value of an application SQL row or parameter."""

_SqlParams = Union[Sequence[Union[_SqlValue, bool, bytearray]], Mapping[str, Union[_SqlValue, bool, bytearray]], None]
"""Positional parameters (tuple or list, for ``?`` / ``?1``) or named ones (dict, for ``:name``)."""

__all__ = [
    "Error",
    "ConcurrencyError",
    "IdempotencyConflictError",
    "NotFoundError",
    "InvalidInputError",
    "SignatureError",
    "RateLimitedError",
    "ClosedError",
    "BusyError",
    "StorageError",
    "DeliveryError",
    "TransactionOpenError",
    "IncompatibleDatabaseError",
    "ReadOnlyError",
    "TransactionFailedError",
    "EngineStartError",
    "Store",
    "Transaction",
    "Endpoint",
    "Bearer",
    "ApiKey",
    "DeliveryEngine",
    "RetentionRule",
    "TenantRate",
    "Event",
    "DeliveryRecord",
    "Attempt",
    "Response",
    "Snapshot",
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

class BusyError(Error):
    """The database stayed locked past the busy timeout."""

class StorageError(Error):
    """SQLite failed (I/O, a full disk, a damaged file or stored value)."""

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
    def token(self) -> str: ...

@final
class ApiKey:
    """An API key sent as ``<header>: <value>`` with every request to an endpoint."""

    def __new__(cls, header: str, value: str) -> Self: ...
    @property
    def header(self) -> str: ...
    @property
    def value(self) -> str: ...

@final
class TenantRate:
    """A per-tenant event rate limit, a ``Store`` option.

    ``tenant=None`` makes it the default for every tenant without its own rule. ``mode``:
    ``"warn"`` counts a warning and appends one ``tidings.rate_limit.exceeded`` event per
    minute; ``"enforce"`` refuses the append with :class:`RateLimitedError`.
    """

    def __new__(cls, per_minute: int, tenant: Optional[str] = None, mode: Literal["warn", "enforce"] = "warn") -> Self: ...
    @property
    def per_minute(self) -> int: ...
    @property
    def tenant(self) -> Optional[str]: ...
    @property
    def mode(self) -> str: ...

@final
class RetentionRule:
    """Keep events whose type matches ``pattern`` at most ``max_age`` seconds old and/or only
    the newest ``max_count`` of them (events with unfinished deliveries are always kept)."""

    def __new__(cls, pattern: str, max_age: Optional[float] = None, max_count: Optional[int] = None) -> Self: ...
    @property
    def pattern(self) -> str: ...
    @property
    def max_age(self) -> Optional[float]: ...
    @property
    def max_count(self) -> Optional[int]: ...

@final
class Event:
    """An event as stored in the log."""

    @property
    def id(self) -> str:
        """The event id (UUID); also the ``webhook-id`` of every delivery of it."""
    @property
    def stream(self) -> str: ...
    @property
    def version(self) -> int:
        """1, 2, ... within the stream."""
    @property
    def position(self) -> int:
        """Global position: gap-free, in commit order."""
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> _JSON: ...
    @property
    def metadata(self) -> dict[str, _JSON]: ...
    @property
    def tenant(self) -> Optional[str]: ...
    @property
    def recorded_at(self) -> datetime: ...

@final
class Snapshot:
    """A stream's saved state."""

    @property
    def version(self) -> int: ...
    @property
    def state(self) -> _JSON: ...
    @property
    def saved_at(self) -> datetime: ...


@final
class DeliveryRecord:
    """One delivery record: an event on its way to one endpoint."""

    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> Optional[str]:
        """None once the event was deleted with its stream."""
    @property
    def event_position(self) -> int: ...
    @property
    def event_type(self) -> Optional[str]: ...
    @property
    def endpoint_id(self) -> str: ...
    @property
    def state(self) -> str:
        """``pending``, ``sending``, ``retrying``, ``paused``, ``succeeded``, ``failed`` or ``cancelled``."""
    @property
    def attempts(self) -> int:
        """Attempts made in the current attempt series."""
    @property
    def last_status_code(self) -> Optional[int]: ...
    @property
    def last_error(self) -> Optional[str]: ...
    @property
    def next_attempt_at(self) -> Optional[datetime]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def touched_at(self) -> datetime: ...
    @property
    def completed_at(self) -> Optional[datetime]: ...

@final
class Attempt:
    """One attempt to deliver (or the result of ``send_test``)."""

    @property
    def number(self) -> int: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def duration(self) -> float:
        """Seconds."""
    @property
    def status_code(self) -> Optional[int]: ...
    @property
    def error_kind(self) -> Optional[str]:
        """``status``, ``timeout``, ``connect``, ``tls``, ``dns``, ``egress_refused``, ``io``."""
    @property
    def error(self) -> Optional[str]: ...
    @property
    def response_body(self) -> Optional[str]:
        """The first KiB of the response body."""

@final
class Response:
    """The answer to a synchronous :meth:`Store.call`."""

    @property
    def status(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def content_type(self) -> Optional[str]: ...
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
    def id(self) -> str: ...
    @property
    def secret(self) -> str:
        """The current signing secret, ``whsec_<base64>``."""
    @property
    def url(self) -> str:
        """The full URL, query included (``repr()`` shows it redacted)."""
    @property
    def name(self) -> Optional[str]: ...
    @property
    def events(self) -> list[str]:
        """Event type patterns: exact, ``prefix.*`` or ``*`` (which excludes ``tidings.*``)."""
    @property
    def tenant(self) -> Optional[str]: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def auth(self) -> Union[Bearer, ApiKey, None]: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def timeout(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def initial_delay(self) -> float: ...
    @property
    def max_delay(self) -> float: ...
    @property
    def multiplier(self) -> float: ...
    @property
    def jitter(self) -> float: ...
    @property
    def rate_limit(self) -> Optional[float]: ...
    @property
    def burst(self) -> Optional[int]: ...
    @property
    def max_in_flight(self) -> int: ...
    @property
    def ordered(self) -> bool: ...
    @property
    def verify_tls(self) -> bool: ...
    @property
    def ca_cert(self) -> Optional[str]: ...
    @property
    def signature_header(self) -> Optional[str]: ...
    @property
    def template(self) -> Union[str, dict[str, str], None]:
        """As given: one template (str) for every type, a dict by type pattern, or None."""
    @property
    def templates(self) -> dict[str, str]:
        """Every template by type pattern (``"*"`` for one given as a str)."""
    @property
    def keepalive(self) -> Optional[float]: ...
    @property
    def final_statuses(self) -> list[int]: ...
    @property
    def disabled_reason(self) -> Optional[str]: ...
    @property
    def consecutive_failures(self) -> int: ...
    @property
    def unhealthy(self) -> bool: ...
    @property
    def last_success_at(self) -> Optional[datetime]: ...
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
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...

@final
class DeliveryEngine:
    """The running delivery engine returned by :meth:`Store.start_delivery`.

    A context manager: leaving the ``with`` block stops it (5 s grace). Dropping it stops it too.
    """

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is due *now* or in flight, or until ``timeout`` seconds passed.
        Returns whether the engine became idle (False on the timeout or once stopped).

        Deliveries waiting for a later retry, endpoints whose circuit is open and other
        engines' claims do not count: use it to let a burst settle. To know every delivery
        is finished, use :meth:`drain`."""
    def drain(self, timeout: float) -> bool:
        """Block until every delivery is finished: none is pending, sending or retrying, in
        this process or any other on the file (paused ones, of disabled endpoints, do not
        count), or until ``timeout`` seconds passed. Returns whether that happened (False on
        the timeout or once stopped).

        Unlike :meth:`wait_idle`, it also waits for retries scheduled later, endpoints whose
        circuit is open and other engines' claims: use it before stopping, in tests, or in a
        script that must know everything was delivered (or failed for good). A retry may be
        hours away, so there is no default ``timeout``."""
    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; requests in flight may finish within ``timeout`` seconds; claims not
        finished by then are released for the next run. Idempotent."""
    @property
    def running(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...

@final
class Transaction:
    """An open write transaction (``BEGIN IMMEDIATE``).

    ``with store.transaction() as tx:`` commits when the block ends normally and rolls back when
    it raises. Everything done through ``tx`` (application SQL, appends, checkpoints,
    snapshots, endpoint changes) commits together. While it is open, other writes on the same
    thread raise :class:`TransactionOpenError`; other threads wait for it.

    An append refused by its checks (:class:`InvalidInputError`, :class:`ConcurrencyError`,
    :class:`IdempotencyConflictError`, :class:`RateLimitedError`) writes nothing, and the
    transaction goes on. An append
    that fails while writing (:class:`StorageError`, e.g. a full disk) fails the transaction:
    every later call and ``commit`` raise :class:`StorageError`, and it can only be rolled back.
    """

    @property
    def active(self) -> bool: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: object, _exc_value: object, _traceback: object) -> bool: ...
    def execute(self, sql: str, params: _SqlParams = None) -> int:
        """Run one statement of the application's SQL; returns the rows changed."""
    def query(self, sql: str, params: _SqlParams = None) -> list[tuple[_SqlValue, ...]]:
        """Run a query of the application's SQL, as this transaction sees the database."""
    def append(
        self,
        stream: str,
        type: str,
        data: _JSON,
        expected_version: _ExpectedVersion = None,
        metadata: Optional[Mapping[str, _JSON]] = None,
        tenant: Optional[str] = None,
        event_id: Optional[str] = None,
    ) -> Event:
        """Append one event to ``stream``; see :meth:`Store.append`."""
    def append_many(
        self, stream: str, events: Sequence[Mapping[str, Any]], expected_version: _ExpectedVersion = None
    ) -> list[Event]:
        """Append several events to ``stream`` at once; see :meth:`Store.append_many`."""
    def read_stream(
        self, stream: str, from_version: Optional[int] = None, limit: Optional[int] = None, backwards: bool = False
    ) -> list[Event]: ...
    def stream_version(self, stream: str) -> Optional[int]: ...
    def checkpoint(self, name: str) -> Optional[int]: ...
    def set_checkpoint(self, name: str, position: int) -> None:
        """Record consumer ``name``'s position, atomically with the rest of the transaction."""
    def save_snapshot(self, stream: str, version: int, state: _JSON) -> None: ...
    def delete_stream(self, stream: str) -> int: ...
    def truncate_stream(self, stream: str, before_version: int) -> int: ...
    def create_endpoint(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        tenant: Optional[str] = None,
        secret: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: Union[Bearer, ApiKey, None] = None,
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
    ) -> Endpoint:
        """Create an endpoint in this transaction; see :meth:`Store.create_endpoint`."""
    def get_endpoint(self, id: str) -> Endpoint: ...
    def update_endpoint(self, id: str, **changes: Any) -> Endpoint: ...
    def delete_endpoint(self, id: str) -> None: ...
    def rotate_secret(self, id: str, secret: Optional[str] = None) -> Endpoint: ...
    def disable_endpoint(self, id: str, reason: Optional[str] = None) -> Endpoint: ...
    def enable_endpoint(self, id: str, catch_up: bool = True) -> Endpoint: ...
    def retry(self, delivery_id: int) -> DeliveryRecord: ...
    def recover(self, endpoint_id: str, since: datetime) -> int: ...
    def replay(self, endpoint_id: str, from_position: int, to_position: Optional[int] = None) -> int: ...

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
    ) -> Self: ...
    @property
    def path(self) -> str: ...
    @property
    def source(self) -> str: ...
    def close(self) -> None:
        """Close the store; later calls raise :class:`ClosedError`."""
    def __enter__(self) -> Self: ...
    def __exit__(self, *_exc: object) -> bool: ...
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
    def execute(self, sql: str, params: _SqlParams = None) -> int:
        """Run one statement of the application's SQL in its own transaction."""
    def query(self, sql: str, params: _SqlParams = None) -> list[tuple[_SqlValue, ...]]:
        """Run a query of the application's SQL on a read connection."""
    def read_stream(
        self, stream: str, from_version: Optional[int] = None, limit: Optional[int] = None, backwards: bool = False
    ) -> list[Event]:
        """Read a stream from ``from_version`` (default: the first, or the last when backwards)."""
    def read_all(
        self,
        from_position: Optional[int] = None,
        limit: Optional[int] = None,
        types: Union[str, Sequence[str], None] = None,
        tenant: Optional[str] = None,
        wait: Optional[float] = None,
        stream: Optional[str] = None,
        backwards: bool = False,
    ) -> list[Event]:
        """Read the global log in position order, optionally filtered by type patterns, tenant
        and stream. With ``wait``, block up to that many seconds until a matching event at or
        past ``from_position`` exists (long-poll). ``from_position=None`` starts at the
        beginning, or at the end with ``backwards=True`` (newest first; ``wait`` is ignored)."""
    def stream_version(self, stream: str) -> Optional[int]:
        """The stream's current version, or None if it does not exist."""
    def event(self, id: str) -> Event: ...
    def last_position(self) -> int: ...
    def delete_stream(self, stream: str) -> int:
        """Hard-delete a stream's events (their unfinished deliveries are cancelled)."""
    def truncate_stream(self, stream: str, before_version: int) -> int:
        """Delete a stream's events below ``before_version``; the stream keeps its version."""
    def prune_events(self, rules: Sequence[RetentionRule]) -> int: ...
    def checkpoint(self, name: str) -> Optional[int]:
        """Consumer ``name``'s recorded position."""
    def set_checkpoint(self, name: str, position: int) -> None: ...
    def save_snapshot(self, stream: str, version: int, state: _JSON) -> None: ...
    def load_snapshot(self, stream: str) -> Optional[Snapshot]: ...
    def create_endpoint(
        self,
        url: str,
        *,
        events: Optional[Sequence[str]] = None,
        name: Optional[str] = None,
        tenant: Optional[str] = None,
        secret: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        auth: Union[Bearer, ApiKey, None] = None,
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
    ) -> Endpoint:
        """Create a webhook endpoint. An argument left as None keeps core's default:
        ``events=["*"]``, ``timeout=15.0`` seconds, ``max_attempts=12``, ``initial_delay=5.0``
        seconds, ``max_delay=36000.0`` seconds (10 h), ``multiplier=3.0``, ``jitter=0.2``, no
        rate limit, ``max_in_flight=4``, ``ordered=False``, ``verify_tls=True``,
        ``enabled=True``. A secret (``whsec_...``) is generated unless given. ``template`` is one _JSON
        template (str, with ``"{{data}}"``-style placeholders) for every type, or a dict
        ``{type_pattern: template}``. ``signature_header`` (e.g. ``"X-Webhook-Signature"``)
        adds ``sha256=<hex>`` of the body keyed with the whole secret string."""
    def get_endpoint(self, id: str) -> Endpoint: ...
    def list_endpoints(self, tenant: Optional[str] = None) -> list[Endpoint]: ...
    def update_endpoint(self, id: str, **changes: Any) -> Endpoint:
        """Change the given fields (any ``create_endpoint`` argument but ``secret``); None
        clears an optional field. An unknown name raises TypeError."""
    def delete_endpoint(self, id: str) -> None:
        """Soft delete: the endpoint's unfinished deliveries are cancelled."""
    def rotate_secret(self, id: str, secret: Optional[str] = None) -> Endpoint:
        """Replace the secret (generated unless given); the old one keeps signing for the
        rotation grace period."""
    def disable_endpoint(self, id: str, reason: Optional[str] = None) -> Endpoint: ...
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
    def delivery(self, id: int) -> DeliveryRecord: ...
    def delivery_counts(self, endpoint_id: Optional[str] = None) -> dict[str, int]:
        """Delivery counts by state name, every state present (zero included), in lifecycle
        order; for one endpoint or all."""
    def attempts(self, delivery_id: int) -> list[Attempt]: ...
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

def verify(
    body: Union[bytes, bytearray, str],
    headers: Mapping[str, str],
    secret: Union[str, Sequence[str]],
    tolerance: float = 300.0,
) -> Any:
    """Verify a received webhook and return its parsed _JSON body.

    Reads ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (or their ``svix-*``
    aliases, any letter case). ``secret`` is one ``whsec_...`` secret or several (during a
    rotation). Raises :class:`SignatureError` when the signature does not match or the
    timestamp is further than ``tolerance`` seconds from now.
    """
