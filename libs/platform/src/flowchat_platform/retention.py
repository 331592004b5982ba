"""Retention: delete rows older than a cutoff in short batches, on a timer.

A store deletes one batch per call (``purge(cutoff, batch) -> rows deleted``, one short
transaction, ``FOR UPDATE SKIP LOCKED`` so two replicas share the work);
:func:`purge_in_batches` calls it until a batch comes back short; :func:`retention_loop`
runs a service's pass every ``interval_s`` and survives a failed pass (tried again next
round). The state-manager, the inbox and the relay use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: Deletes one batch of rows older than the cutoff; the number deleted.
Purge = Callable[[datetime, int], Awaitable[int]]


async def purge_in_batches(
    purge: Purge,
    cutoff: datetime,
    batch_size: int,
    counted: Callable[[int], object] | None = None,
) -> int:
    """Call ``purge`` until a batch deletes fewer than ``batch_size`` rows; the total.
    ``counted`` sees each batch's count (a metric's ``inc``)."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    total = 0
    while True:
        n = await purge(cutoff, batch_size)
        total += n
        if counted is not None:
            counted(n)
        if n < batch_size:
            return total


async def retention_loop(
    run_once: Callable[[], Awaitable[Mapping[str, int]]], interval_s: float
) -> None:
    """Run a retention pass now and every ``interval_s``; log the rows deleted by kind."""
    while True:
        try:
            deleted = await run_once()
            log.info("retention purge", **{k: int(v) for k, v in deleted.items()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - try again next round
            log.warning("retention purge failed", error=repr(exc))
        await asyncio.sleep(interval_s)
