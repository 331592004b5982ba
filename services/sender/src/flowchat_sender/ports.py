"""The ports of the sender's core: what :class:`~flowchat_sender.service.Sender` needs
from the world, as Protocols (typing only: no runtime cost, no ``isinstance``).

::

    Sender ──▶ AccountSource    credentials          TenantClient (flowchat_platform)
           ──▶ Precheck         content checks       TemplateGuard (templates.py)
           ──▶ IdempotencyPort  claim/store outcome  IdempotencyStore (idempotency.py, Redis)
           ──▶ RateLimitPort    slots, holds         RateLimiter (ratelimit.py, Redis)
           ──▶ BreakerPort      per-account circuit  CircuitBreaker (breaker.py)
           ──▶ ProviderAdapter  the provider call    CloudApiAdapter, TwilioAdapter
                                (providers.py)       (cloud_api.py, twilio.py; aiohttp)
           ──▶ Publish          send results out     ResultBatcher.publish (consumer.py)

    MediaResolver ──▶ AccountSource
                  ──▶ MediaSource  a provider's media  GraphMedia (media.py; aiohttp)

The adapters are wired in :mod:`flowchat_sender.app`; tests pass their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from flowchat_contracts import OutboundCommand, ProviderError, SendResult
from flowchat_platform.accounts import AccountCredentials
from flowchat_sender.claims import Claim, OptOutCheck, WindowCheck
from flowchat_sender.limits import LimitRequest

#: Publish one send result (confirmed) before the command is acknowledged.
Publish = Callable[[SendResult], Awaitable[None]]


class AccountSource(Protocol):
    async def account(self, account_id: str) -> AccountCredentials | None: ...

    def invalidate(self, account: AccountCredentials | None = None) -> None: ...


class Precheck(Protocol):
    """A check of the command's content before any Redis or provider call (templates):
    a refusal (a failed result), None (go on), or
    :class:`~flowchat_sender.errors.SendRetry` when it cannot decide yet (a template
    miss waiting for a catalog sync)."""

    async def check(
        self, command: OutboundCommand, account: AccountCredentials
    ) -> ProviderError | None: ...


class IdempotencyPort(Protocol):
    """Never send twice: claim the command's key (with the guards and the slot), store
    the outcome, or give the claim back. Raises
    :class:`~flowchat_platform.errors.StoreUnavailable` when the store does not answer."""

    async def claim_and_admit(
        self,
        command: OutboundCommand,
        owner: str,
        *,
        fp: str | None = None,
        limit: LimitRequest | None = None,
        window: WindowCheck | None = None,
        optout: OptOutCheck | None = None,
    ) -> Claim: ...

    async def complete(
        self, command: OutboundCommand, owner: str, result: SendResult, *, fp: str | None = None
    ) -> None: ...

    async def release(self, command: OutboundCommand, owner: str) -> None: ...


class RateLimitPort(Protocol):
    """The shared rate limits: the slot request checked in the claim, and the provider's
    throttles (130429) and recipient holds (131056)."""

    def request(
        self, tenant_id: str, number: str, recipient: str, *, rate_mps: float, max_wait_s: float
    ) -> LimitRequest: ...

    async def throttle(
        self, tenant_id: str, number: str, *, factor: float, duration_s: float
    ) -> None: ...

    async def hold(
        self, tenant_id: str, number: str, recipient: str, *, duration_s: float
    ) -> None: ...


class TicketPort(Protocol):
    """One call through a circuit: report its outcome once, or cancel it."""

    def success(self) -> None: ...

    def failure(self) -> None: ...

    def cancel(self) -> None: ...


class BreakerPort(Protocol):
    """Per-account circuit breakers: ``acquire`` is None while the circuit is open."""

    def acquire(self, key: str) -> TicketPort | None: ...

    def retry_in(self, key: str) -> float: ...


@dataclass(frozen=True)
class MediaInfo:
    """Meta's ``GET /{media-id}``: where the file is (5 minutes, bearer token) and what."""

    url: str
    mime_type: str | None
    sha256: str | None
    file_size: int | None


class MediaSource(Protocol):
    """The provider's media, with the account's credentials. Raise
    :class:`~flowchat_sender.errors.MediaNotFound` for an unknown or expired file,
    :class:`~flowchat_sender.errors.MediaRefused` (``size``) past ``limit`` bytes,
    :class:`~flowchat_sender.errors.MediaDownloadFailed` for any other failure."""

    async def meta_info(self, account: AccountCredentials, media_id: str) -> MediaInfo: ...

    async def meta_download(
        self, account: AccountCredentials, url: str, *, limit: int
    ) -> bytes: ...

    async def twilio_download(
        self, account: AccountCredentials, url: str, *, limit: int
    ) -> tuple[bytes, str | None]: ...
