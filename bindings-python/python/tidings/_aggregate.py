"""Aggregates and repositories: state folded from one stream's events, loaded from its latest
snapshot plus the newer events, and saved by appending the events its commands recorded at
the version it was loaded at (re-exported as ``tidings.Aggregate``, ``tidings.applies`` and
``tidings.Repository``).

    class Account(tidings.Aggregate):
        stream_prefix = "account"          # aggregate "42" lives in stream "account-42"

        def __init__(self) -> None:        # the state of a new account
            self.balance = 0

        def deposit(self, amount: int) -> None:           # a command: check, then record
            if amount <= 0:
                raise ValueError("amount must be positive")
            self.record("account.deposited", {"amount": amount})

        @tidings.applies("account.deposited")             # folds one event into the state
        def _deposited(self, data: dict[str, Any]) -> None:
            self.balance += data["amount"]

    accounts = tidings.Repository(store, Account, snapshot_every=100)
    accounts.update("42", lambda account: account.deposit(10))

Commands check and ``record``; only appliers change the state, so loading (which applies the
stored events) and recording (which applies the new one at once) always agree. Snapshots hold
``snapshot()``: the instance's public attributes, which must be JSON values; ``restore(state)``
sets them back. Override both for other state, and raise ``state_version`` when the state's
shape changes (older snapshots are then ignored and the state is folded from the events).
The core calls underneath are ``Store.load_aggregate`` and ``Transaction.append_many``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Optional, TypeVar, Union

from ._tidings import ConcurrencyError, Event, InvalidInputError, Store, Transaction, _snapshot_due

if TYPE_CHECKING:
    from ._tidings import _JSON

_A = TypeVar("_A", bound="Aggregate")
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., None])

_APPLIES = "_tidings_applies"
"""The attribute ``applies`` sets on a method: the event type it folds."""


def applies(event_type: str) -> Callable[[_F], _F]:
    """Marks an ``Aggregate`` method as the one that folds events of ``event_type`` into the
    state: it is called as ``method(self, data)`` for every such event, stored or just
    recorded. One method per type; a subclass may replace its parent's."""

    def mark(method: _F) -> _F:
        setattr(method, _APPLIES, event_type)
        return method

    return mark


def _invalid(field: str, reason: str) -> InvalidInputError:
    """An ``InvalidInputError`` as the native module makes them."""
    error = InvalidInputError(f"invalid {field}: {reason}")
    error.field = field
    error.reason = reason
    return error


