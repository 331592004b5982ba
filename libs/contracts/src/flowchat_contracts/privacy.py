"""Customers' privacy on the broker: "forget this customer" and each service's answer.

::

    conversation (POST …/erasures) ─▶ [flowchat.privacy] topic, key <tenant>.erasure_requested
                       ├─▶ (conversation.privacy)   quorum   contacts, sessions, orders …
                       ├─▶ (state-manager.privacy)  quorum   recipients pseudonymised
                       ├─▶ (sender.privacy)         quorum   windows, pair limits (Redis)
                       ├─▶ (inbox.privacy)          quorum   threads, history (the inbox's own)
                       └─▶ (relay.privacy)          quorum   events, deliveries (the relay's own)
    each of them ─────▶ [flowchat.privacy] key <tenant>.erasure_reported.<service>
                       └─▶ (conversation.privacy)   the report of the request

:class:`ErasureRequested` names every id the requester's customer is known by (phone
numbers as WhatsApp ids, digits only, and BSUIDs): the conversation service resolves the
one id it was given to all of the customer's linked ids before it publishes. Each
service acts on it idempotently (a second delivery finds nothing left and reports zero
rows) and answers with one :class:`ErasureReported` naming what it did, by kind of data
(``"messages_deleted": 12``). The queues have no TTL: a service down when the request
was made acts on it when it comes back.

The request itself carries the ids in clear (a service cannot find a customer it is not
told about); it lives on the broker only until the last service has acked it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowchat_contracts.models import new_id, utcnow

__all__ = [
    "ERASURE_REPORTED",
    "ERASURE_REQUESTED",
    "PRIVACY_SCHEMAS",
    "ErasureReported",
    "ErasureRequested",
]

#: The routing keys' words.
ERASURE_REQUESTED = "erasure_requested"
ERASURE_REPORTED = "erasure_reported"

_Id = Annotated[str, Field(min_length=1, max_length=128)]


class _Privacy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErasureRequested(_Privacy):
    """Forget one customer of one tenant, in every service."""

    kind: Literal["erasure_requested"] = "erasure_requested"
    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=new_id)
    #: The request's id: every report names it; the same request made twice has the same id.
    request_id: _Id
    tenant_id: _Id
    #: Every id of the customer: WhatsApp ids (digits, no ``+``) and BSUIDs.
    identities: list[_Id] = Field(min_length=1, max_length=32)
    requested_at: datetime = Field(default_factory=utcnow)
    #: Who asked (a user id, an API key id, ``operator``); never a customer's data.
    requested_by: str | None = Field(default=None, max_length=128)


class ErasureReported(_Privacy):
    """What one service did for one :class:`ErasureRequested`."""

    kind: Literal["erasure_reported"] = "erasure_reported"
    schema_version: Literal[1] = 1
    event_id: str = Field(default_factory=new_id)
    request_id: _Id
    tenant_id: _Id
    #: The reporting service (``inbox``, ``relay``, …).
    service: _Id
    #: Rows or keys acted on, by what was done (``messages_deleted``, ``orders_pseudonymised``).
    actions: dict[str, int] = Field(default_factory=dict)
    completed_at: datetime = Field(default_factory=utcnow)


PRIVACY_SCHEMAS: dict[str, type[BaseModel]] = {
    "erasure_requested.v1": ErasureRequested,
    "erasure_reported.v1": ErasureReported,
}
