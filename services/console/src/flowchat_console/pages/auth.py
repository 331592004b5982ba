"""Sign-in, sign-out and the landing redirect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from flowchat_console.auth import SESSION_COOKIE, LoginRefused
from flowchat_console.deps import CurrentUser, RuntimeDep
from flowchat_console.errors import UpstreamError
from flowchat_console.nav import home
from flowchat_console.render import render

router = APIRouter()


def safe_next(target: str | None) -> str | None:
    """A local path to go back to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(c in target for c in "\r\n\\"):
        return None
    return target[:2000]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/", include_in_schema=False)
async def index(user: CurrentUser) -> RedirectResponse:
    return RedirectResponse(home(user), status_code=303)


@router.get("/sign-in", include_in_schema=False)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "auth/sign_in.html", {"next": safe_next(next), "email": ""})


@router.post("/sign-in", include_in_schema=False)
async def sign_in(
    request: Request,
    runtime: RuntimeDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    target = safe_next(next)
    try:
        login = await runtime.sessions.sign_in(
            email.strip(),
            password,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )
    except LoginRefused as exc:
        status = 429 if exc.retry_after_s is not None else 401
        return render(
            request,
            "auth/sign_in.html",
            {"next": target, "email": email, "error": exc.message},
            status_code=status,
        )
    except UpstreamError:
        return render(
            request,
            "auth/sign_in.html",
            {"next": target, "email": email, "error": "Signing in is unavailable right now."},
            status_code=503,
        )
    response = RedirectResponse(target or home(login.signed_in.user), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        login.session_token,
        max_age=login.session_max_age,
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    return response


@router.post("/sign-out", include_in_schema=False)
async def sign_out(request: Request, runtime: RuntimeDep) -> Response:
    await runtime.sessions.sign_out(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        secure=runtime.settings.secure_cookies,
        samesite="lax",
    )
    return response
