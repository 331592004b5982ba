"""Campaigns: the list, a new campaign (template, audience, schedule, quiet hours) with a
dry-run preview of its first messages, start / pause / resume / cancel, and the live
funnel (queued, sent, delivered, read, replied, failed by reason) drawn server-side as
an inline SVG bar chart that htmx refreshes every second while the campaign runs.

Upstream: the conversation service, ``/v1/tenants/{t}/campaigns`` (list, create,
``dry-run``, ``{id}``, ``{id}/metrics``, ``{id}/{action}``); the numbers from the tenant
service (``/v1/tenants/{t}/accounts``); owners and admins.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()
AREA = "campaigns"
#: Campaign states in which no more messages are queued; once every queued one is
#: delivered or failed the funnel stops polling (htmx: status 286).
FINAL = frozenset({"completed", "cancelled"})
STOP_POLLING = 286


def funnel(metrics: dict[str, Any]) -> dict[str, Any]:
    """The chart's bars: each stage's count and its width in percent of the largest."""
    stages = [
        ("queued", metrics.get("queued", 0)),
        ("sent", metrics.get("sent", 0)),
        ("delivered", metrics.get("delivered", 0)),
        ("read", metrics.get("read", 0)),
        ("replied", metrics.get("replied", 0)),
    ]
    failed = sorted((metrics.get("failed_by_code") or {}).items())
    if metrics.get("failed") and not failed:
        failed = [("unknown", metrics["failed"])]
    rows = [{"label": name, "count": int(n), "kind": name} for name, n in stages]
    rows += [{"label": f"failed {code}", "count": int(n), "kind": "failed"} for code, n in failed]
    if not failed:
        rows.append({"label": "failed", "count": 0, "kind": "failed"})
    top = max([int(metrics.get("targeted") or 0), *(r["count"] for r in rows), 1])
    for r in rows:
        r["pct"] = round(100 * r["count"] / top, 1)
    return {"rows": rows, "targeted": int(metrics.get("targeted") or 0), "height": 28 * len(rows)}


def _spec(form: dict[str, Any]) -> dict[str, Any]:
    """The conversation API's campaign body from the form's fields."""
    spec: dict[str, Any] = {
        "name": form["name"],
        "account_id": form["account_id"],
        "template": {"name": form["template"], "language": form.get("language") or "en"},
    }
    body = [p.strip() for p in (form.get("parameters") or "").split(",") if p.strip()]
    if body:
        spec["parameters"] = {"body": body}
    tags = [t.strip() for t in (form.get("tags") or "").split(",") if t.strip()]
    spec["segment"] = {"tags_all": tags} if tags else {}
    if form.get("scheduled_at"):
        spec["scheduled_at"] = form["scheduled_at"]
    if form.get("quiet_start") and form.get("quiet_end"):
        spec["quiet_hours"] = {"start": form["quiet_start"], "end": form["quiet_end"]}
    if form.get("rate_mps"):
        spec["rate_mps"] = int(form["rate_mps"])
    return spec


async def _numbers(request: Request, user: Any, tenant: str) -> list[dict[str, Any]]:
    page = await _kit.call(request, user, "tenant", "GET", f"/v1/tenants/{tenant}/accounts")
    return _kit.items(page)


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns(request: Request) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    page = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/campaigns",
        as_service=True, params={"limit": "50"},
    )
    return _kit.render(request, "campaigns/list.html", {
        "campaigns": _kit.items(page), "numbers": await _numbers(request, user, tenant),
    })


Field = Annotated[str, Form()]


@router.post("/campaigns/preview", response_class=HTMLResponse)
async def preview(
    request: Request, name: Field, account_id: Field, template: Field, language: Field = "en",
    parameters: Field = "", tags: Field = "", scheduled_at: Field = "", quiet_start: Field = "",
    quiet_end: Field = "", rate_mps: Field = "",
) -> Response:
    """The dry run: counts, exclusions and the first messages rendered (nothing written)."""
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    spec = _spec(locals())
    try:
        dry = await _kit.call(
            request, user, "conversation", "POST", f"/v1/tenants/{tenant}/campaigns/dry-run",
            as_service=True, json={**spec, "previews": 3},
        )
    except _kit.UpstreamError as exc:
        return _kit.render(request, "campaigns/_preview.html", {"error": exc}, status=200)
    return _kit.render(request, "campaigns/_preview.html", {"dry": dry, "error": None})


@router.post("/campaigns", response_class=HTMLResponse)
async def create(
    request: Request, name: Field, account_id: Field, template: Field, language: Field = "en",
    parameters: Field = "", tags: Field = "", scheduled_at: Field = "", quiet_start: Field = "",
    quiet_end: Field = "", rate_mps: Field = "", start: Field = "",
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    spec = _spec(locals())
    try:
        created = await _kit.call(
            request, user, "conversation", "POST", f"/v1/tenants/{tenant}/campaigns",
            as_service=True, json=spec,
        )
    except _kit.UpstreamError as exc:
        page = await _kit.call(
            request, user, "conversation", "GET", f"/v1/tenants/{tenant}/campaigns",
            as_service=True, params={"limit": "50"},
        )
        return _kit.render(request, "campaigns/list.html", {
            "campaigns": _kit.items(page), "numbers": await _numbers(request, user, tenant),
            "error": exc, "form": spec,
        }, status=422)
    campaign_id = created["campaign_id"]
    if start:
        await _kit.call(
            request, user, "conversation", "POST",
            f"/v1/tenants/{tenant}/campaigns/{campaign_id}/start", as_service=True,
        )
    return _kit.back(f"/campaigns/{campaign_id}")


async def _state(request: Request, user: Any, tenant: str, campaign_id: str) -> dict[str, Any]:
    metrics: dict[str, Any] = await _kit.call(
        request, user, "conversation", "GET",
        f"/v1/tenants/{tenant}/campaigns/{campaign_id}/metrics", as_service=True,
    )
    settled = metrics["status"] in FINAL and (
        int(metrics.get("delivered", 0)) + int(metrics.get("failed", 0))
        >= int(metrics.get("queued", 0))
    )
    return {"metrics": metrics, "funnel": funnel(metrics), "final": settled}


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
async def campaign(request: Request, campaign_id: str) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    detail = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/campaigns/{campaign_id}",
        as_service=True,
    )
    state = await _state(request, user, tenant, campaign_id)
    return _kit.render(request, "campaigns/detail.html", {"campaign": detail, **state})


@router.get("/campaigns/{campaign_id}/funnel", response_class=HTMLResponse)
async def campaign_funnel(request: Request, campaign_id: str) -> Response:
    """The funnel fragment htmx swaps in every second; 286 (stop polling) once final."""
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    state = await _state(request, user, tenant, campaign_id)
    status = STOP_POLLING if state["final"] else 200
    return _kit.render(request, "campaigns/_funnel.html", {"campaign_id": campaign_id, **state},
                       status=status)


@router.post("/campaigns/{campaign_id}/{action}")
async def control(
    request: Request, campaign_id: str, action: Literal["start", "pause", "resume", "cancel"]
) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "conversation", "POST",
        f"/v1/tenants/{tenant}/campaigns/{campaign_id}/{action}", as_service=True,
    )
    return _kit.back(f"/campaigns/{campaign_id}")
