"""Which endpoint URLs the relay calls (SSRF safety), without I/O.

An endpoint's URL must be ``https`` (``http`` only in development or where private
targets are allowed),
carry no credentials (userinfo) and have a host. Every address its host resolves to
must be public: loopback, private, link-local (cloud metadata at 169.254.169.254
included), multicast, reserved, unspecified, shared (100.64/10) and the IPv6 forms of
these (mapped, NAT64 and 6to4 addresses are judged by the IPv4 address inside) are
refused. The check runs at registration and again on every delivery's own DNS
resolution (the HTTP adapter connects only to addresses that pass it), so a name that
resolves to a public address at registration and to 127.0.0.1 later (DNS
rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import SplitResult, urlsplit

from flowchat_relay.errors import InvalidEndpoint, UnsafeTarget

#: ``resolve(host, port)`` → every address the host resolves to.
Resolve = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_LENGTH = 2048
#: Hostnames refused by name whatever they resolve to (cloud metadata services).
BLOCKED_HOSTS = frozenset({"metadata.google.internal", "metadata", "localhost"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def address_refusal(address: str) -> str | None:
    """Why the relay never calls ``address`` (None: a public address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return address_refusal(str(inner))
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local (cloud metadata)", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("shared (carrier-grade NAT)", isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    )
    for reason, hit in checks:
        if hit:
            return f"{reason} address"
    return None


def check_addresses(addresses: Iterable[str]) -> list[str]:
    """The addresses, all public, or :class:`UnsafeTarget` naming the first that is not."""
    found = list(addresses)
    if not found:
        raise UnsafeTarget("the host does not resolve")
    for address in found:
        reason = address_refusal(address)
        if reason is not None:
            raise UnsafeTarget(f"the host resolves to a {reason}")
    return found


def parse_url(url: str, *, allow_http: bool) -> SplitResult:
    """The URL split, or :class:`InvalidEndpoint` (field ``url``) when its form is refused."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint(f"the URL is longer than {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidEndpoint(f"the URL is invalid: {exc}", field="url") from None
    allowed = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in allowed:
        raise InvalidEndpoint(f"the URL's scheme must be {' or '.join(allowed)}", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidEndpoint(
            "the URL carries credentials; FlowChat signs every delivery instead", field="url"
        )
    if not parts.hostname:
        raise InvalidEndpoint("the URL has no host", field="url")
    if port == 0:
        raise InvalidEndpoint("the URL's port is invalid", field="url")
    if parts.fragment:
        raise InvalidEndpoint("the URL has a fragment", field="url")
    return parts


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


async def check_url(
    url: str, resolve: Resolve, *, allow_private: bool, allow_http: bool = False
) -> None:
    """Refuse (:class:`InvalidEndpoint`, field ``url``) a URL the relay would not call."""
    parts = parse_url(url, allow_http=allow_http or allow_private)
    if allow_private:
        return
    host = (parts.hostname or "").rstrip(".").lower()
    if host in BLOCKED_HOSTS or host.endswith((".localhost", ".internal", ".local")):
        raise InvalidEndpoint("the URL's host is internal", field="url")
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            addresses = await resolve(host, default_port(parts))
        except OSError:
            raise InvalidEndpoint("the URL's host does not resolve", field="url") from None
    try:
        check_addresses(addresses)
    except UnsafeTarget as exc:
        raise InvalidEndpoint(f"the URL is unsafe: {exc.reason}", field="url") from None
