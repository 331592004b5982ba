"""The sandbox's state, and what belongs to no one provider's API: its clock and tasks,
control (numbers, Twilio accounts, customers, faults, templates), customers writing in,
fault injection, the ledger, webhook delivery, and the queries.

No HTTP framework here: routes hand in parsed bodies and headers, and get back dicts or
:mod:`flowchat_sandbox.errors` exceptions. The providers' APIs are played over this state
by :class:`~flowchat_sandbox.cloud_api.CloudApi` (``sandbox.cloud``) and
:class:`~flowchat_sandbox.twilio.TwilioApi` (``sandbox.twilio``). Webhooks go out through
the :class:`~flowchat_sandbox.webhooks.Transport` seam.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import fields, replace
from typing import Any

from flowchat_sandbox import metrics
from flowchat_sandbox.cloud_api import CloudApi
from flowchat_sandbox.errors import ControlError, GraphError, TwilioError
from flowchat_sandbox.media import Media, TwilioMedia, UrlSigner, decode_base64
from flowchat_sandbox.models import (
    BSUID,
    Customer,
    Faults,
    Inbound,
    Number,
    Sent,
    TwilioAccount,
    iso,
    mint_bsuid,
    summary,
    wa_id_of,
)
from flowchat_sandbox.ratelimit import Gcra
from flowchat_sandbox.settings import Settings
from flowchat_sandbox.spec import SendValidator
from flowchat_sandbox.templates import CATEGORIES, STATUSES, Template
from flowchat_sandbox.twilio import TwilioApi
from flowchat_sandbox.webhooks import Delivery, Transport, WebhookDispatcher, meta_envelope


class Sandbox:
    """The emulator's state and its shared machinery (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        validator: SendValidator,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.validator = validator
        self._wall = clock
        #: Added to the wall clock (``POST /sandbox/clock``): windows and media expire.
        self.time_offset_s = 0.0
        self.clock: Callable[[], float] = self._now
        self.rng = rng or random.Random()  # noqa: S311 - fault injection, not security
        self._tasks: set[asyncio.Task[None]] = set()
        self.webhooks = WebhookDispatcher(
            transport,
            self.spawn,
            timeout_s=settings.webhook_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            retry_base_s=settings.webhook_retry_base_s,
            retry_max_s=settings.webhook_retry_max_s,
        )
        self.limits = Gcra(self._now)
        self.numbers: dict[str, Number] = {}
        self.tokens: dict[str, set[str]] = {}
        self.twilio_accounts: dict[str, TwilioAccount] = {}
        self.twilio_numbers: dict[str, str] = {}
        self.customers: dict[str, Customer] = {}
        #: BSUIDs and parent BSUIDs (current and previous) → the person's ``wa_id``.
        self.user_ids: dict[str, str] = {}
        self.windows: dict[tuple[str, str], float] = {}
        self.templates: dict[str, Template] = {}
        #: (WABA, name, language) → template: names and languages never change
        self._template_index: dict[tuple[str, str, str], Template] = {}
        self.ledger: dict[str, Sent] = {}
        self.inbound: dict[str, Inbound] = {}
        self.transcripts: dict[str, list[Sent | Inbound]] = {}
        self.faults: dict[str, Faults] = {}
        self.conversations: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.media: dict[str, Media] = {}
        #: What customers sent to Twilio numbers, by Media sid (``ME…``).
        self.twilio_media: dict[str, TwilioMedia] = {}
        self.urls = UrlSigner()
        #: The providers' APIs, played over this state.
        self.cloud = CloudApi(self)
        self.twilio = TwilioApi(self)

    def _now(self) -> float:
        return self._wall() + self.time_offset_s

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox's time forward (never back); returns the new offset."""
        if seconds < 0:
            raise ControlError(422, "invalid_request", "the clock only moves forward")
        self.time_offset_s += seconds
        return self.time_offset_s

    # ------------------------------------------------------------------ lifecycle

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def reset(self) -> None:
        await self.close()
        for name in (
            "numbers",
            "tokens",
            "twilio_accounts",
            "twilio_numbers",
            "customers",
            "user_ids",
            "windows",
            "templates",
            "ledger",
            "inbound",
            "transcripts",
            "faults",
            "conversations",
            "media",
        ):
            getattr(self, name).clear()
        self.time_offset_s = 0.0
        self.limits.clear()
        self.webhooks.clear()

    # ------------------------------------------------------------------ control

    def register_number(self, data: dict[str, Any]) -> Number:
        data = {k: v for k, v in data.items() if v is not None}
        data.setdefault("throughput_mps", self.settings.default_throughput_mps)
        old = self.numbers.get(data["phone_number_id"])
        number = Number(**data)
        if old is not None:
            number.profile = old.profile
            self.tokens.get(old.access_token, set()).discard(old.phone_number_id)
        self.numbers[number.phone_number_id] = number
        self.tokens.setdefault(number.access_token, set()).add(number.phone_number_id)
        return number

    def register_twilio(self, data: dict[str, Any]) -> TwilioAccount:
        data = {k: v for k, v in data.items() if v is not None}
        data.setdefault("throughput_mps", self.settings.default_throughput_mps)
        data["number"] = "+" + wa_id_of(data["number"])
        account = TwilioAccount(**data)
        self.twilio_accounts[account.account_sid] = account
        self.twilio_numbers[account.number] = account.account_sid
        return account

    def customer(self, wa_id: str) -> Customer:
        customer = self.customers.get(wa_id)
        if customer is None:
            customer = self.customers[wa_id] = Customer(wa_id)
            self._index(customer)
        return customer

    def _index(self, customer: Customer) -> None:
        for user_id in (customer.user_id, customer.parent_user_id):
            if user_id:
                self.user_ids[user_id] = customer.wa_id

    def person(self, some_id: str) -> str | None:
        """The ``wa_id`` of the person a phone number, BSUID or parent BSUID names (a
        BSUID the sandbox never minted names no one)."""
        if BSUID.match(some_id):
            return self.user_ids.get(some_id)
        return wa_id_of(some_id) or None

    def customer_by_id(self, some_id: str) -> Customer:
        """The customer a control call names by phone number or BSUID."""
        wa_id = self.person(some_id)
        if wa_id is None:
            raise ControlError(404, "not_found", f"no customer with the user id {some_id}")
        return self.customer(wa_id)

    #: Control fields of a customer; ids are minted, never set.
    SETTABLE = frozenset(
        {f.name for f in fields(Customer)}
        - {"wa_id", "user_id", "parent_user_id", "user_id_generation"}
    )

    def configure_customer(self, some_id: str, changes: dict[str, Any]) -> Customer:
        customer = self.customer_by_id(some_id)
        changes = {k: v for k, v in changes.items() if k in self.SETTABLE}
        if changes.get("phone_hidden") and not (changes.get("username") or customer.username):
            raise ControlError(
                422, "invalid_request", "only a user with a username can hide the phone number"
            )
        parent = changes.get("parent", customer.parent)
        updated = replace(
            customer,
            **changes,
            parent_user_id=customer.parent_user_id if parent else None,
        )
        self.customers[customer.wa_id] = updated
        self._index(updated)
        return updated

    def change_user_id(self, some_id: str) -> tuple[Customer, Customer]:
        """The person gets a new BSUID (and parent BSUID): ``(before, after)``. The old
        ids keep naming the person here (Meta does not document sends to a retired id)."""
        before = self.customer_by_id(some_id)
        generation = before.user_id_generation + 1
        after = replace(
            before,
            user_id=mint_bsuid(before.wa_id, generation),
            parent_user_id=(
                mint_bsuid(before.wa_id, generation, parent=True) if before.parent else None
            ),
            user_id_generation=generation,
        )
        self.customers[before.wa_id] = after
        self._index(after)
        return before, after

    def set_faults(self, key: str, data: dict[str, Any]) -> Faults:
        if key not in self.numbers and key not in self.twilio_accounts:
            raise ControlError(404, "not_found", f"no number or Twilio account {key}")
        faults = Faults(**data)
        self.faults[key] = faults
        return faults

    def clear_faults(self, key: str) -> None:
        self.faults.pop(key, None)

    def create_template(self, data: dict[str, Any]) -> Template:
        template = Template(id=data.pop("id", None) or str(self.numeric_id()), **data)
        self._check_template(template)
        key = (template.waba_id, template.name, template.language)
        other = self._template_index.get(key)
        if other is not None and other.id != template.id:
            raise ControlError(409, "conflict", "template name and language already exist")
        replaced = self.templates.get(template.id)
        if replaced is not None:
            self._template_index.pop((replaced.waba_id, replaced.name, replaced.language), None)
        self.templates[template.id] = template
        self._template_index[key] = template
        return template

    def find_template(
        self, waba_id: str, name: str | None, language: str | None
    ) -> Template | None:
        """The WABA's template of that name and language (a send's lookup: one dict
        read, however many WABAs the sandbox holds)."""
        return self._template_index.get((waba_id, name or "", language or ""))

    @staticmethod
    def _check_template(template: Template) -> None:
        if template.status not in STATUSES:
            raise ControlError(422, "invalid_request", f"unknown status {template.status}")
        if template.category not in CATEGORIES:
            raise ControlError(422, "invalid_request", f"unknown category {template.category}")
        if template.parameter_format not in ("POSITIONAL", "NAMED"):
            raise ControlError(422, "invalid_request", "parameter_format: POSITIONAL or NAMED")

    async def set_template_status(
        self, template_id: str, status: str, reason: str | None = None
    ) -> Template:
        template = self.templates.get(template_id)
        if template is None:
            raise ControlError(404, "not_found", f"no template {template_id}")
        if status not in STATUSES:
            raise ControlError(422, "invalid_request", f"unknown status {status}")
        template.status = status
        await self._template_webhook(template, reason)
        return template

    async def _template_webhook(self, template: Template, reason: str | None) -> None:
        value = {
            "event": template.status,
            "message_template_id": int(template.id) if template.id.isdigit() else template.id,
            "message_template_name": template.name,
            "message_template_language": template.language,
            "reason": reason or "NONE",
        }
        seen: set[str] = set()
        for number in self.numbers.values():
            if number.waba_id != template.waba_id or number.webhook_url in seen:
                continue
            seen.add(number.webhook_url)
            payload = meta_envelope(template.waba_id, "message_template_status_update", value)
            payload["entry"][0]["time"] = int(self.clock())
            await self.deliver_meta(number, "template_status", payload)

    def numeric_id(self) -> int:
        return self.rng.randrange(10**14, 10**15)

    # ------------------------------------------------------------------ faults

    async def apply_faults(self, faults: Faults | None, *, twilio: bool = False) -> None:
        if faults is None:
            return
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.timeout_rate and self.rng.random() < faults.timeout_rate:
            await asyncio.sleep(self.settings.fault_timeout_s)
            if twilio:
                raise TwilioError(20500, "Gateway timeout", status=504)
            raise GraphError(2, "The request timed out.", status=504)
        if faults.error_rate and self.rng.random() < faults.error_rate:
            if twilio:
                raise TwilioError(20500, "Internal Server Error", status=faults.error_status)
            raise GraphError(
                2,
                "An unexpected error has occurred. Please retry your request later.",
                status=faults.error_status,
            )

    @staticmethod
    def injected(faults: Faults | None) -> int | None:
        if faults is None or faults.error_code is None or faults.error_count == 0:
            return None
        if faults.error_count > 0:
            faults.error_count -= 1
        return faults.error_code

    def record(self, entry: Sent) -> None:
        if len(self.limits) > 100_000:
            self.limits.prune()
        self.ledger[entry.id] = entry
        self.transcripts.setdefault(entry.wa_id, []).append(entry)
        if len(self.ledger) > self.settings.ledger_size:
            oldest = self.ledger.pop(next(iter(self.ledger)))
            transcript = self.transcripts.get(oldest.wa_id)
            if transcript and transcript[0] is oldest:
                transcript.pop(0)

    async def deliver_meta(self, number: Number, kind: str, payload: Any) -> Delivery:
        delivery = self.webhooks.meta(
            kind=kind,
            key=number.phone_number_id,
            url=number.webhook_url,
            app_secret=number.app_secret,
            payload=payload,
        )
        return await self.deliver(number.phone_number_id, delivery)

    async def deliver(self, key: str, delivery: Delivery) -> Delivery:
        faults = self.faults.get(key)
        if faults is not None and faults.drop_webhooks != 0:
            if faults.drop_webhooks > 0:
                faults.drop_webhooks -= 1
            self.webhooks.drop(delivery)
            metrics.WEBHOOKS.labels(delivery.kind, "dropped").inc()
            return delivery
        ok = await self.webhooks.send(delivery)
        metrics.WEBHOOKS.labels(delivery.kind, "ok" if ok else "failed").inc()
        if faults is not None and faults.duplicate_webhooks:
            twin = replace(delivery, id=delivery.id + 1_000_000_000, attempts=[], state="pending")
            await self.webhooks.send(twin)
        return delivery

    # ------------------------------------------------------------------ customers

    async def customer_writes(
        self, some_id: str, request: dict[str, Any], *, base_url: str = "https://api.twilio.com"
    ) -> dict[str, Any]:
        """A customer's message to a Cloud API number or (``twilio_number``) a Twilio one.
        The customer is named by phone number or by a BSUID the sandbox minted;
        ``username`` / ``phone_hidden`` set up the person first."""
        if not BSUID.match(some_id) and not wa_id_of(some_id):
            raise ControlError(422, "invalid_request", "wa_id must be a phone number or a BSUID")
        identity: dict[str, Any] = {
            k: request[k] for k in ("username", "phone_hidden") if k in request
        }
        customer = (
            self.configure_customer(some_id, identity) if identity else self.customer_by_id(some_id)
        )
        if request.get("name"):
            customer.name = str(request["name"])
        kind, content = _inbound_content(request)
        data_base64 = content[kind].pop("data_base64", None) if kind == "image" else None
        if request.get("twilio_number"):
            data = decode_base64(data_base64) if data_base64 else None
            return await self.twilio.customer_writes(
                customer, request, kind, content, data, base_url
            )
        return await self.cloud.customer_writes(customer, request, kind, content, data_base64)

    # ------------------------------------------------------------------ queries

    def messages(
        self,
        *,
        to: str | None = None,
        phone_number_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> list[dict[str, Any]]:
        wanted = (self.person(to) or "-") if to else None
        out = []
        for entry in self.ledger.values():
            if wanted and entry.wa_id != wanted:
                continue
            if phone_number_id and entry.channel != phone_number_id:
                continue
            if (
                biz_opaque_callback_data is not None
                and entry.biz_opaque_callback_data != biz_opaque_callback_data
            ):
                continue
            out.append(entry.public())
        return out

    def conversation(self, wa_id: str, channel: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in self.transcripts.get(self.person(wa_id) or "-", []):
            if channel and item.channel not in (channel, "+" + wa_id_of(channel)):
                continue
            if isinstance(item, Inbound):
                out.append(
                    {
                        "direction": "inbound",
                        "id": item.id,
                        "wamid" if item.provider == "meta" else "sid": item.id,
                        "provider": item.provider,
                        "channel": item.channel,
                        "type": item.type,
                        "text": summary(item.type, item.message),
                        "time": iso(item.at),
                        "message": item.message,
                        "read": item.read,
                    }
                )
            else:
                body = item.body if isinstance(item.body, dict) else {}
                out.append(
                    {
                        "direction": "outbound",
                        "id": item.id,
                        "wamid" if item.provider == "meta" else "sid": item.id,
                        "provider": item.provider,
                        "channel": item.channel,
                        "type": item.type,
                        "text": summary(item.type, body)
                        if item.provider == "meta"
                        else str(body.get("Body") or f"[{item.type}]"),
                        "time": iso(item.at),
                        "message": {**body, "type": item.type} if item.provider == "meta" else body,
                        "status": item.status,
                        "statuses": item.statuses,
                        "errors": item.errors,
                    }
                )
        return out

    def deliveries(self, key: str | None = None) -> list[dict[str, Any]]:
        return [
            d.as_dict() for d in self.webhooks.deliveries.values() if key is None or d.key == key
        ]


# ---------------------------------------------------------------------- helpers


INBOUND_KINDS = (
    "text",
    "button_reply",
    "list_reply",
    "button",
    "image",
    "location",
    "reaction",
    "order",
    "nfm_reply",
)


def _inbound_content(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The customer's message as Meta's webhook ``messages[]`` content."""
    given = [k for k in INBOUND_KINDS if request.get(k) is not None]
    if len(given) != 1:
        raise ControlError(
            422, "invalid_request", f"give exactly one of {', '.join(INBOUND_KINDS)}"
        )
    kind = given[0]
    value = request[kind]
    if kind == "text":
        return "text", {"text": {"body": str(value)}}
    if kind in ("button_reply", "list_reply", "nfm_reply"):
        return "interactive", {"interactive": {"type": kind, kind: value}}
    if kind == "image":
        image = {
            "mime_type": "image/jpeg",
            "sha256": "",
            "id": str(value.get("id") or uuid.uuid4().int % 10**15),
            **value,
        }
        return "image", {"image": image}
    return kind, {kind: value}
