"""Webhook signatures, checked in constant time. Pure code.

- Meta: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>``.
- Twilio: ``X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + every POST parameter
  name and value, sorted by name))`` (twilio.com/docs/usage/webhooks/webhooks-security;
  the ``twilio`` package's ``RequestValidator`` is the reference the tests compare with).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

META_PREFIX = "sha256="


def meta_signature(secret: str, body: bytes) -> str:
    """The header value Meta sends for ``body`` signed with ``secret``."""
    return META_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def meta_signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not header or not secret:
        return False
    expected = meta_signature(secret, body)
    # Hex digits may come in either case; compare as bytes, in constant time.
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())


def twilio_signature(token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's signature of a form POST to ``url`` (names sorted, then values sorted)."""
    grouped: dict[str, set[str]] = {}
    for name, value in params:
        grouped.setdefault(name, set()).add(value)
    data = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def twilio_signature_valid(
    token: str, url: str, params: Iterable[tuple[str, str]], header: str | None
) -> bool:
    """True when ``header`` signs the request, with or without the URL's explicit port
    (Twilio is inconsistent about ports, so its own validator accepts both)."""
    if not header or not token:
        return False
    pairs = list(params)
    ok = False
    for candidate in _port_variants(url):
        expected = twilio_signature(token, candidate, pairs)
        # No short-circuit: every variant is compared, in constant time.
        ok = hmac.compare_digest(expected.encode(), header.strip().encode()) or ok
    return ok


def _port_variants(url: str) -> list[str]:
    """The URL without its port and with its port (the default one when absent)."""
    parts = urlsplit(url)
    if parts.port:
        without = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0])
        return [urlunsplit(without), url]
    port = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))]
