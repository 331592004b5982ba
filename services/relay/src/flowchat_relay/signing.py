"""Secrets and signatures: Standard Webhooks (``flowchat`` format) and Meta's
``X-Hub-Signature-256`` (``meta`` format). No I/O.

Standard Webhooks (https://www.standardwebhooks.com): the secret is ``whsec_`` +
base64 of random bytes; the signed content is ``<webhook-id>.<webhook-timestamp>.<body>``,
HMAC-SHA256 keyed with the base64-decoded secret; ``webhook-signature`` is
``v1,<base64 signature>``, several space-separated while two secrets sign (a rotation's
overlap).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the standard's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@functools.lru_cache(maxsize=4096)
def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(
    secrets_: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers, one signature per secret that signs now."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(s, msg_id, timestamp, body) for s in secrets_
        ),
    }


def meta_headers(secret: str, body: bytes) -> dict[str, str]:
    """Meta's ``X-Hub-Signature-256``: hex HMAC-SHA256 of the body, the secret (as a
    Meta app secret, the whole ``whsec_…`` string) as the key."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}
