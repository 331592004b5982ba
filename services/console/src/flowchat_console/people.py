"""Names of a tenant's people (user id → display label), for authors and assignees:
asked from the tenant service once a minute per tenant, kept in memory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flowchat_console.auth import ConsoleUser
from flowchat_console.errors import UpstreamError
from flowchat_console.upstream import Upstream


@dataclass
class People:
    ttl_s: float = 60.0
    size: int = 1000
    _cache: dict[str, tuple[float, dict[str, str], list[dict[str, str]]]] = field(
        default_factory=dict
    )

    async def _load(
        self, up: Upstream, user: ConsoleUser
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
        tenant = user.tenant_id
        if tenant is None:
            return {user.user_id: user.label}, []
        hit = self._cache.get(tenant)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1], hit[2]
        try:
            page = await up.get("tenant", f"/v1/tenants/{tenant}/users", {"limit": 200})
        except UpstreamError:
            return {user.user_id: user.label}, []
        labels: dict[str, str] = {}
        agents: list[dict[str, str]] = []
        for u in page.get("items", []):
            label = u.get("display_name") or u.get("name") or u.get("email") or u["user_id"]
            labels[u["user_id"]] = str(label)
            if u.get("role") in ("owner", "admin", "agent") and u.get("status") == "active":
                agents.append({"user_id": u["user_id"], "label": str(label)})
        if len(self._cache) >= self.size:
            self._cache.clear()
        self._cache[tenant] = (time.monotonic(), labels, agents)
        return labels, agents

    async def labels(self, up: Upstream, user: ConsoleUser) -> dict[str, str]:
        """user id → label (the signed-in user at least)."""
        labels, _ = await self._load(up, user)
        return {user.user_id: user.label, **labels}

    async def labels_and_agents(
        self, up: Upstream, user: ConsoleUser
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
        """:meth:`labels` and :meth:`agents` from one read (one tenant call on a miss)."""
        labels, agents = await self._load(up, user)
        return {user.user_id: user.label, **labels}, agents

    async def agents(self, up: Upstream, user: ConsoleUser) -> list[dict[str, str]]:
        """Active people who can answer (for assigning)."""
        _, agents = await self._load(up, user)
        return agents
