"""In-memory GCRA (generic cell rate algorithm): Meta's throughput and pair-rate rules.

A limiter allows ``burst`` requests at once and then one every ``period_s``; it keeps
one number per key, the theoretical arrival time (TAT). Only allowed requests move
the TAT, as at Meta a rejected send does not use up quota.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class Gcra:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tat: dict[Hashable, float] = {}

    def allow(self, key: Hashable, *, period_s: float, burst: int) -> bool:
        """Take one cell for ``key`` if allowed: ``period_s`` between cells, ``burst`` at once."""
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        # a thousandth of a period absorbs float rounding at epoch-sized clock values
        if tat - now > period_s * (max(burst, 1) - 1) + period_s * 1e-3:
            return False
        self._tat[key] = tat + period_s
        return True

    def consume(self, key: Hashable, *, period_s: float) -> None:
        """Take one cell even when over the limit (traffic that cannot be refused, such
        as a customer's inbound message, still uses up the number's quota)."""
        now = self._clock()
        self._tat[key] = max(self._tat.get(key, now), now) + period_s

    def prune(self) -> None:
        """Forget keys whose quota is fully restored (they behave as new)."""
        now = self._clock()
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]

    def __len__(self) -> int:
        return len(self._tat)

    def clear(self) -> None:
        self._tat.clear()
