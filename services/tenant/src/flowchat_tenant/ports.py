"""The seams of the tenant service's core (pure: Protocols and the values they carry).

:class:`~flowchat_tenant.service.TenantService` receives one object of each:

- :class:`TenantStore` — where tenants, accounts and API keys live
  (:class:`flowchat_tenant.repository.Repository`, asyncpg, in production);
- :class:`NumberProvider` — the WhatsApp Cloud API read of a number and its business
  profile (:class:`flowchat_tenant.provider.GraphProvider`, aiohttp, pointing at the
  sandbox locally; :class:`NoProvider` for commands that never reach it; any object
  with the same methods in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flowchat_tenant.errors import ProviderError
from flowchat_tenant.models import Tenant
from flowchat_tenant.records import Fields, NumberRef, StoredAccount, StoredApiKey

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

    async def accounts(self, tenant_id: str) -> list[StoredAccount]: ...

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

    async def accounts_by_waba(self, waba_id: str) -> list[StoredAccount]: ...

    async def account_by_twilio_number(self, number: str) -> StoredAccount | None: ...

    async def verify_token_known(self, token_hash: str) -> bool: ...

    async def insert_api_key(self, values: Fields) -> StoredApiKey: ...

    async def api_keys(self, tenant_id: str) -> list[StoredApiKey]: ...

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
