"""The tenants' send API: a request checked (account, phone number, idempotency key,
rate) and published as an :class:`OutboundCommand` with a confirm.

Nothing here knows HTTP, AMQP or Redis (see :mod:`flowchat_gateway.ports`).

The customer's number is published in FlowChat's one form, the WhatsApp id (E.164
digits without ``+``, :func:`flowchat_platform.phones.to_wa_id`). An idempotency record
remembers the hash of the request's canonical body (``to`` in that form); records
written before the gateway used it hashed ``to`` as ``+E164``, and still match
(:func:`body_hashes`), so a client retrying across the upgrade gets its message id back.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import orjson

from flowchat_contracts import MessageCategory, OutboundCommand, OutboundContent, new_id, topology
from flowchat_gateway import metrics
from flowchat_gateway.errors import RateLimited, SendRejected, Unavailable
from flowchat_gateway.ports import (
    Accounts,
    ApiKey,
    IdempotencyRecord,
    Outgoing,
    Publisher,
    SendStore,
    encode,
)
from flowchat_gateway.schemas import SendMessageRequest
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import StoreUnavailable, UpstreamError
from flowchat_platform.logs import get_logger
from flowchat_platform.phones import InvalidPhoneNumber, to_wa_id

log = get_logger(__name__)

#: A pending idempotency claim lives this long; a crash mid-publish frees the key after it.
PENDING_CLAIM_TTL_S = 60
IDEMPOTENCY_KEY_MAX = 128


def idempotency_key(raw: str | None) -> str:
    """The ``Idempotency-Key`` header, required: 1 to 128 characters once stripped."""
    key = (raw or "").strip()
    if not key or len(key) > IDEMPOTENCY_KEY_MAX:
        raise SendRejected(
            "invalid_idempotency_key",
            f"an Idempotency-Key header of 1 to {IDEMPOTENCY_KEY_MAX} characters is required",
            field="Idempotency-Key",
        )
    return key


def wa_id_of(raw: str) -> str:
    """The request's ``to`` as a WhatsApp id; else ``invalid_phone_number`` on ``to``."""
    try:
        return to_wa_id(raw)
    except InvalidPhoneNumber as exc:
        raise SendRejected("invalid_phone_number", str(exc), field="to") from exc


def body_hashes(request: SendMessageRequest, wa_id: str) -> tuple[str, ...]:
    """The hash of the canonical body (``to`` as ``wa_id``), then the hash the gateway
    wrote before the WhatsApp id was its form (``to`` as ``+E164``)."""

    def digest(to: str) -> str:
        canonical = request.model_copy(update={"to": to}).model_dump(mode="json")
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()

    return digest(wa_id), digest("+" + wa_id)


@dataclass(frozen=True)
class Queued:
    """What one message to queue is, whichever API it came through."""

    #: The customer: a WhatsApp id or a BSUID.
    to: str
    content: OutboundContent
    category: MessageCategory = "service"
    reply_to: str | None = None
    callback_data: str | None = None


@dataclass(frozen=True)
class SendAccepted:
    message_id: str
    replayed: bool


