"""Webhooks in: verified, normalized, deduplicated and durably published.

Nothing here knows HTTP or AMQP: the routes hand in bytes and headers; the broker
hides behind :class:`~flowchat_gateway.ports.Publisher`, Redis behind
:class:`~flowchat_gateway.ports.DedupeStore`, the tenant service behind
:class:`~flowchat_gateway.ports.Accounts` (see :mod:`flowchat_gateway.ports`).

A webhook is answered 200 only after every event it carries is confirmed by the
broker (:meth:`WebhookService._deliver`). Its messages are deduplicated in one Redis
round trip before the publish: each event's key is *claimed* (held for
``dedupe_claim_s`` under the request's token) unless it is marked done (a duplicate:
not published, 200) or held by another request (in flight). A request of this
process holding it is waited for: once its publish is confirmed the copy is a duplicate
(200); a claim held by another process (or one this process did not get confirmed) is
answered 409, and the provider retries.
Once the broker confirms, the claims become marks (7 days) without the request waiting
for it; events the broker did not confirm are released, and the request is answered
503. A gateway that dies between claim and confirm leaves claims that expire, so the
provider's retry is answered 409 until then and published after: never 200 for an
event that is not durable. When Redis is down the events are published anyway
(consumers are idempotent by ``event_id``, which :mod:`flowchat_gateway.normalize`
derives from the provider's ids; the conversation service records each handled message
in ``handled_messages``).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from flowchat_contracts import InboundMessage, InboundMessageV2, StatusUpdate, topology
from flowchat_contracts import utcnow as _utcnow
from flowchat_gateway import metrics
from flowchat_gateway.errors import InFlight, InvalidSignature, Unavailable, UnknownAccount
from flowchat_gateway.normalize import (
    AccountRef,
    Change,
    Event,
    MalformedPayload,
    Normalized,
    Parked,
    event_id_for,
    inbound_from_twilio,
    is_twilio_status_callback,
    metric_type,
    normalize_change,
    split_changes,
    status_from_twilio,
    without_nul,
)
from flowchat_gateway.ports import Accounts, Claimed, DedupeStore, Outgoing, Publisher, encode
from flowchat_gateway.signatures import meta_signature_valid, twilio_signature_valid
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import StoreUnavailable, UpstreamError
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: How many app secrets of recently seen accounts are kept to authenticate bodies
#: that name no known account (unparseable, or only unknown phone numbers).
KNOWN_SECRETS_MAX = 64


# --------------------------------------------------------------------- routing


def route_event(event: Event) -> Outgoing:
    """Where each kind of event goes (exchange, routing key)."""
    if isinstance(event, InboundMessage | InboundMessageV2):
        key = topology.inbound_routing_key(event.tenant_id, event.account_id, event.type)
        return Outgoing(
            topology.EXCHANGE_INBOUND,
            key,
            encode(event),
            event.event_id,
            event.correlation_id,
            event.kind,
            headers=topology.inbound_headers(event.tenant_id, conversation_customer(event)),
        )
    if isinstance(event, StatusUpdate):
        exchange = topology.EXCHANGE_STATUS
        key = topology.status_routing_key(event.tenant_id, event.account_id, event.kind)
    else:
        return Outgoing(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(event.tenant_id, event.account_id, event.field),
            encode(event),
            event.event_id,
            event.correlation_id,
            event.kind,
            mandatory=False,
        )
    return Outgoing(exchange, key, encode(event), event.event_id, event.correlation_id, event.kind)


def conversation_customer(message: InboundMessage | InboundMessageV2) -> str | None:
    """The customer a message's conversation is keyed by (``customer.key``: the BSUID,
    else the phone number; ``customer_wa_id`` without a ``customer``), as the conversation
    service keys it: what its partition is hashed from, with the tenant."""
    if message.customer is not None:
        return message.customer.key
    return message.customer_wa_id.lstrip("+") if message.customer_wa_id else None


def parked_body(piece: Parked) -> bytes:
    return piece.data if isinstance(piece.data, bytes) else orjson.dumps(piece.data)


def parked_identity(provider: str, piece: Parked) -> str:
    """What makes a parked piece the same piece when the provider redelivers the webhook:
    the provider, the reason and the piece's content (keys sorted), hashed."""
    if isinstance(piece.data, bytes):
        content = piece.data
    else:
        try:
            content = orjson.dumps(piece.data, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # keys orjson cannot sort (never from JSON or a form)
            content = orjson.dumps(piece.data)
    digest = hashlib.sha256(content).hexdigest()
    return f"{provider}:parked:{piece.reason}:{digest}"


#: The dedupe store's scope for parked pieces (they may belong to no known account).
PARKED_SCOPE = "parked"


def route_parked(provider: str, piece: Parked, correlation_id: str) -> Outgoing:
    data = parked_body(piece)
    return Outgoing(
        "",
        topology.QUEUE_POISON,
        data,
        correlation_id=correlation_id,
        message_type=f"{provider}_webhook_part",
        park_reason=f"gateway {provider} webhook: {piece.reason}: {piece.detail}",
    )


# --------------------------------------------------------------------- webhooks


@dataclass
class WebhookResult:
    outcome: str
    published: int = 0
    duplicates: int = 0
    parked: int = 0
    ignored: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.outcome,
            "published": self.published,
            "duplicates": self.duplicates,
            "parked": self.parked,
            "ignored": self.ignored,
        }


