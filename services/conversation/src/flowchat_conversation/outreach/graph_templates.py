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
        for template in await self._pages(waba_id, access_token, {"name": name}):
            if template.name == name and template.language == language:
                return template
        return None

    async def list_templates(self, waba_id: str, access_token: str) -> list[Template]:
        """Every template of the WABA (any status; at most ``max_pages`` pages of 100)."""
        return await self._pages(waba_id, access_token, {})

    async def _pages(
        self, waba_id: str, access_token: str, given: dict[str, str]
    ) -> list[Template]:
        url = f"{self._base}/{self._version}/{waba_id}/message_templates"
        params: dict[str, str] = {**given, "limit": "100"}
        found: list[Template] = []
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
            found += [Template.from_graph(i) for i in body.get("data") or [] if isinstance(i, dict)]
            after = ((body.get("paging") or {}).get("cursors") or {}).get("after")
            if not (body.get("paging") or {}).get("next") or not after:
                return found
            params["after"] = str(after)
        return found