class SendService:
    def __init__(
        self,
        *,
        tenants: Accounts,
        publisher: Publisher,
        store: SendStore,
        idempotency_window_s: int,
        rate_per_minute: int = 0,
    ) -> None:
        self.tenants = tenants
        self.publisher = publisher
        self.store = store
        self.idempotency_window_s = idempotency_window_s
        self.rate_per_minute = rate_per_minute

    async def check_rate(self, caller: ApiKey) -> None:
        if self.rate_per_minute <= 0:
            return
        try:
            wait = await self.store.rate_limit(caller.key_id, self.rate_per_minute)
        except StoreUnavailable as exc:
            log.warning("rate limit skipped: redis unavailable", error=str(exc))
            return
        if wait is not None:
            metrics.RATE_LIMITED.labels(caller.tenant_id).inc()
            raise RateLimited(
                f"more than {self.rate_per_minute} requests a minute", retry_after_s=wait
            )

    async def send(
        self,
        caller: ApiKey,
        request: SendMessageRequest,
        *,
        idempotency_key: str,
        correlation_id: str,
    ) -> SendAccepted:
        try:
            acc = await self.tenants.account(request.account_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        if acc is None or acc.tenant_id != caller.tenant_id:
            raise SendRejected("account_not_found", "no such account", field="account_id")
        if acc.status != "active" or acc.tenant_status != "active":
            raise SendRejected(
                "account_disabled",
                "the account or its tenant is not active",
                field="account_id",
            )
        to = wa_id_of(request.to)
        return await self.queue(
            caller,
            acc,
            Queued(
                to=to,
                content=request.content,
                category=request.category,
                reply_to=request.reply_to,
            ),
            hashes=body_hashes(request, to),
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
        )

    async def queue(
        self,
        caller: ApiKey,
        acc: AccountCredentials,
        message: Queued,
        *,
        hashes: tuple[str, ...],
        idempotency_key: str,
        correlation_id: str,
    ) -> SendAccepted:
        """Publish ``message`` from ``acc`` (checked: the caller's, active) once per
        ``idempotency_key``: ``hashes`` are the request's body hashes (the current first;
        a same key with another body is a conflict)."""
        body_hash = hashes[0]
        tenant_id = caller.tenant_id
        try:
            claim = IdempotencyRecord(body_hash, new_id(), "pending")
            for _ in range(2):
                existing = await self.store.idempotency_get(tenant_id, idempotency_key)
                if existing is not None and _unconfirmed_same(existing, hashes):
                    # An earlier publish of this key was not confirmed, yet it may still
                    # reach the queue (a blocked or slow broker): publish the same message
                    # id again, so the sender sends it once under the id the client gets.
                    claim = IdempotencyRecord(body_hash, existing.message_id, "pending")
                    await self.store.idempotency_complete(
                        tenant_id, idempotency_key, claim, PENDING_CLAIM_TTL_S
                    )
                    break
                if existing is not None:
                    return _replay(existing, hashes)
                if await self.store.idempotency_claim(
                    tenant_id, idempotency_key, claim, PENDING_CLAIM_TTL_S
                ):
                    break
            else:
                raise _in_progress()
        except StoreUnavailable as exc:
            raise Unavailable(str(exc), dependency="redis") from exc

        command = OutboundCommand(
            tenant_id=tenant_id,
            account_id=acc.account_id,
            correlation_id=correlation_id,
            message_id=claim.message_id,
            idempotency_key=idempotency_key,
            to=message.to,
            category=message.category,
            reply_to=message.reply_to,
            content=message.content,
            callback_data=message.callback_data,
        )
        outgoing = Outgoing(
            topology.EXCHANGE_OUTBOUND,
            topology.outbound_routing_key(tenant_id, acc.account_id, command.category),
            encode(command),
            command.message_id,
            correlation_id,
            command.kind,
        )
        started = time.perf_counter()
        (error,) = await self.publisher.publish_all([outgoing])
        metrics.PUBLISH_SECONDS.labels("send").observe(time.perf_counter() - started)
        done = IdempotencyRecord(body_hash, claim.message_id, "done")
        if error is not None:
            # Kept, not released: the unconfirmed publish may still land (see above).
            unconfirmed = IdempotencyRecord(body_hash, claim.message_id, "unconfirmed")
            try:
                await self.store.idempotency_complete(
                    tenant_id, idempotency_key, unconfirmed, self.idempotency_window_s
                )
            except StoreUnavailable:
                log.warning("idempotency claim not updated; it expires by itself")
            raise Unavailable(f"outbound command not confirmed: {error}", dependency="broker")
        try:
            await self.store.idempotency_complete(
                tenant_id, idempotency_key, done, self.idempotency_window_s
            )
        except StoreUnavailable as exc:
            # Published: the sender dedupes by idempotency key if the client retries.
            log.warning("idempotency record not completed", error=str(exc))
        log.info(
            "outbound command queued",
            message_id=command.message_id,
            account_id=acc.account_id,
            message_type=command.content.type,
        )
        return SendAccepted(command.message_id, replayed=False)


def _in_progress() -> SendRejected:
    return SendRejected("request_in_progress", "a request with this key is being processed")


def _unconfirmed_same(existing: IdempotencyRecord, hashes: tuple[str, ...]) -> bool:
    return existing.state == "unconfirmed" and existing.body_hash in hashes


def _replay(existing: IdempotencyRecord, hashes: tuple[str, ...]) -> SendAccepted:
    if existing.body_hash not in hashes:
        raise SendRejected(
            "idempotency_conflict",
            "this Idempotency-Key was used with a different body",
            field="Idempotency-Key",
        )
    if existing.state != "done":
        raise _in_progress()
    return SendAccepted(existing.message_id, replayed=True)


__all__ = [
    "PENDING_CLAIM_TTL_S",
    "Queued",
    "SendAccepted",
    "SendService",
    "body_hashes",
    "idempotency_key",
    "wa_id_of",
]
