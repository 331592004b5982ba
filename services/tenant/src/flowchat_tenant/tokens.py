"""Secrets that prove who a user is (pure: no I/O but the CPU work of argon2 in a thread).

- **Passwords**: argon2id (``argon2-cffi``), cost from the settings (default t=2,
  m=19 MiB, p=1: the OWASP minimum), hashed and checked in a worker thread so a login
  never blocks the event loop.
- **Opaque tokens** (sessions ``fcs_…``, invitations and resets ``fcu_…``): 32 random
  bytes; only their SHA-256 digest is stored, so a database dump opens nothing.
- **Access tokens** ``fca.<payload>.<signature>``: the payload is base64url JSON
  ``{"sub", "tid", "role", "sid", "ver", "exp"}`` and the signature HMAC-SHA256 over
  ``fca.<payload>`` with the service's token key (stdlib ``hmac``; no JWT library, no
  algorithm field to confuse). A valid signature is not enough: every check also reads
  the session and the user (live session, active user, same token version), so a
  deleted or disabled user's tokens stop working at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type

ACCESS_PREFIX = "fca."
SESSION_PREFIX = "fcs_"
ONE_TIME_PREFIX = "fcu_"


def opaque_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    tenant_id: str | None
    role: str
    session_id: str
    token_version: int
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AccessTokens:
    """Signs and checks access tokens with one key (derived, see the settings)."""

    def __init__(self, key: bytes, *, ttl_s: int) -> None:
        if len(key) < 32:
            raise ValueError("the access-token key must be at least 32 bytes")
        self._key = key
        self.ttl_s = ttl_s

    def _sign(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())

    def issue(
        self, *, user_id: str, tenant_id: str | None, role: str, session_id: str, version: int
    ) -> tuple[str, float]:
        expires_at = time.time() + self.ttl_s
        payload: dict[str, Any] = {
            "sub": user_id,
            "tid": tenant_id,
            "role": role,
            "sid": session_id,
            "ver": version,
            "exp": int(expires_at),
        }
        signed = ACCESS_PREFIX + _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{signed}.{self._sign(signed)}", float(payload["exp"])

    def check(self, token: str) -> AccessClaims | None:
        """The claims of a well-signed, unexpired token; None for anything else."""
        if not token.startswith(ACCESS_PREFIX) or len(token) > 4096:
            return None
        signed, sep, signature = token.rpartition(".")
        if not sep or not hmac.compare_digest(signature.encode(), self._sign(signed).encode()):
            return None
        try:
            payload = json.loads(_unb64(signed[len(ACCESS_PREFIX) :]))
            claims = AccessClaims(
                user_id=str(payload["sub"]),
                tenant_id=None if payload["tid"] is None else str(payload["tid"]),
                role=str(payload["role"]),
                session_id=str(payload["sid"]),
                token_version=int(payload["ver"]),
                expires_at=float(payload["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if claims.expires_at <= time.time():
            return None
        return claims


class Passwords:
    """argon2id hashing and checking, in a worker thread."""

    def __init__(self, *, time_cost: int = 2, memory_kib: int = 19_456, parallelism: int = 1):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        #: checked against when the e-mail is unknown, so both answers take as long
        self._dummy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored_hash or self._dummy, password) and (
                    stored_hash is not None
                )
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)
