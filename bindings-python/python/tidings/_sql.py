"""What ``execute`` returns: :class:`ExecuteResult`, an ``int`` (the rows changed, as before)
that also carries the rowid the statement inserted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, TypeVar

if TYPE_CHECKING:
    from typing_extensions import disjoint_base
else:
    _C = TypeVar("_C")

    def disjoint_base(cls: _C) -> _C:
        return cls


@disjoint_base
class ExecuteResult(int):
    """The rows a statement changed (it *is* that ``int``: ``== 1``, arithmetic and
    ``isinstance(result, int)`` keep working), with the statement's inserted rowid.

    ``rowcount`` is the same number by name. ``lastrowid`` is the rowid of the row an
    ``INSERT`` or ``REPLACE`` statement inserted (SQLite's ``last_insert_rowid()``), or None
    when the statement inserted nothing.
    """

    # Made by ``int``'s own constructor (no ``__new__`` here: one runs per ``execute``, and a
    # Python-level one cost a third of a tight loop of them); the native module sets
    # ``_lastrowid`` on the instance only when the statement inserted a row.

    @property
    def lastrowid(self) -> Optional[int]:
        """The rowid of the row an ``INSERT`` or ``REPLACE`` statement inserted, or None."""
        rowid: Optional[int] = self.__dict__.get("_lastrowid")
        return rowid

    @property
    def rowcount(self) -> int:
        """The rows the statement changed (inserted, updated or deleted)."""
        return int(self)

    def __getnewargs__(self) -> tuple[int]:
        return (int(self),)

    def __repr__(self) -> str:
        return f"ExecuteResult(rowcount={int(self)}, lastrowid={self.lastrowid!r})"
