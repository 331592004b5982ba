"""What the tenant service's internal API answers: plain values, no I/O.

Business logic (every ``service.py``) imports these from here, never from
:mod:`flowchat_platform.tenant_client`, which loads aiohttp.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class AccountCredentials(BaseModel):
    """A business account with its decrypted secrets, as the internal API returns it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    account_id: str
    tenant_id: str
    tenant_status: Literal["active", "suspended"] = "active"
    status: Literal["active", "disabled"] = "active"
    provider: Literal["meta", "twilio"]
    phone_number_id: str | None = None
    waba_id: str | None = None
    display_phone_number: str | None = None
    tier: str = "standard"
    throughput_mps: int = 80
    app_secret: str | None = None
    access_token: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_number: str | None = None
    version: int = 1


class WabaAccounts(BaseModel):
    """Every account of one WABA (``GET /internal/v1/accounts/by-waba/{waba_id}``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    accounts: list[AccountCredentials]


class AccountBatch(BaseModel):
    """The accounts found among the ids asked for (``POST /internal/v1/accounts/batch``);
    an id left out is unknown (as a 404 of ``GET /internal/v1/accounts/{id}``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    accounts: list[AccountCredentials]


#: Ids per ``POST /internal/v1/accounts/batch`` at most, and the longest id it takes
#: (a longer one is no account: the client answers None without asking).
ACCOUNT_BATCH_MAX = 256
ACCOUNT_ID_MAX = 128


class UserInfo(BaseModel):
    """Who is behind a user's access token (the tenant's ``/internal/v1/users/resolve``).

    ``tenant_id`` is None for an operator user (platform staff, ``role`` ``operator``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str
    tenant_id: str | None
    role: str
    session_id: str


class ApiKeyInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    key_id: str
    tenant_id: str
    scopes: list[str]
