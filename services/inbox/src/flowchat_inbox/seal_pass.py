"""The inbox's background encryption pass (issue 28): rows stored in clear before
encryption are sealed, and, while an old key is still configured
(``FLOWCHAT_INBOX_ENCRYPTION_KEYS="new,old"``), every token is re-encrypted under the
newest, in short transactions (``SEAL_BATCH_SIZE`` rows, ``SEAL_PAUSE_S`` apart).

:func:`seal_identities` runs at start before the history queue is consumed: ingest
finds customers by the digests of their ids, so threads and aliases stored in clear are
sealed first (one row per customer: quick). :func:`seal_loop` then seals the messages
and rotates every table's tokens in the background while the inbox serves; messages not
sealed yet are read as they are. Each batch is one transaction and the pass only picks
rows left to do (through the partial indexes ``*_unsealed`` of migration ``0006_sealed``:
a start with nothing left to seal reads nothing), so a restart resumes where it stopped.
A rotation runs once per new key: ``sealing_state`` (migration ``0007a_sealing_state``,
:class:`~flowchat_platform.sealing.SealingState`) records the key each table was
re-encrypted to and, while a rotation is under way, the last row done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from flowchat_inbox import metrics
from flowchat_inbox.repository import Repository
from flowchat_platform.logs import get_logger
from flowchat_platform.sealing import SealingState

log = get_logger(__name__)

Step = Callable[[Any, int], Awaitable[tuple[int, Any]]]


async def _walk(table: str, step: Step, start: Any, batch: int, pause_s: float, action: str) -> int:
    after, total = start, 0
    while True:
        n, last = await step(after, batch)
        total += n
        metrics.SEALED.labels(table, action).inc(n)
        if last is None:
            return total
        after = last
        if pause_s:
            await asyncio.sleep(pause_s)


def _steps(repository: Repository, *, rotate: bool) -> dict[str, tuple[Step, Any]]:
    def bind(method: Callable[..., Awaitable[tuple[int, Any]]]) -> Step:
        return lambda after, batch: method(after, batch, rotate=rotate)

    return {
        "threads": (bind(repository.seal_threads), 0),
        "aliases": (bind(repository.seal_aliases), ("", "")),
        "messages": (bind(repository.seal_messages), 0),
    }


async def seal_identities(repository: Repository, *, batch: int) -> int:
    """Threads and aliases stored in clear, sealed (rows changed)."""
    total = 0
    for table, (step, start) in _steps(repository, rotate=False).items():
        if table != "messages":
            total += await _walk(table, step, start, batch, 0.0, "sealed")
    if total:
        log.info("customers' ids encrypted at rest", rows=total)
    return total


async def seal_loop(repository: Repository, *, rotate: bool, batch: int, pause_s: float) -> None:
    """Messages stored in clear sealed; with ``rotate`` (an old key still configured),
    every table's tokens re-encrypted under the newest key unless ``sealing_state`` says
    they were (resumed where a rotation cut short stopped). Started over after a failure
    (a batch is one transaction)."""
    state = SealingState(repository.pool)
    key_id = repository.sealer.box.key_id
    while True:
        try:
            done = await _walk(
                "messages",
                _steps(repository, rotate=False)["messages"][0],
                0,
                batch,
                pause_s,
                "sealed",
            )
            if rotate:
                for table, (step, start) in _steps(repository, rotate=True).items():
                    once = state.step(table, step, key_id=key_id, start=start)
                    done += await _walk(table, once, start, batch, pause_s, "rotated")
            if done:
                log.info("inbox encryption pass done", rotated=rotate, rows=done)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - start over after a pause
            log.warning("inbox encryption pass failed", error=repr(exc))
            await asyncio.sleep(30)