@dataclass
class _Resolved:
    by_phone: dict[str, AccountCredentials | None] = field(default_factory=dict)
    by_waba: dict[str, list[AccountCredentials]] = field(default_factory=dict)

    def for_change(self, change: Change) -> list[AccountCredentials]:
        """The accounts a change belongs to: its phone number's, or its WABA's.

        Account-level fields name only the WABA. A quality or name update names the
        number too (``display_phone_number``): it goes to that number's account;
        anything else (template status, account update) to every number of the WABA.
        """
        if change.phone_number_id:
            acc = self.by_phone.get(change.phone_number_id)
            return [acc] if acc is not None else []
        if not change.waba_id:
            return []
        accounts = self.by_waba.get(change.waba_id, [])
        display = _digits(change.value.get("display_phone_number"))
        if display:
            named = [a for a in accounts if _digits(a.display_phone_number) == display]
            if named:
                return named
        return accounts

    def accounts(self) -> list[AccountCredentials]:
        seen: dict[str, AccountCredentials] = {}
        for acc in [*self.by_phone.values(), *(a for w in self.by_waba.values() for a in w)]:
            if acc is not None:
                seen[acc.account_id] = acc
        return list(seen.values())


def _digits(value: object) -> str:
    return re.sub(r"\D", "", value) if isinstance(value, str) else ""


