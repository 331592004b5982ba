"""Signing in through the tenant service, and the signed-in user of each request.

The console keeps no user store. ``POST /v1/auth/login`` on the tenant service answers a
session token (the console keeps it in its own ``fc_console`` cookie: HttpOnly,
SameSite=Lax, Secure outside development) and a short-lived access token. Access tokens
live in this process's memory only (:class:`Sessions`, bounded LRU), refreshed through
``/v1/auth/refresh`` when near expiry, so any replica can serve any request and a
restart only costs one refresh. Signing out ends the session at the tenant service: its
access tokens stop working at once everywhere.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from flowchat_console import metrics
from flowchat_console.errors import SignInRequired, UpstreamError
from flowchat_console.upstream import ServiceClients, Upstream

SESSION_COOKIE = "fc_console"


@dataclass(frozen=True)
class ConsoleUser:
    """The signed-in person, as the tenant service's ``/v1/me`` describes them."""

    user_id: str
    tenant_id: str | None
    email: str
    role: str
    name: str | None = None
    display_name: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> ConsoleUser:
        return cls(
            user_id=str(body["user_id"]),
            tenant_id=body.get("tenant_id"),
            email=str(body.get("email", "")),
            role=str(body["role"]),
            name=body.get("name"),
            display_name=body.get("display_name"),
        )

    @property
    def label(self) -> str:
        return self.display_name or self.name or self.email

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


@dataclass(frozen=True)
class SignedIn:
    """A live session: who, and the access token the console forwards for them."""

    user: ConsoleUser
    access_token: str
    #: ``time.monotonic()`` after which the token is refreshed.
    refresh_after: float


@dataclass(frozen=True)
class Login:
    session_token: str
    #: Seconds the session lives (the cookie's max-age).
    session_max_age: int
    signed_in: SignedIn


class LoginRefused(Exception):
    """Wrong e-mail or password (``retry_after_s`` set: locked for that long)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


def _key(session_token: str) -> str:
    return hashlib.sha256(session_token.encode()).hexdigest()


class Sessions:
    def __init__(
        self, clients: ServiceClients, *, size: int = 10_000, margin_s: float = 60.0
    ) -> None:
        self.clients = clients
        self.size = size
        self.margin_s = margin_s
        self._cache: OrderedDict[str, SignedIn] = OrderedDict()

    def _keep(self, session_token: str, signed: SignedIn) -> None:
        key = _key(session_token)
        self._cache[key] = signed
        self._cache.move_to_end(key)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    def forget(self, session_token: str) -> None:
        self._cache.pop(_key(session_token), None)

    def _signed(self, user: dict[str, Any], access: dict[str, Any]) -> SignedIn:
        ttl = float(access.get("expires_in", 300))
        return SignedIn(
            user=ConsoleUser.of(user),
            access_token=str(access["access_token"]),
            refresh_after=time.monotonic() + max(ttl - self.margin_s, ttl / 2),
        )

    async def sign_in(
        self, email: str, password: str, *, ip: str | None, user_agent: str | None
    ) -> Login:
        headers = {}
        if ip:
            headers["X-Forwarded-For"] = ip
        if user_agent:
            headers["User-Agent"] = user_agent[:512]
        try:
            body = await Upstream(self.clients).post(
                "tenant",
                "/v1/auth/login",
                {"email": email, "password": password},
                headers=headers,
            )
        except UpstreamError as exc:
            if exc.status == 429:
                metrics.SIGN_INS.labels("locked").inc()
                retry = None
                if isinstance(exc.details, list) and exc.details:
                    first = exc.details[0]
                    if isinstance(first, dict):
                        retry = first.get("retry_after_s")
                raise LoginRefused(
                    "Too many failed attempts: try again later.",
                    float(retry) if retry is not None else None,
                ) from exc
            if exc.status in (401, 403, 422):
                metrics.SIGN_INS.labels("refused").inc()
                raise LoginRefused("Wrong e-mail or password.") from exc
            metrics.SIGN_INS.labels("error").inc()
            raise
        signed = self._signed(body["user"], body)
        session_token = str(body["session_token"])
        self._keep(session_token, signed)
        metrics.SIGN_INS.labels("ok").inc()
        ttl = int(float(body.get("expires_in", 900)))
        max_age = _seconds_until(body.get("session_expires_at"), default=ttl)
        return Login(session_token=session_token, session_max_age=max_age, signed_in=signed)

    async def resolve(self, session_token: str | None) -> SignedIn:
        """The session's user and a valid access token (refreshed when near expiry);
        :class:`SignInRequired` when the session is missing or dead."""
        if not session_token:
            raise SignInRequired("no session")
        cached = self._cache.get(_key(session_token))
        if cached is not None and time.monotonic() < cached.refresh_after:
            self._cache.move_to_end(_key(session_token))
            return cached
        session = Upstream(self.clients, session_token)
        try:
            access = await session.post("tenant", "/v1/auth/refresh")
            user = await Upstream(self.clients, str(access["access_token"])).get("tenant", "/v1/me")
        except UpstreamError as exc:
            if exc.status in (401, 403):
                self.forget(session_token)
                raise SignInRequired("session ended") from exc
            raise
        signed = self._signed(user, access)
        self._keep(session_token, signed)
        return signed

    async def sign_out(self, session_token: str | None) -> None:
        if not session_token:
            return
        self.forget(session_token)
        try:
            await Upstream(self.clients, session_token).post("tenant", "/v1/auth/logout")
        except UpstreamError as exc:
            if exc.status not in (401, 403):
                raise


def _seconds_until(when: object, *, default: int) -> int:
    from datetime import UTC, datetime

    if not isinstance(when, str):
        return default
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        return default
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(int((at - datetime.now(UTC)).total_seconds()), 0)
