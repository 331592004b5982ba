"""What the tenant service stores, as plain values (no I/O): the repository returns these.

:class:`StoredAccount` and :class:`StoredApiKey` carry what the public models never
show (ciphertexts, digests, the pinned flag); their :meth:`public` gives the answer a
caller may see. Tenants need no such record: the repository returns
:class:`~flowchat_tenant.models.Tenant` itself.

Writes name their fields with the same names (``Fields``): a new record's values, or
the changes to apply (:data:`TENANT_FIELDS`, :data:`ACCOUNT_FIELDS` are the updatable ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowchat_tenant.models import (
    Account,
    AccountStatus,
    ApiKey,
    Notifications,
    NumberHealth,
    Preferences,
    Provider,
    TenantStatus,
    User,
)

#: Field name → value, for an insert or an update (names as in the records below).
Fields = dict[str, Any]

TENANT_FIELDS = frozenset(
    {"name", "business_name", "status", "timezone", "locale", "currency", "tax_rate"}
)
ACCOUNT_FIELDS = frozenset(
    {
        "status",
        "waba_id",
        "display_phone_number",
        "app_id",
        "app_secret_enc",
        "access_token_enc",
        "verify_token_enc",
        "verify_token_hash",
        "twilio_account_sid",
        "twilio_auth_token_enc",
        "twilio_number",
        "tier",
        "throughput_mps",
        "throughput_pinned",
        "verified_name",
        "quality_rating",
        "throughput_level",
        "messaging_limit_tier",
        "health_checked_at",
        "health_error",
    }
)
#: The encrypted secrets of an account, by public name.
SECRET_FIELDS = {
    "app_secret": "app_secret_enc",
    "access_token": "access_token_enc",
    "verify_token": "verify_token_enc",
    "twilio_auth_token": "twilio_auth_token_enc",
}


@dataclass(frozen=True, slots=True)
class NumberRef:
    """The least a health reading needs: whose number, which id, and its token."""

    account_id: str
    tenant_id: str
    phone_number_id: str | None
    access_token_enc: bytes | None


@dataclass(frozen=True, slots=True)
class StoredAccount:
    """One business account (number) as stored: secrets encrypted."""

    id: str
    tenant_id: str
    provider: Provider
    status: AccountStatus
    phone_number_id: str | None
    waba_id: str | None
    display_phone_number: str | None
    app_id: str | None
    app_secret_enc: bytes | None
    access_token_enc: bytes | None
    verify_token_enc: bytes | None
    verify_token_hash: str | None
    twilio_account_sid: str | None
    twilio_auth_token_enc: bytes | None
    twilio_number: str | None
    tier: str
    throughput_mps: int
    throughput_pinned: bool
    verified_name: str | None
    quality_rating: str | None
    throughput_level: str | None
    messaging_limit_tier: str | None
    health_checked_at: datetime | None
    health_error: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    #: The owning tenant's status (only the internal lookups read it).
    tenant_status: TenantStatus | None = None

    @property
    def ref(self) -> NumberRef:
        return NumberRef(self.id, self.tenant_id, self.phone_number_id, self.access_token_enc)

    def secret(self, name: str) -> bytes | None:
        """The ciphertext of one secret (``access_token``, …), None when unset."""
        value: bytes | None = getattr(self, SECRET_FIELDS[name])
        return value

    def public(self) -> Account:
        """The public face of an account: which secrets are set, never their values."""
        return Account(
            account_id=self.id,
            tenant_id=self.tenant_id,
            provider=self.provider,
            status=self.status,
            phone_number_id=self.phone_number_id,
            waba_id=self.waba_id,
            display_phone_number=self.display_phone_number,
            app_id=self.app_id,
            twilio_account_sid=self.twilio_account_sid,
            twilio_number=self.twilio_number,
            tier=self.tier,
            throughput_mps=self.throughput_mps,
            version=self.version,
            secrets_set=[name for name in SECRET_FIELDS if self.secret(name) is not None],
            health=NumberHealth(
                verified_name=self.verified_name,
                quality_rating=self.quality_rating,
                throughput_level=self.throughput_level,
                messaging_limit_tier=self.messaging_limit_tier,
                checked_at=self.health_checked_at,
                error=self.health_error,
            ),
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class StoredApiKey:
    """One API key as stored: its SHA-256 digest, never the key."""

    id: str
    tenant_id: str
    name: str
    scopes: tuple[str, ...]
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    #: The owning tenant's status (only the key check reads it).
    tenant_status: TenantStatus | None = None

    def public(self) -> ApiKey:
        return ApiKey(
            key_id=self.id,
            tenant_id=self.tenant_id,
            name=self.name,
            scopes=list(self.scopes),
            created_at=self.created_at,
            last_used_at=self.last_used_at,
            revoked_at=self.revoked_at,
        )


@dataclass(frozen=True, slots=True)
class StoredUser:
    """One user as stored: the argon2id hash of the password (never shown)."""

    id: str
    tenant_id: str | None
    email: str
    role: str
    status: str
    password_hash: str | None
    name: str | None
    display_name: str | None
    avatar_url: str | None
    language: str
    timezone: str
    notifications: dict[str, Any]
    token_version: int
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: the owning tenant's status (None for operator users)
    tenant_status: str | None = None

    @property
    def usable(self) -> bool:
        """May this user act now (active, and its tenant not suspended)?"""
        return self.status == "active" and self.tenant_status in (None, "active")

    def public(self) -> User:
        return User(
            user_id=self.id,
            tenant_id=self.tenant_id,
            email=self.email,
            role=self.role,
            status=self.status,
            name=self.name,
            display_name=self.display_name,
            avatar_url=self.avatar_url,
            preferences=Preferences(
                language=self.language,
                timezone=self.timezone,
                notifications=Notifications(**self.notifications),
            ),
            last_login_at=self.last_login_at,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


USER_FIELDS = frozenset(
    {
        "role",
        "status",
        "password_hash",
        "name",
        "display_name",
        "avatar_url",
        "language",
        "timezone",
        "notifications",
    }
)


@dataclass(frozen=True, slots=True)
class UserSession:
    """A console session and its user as they are now (read together, in one query)."""

    id: str
    user: StoredUser
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    #: still valid by the database's clock (not revoked, not expired)
    live: bool


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    tenant_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    user_agent: str | None
