"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256, authenticated) under a keyring.

A service's ``…_ENCRYPTION_KEYS="new,old"`` (the tenant's credentials, the relay's
endpoint secrets): the first key encrypts, every key decrypts, and
:meth:`SecretBox.rotate` re-encrypts a ciphertext under the first key.
:func:`secret_box` builds one from a setting, refusing it with the variable's name.

:func:`digest` is a SHA-256 for lookups of high-entropy values (API keys, verify tokens).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from flowchat_platform.errors import ConfigurationError

__all__ = ["InvalidToken", "SecretBox", "digest", "digests_equal", "secret_box"]


class SecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("no key given")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self.key_count = len(keys)
        #: A fingerprint of the first (newest) key, not reversible: what a record of "every
        #: token re-encrypted under the newest key" names the key by.
        self.key_id = hashlib.sha256(b"flowchat-key-id\x00" + keys[0]).hexdigest()[:16]

    @classmethod
    def from_keys(cls, raw: str) -> SecretBox:
        """Parse comma-separated url-safe base64 Fernet keys (raises ValueError, no key echoed)."""
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts:
            raise ValueError("no key given (comma-separated Fernet keys)")
        keys: list[bytes] = []
        for index, part in enumerate(parts, start=1):
            try:
                Fernet(part.encode())
            except (ValueError, TypeError):
                raise ValueError(
                    f"key #{index} is not a Fernet key (32 url-safe base64-encoded bytes)"
                ) from None
            keys.append(part.encode())
        return cls(keys)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def encrypt(self, plaintext: str | None) -> bytes | None:
        if plaintext is None:
            return None
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes | None) -> str | None:
        """Decrypt with whichever key matches; raises :class:`InvalidToken` when none does."""
        if ciphertext is None:
            return None
        return self._fernet.decrypt(bytes(ciphertext)).decode()

    def encrypt_bytes(self, plaintext: bytes) -> bytes:
        """:meth:`encrypt` of bytes kept as they are (a webhook body signed as stored)."""
        return self._fernet.encrypt(plaintext)

    def decrypt_bytes(self, ciphertext: bytes) -> bytes:
        """The bytes :meth:`encrypt_bytes` was given (:class:`InvalidToken` as :meth:`decrypt`)."""
        return self._fernet.decrypt(bytes(ciphertext))

    def rotate(self, ciphertext: bytes | None) -> bytes | None:
        """The same plaintext encrypted under the first (newest) key."""
        if ciphertext is None:
            return None
        return self._fernet.rotate(bytes(ciphertext))


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def secret_box(raw: SecretStr | None, variable: str) -> SecretBox:
    """The keyring of the setting ``variable`` (:class:`ConfigurationError` naming it when
    it is missing or not Fernet keys; no key is ever echoed)."""
    try:
        return SecretBox.from_keys(raw.get_secret_value() if raw else "")
    except ValueError as exc:
        raise ConfigurationError(f"{variable} is invalid: {exc}", variable=variable) from None
