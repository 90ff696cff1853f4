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

    lastrowid: Optional[int]

    def __new__(cls, rowcount: int, lastrowid: Optional[int] = None) -> ExecuteResult:
        result = super().__new__(cls, rowcount)
        result.lastrowid = lastrowid
        return result

    @property
    def rowcount(self) -> int:
        """The rows the statement changed (inserted, updated or deleted)."""
        return int(self)

    def __getnewargs__(self) -> tuple[int, Optional[int]]:  # type: ignore[override]
        return (int(self), self.lastrowid)

    def __repr__(self) -> str:
        return f"ExecuteResult(rowcount={int(self)}, lastrowid={self.lastrowid!r})"
