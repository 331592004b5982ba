"""Secrets at rest (:mod:`flowchat_platform.crypto`, shared with the relay).

``FLOWCHAT_TENANT_ENCRYPTION_KEYS="new,old"``: the first key encrypts, every key
decrypts, and :meth:`SecretBox.rotate` re-encrypts a ciphertext under the first key.
A key is generated with ``python -m flowchat_tenant generate-key``.

Verify tokens are also stored as a SHA-256 digest so the gateway's "is this a
verify token we issued?" question is one indexed lookup; API keys are stored only
as a digest (they are 256-bit random, so a fast hash is enough).
"""

from __future__ import annotations

from flowchat_platform.crypto import InvalidToken, SecretBox, digest, digests_equal

__all__ = ["InvalidToken", "SecretBox", "digest", "digests_equal"]
