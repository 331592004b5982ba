"""Internal API for the other services (``Authorization: Bearer $FLOWCHAT_SERVICE_TOKEN``).

The only place decrypted secrets leave the service. Account answers are meant to
be cached: ``Cache-Control: private, max-age=60`` and ``ETag: "<account id>-<version>"``
(the version moves on every change, including the tenant's suspension), and a
matching ``If-None-Match`` gets ``304``. The by-WABA list's ETag is
``"waba-<digest of every (account id, version)>"``, so it moves when any of its
accounts changes, is added or removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import APIRouter, Depends, Request, Response

from flowchat_platform.accounts import AccountBatch, AccountCredentials, WabaAccounts
from flowchat_platform.http import ApiError
from flowchat_tenant import metrics
from flowchat_tenant.deps import Identity, Service, require_service_token
from flowchat_tenant.errors import NotFound
from flowchat_tenant.models import (
    AccountIds,
    ApiKeyVerified,
    ApiKeyVerify,
    AuditRecordIn,
    Tenant,
    UserIdentity,
    UserTokenResolve,
    VerifyTokenCheck,
    VerifyTokenResult,
)
from flowchat_tenant.ports import AuditEntry

router = APIRouter(
    prefix="/internal/v1", tags=["internal"], dependencies=[Depends(require_service_token)]
)


def etag_of(account: AccountCredentials) -> str:
    return f'"{account.account_id}-{account.version}"'


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return etag in candidates


def etag_of_list(accounts: list[AccountCredentials]) -> str:
    state = "|".join(f"{a.account_id}-{a.version}" for a in accounts)
    return f'"waba-{hashlib.sha256(state.encode()).hexdigest()[:32]}"'


Found = TypeVar("Found", AccountCredentials, WabaAccounts)


async def _answer(
    request: Request, response: Response, kind: str, lookup: Awaitable[Found]
) -> Found | Response:
    try:
        found = await lookup
    except NotFound:
        metrics.INTERNAL_LOOKUPS.labels(kind, "not_found").inc()
        raise
    etag = etag_of_list(found.accounts) if isinstance(found, WabaAccounts) else etag_of(found)
    headers = {
        "Cache-Control": f"private, max-age={request.app.state.cache_max_age_s}",
        "ETag": etag,
    }
    if etag_matches(request.headers.get("If-None-Match"), headers["ETag"]):
        metrics.INTERNAL_LOOKUPS.labels(kind, "not_modified").inc()
        return Response(status_code=304, headers=headers)
    metrics.INTERNAL_LOOKUPS.labels(kind, "found").inc()
    response.headers.update(headers)
    return found


@router.get("/accounts/{account_id}", response_model=AccountCredentials)
async def account_by_id(
    request: Request, response: Response, service: Service, account_id: str
) -> AccountCredentials | Response:
    return await _answer(request, response, "id", service.credentials_by_id(account_id))


@router.post("/accounts/batch", response_model=AccountBatch)
async def accounts_by_ids(
    request: Request, response: Response, service: Service, body: AccountIds
) -> AccountBatch:
    """The accounts among ``account_ids`` (at most 256), in one query: ``{"accounts":
    [...]}``, unknown ids left out. For a process that needs many accounts at once (a
    sender started on a queue of commands for a thousand numbers); cached like the
    single lookups (``Cache-Control: private, max-age``)."""
    found = await service.credentials_by_ids(body.account_ids)
    metrics.INTERNAL_LOOKUPS.labels("batch", "found").inc(len(found))
    missing = len(set(body.account_ids)) - len(found)
    if missing:
        metrics.INTERNAL_LOOKUPS.labels("batch", "not_found").inc(missing)
    response.headers["Cache-Control"] = f"private, max-age={request.app.state.cache_max_age_s}"
    return AccountBatch(accounts=found)


@router.get("/accounts/by-phone-number/{phone_number_id}", response_model=AccountCredentials)
async def account_by_phone_number(
    request: Request, response: Response, service: Service, phone_number_id: str
) -> AccountCredentials | Response:
    return await _answer(
        request,
        response,
        "phone_number",
        service.credentials_by_phone_number_id(phone_number_id),
    )


async def _waba_accounts(service: Service, waba_id: str) -> WabaAccounts:
    return WabaAccounts(accounts=await service.credentials_by_waba(waba_id))


@router.get("/accounts/by-waba/{waba_id}", response_model=WabaAccounts)
async def accounts_by_waba(
    request: Request, response: Response, service: Service, waba_id: str
) -> WabaAccounts | Response:
    """Every account (number) of a WABA, oldest first: ``{"accounts": [...]}``; 404 if none.

    For Meta's account-level webhooks (template status, quality, account updates),
    which name only the WABA.
    """
    return await _answer(request, response, "waba", _waba_accounts(service, waba_id))


@router.get("/accounts/by-twilio-number/{number}", response_model=AccountCredentials)
async def account_by_twilio_number(
    request: Request, response: Response, service: Service, number: str
) -> AccountCredentials | Response:
    return await _answer(
        request, response, "twilio_number", service.credentials_by_twilio_number(number)
    )


@router.post("/verify-tokens/check")
async def check_verify_token(service: Service, body: VerifyTokenCheck) -> VerifyTokenResult:
    """Is ``token`` the webhook verify token of some registered account?"""
    return VerifyTokenResult(valid=await service.verify_token_known(body.token))


@router.post("/api-keys/verify", responses={404: {"description": "Unknown or revoked key"}})
async def verify_api_key(service: Service, body: ApiKeyVerify) -> ApiKeyVerified:
    """The tenant and scopes of a live key; 404 when unknown or revoked."""
    info = await service.verify_api_key(body.key)
    if info is None:
        raise ApiError(404, "unknown_api_key", "unknown or revoked API key")
    return info


@router.get("/tenants/{tenant_id}")
async def tenant(service: Service, tenant_id: str) -> Tenant:
    """A tenant's settings (time zone, locale, currency, tax rate, status)."""
    return await service.tenant_internal(tenant_id)


