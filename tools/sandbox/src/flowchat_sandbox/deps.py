"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from flowchat_sandbox.service import Sandbox


def _sandbox(request: Request) -> Sandbox:
    return cast(Sandbox, request.app.state.sandbox)


SandboxDep = Annotated[Sandbox, Depends(_sandbox)]
