"""Meta's Cloud API, played over the sandbox's state: sends, their status webhooks, the
number and its profile, media, templates, and a customer's message as a webhook.

A send is checked in Meta's order: faults (latency, 5xx, timeouts) → token (190) →
injected error code → schema and limits (100/131008/131009) → throughput (130429) →
template (132001/132000/132012/132015/132016) or the 24 h window (131047) → media ids
(100: unknown, expired or another WABA's) → pair rate (131056). A customer's inbound
message uses up the number's throughput too. Accepted sends go to the ledger, and
``sent`` → ``delivered`` → ``read`` (or ``failed`` with 131026/131050) status webhooks
follow, ``status_delay_s`` apart (out of order or batched when the customer or the number
is set up so).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
import uuid
from typing import TYPE_CHECKING, Any

from flowchat_sandbox import metrics
from flowchat_sandbox.errors import META_ERRORS, ControlError, GraphError
from flowchat_sandbox.media import (
    API_MEDIA_TTL_S,
    DOWNLOAD_PATH,
    INBOUND_MEDIA_TTL_S,
    PLACEHOLDER_JPEG,
    Media,
    MediaRefused,
    check_upload,
    decode_base64,
)
from flowchat_sandbox.models import (
    BSUID,
    Customer,
    Inbound,
    Number,
    Sent,
    country_of,
    iso,
    new_wamid,
    wa_id_of,
)
from flowchat_sandbox.spec import MEDIA_TYPES, validate_read
from flowchat_sandbox.templates import CATEGORIES, Template, check_recipient, check_send
from flowchat_sandbox.webhooks import messages_value, meta_envelope

if TYPE_CHECKING:
    from flowchat_sandbox.service import Sandbox

#: What ``GET /{phone_number_id}`` answers without ``fields=``.
DEFAULT_NUMBER_FIELDS = (
    "verified_name",
    "code_verification_status",
    "display_phone_number",
    "quality_rating",
    "platform_type",
    "throughput",
    "id",
)
#: Every field of a WhatsApp Business Phone Number that Meta documents (its Graph API
#: reference, as pywa 4.5 asks for them, and the v23.0 spec's phone-number schemas).
NUMBER_FIELDS = frozenset(
    {
        "account_mode", "certificate", "code_verification_status",
        "conversational_automation", "country_code", "country_dial_code",
        "display_phone_number", "eligibility_for_api_business_global_search",
        "health_status", "host_platform", "id", "is_official_business_account",
        "is_on_biz_app", "is_pin_enabled", "is_preverified_number", "last_onboarded_time",
        "messaging_limit_tier", "name_status", "new_certificate", "new_name_status",
        "platform_type", "quality_rating", "quality_score", "search_visibility", "status",
        "throughput", "unified_cert_status", "username", "verified_name",
        "webhook_configuration", "whatsapp_business_manager_messaging_limit",
    }
)  # fmt: skip
#: ``summary=`` of a template list: what each named summary field counts.
TEMPLATE_LIMIT = 250
PROFILE_LIMITS = {"about": 139, "address": 256, "description": 256, "email": 128}
PROFILE_FIELDS = frozenset(
    {"about", "address", "description", "email", "websites", "vertical", "profile_picture_handle"}
)


def _object_missing(object_id: str, verb: str = "get") -> GraphError:
    return GraphError(
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        subcode=33,
    )


class CloudApi:
    """The Graph API's answers; state and shared machinery are the :class:`Sandbox`'s."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    # ------------------------------------------------------------------ Graph: auth

    def _authorize(
        self, object_id: str, token: str | None, *, waba_id: str | None = None, verb: str = "get"
    ) -> None:
        if not token or token not in self.sandbox.tokens or not self.sandbox.tokens[token]:
            raise GraphError(190, "Malformed access token or the token has expired.")
        allowed = self.sandbox.tokens[token]
        if object_id in allowed:
            return
        wabas = {self.sandbox.numbers[p].waba_id for p in allowed if p in self.sandbox.numbers}
        target = waba_id or (
            self.sandbox.numbers[object_id].waba_id if object_id in self.sandbox.numbers else None
        )
        if target is None or target not in wabas:
            raise _object_missing(object_id, verb)

    def _number(self, phone_number_id: str, token: str | None, verb: str = "get") -> Number:
        self._authorize(phone_number_id, token, verb=verb)
        number = self.sandbox.numbers.get(phone_number_id)
        if number is None:
            raise _object_missing(phone_number_id, verb)
        return number

    # ------------------------------------------------------------------ Cloud API: send

    async def send_message(
        self, phone_number_id: str, token: str | None, raw: Any
    ) -> dict[str, Any]:
        with metrics.CountedSend("meta"):
            return await self._send_message(phone_number_id, token, raw)

    async def _send_message(
        self, phone_number_id: str, token: str | None, raw: Any
    ) -> dict[str, Any]:
        faults = self.sandbox.faults.get(phone_number_id)
        await self.sandbox.apply_faults(faults)
        number = self._number(phone_number_id, token, "post")
        code = self.sandbox.injected(faults)
        if code is not None:
            raise GraphError(code)
        if isinstance(raw, dict) and "status" in raw and "type" not in raw:
            return self._mark_read(number, raw)
        body = self.sandbox.validator.validate(raw)
        to, recipient, wa_id = self._addressee(body)
        mps = max(1, number.throughput_mps)
        if not self.sandbox.limits.allow(("mps", phone_number_id), period_s=1 / mps, burst=mps):
            raise GraphError(130429)
        customer = self.sandbox.customer(wa_id)
        now = self.sandbox.clock()
        fate: tuple[int, str, str] | None = None
        if body["type"] == "template":
            template = self._find_template(number.waba_id, body["template"])
            check_send(template, body["template"])
            assert template is not None
            check_recipient(template, by_bsuid=to is None)
            category = template.category.lower()
            if category == "marketing" and customer.opted_out_marketing:
                fate = self._fate(131050)
        else:
            category = "service"
            # The window is the person's, whichever id they wrote with or are sent to.
            last = self.sandbox.windows.get((phone_number_id, wa_id))
            if last is None or now - last > self.sandbox.settings.window_s:
                raise GraphError(131047)
        self._check_media_ids(number, body)
        if customer.undeliverable:
            fate = self._fate(131026)
        pair = ("pair", phone_number_id, wa_id)
        if not self.sandbox.limits.allow(
            pair,
            period_s=self.sandbox.settings.pair_rate_period_s,
            burst=self.sandbox.settings.pair_rate_burst,
        ):
            raise GraphError(131056)
        entry = Sent(
            id=new_wamid(customer.user_id if customer.phone_hidden else wa_id),
            provider="meta",
            channel=phone_number_id,
            to=to or recipient or "",
            recipient=recipient,
            wa_id=wa_id,
            type=body["type"],
            body=raw,
            category=category,
            at=now,
            biz_opaque_callback_data=body.get("biz_opaque_callback_data"),
            fate=fate,
        )
        self.sandbox.record(entry)
        if self.sandbox.settings.status_webhooks:
            self.sandbox.spawn(self._play_meta_statuses(number, entry, customer))
        message: dict[str, Any] = {"id": entry.id}
        if body["type"] == "template":
            message["message_status"] = "accepted"
        contact = (
            {"input": to, "wa_id": wa_id}
            if to
            else {"input": recipient, "user_id": customer.user_id}
        )
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}

    def _addressee(self, body: dict[str, Any]) -> tuple[str | None, str | None, str]:
        """``(to, recipient, wa_id)``: a phone number in ``to``, or else a BSUID or parent
        BSUID in ``recipient`` (``to`` wins when both are given, as Meta documents); the
        person is named by their ``wa_id`` either way."""
        to = body.get("to")
        if isinstance(to, str):
            wa_id = wa_id_of(to)
            if not 5 <= len(wa_id) <= 15:
                raise GraphError(100, f"Param to ({to}) is not a valid WhatsApp phone number.")
            return to, None, wa_id
        recipient = str(body["recipient"])
        if not BSUID.match(recipient):
            raise GraphError(
                100, f"Param recipient ({recipient}) is not a valid business-scoped user ID."
            )
        person = self.sandbox.user_ids.get(recipient)
        if person is None:
            raise GraphError(
                100, f"Param recipient ({recipient}) is not a WhatsApp user of this business."
            )
        return None, recipient, person

    @staticmethod
    def _fate(code: int) -> tuple[int, str, str]:
        title, details, _ = META_ERRORS[code]
        return (code, title, details)

    def _find_template(self, waba_id: str, send: dict[str, Any]) -> Template | None:
        language = send.get("language") or {}
        return self.sandbox.find_template(waba_id, send.get("name"), language.get("code"))

    def _mark_read(self, number: Number, raw: dict[str, Any]) -> dict[str, Any]:
        message_id = validate_read(raw)
        inbound = self.sandbox.inbound.get(message_id)
        if inbound is None or inbound.channel != number.phone_number_id:
            raise GraphError(100, f"Param message_id ({message_id}) is not a valid message id.")
        inbound.read = True
        return {"success": True}

    # ------------------------------------------------------------------ Cloud API: statuses

    async def _play_meta_statuses(self, number: Number, entry: Sent, customer: Customer) -> None:
        """``sent`` → ``delivered`` → ``read`` (or ``failed``), ``status_delay_s`` apart.

        Realism knobs, per customer or per number (faults): ``out_of_order_statuses``
        posts ``read`` before ``delivered``; ``batch_statuses`` posts every status of
        the message in one webhook (its ``statuses`` list has several items).
        """
        delay = self.sandbox.settings.status_delay_s
        if entry.fate is not None:
            plan = ["failed"]
        else:
            plan = ["sent"]
            if customer.delivers:
                plan.append("delivered")
                if customer.reads:
                    plan.append("read")
        faults = self.sandbox.faults.get(number.phone_number_id)
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

    def _conversation(self, entry: Sent, now: float, status: str) -> dict[str, Any]:
        key = (entry.channel, entry.wa_id, entry.category)
        current = self.sandbox.conversations.get(key)
        if current is None or current[1] <= now:
            current = (uuid.uuid4().hex, now + 24 * 3600)
            self.sandbox.conversations[key] = current
        out: dict[str, Any] = {"id": current[0]}
        if status == "sent":  # Meta: "only included with sent status"
            out["expiration_timestamp"] = str(int(current[1]))
        out["origin"] = {"type": entry.category}
        return out

    def _status_item(self, entry: Sent, status: str) -> tuple[dict[str, Any], float]:
        """One ``statuses[]`` item as of now (Meta stamps the event, not the POST).

        Sent to a phone: ``recipient_id``; the BSUID (``recipient_user_id``, and the
        parent's) always, except on ``failed`` for a send to a phone."""
        now = self.sandbox.clock()
        customer = self.sandbox.customer(entry.wa_id)
        item: dict[str, Any] = {"id": entry.id, "status": status, "timestamp": str(int(now))}
        if entry.recipient is None:
            item["recipient_id"] = entry.wa_id
        if status != "failed" or entry.recipient is not None:
            item["recipient_user_id"] = customer.user_id
            if customer.parent_user_id:
                item["recipient_parent_user_id"] = customer.parent_user_id
        if entry.biz_opaque_callback_data is not None:
            item["biz_opaque_callback_data"] = entry.biz_opaque_callback_data
        if status == "failed" and entry.fate is not None:
            error = GraphError(entry.fate[0], entry.fate[2]).status_error()
            item["errors"] = [error]
            entry.errors.append(error)
        else:
            item["conversation"] = self._conversation(entry, now, status)
            service = entry.category == "service"
            item["pricing"] = {
                "billable": not service,
                "pricing_model": "PMP",
                "category": entry.category,
                "type": "free_customer_service" if service else "regular",
            }
        return item, now

    def _status_contacts(self, entry: Sent, statuses: list[str]) -> list[dict[str, Any]]:
        """``value.contacts`` of a status webhook: the person, on sent/delivered/read only
        (none on ``failed``); the username from ``delivered`` on; the phone when the send
        named it or the person shows it."""
        if "failed" in statuses:
            return []
        customer = self.sandbox.customer(entry.wa_id)
        contact = customer.contact(username=any(s != "sent" for s in statuses), name=False)
        if entry.recipient is None and "wa_id" not in contact:
            contact = {**contact, "wa_id": entry.wa_id}
        return [contact]

    async def _post_statuses(
        self, number: Number, entry: Sent, items: list[tuple[dict[str, Any], float]]
    ) -> None:
        """One webhook carrying ``items``; each is recorded in the ledger as it is posted."""
        contacts = self._status_contacts(entry, [item["status"] for item, _ in items])
        value = messages_value(
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            **({"contacts": contacts} if contacts else {}),
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
        delivery = await self.sandbox.deliver_meta(number, "status", payload)
        for record in records:
            record["delivery_id"] = delivery.id

    # ------------------------------------------------------------------ Cloud API: number

    def get_number(
        self, phone_number_id: str, token: str | None, fields_param: str | None
    ) -> dict[str, Any]:
        """``GET /{phone_number_id}``: the default fields, or those ``fields=`` names; every
        field Meta documents for the node is answered (a field without a value here is
        left out, as Meta does), an unknown one is refused with Meta's error."""
        number = self._number(phone_number_id, token)
        full = self._number_fields(number)
        if not fields_param:
            return {name: full[name] for name in DEFAULT_NUMBER_FIELDS}
        wanted = [f.strip() for f in fields_param.split(",") if f.strip()]
        for name in wanted:
            if name not in NUMBER_FIELDS:
                raise GraphError(
                    100,
                    f"Tried accessing nonexisting field ({name}) on node type "
                    "(WhatsAppBusinessPhoneNumber)",
                )
        return {name: full[name] for name in (*wanted, "id") if full.get(name) is not None}

    def _number_fields(self, number: Number) -> dict[str, Any]:
        mps = number.throughput_mps
        digits = wa_id_of(number.display_phone_number)
        country, dial = country_of(digits)
        available = {"can_send_message": "AVAILABLE"}
        return {
            "id": number.phone_number_id,
            "display_phone_number": number.display_phone_number,
            "verified_name": number.verified_name,
            "quality_rating": number.quality_rating,
            "quality_score": {"score": number.quality_rating},
            "throughput": {"level": "HIGH" if mps >= 1000 else "STANDARD"},
            "messaging_limit_tier": number.messaging_limit_tier,
            "whatsapp_business_manager_messaging_limit": number.messaging_limit_tier,
            "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API",
            "host_platform": "CLOUD_API",
            "name_status": "APPROVED",
            "new_name_status": "NONE",
            "status": "CONNECTED",
            "account_mode": "LIVE",
            "unified_cert_status": "APPROVED",
            "conversational_automation": {
                "id": number.phone_number_id,
                "enable_welcome_message": False,
                "prompts": [],
                "commands": [],
            },
            "webhook_configuration": {"application": number.webhook_url},
            "is_on_biz_app": False,
            "is_official_business_account": False,
            "is_pin_enabled": False,
            "is_preverified_number": False,
            "search_visibility": "VISIBLE",
            "eligibility_for_api_business_global_search": "NON_ELIGIBLE",
            "health_status": {
                **available,
                "entities": [
                    {"entity_type": "PHONE_NUMBER", "id": number.phone_number_id, **available},
                    {"entity_type": "WABA", "id": number.waba_id, **available},
                ],
            },
            "certificate": base64.b64encode(f"sandbox:{number.phone_number_id}".encode()).decode(),
            "new_certificate": None,
            "last_onboarded_time": time.strftime(
                "%Y-%m-%dT%H:%M:%S+0000", time.gmtime(number.registered_at)
            ),
            "country_code": country,
            "country_dial_code": dial,
            "username": None,
        }

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
        now = self.sandbox.clock()
        ttl = API_MEDIA_TTL_S if source == "api" else INBOUND_MEDIA_TTL_S
        media = Media(
            id=media_id or str(self.sandbox.numeric_id()),
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
        self.sandbox.media[media.id] = media
        return media

    def _prune_media(self, now: float) -> None:
        if len(self.sandbox.media) > 10_000:
            for media_id in [k for k, m in self.sandbox.media.items() if m.expired(now)]:
                del self.sandbox.media[media_id]

    def _live_media(self, media_id: str, token: str | None, verb: str) -> Media:
        """A media object the token may use: same WABA as one of the token's numbers."""
        media = self.sandbox.media.get(media_id)
        if media is None or media.expired(self.sandbox.clock()):
            self._authorize_token(token)
            raise _object_missing(media_id, verb)
        self._authorize(media_id, token, waba_id=media.waba_id, verb=verb)
        return media

    def _authorize_token(self, token: str | None) -> None:
        if not token or not self.sandbox.tokens.get(token):
            raise GraphError(190, "Malformed access token or the token has expired.")

    def media_url(
        self, media_id: str, token: str | None, base_url: str, phone_number_id: str | None
    ) -> dict[str, Any]:
        media = self._live_media(media_id, token, "get")
        if phone_number_id is not None and phone_number_id != media.phone_number_id:
            raise _object_missing(media_id)
        metrics.MEDIA.labels("retrieve", "ok").inc()
        query = self.sandbox.urls.query(media.id, self.sandbox.clock())
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
        del self.sandbox.media[media.id]
        metrics.MEDIA.labels("delete", "ok").inc()
        return {"success": True}

    def download_media(
        self, token: str | None, media_id: str, expires: str, mac: str
    ) -> tuple[bytes, str]:
        """The bytes behind a URL from :meth:`media_url` (bearer token required, 5 min)."""
        self._authorize_token(token)
        now = self.sandbox.clock()
        if not self.sandbox.urls.valid(media_id, expires, mac, now):
            metrics.MEDIA.labels("download", "expired_url").inc()
            raise ControlError(404, "not_found", "this media URL is invalid or expired")
        media = self.sandbox.media.get(media_id)
        if media is None or media.expired(now):
            metrics.MEDIA.labels("download", "gone").inc()
            raise ControlError(404, "not_found", "this media was deleted or has expired")
        self._authorize(media_id, token, waba_id=media.waba_id)
        metrics.MEDIA.labels("download", "ok").inc()
        return media.data, media.mime_type

    def _check_media_ids(self, number: Number, body: dict[str, Any]) -> None:
        """Every media ``id`` a message uses must be a live upload of the number's WABA."""
        for path, media_id in _media_ids(body):
            media = self.sandbox.media.get(media_id)
            if (
                media is None
                or media.expired(self.sandbox.clock())
                or media.waba_id != number.waba_id
            ):
                raise GraphError(
                    100,
                    f"Param {path} is not a valid whatsapp business account media attachment ID.",
                )

    # ------------------------------------------------------------------ Cloud API: templates

    def list_templates(
        self, waba_id: str, token: str | None, params: dict[str, str]
    ) -> dict[str, Any]:
        self._authorize(waba_id, token, waba_id=waba_id)
        items = [t for t in self.sandbox.templates.values() if t.waba_id == waba_id]
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
        if params.get("summary"):
            out["summary"] = self._template_summary(waba_id, len(items), params["summary"])
        if page:
            out["paging"] = {
                "cursors": {"before": _encode(start), "after": _encode(start + len(page) - 1)}
            }
            if start + len(page) < len(items):
                out["paging"]["next"] = f"?limit={limit}&after={_encode(start + len(page) - 1)}"
        return out

    def _template_summary(self, waba_id: str, total: int, asked: str) -> dict[str, Any]:
        """``summary=true`` or a list of summary fields (unknown names are ignored)."""
        in_waba = sum(1 for t in self.sandbox.templates.values() if t.waba_id == waba_id)
        known: dict[str, Any] = {
            "total_count": total,
            "message_template_count": in_waba,
            "message_template_limit": TEMPLATE_LIMIT,
            "are_translations_complete": True,
        }
        names = [n.strip() for n in asked.split(",") if n.strip()]
        if asked.strip().lower() == "true":
            names = ["total_count"]
        return {name: known[name] for name in names if name in known}

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
            template = self.sandbox.create_template(
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
        self.sandbox.spawn(self._approve_later(template.id))
        return {"id": template.id, "status": template.status, "category": template.category}

    async def _approve_later(self, template_id: str) -> None:
        await asyncio.sleep(self.sandbox.settings.status_delay_s)
        template = self.sandbox.templates.get(template_id)
        if template is not None and template.status == "PENDING":
            await self.sandbox.set_template_status(template_id, "APPROVED")

    def get_template(self, template_id: str, token: str | None) -> dict[str, Any]:
        template = self.sandbox.templates.get(template_id)
        if template is None:
            raise _object_missing(template_id)
        self._authorize(template_id, token, waba_id=template.waba_id)
        return template.as_graph()

    # ------------------------------------------------------------------ customers

    async def customer_writes(
        self,
        customer: Customer,
        request: dict[str, Any],
        kind: str,
        content: dict[str, Any],
        data_base64: str | None,
    ) -> dict[str, Any]:
        """The customer's message, as the number's ``messages`` webhook."""
        wa_id = customer.wa_id
        number = self.sandbox.numbers.get(str(request.get("phone_number_id")))
        if number is None:
            raise ControlError(404, "not_found", "unknown phone_number_id")
        if kind == "image" and not content["image"].get("link"):
            content["image"] = self._inbound_image(number, content["image"], data_base64)
        # A customer's message is never refused, but it uses up the number's throughput.
        self.sandbox.limits.consume(
            ("mps", number.phone_number_id), period_s=1 / max(1, number.throughput_mps)
        )
        now = self.sandbox.clock()
        message: dict[str, Any] = self._sender(customer)
        message.update(
            {
                "id": new_wamid(customer.user_id if customer.phone_hidden else wa_id),
                "timestamp": str(int(now)),
                "type": kind,
                **content,
            }
        )
        context = request.get("context")
        if context:
            message["context"] = {
                "from": wa_id_of(number.display_phone_number),
                "id": context["message_id"],
            }
        value = messages_value(
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            contacts=[customer.contact()],
            messages=[message],
        )
        self.sandbox.windows[(number.phone_number_id, wa_id)] = now
        inbound = Inbound(message["id"], "meta", number.phone_number_id, wa_id, kind, message, now)
        self.sandbox.inbound[inbound.id] = inbound
        self.sandbox.transcripts.setdefault(wa_id, []).append(inbound)
        metrics.INBOUND.labels("meta").inc()
        payload = meta_envelope(number.waba_id, "messages", value)
        delivery = await self.sandbox.deliver_meta(number, "message", payload)
        inbound.delivery_id = delivery.id
        return {"id": inbound.id}

    @staticmethod
    def _sender(customer: Customer) -> dict[str, Any]:
        """A message's sender fields: ``from`` (the phone, unless hidden behind a
        username), ``from_user_id`` always, ``from_parent_user_id`` when enabled."""
        out: dict[str, Any] = {} if customer.phone_hidden else {"from": customer.wa_id}
        out["from_user_id"] = customer.user_id
        if customer.parent_user_id:
            out["from_parent_user_id"] = customer.parent_user_id
        return out

    async def user_id_changed(self, some_id: str, phone_number_id: str) -> dict[str, Any]:
        """The person gets a new BSUID: Meta's ``user_changed_user_id`` system message
        (field ``messages``, no ``contacts``; ``from`` only when the phone is visible)."""
        number = self.sandbox.numbers.get(phone_number_id)
        if number is None:
            raise ControlError(404, "not_found", "unknown phone_number_id")
        before, after = self.sandbox.change_user_id(some_id)
        system: dict[str, Any] = {
            "body": f"User {after.name} changed their user ID",
            "type": "user_changed_user_id",
            "user_id": after.user_id,
        }
        if after.parent_user_id:
            system["parent_user_id"] = after.parent_user_id
        system["previous_user_id"] = before.user_id
        if before.parent_user_id:
            system["previous_parent_user_id"] = before.parent_user_id
        message: dict[str, Any] = {} if after.phone_hidden else {"from": after.wa_id}
        message.update(
            {
                "id": new_wamid(after.user_id),
                "timestamp": str(int(self.sandbox.clock())),
                "type": "system",
                "system": system,
            }
        )
        value = messages_value(
            display_phone_number=number.display_phone_number,
            phone_number_id=number.phone_number_id,
            messages=[message],
        )
        payload = meta_envelope(number.waba_id, "messages", value)
        delivery = await self.sandbox.deliver_meta(number, "system", payload)
        return {"id": message["id"], "delivery_id": delivery.id, "customer": after.public()}

    async def preference_changed(
        self, some_id: str, phone_number_id: str, value: str, field_name: str
    ) -> dict[str, Any]:
        """The person taps "stop" (or "resume") on marketing messages in WhatsApp: the
        ``user_preferences`` webhook (``field_name`` may be the older
        ``user_marketing_preferences`` for code that still expects it); a stopped
        customer's marketing templates then fail with 131050."""
        number = self.sandbox.numbers.get(phone_number_id)
        if number is None:
            raise ControlError(404, "not_found", "unknown phone_number_id")
        customer = self.sandbox.customer_by_id(some_id)
        if value in ("stop", "resume"):
            customer.opted_out_marketing = value == "stop"
        now = int(self.sandbox.clock())
        item: dict[str, Any] = {} if customer.phone_hidden else {"wa_id": customer.wa_id}
        item["user_id"] = customer.user_id
        if customer.parent_user_id:
            item["parent_user_id"] = customer.parent_user_id
        item.update(
            {
                "detail": f"User requested to {value} marketing messages",
                "category": "marketing_messages",
                "value": value,
                "timestamp": now,  # an integer here, unlike elsewhere
            }
        )
        payload = meta_envelope(
            number.waba_id,
            field_name,
            messages_value(
                display_phone_number=number.display_phone_number,
                phone_number_id=number.phone_number_id,
                contacts=[customer.contact()],
                user_preferences=[item],
            ),
        )
        delivery = await self.sandbox.deliver_meta(number, "user_preferences", payload)
        return {"delivery_id": delivery.id, "customer": customer.public()}

    def _inbound_image(
        self, number: Number, image: dict[str, Any], data_base64: str | None
    ) -> dict[str, Any]:
        """Store what the customer sent as media (7 days) and describe it as Meta does."""
        data = decode_base64(data_base64) if data_base64 else None
        mime_type = str(image.get("mime_type") or "image/jpeg")
        data = data if data is not None else PLACEHOLDER_JPEG
        try:
            check_upload(mime_type, len(data))
        except MediaRefused as exc:
            raise ControlError(422, "invalid_request", f"image: {exc}") from None
        given = image.get("id")
        media_id = str(given) if given and str(given) not in self.sandbox.media else None
        media = self._store_media(number, mime_type, data, "inbound", media_id=media_id)
        out = {k: v for k, v in image.items() if k not in ("id", "sha256", "link")}
        return {**out, "mime_type": mime_type, "sha256": media.sha256_base64, "id": media.id}


# ---------------------------------------------------------------------- helpers


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
