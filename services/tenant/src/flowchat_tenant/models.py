"""Request and response bodies of the public API (pydantic; no secrets in any response).

Internal answers use :class:`flowchat_platform.accounts.AccountCredentials`
and :class:`~flowchat_platform.accounts.ApiKeyInfo`, the shapes the clients parse.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from flowchat_platform.accounts import ACCOUNT_BATCH_MAX, ACCOUNT_ID_MAX
from flowchat_platform.pagination import Page
from flowchat_tenant import validation

TenantStatus = Literal["active", "suspended"]
AccountStatus = Literal["active", "disabled"]
Provider = Literal["meta", "twilio"]
Scope = Literal["send", "read", "admin"]
SECRET_FIELDS = ("app_secret", "access_token", "verify_token", "twilio_auth_token")


def _checked(code: str, check: Callable[[str], str]) -> AfterValidator:
    def run(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise PydanticCustomError(code, str(exc)) from None

    return AfterValidator(run)


Timezone = Annotated[str, Field(max_length=64), _checked("invalid_timezone", validation.timezone)]
Currency = Annotated[str, Field(max_length=8), _checked("invalid_currency", validation.currency)]
Locale = Annotated[str, Field(max_length=16), _checked("invalid_locale", validation.locale)]
PhoneNumber = Annotated[
    str, Field(max_length=32), _checked("invalid_phone_number", validation.e164)
]
TwilioSid = Annotated[str, _checked("invalid_account_sid", validation.twilio_account_sid)]
GraphId = Annotated[str, Field(pattern=r"^[0-9]{1,32}$", examples=["106540352242922"])]
TaxRate = Annotated[Decimal, Field(ge=0, le=1, max_digits=6, decimal_places=5)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Tier = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,32}$")]
AppSecret = Annotated[str, Field(min_length=8, max_length=512)]
#: Tokens travel in HTTP headers (Graph bearer, Twilio basic auth): printable ASCII only.
_HEADER_SAFE = r"^[!-~]+$"
AccessToken = Annotated[str, Field(min_length=8, max_length=4096, pattern=_HEADER_SAFE)]
VerifyToken = Annotated[str, Field(min_length=8, max_length=256)]
AuthToken = Annotated[str, Field(min_length=16, max_length=256, pattern=_HEADER_SAFE)]
Throughput = Annotated[int, Field(ge=1, le=10_000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- tenants -----------------------------------------------------------------


class TenantCreate(_In):
    name: Name
    business_name: Name | None = None
    timezone: Timezone = "UTC"
    locale: Locale = "en"
    currency: Currency = "USD"
    tax_rate: TaxRate = Decimal(0)


class TenantUpdate(_In):
    name: Name | None = None
    business_name: Name | None = None
    timezone: Timezone | None = None
    locale: Locale | None = None
    currency: Currency | None = None
    tax_rate: TaxRate | None = None
    #: Operator only: a suspended tenant's sends are refused, its webhooks still kept.
    status: TenantStatus | None = None


class Tenant(BaseModel):
    tenant_id: str
    name: str
    business_name: str
    status: TenantStatus
    timezone: str
    locale: str
    currency: str
    tax_rate: Decimal
    created_at: datetime
    updated_at: datetime


# --- accounts ----------------------------------------------------------------


class MetaAccountCreate(_In):
    provider: Literal["meta"]
    phone_number_id: GraphId
    waba_id: GraphId
    display_phone_number: PhoneNumber
    app_id: GraphId | None = None
    app_secret: AppSecret
    verify_token: VerifyToken
    access_token: AccessToken
    tier: Tier = "standard"
    #: Pins the send rate; otherwise it follows the provider's throughput level.
    throughput_mps: Throughput | None = None


class TwilioAccountCreate(_In):
    provider: Literal["twilio"]
    twilio_account_sid: TwilioSid
    twilio_auth_token: AuthToken
    twilio_number: PhoneNumber
    tier: Tier = "standard"
    throughput_mps: Throughput | None = None


AccountCreate = Annotated[MetaAccountCreate | TwilioAccountCreate, Field(discriminator="provider")]


class AccountUpdate(_In):
    """Every field optional; secrets are replaced, never read back."""

    waba_id: GraphId | None = None
    display_phone_number: PhoneNumber | None = None
    app_id: GraphId | None = None
    app_secret: AppSecret | None = None
    verify_token: VerifyToken | None = None
    access_token: AccessToken | None = None
    twilio_account_sid: TwilioSid | None = None
    twilio_auth_token: AuthToken | None = None
    twilio_number: PhoneNumber | None = None
    tier: Tier | None = None
    throughput_mps: Throughput | None = None
    status: AccountStatus | None = None


class NumberHealth(BaseModel):
    verified_name: str | None = None
    quality_rating: str | None = None
    throughput_level: str | None = None
    messaging_limit_tier: str | None = None
    checked_at: datetime | None = None
    error: str | None = None


class Account(BaseModel):
    """A business account as the public API shows it: never a secret, only which are set."""

    account_id: str
    tenant_id: str
    provider: Provider
    status: AccountStatus
    phone_number_id: str | None
    waba_id: str | None
    display_phone_number: str | None
    app_id: str | None
    twilio_account_sid: str | None
    twilio_number: str | None
    tier: str
    throughput_mps: int
    version: int
    secrets_set: list[str]
    health: NumberHealth
    created_at: datetime
    updated_at: datetime


class BusinessProfileUpdate(_In):
    about: str | None = Field(default=None, max_length=139)
    address: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=512)
    email: str | None = Field(default=None, max_length=128)
    vertical: str | None = Field(default=None, max_length=64)
    websites: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=2)
    profile_picture_handle: str | None = None


# --- API keys ----------------------------------------------------------------


class ApiKeyCreate(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    scopes: Annotated[list[Scope], Field(min_length=1)]

    @field_validator("scopes")
    @classmethod
    def _dedupe(cls, value: list[Scope]) -> list[Scope]:
        return sorted(set(value))


class ApiKey(BaseModel):
    key_id: str
    tenant_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    #: ``fc_<key_id>_<secret>``: shown once, stored only as a SHA-256 digest.
    key: str


# --- internal ----------------------------------------------------------------


class AccountIds(BaseModel):
    account_ids: Annotated[
        list[Annotated[str, Field(max_length=ACCOUNT_ID_MAX)]],
        Field(min_length=1, max_length=ACCOUNT_BATCH_MAX),
    ]


class VerifyTokenCheck(BaseModel):
    token: Annotated[str, Field(max_length=1024)]


class VerifyTokenResult(BaseModel):
    valid: bool


class ApiKeyVerify(BaseModel):
    key: Annotated[str, Field(max_length=256)]


class ApiKeyVerified(BaseModel):
    key_id: str
    tenant_id: str
    scopes: list[str]
    tenant_status: TenantStatus


# --- users, sessions, audit ------------------------------------------------------

UserRole = Literal["owner", "admin", "agent", "viewer"]
UserStatus = Literal["invited", "active", "disabled", "deleted"]
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
    AfterValidator(lambda v: v.lower()),
]
#: Passwords: the service checks the minimum length (a setting); 1,024 caps hashing work.
Password = Annotated[str, Field(min_length=1, max_length=1024)]
OneTimeToken = Annotated[str, Field(min_length=16, max_length=256)]
AvatarUrl = Annotated[str, Field(max_length=2048, pattern=r"^https://[^\s]+$")]
DisplayName = Annotated[str, Field(min_length=1, max_length=100)]


class Notifications(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: bool = True
    new_conversation: bool = True
    assigned_to_me: bool = True
    sound: bool = True


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Locale = "en"
    timezone: Timezone = "UTC"
    notifications: Notifications = Notifications()


class User(BaseModel):
    """A person: an operator user (``tenant_id`` null, role ``operator``) or a tenant's."""

    user_id: str
    tenant_id: str | None
    email: str
    role: Literal["operator", "owner", "admin", "agent", "viewer"]
    status: UserStatus
    name: str | None
    display_name: str | None
    avatar_url: str | None
    preferences: Preferences
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserInvite(_In):
    email: Email
    role: UserRole = "agent"
    name: Name | None = None


