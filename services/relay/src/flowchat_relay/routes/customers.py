"""A customer's events, for an export (issue 28): ``GET /v1/customers/{digest}/events``.

The customer is named by the keyed digest of one of their ids
(``flowchat_platform.privacy.BlindIndex.digest`` under ``FLOWCHAT_PRIVACY_KEY``, as the
conversation service's export computes it), never by the id in clear: the relay stores
only digests of the ids its events name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from flowchat_platform.http import PageCursor, PageLimit
from flowchat_platform.pagination import Page, decode_cursor, page_of
from flowchat_relay.deps import ExportDep, TenantId

router = APIRouter(prefix="/v1", tags=["privacy"])

Digest = Annotated[
    str,
    Path(
        pattern="^[0-9a-f]{64}$",
        description="HMAC-SHA256 (hex) of the customer's id under the platform's privacy key",
    ),
]


class DeliveryOut(BaseModel):
    endpoint_id: str
    #: pending, delivered or failed
    status: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None


class CustomerEventOut(BaseModel):
    id: str
    type: str
    account_id: str
    created_at: datetime
    #: The FlowChat event as delivered.
    body: Any
    #: The Meta-shaped body as delivered to ``meta`` endpoints (null: none).
    meta_body: Any
    deliveries: list[DeliveryOut]


@router.get(
    "/customers/{digest}/events",
    response_model=Page[CustomerEventOut],
    responses={
        401: {"description": "Missing, unknown or revoked API key"},
        403: {"description": "The API key lacks the admin scope"},
        422: {"description": "Not a digest"},
    },
)
async def customer_events(
    digest: Digest,
    tenant_id: TenantId,
    store: ExportDep,
    cursor: PageCursor = None,
    limit: PageLimit = 50,
) -> Page[CustomerEventOut]:
    """The tenant's stored events that name the customer, oldest id first, with each
    endpoint's delivery."""
    key = decode_cursor(cursor, str)
    rows = await store.customer_events(
        tenant_id, digest, after=key[0] if key else None, limit=limit + 1
    )
    items, next_cursor = page_of(rows, limit, lambda e: (e.id,))
    return Page[CustomerEventOut](
        items=[
            CustomerEventOut(
                id=e.id,
                type=e.type,
                account_id=e.account_id,
                created_at=e.created_at,
                body=e.body,
                meta_body=e.meta_body,
                deliveries=[DeliveryOut.model_validate(d) for d in e.deliveries],
            )
            for e in items
        ],
        next_cursor=next_cursor,
    )
