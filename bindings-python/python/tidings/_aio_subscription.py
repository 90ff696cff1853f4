"""``tidings.aio``'s subscriptions: :class:`AsyncSubscription`, what
``AsyncStore.subscribe`` returns (re-exported by ``tidings.aio``).

The handler is a plain function, called on the subscription's runner thread (not on the event
loop), holding the GIL, as with :meth:`tidings.Store.subscribe`: it writes through its ``tx``
and must not await. The waits are coroutines that run in the loop's thread pool in short
slices, so cancelling the awaiting task frees its thread soon.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Optional

from ._tidings import Subscription

_SLICE = 0.25
"""Longest one thread-pool call of a wait lasts."""


class AsyncSubscription:
    """A :class:`tidings.Subscription` whose waits are coroutines. ``async with`` stops it at
    the end of the block."""

    def __init__(self, subscription: Subscription) -> None:
        """Wraps a running ``subscription`` (as returned by ``Store.subscribe``)."""
        self._subscription = subscription

    @property
    def sync(self) -> Subscription:
        """The underlying :class:`tidings.Subscription`."""
        return self._subscription

    @property
    def name(self) -> str:
        """The subscription's name."""
        return self._subscription.name

    @property
    def active(self) -> bool:
        """Whether this runner holds the subscription's lease and applies events."""
        return self._subscription.active

    @property
    def ended(self) -> bool:
        """Whether the runner ended (``error`` says why, unless it was stopped)."""
        return self._subscription.ended

    @property
    def error(self) -> Optional[str]:
        """Why the runner ended, if not by ``stop()``."""
        return self._subscription.error

    def __repr__(self) -> str:
        """``AsyncSubscription('name', active=...)``."""
        return f"AsyncSubscription({self.name!r}, active={self.active})"

    async def __aenter__(self) -> AsyncSubscription:
        """Returns the subscription itself."""
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Stops the subscription."""
        await self.stop()

    async def wait_for_position(self, position: int, timeout: float = 10.0) -> bool:
        """:meth:`tidings.Subscription.wait_for_position` as a coroutine: True once the runner
        has passed ``position``, False after ``timeout`` seconds or once it ended."""
        if not timeout >= 0:
            return self._subscription.wait_for_position(position, timeout)  # InvalidInputError
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = max(deadline - loop.time(), 0.0)
            step = min(left, _SLICE)
            if await loop.run_in_executor(None, self._subscription.wait_for_position, position, step):
                return True
            if left <= step or self._subscription.ended:
                return False

    async def stop(self) -> None:
        """:meth:`tidings.Subscription.stop` as a coroutine (it waits for the batch in hand)."""
        await asyncio.get_running_loop().run_in_executor(None, self._subscription.stop)
