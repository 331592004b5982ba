"""Meta's Cloud API: build ``POST /{version}/{phone_number_id}/messages`` bodies and send them.

Bodies follow the spec's ``sendMessage`` request schema (the shared reference); a
unit test validates every content type against it. ``biz_opaque_callback_data``
carries FlowChat's message id, so status webhooks name the message even when the
send result was lost. A customer known only by a BSUID is addressed with ``recipient``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import aiohttp
import orjson

from flowchat_contracts import (
    ButtonsContent,
    CatalogContent,
    ContactsContent,
    CtaUrlContent,
    FlowContent,
    ListContent,
    LocationContent,
    MediaContent,
    OutboundCommand,
    ProductContent,
    ProductListContent,
    ProviderError,
    ReactionContent,
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    TextContent,
    is_bsuid,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_sender import fates, provider_http

JSON = dict[str, Any]


def build_message(command: OutboundCommand) -> JSON:
    """The Cloud API request body of ``command``.

    A phone number goes in ``to``; a BSUID (or parent BSUID) in ``recipient``, with no
    ``to`` (Meta's "Business-scoped user IDs": if both are given, ``to`` wins).
    """
    to = command.to
    body: JSON = {"messaging_product": "whatsapp", "recipient_type": "individual"}
    if is_bsuid(to):
        body["recipient"] = to
    else:
        body["to"] = to.lstrip("+")
    body["biz_opaque_callback_data"] = command.message_id
    if command.reply_to:
        body["context"] = {"message_id": command.reply_to}
    content = command.content
    if isinstance(content, TextContent):
        body["type"] = "text"
        body["text"] = {"body": content.body, "preview_url": content.preview_url}
    elif isinstance(content, MediaContent):
        body["type"] = content.type
        body[content.type] = _media(content)
    elif isinstance(content, TemplateContent):
        body["type"] = "template"
        body["template"] = _template(content)
    elif isinstance(content, INTERACTIVE):
        body["type"] = "interactive"
        body["interactive"] = _interactive(content)
    elif isinstance(content, ReactionContent):
        body["type"] = "reaction"
        body["reaction"] = {"message_id": content.message_id, "emoji": content.emoji}
    elif isinstance(content, LocationContent):
        body["type"] = "location"
        body["location"] = _without_none(
            {
                "latitude": content.latitude,
                "longitude": content.longitude,
                "name": content.name,
                "address": content.address,
            }
        )
    elif isinstance(content, ContactsContent):
        body["type"] = "contacts"
        body["contacts"] = [dict(c) for c in content.contacts]
    else:  # pragma: no cover - the contract's union is closed
        raise TypeError(f"unknown content {type(content).__name__}")
    return body


def _without_none(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if v is not None}


def _media(content: MediaContent) -> JSON:
    ref: JSON = {"id": content.media_id} if content.media_id else {"link": content.link}
    if content.caption is not None:
        ref["caption"] = content.caption
    if content.filename is not None:
        ref["filename"] = content.filename
    return ref


def _template(content: TemplateContent) -> JSON:
    out: JSON = {
        "name": content.name,
        "language": {"code": content.language, "policy": "deterministic"},
    }
    if content.components:
        out["components"] = [_component(c) for c in content.components]
    return out


def _component(component: TemplateComponent) -> JSON:
    out: JSON = {"type": component.type}
    if component.type == "button":
        out["sub_type"] = component.sub_type or "quick_reply"
        out["index"] = str(component.index or 0)
    out["parameters"] = [_parameter(p) for p in component.parameters]
    return out


def _amount_1000(amount: Decimal | None) -> int:
    return int((amount or Decimal(0)) * 1000)


def _parameter(p: TemplateParameter) -> JSON:
    out: JSON = {"type": p.type}
    if p.type == "text":
        out["text"] = p.text or ""
    elif p.type == "currency":
        out["currency"] = {
            "fallback_value": p.fallback_value or f"{p.amount} {p.currency_code}",
            "code": p.currency_code or "",
            "amount_1000": _amount_1000(p.amount),
        }
    elif p.type == "date_time":
        out["date_time"] = {"fallback_value": p.fallback_value or p.text or ""}
    elif p.type == "payload":
        out["payload"] = p.payload or ""
    else:  # image, video, document
        out[p.type] = {"id": p.media_id} if p.media_id else {"link": p.link or ""}
    if p.parameter_name:
        out["parameter_name"] = p.parameter_name
    return out


def _header_footer(out: JSON, header: str | None, footer: str | None) -> None:
    if header:
        out["header"] = {"type": "text", "text": header}
    if footer:
        out["footer"] = {"text": footer}


def _buttons(content: ButtonsContent) -> JSON:
    out: JSON = {"type": "button", "body": {"text": content.body}}
    _header_footer(out, content.header, content.footer)
    out["action"] = {
        "buttons": [
            {"type": "reply", "reply": {"id": b.id, "title": b.title}} for b in content.buttons
        ]
    }
    return out


INTERACTIVE = (
    ButtonsContent,
    ListContent,
    CtaUrlContent,
    ProductContent,
    ProductListContent,
    CatalogContent,
    FlowContent,
)
Interactive = (
    ButtonsContent
    | ListContent
    | CtaUrlContent
    | ProductContent
    | ProductListContent
    | CatalogContent
    | FlowContent
)


def _interactive(content: Interactive) -> JSON:
    if isinstance(content, ButtonsContent):
        return _buttons(content)
    if isinstance(content, ListContent):
        return _list(content)
    if isinstance(content, CtaUrlContent):
        return _cta_url(content)
    if isinstance(content, ProductContent):
        out: JSON = {
            "type": "product",
            "action": {
                "catalog_id": content.catalog_id,
                "product_retailer_id": content.product_retailer_id,
            },
        }
        if content.body:
            out["body"] = {"text": content.body}
        _header_footer(out, None, content.footer)
        return out
    if isinstance(content, ProductListContent):
        return _product_list(content)
    if isinstance(content, CatalogContent):
        parameters = {"thumbnail_product_retailer_id": content.thumbnail_product_retailer_id}
        out = {
            "type": "catalog_message",
            "body": {"text": content.body},
            "action": {"name": "catalog_message", "parameters": parameters},
        }
        _header_footer(out, None, content.footer)
        return out
    return _flow(content)


def _product_list(content: ProductListContent) -> JSON:
    out: JSON = {
        "type": "product_list",
        "body": {"text": content.body},
        "action": {
            "catalog_id": content.catalog_id,
            "sections": [
                {
                    "title": s.title,
                    "product_items": [{"product_retailer_id": r} for r in s.product_retailer_ids],
                }
                for s in content.sections
            ],
        },
    }
    _header_footer(out, content.header, content.footer)
    return out


def _flow(content: FlowContent) -> JSON:
    parameters: JSON = {
        "flow_message_version": "3",
        "flow_token": content.flow_token,
        "flow_id": content.flow_id,
        "flow_cta": content.flow_cta,
        "flow_action": "navigate",
    }
    if content.screen:
        payload: JSON = {"screen": content.screen}
        if content.data:
            payload["data"] = content.data
        parameters["flow_action_payload"] = payload
    out: JSON = {
        "type": "flow",
        "body": {"text": content.body},
        "action": {"name": "flow", "parameters": parameters},
    }
    _header_footer(out, content.header, content.footer)
    return out


def _cta_url(content: CtaUrlContent) -> JSON:
    out: JSON = {
        "type": "cta_url",
        "body": {"text": content.body},
        "action": {
            "name": "cta_url",
            "parameters": {"display_text": content.display_text, "url": content.url},
        },
    }
    _header_footer(out, content.header, content.footer)
    return out


def _list(content: ListContent) -> JSON:
    out: JSON = {"type": "list", "body": {"text": content.body}}
    _header_footer(out, content.header, content.footer)
    out["action"] = {
        "button": content.button,
        "sections": [
            _without_none(
                {
                    "title": s.title,
                    "rows": [
                        _without_none({"id": r.id, "title": r.title, "description": r.description})
                        for r in s.rows
                    ],
                }
            )
            for s in content.sections
        ],
    }
    return out


def parse_error(status: int, raw: bytes) -> ProviderError:
    """Meta's error JSON (``error.code``, ``message``, ``error_data.details``), parsed."""
    try:
        data = orjson.loads(raw)
        err = data["error"]
        code = int(err["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return ProviderError(
            code=fates.HTTP_ERROR,
            title=f"HTTP {status}",
            message=raw[:300].decode("utf-8", "replace"),
        )
    details = err.get("error_data") or {}
    return ProviderError(
        code=code,
        title=str(err.get("error_user_title") or err.get("title") or err.get("type") or ""),
        message=str(err.get("error_user_msg") or err.get("message") or ""),
        details=str(details.get("details", "")) if isinstance(details, dict) else str(details),
    )


class CloudApiAdapter(provider_http.HttpAdapter):
    """Sends through the Graph API with the account's bearer token (one shared session)."""

    name: Literal["meta"] = "meta"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        graph_url: str,
        version: str,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__(session, timeout_s=timeout_s)
        self._base = f"{graph_url.rstrip('/')}/{version}"

    def supports(self, command: OutboundCommand) -> bool:
        return True

    def request(
        self, account: AccountCredentials, command: OutboundCommand
    ) -> tuple[str, bytes, dict[str, str]]:
        return (
            f"{self._base}/{account.phone_number_id}/messages",
            orjson.dumps(build_message(command)),
            {"Authorization": f"Bearer {account.access_token}", "Content-Type": "application/json"},
        )

    def message_id(self, answer: Any) -> Any:
        return answer["messages"][0]["id"]

    def parse_error(self, status: int, raw: bytes) -> ProviderError:
        return parse_error(status, raw)
