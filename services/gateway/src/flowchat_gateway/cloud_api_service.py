"""The Cloud-API-compatible edge: Meta's requests, served by FlowChat. Pure (ports only).

A tenant whose code talks to Meta's Cloud API moves onto FlowChat by changing its base
URL and using a FlowChat API key as the bearer token:

- ``POST /{version}/{phone_number_id}/messages`` (a message): checked and translated
  (:mod:`flowchat_gateway.cloud_api`), queued as an ``OutboundCommand`` through the
  send API's own path (:meth:`SendService.queue`: idempotency, rate, confirms; the
  sender's limits, retries and guards after it), answered in Meta's success shape with
  ``messages[0].id = wamid_of(message_id)`` (:mod:`flowchat_contracts.meta_ids`).
- the same route with ``{"status": "read", "message_id"}`` (mark-as-read): forwarded
  to Meta at once with the account's credentials (a read receipt is neither retried
  nor worth a queue: Meta answers it synchronously, and so does this) → ``{"success":
  true}``, or Meta's own error.
- ``POST /{version}/{phone_number_id}/media``: the sender's media API → ``{"id"}``.
- ``GET /{version}/{waba_id}/message_templates``: Meta's answer, fetched with the
  account's credentials (the live list, as the tenant's code expects it), paging links
  rewritten to this gateway without the access token.

A number or WABA that is not the caller's tenant's (or unknown) is Meta's permission
error (code 10), and nothing is queued or forwarded.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from flowchat_contracts import MessageCategory, ReactionContent, new_id
from flowchat_contracts.meta_codes import MetaCode
from flowchat_contracts.meta_ids import message_id_of, wamid_of
from flowchat_gateway.cloud_api import content_of, customer_of, invalid, parse_read, parse_send
from flowchat_gateway.errors import CloudApiError, Unavailable
from flowchat_gateway.ports import (
    Accounts,
    ApiKey,
    CloudApiSends,
    Graph,
    GraphAnswer,
    MediaRefused,
    MediaUploads,
    MessageLookup,
    Upload,
)
from flowchat_gateway.send_service import Queued, SendService, idempotency_key
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: How long a template's category (from Graph) is remembered.
CATEGORY_TTL_S = 300.0
#: At most this many categories are remembered (then forgotten all at once).
CATEGORY_CACHE_MAX = 10_000
_CATEGORIES: dict[str, MessageCategory] = {
    "MARKETING": "marketing",
    "UTILITY": "utility",
    "AUTHENTICATION": "authentication",
}


def check_version(version: str) -> None:
    digits = version[1:].split(".")
    if not version.startswith("v") or not all(d.isdigit() for d in digits) or len(digits) > 2:
        raise invalid(f"Unknown path component: /{version}", MetaCode.INVALID_PARAMETER)


def no_permission(what: str) -> CloudApiError:
    return CloudApiError(
        int(MetaCode.PERMISSION_DENIED),
        f"Object with ID '{what}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation.",
        status=403,
    )


def body_hash(phone_number_id: str, body: dict[str, Any]) -> str:
    canonical = orjson.dumps(
        {"phone_number_id": phone_number_id, "body": body}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(b"cloud-api:" + canonical).hexdigest()


class CloudApiService:
    def __init__(
        self,
        *,
        tenants: Accounts,
        send: SendService,
        graph: Graph,
        media: MediaUploads,
        states: MessageLookup,
        public_url: str,
        sends: CloudApiSends | None = None,
    ) -> None:
        self.sends = sends
        self.states = states
        self.tenants = tenants
        self.send = send
        self.graph = graph
        self.media = media
        self.public_url = public_url.rstrip("/")
        self._categories: dict[tuple[str, str, str], tuple[float, MessageCategory]] = {}

    # ----------------------------------------------------------------- accounts

    async def _account(self, caller: ApiKey, phone_number_id: str) -> AccountCredentials:
        try:
            acc = await self.tenants.account_by_phone_number(phone_number_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        if acc is None or acc.tenant_id != caller.tenant_id:
            raise no_permission(phone_number_id)
        if acc.status != "active" or acc.tenant_status != "active":
            raise CloudApiError(
                int(MetaCode.ACCOUNT_LOCKED), "The account or its tenant is not active."
            )
        return acc

    @staticmethod
    def _meta_only(acc: AccountCredentials, what: str) -> None:
        if acc.provider != "meta":
            raise invalid(f"{what} is not available for this number's provider.")

    # ----------------------------------------------------------------- messages

    async def message(
        self,
        caller: ApiKey,
        version: str,
        phone_number_id: str,
        body: Any,
        *,
        idempotency_key_header: str | None,
        correlation_id: str,
    ) -> dict[str, Any]:
        """A message (queued) or a mark-as-read (forwarded), per the body."""
        check_version(version)
        acc = await self._account(caller, phone_number_id)
        if isinstance(body, dict) and "status" in body:
            return await self._mark_read(acc, version, body)
        request = parse_send(body)
        given, to, contact = customer_of(request)
        content = content_of(request)
        key = (
            idempotency_key(idempotency_key_header)
            if idempotency_key_header is not None
            else new_id()
        )
        reply_to = None
        if request.context is not None:
            reply_to = await self._provider_id(caller, request.context.message_id)
        if isinstance(content, ReactionContent):
            provider_id = await self._provider_id(caller, content.message_id)
            content = content.model_copy(update={"message_id": provider_id})
        category: MessageCategory = "service"
        if content.type == "template":
            category = await self._template_category(acc, version, content.name)
        accepted = await self.send.queue(
            caller,
            acc,
            Queued(
                to=to,
                content=content,
                category=category,
                reply_to=reply_to,
                callback_data=request.biz_opaque_callback_data,
            ),
            hashes=(body_hash(phone_number_id, body),),
            idempotency_key=key,
            correlation_id=correlation_id,
        )
        await self._remember(caller, accepted.message_id, request.biz_opaque_callback_data)
        message: dict[str, Any] = {"id": wamid_of(accepted.message_id)}
        if content.type == "template":
            message["message_status"] = "accepted"
        log.info("cloud api message queued", message_id=accepted.message_id, given=bool(given))
        return {"messaging_product": "whatsapp", "contacts": [contact], "messages": [message]}

    async def _remember(self, caller: ApiKey, message_id: str, callback_data: str | None) -> None:
        """Record the message for ``meta``-format statuses (its id as answered, the
        callback data echoed). The message is queued already: when the record cannot be
        written its statuses carry the provider's id instead, logged."""
        if self.sends is None:
            return
        try:
            await self.sends.remember(caller.tenant_id, message_id, callback_data)
        except Exception as exc:  # noqa: BLE001 - queued already; statuses fall back
            log.warning("cloud api send not recorded", message_id=message_id, error=repr(exc))

    async def _template_category(
        self, acc: AccountCredentials, version: str, name: str
    ) -> MessageCategory:
        """The template's category, which FlowChat's guards and lanes go by (an opted-out
        customer gets no marketing). From Graph, cached; unknown or Graph unreachable:
        ``marketing``, the conservative choice (the opt-out guard applies)."""
        if acc.provider != "meta" or not acc.waba_id:
            return "marketing"
        key = (acc.tenant_id, acc.waba_id, name)
        hit = self._categories.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        category: MessageCategory = "marketing"
        try:
            answer = await self.graph.templates(
                acc, version, [("name", name), ("fields", "name,category")]
            )
        except UpstreamError as exc:
            log.warning("template category unknown: graph unreachable", error=str(exc))
            return category
        if answer.status == 200:
            for item in answer.body.get("data") or []:
                if isinstance(item, dict) and item.get("name") == name:
                    category = _CATEGORIES.get(str(item.get("category", "")).upper(), category)
                    break
            if len(self._categories) >= CATEGORY_CACHE_MAX:
                self._categories.clear()
            self._categories[key] = (time.monotonic() + CATEGORY_TTL_S, category)
        return category

    async def _provider_id(self, caller: ApiKey, ref: str) -> str:
        """The provider's id of the message ``ref`` names: a message this endpoint
        answered for (``wamid_of(message_id)``) is looked up in the state-manager (Meta
        knows it only by its own WAMID); any other id (a customer's message) as given."""
        message_id = message_id_of(ref)
        if message_id is None:
            return ref
        try:
            record = await self.states.message(caller.tenant_id, message_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="state-manager") from exc
        provider_id = (record or {}).get("provider_message_id")
        if not isinstance(provider_id, str) or not provider_id:
            raise invalid(
                f"Message {ref} is unknown or not sent yet; it cannot be replied or reacted to.",
                MetaCode.PARAMETER_VALUE_INVALID,
            )
        return provider_id

    # ----------------------------------------------------------------- mark as read

    async def _mark_read(
        self, acc: AccountCredentials, version: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        read = parse_read(body)
        self._meta_only(acc, "Marking a message as read")
        answer = await self._graph_call(
            self.graph.mark_read(acc, version, read.model_dump(exclude_none=True))
        )
        if answer.status != 200:
            raise _passthrough(answer)
        return {"success": bool(answer.body.get("success", True))}

    # ----------------------------------------------------------------- media

    async def media_account(
        self, caller: ApiKey, version: str, phone_number_id: str
    ) -> AccountCredentials:
        """The account an upload is for, checked before its bytes are read."""
        check_version(version)
        return await self._account(caller, phone_number_id)

    async def upload(self, acc: AccountCredentials, upload: Upload) -> dict[str, Any]:
        try:
            media_id = await self.media.upload(acc.tenant_id, acc.account_id, upload)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="sender") from exc
        except MediaRefused as exc:
            if exc.status == 404:
                raise no_permission(acc.phone_number_id or "") from exc
            if exc.status == 422:
                raise CloudApiError(int(MetaCode.MEDIA_UPLOAD_ERROR), exc.message) from exc
            raise invalid(exc.message) from exc
        return {"id": media_id}

    # ----------------------------------------------------------------- templates

    async def templates(
        self, caller: ApiKey, version: str, waba_id: str, params: list[tuple[str, str]]
    ) -> dict[str, Any]:
        check_version(version)
        try:
            accounts = await self.tenants.accounts_by_waba(waba_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        mine = [
            a
            for a in accounts
            if a.tenant_id == caller.tenant_id and a.provider == "meta" and a.access_token
        ]
        if not mine:
            raise no_permission(waba_id)
        query = [(k, v) for k, v in params if k != "access_token"]
        answer = await self._graph_call(self.graph.templates(mine[0], version, query))
        if answer.status != 200:
            raise _passthrough(answer)
        return self._local_paging(answer.body, version, waba_id)

    def _local_paging(self, body: dict[str, Any], version: str, waba_id: str) -> dict[str, Any]:
        """Meta's ``paging.next``/``previous`` carry the access token: point them at this
        gateway (the caller's own key goes in its header), token removed."""
        paging = body.get("paging")
        if not isinstance(paging, dict):
            return body
        out = dict(paging)
        for name in ("next", "previous"):
            link = paging.get(name)
            if isinstance(link, str):
                query = [(k, v) for k, v in parse_qsl(urlsplit(link).query) if k != "access_token"]
                out[name] = (
                    f"{self.public_url}/{version}/{waba_id}/message_templates?{urlencode(query)}"
                )
        return {**body, "paging": out}

    @staticmethod
    async def _graph_call(call: Any) -> GraphAnswer:
        try:
            answer: GraphAnswer = await call
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="graph") from exc
        return answer


def _passthrough(answer: GraphAnswer) -> CloudApiError:
    """Meta's own error, answered as Meta gave it."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if not isinstance(error, dict) or "code" not in error:
        return CloudApiError(int(MetaCode.API_UNKNOWN), "Meta answered without an error body.")
    return CloudApiError(
        int(error["code"]),
        str((error.get("error_data") or {}).get("details") or error.get("message") or ""),
        status=answer.status if 400 <= answer.status < 600 else 400,
        body={"error": error},
    )


__all__ = ["CATEGORY_TTL_S", "CloudApiService", "body_hash", "check_version", "no_permission"]
