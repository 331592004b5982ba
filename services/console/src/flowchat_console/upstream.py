"""The other services' HTTP APIs, as the signed-in user.

:class:`ServiceClients` holds one pooled ``httpx.AsyncClient`` per service base URL
(created once, closed at shutdown). :class:`Upstream` is what a page gets (``deps.UpstreamDep``):
the clients bound to the user's access token, forwarded as ``Authorization: Bearer`` so
every service enforces the user's role itself. An error answer raises
:class:`~flowchat_console.errors.UpstreamError` with the service's own error code; a
service that does not answer raises it with 502/504 and ``upstream_unavailable``.

    up = Upstream(clients, token)
    page = await up.get("inbox", "/v1/conversations", {"view": "waiting"})
    await up.post("inbox", f"/v1/conversations/{cid}/claim")
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import httpx

from flowchat_console import metrics
from flowchat_console.errors import UpstreamError

Params = Mapping[str, str | int | float | bool | None] | None

#: The upstream calls of the request being served (service, seconds), for its
#: ``Server-Timing`` header (:mod:`flowchat_console.timing`); None outside a request.
CALLS: ContextVar[list[tuple[str, float]] | None] = ContextVar(
    "console_upstream_calls", default=None
)


def _observe(service: str, outcome: str, seconds: float) -> None:
    metrics.UPSTREAM_SECONDS.labels(service, outcome).observe(seconds)
    calls = CALLS.get()
    if calls is not None:
        calls.append((service, seconds))


class ServiceClients:
    """One HTTP client per upstream service (``settings.service_urls()``)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        timeout_s: float = 10.0,
        connections: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self.urls = dict(urls)
        self._clients = {
            name: httpx.AsyncClient(
                base_url=url,
                timeout=httpx.Timeout(timeout_s),
                limits=limits,
                transport=transport,
                headers={"User-Agent": "flowchat-console"},
            )
            for name, url in urls.items()
        }

    def client(self, service: str) -> httpx.AsyncClient:
        try:
            return self._clients[service]
        except KeyError:
            raise UpstreamError(service, 500, "unknown_service", "no such service") from None

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _drop_none(params: Params) -> dict[str, str | int | float | bool] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def error_of(service: str, response: httpx.Response) -> UpstreamError:
    """The service's error (FlowChat's error body ``{"error": {code, message, details}}``)."""
    code, message, details = f"http_{response.status_code}", response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        details = err.get("details")
    elif isinstance(body, dict) and "detail" in body:
        message = str(body["detail"])
    return UpstreamError(service, response.status_code, code, message, details)


class Upstream:
    """The services' APIs as one user (``token``: the user's access token; None: anonymous,
    for sign-in)."""

    def __init__(
        self,
        clients: ServiceClients,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.clients = clients
        self.token = token
        self.headers = dict(headers or {})

    def with_headers(self, **headers: str) -> Upstream:
        """The same user with extra headers on every call (an operator's ``X-Tenant-ID``)."""
        return Upstream(self.clients, self.token, {**self.headers, **headers})

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        out = dict(self.headers)
        if self.token:
            out["Authorization"] = f"Bearer {self.token}"
        if extra:
            out.update(extra)
        return out

    async def response(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The raw answer (any status), e.g. a PDF; raises only when the service does not
        answer."""
        client = self.clients.client(service)
        request = client.build_request(
            method,
            path,
            params=_drop_none(params),
            json=json,
            content=content,
            headers=self._headers(headers),
        )
        return await self._send(service, client, request, stream=False)

    async def open(self, service: str, path: str, params: Params = None) -> httpx.Response:
        """A GET whose body is not read yet (any status): stream it with
        ``aiter_bytes()``, then ``aclose()`` it. Raises only when the service does not
        answer."""
        client = self.clients.client(service)
        request = client.build_request(
            "GET", path, params=_drop_none(params), headers=self._headers(None)
        )
        return await self._send(service, client, request, stream=True)

    @staticmethod
    async def _send(
        service: str, client: httpx.AsyncClient, request: httpx.Request, *, stream: bool
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await client.send(request, stream=stream)
        except httpx.TimeoutException as exc:
            _observe(service, "unavailable", time.perf_counter() - started)
            raise UpstreamError(
                service, 504, "upstream_unavailable", f"{service} did not answer in time"
            ) from exc
        except httpx.HTTPError as exc:
            _observe(service, "unavailable", time.perf_counter() - started)
            raise UpstreamError(
                service, 502, "upstream_unavailable", f"{service} is not reachable"
            ) from exc
        outcome = "ok" if response.status_code < 400 else "error"
        _observe(service, outcome, time.perf_counter() - started)
        return response

    async def request(
        self,
        method: str,
        service: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The answer's JSON (None for an empty body); raises :class:`UpstreamError` on
        an error status."""
        response = await self.response(
            method, service, path, params=params, json=json, headers=headers
        )
        if response.status_code >= 400:
            raise error_of(service, response)
        if not response.content:
            return None
        return response.json()

    async def get(self, service: str, path: str, params: Params = None, **kw: Any) -> Any:
        return await self.request("GET", service, path, params=params, **kw)

    async def post(self, service: str, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("POST", service, path, json=json, **kw)

    async def put(self, service: str, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("PUT", service, path, json=json, **kw)

    async def patch(self, service: str, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("PATCH", service, path, json=json, **kw)

    async def delete(self, service: str, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", service, path, **kw)

    @asynccontextmanager
    async def stream(
        self, service: str, path: str, params: Params = None, *, read_timeout_s: float = 60.0
    ) -> AsyncIterator[httpx.Response]:
        """A streamed GET (server-sent events): the open response; error statuses raise."""
        client = self.clients.client(service)
        timeout = httpx.Timeout(client.timeout.connect, read=read_timeout_s)
        try:
            async with client.stream(
                "GET",
                path,
                params=_drop_none(params),
                headers=self._headers({"Accept": "text/event-stream"}),
                timeout=timeout,
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_of(service, response)
                yield response
        except httpx.HTTPError as exc:
            raise UpstreamError(
                service, 502, "upstream_unavailable", f"{service} stream failed"
            ) from exc
