"""The seams of the tenant service's core (pure: Protocols and the values they carry).

:class:`~flowchat_tenant.service.TenantService` receives one object of each:

- :class:`TenantStore` — where tenants, accounts and API keys live
  (:class:`flowchat_tenant.repository.Repository`, asyncpg, in production);
- :class:`NumberProvider` — the WhatsApp Cloud API read of a number and its business
  profile (:class:`flowchat_tenant.provider.GraphProvider`, aiohttp, pointing at the
  sandbox locally; :class:`NoProvider` for commands that never reach it; any object
  with the same methods in tests);
- :class:`AuditLog` — where admin actions are recorded (the Repository).

:class:`~flowchat_tenant.identity_service.IdentityService` receives an
:class:`IdentityStore` (the Repository) and a :class:`Mailer`
(:mod:`flowchat_tenant.mail`: an outbox in development; the seam for real e-mail).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from flowchat_tenant.errors import ProviderError
from flowchat_tenant.models import Tenant
from flowchat_tenant.permissions import Principal
from flowchat_tenant.records import (
    AuditRecord,
    Fields,
    NumberRef,
    StoredAccount,
    StoredApiKey,
    StoredUser,
    UserSession,
)

#: Meta's throughput levels and the send rate they allow (…/cloud-api/overview/throughput).
THROUGHPUT_MPS = {"STANDARD": 80, "HIGH": 1000}


@dataclass(frozen=True)
class PhoneNumberInfo:
    """What the provider reports about a number."""

    phone_number_id: str
    display_phone_number: str | None
    verified_name: str | None
    quality_rating: str | None
    throughput_level: str | None
    messaging_limit_tier: str | None

    @property
    def throughput_mps(self) -> int | None:
        return THROUGHPUT_MPS.get(self.throughput_level or "")

    @classmethod
    def from_graph(cls, phone_number_id: str, body: dict[str, Any]) -> PhoneNumberInfo:
        throughput = body.get("throughput")
        level = throughput.get("level") if isinstance(throughput, dict) else None

        def text(name: str) -> str | None:
            value = body.get(name)
            return str(value) if value is not None else None

        return cls(
            phone_number_id=str(body.get("id") or phone_number_id),
            display_phone_number=text("display_phone_number"),
            verified_name=text("verified_name"),
            quality_rating=text("quality_rating"),
            throughput_level=str(level) if level is not None else None,
            messaging_limit_tier=text("messaging_limit_tier"),
        )


class NumberProvider(Protocol):
    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo: ...

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]: ...

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]: ...


class NoProvider:
    """For commands that never reach the provider (``rotate-keys``): every call fails."""

    async def phone_number(self, phone_number_id: str, access_token: str) -> PhoneNumberInfo:
        raise ProviderError("no provider in this process")

    async def business_profile(self, phone_number_id: str, access_token: str) -> dict[str, Any]:
        raise ProviderError("no provider in this process")

    async def update_business_profile(
        self, phone_number_id: str, access_token: str, profile: dict[str, Any]
    ) -> dict[str, Any]:
        raise ProviderError("no provider in this process")


class TenantStore(Protocol):
    """Tenants, accounts and API keys. Public-API reads are scoped by ``tenant_id``;
    the internal lookups search across tenants. Unique values already taken raise
    :class:`~flowchat_tenant.errors.Conflict`."""

    async def ping(self) -> bool: ...

    async def insert_tenant(self, values: Fields) -> Tenant: ...

    async def tenant(self, tenant_id: str) -> Tenant | None: ...

    async def tenants(self, *, limit: int, after: str | None) -> list[Tenant]: ...

    async def update_tenant(self, tenant_id: str, changes: Fields) -> Tenant | None: ...

    async def insert_account(self, values: Fields) -> StoredAccount: ...

    async def account(self, tenant_id: str, account_id: str) -> StoredAccount | None: ...

    async def accounts(
        self,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[StoredAccount]: ...

    async def update_account(
        self, tenant_id: str, account_id: str, changes: Fields
    ) -> StoredAccount | None: ...

    async def delete_account(self, tenant_id: str, account_id: str) -> bool: ...

    async def record_health(
        self, account_id: str, health: Fields, *, throughput_mps: int | None
    ) -> StoredAccount | None: ...

    async def record_health_error(self, account_id: str, error: str) -> StoredAccount | None: ...

    async def meta_accounts_for_health(
        self, *, after: str | None, limit: int
    ) -> list[NumberRef]: ...

    async def account_by_id(self, account_id: str) -> StoredAccount | None: ...

    async def account_by_phone_number_id(self, phone_number_id: str) -> StoredAccount | None: ...

    async def accounts_by_ids(self, account_ids: list[str]) -> list[StoredAccount]: ...

    async def accounts_by_waba(self, waba_id: str) -> list[StoredAccount]: ...

    async def account_by_twilio_number(self, number: str) -> StoredAccount | None: ...

    async def verify_token_known(self, token_hash: str) -> bool: ...

    async def insert_api_key(self, values: Fields) -> StoredApiKey: ...

    async def api_keys(
        self,
        tenant_id: str,
        *,
        limit: int | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[StoredApiKey]: ...

    async def api_key(self, tenant_id: str, key_id: str) -> StoredApiKey | None: ...

    async def revoke_api_key(self, tenant_id: str, key_id: str) -> StoredApiKey | None: ...

    async def api_key_for_verify(self, key_id: str) -> StoredApiKey | None: ...

    async def touch_api_key(self, key_id: str, *, min_interval_s: float) -> None: ...

    async def rotate_batch(
        self,
        *,
        after: str | None,
        limit: int,
        rotate: Callable[[bytes | None], bytes | None],
    ) -> tuple[str | None, int, int]: ...


@dataclass(frozen=True)
class AuditEntry:
    """One admin action: who (actor), what (action, target, details: names, never secrets),
    from where (ip, user agent). The store stamps when."""

    tenant_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    details: Mapping[str, object]
    ip: str | None
    user_agent: str | None

    @classmethod
    def of(
        cls,
        principal: Principal,
        action: str,
        tenant_id: str | None,
        target_type: str,
        target_id: str | None,
        details: Mapping[str, object],
    ) -> AuditEntry:
        return cls(
            tenant_id=tenant_id,
            actor_type=principal.actor_type,
            actor_id=principal.actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=dict(details),
            ip=principal.ip,
            user_agent=principal.user_agent,
        )


class AuditLog(Protocol):
    async def record_audit(self, entry: AuditEntry) -> None: ...

    async def audit_entries(
        self, *, tenant_id: str | None, limit: int, before: int | None, action: str | None
    ) -> list[AuditRecord]: ...


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str
    #: what the message carries, for a test or a dev tool (``kind``, ``token``, ``url``)
    data: Mapping[str, str]


class Mailer(Protocol):
    """Sends e-mail. Development and tests use an outbox (:mod:`flowchat_tenant.mail`)."""

    async def send(self, mail: Mail) -> None: ...


class IdentityStore(AuditLog, Protocol):
    """Users, their one-time tokens, sessions and the login throttle. E-mail addresses
    are unique among users not deleted (:class:`~flowchat_tenant.errors.Conflict`)."""

    async def insert_user(self, values: Fields) -> StoredUser: ...

    async def user(self, tenant_id: str | None, user_id: str) -> StoredUser | None: ...

    async def user_by_email(self, email: str) -> StoredUser | None: ...

    async def users(
        self, tenant_id: str | None, *, limit: int, after: str | None
    ) -> list[StoredUser]: ...

    async def update_user(
        self, user_id: str, changes: Fields, *, end_sessions: bool = False
    ) -> StoredUser | None:
        """Apply ``changes``; ``end_sessions`` also bumps the token version and revokes
        every session of the user, in the same transaction."""
        ...

    async def active_owners(self, tenant_id: str) -> int: ...

    async def insert_user_token(
        self, user_id: str, token_hash: str, kind: str, ttl_s: float
    ) -> None: ...

    async def use_user_token(self, token_hash: str, kind: str) -> StoredUser | None:
        """Mark a live one-time token used and return its user (None if unknown, used, expired)."""
        ...

    async def insert_session(self, values: Fields, ttl_s: float) -> UserSession: ...

    async def session_by_hash(self, token_hash: str) -> UserSession | None: ...

    async def session(self, session_id: str) -> UserSession | None: ...

    async def extend_session(self, session_id: str, ttl_s: float) -> UserSession | None: ...

    async def revoke_session(self, session_id: str) -> None: ...

    async def record_login(self, user_id: str) -> None: ...

    async def throttle_locks(self, subjects: list[str]) -> float:
        """Seconds until every one of ``subjects`` is unlocked (0: none is locked)."""
        ...

    async def record_login_failure(
        self, subject: str, *, threshold: int, base_s: float, max_s: float, window_s: float
    ) -> float:
        """Count a failure; returns the lock it causes, in seconds (0: not locked)."""
        ...

    async def clear_login_failures(self, subject: str) -> None: ...

    async def purge_expired(self, *, window_s: float, keep_s: float) -> int:
        """Forget throttle rows quiet for ``window_s`` and unlocked, and sessions and
        one-time tokens ended more than ``keep_s`` ago; returns the rows removed."""
        ...
