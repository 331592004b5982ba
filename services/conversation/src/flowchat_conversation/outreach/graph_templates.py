"""Template lookups on Meta's Graph API (aiohttp): ``GET /{version}/{waba_id}/
message_templates?name=`` (the Cloud API; the sandbox locally). The campaign service
reaches it through its ``TemplateLookup`` port.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from flowchat_conversation.errors import ProviderRefused, ProviderUnavailable
from flowchat_conversation.outreach.template_catalog import Template


class GraphTemplates:
    """Template lookups on the Cloud API (``FLOWCHAT_CONVERSATION_GRAPH_URL``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        version: str,
        *,
        timeout_s: float = 10.0,
        max_pages: int = 10,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._version = version
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_pages = max_pages

    async def find(
        self, waba_id: str, access_token: str, name: str, language: str
    ) -> Template | None:
        """The template ``name`` in ``language`` (any status), or None when there is none."""
        url = f"{self._base}/{self._version}/{waba_id}/message_templates"
        params: dict[str, str] = {"name": name, "limit": "100"}
        headers = {"Authorization": f"Bearer {access_token}"}
        for _ in range(self._max_pages):
            try:
                async with self._session.get(
                    url, params=params, headers=headers, timeout=self._timeout
                ) as r:
                    body: Any = await r.json(content_type=None)
                    status = r.status
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise ProviderUnavailable(
                    "cannot reach the provider to check the template"
                ) from exc
            if status != 200 or not isinstance(body, dict):
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise ProviderRefused(
                    f"the provider refused the template lookup ({status})",
                    details=[{"code": error.get("code"), "message": error.get("message")}],
                )
            for item in body.get("data") or []:
                if (
                    isinstance(item, dict)
                    and item.get("name") == name
                    and item.get("language") == language
                ):
                    return Template.from_graph(item)
            after = ((body.get("paging") or {}).get("cursors") or {}).get("after")
            if not (body.get("paging") or {}).get("next") or not after:
                return None
            params["after"] = str(after)
        return None