class Aggregate:
    """The base class of an aggregate (see the module docs for an example).

    A subclass sets ``stream_prefix`` (aggregate ``id`` lives in stream
    ``f"{stream_prefix}-{id}"``), builds the state of a new aggregate in ``__init__`` (called
    without arguments), records events in its command methods with :meth:`record`, and folds
    them in methods marked ``@tidings.applies("type")``. A stored event whose type has no
    applier is skipped; recording one is an ``InvalidInputError``.
    """

    stream_prefix: ClassVar[str] = ""
    """Streams of this aggregate are named ``f"{stream_prefix}-{id}"`` (the class name in lower
    case when left empty)."""

    state_version: ClassVar[int] = 1
    """The shape of ``snapshot()``'s state: raise it when the state's attributes change, and
    snapshots of an older shape are ignored."""

    _appliers: ClassVar[dict[str, str]] = {}
    _id: str = ""
    _version: int = 0
    _pending: list[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Collects the subclass's appliers (its own and its parents')."""
        super().__init_subclass__(**kwargs)
        appliers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                event_type = getattr(member, _APPLIES, None)
                if isinstance(event_type, str):
                    appliers[event_type] = name
        cls._appliers = appliers

    @classmethod
    def stream_of(cls, id: str) -> str:
        """The stream aggregate ``id`` lives in."""
        return f"{cls.stream_prefix or cls.__name__.lower()}-{id}"

    @property
    def id(self) -> str:
        """The aggregate's id (set by the repository that loaded it)."""
        return self._id

    @property
    def version(self) -> int:
        """The stream version it was loaded or last saved at (0: not saved yet)."""
        return self._version

    @property
    def pending(self) -> list[dict[str, Any]]:
        """The events recorded and not saved yet, as ``append_many`` takes them."""
        return self.__dict__.setdefault("_pending", [])

    def record(self, event_type: str, data: _JSON, *, schema_version: Optional[int] = None) -> None:
        """Records an event: folds it into the state now (through its applier) and keeps it
        for the repository's ``save``. ``schema_version`` is the shape of ``data``, for
        upcasters (default: none written, read as 1)."""
        if event_type not in self._appliers:
            raise _invalid("type", f"{type(self).__name__} has no @applies({event_type!r}) method")
        self.apply(event_type, data)
        event: dict[str, Any] = {"type": event_type, "data": data}
        if schema_version is not None:
            event["schema_version"] = schema_version
        self.pending.append(event)

    def apply(self, event_type: str, data: _JSON) -> None:
        """Folds one event into the state: calls the applier of ``event_type``, if any."""
        name = self._appliers.get(event_type)
        if name is not None:
            getattr(self, name)(data)

    def snapshot(self) -> dict[str, _JSON]:
        """The state to save in a snapshot: the public attributes (override for other state)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def restore(self, state: Any) -> None:
        """Sets the state back from what :meth:`snapshot` returned (called on a new instance)."""
        vars(self).update(state)

    def __repr__(self) -> str:
        """``Account(id='42', version=3, balance=10)``: the id, version and ``snapshot()``."""
        fields = ", ".join(f"{k}={v!r}" for k, v in self.snapshot().items())
        return f"{type(self).__name__}(id={self._id!r}, version={self._version}{', ' if fields else ''}{fields})"


class Repository(Generic[_A]):
    """Loads and saves aggregates of one class in a store.

    ``snapshot_every=n`` saves a snapshot (in the same transaction) each time a save moves the
    version across a multiple of ``n``; ``get`` then starts from the latest one.
    """

    def __init__(self, store: Store, aggregate: type[_A], *, snapshot_every: Optional[int] = None) -> None:
        """A repository of ``aggregate`` (an ``Aggregate`` subclass) in ``store``."""
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise _invalid("aggregate", "must be a subclass of tidings.Aggregate")
        if snapshot_every is not None and (not isinstance(snapshot_every, int) or snapshot_every < 1):
            raise _invalid("snapshot_every", "must be None or at least 1")
        self._store = store
        self._aggregate = aggregate
        self._every = snapshot_every

    @property
    def store(self) -> Store:
        """The store it loads from and saves to."""
        return self._store

    def get(self, id: str, *, tx: Optional[Transaction] = None) -> _A:
        """Aggregate ``id``: its latest snapshot (of this ``state_version``) and the newer
        events, upcast and folded; a new aggregate at version 0 when its stream does not exist.
        With ``tx``, as that transaction sees the stream."""
        cls = self._aggregate
        source: Union[Store, Transaction] = tx if tx is not None else self._store
        history = source.load_aggregate(cls.stream_of(id), cls.state_version)
        aggregate = cls()
        if history.snapshot is not None:
            aggregate.restore(history.snapshot.state)
        for event in history.events:
            aggregate.apply(event.type, event.data)
        aggregate._id, aggregate._version, aggregate._pending = id, history.version, []
        return aggregate

    def save(self, aggregate: _A, tx: Optional[Transaction] = None) -> list[Event]:
        """Appends the events ``aggregate`` recorded at the version it was loaded at, and a
        snapshot when one is due. With ``tx`` they commit with the application's rows written
        in it (should it roll back, ``get`` the aggregate again); without, in a transaction of
        their own. Raises ``ConcurrencyError`` when another writer saved first (nothing was
        written): ``get`` it again and rerun the command, or use :meth:`update`."""
        if not aggregate.pending:
            return []
        if tx is None:
            with self._store.transaction() as own:
                return self.save(aggregate, own)
        stream = type(aggregate).stream_of(aggregate.id)
        before = aggregate.version
        written = tx.append_many(stream, aggregate.pending, expected_version=before)
        after = written[-1].version
        if self._every is not None and _snapshot_due(self._every, before, after):
            tx.save_snapshot(stream, after, aggregate.snapshot(), schema_version=type(aggregate).state_version)
        aggregate._version = after
        aggregate._pending = []
        return written

    def update(self, id: str, command: Callable[[_A], _T], *, attempts: int = 5) -> _T:
        """Loads aggregate ``id``, runs ``command(aggregate)`` and saves what it recorded, in one
        transaction (so two writers take turns); on ``ConcurrencyError`` runs it again on the
        fresh state, up to ``attempts`` times. Returns what ``command`` returned."""
        for attempt in range(1, max(attempts, 1) + 1):
            try:
                with self._store.transaction() as tx:
                    aggregate = self.get(id, tx=tx)
                    result = command(aggregate)
                    self.save(aggregate, tx)
                return result
            except ConcurrencyError:
                if attempt >= attempts:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

