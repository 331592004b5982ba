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
import time
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client.parser import text_string_to_metric_families

from flowchat_console.deps import CurrentUser, RuntimeDep, UpstreamDep
from flowchat_console.errors import UpstreamError
from flowchat_console.pages import _kit
from flowchat_console.render import render

router = APIRouter()
READ, MANAGE = "operator.read", "operator.manage"
#: The services whose /metrics the health page reads.
SERVICES = ("gateway", "sender", "state-manager", "conversation", "inbox", "relay", "tenant")
BREAKER_OPEN = 2.0
#: How old the health page may be: reading and parsing seven services' /metrics costs
#: hundreds of ms; several operators looking at once share one reading.
HEALTH_CACHE_S = 5.0


@router.get("/operator", include_in_schema=False)
async def tenants(
    request: Request, user: CurrentUser, up: UpstreamDep, cursor: str | None = None
) -> HTMLResponse:
    _kit.need(user, READ)
    page = await up.get("tenant", "/v1/tenants", {"limit": 50, "cursor": cursor})
    rows = _kit.items(page)

    async def numbers(tenant_id: str) -> list[dict[str, Any]]:
        return _kit.items(await up.get("tenant", f"/v1/tenants/{tenant_id}/accounts"))

    accounts = await asyncio.gather(*(numbers(t["tenant_id"]) for t in rows))
    for tenant, found in zip(rows, accounts, strict=True):
        tenant["numbers"] = found
    return render(
        request,
        "operator/tenants.html",
        {"tenants": rows, "next_cursor": page.get("next_cursor")},
    )


@router.get("/operator/tenants/{tenant_id}/open", include_in_schema=False)
async def open_tenant(user: CurrentUser, tenant_id: str, to: str = "/campaigns") -> Response:
    """Look at one tenant's pages (remembered in a cookie) as the operator."""
    _kit.need(user, READ)
    target = to if to.startswith("/") and not to.startswith("//") else "/campaigns"
    response = _kit.back(target)
    response.status_code = 302
    response.set_cookie(
        _kit.OPERATOR_TENANT_COOKIE, tenant_id, httponly=True, samesite="lax", path="/"
    )
    return response


def _filters(tenant_id: str, account_id: str, error_code: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if tenant_id:
        found["tenant_id"] = tenant_id
    if account_id:
        found["account_id"] = account_id
    if error_code.strip().lstrip("-").isdigit():
        found["error_code"] = int(error_code)
    return found


@router.get("/operator/dlq", include_in_schema=False)
async def dlq(
    request: Request,
    user: CurrentUser,
    tenant_id: str = "",
    account_id: str = "",
    error_code: str = "",
    done: str = "",
) -> HTMLResponse:
    _kit.need(user, READ)
    sender = _kit.service(request, user)
    filters = _filters(tenant_id, account_id, error_code)
    parked, audit = await asyncio.gather(
        sender.get("sender", "/internal/v1/dlq", {"limit": 100, **filters}),
        sender.get("sender", "/internal/v1/dlq/audit", {"limit": 20}),
    )
    return render(
        request,
        "operator/dlq.html",
        {
            "parked": _kit.items(parked),
            "audit": _kit.items(audit),
            "done": done,
            "tenant_id": tenant_id,
            "account_id": account_id,
            "error_code": error_code,
        },
    )


def _back_to_dlq(filters: dict[str, Any], done: str) -> Response:
    return _kit.back("/operator/dlq?" + urlencode({"done": done, **filters}))


FormStr = Annotated[str, Form()]


#: The DLQ's actions: what each reports back (the sender's answer's count).
DLQ_ACTIONS = {"replay": "replayed", "discard": "discarded"}


@router.post("/operator/dlq/{action}", include_in_schema=False)
async def dlq_action(
    request: Request,
    user: CurrentUser,
    action: Literal["replay", "discard"],
    message_id: FormStr = "",
    tenant_id: FormStr = "",
    account_id: FormStr = "",
    error_code: FormStr = "",
    force: FormStr = "",
    reason: FormStr = "",
) -> Response:
    """Replay or discard one parked message (``message_id``), or every one the filters
    match; a discard needs a reason; either is audited with the operator as its actor."""
    _kit.need(user, MANAGE)
    filters = _filters(tenant_id, account_id, error_code)
    body: dict[str, Any] = {**filters, "actor": f"user:{user.user_id}"}
    if action == "replay":
        body["force"] = bool(force)
    else:
        if not reason.strip():
            raise UpstreamError("console", 422, "reason_required", "say why it is discarded")
        body["reason"] = reason
    if message_id:
        body["message_ids"] = [message_id]
    report = await _kit.service(request, user).post("sender", f"/internal/v1/dlq/{action}", body)
    done = DLQ_ACTIONS[action]
    return _back_to_dlq(filters, f"{done} {report.get(done, 0)}")


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
                    queues.setdefault(labels["queue"], {"queue": labels["queue"]})["consumers"] = (
                        int(sample.value)
                    )
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


@router.get("/operator/health", include_in_schema=False)
async def health(request: Request, user: CurrentUser, runtime: RuntimeDep) -> HTMLResponse:
    _kit.need(user, READ)
    last = runtime.health
    if last is not None and time.monotonic() - last[0] < HEALTH_CACHE_S:
        return render(
            request, "operator/health.html", {**last[1], "age_s": time.monotonic() - last[0]}
        )
    client = _kit.service(request, user)

    async def scrape(service: str) -> str | None:
        try:
            answer = await client.response("GET", service, "/metrics")
        except UpstreamError:
            return None
        return answer.text if answer.status_code == 200 else None

    found = await asyncio.gather(*(scrape(s) for s in SERVICES))
    read = read_health(dict(zip(SERVICES, found, strict=True)))
    runtime.health = (time.monotonic(), read)
    return render(request, "operator/health.html", {**read, "age_s": 0.0})
