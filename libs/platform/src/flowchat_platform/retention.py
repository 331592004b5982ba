"""Retention: delete rows older than a cutoff in short batches, on a timer.

A store deletes one batch per call (``purge(cutoff, batch) -> rows deleted``, one short
transaction, ``FOR UPDATE SKIP LOCKED`` so two replicas share the work);
:func:`purge_in_batches` calls it until a batch comes back short; :func:`retention_loop`
runs a service's pass every ``interval_s`` and survives a failed pass (tried again next
round). The state-manager, the inbox and the relay use it.

Per tenant: a tenant may choose its own number of days (``GET/PUT /v1/retention``, the
bodies :class:`RetentionIn` / :class:`RetentionOut`), kept in the service's
``tenant_retention (tenant_id, <column>)`` table (:class:`TenantRetention`); a tenant
without a row keeps the service's default. :data:`TENANT_CUTOFF` is the SQL of a row's
cutoff under its tenant's days.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


#: The most days a tenant may choose.
MAX_DAYS = 3650

#: A row's cutoff in SQL, for a query that LEFT JOINs its tenant's ``tenant_retention r``
#: and whose own days are ``r.<column>`` (format with ``column``): ``$1`` is now minus
#: the default ``$3`` days, moved to now minus the tenant's own days when it chose some.
TENANT_CUTOFF = "$1::timestamptz + make_interval(days => $3::int - coalesce(r.{column}, $3::int))"


class RetentionIn(BaseModel):
    """``PUT /v1/retention``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"days": 30}]})

    #: Days kept (1 to 3650); null: the service's default again.
    days: int | None = Field(ge=1, le=MAX_DAYS)


class RetentionOut(BaseModel):
    """``GET`` / ``PUT /v1/retention``: the tenant's retention in days."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"days": 30, "default_days": 90, "own": True}]}
    )

    days: int
    default_days: int
    #: Whether the tenant chose ``days`` (else it is the default).
    own: bool

    @classmethod
    def of(cls, own_days: int | None, default_days: int) -> RetentionOut:
        """The answer for a tenant's own days (None: it has the default)."""
        return cls(
            days=own_days if own_days is not None else default_days,
            default_days=default_days,
            own=own_days is not None,
        )


class TenantRetention:
    """A service's ``tenant_retention`` table: ``tenant_id`` and the days in ``column``
    (an asyncpg pool or connection; ``column`` is the service's constant, never input)."""

    def __init__(self, pool: Any, column: str) -> None:
        if not column.isidentifier():
            raise ValueError("column must be a plain identifier")
        self._pool = pool
        self._column = column

    async def get(self, tenant_id: str) -> int | None:
        """The tenant's own days (None: the default)."""
        value = await self._pool.fetchval(
            f"SELECT {self._column} FROM tenant_retention WHERE tenant_id = $1",  # noqa: S608
            tenant_id,
        )
        return int(value) if value is not None else None

    async def set(self, tenant_id: str, days: int | None) -> None:
        """Set the tenant's own days (None: back to the default)."""
        if days is None:
            await self._pool.execute("DELETE FROM tenant_retention WHERE tenant_id = $1", tenant_id)
            return
        await self._pool.execute(
            f"""
            INSERT INTO tenant_retention (tenant_id, {self._column}) VALUES ($1, $2)
            ON CONFLICT (tenant_id) DO UPDATE SET {self._column} = EXCLUDED.{self._column},
                updated_at = now()
            """,  # noqa: S608 - a constant column
            tenant_id,
            days,
        )

    async def longest(self) -> int | None:
        """The most days any tenant chose (None: none chose)."""
        value = await self._pool.fetchval(
            f"SELECT max({self._column}) FROM tenant_retention"  # noqa: S608
        )
        return int(value) if value is not None else None
