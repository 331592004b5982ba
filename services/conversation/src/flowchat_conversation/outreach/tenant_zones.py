"""The tenants' time zones from the tenant service's internal API (aiohttp, cached):
the campaign service's ``TenantZones`` port."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from flowchat_platform.logs import get_logger

log = get_logger(__name__)


@dataclass
class TenantServiceZones:
    """The tenant's time zone from the tenant service's internal API (cached)."""

    session: aiohttp.ClientSession
    base_url: str
    token: str
    default: str = "UTC"
    _cache: dict[str, str] = field(default_factory=dict)

    async def timezone(self, tenant_id: str) -> str:
        if tenant_id in self._cache:
            return self._cache[tenant_id]
        url = f"{self.base_url.rstrip('/')}/internal/v1/tenants/{tenant_id}"
        try:
            async with self.session.get(
                url,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=aiohttp.ClientTimeout(total=3),
            ) as r:
                if r.status != 200:
                    return self.default
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            log.warning("tenant time zone unavailable; using the default", tenant_id=tenant_id)
            return self.default
        zone = str((body or {}).get("timezone") or self.default)
        self._cache[tenant_id] = zone
        return zone
