"""Twilio's Messages API for WhatsApp, played over the sandbox's state: sends (with
Twilio's synchronous checks and codes), message resources, status callbacks, and a
customer's message as Twilio's inbound webhook (form-encoded, signed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from flowchat_sandbox import metrics
from flowchat_sandbox.errors import ControlError, TwilioError
from flowchat_sandbox.media import PLACEHOLDER_JPEG, TWILIO_CDN_PATH, TwilioMedia
from flowchat_sandbox.models import (
    Customer,
    Inbound,
    Sent,
    TwilioAccount,
    iso,
    new_twilio_sid,
    wa_id_of,
)

if TYPE_CHECKING:
    from flowchat_sandbox.service import Sandbox

TWILIO_STATUS = {"failed": "failed", "sent": "sent", "delivered": "delivered", "read": "read"}


class TwilioApi:
    """Twilio's answers; state and shared machinery are the :class:`Sandbox`'s."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def _account(self, account_sid: str, authorization: str | None) -> TwilioAccount:
        account = self.sandbox.twilio_accounts.get(account_sid)
        user, password = _basic(authorization)
        if account is None or user != account_sid or password != account.auth_token:
            raise TwilioError(20003, "Authenticate", status=401)
        return account

    async def send(
        self, account_sid: str, authorization: str | None, form: dict[str, list[str]]
    ) -> dict[str, Any]:
        with metrics.CountedSend("twilio"):
            return await self._send(account_sid, authorization, form)

    async def _send(
        self, account_sid: str, authorization: str | None, form: dict[str, list[str]]
    ) -> dict[str, Any]:
        faults = self.sandbox.faults.get(account_sid)
        await self.sandbox.apply_faults(faults, twilio=True)
        account = self._account(account_sid, authorization)
        code = self.sandbox.injected(faults)
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
        if not self.sandbox.limits.allow(("mps", account_sid), period_s=1 / mps, burst=mps):
            raise TwilioError(20429, "Too Many Requests", status=429)
        wa_id = wa_id_of(to)
        customer = self.sandbox.customer(wa_id)
        now = self.sandbox.clock()
        fate: tuple[int, str, str] | None = None
        if not content_sid:
            last = self.sandbox.windows.get((account.number, wa_id))
            if last is None or now - last > self.sandbox.settings.window_s:
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
        self.sandbox.record(entry)
        callback = one("StatusCallback")
        if self.sandbox.settings.status_webhooks:
            self.sandbox.spawn(self._play_statuses(account, entry, customer, callback))
        return self._resource(account, entry, body or "", len(media))

    @staticmethod
    def _resource(account: TwilioAccount, entry: Sent, body: str, num_media: int) -> dict[str, Any]:
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

    def message(
        self, account_sid: str, authorization: str | None, message_sid: str
    ) -> dict[str, Any]:
        account = self._account(account_sid, authorization)
        entry = self.sandbox.ledger.get(message_sid)
        if entry is None or entry.provider != "twilio" or entry.channel != account.number:
            raise TwilioError(
                20404, f"The requested resource {message_sid} was not found", status=404
            )
        body = entry.body.get("Body", "") if isinstance(entry.body, dict) else ""
        media = entry.body.get("MediaUrl", []) if isinstance(entry.body, dict) else []
        resource = self._resource(account, entry, str(body), len(media))
        resource["status"] = TWILIO_STATUS.get(entry.status, "queued")
        if entry.fate is not None:
            resource["error_code"] = entry.fate[0]
            resource["error_message"] = entry.fate[2]
        return resource

    async def _play_statuses(
        self, account: TwilioAccount, entry: Sent, customer: Customer, callback: str | None
    ) -> None:
        delay = self.sandbox.settings.status_delay_s
        await asyncio.sleep(delay)
        if entry.fate is not None:
            await self._status(account, entry, "failed", callback)
            return
        await self._status(account, entry, "sent", callback)
        if not customer.delivers:
            return
        await asyncio.sleep(delay)
        await self._status(account, entry, "delivered", callback)
        if not customer.reads:
            return
        await asyncio.sleep(delay)
        await self._status(account, entry, "read", callback)

    async def _status(
        self, account: TwilioAccount, entry: Sent, status: str, callback: str | None
    ) -> None:
        now = self.sandbox.clock()
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
            delivery = self.sandbox.webhooks.twilio(
                kind="twilio_status",
                key=account.account_sid,
                url=callback,
                auth_token=account.auth_token,
                params=params,
            )
            record["delivery_id"] = (await self.sandbox.deliver(account.account_sid, delivery)).id

    async def customer_writes(
        self,
        customer: Customer,
        request: dict[str, Any],
        kind: str,
        content: dict[str, Any],
        data: bytes | None = None,
        base_url: str = "https://api.twilio.com",
    ) -> dict[str, Any]:
        number = "+" + wa_id_of(str(request["twilio_number"]))
        account = self.sandbox.twilio_accounts.get(self.sandbox.twilio_numbers.get(number, ""))
        if account is None:
            raise ControlError(404, "not_found", "unknown twilio_number")
        sid = new_twilio_sid()
        if kind == "image" and not content["image"].get("link"):
            media = self._store_media(account, sid, content["image"], data)
            content["image"]["link"] = (
                f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account.account_sid}"
                f"/Messages/{sid}/Media/{media.sid}"
            )
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
        now = self.sandbox.clock()
        self.sandbox.limits.consume(
            ("mps", account.account_sid), period_s=1 / max(1, account.throughput_mps)
        )
        self.sandbox.windows[(account.number, customer.wa_id)] = now
        inbound = Inbound(sid, "twilio", account.number, customer.wa_id, kind, content, now)
        self.sandbox.inbound[sid] = inbound
        self.sandbox.transcripts.setdefault(customer.wa_id, []).append(inbound)
        metrics.INBOUND.labels("twilio").inc()
        delivery = self.sandbox.webhooks.twilio(
            kind="twilio_message",
            key=account.account_sid,
            url=account.webhook_url,
            auth_token=account.auth_token,
            params=params,
        )
        inbound.delivery_id = (await self.sandbox.deliver(account.account_sid, delivery)).id
        return {"id": sid}

    def _store_media(
        self, account: TwilioAccount, message_sid: str, image: dict[str, Any], data: bytes | None
    ) -> TwilioMedia:
        """What the customer sent, kept as the message's Media resource."""
        mime_type = str(image.get("mime_type") or "image/jpeg")
        data = data if data is not None else PLACEHOLDER_JPEG
        media = TwilioMedia(
            sid=new_twilio_sid("ME"),
            account_sid=account.account_sid,
            message_sid=message_sid,
            mime_type=mime_type,
            data=data,
            created_at=self.sandbox.clock(),
        )
        if len(self.sandbox.twilio_media) > 10_000:
            self.sandbox.twilio_media.pop(next(iter(self.sandbox.twilio_media)))
        self.sandbox.twilio_media[media.sid] = media
        return media

    def media_redirect(
        self,
        account_sid: str,
        authorization: str | None,
        message_sid: str,
        media_sid: str,
        base_url: str,
    ) -> str:
        """Where a Media resource's bytes are (basic auth required): a CDN URL."""
        self._account(account_sid, authorization)
        media = self.sandbox.twilio_media.get(media_sid)
        if media is None or media.account_sid != account_sid or media.message_sid != message_sid:
            raise TwilioError(
                20404, f"The requested resource {media_sid} was not found", status=404
            )
        query = self.sandbox.urls.query(f"tw:{media.sid}", self.sandbox.clock())
        return f"{base_url.rstrip('/')}{TWILIO_CDN_PATH}{media.sid}?{query}"

    def media_bytes(self, media_sid: str, expires: str, mac: str) -> tuple[bytes, str]:
        """The CDN's answer: the bytes, while the URL is valid (no credentials)."""
        media = self.sandbox.twilio_media.get(media_sid)
        valid = self.sandbox.urls.valid(f"tw:{media_sid}", expires, mac, self.sandbox.clock())
        if media is None or not valid:
            raise ControlError(403, "forbidden", "Request has expired")
        return media.data, media.mime_type


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


def _basic(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization or not authorization.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(authorization[6:].strip()).decode().partition(":")
    except (ValueError, binascii.Error):
        return None, None
    return user, password


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
