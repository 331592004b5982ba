"""FastAPI dependencies as ``Annotated`` aliases.

``async def`` throughout: FastAPI runs a plain ``def`` dependency in its threadpool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Query, Request

from flowchat_sandbox.errors import GraphError
from flowchat_sandbox.service import Sandbox

#: Graph API versions look like ``v23.0``.
VERSION = re.compile(r"^v\d{1,2}\.\d$")


def bearer(authorization: str | None, query_token: str | None = None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return query_token


async def _sandbox(request: Request) -> Sandbox:
    return cast(Sandbox, request.app.state.sandbox)


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]


def check_version(version: str) -> None:
    """Meta's answer to a path whose first part is no Graph API version."""
    if not VERSION.match(version):
        raise GraphError(100, f"Unknown path components: /{version}", subcode=2500)


async def _token(
    authorization: Annotated[str | None, Header()] = None,
    access_token: Annotated[
        str | None, Query(description="The access token, when no Authorization header")
    ] = None,
) -> str | None:
    return bearer(authorization, access_token)


#: The access token of a Graph call: ``Authorization: Bearer …`` or ``?access_token=``.
TokenDep = Annotated[str | None, Depends(_token)]


@dataclass(frozen=True)
class GraphCall:
    """A call to ``/{version}/…``: the version checked, the caller's token read."""

    sandbox: Sandbox
    token: str | None


async def _graph_call(version: str, sandbox: SandboxDep, token: TokenDep) -> GraphCall:
    check_version(version)
    return GraphCall(sandbox, token)


GraphDep = Annotated[GraphCall, Depends(_graph_call)]