@router.post(
    "/users/resolve", responses={404: {"description": "expired, revoked or unknown token"}}
)
async def resolve_user(
    request: Request, response: Response, identity: Identity, body: UserTokenResolve
) -> UserIdentity:
    """Who is behind a user's access token: ``{user_id, tenant_id, role, …}``, for the
    inbox and the console to authorise users. Cacheable briefly
    (``Cache-Control: private, max-age`` = ``FLOWCHAT_TENANT_USER_CACHE_MAX_AGE_S``)."""
    found = await identity.resolve(body.token)
    if found is None:
        metrics.INTERNAL_LOOKUPS.labels("user", "not_found").inc()
        raise ApiError(404, "unknown_user_token", "expired, revoked or unknown user token")
    metrics.INTERNAL_LOOKUPS.labels("user", "found").inc()
    response.headers["Cache-Control"] = f"private, max-age={request.app.state.user_cache_max_age_s}"
    return found


@router.post("/audit", status_code=204, responses={413: {"description": "an entry over 8 KiB"}})
async def record_audit(identity: Identity, body: AuditRecordIn) -> Response:
    """Record an admin action another service performed (its own resources: settings,
    campaigns, endpoints) in the one audit log; ``details`` hold names, never secrets."""
    if len(body.model_dump_json()) > 8192:
        raise ApiError(413, "too_large", "an audit entry is at most 8 KiB")
    await identity.record_external(AuditEntry(**body.model_dump()))
    return Response(status_code=204)


@router.get("/dev/outbox", responses={404: {"description": "not in development"}})
async def dev_outbox(request: Request, to: str | None = None) -> list[dict[str, object]]:
    """The development mail sink: messages sent (invitations, resets), newest last.
    Answers 404 unless ``FLOWCHAT_ENV`` is development or test."""
    outbox = request.app.state.outbox
    if outbox is None:
        raise ApiError(404, "not_found", "no development outbox here")
    return [
        {"to": m.to, "subject": m.subject, "body": m.body, "data": dict(m.data)}
        for m in outbox.messages(to)
    ]
