"""The sender's business logic: one ``OutboundCommand`` → at most one provider message.

For each command, in this order:

1. credentials from the tenant service (cached); guards: unknown account, other
   tenant's account, suspended tenant, disabled account, content the provider
   cannot carry, then the prechecks (:mod:`flowchat_sender.templates`: only
   APPROVED templates, parameters that match) → a failed result at once (claimed
   and stored like a send);
2. the account's circuit breaker (open: a retry tier, no attempt used);
3. one Redis call claims the idempotency key, refuses marketing to an opted-out
   customer (``optout_key``) and free-form messages outside the 24 h window, *and*
   reserves the shared rate-limit slot (a duplicate re-publishes the stored result,
   a conflicting payload or an unknown outcome is parked, never sent; short limiter
   waits sleep here, long ones go to a retry tier without claiming or using an
   attempt);
4. the provider call; its error code's fate (:mod:`flowchat_sender.fates`) decides:
   accepted/failed result, retry tier, recipient hold, or one credential refresh;
5. the result is stored under the key, then published with a confirm; only then
   does the caller acknowledge the command.

Knows nothing of aio-pika, FastAPI, Redis or aiohttp (a test imports it in a fresh
interpreter to check): it depends on the ports of :mod:`flowchat_sender.ports` and
plain values; the adapters are wired in :mod:`flowchat_sender.app`. Results leave
through ``publish``, fates through the exceptions of :mod:`flowchat_sender.errors`.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from flowchat_contracts import OutboundCommand, Provider, ProviderError, SendResult
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import StoreUnavailable, UpstreamError
from flowchat_platform.logs import get_logger
from flowchat_sender import fates, metrics
from flowchat_sender.claims import Claim, OptOutCheck, Record, WindowCheck, fingerprint
from flowchat_sender.errors import Park, SendRetry
from flowchat_sender.fates import Fate
from flowchat_sender.lanes import PriorityGate, RecipientOrder
from flowchat_sender.limits import Admission, LimitRequest
from flowchat_sender.ports import (
    AccountSource,
    BreakerPort,
    IdempotencyPort,
    Precheck,
    Publish,
    RateLimitPort,
    TicketPort,
)
from flowchat_sender.providers import ProviderAdapter, ProviderReply

log = get_logger(__name__)

OUTCOME_UNKNOWN = "outcome unknown; not resent"


@dataclass(frozen=True)
class SenderConfig:
    max_attempts: int = 5
    claim_grace_s: float = 30.0
    default_throughput_mps: int = 80
    max_inline_wait_s: float = 5.0
    max_waiting_per_account: int = 512
    throttle_factor: float = 0.5
    throttle_s: float = 60.0
    #: Delay when Redis or the tenant service is unreachable (not an attempt).
    infra_retry_s: float = 30.0
    #: Delay when another delivery of the same key is still in flight.
    in_flight_retry_s: float = 5.0
    #: Free-form messages outside the customer's 24 h window (the gateway's record in
    #: Redis): ``known`` fails them when the record says closed, ``strict`` also when
    #: there is no record, ``off`` leaves it to the provider.
    window_guard: Literal["off", "known", "strict"] = "known"
    window_s: int = 24 * 3600
    #: Bulk (marketing) lane: reserve no rate-limit slot further ahead than this, so a
    #: transactional command on the same number waits at most this long behind a
    #: campaign; a bulk command whose slot is further off waits in-process (one per
    #: number polls the limiter, the others queue behind it).
    bulk_max_wait_s: float = 0.25
    #: Bulk commands waiting in-process for one number; past it they go to a bulk retry
    #: tier (no attempt used), so one slow number never holds the whole bulk prefetch.
    bulk_waiting_per_number: int = 16
    #: The bulk lane starts a command only while fewer transactional commands than this
    #: are being worked on (limiter sleepers excluded).
    priority_hold_at: int = 1
    #: Marketing to a customer in the tenant's opt-out set (``optout_key``) fails.
    optout_guard: bool = True
    #: Commands worked on at once; limiter sleepers give their place up while asleep.
    max_active: int = 256


@dataclass(frozen=True)
class _Ready:
    account: AccountCredentials
    adapter: ProviderAdapter
    ticket: TicketPort


class Sender:
    def __init__(
        self,
        *,
        accounts: AccountSource,
        providers: dict[str, ProviderAdapter],
        idempotency: IdempotencyPort,
        limiter: RateLimitPort,
        breaker: BreakerPort,
        publish: Publish,
        config: SenderConfig | None = None,
        prechecks: Sequence[Precheck] = (),
        suppressed_member: Callable[[str, str], str] | None = None,
    ) -> None:
        #: ``(tenant, recipient) → h:<digest>``: erased customers' opt-out members.
        self._suppressed_member = suppressed_member
        self._accounts = accounts
        self._providers = providers
        self._idem = idempotency
        self._limiter = limiter
        self._breaker = breaker
        self._publish = publish
        self.config = config or SenderConfig()
        self._waiting: Counter[str] = Counter()
        self._order = RecipientOrder()
        self.priority = PriorityGate(self.config.priority_hold_at)
        #: Bulk pacing per number: the lock one poller holds, and how many want it.
        self._pacers: dict[str, tuple[asyncio.Lock, int]] = {}
        # Claim owners: unique per process and delivery without a uuid per message.
        self._owner_prefix = os.urandom(6).hex()
        self._owner_seq = itertools.count()
        self._prechecks = tuple(prechecks)
        self._active = asyncio.Semaphore(self.config.max_active)

    # ------------------------------------------------------------------ entry

    async def send(
        self, command: OutboundCommand, *, attempts_made: int = 0, bulk: bool = False
    ) -> SendResult:
        """Send ``command`` (``attempts_made`` provider attempts already failed).

        Commands to one (account, recipient) reach the provider in the order of the
        calls (call without awaiting anything first: a consumer calls it as the message
        arrives); ``bulk`` commands (the marketing lane) wait while transactional ones
        are being worked on (:mod:`flowchat_sender.lanes`).

        Returns the published result; raises :class:`SendRetry` or :class:`Park`.
        """
        if bulk:
            await self.priority.turn()
        else:
            self.priority.enter()
        key = (command.account_id, command.to.lstrip("+"))
        previous, mine = self._order.take(key)
        try:
            await self._order.wait(previous)
            async with self._active:
                return await self._send(command, attempts_made, bulk=bulk)
        finally:
            self._order.done(key, mine)
            if not bulk:
                self.priority.leave()

    async def _send(
        self, command: OutboundCommand, attempts_made: int, *, bulk: bool
    ) -> SendResult:
        attempt = attempts_made + 1
        owner = f"{self._owner_prefix}-{next(self._owner_seq)}"
        fp = fingerprint(command)
        try:
            account = await self._accounts.account(command.account_id)
        except UpstreamError as exc:
            raise SendRetry(
                f"credentials unavailable: {exc}",
                delay_s=self.config.infra_retry_s,
                counts_as_attempt=False,
            ) from exc
        # hook: the prechecks (templates) run after the account's own guards
        refusal = self._guard(command, account) or await self._precheck(command, account)
        if refusal is not None:
            # Claimed like any send: a redelivery re-publishes this outcome.
            claim = await self._claim(command, owner, fp, None)
            if claim.record is not None:
                return await self._duplicate(
                    command, claim.record, account.provider if account else None
                )
            provider = account.provider if account else "meta"
            result = self._failed(command, provider, refusal, attempt)
            await self._finish(command, owner, result, fp)
            return result
        assert account is not None
        adapter = self._providers[account.provider]

        ticket = self._breaker.acquire(account.account_id)
        if ticket is None:
            raise SendRetry(
                "circuit open for this account",
                delay_s=self._breaker.retry_in(account.account_id),
                counts_as_attempt=False,
            )
        key = account.account_id
        try:
            claim = await self._claim_with_slot(command, owner, fp, account, bulk=bulk)
        except BaseException:
            ticket.cancel()
            raise
        if claim.record is not None:
            ticket.cancel()
            return await self._duplicate(command, claim.record, account.provider)
        refusal = _claim_refusal(account, claim)  # opt-out set, 24 h window
        if refusal is not None:
            ticket.cancel()
            result = self._failed(command, account.provider, refusal, attempt)
            await self._finish(command, owner, result, fp)
            return result
        admission = claim.admission
        assert admission is not None
        if not admission.admitted:
            ticket.cancel()
            _limiter_waits(account.tenant_id, key, admission.limit, "retry_tier").inc()
            # back no later than its slot (a later tier left the number idle meanwhile)
            raise SendRetry(
                f"rate limit ({admission.limit}): next slot in {admission.wait_s:.1f}s",
                delay_s=admission.wait_s,
                counts_as_attempt=False,
                early=True,
            )
        if admission.wait_s > 0:
            try:
                await self._wait(key, admission, bulk=bulk, tenant=account.tenant_id)
            except BaseException:
                ticket.cancel()
                await self._release(command, owner)
                raise
        return await self._deliver(command, owner, attempt, _Ready(account, adapter, ticket), fp)

    # ------------------------------------------------------------------ steps

    def _window(self, command: OutboundCommand, account: AccountCredentials) -> WindowCheck | None:
        """Free-form messages need the customer's 24 h window; templates do not."""
        mode = self.config.window_guard
        if mode == "off" or command.content.type == "template":
            return None
        return WindowCheck(
            command.tenant_id,
            account.account_id,
            command.to,
            strict=mode == "strict",
            window_s=self.config.window_s,
        )

    def _optout(self, command: OutboundCommand) -> OptOutCheck | None:
        """Marketing only: the tenant's opt-out set, checked inside the claim."""
        if not self.config.optout_guard or command.category != "marketing":
            return None
        suppressed = (
            self._suppressed_member(command.tenant_id, command.to)
            if self._suppressed_member is not None
            else None
        )
        return OptOutCheck(command.tenant_id, command.to, suppressed)

    async def _precheck(
        self, command: OutboundCommand, account: AccountCredentials | None
    ) -> ProviderError | None:
        if account is None:
            return None
        for check in self._prechecks:
            refusal = await check.check(command, account)
            if refusal is not None:
                return refusal
        return None

    async def _claim(
        self,
        command: OutboundCommand,
        owner: str,
        fp: str,
        limit: LimitRequest | None,
        window: WindowCheck | None = None,
        optout: OptOutCheck | None = None,
    ) -> Claim:
        try:
            return await self._idem.claim_and_admit(
                command, owner, fp=fp, limit=limit, window=window, optout=optout
            )
        except StoreUnavailable as exc:
            raise SendRetry(
                f"{exc}; not sending without the idempotency check and the rate limit",
                delay_s=self.config.infra_retry_s,
                counts_as_attempt=False,
            ) from exc

    async def _duplicate(
        self, command: OutboundCommand, record: Record, provider: Provider | None
    ) -> SendResult:
        if record.fingerprint != fingerprint(command):
            metrics.DLQ.labels("conflict").inc()
            raise Park(
                "idempotency conflict: this key was already used for a different message",
                provider=provider,
            )
        if record.result is not None:
            log.info("duplicate command; stored result re-published", message_id=command.message_id)
            error = record.result.error
            self._count(
                command,
                record.result.provider,
                "duplicate",
                None,
                refused=error.code if error else None,
            )
            await self._publish(record.result)
            return record.result
        if time.time() - record.claimed_at < self.config.claim_grace_s:
            raise SendRetry(
                "another delivery of this key is in flight",
                delay_s=self.config.in_flight_retry_s,
                counts_as_attempt=False,
            )
        metrics.DLQ.labels("outcome_unknown").inc()
        raise Park(
            f"{OUTCOME_UNKNOWN}: a previous delivery claimed this key and recorded no outcome "
            "(it may have been sent; late statuses name it by biz_opaque_callback_data)",
            provider=provider,
        )

    def _guard(
        self, command: OutboundCommand, account: AccountCredentials | None
    ) -> ProviderError | None:
        if account is None:
            return _own(fates.UNKNOWN_ACCOUNT, f"account {command.account_id} not found")
        if account.tenant_id != command.tenant_id:
            return _own(fates.ACCOUNT_MISMATCH, "the account does not belong to this tenant")
        if account.tenant_status != "active":
            return _own(fates.TENANT_SUSPENDED, "the tenant is suspended; nothing is sent")
        if account.status != "active":
            return _own(fates.ACCOUNT_DISABLED, "the business account is disabled")
        adapter = self._providers.get(account.provider)
        if adapter is None or not adapter.supports(command):
            return _own(
                fates.UNSUPPORTED_CONTENT,
                f"{account.provider} cannot send {command.content.type} messages",
            )
        if not adapter.addresses(command.to):
            return _own(
                fates.RECIPIENT_UNSUPPORTED,
                f"{account.provider} cannot address a BSUID ({command.to}); "
                "send to the customer's phone number",
            )
        if account.provider == "meta" and not (account.phone_number_id and account.access_token):
            return _own(fates.MISSING_CREDENTIALS, "no phone number id or access token")
        if account.provider == "twilio" and not (
            account.twilio_account_sid and account.twilio_auth_token and account.twilio_number
        ):
            return _own(fates.MISSING_CREDENTIALS, "no Twilio SID, token or number")
        return None

    async def _wait(
        self, key: str, admission: Admission, *, bulk: bool = False, tenant: str
    ) -> None:
        """Sleep until the reserved slot (short waits only; long ones went to a retry tier).

        A sleeping transactional command does not hold the bulk lane back. ``key`` is the
        account's id and ``tenant`` its tenant's, both validated by the guards (metric
        labels: never a publisher's unchecked id)."""
        _limiter_waits(tenant, key, admission.limit, "inline").inc()
        metrics.LIMITER_WAIT_SECONDS.observe(admission.wait_s)
        self._waiting[key] += 1
        if not bulk:
            self.priority.leave()
        try:
            await self._asleep(admission.wait_s)
        finally:
            if not bulk:
                self.priority.enter()
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]

    async def _claim_with_slot(
        self,
        command: OutboundCommand,
        owner: str,
        fp: str,
        account: AccountCredentials,
        *,
        bulk: bool,
    ) -> Claim:
        """The claim with the guards and the rate-limit slot (step 3 of the module doc)."""
        number = _number(account)
        if bulk:
            max_wait = self.config.bulk_max_wait_s
        elif self._waiting[account.account_id] >= self.config.max_waiting_per_account:
            max_wait = 0.0  # crowded: later ones wait in a retry tier
        else:
            max_wait = self.config.max_inline_wait_s
        limit = self._limiter.request(
            command.tenant_id,
            number,
            command.to,
            rate_mps=account.throughput_mps or self.config.default_throughput_mps,
            max_wait_s=max_wait,
        )
        window, optout = self._window(command, account), self._optout(command)
        if bulk:
            return await self._paced_claim(number, command, owner, fp, limit, window, optout)
        return await self._claim(command, owner, fp, limit, window, optout)

    async def _paced_claim(
        self,
        number: str,
        command: OutboundCommand,
        owner: str,
        fp: str,
        limit: LimitRequest,
        window: WindowCheck | None,
        optout: OptOutCheck | None,
    ) -> Claim:
        """The bulk lane's claim: when the number's next slot is further off than
        ``bulk_max_wait_s``, wait in-process (reserving nothing, using no attempt) and
        claim again; one command per number polls, the others queue behind it."""
        claim = await self._claim(command, owner, fp, limit, window, optout)
        if not _paced(claim):
            return claim
        lock, wanting = self._pacers.get(number) or (asyncio.Lock(), 0)
        if wanting >= self.config.bulk_waiting_per_number:
            return claim  # refused: to a bulk retry tier, no attempt used
        self._pacers[number] = (lock, wanting + 1)
        try:
            async with lock:
                while _paced(claim):
                    assert claim.admission is not None
                    # the guards matched the account to this tenant: bounded labels
                    _limiter_waits(
                        command.tenant_id, command.account_id, "number", "bulk_pacing"
                    ).inc()
                    ahead = claim.admission.wait_s - self.config.bulk_max_wait_s
                    await self._asleep(max(0.001, ahead))
                    claim = await self._claim(command, owner, fp, limit, window, optout)
                return claim
        finally:
            lock, wanting = self._pacers[number]
            if wanting <= 1:
                del self._pacers[number]
            else:
                self._pacers[number] = (lock, wanting - 1)

    async def _asleep(self, seconds: float) -> None:
        """Sleep without holding a place among the active commands (taken back after)."""
        self._active.release()
        try:
            await asyncio.sleep(seconds)
        finally:
            # a cancelled wait still takes its place back, which the caller's ``async
            # with`` then gives up, so the count stays right: a free place is taken
            # without suspending (nothing to cancel), a contended one shielded
            if self._active.locked():
                await asyncio.shield(self._active.acquire())
            else:
                await self._active.acquire()

    async def _call(
        self, adapter: ProviderAdapter, account: AccountCredentials, command: OutboundCommand
    ) -> ProviderReply:
        started = time.perf_counter()
        try:
            return await adapter.send(account, command)
        finally:
            _send_seconds(adapter.name).observe(time.perf_counter() - started)

    async def _deliver(
        self, command: OutboundCommand, owner: str, attempt: int, ready: _Ready, fp: str
    ) -> SendResult:
        account, adapter, ticket = ready.account, ready.adapter, ready.ticket
        reply = await self._call(adapter, account, command)
        rule = _rule(reply)
        if rule is not None and rule.fate is Fate.REFRESH_CREDENTIALS:
            reply, account = await self._refresh_and_resend(command, account, adapter, reply)
            rule = _rule(reply)
            if rule is not None and rule.fate is Fate.REFRESH_CREDENTIALS:
                rule = fates.Rule(Fate.FAIL, f"{rule.hint}; still refused with fresh credentials")

        if reply.ok:
            ticket.success()
            result = self._result(command, reply.provider, attempt, wamid=reply.provider_message_id)
            await self._finish(command, owner, result, fp)
            return result
        error = reply.error or _own(fates.HTTP_ERROR, "no answer")
        assert rule is not None
        if reply.outcome_unknown:
            ticket.failure()
            self._count(command, reply.provider, "parked", error.code)
            metrics.DLQ.labels("outcome_unknown").inc()
            raise Park(
                f"{OUTCOME_UNKNOWN}: {error.title}",
                error=error,
                attempts=attempt,
                provider=reply.provider,
            )
        if rule.fate is Fate.FAIL:
            ticket.success()  # the provider is healthy: it refused this one message
            result = self._failed(command, reply.provider, _with_hint(error, rule.hint), attempt)
            await self._finish(command, owner, result, fp)
            return result

        # A retryable refusal: the provider did not take the message.
        await self._release(command, owner)
        number = _number(account)
        if rule.fate is Fate.RETRY_RECIPIENT:
            ticket.success()
            delay = fates.pair_hold_s(attempt - 1)
            await self._quietly(
                self._limiter.hold(command.tenant_id, number, command.to, duration_s=delay)
            )
        else:
            ticket.failure()
            delay = fates.backoff_s(attempt)
            if error.code == fates.META_THROUGHPUT and reply.provider == "meta":
                await self._quietly(
                    self._limiter.throttle(
                        command.tenant_id,
                        number,
                        factor=self.config.throttle_factor,
                        duration_s=self.config.throttle_s,
                    )
                )
        if attempt >= self.config.max_attempts:
            error = _with_hint(error, f"{rule.hint}; gave up after {attempt} attempts")
            # No failed result (a terminal status): the command is parked, and a replay
            # from the DLQ may still send it; the consumer tells the state-manager
            # (``command_parked``: the message's status becomes ``parked``).
            metrics.DLQ.labels("attempts_exhausted").inc()
            raise Park(
                f"retries exhausted after {attempt} attempts: {error.message or rule.hint}",
                error=error,
                attempts=attempt,
                provider=reply.provider,
            )
        self._count(command, reply.provider, "retry", error.code)
        raise SendRetry(
            f"{rule.hint} (code {error.code})",
            delay_s=delay,
            counts_as_attempt=True,
            error=error,
        )

    async def _refresh_and_resend(
        self,
        command: OutboundCommand,
        account: AccountCredentials,
        adapter: ProviderAdapter,
        reply: ProviderReply,
    ) -> tuple[ProviderReply, AccountCredentials]:
        """0/190 (or Twilio 20003): drop the cached credentials, fetch them once, retry once."""
        self._accounts.invalidate(account)
        try:
            fresh = await self._accounts.account(command.account_id)
        except UpstreamError:
            return reply, account
        if fresh is None or self._guard(command, fresh) is not None:
            return reply, account
        log.info("credentials refreshed after a refusal", account_id=account.account_id)
        return await self._call(adapter, fresh, command), fresh

    # ------------------------------------------------------------------ helpers

    async def _finish(
        self, command: OutboundCommand, owner: str, result: SendResult, fp: str
    ) -> None:
        """Store the outcome under the key, then publish it (confirmed)."""
        for delay in (0.0, 0.05, 0.2):
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._idem.complete(command, owner, result, fp=fp)
                break
            except StoreUnavailable as exc:
                log.warning("idempotency result not stored", error=str(exc))
        else:
            log.error(
                "send outcome not stored; a duplicate will be parked, not resent",
                message_id=command.message_id,
            )
        self._count(
            command, result.provider, result.status, result.error.code if result.error else None
        )
        await self._publish(result)

    async def _release(self, command: OutboundCommand, owner: str) -> None:
        await self._quietly(self._idem.release(command, owner))

    @staticmethod
    async def _quietly(op: Awaitable[None]) -> None:
        try:
            await op
        except StoreUnavailable as exc:
            log.warning("redis update skipped", error=str(exc))

    def _result(
        self,
        command: OutboundCommand,
        provider: Literal["meta", "twilio"],
        attempt: int,
        *,
        wamid: str | None = None,
        error: ProviderError | None = None,
    ) -> SendResult:
        return SendResult(
            tenant_id=command.tenant_id,
            account_id=command.account_id,
            correlation_id=command.correlation_id,
            message_id=command.message_id,
            idempotency_key=command.idempotency_key,
            to=command.to,
            message_type=command.content.type,
            category=command.category,
            campaign_id=command.campaign_id,
            status="accepted" if wamid else "failed",
            provider=provider,
            provider_message_id=wamid,
            error=error,
            attempts=attempt,
        )

    def _failed(
        self,
        command: OutboundCommand,
        provider: Literal["meta", "twilio"],
        error: ProviderError,
        attempt: int,
    ) -> SendResult:
        return self._result(command, provider, attempt, error=error)

    @staticmethod
    def _count(
        command: OutboundCommand,
        provider: str,
        outcome: str,
        code: int | None,
        *,
        refused: int | None = None,
    ) -> None:
        """Count a finished command. A command refused because its account is unknown or
        another tenant's (``code``, or ``refused`` for a duplicate of one) is counted
        under ``unknown``: its ids are the publisher's, unvalidated, never a label."""
        unverified = code in _UNVERIFIED or refused in _UNVERIFIED
        tenant = UNKNOWN if unverified else command.tenant_id
        _sends(
            provider,
            tenant,
            UNKNOWN if unverified else command.account_id,
            command.content.type,
            outcome,
            "" if code is None else str(code),
        ).inc()
        if command.campaign_id:
            _campaign_sends(tenant, command.category, outcome).inc()


