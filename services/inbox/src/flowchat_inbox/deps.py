"""FastAPI dependencies of the inbox (``Annotated`` aliases)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_inbox.authz import Authoriser, Principal
from flowchat_inbox.inbox_service import InboxService
from flowchat_inbox.live import LiveHub
from flowchat_inbox.service import HistoryService
from flowchat_platform.http import ApiError

_bearer = HTTPBearer(
    auto_error=False,
    description="A tenant user's access token (`fca.…`; owner/admin manage, agent acts, "
    "viewer reads), a tenant API key (`read`: read; `admin`: act on conversations), or the "
    "internal service token with an `X-Tenant-ID` header.",
)


@dataclass
class Runtime:
    authoriser: Authoriser
    live: LiveHub = field(default_factory=LiveHub)
    history: HistoryService | None = None
    inbox: InboxService | None = None
    keepalive_s: float = 15.0
    reauth_s: float = 5.0
    #: Message content is kept this long unless the tenant chose its own retention.
    retention_days: int = 90


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _history(runtime: Annotated[Runtime, Depends(_runtime)]) -> HistoryService:
    if runtime.history is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return runtime.history


def _inbox(runtime: Annotated[Runtime, Depends(_runtime)]) -> InboxService:
    if runtime.inbox is None:
        raise ApiError(503, "not_ready", "the database is not connected yet")
    return runtime.inbox


async def _principal(
    runtime: Annotated[Runtime, Depends(_runtime)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_tenant_id: Annotated[
        str | None, Header(alias="X-Tenant-ID", description="Internal callers: the tenant")
    ] = None,
    x_agent_id: Annotated[
        str | None,
        Header(alias="X-Agent-ID", description="The agent an admin key or the console acts for"),
    ] = None,
) -> Principal:
    header = f"Bearer {credentials.credentials}" if credentials else None
    return await runtime.authoriser.principal(
        header, tenant_header=x_tenant_id, agent_header=x_agent_id
    )


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
HistoryDep = Annotated[HistoryService, Depends(_history)]
InboxDep = Annotated[InboxService, Depends(_inbox)]
Caller = Annotated[Principal, Depends(_principal)]