class WebhookService:
    def __init__(
        self,
        *,
        tenants: Accounts,
        publisher: Publisher,
        store: DedupeStore,
        dedupe_window_s: int,
        dedupe_claim_s: int = 30,
        in_flight_wait_s: float = 10.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.tenants = tenants
        self.publisher = publisher
        self.store = store
        self.dedupe_window_s = dedupe_window_s
        self.dedupe_claim_s = dedupe_claim_s
        #: How long a copy waits for this process's request publishing the same event
        #: (that publish is bounded by its own timeout); past it: 409.
        self.in_flight_wait_s = in_flight_wait_s
        self.clock = clock
        #: Keys claimed by a request of this process, until its publish is settled →
        #: whether the broker confirmed the event.
        self._publishing: dict[str, asyncio.Future[bool]] = {}
        self._known_secrets: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------ Meta: verification

    async def verify_subscription(
        self, mode: str | None, token: str | None, challenge: str | None
    ) -> str | None:
        """The challenge to echo when Meta's verification request is genuine, else None."""
        if mode != "subscribe" or not token or challenge is None:
            return None
        try:
            known = await self.tenants.verify_token_known(token)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        return challenge if known else None

    # ------------------------------------------------------------ Meta: delivery

    async def handle_meta(
        self, raw: bytes, signature: str | None, *, correlation_id: str
    ) -> WebhookResult:
        if not signature:
            raise InvalidSignature("X-Hub-Signature-256 is missing", provider="meta")
        try:
            payload = orjson.loads(raw)
            if b"\\u0000" in raw:  # the only way a NUL is written in JSON text
                payload = without_nul(payload)
            changes, parked = split_changes(payload)
        except (orjson.JSONDecodeError, MalformedPayload) as exc:
            if not self._signed_by_known_secret(raw, signature):
                raise InvalidSignature(
                    "the body names no account and matches no known app secret", provider="meta"
                ) from exc
            piece = Parked("unparseable", str(exc)[:200], raw)
            return await self._deliver("meta", [], [piece], [], correlation_id=correlation_id)

        resolved = await self._resolve_meta_accounts(changes)
        verdicts: dict[str, bool] = {}
        checked: dict[str, bool] = {}
        for known in resolved.accounts():
            secret = known.app_secret or ""
            if secret and secret not in checked:
                checked[secret] = meta_signature_valid(secret, raw, signature)
                self._remember_secret(secret)
            verdicts[known.account_id] = bool(secret) and checked[secret]
        # A body naming known accounts must be signed by one of them. Only a body naming
        # none (unknown phone numbers) may be authenticated by any app secret seen lately.
        if not any(verdicts.values()) and (
            verdicts or not self._signed_by_known_secret(raw, signature)
        ):
            raise InvalidSignature(
                "the signature matches no referenced account's app secret", provider="meta"
            )

        normalized = Normalized(parked=list(parked))
        now = self.clock()
        for change in changes:
            accounts = [a for a in resolved.for_change(change) if a.provider == "meta"]
            if not accounts:
                log.warning(
                    "webhook for an unknown account parked",
                    phone_number_id=change.phone_number_id,
                    waba_id=change.waba_id,
                    field=change.field,
                )
                normalized.parked.append(
                    Parked(
                        "unknown_account",
                        f"phone_number_id={change.phone_number_id} waba_id={change.waba_id}",
                        {"waba_id": change.waba_id, "field": change.field, "value": change.value},
                    )
                )
                continue
            signed = [a for a in accounts if verdicts.get(a.account_id)]
            if not signed:
                log.warning(
                    "webhook change not signed by its account's app secret",
                    account_ids=[a.account_id for a in accounts],
                )
                normalized.parked.append(
                    Parked(
                        "signature_mismatch",
                        "account " + ",".join(a.account_id for a in accounts),
                        {"waba_id": change.waba_id, "field": change.field, "value": change.value},
                    )
                )
                continue
            for acc in signed:
                normalized.extend(
                    normalize_change(
                        change,
                        AccountRef(acc.tenant_id, acc.account_id),
                        received_at=now,
                        correlation_id=correlation_id,
                    )
                )
        for ignored_field in normalized.ignored:
            metrics.IGNORED.labels("meta", "unhandled_field").inc()
            log.info("webhook field ignored", field=ignored_field)
        return await self._deliver(
            "meta",
            normalized.events,
            normalized.parked,
            normalized.ignored,
            correlation_id=correlation_id,
        )

    async def _resolve_meta_accounts(self, changes: list[Change]) -> _Resolved:
        """Accounts by phone number id, and by WABA for the changes naming only a WABA
        (from the tenant service's by-WABA lookup, cached by the tenant client)."""
        resolved = _Resolved()
        phone_ids = sorted({c.phone_number_id for c in changes if c.phone_number_id})
        waba_ids = sorted({c.waba_id for c in changes if not c.phone_number_id and c.waba_id})
        try:
            if len(phone_ids) == 1 and not waba_ids:  # the usual body: no task per lookup
                found = [await self.tenants.account_by_phone_number(phone_ids[0])]
                by_waba: list[list[AccountCredentials]] = []
            else:
                found, by_waba = await asyncio.gather(
                    asyncio.gather(*(self.tenants.account_by_phone_number(p) for p in phone_ids)),
                    asyncio.gather(*(self.tenants.accounts_by_waba(w) for w in waba_ids)),
                )
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        resolved.by_phone = dict(zip(phone_ids, found, strict=True))
        resolved.by_waba = dict(zip(waba_ids, by_waba, strict=True))
        return resolved

    def _remember_secret(self, secret: str) -> None:
        self._known_secrets[secret] = None
        self._known_secrets.move_to_end(secret)
        while len(self._known_secrets) > KNOWN_SECRETS_MAX:
            self._known_secrets.popitem(last=False)

    def _signed_by_known_secret(self, raw: bytes, signature: str) -> bool:
        ok = False
        for secret in list(self._known_secrets):
            ok = meta_signature_valid(secret, raw, signature) or ok
        return ok

    # ------------------------------------------------------------ Twilio

    async def handle_twilio(
        self,
        account_id: str,
        url: str,
        params: list[tuple[str, str]],
        signature: str | None,
        *,
        correlation_id: str,
    ) -> WebhookResult:
        try:
            acc = await self.tenants.account(account_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        if acc is None or acc.provider != "twilio" or not acc.twilio_auth_token:
            raise UnknownAccount("no Twilio account with this id", account_id=account_id)
        if not signature:
            raise InvalidSignature("X-Twilio-Signature is missing", provider="twilio")
        if not twilio_signature_valid(acc.twilio_auth_token, url, params, signature):
            raise InvalidSignature("X-Twilio-Signature does not match", provider="twilio")
        form: dict[str, str] = without_nul(dict(params))
        ref = AccountRef(acc.tenant_id, acc.account_id)
        now = self.clock()
        events: list[Event] = []
        parked: list[Parked] = []
        ignored: list[str] = []
        try:
            if is_twilio_status_callback(form):
                update = status_from_twilio(
                    form, ref, received_at=now, correlation_id=correlation_id
                )
                if update is None:
                    ignored.append(f"status {form.get('MessageStatus')}")
                    metrics.IGNORED.labels("twilio", "untracked_status").inc()
                else:
                    events.append(update)
            else:
                events.append(
                    inbound_from_twilio(form, ref, received_at=now, correlation_id=correlation_id)
                )
        except (ValidationError, ValueError) as exc:
            parked.append(Parked("malformed_message", str(exc)[:500], form))
        return await self._deliver("twilio", events, parked, ignored, correlation_id=correlation_id)

    # ------------------------------------------------------------ dedupe + publish

    def _keyed(
        self, provider: str, events: list[Event], parked: list[Parked]
    ) -> tuple[dict[str, Event], dict[str, Parked]]:
        """Events and parked pieces by their dedupe marks (repeats within one request
        collapse). Parked pieces are deduplicated like events: a webhook Meta redelivers
        (because another of its events was not confirmed, say) parks each bad piece once."""
        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(self.store.dedupe_key(event.account_id, event.event_id), event)
        unique_parked: dict[str, Parked] = {}
        for piece in parked:
            key = self.store.dedupe_key(
                PARKED_SCOPE, event_id_for(PARKED_SCOPE, parked_identity(provider, piece))
            )
            unique_parked.setdefault(key, piece)
        return unique, unique_parked

    async def _claim(
        self, provider: str, keys: list[str], windows: list[tuple[str, str, str, int]]
    ) -> Claimed | None:
        """The webhook's claims and the customers' windows, one Redis round trip; None
        when Redis is down (publish anyway: consumers dedupe by event id)."""
        try:
            return await self.store.claim(keys, self.dedupe_claim_s, windows)
        except StoreUnavailable as exc:
            metrics.DEDUPE_UNAVAILABLE.labels(provider, "check").inc()
            if windows:
                metrics.DEDUPE_UNAVAILABLE.labels("any", "customer_window").inc()
            log.warning("dedupe check skipped: redis unavailable; publishing", error=str(exc))
            return None

    def _mark(self, provider: str, keys: list[str]) -> None:
        """Claims of confirmed events become marks, without waiting: a mark that fails
        leaves its claim to expire, and a redelivery after that is published again."""

        def failed(exc: BaseException) -> None:
            metrics.DEDUPE_UNAVAILABLE.labels(provider, "mark").inc()
            log.warning("dedupe marks not written: redis unavailable", error=repr(exc))

        self.store.mark_later(keys, self.dedupe_window_s, failed)

    async def _release(self, provider: str, keys: list[str], token: str) -> None:
        """Free the claims of events the broker did not confirm, so the provider's retry
        publishes them (when Redis fails here, the claims expire first)."""
        try:
            await self.store.release(keys, token)
        except StoreUnavailable as exc:
            metrics.DEDUPE_UNAVAILABLE.labels(provider, "release").inc()
            log.warning("dedupe claims not released: redis unavailable", error=str(exc))

    async def _wait_for_local(self, claimed: Claimed) -> Claimed:
        """Keys in flight in another request of this process: wait until its publish is
        settled; the confirmed ones are done (duplicates), the rest stay in flight."""
        local = {key: self._publishing[key] for key in claimed.in_flight if key in self._publishing}
        if not local:
            return claimed
        await asyncio.wait(local.values(), timeout=self.in_flight_wait_s)
        # the futures are only ever given a result (``_published``), never cancelled
        confirmed = {key for key, future in local.items() if future.done() and future.result()}
        return Claimed(claimed.token, claimed.done | confirmed, claimed.in_flight - confirmed)

    def _publishing_now(self, keys: list[str]) -> dict[str, asyncio.Future[bool]]:
        """Futures for ``keys`` this request claimed, for copies arriving meanwhile."""
        loop = asyncio.get_running_loop()
        mine = {key: loop.create_future() for key in keys}
        self._publishing.update(mine)
        return mine

    def _published(self, mine: dict[str, asyncio.Future[bool]], confirmed: set[str]) -> None:
        """Settle this request's futures (once: at the end of its publish)."""
        for key, future in mine.items():
            if self._publishing.get(key) is future:  # not taken over by a later claim
                del self._publishing[key]
            future.set_result(key in confirmed)

    async def _publish(
        self,
        provider: str,
        claimed: Claimed | None,
        claims: list[str],
        outgoing: list[Any],
    ) -> tuple[Claimed | None, list[BaseException | None]]:
        """Publish ``outgoing`` (the events of ``claims``, claimed by this request), with
        copies arriving meanwhile able to wait for it; before it, wait for the events
        another request of this process is publishing. The claim after that wait, and a
        result per outgoing event."""
        mine = self._publishing_now(claims) if claimed is not None else {}
        results: list[BaseException | None] = []
        try:
            if claimed is not None and claimed.in_flight:
                claimed = await self._wait_for_local(claimed)
            started = time.perf_counter()
            results = await self.publisher.publish_all(outgoing) if outgoing else []
            metrics.publish_seconds(provider).observe(time.perf_counter() - started)
        finally:
            if mine:
                confirmed = {k for k, e in zip(claims, results, strict=False) if e is None}
                self._published(mine, confirmed)
        return claimed, results

    async def _settle(
        self,
        provider: str,
        claimed: Claimed,
        claims: list[str],
        results: list[BaseException | None],
    ) -> None:
        """Mark what the broker confirmed, even when another event failed (the provider
        retries the whole request: those must not be published twice); release the rest."""
        marks = [key for key, error in zip(claims, results, strict=True) if error is None]
        if marks:
            self._mark(provider, marks)
        if len(marks) < len(claims):
            unconfirmed = [key for key, error in zip(claims, results, strict=True) if error]
            await self._release(provider, unconfirmed, claimed.token)

    async def _deliver(
        self,
        provider: str,
        events: list[Event],
        parked: list[Parked],
        ignored: list[str],
        *,
        correlation_id: str,
    ) -> WebhookResult:
        unique, unique_parked = self._keyed(provider, events, parked)
        # Statuses alone skip Redis: the state-manager applies each status event once
        # (by event id, forward only), so a redelivered one costs a no-op downstream,
        # less than a Redis round trip here on every status webhook.
        remembered = bool(unique_parked) or not all(
            isinstance(event, StatusUpdate) for event in unique.values()
        )
        claimed: Claimed | None = None
        if remembered:
            # The customer wrote (Meta signed it): the window opens whether or not the
            # broker confirms, and before the message can reach the bot and its reply
            # the sender's window check.
            windows = _customer_windows(unique.values())
            claimed = await self._claim(provider, [*unique, *unique_parked], windows)
        taken = claimed.done | claimed.in_flight if claimed is not None else frozenset()
        fresh = [(key, event) for key, event in unique.items() if key not in taken]
        fresh_parked = [(key, p) for key, p in unique_parked.items() if key not in taken]
        claims = [key for key, _ in fresh] + [key for key, _ in fresh_parked]
        outgoing = [route_event(event) for _, event in fresh]
        outgoing += [route_parked(provider, piece, correlation_id) for _, piece in fresh_parked]
        claimed, results = await self._publish(provider, claimed, claims, outgoing)
        confirmed = [
            (key, event)
            for (key, event), error in zip(fresh, results[: len(fresh)], strict=True)
            if error is None
        ]
        failures = [error for error in results if error is not None]
        if claimed is not None:
            await self._settle(provider, claimed, claims, results)
        for _, event in confirmed:
            metrics.events(provider, event.kind, metric_type(event), "published").inc()
        done = claimed.done if claimed is not None else frozenset()
        for key, event in unique.items():
            if key in done:
                metrics.EVENTS.labels(provider, event.kind, metric_type(event), "duplicate").inc()

        if failures:
            log.warning(
                "webhook events not confirmed by the broker",
                failed=len(failures),
                total=len(outgoing),
                error=repr(failures[0]),
            )
            raise Unavailable(
                f"{len(failures)} of {len(outgoing)} events not confirmed by the broker",
                dependency="broker",
            )
        if claimed is not None and claimed.in_flight:
            held = len(claimed.in_flight)
            log.info("webhook events in flight in another request", count=held)
            raise InFlight(
                f"{held} events of this webhook are being published by another request; retry",
                events=held,
            )
        for _, piece in fresh_parked:
            metrics.PARKED.labels(provider, piece.reason).inc()
        parked_again = len(parked) - len(fresh_parked)
        if parked_again:
            log.info("parked pieces seen before, not parked again", count=parked_again)
        duplicates = len(events) - len(fresh)
        if fresh or not (duplicates or parked):
            outcome = "accepted"
        elif duplicates or not fresh_parked:
            outcome = "duplicate"
        else:
            outcome = "parked"
        return WebhookResult(
            outcome, len(fresh), duplicates + parked_again, len(fresh_parked), len(ignored)
        )


#: Inbound types that do not open or extend the customer-service window: Meta's own
#: notices, and edits or deletions of an earlier message (conservative: not a new one).
NO_WINDOW_TYPES = frozenset({"system", "unsupported", "edit", "revoke"})


def _customer_windows(events: Iterable[Event]) -> list[tuple[str, str, str, int]]:
    """``(tenant_id, account_id, customer id, unix_seconds)`` of the inbound messages that open or
    extend the 24 h customer-service window, once per id of the customer (the phone
    number and the BSUID): the window is the person's, whichever id a send uses."""
    out: list[tuple[str, str, str, int]] = []
    for e in events:
        if not isinstance(e, InboundMessage | InboundMessageV2) or e.type in NO_WINDOW_TYPES:
            continue
        ids = set(e.customer.ids if e.customer else ())
        if e.customer_wa_id:
            ids.add(e.customer_wa_id.lstrip("+"))
        at = int(e.timestamp.timestamp())
        out.extend((e.tenant_id, e.account_id, customer, at) for customer in sorted(ids))
    return out


__all__ = ["WebhookResult", "WebhookService", "route_event", "route_parked"]
