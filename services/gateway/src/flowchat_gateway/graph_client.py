"""Adapters of the Cloud-API-compatible routes (aiohttp): Meta's Graph API with an
account's own access token (:class:`GraphClient`, port ``Graph``) and the sender's
internal media API with FlowChat's service token (:class:`SenderMedia`, port
``MediaUploads``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from flowchat_gateway.ports import GraphAnswer, MediaRefused, Upload
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import UpstreamError

#: Meta's answers are small; anything bigger is not Meta's.
_MAX_ANSWER_BYTES = 4 * 1024 * 1024


class GraphClient:
    def __init__(
        self, base_url: str, *, session: aiohttp.ClientSession, timeout_s: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def mark_read(
        self, account: AccountCredentials, version: str, body: dict[str, Any]
    ) -> GraphAnswer:
        path = f"/{version}/{quote(account.phone_number_id or '', safe='')}/messages"
        return await self._call("POST", account, path, json=body)

    async def templates(
        self, account: AccountCredentials, version: str, params: list[tuple[str, str]]
    ) -> GraphAnswer:
        path = f"/{version}/{quote(account.waba_id or '', safe='')}/message_templates"
        return await self._call("GET", account, path, params=params)

    async def _call(
        self, method: str, account: AccountCredentials, path: str, **kwargs: Any
    ) -> GraphAnswer:
        headers = {"Authorization": f"Bearer {account.access_token or ''}"}
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                **kwargs,
            ) as r:
                raw = await r.content.read(_MAX_ANSWER_BYTES)
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"graph unreachable: {exc!r}", service="graph") from exc
        if status >= 500:
            raise UpstreamError(f"graph answered {status}", service="graph", status=status)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError("graph answered no JSON", service="graph") from exc
        if not isinstance(body, dict):
            raise UpstreamError("graph answered no JSON object", service="graph")
        return GraphAnswer(status, body)


class SenderMedia:
    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        session: aiohttp.ClientSession,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = service_token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def upload(self, tenant_id: str, account_id: str, upload: Upload) -> str:
        params = {"tenant_id": tenant_id, "account_id": account_id}
        if upload.filename:
            params["filename"] = upload.filename
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": upload.mime_type}
        try:
            async with self._session.post(
                f"{self.base_url}/internal/v1/media",
                params=params,
                data=upload.content,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as r:
                raw = await r.content.read(_MAX_ANSWER_BYTES)
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"sender unreachable: {exc!r}", service="sender") from exc
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = {}
        if status == 200 and isinstance(body, dict) and body.get("media_id"):
            return str(body["media_id"])
        if status in (400, 404, 409, 413, 415, 422):
            error = body.get("error") if isinstance(body, dict) else None
            error = error if isinstance(error, dict) else {}
            raise MediaRefused(
                status, str(error.get("code", "")), str(error.get("message", "refused"))
            )
        raise UpstreamError(f"sender answered {status}", service="sender", status=status)