#: The metric label of a command whose account ids could not be validated.
UNKNOWN = "unknown"
_UNVERIFIED = frozenset({fates.UNKNOWN_ACCOUNT, fates.ACCOUNT_MISMATCH})

# Metric children, looked up once per label set (``.labels()`` takes a lock and builds
# a tuple on every call; these run several times per message).
_sends = functools.lru_cache(maxsize=4096)(metrics.SENDS.labels)
_campaign_sends = functools.lru_cache(maxsize=1024)(metrics.CAMPAIGN_SENDS.labels)
_send_seconds = functools.lru_cache(maxsize=8)(metrics.SEND_SECONDS.labels)
_limiter_waits = functools.lru_cache(maxsize=4096)(metrics.LIMITER_WAITS.labels)


def _paced(claim: Claim) -> bool:
    """Refused only because the number's next slot is too far ahead for the bulk lane."""
    admission = claim.admission
    return (
        claim.record is None
        and admission is not None
        and not admission.admitted
        and admission.limit == "number"
    )


def _number(account: AccountCredentials) -> str:
    return account.phone_number_id or account.twilio_number or account.account_id


def _claim_refusal(account: AccountCredentials, claim: Claim) -> ProviderError | None:
    """The failure a claim stored instead of admitting the send (None: go on)."""
    if claim.opted_out:
        return _own(fates.OPTED_OUT, "the customer opted out of marketing messages")
    if claim.window_closed is not None:
        return _window_closed(account, claim.window_closed)
    return None


