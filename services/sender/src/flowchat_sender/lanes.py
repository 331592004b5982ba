"""Order per customer and priority between the two outbound lanes, inside one process.

- :class:`RecipientOrder`: commands to one (account, recipient) go to the provider one
  after the other, in the order this process consumed them; commands to different
  recipients stay concurrent. A command takes its turn synchronously when it is
  consumed (before its first ``await``), so the turn order is the delivery order.
- :class:`PriorityGate`: the bulk (marketing) lane starts a command only while the
  transactional lane has fewer than ``hold_at`` commands being worked on (limiter
  sleepers excluded: a slow number's backlog must not stall every campaign).

Pure asyncio: no broker, no Redis. What holds across replicas is in
``docs/queue-contracts.md`` (order and priority).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable


class RecipientOrder:
    """One FIFO chain of turns per key; a key with no command in flight costs nothing."""

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._tails)

    def take(self, key: Hashable) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """Take the next turn of ``key`` (synchronous: call it before any ``await``).

        Returns ``(previous, mine)``: await :meth:`wait` on ``previous`` before the
        work, and always :meth:`done` ``mine`` after it.
        """
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous = self._tails.get(key)
        self._tails[key] = mine
        return previous, mine

    @staticmethod
    async def wait(previous: asyncio.Future[None] | None) -> None:
        """Until the previous command of the key is done (never cancels it)."""
        if previous is not None and not previous.done():
            await asyncio.shield(previous)

    def done(self, key: Hashable, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._tails.get(key) is mine:
            del self._tails[key]


class PriorityGate:
    """Bulk work waits while transactional work is under way (strict priority)."""

    def __init__(self, hold_at: int = 1) -> None:
        self.hold_at = max(1, hold_at)
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def open(self) -> bool:
        return self.active < self.hold_at

    def enter(self) -> None:
        """A transactional command starts (or wakes from a limiter sleep)."""
        self.active += 1

    def leave(self) -> None:
        """A transactional command is done (or goes to sleep for its limiter slot)."""
        self.active -= 1
        if self.open:
            self._release()

    async def turn(self) -> None:
        """Wait until the transactional lane is quiet enough for one bulk command.

        Waiters go in FIFO order, so bulk commands keep their consume order.
        """
        if self.open and not self._waiters:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        if self.open:  # open, but earlier waiters have not run yet: go after them
            future.set_result(None)
        try:
            await future
        finally:
            self._waiters.remove(future)

    def _release(self) -> None:
        # Wake every waiter, in order (each leaves the queue when it runs): bulk commands
        # run concurrently once the gate opens.
        for future in self._waiters:
            if not future.done():
                future.set_result(None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)
