"""Signing in: ``/v1/auth/…`` (invitation, reset, login, refresh, logout) and ``/v1/me``.

Login answers a session token (also set as the ``fc_session`` cookie: HttpOnly,
SameSite=Strict, Secure unless configured off for local HTTP) and a short-lived
access token. The API takes access tokens (``Authorization: Bearer fca.…``);
``refresh`` and ``logout`` take the session (cookie or bearer). Failed logins are
counted per e-mail and per address: 429 with ``Retry-After`` while locked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from flowchat_tenant.deps import (
    SESSION_COOKIE,
    CurrentPrincipal,
    Identity,
    SessionToken,
    client_ip,
    user_agent,
)
from flowchat_tenant.models import (
    AccessTokenIssued,
    ChangePassword,
    Login,
    LoginResult,
    ProfileUpdate,
    SetPassword,
    User,
)

router = APIRouter(tags=["auth"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "wrong e-mail or password, dead session or token"},
    403: {"description": "not a person's token (an API key or the operator key)"},
    422: {"description": "invalid input (a short password names the field)"},
    429: {"description": "locked after repeated failures (Retry-After)"},
}


@router.post("/v1/auth/invitations/accept", responses=_ERRORS)
async def accept_invitation(identity: Identity, body: SetPassword) -> User:
    """Set the password with the invitation's one-time token; the user is active."""
    return await identity.set_password(body, "invitation")


@router.post("/v1/auth/password-reset", responses=_ERRORS)
async def reset_password(identity: Identity, body: SetPassword) -> User:
    """Set a new password with a reset token (after an admin forced a reset)."""
    return await identity.set_password(body, "reset")


@router.post("/v1/auth/login", responses=_ERRORS)
async def login(
    request: Request, response: Response, identity: Identity, body: Login
) -> LoginResult:
    result = await identity.login(
        body.email, body.password, ip=client_ip(request), user_agent=user_agent(request)
    )
    response.set_cookie(
        SESSION_COOKIE,
        result.session_token,
        max_age=int(identity.policy.session_ttl_s),
        httponly=True,
        secure=request.app.state.session_cookie_secure,
        samesite="strict",
        path="/v1/auth",
    )
    response.headers["Cache-Control"] = "no-store"
    return result


@router.post("/v1/auth/refresh", responses=_ERRORS)
async def refresh(
    response: Response, identity: Identity, session: SessionToken
) -> AccessTokenIssued:
    """A new access token for a live session."""
    response.headers["Cache-Control"] = "no-store"
    return await identity.refresh(session)


@router.post("/v1/auth/logout", status_code=204, responses=_ERRORS)
async def logout(identity: Identity, session: SessionToken) -> Response:
    """End the session (its access tokens stop working at once)."""
    await identity.logout(session)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/v1/auth")
    return response


@router.get("/v1/me", tags=["me"], responses=_ERRORS)
async def me(identity: Identity, who: CurrentPrincipal) -> User:
    """The signed-in user: profile, role, preferences."""
    return await identity.me(who)


@router.patch("/v1/me", tags=["me"], responses=_ERRORS)
async def update_me(identity: Identity, who: CurrentPrincipal, body: ProfileUpdate) -> User:
    """Profile (name, display name, avatar URL) and preferences (language, time zone,
    notifications)."""
    return await identity.update_me(who, body)


@router.post("/v1/me/password", status_code=204, tags=["me"], responses=_ERRORS)
async def change_password(
    identity: Identity, who: CurrentPrincipal, body: ChangePassword
) -> Response:
    """Change the password (the current one is required); every session ends."""
    await identity.change_password(who, body)
    return Response(status_code=204)
