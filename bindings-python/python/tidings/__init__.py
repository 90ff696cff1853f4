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

Everything here comes from the native module ``tidings._tidings``; see its stubs for the
documentation of each class. Core's ``tracing`` output goes to the ``logging`` logger
``"tidings"``.

In one Python process, do not open the same database file with the ``sqlite3`` module: two
SQLite libraries in one process cancel each other's locks and can corrupt the file. Run the
application's SQL through ``Store.execute`` / ``Store.query`` or a transaction instead.
"""

from ._tidings import (
    SCHEMA_VERSION,
    STREAM_EXISTS,
    ApiKey,
    Attempt,
    Bearer,
    BusyError,
    ClosedError,
    ConcurrencyError,
    Delivery,
    DeliveryEngine,
    DeliveryError,
    Endpoint,
    Error,
    Event,
    IdempotencyConflictError,
    IncompatibleDatabaseError,
    InvalidInputError,
    NotFoundError,
    RateLimitedError,
    Response,
    RetentionRule,
    SignatureError,
    Snapshot,
    StorageError,
    Store,
    StreamExists,
    TenantRate,
    Transaction,
    TransactionOpenError,
    __version__,
    verify,
)

__all__ = [
    "SCHEMA_VERSION",
    "STREAM_EXISTS",
    "ApiKey",
    "Attempt",
    "Bearer",
    "BusyError",
    "ClosedError",
    "ConcurrencyError",
    "Delivery",
    "DeliveryEngine",
    "DeliveryError",
    "Endpoint",
    "Error",
    "Event",
    "IdempotencyConflictError",
    "IncompatibleDatabaseError",
    "InvalidInputError",
    "NotFoundError",
    "RateLimitedError",
    "Response",
    "RetentionRule",
    "SignatureError",
    "Snapshot",
    "StorageError",
    "Store",
    "StreamExists",
    "TenantRate",
    "Transaction",
    "TransactionOpenError",
    "__version__",
    "verify",
]
