"""Security headers and CSRF tokens for every answer (a pure ASGI middleware, so streamed
answers such as server-sent events pass through untouched).

- **Content security policy**: the console's own origin only (``default-src 'self'``;
  images and audio/video too: customers' media come through ``/media/…``), no
  inline script or style, no framing; plus ``nosniff``, ``no-referrer`` and a restrictive
  permissions policy.
- **CSRF** (double-submit): every browser gets a random token in the ``fc_csrf`` cookie
  (HttpOnly, SameSite=Strict, Secure outside development); pages carry the same value in
  forms (``csrf_token``) and in a ``<meta>`` that htmx sends as ``X-CSRF-Token``.
  :func:`check_csrf` (a dependency of every route) refuses any POST, PUT, PATCH or
  DELETE whose token does not match the cookie. Another site can neither read the
  cookie nor set it, so it cannot forge the pair; the session cookie's SameSite=Lax is
  a second line.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowchat_console import metrics
from flowchat_console.errors import CsrfRejected

CSRF_COOKIE = "fc_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


def cookies_of(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001, S112 - a malformed cookie header is ignored
                continue
    return {k: m.value for k, m in jar.items()}


def cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> bytes:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode()


class SecurityMiddleware:
    """Adds the security headers to every answer; gives each browser its CSRF token
    (``request.state.csrf``), setting the cookie on the first answer."""

    def __init__(self, app: ASGIApp, *, secure_cookies: bool) -> None:
        self.app = app
        self.secure = secure_cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = cookies_of(scope).get(CSRF_COOKIE)
        fresh = not token or len(token) < 32 or len(token) > 128
        if fresh:
            token = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf"] = token

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in HEADERS if h[0] not in present)
                if fresh:
                    headers.append(
                        (b"set-cookie", cookie_header(CSRF_COOKIE, str(token), secure=self.secure))
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def check_csrf(request: Request) -> None:
    """Every unsafe request carries the browser's CSRF token (header or form field)."""
    if request.method in SAFE_METHODS:
        return
    expected = request.cookies.get(CSRF_COOKIE)
    given = request.headers.get(CSRF_HEADER)
    if not given:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
    if not expected or not given or not hmac.compare_digest(expected, given):
        metrics.CSRF_REJECTED.inc()
        raise CsrfRejected("missing or wrong CSRF token")
