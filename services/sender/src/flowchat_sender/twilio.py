"""Twilio's WhatsApp API: form-encoded ``Messages.json`` with Basic auth (SID:token).

Text → ``Body``; media by link → ``MediaUrl`` (+ ``Body`` for the caption);
templates → ``ContentSid`` (the template name is the Content SID, ``HX…``) with
``ContentVariables`` (positional ``{"1": …}`` or by ``parameter_name``). Twilio has no
equivalent here for media ids, reactions, interactive, location or contact messages;
those fail with a clear reason instead of being sent half-right. Nor can it address a
customer by BSUID (a phone number only): the sender fails such a command with its own
code before the call.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
import orjson

from flowchat_contracts import (
    MediaContent,
    OutboundCommand,
    ProviderError,
    TemplateContent,
    TextContent,
    is_bsuid,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_sender import fates, provider_http


def _whatsapp(number: str) -> str:
    number = number.strip()
    if number.startswith("whatsapp:"):
        return number
    return "whatsapp:" + (number if number.startswith("+") else "+" + number)


def template_variables(content: TemplateContent) -> dict[str, str]:
    """Every text-like parameter of the template, keyed by name or by position (1-based)."""
    out: dict[str, str] = {}
    position = 0
    for component in content.components:
        for p in component.parameters:
            position += 1
            value = p.text or p.payload or p.fallback_value or p.link or ""
            out[p.parameter_name or str(position)] = value
    return out


def build_form(
    command: OutboundCommand, account: AccountCredentials, status_callback: str | None
) -> list[tuple[str, str]]:
    """The form fields of the Twilio request (raises ``ValueError`` when unsupported)."""
    if not account.twilio_number:
        raise ValueError("the account has no Twilio number")
    form: list[tuple[str, str]] = [
        ("To", _whatsapp(command.to)),
        ("From", _whatsapp(account.twilio_number)),
    ]
    content = command.content
    if isinstance(content, TextContent):
        form.append(("Body", content.body))
    elif isinstance(content, MediaContent):
        if not content.link:
            raise ValueError("Twilio sends media by URL only; this command has a media id")
        form.append(("MediaUrl", content.link))
        if content.caption:
            form.append(("Body", content.caption))
    elif isinstance(content, TemplateContent):
        form.append(("ContentSid", content.name))
        variables = template_variables(content)
        if variables:
            form.append(("ContentVariables", orjson.dumps(variables).decode()))
    else:
        raise ValueError(f"Twilio cannot send {content.type} messages")
    if status_callback:
        form.append(("StatusCallback", status_callback))
    return form


def parse_error(status: int, raw: bytes) -> ProviderError:
    try:
        data = orjson.loads(raw)
        code = int(data["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return ProviderError(
            code=20003 if status == 401 else fates.HTTP_ERROR,
            title=f"HTTP {status}",
            message=raw[:300].decode("utf-8", "replace"),
        )
    return ProviderError(
        code=code,
        title=f"HTTP {status}",
        message=str(data.get("message", "")),
        details=str(data.get("more_info", "")),
    )


class TwilioAdapter(provider_http.HttpAdapter):
    name: Literal["twilio"] = "twilio"
    ok = frozenset({200, 201})

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        twilio_url: str,
        gateway_url: str | None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(session, timeout_s=timeout_s)
        self._base = twilio_url.rstrip("/")
        self._gateway = gateway_url.rstrip("/") if gateway_url else None

    def supports(self, command: OutboundCommand) -> bool:
        content = command.content
        if isinstance(content, MediaContent):
            return content.link is not None
        return isinstance(content, TextContent | TemplateContent)

    def addresses(self, to: str) -> bool:
        """Twilio sends to ``whatsapp:+<phone>`` only: a BSUID cannot be addressed."""
        return not is_bsuid(to)

    def status_callback(self, account_id: str) -> str | None:
        return f"{self._gateway}/webhooks/twilio/{account_id}" if self._gateway else None

    def request(
        self, account: AccountCredentials, command: OutboundCommand
    ) -> tuple[str, list[tuple[str, str]], dict[str, str]]:
        sid = account.twilio_account_sid or ""
        form = build_form(command, account, self.status_callback(account.account_id))
        url = f"{self._base}/2010-04-01/Accounts/{sid}/Messages.json"
        auth = aiohttp.encode_basic_auth(sid, account.twilio_auth_token or "")
        return url, form, {"Authorization": auth}

    def message_id(self, answer: Any) -> Any:
        return answer["sid"]

    def parse_error(self, status: int, raw: bytes) -> ProviderError:
        return parse_error(status, raw)
