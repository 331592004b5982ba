"""The parking lot ``whatsapp.outbound.dlq``: list parked commands and replay them.

::

    (whatsapp.outbound.dlq) ──list──▶ read, then returned to the queue untouched
          │
          └──replay──▶ [flowchat.outbound] <tenant>.<account>[.bulk]   (fresh attempt count,
                       back to the command's lane: marketing to the bulk queue)
                       then the parked copy is acked (after the publish is confirmed)

Replay publishes the original body with the origin's headers minus the sender's
retry bookkeeping, so the command gets its full set of attempts again; its
idempotency key still guards it: a command whose key already holds a result is
answered from it, never sent twice. A command parked as *outcome unknown* (a claim
without a result: it may have reached the provider) is skipped unless ``force``,
which deletes that claim first — an operator's explicit "send it again".
Conflicts (the key was used for another message) are never replayed.

Messages are read with ``basic.get`` without auto-ack and settled one by one, so a
crash mid-replay loses nothing: an unsettled message goes back to the queue.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from flowchat_contracts import topology
from flowchat_platform.amqp import HEADER_ATTEMPT, HEADER_REASON
from flowchat_sender.claims import Record
from flowchat_sender.headers import (
    BROKER_HEADERS,
    HEADER_ATTEMPTS,
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_FIRST_FAILURE,
    HEADER_LAST_FAILURE,
)
from flowchat_sender.idempotency import IdempotencyStore

#: Headers dropped on replay: the sender's retry bookkeeping (and the broker's).
_DROPPED: tuple[str, ...] = (
    HEADER_ATTEMPT,
    HEADER_ATTEMPTS,
    *BROKER_HEADERS,
)


@dataclass(frozen=True)
class Parked:
    message_id: str | None
    tenant_id: str | None
    account_id: str | None
    idempotency_key: str | None
    to: str | None
    category: str | None
    reason: str
    error_code: int | None
    error_message: str | None
    attempts: int | None
    first_failure: str | None
    last_failure: str | None
    parked_at: str | None

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


Outcome = Literal["replayed", "skipped_outcome_unknown", "skipped_conflict", "skipped_undecodable"]


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: Claims deleted because of ``force``.
    forgotten: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "replayed": len(self.replayed),
            "message_ids": self.replayed,
            "skipped": self.skipped,
            "forced": self.forgotten,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _int(value: Any) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _body(message: AbstractIncomingMessage) -> dict[str, Any] | None:
    try:
        data = orjson.loads(message.body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def describe(message: AbstractIncomingMessage) -> Parked:
    headers = message.headers or {}
    body = _body(message) or {}
    return Parked(
        message_id=message.message_id or _text(body.get("message_id")),
        tenant_id=_text(body.get("tenant_id")),
        account_id=_text(body.get("account_id")),
        idempotency_key=_text(body.get("idempotency_key")),
        to=_text(body.get("to")),
        category=_text(body.get("category")),
        reason=_text(headers.get(HEADER_REASON)) or "",
        error_code=_int(headers.get(HEADER_ERROR_CODE)),
        error_message=_text(headers.get(HEADER_ERROR_MESSAGE)),
        attempts=_int(headers.get(HEADER_ATTEMPTS)),
        first_failure=_text(headers.get(HEADER_FIRST_FAILURE)),
        last_failure=_text(headers.get(HEADER_LAST_FAILURE)),
        parked_at=_text(message.timestamp),
    )


class ParkingLot:
    """Reads and replays ``whatsapp.outbound.dlq`` over its own broker connection."""

    def __init__(self, amqp_url: str, idempotency: IdempotencyStore) -> None:
        self.amqp_url = amqp_url
        self.idempotency = idempotency
        self._lock = asyncio.Lock()

    async def _take(
        self,
        channel: aio_pika.abc.AbstractChannel,
        limit: int,
        reason: str | None,
        message_ids: frozenset[str] | None = None,
    ) -> tuple[list[AbstractIncomingMessage], list[AbstractIncomingMessage]]:
        """Up to ``limit`` parked messages matching the filters (and the others read past)."""
        queue = await channel.declare_queue(topology.QUEUE_OUTBOUND_DLQ, passive=True)
        depth = queue.declaration_result.message_count or 0
        wanted: list[AbstractIncomingMessage] = []
        others: list[AbstractIncomingMessage] = []
        # Each message is read at most once per call: stop after the queue's depth.
        for _ in range(depth):
            if len(wanted) >= limit:
                break
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers = message.headers or {}
            text = (_text(headers.get(HEADER_REASON)) or "").lower()
            if (reason and reason.lower() not in text) or (
                message_ids is not None and message.message_id not in message_ids
            ):
                others.append(message)
            else:
                wanted.append(message)
        return wanted, others

    async def list(
        self,
        *,
        limit: int = 100,
        reason: str | None = None,
        message_ids: frozenset[str] | None = None,
    ) -> list[Parked]:
        """Describe up to ``limit`` parked commands (left in the queue)."""
        async with self._lock:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                wanted, others = await self._take(channel, limit, reason, message_ids)
                described = [describe(m) for m in wanted]
                for message in (*wanted, *others):
                    await message.nack(requeue=True)
                return described
            finally:
                await connection.close()

    async def replay(
        self,
        *,
        limit: int = 100,
        reason: str | None = None,
        message_ids: frozenset[str] | None = None,
        force: bool = False,
    ) -> ReplayReport:
        """Publish up to ``limit`` parked commands back to ``flowchat.outbound``
        (filters: reason substring, message ids)."""
        report = ReplayReport()
        async with self._lock:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                publisher = await connection.channel(publisher_confirms=True)
                exchange = await publisher.get_exchange(topology.EXCHANGE_OUTBOUND)
                wanted, others = await self._take(channel, limit, reason, message_ids)
                for message in wanted:
                    outcome = await self._replay_one(message, exchange, force, report)
                    if outcome == "replayed":
                        await message.ack()
                    else:
                        await message.nack(requeue=True)
                for message in others:
                    await message.nack(requeue=True)
            finally:
                await connection.close()
        return report

    async def _replay_one(
        self,
        message: AbstractIncomingMessage,
        exchange: aio_pika.abc.AbstractExchange,
        force: bool,
        report: ReplayReport,
    ) -> Outcome:
        parked = describe(message)
        name = parked.message_id or "?"
        if not (parked.tenant_id and parked.account_id and parked.idempotency_key):
            report.skipped.append({"message_id": name, "why": "undecodable command"})
            return "skipped_undecodable"
        if "conflict" in parked.reason.lower():
            report.skipped.append(
                {"message_id": name, "why": "idempotency conflict: never replayed"}
            )
            return "skipped_conflict"
        record = await self._record(parked.tenant_id, parked.idempotency_key)
        if record is not None and record.result is None:
            if not force:
                report.skipped.append(
                    {
                        "message_id": name,
                        "why": "outcome unknown (it may have been sent): replay with force "
                        "to send it again",
                    }
                )
                return "skipped_outcome_unknown"
            await self.idempotency.forget(parked.tenant_id, parked.idempotency_key)
            report.forgotten.append(name)
        headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith(_DROPPED)}
        headers["x-flowchat-replayed-from"] = topology.QUEUE_OUTBOUND_DLQ
        await exchange.publish(
            aio_pika.Message(
                message.body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                type=message.type,
                headers=headers,
            ),
            topology.outbound_routing_key(parked.tenant_id, parked.account_id, parked.category),
            mandatory=True,
            timeout=10,
        )
        report.replayed.append(name)
        return "replayed"

    async def _record(self, tenant_id: str, key: str) -> Record | None:
        raw = await self.idempotency.raw(tenant_id, key)
        return Record.decode(raw) if raw is not None else None
