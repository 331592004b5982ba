"""Users and the audit log: ``/v1/tenants/{tenant_id}/users…``, ``/v1/tenants/{tenant_id}/audit``
(a tenant's, by role) and ``/v1/operator/users…``, ``/v1/operator/audit`` (operators only).

Who may do what is the table in :mod:`flowchat_tenant.permissions`; another tenant's
users and entries answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import decode_cursor, page_of
from flowchat_tenant.deps import CurrentPrincipal, Identity
from flowchat_tenant.models import (
    AuditPage,
    Invited,
    OperatorInvite,
    ResetIssued,
    User,
    UserInvite,
    UserPage,
    UserUpdate,
)

router = APIRouter()
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, unknown or dead key or token"},
    403: {"description": "the role may not do this"},
    404: {"description": "unknown, or another tenant's"},
    409: {"description": "e-mail taken, or the tenant's last owner"},
    422: {"description": "invalid input; details name the field"},
}
Action = Annotated[str | None, Query(max_length=64, description="only this action")]

T = "/v1/tenants/{tenant_id}"
OP = "/v1/operator"


@router.post(T + "/users", status_code=201, tags=["users"], responses=_ERRORS)
async def invite_user(
    identity: Identity, who: CurrentPrincipal, tenant_id: str, body: UserInvite
) -> Invited:
    """Invite a person by e-mail with a role; the one-time token is in this answer (and
    in the e-mail)."""
    return await identity.invite(who, tenant_id, body)


@router.get(T + "/users", tags=["users"], responses=_ERRORS)
async def list_users(
    identity: Identity,
    who: CurrentPrincipal,
    tenant_id: str,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> UserPage:
    """The tenant's users, by id."""
    return await _users(identity, who, tenant_id, limit, cursor)


async def _users(
    identity: Identity, who: CurrentPrincipal, tenant_id: str | None, limit: int, cursor: str | None
) -> UserPage:
    after = decode_cursor(cursor, str)
    rows = await identity.list_users(
        who, tenant_id, limit=limit + 1, after=after[0] if after else None
    )
    items, next_cursor = page_of(rows, limit, lambda u: (u.user_id,))
    return UserPage(items=items, next_cursor=next_cursor)


@router.get(T + "/users/{user_id}", tags=["users"], responses=_ERRORS)
async def get_user(identity: Identity, who: CurrentPrincipal, tenant_id: str, user_id: str) -> User:
    return await identity.get_user(who, tenant_id, user_id)


@router.patch(T + "/users/{user_id}", tags=["users"], responses=_ERRORS)
async def update_user(
    identity: Identity, who: CurrentPrincipal, tenant_id: str, user_id: str, body: UserUpdate
) -> User:
    """Change the role, or disable (every session and token ends at once) / re-enable."""
    return await identity.update_user(who, tenant_id, user_id, body)


@router.delete(T + "/users/{user_id}", status_code=204, tags=["users"], responses=_ERRORS)
async def delete_user(
    identity: Identity, who: CurrentPrincipal, tenant_id: str, user_id: str
) -> Response:
    """Delete a user: every session and token ends at once."""
    await identity.delete_user(who, tenant_id, user_id)
    return Response(status_code=204)


@router.post(T + "/users/{user_id}/password-reset", tags=["users"], responses=_ERRORS)
async def force_password_reset(
    identity: Identity, who: CurrentPrincipal, tenant_id: str, user_id: str
) -> ResetIssued:
    """Forced reset: the password stops working, sessions end, a reset token is issued."""
    return await identity.force_reset(who, tenant_id, user_id)


@router.get(T + "/audit", tags=["audit"], responses=_ERRORS)
async def tenant_audit(
    identity: Identity,
    who: CurrentPrincipal,
    tenant_id: str,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    action: Action = None,
) -> AuditPage:
    """The tenant's admin actions, newest first: who, what, when, from where."""
    return await identity.audit(who, tenant_id, limit=limit, cursor=cursor, action=action)


# --- operators --------------------------------------------------------------------


@router.post(OP + "/users", status_code=201, tags=["operator"], responses=_ERRORS)
async def invite_operator(
    identity: Identity, who: CurrentPrincipal, body: OperatorInvite
) -> Invited:
    """Invite a member of the platform staff (operators only)."""
    return await identity.invite(who, None, body)


@router.get(OP + "/users", tags=["operator"], responses=_ERRORS)
async def list_operators(
    identity: Identity, who: CurrentPrincipal, limit: PageLimit = 100, cursor: PageCursor = None
) -> UserPage:
    """The platform staff, by id (operators only)."""
    return await _users(identity, who, None, limit, cursor)


@router.get(OP + "/users/{user_id}", tags=["operator"], responses=_ERRORS)
async def get_operator(identity: Identity, who: CurrentPrincipal, user_id: str) -> User:
    return await identity.get_user(who, None, user_id)


@router.patch(OP + "/users/{user_id}", tags=["operator"], responses=_ERRORS)
async def update_operator(
    identity: Identity, who: CurrentPrincipal, user_id: str, body: UserUpdate
) -> User:
    return await identity.update_user(who, None, user_id, body)


@router.delete(OP + "/users/{user_id}", status_code=204, tags=["operator"], responses=_ERRORS)
async def delete_operator(identity: Identity, who: CurrentPrincipal, user_id: str) -> Response:
    await identity.delete_user(who, None, user_id)
    return Response(status_code=204)


@router.post(OP + "/users/{user_id}/password-reset", tags=["operator"], responses=_ERRORS)
async def force_operator_reset(
    identity: Identity, who: CurrentPrincipal, user_id: str
) -> ResetIssued:
    return await identity.force_reset(who, None, user_id)


@router.get(OP + "/audit", tags=["operator"], responses=_ERRORS)
async def operator_audit(
    identity: Identity,
    who: CurrentPrincipal,
    tenant_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
    action: Action = None,
) -> AuditPage:
    """Every tenant's admin actions (or one's), newest first (operators only)."""
    return await identity.audit(
        who, tenant_id, limit=limit, cursor=cursor, action=action, all_tenants=True
    )
