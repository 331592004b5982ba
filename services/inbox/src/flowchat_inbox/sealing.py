"""Customers' data encrypted at rest in the inbox (issue 28), pure (no I/O).

What the inbox stores of a customer, and how:

- ids (phone number, BSUID; a thread's customer key, an alias): the keyed digest
  (:class:`~flowchat_platform.privacy.BlindIndex`, per tenant) where the id used to be,
  so lookups, the unique keys and joins work on digests; a Fernet token beside it where
  the id must be read back (``threads.*_enc``, ``aliases.customer_key_enc``);
- the customer's name, a thread's preview: a Fernet token only;
- a message's searchable text and whole content (text, captions, interactive titles,
  contacts' names, …): one Fernet token of ``[body, content]`` (``messages.sealed``);
- search: a blind token per word of the text (:meth:`BlindIndex.search_tokens`, under the
  privacy key and the tenant) in ``messages.search_tokens`` (``bigint[]``, GIN index).

Rows stored before (``sealed`` / ``*_enc`` NULL) are read as they are until the
service's background pass (:mod:`.seal_pass`) seals them.
"""

from __future__ import annotations

from typing import Any

import orjson

from flowchat_platform.privacy import IdentitySealer


class InboxSealer:
    """The inbox's encryption: an :class:`IdentitySealer` (Fernet keyring + blind index)."""

    def __init__(self, identities: IdentitySealer) -> None:
        self.identities = identities
        self.box = identities.box
        self.index = identities.index

    @property
    def rotating(self) -> bool:
        """An old key is still configured: the background pass re-encrypts every token."""
        return self.box.key_count > 1

    def digest(self, tenant_id: str, customer_id: str) -> str:
        return self.index.digest(tenant_id, customer_id)

    def seal_id(self, tenant_id: str, customer_id: str | None) -> tuple[str | None, bytes | None]:
        """``(digest, token)`` of an id; ``(None, None)`` for none."""
        return self.identities.seal(tenant_id, customer_id)

    def encrypt(self, text: str | None) -> bytes | None:
        return self.box.encrypt(text)

    def open(self, token: bytes | None, stored: str | None) -> str | None:
        """The clear value: decrypted from ``token``, else ``stored`` (a row not sealed yet)."""
        return self.identities.open(token, stored)

    def seal_message(self, body: str | None, content: dict[str, Any]) -> bytes:
        token = self.box.encrypt(orjson.dumps([body, content]).decode())
        assert token is not None
        return token

    def open_message(
        self, token: bytes | None, body: str | None, content: Any
    ) -> tuple[str | None, dict[str, Any]]:
        """A message's ``(body, content)``: from its token, else the columns in clear."""
        if token is None:
            return body, (orjson.loads(content) if isinstance(content, str) else content or {})
        opened = self.box.decrypt(bytes(token))
        assert opened is not None
        clear_body, clear_content = orjson.loads(opened)
        return clear_body, clear_content

    def search_tokens(self, tenant_id: str, text: str | None) -> list[int]:
        return self.index.search_tokens(tenant_id, text)

    def rotate(self, token: bytes | None) -> bytes | None:
        return self.box.rotate(token)
