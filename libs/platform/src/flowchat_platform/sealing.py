"""The background pass that encrypts a service's rows at rest: rows stored in clear before
encryption are sealed, and, while an old key is still configured, every token is
re-encrypted under the newest (a key rotation without downtime).

A service gives one *step*: ``step(after, batch) -> (rows changed, last key seen)``,
one short transaction over the ``batch`` rows after the key ``after`` (``""`` first);
the last key is None once the table is done. :func:`seal_pass` walks a table with it,
:func:`seal_loop` runs the pass in the background and starts it over after a failure.
The state-manager and the relay use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flowchat_platform.logs import get_logger

log = get_logger(__name__)

__all__ = ["SealStep", "seal_loop", "seal_pass"]

#: One batch of a sealing pass (see the module's docstring).
SealStep = Callable[[str, int], Awaitable[tuple[int, str | None]]]


async def seal_pass(
    step: SealStep,
    *,
    batch: int,
    pause_s: float,
    counted: Callable[[int], object] | None = None,
) -> int:
    """Walk a table with ``step`` in batches, pausing ``pause_s`` between them; the rows
    changed. ``counted`` sees each batch's count (a metric's ``inc``)."""
    after, total = "", 0
    while True:
        n, last = await step(after, batch)
        total += n
        if counted is not None:
            counted(n)
        if last is None:
            return total
        after = last
        await asyncio.sleep(pause_s)


async def seal_loop(
    steps: dict[str, SealStep],
    *,
    action: str,
    batch: int,
    pause_s: float,
    counted: Callable[[str], Callable[[int], object]] | None = None,
    retry_s: float = 30.0,
) -> None:
    """One :func:`seal_pass` per table of ``steps`` (name → step), in order; ``action``
    (``sealed`` or ``rotated``) names it in the log; ``counted(table)`` gives the table's
    counter. Started over after ``retry_s`` when a pass fails."""
    while True:
        try:
            for table, step in steps.items():
                total = await seal_pass(
                    step,
                    batch=batch,
                    pause_s=pause_s,
                    counted=counted(table) if counted is not None else None,
                )
                log.info("encrypted at rest", table=table, action=action, rows=total)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - start over after a pause
            log.warning("encrypting at rest failed", action=action, error=repr(exc))
            await asyncio.sleep(retry_s)
