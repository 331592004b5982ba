"""The ports of the gateway's core, and the plain values that cross them. Pure code.

The services (:mod:`~flowchat_gateway.service`, :mod:`~flowchat_gateway.send_service`,
:mod:`~flowchat_gateway.query_service`) depend on these Protocols only; ``app.py``
wires the adapters that implement them::

    port               adapter (its library)                       used by
    Publisher          broker.AmqpPublisher (aio-pika)             webhooks, send
    Accounts           flowchat_platform.tenant_client (aiohttp)   webhooks, send
    DedupeStore        store.GatewayStore (redis)                  webhooks
    SendStore          store.GatewayStore (redis)                  send
    MessageLookup      state_client.StateClient (aiohttp)          query
    Graph              graph_client.GraphClient (aiohttp)          cloud API (read, templates)
    MediaUploads       sender_client.SenderMedia (aiohttp)         cloud API (media)

Adapters raise :class:`~flowchat_platform.errors.StoreUnavailable` (Redis) and
:class:`~flowchat_platform.errors.UpstreamError` (tenant service, state-manager); the
services decide what each means (degrade, or refuse with ``Unavailable``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel

from flowchat_platform.accounts import AccountCredentials

# --------------------------------------------------------------------- values


@dataclass(frozen=True)
class Outgoing:
    """One message to publish with a confirm."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    correlation_id: str | None = None
    message_type: str | None = None
    #: Set for parked pieces: the reason, carried in the message headers.
    park_reason: str | None = None
    #: False for fan-out events that may have no subscriber yet.
    mandatory: bool = True
    #: AMQP headers (an inbound message's conversation partition).
    headers: Mapping[str, Any] | None = None


def encode(model: BaseModel) -> bytes:
    """A contract model as the JSON body of a message (``None`` fields left out)."""
    return model.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True)
class ApiKey:
    """The tenant API key a send or query request came with (authenticated at the edge)."""

    tenant_id: str
    key_id: str


@dataclass(frozen=True)
class IdempotencyRecord:
    """What the send API remembers of an ``Idempotency-Key``: the hash of the request's
    canonical body and the message id it was given."""

    body_hash: str
    message_id: str
    #: ``unconfirmed``: the publish timed out or failed; a retry reuses ``message_id``.
    state: Literal["pending", "done", "unconfirmed"]

    def encode(self) -> bytes:
        return orjson.dumps(
            {"body_hash": self.body_hash, "message_id": self.message_id, "state": self.state}
        )

    @classmethod
    def decode(cls, raw: bytes) -> IdempotencyRecord:
        data = orjson.loads(raw)
        return cls(str(data["body_hash"]), str(data["message_id"]), data["state"])


# --------------------------------------------------------------------- ports


class Publisher(Protocol):
    async def publish_all(self, items: Sequence[Outgoing]) -> list[BaseException | None]:
        """Publish concurrently; per item ``None`` once confirmed, else the error."""


class Accounts(Protocol):
    """The tenant service's accounts (cached); ``UpstreamError`` when it cannot answer."""

    async def account(self, account_id: str) -> AccountCredentials | None: ...

    async def account_by_phone_number(self, phone_number_id: str) -> AccountCredentials | None: ...

    async def accounts_by_waba(self, waba_id: str) -> list[AccountCredentials]: ...

    async def verify_token_known(self, token: str) -> bool: ...


@dataclass(frozen=True)
class Claimed:
    """One webhook's dedupe claim: the keys marked done before (duplicates), the keys
    another request holds (in flight), and the token the rest were claimed under."""

    token: str
    done: frozenset[str]
    in_flight: frozenset[str]


class DedupeStore(Protocol):
    """Webhook dedupe claims and marks and customer-service windows; ``StoreUnavailable``
    on failure."""

    def dedupe_key(self, account_id: str, event_id: str) -> str:
        """The mark of one event (events of a request are deduplicated by it, too)."""

    async def claim(
        self, keys: list[str], ttl_s: int, windows: Iterable[tuple[str, str, str, int]] = ()
    ) -> Claimed:
        """Claim ``keys`` not seen yet for ``ttl_s`` and move the customers' windows
        (``(tenant_id, account_id, customer_wa_id, unix_seconds)``) forward, in one round
        trip."""

    def mark_later(
        self, keys: list[str], ttl_s: int, on_error: Callable[[BaseException], None]
    ) -> None:
        """Mark claimed ``keys`` done for ``ttl_s`` without waiting (``on_error`` when
        that fails: the claims expire)."""

    async def release(self, keys: list[str], token: str) -> None:
        """Drop the claims of ``keys`` still held under ``token``."""


class SendStore(Protocol):
    """Send API idempotency records and per-key rate limits; ``StoreUnavailable`` on failure."""

    async def rate_limit(self, key_id: str, per_minute: int) -> float | None:
        """Count one request; seconds to wait when over ``per_minute``, else None."""

    async def idempotency_get(self, tenant_id: str, key: str) -> IdempotencyRecord | None: ...

    async def idempotency_claim(
        self, tenant_id: str, key: str, record: IdempotencyRecord, ttl_s: int
    ) -> bool:
        """Store ``record`` unless the key is taken; True when this call took it."""

    async def idempotency_complete(
        self, tenant_id: str, key: str, record: IdempotencyRecord, ttl_s: int
    ) -> None: ...


class MessageLookup(Protocol):
    async def message(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """The tenant's message record, or None; raises ``UpstreamError`` when unreachable."""


class CloudApiSends(Protocol):
    """Where the compatible endpoint records the messages it queued, for the relay's
    ``meta``-format statuses (``flowchat_platform.meta_echo.MetaEcho``)."""

    async def remember(
        self, tenant_id: str, message_id: str, callback_data: str | None
    ) -> None: ...


@dataclass(frozen=True)
class GraphAnswer:
    """Meta's Graph API answer, as received: its HTTP status and JSON body."""

    status: int
    body: dict[str, Any]


class Graph(Protocol):
    """Meta's Graph API, called with an account's own access token; ``UpstreamError``
    when Meta cannot be reached (an error answer is a :class:`GraphAnswer`)."""

    async def mark_read(
        self, account: AccountCredentials, version: str, body: dict[str, Any]
    ) -> GraphAnswer: ...

    async def templates(
        self, account: AccountCredentials, version: str, params: list[tuple[str, str]]
    ) -> GraphAnswer: ...


@dataclass(frozen=True)
class Upload:
    """One file for the provider's media store."""

    content: bytes
    mime_type: str
    filename: str | None = None


class MediaUploads(Protocol):
    """The sender's media API (``POST /internal/v1/media``): the provider's media id of
    an upload; :class:`MediaRefused` when refused, ``UpstreamError`` when unreachable."""

    async def upload(self, tenant_id: str, account_id: str, upload: Upload) -> str: ...


class MediaRefused(Exception):
    """The sender refused an upload: its HTTP status and FlowChat error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class WindowStore(Protocol):
    """The customer-service windows the gateway records; ``StoreUnavailable`` on failure."""

    async def customer_window(
        self, tenant_id: str, account_id: str, customer_id: str
    ) -> int | None: ...
