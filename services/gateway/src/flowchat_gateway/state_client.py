"""The state-manager's query API as the gateway reads it (the tenants' single edge).

``GET {FLOWCHAT_STATE_URL}/v1/messages/{id}`` with the service token and
``X-Tenant-ID``: the state-manager scopes the read to that tenant (another tenant's
message answers 404 exactly like an unknown one).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from flowchat_platform.errors import UpstreamError


class StateClient:
    def __init__(
        self,
        base_url: str,
        service_token: str,
        *,
        session: aiohttp.ClientSession,
        timeout_s: float = 3.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = service_token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def message(self, tenant_id: str, message_id: str) -> dict[str, Any] | None:
        """The message record, or None when the tenant has no such message."""
        url = f"{self.base_url}/v1/messages/{quote(message_id, safe='')}"
        headers = {"Authorization": f"Bearer {self._token}", "X-Tenant-ID": tenant_id}
        try:
            async with self._session.get(url, headers=headers, timeout=self._timeout) as r:
                if r.status == 404:
                    return None
                if r.status != 200:
                    raise UpstreamError(
                        f"state-manager answered {r.status}",
                        service="state-manager",
                        status=r.status,
                    )
                body = orjson.loads(await r.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            raise UpstreamError(
                f"state-manager unreachable: {exc!r}", service="state-manager"
            ) from exc
        if not isinstance(body, dict):
            raise UpstreamError("state-manager answered no JSON object", service="state-manager")
        return body
