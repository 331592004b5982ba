"""Operator views (operators only): tenants and their numbers; the DLQ (browse, filter by
tenant, number and error code; replay; discard with a reason — each action in the
sender's DLQ audit trail with the operator as its actor); system health (queue depths
and consumers, open circuit breakers, limiter waits) read from the services' /metrics.

Upstream: the tenant service ``/v1/tenants`` and ``/v1/tenants/{t}/accounts`` (the
operator's own token); the sender's ``/internal/v1/dlq…`` (service token, actor
``user:<id>``); every service's ``/metrics``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client.parser import text_string_to_metric_families

from flowchat_console.pages import _kit

router = APIRouter()
AREA = "operator"
#: The services whose /metrics the health page reads.
SERVICES = ("gateway", "sender", "state-manager", "conversation", "inbox", "relay", "tenant")
BREAKER_OPEN = 2.0


@router.get("/operator/tenants", response_class=HTMLResponse)
async def tenants(request: Request, cursor: str | None = None) -> Response:
    user = _kit.require(request, AREA)
    page = await _kit.call(request, user, "tenant", "GET", "/v1/tenants",
                           params={"limit": "50", **({"cursor": cursor} if cursor else {})})
    rows = _kit.items(page)

    async def numbers(tenant_id: str) -> list[dict[str, Any]]:
        found = await _kit.call(request, user, "tenant", "GET", f"/v1/tenants/{tenant_id}/accounts")
        return _kit.items(found)

    accounts = await asyncio.gather(*(numbers(t["tenant_id"]) for t in rows))
    for tenant, found in zip(rows, accounts, strict=True):
        tenant["numbers"] = found
    return _kit.render(request, "operator/tenants.html", {
        "tenants": rows, "next_cursor": page.get("next_cursor"),
    })


def _filters(tenant_id: str, account_id: str, error_code: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if tenant_id:
        found["tenant_id"] = tenant_id
    if account_id:
        found["account_id"] = account_id
    if error_code.strip().lstrip("-").isdigit():
        found["error_code"] = int(error_code)
    return found


@router.get("/operator/dlq", response_class=HTMLResponse)
async def dlq(request: Request, tenant_id: str = "", account_id: str = "",
              error_code: str = "", done: str = "") -> Response:
    user = _kit.require(request, AREA)
    filters = _filters(tenant_id, account_id, error_code)
    parked = await _kit.call(request, user, "sender", "GET", "/internal/v1/dlq",
                             as_service=True, params={"limit": "100", **filters})
    audit = await _kit.call(request, user, "sender", "GET", "/internal/v1/dlq/audit",
                            as_service=True, params={"limit": "20"})
    return _kit.render(request, "operator/dlq.html", {
        "parked": _kit.items(parked), "audit": _kit.items(audit), "done": done,
        "tenant_id": tenant_id, "account_id": account_id, "error_code": error_code,
    })


def _back_to_dlq(filters: dict[str, Any], done: str) -> Response:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    return _kit.back(f"/operator/dlq?done={done}" + (f"&{query}" if query else ""))


@router.post("/operator/dlq/replay")
async def replay(
    request: Request, message_id: Annotated[str, Form()] = "",
    tenant_id: Annotated[str, Form()] = "", account_id: Annotated[str, Form()] = "",
    error_code: Annotated[str, Form()] = "", force: Annotated[str, Form()] = "",
) -> Response:
    """Replay one parked message (``message_id``), or every one the filters match."""
    user = _kit.require(request, AREA)
    filters = _filters(tenant_id, account_id, error_code)
    body: dict[str, Any] = {**filters, "force": bool(force), "actor": f"user:{user.user_id}"}
    if message_id:
        body["message_ids"] = [message_id]
    report = await _kit.call(request, user, "sender", "POST", "/internal/v1/dlq/replay",
                             as_service=True, json=body)
    return _back_to_dlq(filters, f"replayed {report.get('replayed', 0)}")


@router.post("/operator/dlq/discard")
async def discard(
    request: Request, reason: Annotated[str, Form()], message_id: Annotated[str, Form()] = "",
    tenant_id: Annotated[str, Form()] = "", account_id: Annotated[str, Form()] = "",
    error_code: Annotated[str, Form()] = "",
) -> Response:
    user = _kit.require(request, AREA)
    filters = _filters(tenant_id, account_id, error_code)
    body: dict[str, Any] = {**filters, "reason": reason, "actor": f"user:{user.user_id}"}
    if message_id:
        body["message_ids"] = [message_id]
    report = await _kit.call(request, user, "sender", "POST", "/internal/v1/dlq/discard",
                             as_service=True, json=body)
    return _back_to_dlq(filters, f"discarded {report.get('discarded', 0)}")


def read_health(texts: dict[str, str | None]) -> dict[str, Any]:
    """Queues (depth, consumers), open breakers and limiter waits from /metrics texts."""
    queues: dict[str, dict[str, Any]] = {}
    breakers: list[dict[str, Any]] = []
    waits: dict[str, float] = {}
    for service, text in texts.items():
        if text is None:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "flowchat_amqp_queue_messages":
                    queues.setdefault(labels["queue"], {"queue": labels["queue"]})["messages"] = (
                        int(sample.value)
                    )
                elif sample.name == "flowchat_amqp_queue_consumers":
                    queues.setdefault(labels["queue"], {"queue": labels["queue"]})[
                        "consumers"
                    ] = int(sample.value)
                elif sample.name == "flowchat_sender_breaker_state" and (
                    sample.value >= BREAKER_OPEN
                ):
                    breakers.append({"account": labels.get("account", "?"), "service": service})
                elif sample.name == "flowchat_sender_limiter_waits_total":
                    key = labels.get("limit", "?")
                    waits[key] = waits.get(key, 0.0) + sample.value
    return {
        "queues": sorted(queues.values(), key=lambda q: q["queue"]),
        "breakers": breakers,
        "waits": sorted(waits.items()),
        "services": [{"name": s, "up": t is not None} for s, t in texts.items()],
    }


@router.get("/operator/health", response_class=HTMLResponse)
async def health(request: Request) -> Response:
    user = _kit.require(request, AREA)

    async def scrape(service: str) -> str | None:
        try:
            answer = await _kit.call(request, user, service, "GET", "/metrics",
                                     as_service=True, raw=True)
        except (_kit.UpstreamError, KeyError):
            return None
        return str(answer.text)

    texts = dict(zip(SERVICES, await asyncio.gather(*(scrape(s) for s in SERVICES)), strict=True))
    return _kit.render(request, "operator/health.html", read_health(texts))
