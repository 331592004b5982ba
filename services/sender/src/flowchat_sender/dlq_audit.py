"""The DLQ's audit trail: who replayed or discarded what, when, and why.

Every replay and discard (through the API or the sender's CLI) appends one entry to a
Redis stream (``flowchat:sender:dlq:audit``, the newest ``MAX_ENTRIES`` kept) and logs
it. An entry names the action, the actor, the filters, the reason (a discard's), and
the message ids it touched: ids only, never a body or a phone number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from flowchat_platform.logs import get_logger

log = get_logger(__name__)

STREAM = "flowchat:sender:dlq:audit"
#: Entries kept (approximately: Redis trims whole nodes).
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class AuditEntry:
    action: str
    actor: str
    filters: dict[str, Any]
    message_ids: list[str]
    reason: str | None = None
    skipped: int = 0
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    id: str | None = None

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class DlqAudit:
    def __init__(self, redis: aioredis.Redis, *, stream: str = STREAM) -> None:
        self._redis = redis
        self.stream = stream

    async def record(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry`` (and log it); a Redis failure is logged, never raised: the
        action happened, the log line still tells it."""
        log.info(
            "dlq action",
            action=entry.action,
            actor=entry.actor,
            count=len(entry.message_ids),
            skipped=entry.skipped,
            filters=entry.filters,
            reason=entry.reason,
        )
        data = orjson.dumps(entry.public())
        try:
            entry_id = await self._redis.xadd(
                self.stream, {"entry": data}, maxlen=MAX_ENTRIES, approximate=True
            )
        except (RedisError, OSError) as exc:
            log.error("dlq audit entry not stored", action=entry.action, error=repr(exc))
            return entry
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return AuditEntry(**{**asdict(entry), "id": text})

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        rows = await self._redis.xrevrange(self.stream, count=limit) or []
        out = []
        for entry_id, fields in rows:
            raw = (fields or {}).get(b"entry") or (fields or {}).get("entry")
            if raw is None:
                continue
            data = orjson.loads(raw)
            data["id"] = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            out.append(AuditEntry(**data))
        return out
