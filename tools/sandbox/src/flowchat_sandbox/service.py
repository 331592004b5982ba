"""The sandbox's behaviour: Meta's Cloud API, Twilio's Messages API, and the customers.

No HTTP framework here: routes hand in parsed bodies and headers, and get back
dicts or :mod:`flowchat_sandbox.errors` exceptions. Webhooks go out through the
:class:`~flowchat_sandbox.webhooks.Transport` seam.

A Cloud API send is checked in Meta's order: faults (latency, 5xx, timeouts) →
token (190) → injected error code → schema and limits (100/131008/131009) →
throughput (130429) → template (132001/132000/132012/132015/132016) or the 24 h
window (131047) → media ids (100: unknown, expired or another WABA's) → pair rate
(131056). A customer's inbound message uses up the number's throughput too.
Accepted sends go to the ledger, and ``sent`` → ``delivered`` → ``read`` (or
``failed`` with 131026/131050) status webhooks follow, ``status_delay_s`` apart
(out of order or batched when the customer or the number is set up so).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import re
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import fields, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from flowchat_sandbox import metrics
from flowchat_sandbox.errors import META_ERRORS, ControlError, GraphError, TwilioError
from flowchat_sandbox.media import (
    API_MEDIA_TTL_S,
    DOWNLOAD_PATH,
    INBOUND_MEDIA_TTL_S,
    PLACEHOLDER_JPEG,
    Media,
    MediaRefused,
    UrlSigner,
    check_upload,
)
from flowchat_sandbox.models import (
    Customer,
    Faults,
    Inbound,
    Number,
    Sent,
    TwilioAccount,
    iso,
    new_twilio_sid,
    new_wamid,
    summary,
)
from flowchat_sandbox.ratelimit import Gcra
from flowchat_sandbox.settings import Settings
from flowchat_sandbox.spec import MEDIA_TYPES, SendValidator, validate_read
from flowchat_sandbox.templates import CATEGORIES, STATUSES, Template, check_send
from flowchat_sandbox.webhooks import (
    Delivery,
    Transport,
    WebhookDispatcher,
    messages_value,
    meta_envelope,
)

DIGITS = re.compile(r"\D")
PROFILE_LIMITS = {"about": 139, "address": 256, "description": 256, "email": 128}
PROFILE_FIELDS = frozenset(
    {"about", "address", "description", "email", "websites", "vertical", "profile_picture_handle"}
)
NUMBER_FIELDS = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "throughput",
    "messaging_limit_tier",
    "code_verification_status",
    "platform_type",
    "name_status",
)
TWILIO_STATUS = {"failed": "failed", "sent": "sent", "delivered": "delivered", "read": "read"}


def wa_id_of(to: str) -> str:
    return DIGITS.sub("", to)


def _object_missing(object_id: str, verb: str = "get") -> GraphError:
    return GraphError(
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        subcode=33,
    )


def bearer(authorization: str | None, query_token: str | None = None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return query_token


class Sandbox:
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
        self.windows: dict[tuple[str, str], float] = {}
        self.templates: dict[str, Template] = {}
        self.ledger: dict[str, Sent] = {}
        self.inbound: dict[str, Inbound] = {}
        self.transcripts: dict[str, list[Sent | Inbound]] = {}
        self.faults: dict[str, Faults] = {}
        self.conversations: dict[tuple[str, str, str], tuple[str, float]] = {}
        self.media: dict[str, Media] = {}
        self.urls = UrlSigner()

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
        return customer

    def configure_customer(self, wa_id: str, changes: dict[str, Any]) -> Customer:
        customer = self.customer(wa_id)
        allowed = {f.name for f in fields(Customer)} - {"wa_id"}
        updated = replace(customer, **{k: v for k, v in changes.items() if k in allowed})
        self.customers[wa_id] = updated
        return updated

    def set_faults(self, key: str, data: dict[str, Any]) -> Faults:
        if key not in self.numbers and key not in self.twilio_accounts:
            raise ControlError(404, "not_found", f"no number or Twilio account {key}")
        faults = Faults(**data)
        self.faults[key] = faults
        return faults

    def clear_faults(self, key: str) -> None:
        self.faults.pop(key, None)

    def create_template(self, data: dict[str, Any]) -> Template:
        template = Template(id=data.pop("id", None) or str(self._numeric_id()), **data)
        self._check_template(template)
        for other in self.templates.values():
            if (other.waba_id, other.name, other.language) == (
                template.waba_id,
                template.name,
                template.language,
            ) and other.id != template.id:
                raise ControlError(409, "conflict", "template name and language already exist")
        self.templates[template.id] = template
        return template

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
            await self._deliver_meta(number, "template_status", payload)

    def _numeric_id(self) -> int:
        return self.rng.randrange(10**14, 10**15)

    # ------------------------------------------------------------------ Graph: auth

    def _authorize(
        self, object_id: str, token: str | None, *, waba_id: str | None = None, verb: str = "get"
    ) -> None:
        if not token or token not in self.tokens or not self.tokens[token]:
            raise GraphError(190, "Malformed access token or the token has expired.")
        allowed = self.tokens[token]
        if object_id in allowed:
            return
        wabas = {self.numbers[p].waba_id for p in allowed if p in self.numbers}
        target = waba_id or (self.numbers[object_id].waba_id if object_id in self.numbers else None)
        if target is None or target not in wabas:
            raise _object_missing(object_id, verb)

    def _number(self, phone_number_id: str, token: str | None, verb: str = "get") -> Number:
        self._authorize(phone_number_id, token, verb=verb)
        number = self.numbers.get(phone_number_id)
        if number is None:
            raise _object_missing(phone_number_id, verb)
        return number

    # ------------------------------------------------------------------ faults

    async def _apply_faults(self, faults: Faults | None, *, twilio: bool = False) -> None:
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
    def _injected(faults: Faults | None) -> int | None:
        if faults is None or faults.error_code is None or faults.error_count == 0:
            return None
        if faults.error_count > 0:
            faults.error_count -= 1
        return faults.error_code

    # ------------------------------------------------------------------ Cloud API: send

    async def send_message(
        self, phone_number_id: str, token: str | None, raw: Any
    ) -> dict[str, Any]:
        try:
            out = await self._send_message(phone_number_id, token, raw)
        except GraphError as exc:
            metrics.SENDS.labels("meta", str(exc.code)).inc()
            raise
        metrics.SENDS.labels("meta", "accepted").inc()
        return out

    async def _send_message(
        self, phone_number_id: str, token: str | None, raw: Any
    ) -> dict[str, Any]:
        faults = self.faults.get(phone_number_id)
        await self._apply_faults(faults)
        number = self._number(phone_number_id, token, "post")
        code = self._injected(faults)
        if code is not None:
            raise GraphError(code)
        if isinstance(raw, dict) and "status" in raw and "type" not in raw:
            return self._mark_read(number, raw)
        body = self.validator.validate(raw)
        to = body["to"]
        wa_id = wa_id_of(to)
        if not 5 <= len(wa_id) <= 15:
            raise GraphError(100, f"Param to ({to}) is not a valid WhatsApp phone number.")
        mps = max(1, number.throughput_mps)
        if not self.limits.allow(("mps", phone_number_id), period_s=1 / mps, burst=mps):
            raise GraphError(130429)
        customer = self.customer(wa_id)
        now = self.clock()
        fate: tuple[int, str, str] | None = None
        if body["type"] == "template":
            template = self._find_template(number.waba_id, body["template"])
            check_send(template, body["template"])
            assert template is not None
            category = template.category.lower()
            if category == "marketing" and customer.opted_out_marketing:
                fate = self._fate(131050)
        else:
            category = "service"
            last = self.windows.get((phone_number_id, wa_id))
            if last is None or now - last > self.settings.window_s:
                raise GraphError(131047)
        self._check_media_ids(number, body)
        if customer.undeliverable:
            fate = self._fate(131026)
        pair = ("pair", phone_number_id, wa_id)
        if not self.limits.allow(
            pair, period_s=self.settings.pair_rate_period_s, burst=self.settings.pair_rate_burst
        ):
            raise GraphError(131056)
        entry = Sent(
            id=new_wamid(wa_id),
            provider="meta",
            channel=phone_number_id,
            to=to,
            wa_id=wa_id,
            type=body["type"],
            body=raw,
            category=category,
            at=now,
            biz_opaque_callback_data=body.get("biz_opaque_callback_data"),
            fate=fate,
        )
        self._record(entry)
        self.spawn(self._play_meta_statuses(number, entry, customer))
        message: dict[str, Any] = {"id": entry.id}
        if body["type"] == "template":
            message["message_status"] = "accepted"
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": wa_id}],
            "messages": [message],
        }

    @staticmethod
    def _fate(code: int) -> tuple[int, str, str]:
        title, details, _ = META_ERRORS[code]
        return (code, title, details)

    def _find_template(self, waba_id: str, send: dict[str, Any]) -> Template | None:
        name = send.get("name")
        language = (send.get("language") or {}).get("code")
        for template in self.templates.values():
            if (template.waba_id, template.name, template.language) == (waba_id, name, language):
                return template
        return None

    def _mark_read(self, number: Number, raw: dict[str, Any]) -> dict[str, Any]:
        message_id = validate_read(raw)
        inbound = self.inbound.get(message_id)
        if inbound is None or inbound.channel != number.phone_number_id:
            raise GraphError(100, f"Param message_id ({message_id}) is not a valid message id.")
        inbound.read = True
        return {"success": True}

    def _record(self, entry: Sent) -> None:
        if len(self.limits) > 100_000:
            self.limits.prune()
        self.ledger[entry.id] = entry
        self.transcripts.setdefault(entry.wa_id, []).append(entry)
        if len(self.ledger) > self.settings.ledger_size:
            oldest = self.ledger.pop(next(iter(self.ledger)))
            transcript = self.transcripts.get(oldest.wa_id)
            if transcript and transcript[0] is oldest:
                transcript.pop(0)

    # ------------------------------------------------------------------ Cloud API: statuses

    async def _play_meta_statuses(self, number: Number, entry: Sent, customer: Customer) -> None:
        """``sent`` → ``delivered`` → ``read`` (or ``failed``), ``status_delay_s`` apart.

        Realism knobs, per customer or per number (faults): ``out_of_order_statuses``
        posts ``read`` before ``delivered``; ``batch_statuses`` posts every status of
        the message in one webhook (its ``statuses`` list has several items).
        """
        delay = self.settings.status_delay_s
        if entry.fate is not None:
            plan = ["failed"]
        else:
            plan = ["sent"]
            if customer.delivers:
                plan.append("delivered")
                if customer.reads:
                    plan.append("read")
        faults = self.faults.get(number.phone_number_id)
        batch = customer.batch_statuses or bool(faults and faults.batch_statuses)
        swap = customer.out_of_order_statuses or bool(faults and faults.out_of_order_statuses)
        if batch:
            items = []
            for status in plan:
                await asyncio.sleep(delay)
                items.append(self._status_item(entry, status))
            if swap:
                items.reverse()
            await self._post_statuses(number, entry, items)
            return
        if swap and plan[-2:] == ["delivered", "read"]:
            # Both happen (the phone got it, the customer opened it), the webhooks cross.
            await asyncio.sleep(delay)
            await self._post_statuses(number, entry, [self._status_item(entry, "sent")])
            await asyncio.sleep(delay)
            delivered = self._status_item(entry, "delivered")
            await asyncio.sleep(delay)
            await self._post_statuses(number, entry, [self._status_item(entry, "read")])
            await self._post_statuses(number, entry, [delivered])
            return
        for status in plan:
            await asyncio.sleep(delay)
            await self._post_statuses(number, entry, [self._status_item(entry, status)])

    def _conversation(self, entry: Sent, now: float) -> dict[str, Any]:
        key = (entry.channel, entry.wa_id, entry.category)
        current = self.conversations.get(key)
        if current is None or current[1] <= now:
            current = (uuid.uuid4().hex, now + 24 * 3600)
            self.conversations[key] = current
        return {
            "id": current[0],
            "expiration_timestamp": str(int(current[1])),
            "origin": {"type": entry.category},
        }

    def _status_item(self, entry: Sent, status: str) -> tuple[dict[str, Any], float]:
        """One ``statuses[]`` item as of now (Meta stamps the event, not the POST)."""
        now = self.clock()
        item: dict[str, Any] = {
            "id": entry.id,
            "status": status,
            "timestamp": str(int(now)),
            "recipient_id": entry.wa_id,
        }
        if entry.biz_opaque_callback_data is not None:
            item["biz_opaque_callback_data"] = entry.biz_opaque_callback_data
        if status == "failed" and entry.fate is not None:
            error = GraphError(entry.fate[0], entry.fate[2]).status_error()
            item["errors"] = [error]
            entry.errors.append(error)
        else:
            item["conversation"] = self._conversation(entry, now)
            item["pricing"] = {
                "billable": entry.category != "service",
                "pricing_model": "PMP",
                "category": entry.category,
            }
        return item, now

    async def _post_statuses(
        self, number: Number, entry: Sent, items: list[tuple[dict[str, Any], float]]
    ) -> None:
        """One webhook carrying ``items``; each is recorded in the ledger as it is posted."""
        value = messages_value(
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            statuses=[item for item, _ in items],
        )
        payload = meta_envelope(number.waba_id, "messages", value)
        records = []
        for item, at in items:
            record: dict[str, Any] = {
                "status": item["status"],
                "timestamp": item["timestamp"],
                "time": iso(at),
            }
            if "errors" in item:
                record["errors"] = item["errors"]
            entry.statuses.append(record)
            records.append(record)
        delivery = await self._deliver_meta(number, "status", payload)
        for record in records:
            record["delivery_id"] = delivery.id

    async def _deliver_meta(self, number: Number, kind: str, payload: Any) -> Delivery:
        delivery = self.webhooks.meta(
            kind=kind,
            key=number.phone_number_id,
            url=number.webhook_url,
            app_secret=number.app_secret,
            payload=payload,
        )
        return await self._deliver(number.phone_number_id, delivery)

    async def _deliver(self, key: str, delivery: Delivery) -> Delivery:
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

    # ------------------------------------------------------------------ Cloud API: number

    def get_number(
        self, phone_number_id: str, token: str | None, fields_param: str | None
    ) -> dict[str, Any]:
        number = self._number(phone_number_id, token)
        mps = number.throughput_mps
        full: dict[str, Any] = {
            "id": number.phone_number_id,
            "display_phone_number": number.display_phone_number,
            "verified_name": number.verified_name,
            "quality_rating": number.quality_rating,
            "throughput": {"level": "HIGH" if mps >= 1000 else "STANDARD"},
            "messaging_limit_tier": number.messaging_limit_tier,
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "name_status": "APPROVED",
        }
        if not fields_param:
            return full
        wanted = [f.strip() for f in fields_param.split(",") if f.strip()]
        for name in wanted:
            if name not in full:
                raise GraphError(100, f"Tried accessing nonexisting field ({name}).")
        return {name: full[name] for name in (*wanted, "id") if name in full}

    def get_profile(
        self, phone_number_id: str, token: str | None, fields_param: str | None
    ) -> dict[str, Any]:
        number = self._number(phone_number_id, token)
        profile = dict(number.profile)
        if fields_param:
            wanted = {f.strip() for f in fields_param.split(",")}
            profile = {k: v for k, v in profile.items() if k in wanted or k == "messaging_product"}
        return {"data": [profile]}

    def update_profile(self, phone_number_id: str, token: str | None, raw: Any) -> dict[str, Any]:
        number = self._number(phone_number_id, token, "post")
        if not isinstance(raw, dict):
            raise GraphError(100, "The request body must be a JSON object.")
        if raw.get("messaging_product") != "whatsapp":
            raise GraphError(100, "Param messaging_product must be 'whatsapp'.")
        changes = {k: v for k, v in raw.items() if k != "messaging_product"}
        for name, value in changes.items():
            if name not in PROFILE_FIELDS:
                raise GraphError(100, f"Param {name} is not a business profile field.")
            limit = PROFILE_LIMITS.get(name)
            if limit is not None and (not isinstance(value, str) or len(value) > limit):
                raise GraphError(100, f"Param {name} must be a string of at most {limit} chars.")
        websites = changes.get("websites")
        if websites is not None and (
            not isinstance(websites, list)
            or len(websites) > 2
            or not all(isinstance(w, str) and len(w) <= 256 for w in websites)
        ):
            raise GraphError(100, "Param websites must be a list of at most 2 URLs.")
        number.profile.update(changes)
        return {"success": True}

    # ------------------------------------------------------------------ Cloud API: media

    def upload_media(
        self,
        phone_number_id: str,
        token: str | None,
        *,
        messaging_product: str | None,
        mime_type: str | None,
        data: bytes | None,
        filename: str | None = None,
    ) -> dict[str, Any]:
        number = self._number(phone_number_id, token, "post")
        if messaging_product is None:
            raise GraphError(131008, "The parameter messaging_product is required.")
        if messaging_product != "whatsapp":
            raise GraphError(100, "Param messaging_product must be 'whatsapp'.")
        if data is None:
            raise GraphError(131008, "The parameter file is required.")
        if not mime_type:
            raise GraphError(131008, "The parameter type is required.")
        try:
            check_upload(mime_type, len(data))
        except MediaRefused as exc:
            metrics.MEDIA.labels("upload", f"refused_{exc.reason}").inc()
            raise GraphError(131053 if exc.reason == "size" else 100, str(exc)) from None
        media = self._store_media(number, mime_type, data, "api", filename)
        metrics.MEDIA.labels("upload", "ok").inc()
        return {"id": media.id}

    def _store_media(
        self,
        number: Number,
        mime_type: str,
        data: bytes,
        source: str,
        filename: str | None = None,
        media_id: str | None = None,
    ) -> Media:
        now = self.clock()
        ttl = API_MEDIA_TTL_S if source == "api" else INBOUND_MEDIA_TTL_S
        media = Media(
            id=media_id or str(self._numeric_id()),
            phone_number_id=number.phone_number_id,
            waba_id=number.waba_id,
            mime_type=mime_type,
            data=data,
            created_at=now,
            expires_at=now + ttl,
            source="api" if source == "api" else "inbound",
            filename=filename,
        )
        self._prune_media(now)
        self.media[media.id] = media
        return media

    def _prune_media(self, now: float) -> None:
        if len(self.media) > 10_000:
            for media_id in [k for k, m in self.media.items() if m.expired(now)]:
                del self.media[media_id]

    def _live_media(self, media_id: str, token: str | None, verb: str) -> Media:
        """A media object the token may use: same WABA as one of the token's numbers."""
        media = self.media.get(media_id)
        if media is None or media.expired(self.clock()):
            self._authorize_token(token)
            raise _object_missing(media_id, verb)
        self._authorize(media_id, token, waba_id=media.waba_id, verb=verb)
        return media

    def _authorize_token(self, token: str | None) -> None:
        if not token or not self.tokens.get(token):
            raise GraphError(190, "Malformed access token or the token has expired.")

    def media_url(
        self, media_id: str, token: str | None, base_url: str, phone_number_id: str | None
    ) -> dict[str, Any]:
        media = self._live_media(media_id, token, "get")
        if phone_number_id is not None and phone_number_id != media.phone_number_id:
            raise _object_missing(media_id)
        metrics.MEDIA.labels("retrieve", "ok").inc()
        query = self.urls.query(media.id, self.clock())
        return {
            "messaging_product": "whatsapp",
            "url": f"{base_url.rstrip('/')}{DOWNLOAD_PATH}?{query}",
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": str(media.file_size),
            "id": media.id,
        }

    def delete_media(
        self, media_id: str, token: str | None, phone_number_id: str | None
    ) -> dict[str, Any]:
        media = self._live_media(media_id, token, "delete")
        if phone_number_id is not None and phone_number_id != media.phone_number_id:
            raise _object_missing(media_id, "delete")
        del self.media[media.id]
        metrics.MEDIA.labels("delete", "ok").inc()
        return {"success": True}

    def download_media(
        self, token: str | None, media_id: str, expires: str, mac: str
    ) -> tuple[bytes, str]:
        """The bytes behind a URL from :meth:`media_url` (bearer token required, 5 min)."""
        self._authorize_token(token)
        now = self.clock()
        if not self.urls.valid(media_id, expires, mac, now):
            metrics.MEDIA.labels("download", "expired_url").inc()
            raise ControlError(404, "not_found", "this media URL is invalid or expired")
        media = self.media.get(media_id)
        if media is None or media.expired(now):
            metrics.MEDIA.labels("download", "gone").inc()
            raise ControlError(404, "not_found", "this media was deleted or has expired")
        self._authorize(media_id, token, waba_id=media.waba_id)
        metrics.MEDIA.labels("download", "ok").inc()
        return media.data, media.mime_type

    def _check_media_ids(self, number: Number, body: dict[str, Any]) -> None:
        """Every media ``id`` a message uses must be a live upload of the number's WABA."""
        for path, media_id in _media_ids(body):
            media = self.media.get(media_id)
            if media is None or media.expired(self.clock()) or media.waba_id != number.waba_id:
                raise GraphError(
                    100,
                    f"Param {path} is not a valid whatsapp business account media attachment ID.",
                )

    # ------------------------------------------------------------------ Cloud API: templates

    def list_templates(
        self, waba_id: str, token: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self._authorize(waba_id, token, waba_id=waba_id)
        items = [t for t in self.templates.values() if t.waba_id == waba_id]
        for key in ("name", "status", "category", "language"):
            if params.get(key):
                items = [t for t in items if getattr(t, key) == params[key]]
        try:
            limit = max(1, min(int(params.get("limit") or 25), 1000))
        except ValueError:
            raise GraphError(100, "Param limit must be an integer.") from None
        start = 0
        if params.get("after"):
            start = _cursor(params["after"]) + 1
        elif params.get("before"):
            start = max(0, _cursor(params["before"]) - limit)
        page = items[start : start + limit]
        out: dict[str, Any] = {"data": [t.as_graph() for t in page]}
        if page:
            out["paging"] = {
                "cursors": {"before": _encode(start), "after": _encode(start + len(page) - 1)}
            }
            if start + len(page) < len(items):
                out["paging"]["next"] = f"?limit={limit}&after={_encode(start + len(page) - 1)}"
        return out

    async def create_template_graph(
        self, waba_id: str, token: str | None, raw: Any
    ) -> dict[str, Any]:
        self._authorize(waba_id, token, waba_id=waba_id)
        if not isinstance(raw, dict):
            raise GraphError(100, "The request body must be a JSON object.")
        for required in ("name", "language", "category", "components"):
            if required not in raw:
                raise GraphError(131008, f"The parameter {required} is required.")
        category = str(raw["category"]).upper()
        if category not in CATEGORIES:
            raise GraphError(100, f"Param category must be one of {sorted(CATEGORIES)}.")
        if not isinstance(raw["components"], list):
            raise GraphError(100, "Param components must be an array.")
        try:
            template = self.create_template(
                {
                    "waba_id": waba_id,
                    "name": str(raw["name"]),
                    "language": str(raw["language"]),
                    "category": category,
                    "status": "PENDING",
                    "parameter_format": str(raw.get("parameter_format", "POSITIONAL")).upper(),
                    "components": raw["components"],
                }
            )
        except ControlError as exc:
            raise GraphError(100, exc.message) from None
        self.spawn(self._approve_later(template.id))
        return {"id": template.id, "status": template.status, "category": template.category}

    async def _approve_later(self, template_id: str) -> None:
        await asyncio.sleep(self.settings.status_delay_s)
        template = self.templates.get(template_id)
        if template is not None and template.status == "PENDING":
            await self.set_template_status(template_id, "APPROVED")

    def get_template(self, template_id: str, token: str | None) -> dict[str, Any]:
        template = self.templates.get(template_id)
        if template is None:
            raise _object_missing(template_id)
        self._authorize(template_id, token, waba_id=template.waba_id)
        return template.as_graph()

    # ------------------------------------------------------------------ customers

    async def customer_writes(self, wa_id: str, request: dict[str, Any]) -> dict[str, Any]:
        wa_id = wa_id_of(wa_id)
        if not wa_id:
            raise ControlError(422, "invalid_request", "wa_id must be a phone number")
        customer = self.customer(wa_id)
        if request.get("name"):
            customer.name = str(request["name"])
        kind, content = _inbound_content(request)
        data_base64 = content[kind].pop("data_base64", None) if kind == "image" else None
        if request.get("twilio_number"):
            return await self._twilio_inbound(customer, request, kind, content)
        number = self.numbers.get(str(request.get("phone_number_id")))
        if number is None:
            raise ControlError(404, "not_found", "unknown phone_number_id")
        if kind == "image" and not content["image"].get("link"):
            content["image"] = self._inbound_image(number, content["image"], data_base64)
        # A customer's message is never refused, but it uses up the number's throughput.
        self.limits.consume(
            ("mps", number.phone_number_id), period_s=1 / max(1, number.throughput_mps)
        )
        now = self.clock()
        message: dict[str, Any] = {
            "from": wa_id,
            "id": new_wamid(wa_id),
            "timestamp": str(int(now)),
            "type": kind,
            **content,
        }
        context = request.get("context")
        if context:
            message["context"] = {
                "from": wa_id_of(number.display_phone_number),
                "id": context["message_id"],
            }
        value = messages_value(
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            contacts=[{"profile": {"name": customer.name}, "wa_id": wa_id}],
            messages=[message],
        )
        self.windows[(number.phone_number_id, wa_id)] = now
        inbound = Inbound(message["id"], "meta", number.phone_number_id, wa_id, kind, message, now)
        self.inbound[inbound.id] = inbound
        self.transcripts.setdefault(wa_id, []).append(inbound)
        metrics.INBOUND.labels("meta").inc()
        payload = meta_envelope(number.waba_id, "messages", value)
        delivery = await self._deliver_meta(number, "message", payload)
        inbound.delivery_id = delivery.id
        return {"id": inbound.id}

    def _inbound_image(
        self, number: Number, image: dict[str, Any], data_base64: str | None
    ) -> dict[str, Any]:
        """Store what the customer sent as media (7 days) and describe it as Meta does."""
        try:
            data = base64.b64decode(data_base64, validate=True) if data_base64 else None
        except (ValueError, binascii.Error):
            raise ControlError(422, "invalid_request", "image.data_base64 is not base64") from None
        mime_type = str(image.get("mime_type") or "image/jpeg")
        data = data if data is not None else PLACEHOLDER_JPEG
        try:
            check_upload(mime_type, len(data))
        except MediaRefused as exc:
            raise ControlError(422, "invalid_request", f"image: {exc}") from None
        given = image.get("id")
        media_id = str(given) if given and str(given) not in self.media else None
        media = self._store_media(number, mime_type, data, "inbound", media_id=media_id)
        out = {k: v for k, v in image.items() if k not in ("id", "sha256", "link")}
        return {**out, "mime_type": mime_type, "sha256": media.sha256, "id": media.id}

    # ------------------------------------------------------------------ queries

    def messages(
        self,
        *,
        to: str | None = None,
        phone_number_id: str | None = None,
        biz_opaque_callback_data: str | None = None,
    ) -> list[dict[str, Any]]:
        wanted = wa_id_of(to) if to else None
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
        for item in self.transcripts.get(wa_id_of(wa_id), []):
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

    # ------------------------------------------------------------------ Twilio

    def _twilio_account(self, account_sid: str, authorization: str | None) -> TwilioAccount:
        account = self.twilio_accounts.get(account_sid)
        user, password = _basic(authorization)
        if account is None or user != account_sid or password != account.auth_token:
            raise TwilioError(20003, "Authenticate", status=401)
        return account

    async def twilio_send(
        self, account_sid: str, authorization: str | None, form: dict[str, list[str]]
    ) -> dict[str, Any]:
        try:
            out = await self._twilio_send(account_sid, authorization, form)
        except TwilioError as exc:
            metrics.SENDS.labels("twilio", str(exc.code)).inc()
            raise
        metrics.SENDS.labels("twilio", "accepted").inc()
        return out

    async def _twilio_send(
        self, account_sid: str, authorization: str | None, form: dict[str, list[str]]
    ) -> dict[str, Any]:
        faults = self.faults.get(account_sid)
        await self._apply_faults(faults, twilio=True)
        account = self._twilio_account(account_sid, authorization)
        code = self._injected(faults)
        if code is not None:
            raise TwilioError(code, f"Injected error {code}")

        def one(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        _check_twilio_form(form, account)
        to = one("To") or ""
        body, content_sid = one("Body"), one("ContentSid")
        media = form.get("MediaUrl", [])
        mps = max(1, account.throughput_mps)
        if not self.limits.allow(("mps", account_sid), period_s=1 / mps, burst=mps):
            raise TwilioError(20429, "Too Many Requests", status=429)
        wa_id = wa_id_of(to)
        customer = self.customer(wa_id)
        now = self.clock()
        fate: tuple[int, str, str] | None = None
        if not content_sid:
            last = self.windows.get((account.number, wa_id))
            if last is None or now - last > self.settings.window_s:
                fate = (63016, "failed", "Outside the allowed window.")
        if customer.undeliverable:
            fate = (63024, "failed", "Invalid message recipient.")
        kind = "template" if content_sid else ("media" if media and not body else "text")
        entry = Sent(
            id=new_twilio_sid(),
            provider="twilio",
            channel=account.number,
            to=to,
            wa_id=wa_id,
            type=kind,
            body={k: v if len(v) > 1 else v[0] for k, v in form.items() if v},
            category="marketing" if content_sid else "service",
            at=now,
            fate=fate,
        )
        self._record(entry)
        callback = one("StatusCallback")
        self.spawn(self._play_twilio_statuses(account, entry, customer, callback))
        return self._twilio_resource(account, entry, body or "", len(media))

    @staticmethod
    def _twilio_resource(
        account: TwilioAccount, entry: Sent, body: str, num_media: int
    ) -> dict[str, Any]:
        created = format_datetime(datetime.fromtimestamp(entry.at, UTC), usegmt=True)
        uri = f"/2010-04-01/Accounts/{account.account_sid}/Messages/{entry.id}"
        return {
            "account_sid": account.account_sid,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": f"whatsapp:{account.number}",
            "messaging_service_sid": None,
            "num_media": str(num_media),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": entry.id,
            "status": "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": entry.to,
            "uri": f"{uri}.json",
        }

    def twilio_message(
        self, account_sid: str, authorization: str | None, message_sid: str
    ) -> dict[str, Any]:
        account = self._twilio_account(account_sid, authorization)
        entry = self.ledger.get(message_sid)
        if entry is None or entry.provider != "twilio" or entry.channel != account.number:
            raise TwilioError(
                20404, f"The requested resource {message_sid} was not found", status=404
            )
        body = entry.body.get("Body", "") if isinstance(entry.body, dict) else ""
        media = entry.body.get("MediaUrl", []) if isinstance(entry.body, dict) else []
        resource = self._twilio_resource(account, entry, str(body), len(media))
        resource["status"] = TWILIO_STATUS.get(entry.status, "queued")
        if entry.fate is not None:
            resource["error_code"] = entry.fate[0]
            resource["error_message"] = entry.fate[2]
        return resource

    async def _play_twilio_statuses(
        self, account: TwilioAccount, entry: Sent, customer: Customer, callback: str | None
    ) -> None:
        delay = self.settings.status_delay_s
        await asyncio.sleep(delay)
        if entry.fate is not None:
            await self._twilio_status(account, entry, "failed", callback)
            return
        await self._twilio_status(account, entry, "sent", callback)
        if not customer.delivers:
            return
        await asyncio.sleep(delay)
        await self._twilio_status(account, entry, "delivered", callback)
        if not customer.reads:
            return
        await asyncio.sleep(delay)
        await self._twilio_status(account, entry, "read", callback)

    async def _twilio_status(
        self, account: TwilioAccount, entry: Sent, status: str, callback: str | None
    ) -> None:
        now = self.clock()
        params = {
            "AccountSid": account.account_sid,
            "ApiVersion": "2010-04-01",
            "ChannelPrefix": "whatsapp",
            "From": f"whatsapp:{account.number}",
            "MessageSid": entry.id,
            "MessageStatus": status,
            "SmsSid": entry.id,
            "SmsStatus": status,
            "To": entry.to,
        }
        record: dict[str, Any] = {"status": status, "timestamp": str(int(now)), "time": iso(now)}
        if status == "failed" and entry.fate is not None:
            params["ErrorCode"] = str(entry.fate[0])
            params["ErrorMessage"] = entry.fate[2]
            error = {"code": entry.fate[0], "message": entry.fate[2]}
            record["errors"] = [error]
            entry.errors.append(error)
        entry.statuses.append(record)
        if callback:
            delivery = self.webhooks.twilio(
                kind="twilio_status",
                key=account.account_sid,
                url=callback,
                auth_token=account.auth_token,
                params=params,
            )
            record["delivery_id"] = (await self._deliver(account.account_sid, delivery)).id

    async def _twilio_inbound(
        self, customer: Customer, request: dict[str, Any], kind: str, content: dict[str, Any]
    ) -> dict[str, Any]:
        number = "+" + wa_id_of(str(request["twilio_number"]))
        account = self.twilio_accounts.get(self.twilio_numbers.get(number, ""))
        if account is None:
            raise ControlError(404, "not_found", "unknown twilio_number")
        sid = new_twilio_sid()
        params = {
            "AccountSid": account.account_sid,
            "ApiVersion": "2010-04-01",
            "Body": "",
            "From": f"whatsapp:+{customer.wa_id}",
            "MessageSid": sid,
            "MessageType": "text",
            "NumMedia": "0",
            "NumSegments": "1",
            "ProfileName": customer.name,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "To": f"whatsapp:{account.number}",
            "WaId": customer.wa_id,
        }
        params.update(_twilio_fields(kind, content))
        now = self.clock()
        self.limits.consume(
            ("mps", account.account_sid), period_s=1 / max(1, account.throughput_mps)
        )
        self.windows[(account.number, customer.wa_id)] = now
        inbound = Inbound(sid, "twilio", account.number, customer.wa_id, kind, content, now)
        self.inbound[sid] = inbound
        self.transcripts.setdefault(customer.wa_id, []).append(inbound)
        metrics.INBOUND.labels("twilio").inc()
        delivery = self.webhooks.twilio(
            kind="twilio_message",
            key=account.account_sid,
            url=account.webhook_url,
            auth_token=account.auth_token,
            params=params,
        )
        inbound.delivery_id = (await self._deliver(account.account_sid, delivery)).id
        return {"id": sid}


# ---------------------------------------------------------------------- helpers


def _check_twilio_form(form: dict[str, list[str]], account: TwilioAccount) -> None:
    """Twilio's synchronous validation of a Messages.json POST, with its codes."""

    def one(name: str) -> str | None:
        values = form.get(name)
        return values[-1] if values else None

    to, sender = one("To"), one("From")
    body, content_sid = one("Body"), one("ContentSid")
    if not to:
        raise TwilioError(21604, "A 'To' phone number is required.")
    if not sender and not one("MessagingServiceSid"):
        raise TwilioError(21603, "A 'From' phone number is required.")
    if not re.fullmatch(r"whatsapp:\+\d{5,15}", to):
        raise TwilioError(21211, f"Invalid 'To' Phone Number: {to}")
    if sender and sender != f"whatsapp:{account.number}":
        raise TwilioError(63007, "Twilio could not find a Channel with the specified From address")
    if not body and not content_sid and not form.get("MediaUrl"):
        raise TwilioError(21619, "A text message body or media urls must be specified.")
    if body and len(body) > 1600:
        raise TwilioError(21617, "The concatenated message body exceeds the 1600 limit.")
    variables = one("ContentVariables")
    if variables is not None:
        try:
            parsed = json.loads(variables)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise TwilioError(21656, "The ContentVariables Parameter is invalid.")


def _media_ids(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(parameter path, media id)`` of every media a send refers to by id: the media
    message itself, an interactive header, template header parameters."""
    found: list[tuple[str, str]] = []
    kind = body.get("type")

    def take(path: str, node: Any) -> None:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found.append((path, node["id"]))

    if kind in MEDIA_TYPES:
        take(f"{kind}['id']", body.get(kind))
    elif kind == "interactive":
        header = (body.get("interactive") or {}).get("header") or {}
        if isinstance(header, dict) and header.get("type") in MEDIA_TYPES:
            take(f"interactive['header']['{header['type']}']['id']", header.get(header["type"]))
    elif kind == "template":
        components = (body.get("template") or {}).get("components") or []
        for c, component in enumerate(components if isinstance(components, list) else []):
            parameters = component.get("parameters") if isinstance(component, dict) else None
            for p, parameter in enumerate(parameters if isinstance(parameters, list) else []):
                ptype = parameter.get("type") if isinstance(parameter, dict) else None
                if ptype in MEDIA_TYPES:
                    take(
                        f"template['components'][{c}]['parameters'][{p}]['{ptype}']['id']",
                        parameter.get(ptype),
                    )
    return found


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode()


def _cursor(value: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(value.encode()).decode())
    except (ValueError, binascii.Error):
        raise GraphError(100, "Param after/before is not a valid cursor.") from None


def _basic(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
    except (ValueError, binascii.Error):
        return None, None
    return user, password


INBOUND_KINDS = (
    "text",
    "button_reply",
    "list_reply",
    "button",
    "image",
    "location",
    "reaction",
    "order",
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
    if kind in ("button_reply", "list_reply"):
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


def _twilio_fields(kind: str, content: dict[str, Any]) -> dict[str, str]:
    part = content.get(kind, {})
    if kind == "text":
        return {"Body": part["body"]}
    if kind == "interactive":
        reply = part.get("button_reply") or part.get("list_reply") or {}
        if "button_reply" in part:
            return {
                "MessageType": "button",
                "Body": reply.get("title", ""),
                "ButtonText": reply.get("title", ""),
                "ButtonPayload": reply.get("id", ""),
            }
        return {
            "MessageType": "interactive",
            "Body": reply.get("title", ""),
            "ListId": reply.get("id", ""),
            "ListTitle": reply.get("title", ""),
        }
    if kind == "button":
        return {
            "MessageType": "button",
            "Body": part.get("text", ""),
            "ButtonText": part.get("text", ""),
            "ButtonPayload": part.get("payload", ""),
        }
    if kind == "location":
        out = {
            "MessageType": "location",
            "Latitude": str(part.get("latitude", "")),
            "Longitude": str(part.get("longitude", "")),
        }
        if part.get("address"):
            out["Address"] = str(part["address"])
        if part.get("name"):
            out["Label"] = str(part["name"])
        return out
    if kind == "image":
        return {
            "MessageType": "image",
            "Body": str(part.get("caption", "")),
            "NumMedia": "1",
            "MediaContentType0": str(part.get("mime_type", "image/jpeg")),
            "MediaUrl0": str(part.get("link") or f"https://api.twilio.com/media/{part['id']}"),
        }
    return {"MessageType": kind, "Body": json.dumps(part)}
