"""Client of the tenant service's internal API, with a TTL cache.

The gateway and the sender call this on every message, so lookups are served from
memory for ``ttl_s`` (the tenant service's ``Cache-Control: max-age``), misses for
the same key share one request, and "not found" is cached briefly too.

With ``batch_accounts`` (the sender), :meth:`TenantClient.account` misses are asked
for together: the ids missed while a lookup is out (or in the same event-loop turn)
go in one ``POST /internal/v1/accounts/batch`` (at most ``ACCOUNT_BATCH_MAX`` ids;
one request out at a time), so a process that meets a thousand accounts at once
makes a handful of requests, not a thousand. Each answer is cached exactly as a
single lookup's (same key, same ``max-age``, so :meth:`TenantClient.invalidate`
and the revocation delay are unchanged). A tenant service without the route (404
or 405) is asked one id at a time, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from flowchat_platform.accounts import (
    ACCOUNT_BATCH_MAX,
    ACCOUNT_ID_MAX,
    AccountBatch,
    AccountCredentials,
    ApiKeyInfo,
    UserInfo,
    WabaAccounts,
)
from flowchat_platform.errors import UpstreamError

INTERNAL_PREFIX = "/internal/v1"

__all__ = [
    "INTERNAL_PREFIX",
    "AccountCredentials",
    "ApiKeyInfo",
    "TenantClient",
    "UserInfo",
    "WabaAccounts",
]


M = TypeVar("M", bound=BaseModel)


class TenantClient:
    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        session: aiohttp.ClientSession,
        ttl_s: float = 60.0,
        negative_ttl_s: float = 5.0,
        timeout_s: float = 3.0,
        user_ttl_s: float = 5.0,
        user_cache_size: int = 10_000,
        batch_accounts: bool = False,
    ) -> None:
        #: account lookups missed together go in one batch request (module docstring)
        self.batch_accounts = batch_accounts
        self._wanted: list[str] = []
        self._batcher: asyncio.Task[None] | None = None
        #: batch requests made (for tests and the shutdown log)
        self.batches = 0
        #: at most this long a user's token is trusted after its user is disabled, deleted
        #: or signed out (0 asks the tenant every time)
        self.user_ttl_s = user_ttl_s
        #: verified (and refused) user tokens held at most, least recently used dropped
        self.user_cache_size = user_cache_size
        self._users: OrderedDict[str, tuple[float, UserInfo | None]] = OrderedDict()
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self._session = session
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._cache: dict[str, tuple[float, Any]] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def account_by_phone_number(self, phone_number_id: str) -> AccountCredentials | None:
        return await self._cached_get(
            f"/accounts/by-phone-number/{phone_number_id}", AccountCredentials
        )

    async def account_by_twilio_number(self, number: str) -> AccountCredentials | None:
        return await self._cached_get(f"/accounts/by-twilio-number/{number}", AccountCredentials)

    async def account(self, account_id: str) -> AccountCredentials | None:
        path = f"/accounts/{account_id}"
        if not self.batch_accounts:
            return await self._cached_get(path, AccountCredentials)
        hit = self._cache.get(path)
        if hit and hit[0] > time.monotonic():
            return hit[1]  # type: ignore[no-any-return]
        if len(account_id) > ACCOUNT_ID_MAX:
            return None  # no account has such an id (and it must not fail a whole batch)
        pending = self._inflight.get(path)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._inflight[path] = pending
            self._wanted.append(account_id)
            if self._batcher is None:
                self._batcher = asyncio.create_task(self._batch_accounts())
        found: AccountCredentials | None = await asyncio.shield(pending)
        return found

    async def _batch_accounts(self) -> None:
        """Ask for the wanted ids, a batch at a time, until none are left."""
        try:
            await asyncio.sleep(0)  # the misses of this event-loop turn join the first
            while self._wanted:
                ids = self._wanted[:ACCOUNT_BATCH_MAX]
                del self._wanted[:ACCOUNT_BATCH_MAX]
                await self._account_batch(ids)
        finally:
            self._batcher = None
            if self._wanted:  # cancelled: nobody will ask for these any more
                ids, self._wanted = self._wanted, []
                self._settle(ids, exc=UpstreamError("tenant lookup cancelled", service="tenant"))

    async def _account_batch(self, ids: list[str]) -> None:
        try:
            if self.batch_accounts:
                found, ttl = await self._fetch_batch(ids)
            else:  # the tenant service has no batch route: one id at a time
                await asyncio.gather(*(self._account_one(i) for i in ids))
                return
        except (UpstreamError, ValueError) as exc:  # these ids' callers raise it, no others
            self._settle(ids, exc=exc)
            return
        except BaseException as exc:
            self._settle(ids, exc=exc)
            raise
        if found is None:
            self.batch_accounts = False
            await asyncio.gather(*(self._account_one(i) for i in ids))
            return
        now = time.monotonic()
        by_id = {a.account_id: a for a in found.accounts}
        for account_id in ids:
            account = by_id.get(account_id)
            path = f"/accounts/{account_id}"
            ttl_of = ttl if account is not None else self.negative_ttl_s
            self._cache[path] = (now + ttl_of, account)
        self._settle(ids, values=by_id)

    async def _account_one(self, account_id: str) -> None:
        path = f"/accounts/{account_id}"
        try:
            value, ttl = await self._fetch(path, AccountCredentials)
        except (UpstreamError, ValueError) as exc:
            self._settle([account_id], exc=exc)
            return
        except BaseException as exc:
            self._settle([account_id], exc=exc)
            raise
        self._cache[path] = (time.monotonic() + ttl, value)
        self._settle([account_id], values={account_id: value} if value else {})

    def _settle(
        self,
        ids: list[str],
        *,
        values: dict[str, AccountCredentials] | None = None,
        exc: BaseException | None = None,
    ) -> None:
        for account_id in ids:
            future = self._inflight.pop(f"/accounts/{account_id}", None)
            if future is None or future.done():
                continue
            if exc is not None:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it themselves
            else:
                future.set_result((values or {}).get(account_id))

    async def _fetch_batch(self, ids: list[str]) -> tuple[AccountBatch | None, float]:
        """One batch request: (the answer, its max-age); (None, 0) when the tenant
        service has no batch route."""
        self.batches += 1
        async with self._request("POST", "/accounts/batch", json={"account_ids": ids}) as r:
            if r.status in (404, 405):
                return None, 0.0
            _expect(r, 200)
            body = await r.read()
            return AccountBatch.model_validate_json(body), _max_age(r.headers, self.ttl_s)

    async def accounts_by_waba(self, waba_id: str) -> list[AccountCredentials]:
        """Every account of a WABA, oldest first (empty when the WABA is unknown).

        For Meta's account-level webhooks (template status, quality, account updates),
        which name only the WABA.
        """
        found = await self._cached_get(f"/accounts/by-waba/{waba_id}", WabaAccounts)
        return list(found.accounts) if found is not None else []

    async def verify_token_known(self, token: str) -> bool:
        """True when some account's webhook verify token is ``token``."""
        result = await self._post("/verify-tokens/check", {"token": token})
        return bool(result and result.get("valid"))

    async def api_key(self, key: str) -> ApiKeyInfo | None:
        """The tenant and scopes of an API key, or None when unknown or revoked."""
        cache_key = "apikey:" + key
        hit = self._cache.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return hit[1]  # type: ignore[no-any-return]
        result = await self._post("/api-keys/verify", {"key": key})
        info = ApiKeyInfo.model_validate(result) if result else None
        ttl = min(self.ttl_s, 30.0) if info else self.negative_ttl_s
        self._cache[cache_key] = (time.monotonic() + ttl, info)
        return info

    async def user(self, access_token: str) -> UserInfo | None:
        """Who is behind a user's access token, or None when it is expired, revoked, or its
        user is disabled or deleted.

        Answers are held ``user_ttl_s`` (at most the tenant service's ``max-age``) by the
        token's SHA-256 digest (never the token) in a bounded LRU of ``user_cache_size``: a
        revoked token, or a disabled or deleted user, is still trusted by this process for
        at most ``user_ttl_s`` after the change."""
        cache_key = hashlib.sha256(access_token.encode()).hexdigest()
        hit = self._users.get(cache_key)
        if hit is not None:
            if hit[0] > time.monotonic():
                self._users.move_to_end(cache_key)
                return hit[1]
            del self._users[cache_key]
        result, max_age = await self._post_aged("/users/resolve", {"token": access_token})
        info = UserInfo.model_validate(result) if result else None
        ttl = min(self.user_ttl_s, max_age)
        if info is None:
            ttl = min(ttl, self.negative_ttl_s)
        if ttl > 0 and self.user_cache_size > 0:
            self._users[cache_key] = (time.monotonic() + ttl, info)
            self._users.move_to_end(cache_key)
            while len(self._users) > self.user_cache_size:
                self._users.popitem(last=False)
        return info

    async def record_audit(
        self,
        *,
        tenant_id: str | None,
        actor_type: str,
        actor_id: str | None,
        action: str,
        target_type: str,
        target_id: str | None = None,
        details: dict[str, Any] | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        """Record an admin action of this service (settings, campaigns, endpoints) in the
        tenant's audit log: who (``actor_type`` user/api_key/operator_key/service and id),
        what, from where. ``details`` name fields, never secret values."""
        await self._post(
            "/audit",
            {
                "tenant_id": tenant_id,
                "actor_type": actor_type,
                "actor_id": actor_id,
                "action": action,
                "target_type": target_type,
                "target_id": target_id,
                "details": details or {},
                "ip": ip,
                "user_agent": user_agent,
            },
            expect=204,
        )

    def invalidate(self, account: AccountCredentials | None = None) -> None:
        """Forget cached accounts (all, or one) so the next lookup fetches fresh secrets."""
        if account is None:
            self._cache.clear()
            return
        for key, (_, value) in list(self._cache.items()):
            held = value.accounts if isinstance(value, WabaAccounts) else [value]
            if any(
                isinstance(a, AccountCredentials) and a.account_id == account.account_id
                for a in held
            ):
                del self._cache[key]

    async def _cached_get(self, path: str, model: type[M]) -> M | None:
        hit = self._cache.get(path)
        if hit and hit[0] > time.monotonic():
            return hit[1]  # type: ignore[no-any-return]
        pending = self._inflight.get(path)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[path] = future
        try:
            value, ttl = await self._fetch(path, model)
            self._cache[path] = (time.monotonic() + ttl, value)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[path]

    async def _fetch(self, path: str, model: type[M]) -> tuple[M | None, float]:
        async with self._request("GET", path) as r:
            if r.status == 404:
                return None, self.negative_ttl_s
            _expect(r, 200)
            body = await r.read()
            return model.model_validate_json(body), _max_age(r.headers, self.ttl_s)

    async def _post(
        self, path: str, payload: dict[str, Any], *, expect: int = 200
    ) -> dict[str, Any] | None:
        return (await self._post_aged(path, payload, expect=expect))[0]

    async def _post_aged(
        self, path: str, payload: dict[str, Any], *, expect: int = 200
    ) -> tuple[dict[str, Any] | None, float]:
        """The answer (None for 404) and how long it may be kept (``Cache-Control:
        max-age``; no header: no limit)."""
        async with self._request("POST", path, json=payload) as r:
            age = _max_age(r.headers, float("inf"))
            if r.status == 404:
                return None, age
            _expect(r, expect)
            if r.status == 204:
                return {}, age
            data: dict[str, Any] = await r.json()
            return data, age

    @asynccontextmanager
    async def _request(
        self, method: str, path: str, *, json: Any = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request to the tenant service's internal API; a transport failure (while
        sending or reading the answer) surfaces as :class:`UpstreamError`."""
        url = f"{self.base_url}{INTERNAL_PREFIX}{path}"
        try:
            async with self._session.request(
                method, url, json=json, headers=self._headers, timeout=self._timeout
            ) as r:
                yield r
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"tenant service unreachable: {exc!r}", service="tenant") from exc


def _expect(r: aiohttp.ClientResponse, status: int) -> None:
    if r.status != status:
        raise UpstreamError(
            f"tenant service answered {r.status}", service="tenant", status=r.status
        )


def _max_age(headers: Any, default: float) -> float:
    for part in str(headers.get("Cache-Control", "")).split(","):
        name, _, value = part.strip().partition("=")
        if name == "max-age" and value.isdigit():
            return float(value)
    return default
