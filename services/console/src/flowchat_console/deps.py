"""FastAPI dependencies of the console (``Annotated`` aliases a page module uses).

from flowchat_console.deps import CurrentUser, UpstreamDep, require

@router.get("/contacts", include_in_schema=False)
async def contacts(request: Request, user: CurrentUser, up: UpstreamDep) -> HTMLResponse:
    ...

@router.post("/contacts/import", dependencies=[require("contacts.write")], ...)
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from flowchat_console.auth import SESSION_COOKIE, ConsoleUser, Sessions, SignedIn
from flowchat_console.errors import Forbidden
from flowchat_console.nav import can
from flowchat_console.people import People
from flowchat_console.service import MediaLinks
from flowchat_console.settings import Settings
from flowchat_console.upstream import ServiceClients, Upstream


@dataclass
class Runtime:
    settings: Settings
    clients: ServiceClients
    sessions: Sessions
    #: Paths the app serves (the menu shows only these).
    served: set[str] = field(default_factory=set)
    #: A tenant's people by id (authors, assignees), cached a minute.
    people: People = field(default_factory=People)
    #: Threads' customers (thread id → thread answer), cached briefly: lists show names.
    threads: dict[tuple[str, int], tuple[float, dict[str, object]]] = field(default_factory=dict)
    #: A number's approved templates ((tenant, account) → when, choices), cached a minute:
    #: the conversation service reads them from the provider at each call.
    templates: dict[tuple[str, str], tuple[float, list[Any]]] = field(default_factory=dict)
    #: The campaign form's template suggestions ((tenant, account) → when, templates),
    #: cached briefly (``pages.campaigns.SUGGESTIONS_CACHE_S``).
    suggestions: dict[tuple[str, str], tuple[float, list[Any]]] = field(default_factory=dict)
    #: The operator's health page as last read (when, what), kept a few seconds.
    health: tuple[float, dict[str, Any]] | None = None
    #: Signs the thread's media URLs (``/media/…``); the app keys it with a secret every
    #: replica shares (derived from the service token).
    media_links: MediaLinks = field(default_factory=lambda: MediaLinks(secrets.token_bytes(32)))


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _signed_in(request: Request, runtime: RuntimeDep) -> SignedIn:
    signed = await runtime.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    request.state.user = signed.user
    return signed


SignedInDep = Annotated[SignedIn, Depends(_signed_in)]


async def _user(signed: SignedInDep) -> ConsoleUser:
    return signed.user


def _upstream(signed: SignedInDep, runtime: RuntimeDep) -> Upstream:
    return Upstream(runtime.clients, signed.access_token)


#: The signed-in user (no session: a redirect to the sign-in page).
CurrentUser = Annotated[ConsoleUser, Depends(_user)]
#: The other services' APIs as the signed-in user.
UpstreamDep = Annotated[Upstream, Depends(_upstream)]


def require(action: str) -> Any:
    """A route dependency: the user may do ``action`` (``nav.RIGHTS``), else the 403 page."""

    async def check(user: CurrentUser) -> None:
        if not can(user, action):
            raise Forbidden(action)

    check.__name__ = f"require_{action.replace('.', '_')}"
    dependency: Callable[..., Awaitable[None]] = check
    return Depends(dependency)
