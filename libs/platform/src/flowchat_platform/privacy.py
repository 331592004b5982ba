"""Customers' privacy, shared by every service: a keyed blind index of customers' ids.

:class:`BlindIndex` is an HMAC-SHA256 under the platform's privacy key
(``FLOWCHAT_PRIVACY_KEY``), per tenant: the same id of the same tenant always gives the
same digest, so a digest can be looked up, be unique and be joined on, while nobody
without the key can tell whose it is (a phone number has too little entropy for a bare
hash: all of a country's numbers hash in minutes). An erased customer's opt-out is kept
as such a digest (the *suppression entry*), and their orders name them by
:meth:`BlindIndex.pseudonym`.

Pure (no I/O): the consumer of erasure requests is :mod:`flowchat_platform.erasure`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from pydantic import SecretStr

from flowchat_platform.crypto import SecretBox, secret_box
from flowchat_platform.errors import ConfigurationError

__all__ = [
    "PSEUDONYM_PREFIX",
    "BlindIndex",
    "IdentitySealer",
    "blind_index",
    "identity_box",
    "is_sealed",
    "normalise_id",
    "privacy_index",
    "search_words",
]

#: How a pseudonymised customer id begins (``erased:<24 hex>``).
PSEUDONYM_PREFIX = "erased:"
_MIN_KEY_BYTES = 16
_WORD = re.compile(r"\w+")


def search_words(text: str | None) -> list[str]:
    """A text's words as a search matches them: lower case, split on anything not a
    letter or digit (``Order #ORD-123`` → ``order``, ``ord``, ``123``), each once."""
    if not text:
        return []
    return list(dict.fromkeys(_WORD.findall(text.lower())))


def normalise_id(customer_id: str) -> str:
    """One form per id: a phone number in digits (no ``+``, spaces or dashes), a BSUID as given."""
    value = customer_id.strip()
    if "." in value:  # a BSUID (``US.1349…``) or a parent BSUID
        return value
    return "".join(ch for ch in value if ch.isdigit())


class BlindIndex:
    """HMAC-SHA256 digests of a tenant's customers' ids under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"the privacy key must be at least {_MIN_KEY_BYTES} bytes")
        self._key = key

    def digest(self, tenant_id: str, customer_id: str) -> str:
        """64 hex characters; the same for ``+447700900123`` and ``447700900123``."""
        message = f"{tenant_id}\x00{normalise_id(customer_id)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def pseudonym(self, tenant_id: str, customer_id: str) -> str:
        """What a record kept for the tenant's legal duty names the customer by once
        erased: stable (every order of the customer keeps the same one), not reversible."""
        return PSEUDONYM_PREFIX + self.digest(tenant_id, customer_id)[:24]

    def word_token(self, tenant_id: str, word: str) -> int:
        """A word of a tenant's text as a blind search token: the first 8 bytes of
        HMAC-SHA256(key, ``search\\0<tenant>\\0<word>``), a signed big-endian bigint
        (what SQL gets from ``substring(hmac(…) for 8)::bit(64)::bigint``)."""
        message = f"search\x00{tenant_id}\x00{word}".encode()
        raw = hmac.new(self._key, message, hashlib.sha256).digest()[:8]
        return int.from_bytes(raw, "big", signed=True)

    def search_tokens(self, tenant_id: str, text: str | None) -> list[int]:
        """The tokens of every word of ``text`` (:func:`search_words`), each once."""
        return [self.word_token(tenant_id, w) for w in search_words(text)]


def privacy_index(privacy_key: SecretStr | None, service_token: SecretStr | None) -> BlindIndex:
    """The platform's index: under ``FLOWCHAT_PRIVACY_KEY``, or, where it is not set, a
    key derived from the service token every service shares (so the conversation
    service and the sender's guard agree). Set the key of its own in production: the
    token is rotated more often, and rotating the key forgets every suppression entry."""
    if privacy_key is not None:
        return blind_index(privacy_key, "FLOWCHAT_PRIVACY_KEY")
    token = service_token.get_secret_value() if service_token is not None else ""
    derived = hmac.new(token.encode(), b"flowchat-privacy-index", hashlib.sha256).digest()
    return BlindIndex(derived)


def blind_index(raw: SecretStr | None, variable: str) -> BlindIndex:
    """The index under the setting ``variable`` (:class:`ConfigurationError` naming it
    when missing or short; the key is never echoed)."""
    value = raw.get_secret_value() if raw is not None else ""
    try:
        return BlindIndex(value.encode())
    except ValueError as exc:
        raise ConfigurationError(f"{variable} is invalid: {exc}", variable=variable) from None


class IdentitySealer:
    """A customer's id as a service stores it when encrypted at rest: the keyed digest
    (:class:`BlindIndex`: lookups, uniqueness, joins) in the column the id used to be in,
    and a Fernet token (:class:`~flowchat_platform.crypto.SecretBox`) beside it to read it
    back. A row stored before encryption keeps the id in clear and no token: :meth:`open`
    falls back to it until the service's background pass seals it."""

    def __init__(self, box: SecretBox, index: BlindIndex) -> None:
        self.box = box
        self.index = index

    def digest(self, tenant_id: str, customer_id: str) -> str:
        return self.index.digest(tenant_id, customer_id)

    def seal(self, tenant_id: str, customer_id: str | None) -> tuple[str | None, bytes | None]:
        """``(digest, token)``; ``(None, None)`` for no id."""
        if customer_id is None:
            return None, None
        return self.index.digest(tenant_id, customer_id), self.box.encrypt(customer_id)

    def open(self, token: bytes | None, stored: str | None) -> str | None:
        """The id: decrypted from ``token``, else ``stored`` as it is (a row not sealed yet)."""
        if token is None:
            return stored
        return self.box.decrypt(bytes(token))


def is_sealed(stored: str | None) -> bool:
    """Whether a stored id column holds a digest (or a pseudonym), not an id in clear."""
    if stored is None:
        return False
    if stored.startswith(PSEUDONYM_PREFIX):
        return True
    return len(stored) == 64 and all(ch in "0123456789abcdef" for ch in stored)


def identity_box(
    keys: SecretStr | None, service_token: SecretStr | None, variable: str
) -> SecretBox:
    """The keyring customers' ids and message text are encrypted under: ``variable``'s
    Fernet keys (``new,old``: the first encrypts, all decrypt), or, where it is not set,
    one key derived from the service token (set keys of your own in production)."""
    if keys is not None and keys.get_secret_value().strip():
        return secret_box(keys, variable)
    token = service_token.get_secret_value() if service_token is not None else ""
    raw = hmac.new(token.encode(), b"flowchat-identity-encryption", hashlib.sha256).digest()
    return SecretBox([base64.urlsafe_b64encode(raw)])
