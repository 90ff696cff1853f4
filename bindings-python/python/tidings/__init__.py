"""tidings: an embedded SQLite event log with a transactional outbox and signed webhooks.

The application's rows, its events and the webhook deliveries those events cause commit in one
SQLite transaction; a delivery engine inside the process sends them, signed the Standard
Webhooks way, with retries.

    import tidings

    with tidings.Store("app.db") as store:
        endpoint = store.create_endpoint("https://example.com/hook", events=["order.*"])
        with store.transaction() as tx:
            tx.execute("INSERT INTO orders (id, total) VALUES (?, ?)", (42, 9.99))
            tx.append("order-42", "order.created", {"total": 9.99})
        with store.start_delivery() as delivery:
            delivery.wait_idle(10.0)

Projections: ``store.subscribe(name, handler)`` applies every event to ``handler(tx, events)``
exactly once, its writes and position in one transaction. Aggregates: subclass
``tidings.Aggregate`` (commands ``record`` events, ``@tidings.applies`` methods fold them) and
load and save them with a ``tidings.Repository``.

For asyncio (transactions that may await inside, ``read_all`` as an async iterator,
subscriptions whose waits are awaitable), see ``tidings.aio``.

Everything here comes from the native module ``tidings._tidings``; see its stubs for the
documentation of each class. Core's ``tracing`` output goes to the ``logging`` logger
``"tidings"``.

In one Python process, do not open the same database file with the ``sqlite3`` module: two
SQLite libraries in one process cancel each other's locks and can corrupt the file. Run the
application's SQL through ``Store.execute`` / ``Store.query`` or a transaction instead.
"""

from typing import TYPE_CHECKING

from ._aggregate import Aggregate, Repository, applies
from ._tidings import (
    SCHEMA_VERSION,
    STREAM_EXISTS,
    AggregateHistory,
    ApiKey,
    Attempt,
    Bearer,
    BusyError,
    ClosedError,
    ConcurrencyError,
    DeliveryEngine,
    DeliveryError,
    DeliveryRecord,
    Endpoint,
    Error,
    Event,
    IdempotencyConflictError,
    EngineStartError,
    EventIterator,
    ExecuteResult,
    ForkedError,
    Inbox,
    InboxStatus,
    IncompatibleDatabaseError,
    IntegrityError,
    InvalidInputError,
    NatsCredentials,
    NotFoundError,
    ParkedEvent,
    RateLimitedError,
    ReadOnlyError,
    Response,
    RetentionRule,
    Row,
    SignatureError,
    Snapshot,
    StorageError,
    Store,
    StreamExists,
    Subscription,
    SubscriptionStatus,
    TenantRate,
    Transaction,
    TransactionFailedError,
    TransactionOpenError,
    WrongThreadError,
    __version__,
    verify,
)

__all__ = [
    "SCHEMA_VERSION",
    "STREAM_EXISTS",
    "Aggregate",
    "AggregateHistory",
    "ApiKey",
    "Attempt",
    "Bearer",
    "BusyError",
    "ClosedError",
    "ConcurrencyError",
    "DeliveryEngine",
    "DeliveryError",
    "DeliveryRecord",
    "Endpoint",
    "Error",
    "Event",
    "IdempotencyConflictError",
    "EngineStartError",
    "EventIterator",
    "ExecuteResult",
    "ForkedError",
    "Inbox",
    "InboxStatus",
    "IncompatibleDatabaseError",
    "IntegrityError",
    "InvalidInputError",
    "NatsCredentials",
    "NotFoundError",
    "ParkedEvent",
    "RateLimitedError",
    "ReadOnlyError",
    "Repository",
    "Response",
    "RetentionRule",
    "Row",
    "SignatureError",
    "Snapshot",
    "StorageError",
    "Store",
    "StreamExists",
    "Subscription",
    "SubscriptionStatus",
    "TenantRate",
    "Transaction",
    "TransactionFailedError",
    "TransactionOpenError",
    "WrongThreadError",
    "__version__",
    "applies",
    "verify",
]

# Deprecated: ``Delivery`` is the old name of ``DeliveryRecord``, kept for one release. Using
# it warns (DeprecationWarning); it is not in ``__all__``.
if TYPE_CHECKING:
    Delivery = DeliveryRecord
else:

    def __getattr__(name: str) -> object:
        if name == "Delivery":
            import warnings

            warnings.warn(
                "tidings.Delivery was renamed tidings.DeliveryRecord", DeprecationWarning, stacklevel=2
            )
            return DeliveryRecord
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
