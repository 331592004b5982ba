"""Webhooks out: signing, Meta's payload shapes, and delivery with retries.

Meta signs ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(body, app secret)>``;
Twilio signs ``X-Twilio-Signature: base64(HMAC-SHA1(auth token, URL + sorted
name+value pairs))``. Meta retries anything but 200 with decreasing frequency; the
sandbox retries with exponential backoff, bounded by ``max_attempts``, and records
every attempt. The HTTP client is a seam (:class:`Transport`), so this module needs
no HTTP library.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import itertools
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

import orjson

DeliveryState = Literal["pending", "delivered", "failed", "dropped"]


class Transport(Protocol):
    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        """POST and return the HTTP status; raise on network errors and timeouts."""


def meta_signature(app_secret: str, body: bytes) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, no Python HMAC object (the same digest)
    return f"sha256={hmac.digest(app_secret.encode(), body, 'sha256').hex()}"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """What ``twilio.request_validator.RequestValidator.compute_signature`` computes."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.digest(auth_token.encode(), payload.encode(), "sha1")).decode()


def meta_envelope(waba_id: str, field_name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": field_name}]}],
    }


def messages_value(
    *, display_phone_number: str, phone_number_id: str, **content: Any
) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": display_phone_number,
            "phone_number_id": phone_number_id,
        },
        **content,
    }


@dataclass
class Attempt:
    at: float
    status: int | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "status": self.status, "error": self.error}


@dataclass
class Delivery:
    id: int
    kind: str
    key: str
    url: str
    body: bytes
    headers: dict[str, str]
    payload: Any
    state: DeliveryState = "pending"
    attempts: list[Attempt] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "key": self.key,
            "url": self.url,
            "payload": self.payload,
            "state": self.state,
            "attempts": [a.as_dict() for a in self.attempts],
        }


Spawn = Callable[[Coroutine[Any, Any, None]], None]


class WebhookDispatcher:
    """Posts webhooks; the first attempt inline, retries in the background."""

    def __init__(
        self,
        transport: Transport,
        spawn: Spawn,
        *,
        timeout_s: float,
        max_attempts: int,
        retry_base_s: float,
        retry_max_s: float,
        keep: int = 10_000,
    ) -> None:
        self._transport = transport
        self._spawn = spawn
        self.timeout_s = timeout_s
        self.max_attempts = max(1, max_attempts)
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self._ids = itertools.count(1)
        self._keep = keep
        self.deliveries: dict[int, Delivery] = {}

    def clear(self) -> None:
        self.deliveries.clear()

    def _record(self, delivery: Delivery) -> None:
        self.deliveries[delivery.id] = delivery
        if len(self.deliveries) > self._keep:
            oldest = next(iter(self.deliveries))
            del self.deliveries[oldest]

    def meta(self, *, kind: str, key: str, url: str, app_secret: str, payload: Any) -> Delivery:
        body = orjson.dumps(payload)  # compact UTF-8, as Meta sends it
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": meta_signature(app_secret, body),
        }
        return Delivery(next(self._ids), kind, key, url, body, headers, payload)

    def twilio(
        self, *, kind: str, key: str, url: str, auth_token: str, params: dict[str, str]
    ) -> Delivery:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": twilio_signature(auth_token, url, params),
        }
        body = urlencode(params).encode()
        return Delivery(next(self._ids), kind, key, url, body, headers, params)

    def drop(self, delivery: Delivery) -> None:
        delivery.state = "dropped"
        self._record(delivery)

    async def send(self, delivery: Delivery) -> bool:
        """First attempt now; on failure, retries are scheduled. True if delivered now."""
        self._record(delivery)
        if await self._attempt(delivery):
            return True
        if len(delivery.attempts) < self.max_attempts:
            self._spawn(self._retry(delivery))
        else:
            delivery.state = "failed"
        return False

    async def _attempt(self, delivery: Delivery) -> bool:
        at = time.time()
        try:
            status = await self._transport.post(
                delivery.url, delivery.body, delivery.headers, self.timeout_s
            )
        except Exception as exc:  # noqa: BLE001 - any network failure is a failed attempt
            delivery.attempts.append(Attempt(at, None, f"{type(exc).__name__}: {exc}"))
            return False
        delivery.attempts.append(Attempt(at, status))
        if status == 200:
            delivery.state = "delivered"
            return True
        return False

    async def _retry(self, delivery: Delivery) -> None:
        while len(delivery.attempts) < self.max_attempts:
            n = len(delivery.attempts)
            await asyncio.sleep(min(self.retry_max_s, self.retry_base_s * 2 ** (n - 1)))
            if await self._attempt(delivery):
                return
        delivery.state = "failed"
