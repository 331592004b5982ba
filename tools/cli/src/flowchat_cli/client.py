"""The services' HTTP APIs: one client, the credentials each call takes, every list shape.

Lists are read page by page whatever their shape: ``{items, next_cursor}`` (the
convention), ``{items, next_after}``, ``{items}``, ``{products}`` or a bare array.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from flowchat_cli.config import Config
from flowchat_cli.errors import ApiError, ConfigError, Unreachable

if TYPE_CHECKING:  # imported when a call is made: --help stays quick
    import httpx

#: Which credential a call takes, first choice first: ``operator`` (the operator key),
#: ``api_key`` (a tenant key), ``service`` (the service token, with ``X-Tenant-ID`` when
#: the call is a tenant's).
Auth = Sequence[str]
OPERATOR: Auth = ("operator", "api_key")
TENANT: Auth = ("api_key", "service")
API_KEY: Auth = ("api_key",)
SERVICE: Auth = ("service",)
NONE: Auth = ()

#: Shapes of a list answer: the key holding the items.
_ITEM_KEYS = ("items", "products", "data", "messages")


def page_of(data: Any) -> tuple[list[Any], dict[str, str] | None]:
    """A list answer's items and the query that fetches the next page (None: the last)."""
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict):
        return [], None
    items: list[Any] = next((data[k] for k in _ITEM_KEYS if isinstance(data.get(k), list)), [])
    if data.get("next_cursor"):
        return items, {"cursor": str(data["next_cursor"])}
    if data.get("next_after"):
        return items, {"after": str(data["next_after"])}
    paging = data.get("paging")
    if isinstance(paging, dict) and isinstance(paging.get("cursors"), dict):
        after = paging["cursors"].get("after")
        if after and paging.get("next"):
            return items, {"after": str(after)}
    return items, None


class Api:
    def __init__(
        self,
        config: Config,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self.config = config
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def headers(self, auth: Auth, tenant: str | None) -> dict[str, str]:
        for name in auth:
            if not self.config.has(name):
                continue
            headers = {"Authorization": f"Bearer {self.config.credential(name)}"}
            if name == "service" and tenant:
                headers["X-Tenant-ID"] = tenant
            return headers
        if not auth:
            return {}
        self.config.credential(auth[0])  # raises, naming the variable
        raise ConfigError("no credential")  # pragma: no cover

    def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        auth: Auth,
        tenant: str | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import httpx

        url = self.config.url(service) + path
        sent = {**self.headers(auth, tenant), **(headers or {})}
        query = {k: v for k, v in (params or {}).items() if v is not None and v != []}
        try:
            response = self._http.request(
                method, url, json=json, params=query, content=content, headers=sent
            )
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the {service} at {url}: {exc!r}") from exc
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body, url)
        return body

    def pages(
        self,
        service: str,
        path: str,
        *,
        auth: Auth,
        tenant: str | None = None,
        params: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[Any]:
        """Every item of a list, following its cursor, at most ``limit``."""
        query = dict(params or {})
        seen = 0
        while True:
            data = self.call(service, "GET", path, auth=auth, tenant=tenant, params=query)
            items, following = page_of(data)
            for item in items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if following is None or not items:
                return
            query.update(following)
