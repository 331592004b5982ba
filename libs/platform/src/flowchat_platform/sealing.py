"""The background pass that encrypts a service's rows at rest: rows stored in clear before
encryption are sealed, and, while an old key is still configured, every token is
re-encrypted under the newest (a key rotation without downtime).

A service gives one *step*: ``step(after, batch) -> (rows changed, last key seen)``,
one short transaction over the ``batch`` rows after the key ``after`` (``""`` first);
the last key is None once the table is done. :func:`seal_pass` walks a table with it,
:func:`seal_loop` runs the pass in the background and starts it over after a failure.
The state-manager and the relay use it.

A key rotation runs once per newest key, not at every start: :class:`SealingState` (a
service's ``sealing_state`` table) records, per table, the key its tokens were
re-encrypted to and, while that is under way, the last row done, and turns a service's
rotation batch into a :data:`SealStep` that resumes there. A start with nothing to rotate
reads one row per table. The inbox, the conversation service and the relay use it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from flowchat_platform.logs import get_logger

log = get_logger(__name__)

__all__ = [
    "SEALING_STATE_TABLE",
    "RotateStep",
    "SealStep",
    "SealingState",
    "batch_lock",
    "seal_loop",
    "seal_pass",
]

#: One batch of a sealing pass (see the module's docstring).
SealStep = Callable[[str, int], Awaitable[tuple[int, str | None]]]

#: One batch of a key rotation: a :data:`SealStep` whose key may be any JSON value (an
#: id, a list of a composite key's columns); JSON arrays come back as lists.
RotateStep = Callable[[Any, int], Awaitable[tuple[int, Any]]]


def batch_lock(*, rotate: bool) -> str:
    """The locking clause of a batch's ``SELECT``: sealing skips the rows another
    transaction holds (still in clear, the next start's pass finds them); a key rotation
    waits for them (it runs once per new key: a row skipped would keep the old key)."""
    return "FOR UPDATE" if rotate else "FOR UPDATE SKIP LOCKED"


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


#: The ``sealing_state`` table, created by each service's migration (inbox
#: ``0007a_sealing_state``, conversation ``0009_sealing_state``, relay ``0005``). Frozen:
#: a change to it is a new migration in every service, not an edit here.
SEALING_STATE_TABLE = """
    CREATE TABLE sealing_state (
        name text PRIMARY KEY,
        key_id text NOT NULL,
        cursor text,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
"""


class SealingState:
    """A service's ``sealing_state`` table (``name`` text primary key, ``key_id`` text,
    ``cursor`` text: JSON, ``updated_at``) over an asyncpg pool (a batch holds one of its
    connections while the step runs on its own: two connections at least, or another pool
    than the step's): per table ``name``, the key (:attr:`SecretBox.key_id
    <flowchat_platform.crypto.SecretBox.key_id>`) its tokens were re-encrypted to, and,
    while that rotation is under way, the key of the last row done (``cursor``; NULL once
    done)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def rotated(self, name: str, key_id: str) -> bool:
        """Whether every token of ``name`` was re-encrypted to the key ``key_id``."""
        row = await self._pool.fetchrow(
            "SELECT key_id, cursor FROM sealing_state WHERE name = $1", name
        )
        return row is not None and row["key_id"] == key_id and row["cursor"] is None

    async def record_rotated(self, name: str, key_id: str) -> None:
        """Every token of ``name`` re-encrypted to the key ``key_id`` (a rotation that
        walked the whole table at once rather than through :meth:`step`)."""
        await self._pool.execute(
            "INSERT INTO sealing_state (name, key_id) VALUES ($1, $2) ON CONFLICT (name) "
            "DO UPDATE SET key_id = EXCLUDED.key_id, cursor = NULL, updated_at = now()",
            name,
            key_id,
        )

    def step(self, name: str, rotate: RotateStep, *, key_id: str, start: Any) -> SealStep:
        """``rotate`` (one batch of ``name``'s tokens re-encrypted under the newest key,
        after a row key; ``start`` before the first row) as a :data:`SealStep` for
        :func:`seal_pass` / :func:`seal_loop` that ignores the key it is given: each batch
        goes on after the cursor recorded for ``name`` and records its own, so a rotation
        cut short resumes where it stopped, and replicas share one (each batch holds
        ``name``'s row: they take turns). Once the rotation to ``key_id`` is recorded
        done, a batch is one read and returns ``(0, None)``. A batch is committed before
        its cursor: a crash between re-encrypts that batch again (harmless)."""

        async def one_batch(_after: str, batch: int) -> tuple[int, str | None]:
            if await self.rotated(name, key_id):
                return 0, None
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO sealing_state (name, key_id) VALUES ($1, '') "
                    "ON CONFLICT (name) DO NOTHING",
                    name,
                )
                row = await conn.fetchrow(
                    "SELECT key_id, cursor FROM sealing_state WHERE name = $1 FOR UPDATE", name
                )
                if row["key_id"] == key_id and row["cursor"] is None:
                    return 0, None  # another replica finished it meanwhile
                after = json.loads(row["cursor"]) if row["key_id"] == key_id else start
                n, last = await rotate(after, batch)
                cursor = None if last is None else json.dumps(last)
                await conn.execute(
                    "UPDATE sealing_state SET key_id = $2, cursor = $3, updated_at = now() "
                    "WHERE name = $1",
                    name,
                    key_id,
                    cursor,
                )
            return n, cursor

        return one_batch