def _window_closed(account: AccountCredentials, last_inbound: float) -> ProviderError:
    """The provider's own "outside the 24 h window" error, raised by FlowChat first."""
    code = fates.META_WINDOW if account.provider == "meta" else fates.TWILIO_WINDOW
    rule = fates.rule_for(account.provider, code)
    when = (
        "never wrote (no inbound message recorded)"
        if last_inbound < 0
        else f"last wrote {(time.time() - last_inbound) / 3600:.0f} h ago"
    )
    return ProviderError(
        code=code,
        title=rule.hint,
        message=f"not sent by FlowChat: the customer {when}; send an approved template",
    )


def _own(code: int, message: str) -> ProviderError:
    rule = fates.rule_for("flowchat", code)
    return ProviderError(code=code, title=rule.hint, message=message)


def _rule(reply: ProviderReply) -> fates.Rule | None:
    if reply.ok or reply.error is None:
        return None
    provider: Literal["meta", "twilio", "flowchat"] = reply.provider
    if reply.error.code < 0:
        provider = "flowchat"
    return fates.rule_for(provider, reply.error.code, http_status=reply.http_status)


def _with_hint(error: ProviderError, hint: str) -> ProviderError:
    if error.title == hint:
        return error
    title = f"{error.title}: {hint}" if error.title else hint
    return error.model_copy(update={"title": title[:500]})