class OperatorInvite(_In):
    email: Email
    name: Name | None = None


class UserUpdate(_In):
    """An admin's change: the role, or ``status`` to disable (sessions end) or re-enable."""

    role: UserRole | None = None
    status: Literal["active", "disabled"] | None = None


class OneTimeTokenIssued(BaseModel):
    """Shown once, to the inviter (also e-mailed): the invitee sets a password with it."""

    token: str
    kind: Literal["invitation", "reset"]
    expires_at: datetime
    url: str


class Invited(BaseModel):
    user: User
    invitation: OneTimeTokenIssued


class ResetIssued(BaseModel):
    user: User
    reset: OneTimeTokenIssued


class ProfileUpdate(_In):
    name: Name | None = None
    display_name: DisplayName | None = None
    avatar_url: AvatarUrl | None = None
    preferences: Preferences | None = None


class SetPassword(_In):
    token: OneTimeToken
    password: Password
    name: Name | None = None


class ChangePassword(_In):
    current_password: Password
    new_password: Password


class Login(_In):
    email: Email
    password: Password


class AccessTokenIssued(BaseModel):
    """A short-lived signed token for the API (``Authorization: Bearer``)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name
    expires_in: int
    expires_at: datetime


class LoginResult(AccessTokenIssued):
    """The session (the console keeps it in the ``fc_session`` cookie) and an access token."""

    session_token: str
    session_expires_at: datetime
    user: User


class AuditItem(BaseModel):
    id: int
    at: datetime
    tenant_id: str | None
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, object]
    ip: str | None
    user_agent: str | None


class AuditPage(Page[AuditItem]):
    """Audit entries, newest first."""


class TenantPage(Page[Tenant]):
    """Tenants by id."""


class AccountPage(Page[Account]):
    """A tenant's numbers, oldest first."""


class ApiKeyPage(Page[ApiKey]):
    """A tenant's API keys, oldest first."""


class UserPage(Page[User]):
    """Users by id."""


class AuditRecordIn(BaseModel):
    """An admin action another service performed (its own resources: settings, campaigns,
    endpoints), recorded in the one audit log. ``details``: names, never secrets."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: Annotated[str | None, Field(max_length=64, pattern=r"^tnt_[0-9a-f]+$")] = None
    actor_type: Literal["operator_key", "user", "api_key", "service"]
    actor_id: Annotated[str | None, Field(max_length=64)] = None
    action: Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)+$")]
    target_type: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]
    target_id: Annotated[str | None, Field(max_length=128)] = None
    details: Annotated[dict[str, object], Field(max_length=50)] = {}
    ip: Annotated[str | None, Field(max_length=64)] = None
    user_agent: Annotated[str | None, Field(max_length=512)] = None


class UserTokenResolve(BaseModel):
    token: Annotated[str, Field(max_length=4096)]


class UserIdentity(BaseModel):
    """What another service needs to authorise a user (internal API)."""

    user_id: str
    tenant_id: str | None
    role: Literal["operator", "owner", "admin", "agent", "viewer"]
    session_id: str
    expires_at: datetime
