"""FastAPI dependencies of the sender's internal API, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flowchat_platform.auth import authenticate
from flowchat_platform.http import ApiError
from flowchat_sender.dlq import ParkingLot
from flowchat_sender.media import MediaStore
from flowchat_sender.media_service import MediaResolver

_bearer = HTTPBearer(auto_error=False, description="FlowChat's service token")


async def require_service(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    authorization = f"Bearer {credentials.credentials}" if credentials else None
    caller = await authenticate(
        authorization, service_token=request.app.state.service_token, tenants=None
    )
    if not caller.is_service:  # pragma: no cover - tenants=None never yields a tenant
        raise ApiError(403, "forbidden", "FlowChat's service token is required")


def parking_lot(request: Request) -> ParkingLot:
    lot: ParkingLot | None = getattr(request.app.state, "parking_lot", None)
    if lot is None:
        raise ApiError(503, "not_ready", "the sender is starting")
    return lot


def media_store(request: Request) -> MediaStore:
    store: MediaStore | None = getattr(request.app.state, "media", None)
    if store is None:
        raise ApiError(503, "not_ready", "the sender is starting")
    return store


def media_resolver(request: Request) -> MediaResolver:
    resolver: MediaResolver | None = getattr(request.app.state, "media_resolver", None)
    if resolver is None:
        raise ApiError(503, "not_ready", "the sender is starting")
    return resolver


#: Every internal route: FlowChat's service token only.
ServiceOnly = Depends(require_service)
LotDep = Annotated[ParkingLot, Depends(parking_lot)]
MediaStoreDep = Annotated[MediaStore, Depends(media_store)]
MediaResolverDep = Annotated[MediaResolver, Depends(media_resolver)]
