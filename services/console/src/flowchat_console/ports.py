"""What the console's logic needs from the outside: the services' APIs as one user.
:class:`flowchat_console.upstream.Upstream` is the adapter (httpx)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

Params = Mapping[str, str | int | float | bool | None] | None


class Api(Protocol):
    async def get(self, service: str, path: str, params: Params = None, **kw: Any) -> Any: ...

    async def post(self, service: str, path: str, json: Any = None, **kw: Any) -> Any: ...
