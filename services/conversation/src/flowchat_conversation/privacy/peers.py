"""The other services' APIs the export reads (aiohttp, the service token with
``X-Tenant-ID``): every page of the customer's threads and messages at the inbox, of
the customer's message records at the state-manager, and of the customer's webhook
events (with their deliveries) at the relay, asked for by the keyed digest of each id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

from flowchat_platform.privacy import BlindIndex

#: Items per page asked for (the APIs' maximum is 200).
PAGE = 200
#: Pages read at most per list (a customer with more is cut, and said so).
MAX_PAGES = 50


class _Api:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._token = token

    async def pages(self, tenant_id: str, path: str, **params: str) -> tuple[list[Any], bool]:
        """Every item of a ``{items, next_cursor}`` list; whether it was cut short."""
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            async with self._http.get(
                self._base + path,
                params=query,
                headers={"Authorization": f"Bearer {self._token}", "X-Tenant-ID": tenant_id},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as r:
                r.raise_for_status()
                body = await r.json()
            items += body["items"]
            cursor = body.get("next_cursor")
            if not cursor:
                return items, False
        return items, True


class InboxExport(_Api):
    service = "inbox"

    async def export(self, tenant_id: str, ids: Sequence[str]) -> Any:
        threads: dict[int, Any] = {}
        cut = False
        for customer_id in ids:
            found, more = await self.pages(tenant_id, "/v1/threads", customer=customer_id)
            cut |= more
            threads.update({t["id"]: t for t in found})
        for thread_id, thread in threads.items():
            thread["messages"], more = await self.pages(
                tenant_id, f"/v1/threads/{thread_id}/messages"
            )
            cut |= more
        return {"threads": list(threads.values()), "truncated": cut}


class StateExport(_Api):
    service = "state-manager"

    async def export(self, tenant_id: str, ids: Sequence[str]) -> Any:
        messages: dict[str, Any] = {}
        cut = False
        for customer_id in ids:
            found, more = await self.pages(tenant_id, "/v1/messages", recipient=customer_id)
            cut |= more
            messages.update({m["id"]: m for m in found})
        return {"messages": list(messages.values()), "truncated": cut}


class RelayExport(_Api):
    """The relay keeps only keyed digests of the ids its events name: it is asked by
    digest (the platform's privacy index, the same key as the relay's)."""

    service = "relay"

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, token: str, index: BlindIndex
    ) -> None:
        super().__init__(http, base_url, token)
        self._index = index

    async def export(self, tenant_id: str, ids: Sequence[str]) -> Any:
        events: dict[str, Any] = {}
        cut = False
        for digest in sorted({self._index.digest(tenant_id, i) for i in ids}):
            found, more = await self.pages(tenant_id, f"/v1/customers/{digest}/events")
            cut |= more
            events.update({e["id"]: e for e in found})
        return {"events": [events[k] for k in sorted(events)], "truncated": cut}
