"""The parking lot ``whatsapp.outbound.dlq``: list, replay and discard parked commands.

::

    (whatsapp.outbound.dlq) ──list──▶ read, then returned to the queue untouched
          │
          ├──replay──▶ [flowchat.outbound] <tenant>.<account>[.bulk]   (fresh attempt count,
          │            back to the command's lane: marketing to the bulk queue)
          │            then the parked copy is acked (after the publish is confirmed)
          └──discard──▶ [flowchat.status] a failed send_result (code -26, the operator's
                       reason: the message's status becomes ``failed``), then the parked
                       copy is acked

Filters (:class:`Filters`, all optional, combined with AND): tenant, account (the
business number), the last error code, a substring of the parking reason, message ids.
Every replay and discard is audited (:mod:`flowchat_sender.dlq_audit`): who, what,
when, and a discard's reason.

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
import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage

from flowchat_contracts import ProviderError, SendResult, topology
from flowchat_platform.amqp import HEADER_ATTEMPT, HEADER_REASON
from flowchat_sender import fates
from flowchat_sender.claims import Record
from flowchat_sender.dlq_audit import AuditEntry, DlqAudit
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
class Filters:
    """Which parked commands an action takes (None: any)."""

    tenant_id: str | None = None
    account_id: str | None = None
    error_code: int | None = None
    #: A substring of the parking reason (case-insensitive).
    reason: str | None = None
    message_ids: frozenset[str] | None = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value is not None:
                out[name] = sorted(value) if isinstance(value, frozenset) else value
        return out

    def match(self, parked: Parked) -> bool:
        return (
            (self.tenant_id is None or parked.tenant_id == self.tenant_id)
            and (self.account_id is None or parked.account_id == self.account_id)
            and (self.error_code is None or parked.error_code == self.error_code)
            and (self.reason is None or self.reason.lower() in parked.reason.lower())
            and (self.message_ids is None or parked.message_id in self.message_ids)
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
class DiscardReport:
    discarded: list[str] = field(default_factory=list)
    audit_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "discarded": len(self.discarded),
            "message_ids": self.discarded,
            "audit_id": self.audit_id,
        }


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: Claims deleted because of ``force``.
    forgotten: list[str] = field(default_factory=list)
    audit_id: str | None = None

    def public(self) -> dict[str, Any]:
        return {
            "replayed": len(self.replayed),
            "message_ids": self.replayed,
            "skipped": self.skipped,
            "forced": self.forgotten,
            "audit_id": self.audit_id,
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


def _broker_reason(headers: Any) -> str:
    """The reason of a copy the broker dead-lettered itself (no sender header)."""
    if str(_text(headers.get("x-first-death-reason")) or "") == "delivery_limit":
        return "delivery limit reached: handling failed on every delivery (see the logs)"
    return _text(headers.get("x-first-death-reason")) or ""


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
        reason=_text(headers.get(HEADER_REASON)) or _broker_reason(headers),
        error_code=_int(headers.get(HEADER_ERROR_CODE)),
        error_message=_text(headers.get(HEADER_ERROR_MESSAGE)),
        attempts=_int(headers.get(HEADER_ATTEMPTS)),
        first_failure=_text(headers.get(HEADER_FIRST_FAILURE)),
        last_failure=_text(headers.get(HEADER_LAST_FAILURE)),
        parked_at=_text(message.timestamp),
    )


class ParkingLot:
    """Reads, replays and discards ``whatsapp.outbound.dlq`` over its own broker
    connection; every replay and discard is audited."""

    def __init__(
        self, amqp_url: str, idempotency: IdempotencyStore, audit: DlqAudit | None = None
    ) -> None:
        self.amqp_url = amqp_url
        self.idempotency = idempotency
        self.audit = audit or DlqAudit(idempotency.redis)
        self._lock = asyncio.Lock()

    async def _take(
        self, channel: aio_pika.abc.AbstractChannel, limit: int, filters: Filters
    ) -> tuple[list[AbstractIncomingMessage], list[AbstractIncomingMessage]]:
        """Up to ``limit`` parked messages matching ``filters`` (and the others read past)."""
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
            (wanted if filters.match(describe(message)) else others).append(message)
        return wanted, others

    async def list(
        self,
        *,
        limit: int = 100,
        reason: str | None = None,
        message_ids: frozenset[str] | None = None,
        filters: Filters | None = None,
    ) -> list[Parked]:
        """Describe up to ``limit`` parked commands (left in the queue)."""
        filters = _filters(filters, reason, message_ids)
        async with self._lock:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                wanted, others = await self._take(channel, limit, filters)
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
        filters: Filters | None = None,
        actor: str = "unnamed",
    ) -> ReplayReport:
        """Publish up to ``limit`` parked commands back to ``flowchat.outbound``."""
        filters = _filters(filters, reason, message_ids)
        report = ReplayReport()
        async with self._lock:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                publisher = await connection.channel(publisher_confirms=True)
                exchange = await publisher.get_exchange(topology.EXCHANGE_OUTBOUND)
                wanted, others = await self._take(channel, limit, filters)
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
                if report.replayed or report.skipped:
                    entry = await self.audit.record(
                        AuditEntry(
                            action="replay" + (" (force)" if force else ""),
                            actor=actor,
                            filters=filters.public(),
                            message_ids=report.replayed,
                            skipped=len(report.skipped),
                        )
                    )
                    report.audit_id = entry.id
        return report

    async def discard(
        self, *, reason: str, actor: str, limit: int = 100, filters: Filters | None = None
    ) -> DiscardReport:
        """Drop up to ``limit`` parked commands for good: each one's message is recorded
        ``failed`` (a send result with code -26 and ``reason``), then its parked copy is
        acked. Audited with the reason."""
        filters = filters or Filters()
        report = DiscardReport()
        async with self._lock:
            connection = await aio_pika.connect(self.amqp_url)
            try:
                channel = await connection.channel()
                publisher = await connection.channel(publisher_confirms=True)
                status = await publisher.get_exchange(topology.EXCHANGE_STATUS)
                wanted, others = await self._take(channel, limit, filters)
                for message in wanted:
                    await self._discard_one(message, status, reason)
                    await message.ack()
                    report.discarded.append(message.message_id or "?")
                for message in others:
                    await message.nack(requeue=True)
            finally:
                await connection.close()
                if report.discarded:
                    entry = await self.audit.record(
                        AuditEntry(
                            action="discard",
                            actor=actor,
                            filters=filters.public(),
                            message_ids=report.discarded,
                            reason=reason,
                        )
                    )
                    report.audit_id = entry.id
        return report

    async def _discard_one(
        self,
        message: AbstractIncomingMessage,
        status: aio_pika.abc.AbstractExchange,
        reason: str,
    ) -> None:
        """Tell the state-manager (a failed result), when the body names a command."""
        parked = describe(message)
        body = _body(message) or {}
        if not (parked.tenant_id and parked.account_id and parked.idempotency_key):
            return  # nothing to tell: the state-manager cannot know this one
        rule = fates.rule_for("flowchat", fates.DISCARDED)
        correlation = _text(body.get("correlation_id")) or message.correlation_id
        try:
            result = SendResult(
                **({"correlation_id": correlation} if correlation else {}),
                tenant_id=parked.tenant_id,
                account_id=parked.account_id,
                message_id=parked.message_id or "?",
                idempotency_key=parked.idempotency_key,
                to=parked.to or "",
                message_type=_text((body.get("content") or {}).get("type")) or "unknown",
                category=parked.category or "service",
                campaign_id=_text(body.get("campaign_id")),
                status="failed",
                provider="meta",  # as for every refusal before a provider was involved
                error=ProviderError(code=fates.DISCARDED, title=rule.hint, message=reason[:1000]),
                attempts=max(1, parked.attempts or 1),
            )
        except ValueError:
            return  # not a command the state-manager could record either
        await status.publish(
            aio_pika.Message(
                result.model_dump_json().encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=f"{result.message_id}:discarded",
                correlation_id=result.correlation_id,
                type=result.kind,
            ),
            topology.status_routing_key(result.tenant_id, result.account_id, "send_result"),
            mandatory=True,
            timeout=10,
        )

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

    async def recent_actions(self, limit: int = 100) -> builtins.list[AuditEntry]:
        return await self.audit.recent(limit)

    async def _record(self, tenant_id: str, key: str) -> Record | None:
        raw = await self.idempotency.raw(tenant_id, key)
        return Record.decode(raw) if raw is not None else None


def _filters(
    filters: Filters | None, reason: str | None, message_ids: frozenset[str] | None
) -> Filters:
    """``filters`` with the older keyword filters (reason, message ids) folded in."""
    base = filters or Filters()
    if reason is None and message_ids is None:
        return base
    return Filters(
        tenant_id=base.tenant_id,
        account_id=base.account_id,
        error_code=base.error_code,
        reason=reason if reason is not None else base.reason,
        message_ids=message_ids if message_ids is not None else base.message_ids,
    )
