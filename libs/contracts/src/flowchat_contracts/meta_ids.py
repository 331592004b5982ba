"""The Cloud-API-shaped id of a FlowChat message (the gateway's compatible endpoint).

Meta answers a send with the message's WAMID at once; FlowChat queues the message and
learns the provider's id only later (the sender, asynchronously). So the gateway's
Cloud-API-compatible endpoint (``POST /{version}/{phone_number_id}/messages``) answers
with an id derived from FlowChat's ``message_id`` instead, and everything that speaks
Meta's shape to a tenant (the relay's ``meta``-format status webhooks) names the message
by the same id::

    wamid_of(message_id)  = "wamid." + base64url("FLOWCHAT:" + message_id), no padding
    message_id_of(wamid)  = message_id   (None for a provider's own WAMID)

Pure and reversible: no store is needed to map one to the other, and a provider's real
WAMID never decodes as one of FlowChat's (it does not start with the marker).
"""

from __future__ import annotations

import base64
import binascii

WAMID_PREFIX = "wamid."
_MARKER = b"FLOWCHAT:"


def wamid_of(message_id: str) -> str:
    """The Cloud-API-shaped id of FlowChat's message ``message_id``."""
    raw = base64.urlsafe_b64encode(_MARKER + message_id.encode()).decode().rstrip("=")
    return WAMID_PREFIX + raw


def message_id_of(wamid: str) -> str | None:
    """FlowChat's message id behind a :func:`wamid_of` id; None for any other id."""
    if not wamid.startswith(WAMID_PREFIX):
        return None
    encoded = wamid[len(WAMID_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_MARKER) or len(raw) == len(_MARKER):
        return None
    try:
        return raw[len(_MARKER) :].decode()
    except UnicodeDecodeError:
        return None


__all__ = ["WAMID_PREFIX", "message_id_of", "wamid_of"]
