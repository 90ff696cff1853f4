//! Docstrings of the operations `Store` and `Transaction` share, written once, and of the
//! long `Store` ones: a store method runs the operation in its own transaction (or on a read
//! connection), a transaction method inside that transaction. Each becomes the Python
//! `__doc__` of the method (`#[doc = op_doc!(name)]`); the stub (`tidings/_tidings.pyi`)
//! carries the same text, and `tests/test_docs.py` checks that none is missing.

/// The docstring of an operation, by name.
macro_rules! op_doc {
    (execute) => {
        "Run one statement of the application's SQL (a store call: in its own transaction).

Returns a ``tidings.ExecuteResult``: an ``int``, the rows changed (as before), whose
``lastrowid`` is the rowid an ``INSERT`` / ``REPLACE`` inserted, or None. In a transaction,
``tx.lastrowid`` keeps the last one too. ``params``: a tuple or list for ``?`` / ``?1``, a
dict for ``:name``. A broken constraint raises ``IntegrityError`` and undoes only this
statement; ``BEGIN`` / ``COMMIT`` / ``ROLLBACK`` / ``SAVEPOINT`` are refused
(``InvalidInputError``): the transaction is tidings'."
    };
    (executemany) => {
        "Run one statement once per parameter set (one prepared statement) and return the rows
changed in all. ``params`` is an iterable of tuples or lists, or of dicts (not a mix). A store
call runs them all in one transaction (all or none); in a transaction, the sets before a
failing one stay. ``lastrowid`` is not changed."
    };
    (executescript) => {
        "Run a script of SQL statements without parameters (the application's schema, say), in
order, stopping at the first error. A store call runs it in one transaction (all or none); in
a transaction, the statements before a failing one stay (roll back to undo them).
Transaction control in the script is refused (``InvalidInputError``)."
    };
    (query) => {
        "Run a query of the application's SQL and return its rows as a list of ``tidings.Row``,
which index by position and by column name (``row[0]``, ``row[\"total\"]``) and equal the tuple
of their values. A store call reads on a read connection (committed data); a transaction
reads as it sees the database."
    };
    (append) => {
        "Append one event to ``stream`` and return it (``Event``), queueing one delivery per
matching enabled endpoint. A store call commits it in its own transaction.

``data`` and ``metadata`` are JSON values; ``Decimal`` becomes a string of its digits, ``UUID``
its string, ``datetime`` / ``date`` / ``time`` ISO 8601 text, and other types go to the store's
``json_default`` hook (else ``InvalidInputError``). ``expected_version``: None (any), 0 (the
stream must not exist), n (exactly n) or ``tidings.STREAM_EXISTS``; a mismatch raises
``ConcurrencyError``. A caller-chosen ``event_id`` (a UUID) makes the append idempotent: the
same id with the same content returns the event stored first, with ``replayed`` True;
other content raises ``IdempotencyConflictError``. ``type`` must not start with ``tidings.``.
``schema_version`` (keyword, at least 1) writes the shape of ``data`` into the metadata
(``schema_version``) for upcasters (``Store.register_upcaster``); without it the event reads
as version 1."
    };
    (append_many) => {
        "Append several events to ``stream`` at once, all or none: one version check,
consecutive versions and positions. Each event is a mapping with ``type`` and ``data``, and
optionally ``metadata``, ``tenant``, ``id`` and ``schema_version`` (as for ``append``).
Returns the events."
    };
    (read_stream) => {
        "Read a stream in version order (newest first with ``backwards``), from
``from_version`` (default: the first, or the last when backwards), at most ``limit`` events."
    };
    (stream_version) => {
        "The stream's current version, or None if it does not exist."
    };
    (checkpoint) => {
        "Consumer ``name``'s recorded position, or None."
    };
    (set_checkpoint) => {
        "Record consumer ``name``'s position (a negative one is an ``InvalidInputError``); in a
transaction, atomically with the rest of it."
    };
    (save_snapshot) => {
        "Save ``state`` (a JSON value, encoded as event data is) as the stream's snapshot at
``version``; ``schema_version`` (default 1) names the state's shape, so a reader expecting
another shape (``load_aggregate``) ignores it and folds the events instead."
    };
    (load_snapshot) => {
        "The stream's saved snapshot (``Snapshot``), or None."
    };
    (delete_stream) => {
        "Hard-delete a stream's events (their unfinished deliveries are cancelled); returns how
many were deleted."
    };
    (truncate_stream) => {
        "Delete a stream's events below ``before_version`` (the stream keeps its version);
returns how many were deleted. A cut past the stream's latest snapshot (``before_version``
above its version + 1) is refused with ``InvalidInputError``, since the events after the
snapshot are the only record of what it does not hold, unless ``past_snapshot=True``."
    };
    (create_endpoint) => {
        "Create a webhook endpoint and return it (``Endpoint``). A URL whose host is a literal
address the store's egress policy refuses (loopback, private, metadata) raises
``InvalidInputError`` on ``url`` at once. Keyword options; one left as
None keeps core's default: ``events=[\"*\"]``, ``timeout=15.0`` seconds, ``max_attempts=12``,
``initial_delay=5.0``, ``max_delay=36000.0``, ``multiplier=3.0``, ``jitter=0.2``, no rate
limit, ``max_in_flight=4``, ``ordered=False``, ``verify_tls=True``, ``enabled=True``. A secret
(``whsec_...``) is generated unless given. ``auth``: ``Bearer(token)`` or
``ApiKey(header, value)``. ``template``: one JSON template (str) for every type, or a dict
``{type_pattern: template}``. ``signature_header`` adds ``sha256=<hex>`` of the body. The
options are listed in the stub (``tidings/_tidings.pyi``)."
    };
    (upsert_endpoint) => {
        "Declare an endpoint by its unique ``name``, idempotently (for configuration applied at
every start): create it, or bring the live endpoint of that name to these settings (every
option; the secret only when ``secret`` is given and differs, as a rotation). Takes
``create_endpoint``'s arguments, ``name`` required. Returns ``(endpoint, created)``."
    };
    (get_endpoint) => {
        "The endpoint with this id (``NotFoundError`` if there is none)."
    };
    (list_endpoints) => {
        "Every endpoint (not deleted), or those of one tenant."
    };
    (update_endpoint) => {
        "Change the given fields (any ``create_endpoint`` option but ``secret``); None clears an
optional field. An unknown name raises ``TypeError``. Returns the endpoint as changed."
    };
    (delete_endpoint) => {
        "Soft-delete the endpoint: its unfinished deliveries are cancelled."
    };
    (rotate_secret) => {
        "Replace the endpoint's signing secret (generated unless given); the old one keeps
signing for the store's ``rotation_grace``. Returns the endpoint."
    };
    (disable_endpoint) => {
        "Disable the endpoint: its deliveries pause until it is enabled. Returns it."
    };
    (enable_endpoint) => {
        "Enable the endpoint; with ``catch_up``, events appended while it was disabled are
delivered too. Returns it."
    };
    (retry) => {
        "Put a failed or succeeded delivery back to pending (a new attempt series); returns it."
    };
    (recover) => {
        "Put every failed delivery of the endpoint whose event was recorded at or after
``since`` (a timezone-aware datetime) back to pending. Returns how many."
    };
    (replay) => {
        "Re-deliver every matching event of the position range to the endpoint. Returns the
delivery rows created or reset."
    };
    (read_all) => {
        "Read the global log in position order, at most ``limit`` events (default 1000, core's
page; None means the same page, never the whole log), optionally filtered by type patterns,
tenant and stream. Page on from the last event's ``position + 1``, or use ``iter_all``.

``from_position=None`` starts at the beginning, or at the end with ``backwards=True`` (newest
first; ``wait`` is ignored). With ``wait``, block up to that many seconds until a matching
event at or past ``from_position`` exists (a long-poll)."
    };
    (iter_all) => {
        "Iterate over the global log in position order, reading it lazily ``batch`` events at a
time (default 1000), so a large log is never one list. Same filters as ``read_all``;
iteration ends at the end of the log. Returns an ``EventIterator``."
    };
    (event) => {
        "One event by id (``NotFoundError`` if there is none)."
    };
    (last_position) => {
        "The last global position handed out (0 for an empty log)."
    };
    (prune_events) => {
        "Delete the events the retention rules (``RetentionRule``) let go (never those with
unfinished deliveries). Returns how many."
    };
    (start_delivery) => {
        "Start the delivery engine (threads in this process) and return it (``DeliveryEngine``,
a context manager; or call ``stop()``). Options (None keeps core's default; times in seconds):
``workers=16``, ``max_workers`` (256), ``max_in_flight``, ``lease_grace=30.0``,
``unhealthy_after=5``, ``circuit_after=5``, ``circuit_cooldown=30.0``,
``disable_after=432000.0``, ``max_records=100000``, ``max_record_age=2592000.0``,
``housekeeping_interval=60.0``, ``event_retention`` (a list of ``RetentionRule``), ``owner``.
The stub and README explain each; a value out of range raises ``InvalidInputError``."
    };
    (deliveries) => {
        "List delivery records (``DeliveryRecord``), newest first, at most ``limit``; filtered by
endpoint, lifecycle ``state`` (``pending``, ``sending``, ``retrying``, ``paused``,
``succeeded``, ``failed``, ``cancelled``) and event; ``before_id`` pages on."
    };
    (delivery) => {
        "One delivery record by id (``NotFoundError`` if there is none)."
    };
    (delivery_counts) => {
        "Delivery counts by state name, every state present (zero included), in lifecycle order;
for one endpoint or all."
    };
    (attempts) => {
        "The attempts (``Attempt``) made for one delivery, oldest first."
    };
    (send_test) => {
        "Send a ``tidings.test`` event to the endpoint now and return the attempt (``Attempt``);
nothing is stored."
    };
    (call) => {
        "Send an event to the endpoint synchronously and return the receiver's answer
(``Response``); nothing is stored. A transport failure raises ``DeliveryError``."
    };
    (stats) => {
        "Counts by state, success rate and latency percentiles (seconds), overall and per
endpoint: a dict with ``events``, ``by_state``, ``success_rate``, ``p50``, ``p95``, ``p99`` and
``endpoints`` (one dict each)."
    };
    (rate_stats) => {
        "A tenant's event rate meter: a dict with ``tenant``, ``current`` (this minute),
``limit``, ``mode`` and ``warnings``."
    };
}
pub(crate) use op_doc;
