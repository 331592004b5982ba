"""The endpoints' HTTP adapter (aiohttp): one POST per delivery, bounded.

Connect and total timeouts; redirects never followed (a 3xx is a failed attempt);
the answer read to ``response_limit`` bytes; no DNS cache, and every address a host
resolves to checked by :func:`flowchat_relay.safety.check_addresses` at connect time
(the addresses checked are the addresses connected to: no DNS-rebinding window).
No connection limit across endpoints: each endpoint's own cap is the dispatcher's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from flowchat_relay.errors import UnsafeTarget
from flowchat_relay.ports import PostResult
from flowchat_relay.safety import Resolve, address_refusal, check_addresses

UNSAFE = "unsafe target"
#: Longest ``Retry-After`` honoured as given (longer ones are cut to it).
MAX_RETRY_AFTER_S = 24 * 3600.0


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UnsafeAddress(OSError):
    """The host resolved to an address the relay never calls (aiohttp wraps OSErrors)."""


class SafeResolver(AbstractResolver):
    def __init__(self, resolve: Resolve, *, allow_private: bool) -> None:
        self._resolve = resolve
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._resolve(host, port)
        if not self.allow_private:
            try:
                check_addresses(addresses)
            except UnsafeTarget as exc:
                raise UnsafeAddress(exc.reason) from None
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for a in addresses
        ]

    async def close(self) -> None:
        return None


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date); None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return min(max((at - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)


class HttpPoster:
    def __init__(
        self,
        *,
        resolve: Resolve,
        allow_private: bool,
        connect_timeout_s: float,
        total_timeout_s: float,
        response_limit: int,
    ) -> None:
        self.allow_private = allow_private
        self.response_limit = response_limit
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout_s, sock_connect=connect_timeout_s, connect=connect_timeout_s
        )
        self._resolver = SafeResolver(resolve, allow_private=allow_private)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=self._resolver, use_dns_cache=False, limit=0, limit_per_host=0
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _literal_refusal(self, url: str) -> str | None:
        if self.allow_private:
            return None
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        return address_refusal(host)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> PostResult:
        assert self._session is not None, "start() first"
        started = time.perf_counter()

        def failed(error: str) -> PostResult:
            return PostResult(status=None, latency_s=time.perf_counter() - started, error=error)

        if self._literal_refusal(url) is not None:
            return failed(UNSAFE)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                raw = await response.content.read(self.response_limit)
                status = response.status
                after = retry_after_s(response.headers.get("Retry-After"), datetime.now(UTC))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, UnsafeAddress):
                return failed(UNSAFE)
            return failed("connection failed")
        except TimeoutError:
            return failed("timeout")
        except aiohttp.ClientError as exc:
            return failed(type(exc).__name__)
        text: Any = raw.decode("utf-8", errors="replace")
        return PostResult(
            status=status,
            latency_s=time.perf_counter() - started,
            response=text,
            retry_after_s=after,
        )
