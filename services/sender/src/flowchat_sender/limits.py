"""The values of a rate-limit check, and the GCRA arithmetic itself.

Pure (no Redis): :mod:`flowchat_sender.service` works with these; the Redis limiter
(:mod:`flowchat_sender.ratelimit`) runs the same arithmetic in one Lua script.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LimitRequest:
    """One admission to check: the four keys and five arguments of ``admit``."""

    keys: list[str]
    args: list[float]


@dataclass(frozen=True)
class Admission:
    admitted: bool
    #: Admitted: sleep this long, then send. Not admitted: come back after this long.
    wait_s: float
    #: ``ok``, or which limit refused: ``number``, ``pair``, ``hold``.
    limit: str


def gcra(
    tat: float, now: float, *, interval: float, tolerance: float, max_wait: float
) -> tuple[bool, float, float]:
    """One GCRA step with reservation: ``(admitted, wait, new_tat)`` (all in seconds).

    ``interval`` is 1/rate; ``tolerance`` how far ahead of its even schedule a send may
    go (a burst of ``1 + tolerance // interval``; the number's is ``number_burst_s``).
    """
    tat = max(tat, now)
    wait = max(0.0, tat - now - tolerance)
    if wait > max_wait:
        return False, wait, tat
    return True, wait, tat + interval
