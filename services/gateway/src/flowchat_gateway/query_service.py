"""The tenants' query API (``GET /v1/messages/{id}``): the state-manager's record of a
message, read for the caller's tenant only. Nothing here knows HTTP (see
:mod:`flowchat_gateway.ports`)."""

from __future__ import annotations

from typing import Any

from flowchat_gateway.errors import SendRejected, Unavailable
from flowchat_gateway.ports import ApiKey, MessageLookup
from flowchat_platform.errors import UpstreamError


class QueryService:
    def __init__(self, *, states: MessageLookup) -> None:
        self.states = states

    async def message(self, caller: ApiKey, message_id: str) -> dict[str, Any]:
        try:
            found = await self.states.message(caller.tenant_id, message_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="state-manager") from exc
        if found is None or found.get("tenant_id") not in (None, caller.tenant_id):
            raise SendRejected(
                "message_not_found",
                "no such message for this tenant (or not recorded yet: retry shortly)",
                field="message_id",
            )
        return found


__all__ = ["QueryService"]
