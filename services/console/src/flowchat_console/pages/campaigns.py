"""Campaigns: the list, a new campaign (approved template, audience, schedule, quiet
hours) with a dry-run preview of its first messages, start / pause / resume / cancel,
and the live funnel (queued, sent, delivered, read, replied, failed by reason) drawn
server-side as an inline SVG bar chart that htmx refreshes every second until every
queued message is delivered or failed.

Upstream: the conversation service with the user's token (owners, admins, operators):
``/v1/tenants/{t}/campaigns`` (list, create, ``dry-run``, ``{id}``, ``{id}/metrics``,
``{id}/{action}``) and ``/v1/tenants/{t}/accounts/{a}/templates``; the tenant service's
``/v1/tenants/{t}/accounts`` for the numbers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict

from flowchat_console.deps import CurrentUser, Runtime, RuntimeDep, UpstreamDep
from flowchat_console.errors import UpstreamError
from flowchat_console.pages import _kit
from flowchat_console.render import render
from flowchat_console.upstream import Upstream

router = APIRouter()
WRITE = "campaigns.write"
#: Campaign states in which no more messages are queued; once every queued one is
#: delivered or failed the funnel stops polling (htmx: status 286).
#: The form's template suggestions per (tenant, number), kept this long (the
#: conversation service reads them from the provider at each call).
SUGGESTIONS_CACHE_S = 30.0
SUGGESTIONS_CACHE_SIZE = 1_000
FINAL = frozenset({"completed", "cancelled"})
STOP_POLLING = 286
#: Which control each state offers.
CONTROLS: dict[str, tuple[str, ...]] = {
    "draft": ("start", "cancel"),
    "scheduled": ("pause", "cancel"),
    "running": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
}


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
    bars = [(name, int(n), name) for name, n in stages]
    bars += [(f"failed {code}", int(n), "failed") for code, n in failed]
    if not failed:
        bars.append(("failed", 0, "failed"))
    targeted = int(metrics.get("targeted") or 0)
    top = max([targeted, 1, *(count for _, count, _ in bars)])
    rows = [
        {"label": label, "count": count, "kind": kind, "pct": round(100 * count / top, 1)}
        for label, count, kind in bars
    ]
    return {"rows": rows, "targeted": targeted, "height": 28 * len(rows)}


class CampaignForm(BaseModel):
    """The new-campaign form (its dry run and its creation take the same fields)."""

    model_config = ConfigDict(extra="ignore", str_max_length=2000)

    name: str
    account_id: str
    template: str
    language: str = "en"
    parameters: str = ""
    tags: str = ""
    scheduled_at: str = ""
    quiet_start: str = ""
    quiet_end: str = ""
    rate_mps: str = ""
    start: str = ""

    def spec(self) -> dict[str, Any]:
        """The conversation API's campaign body."""
        spec: dict[str, Any] = {
            "name": self.name,
            "account_id": self.account_id,
            "template": {"name": self.template, "language": self.language or "en"},
        }
        body = [p.strip() for p in self.parameters.split(",") if p.strip()]
        if body:
            spec["parameters"] = {"body": body}
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        spec["segment"] = {"tags_all": tags} if tags else {}
        if self.scheduled_at:
            spec["scheduled_at"] = self.scheduled_at
        if self.quiet_start and self.quiet_end:
            spec["quiet_hours"] = {"start": self.quiet_start, "end": self.quiet_end}
        if self.rate_mps.strip():
            if not self.rate_mps.strip().isdigit():
                raise UpstreamError("console", 422, "invalid_rate", "messages per second: a number")
            spec["rate_mps"] = int(self.rate_mps)
        return spec


CampaignFields = Annotated[CampaignForm, Form()]


async def _numbers(up: Upstream, tenant: str) -> list[dict[str, Any]]:
    return _kit.items(await up.get("tenant", f"/v1/tenants/{tenant}/accounts"))


async def _templates(
    runtime: Runtime, up: Upstream, tenant: str, numbers: list[dict[str, Any]]
) -> list[Any]:
    """The approved templates of the tenant's first number (the form's suggestions), cached
    ``SUGGESTIONS_CACHE_S``; none (and not cached) when they cannot be read."""
    if not numbers:
        return []
    key = (tenant, str(numbers[0]["account_id"]))
    hit = runtime.suggestions.get(key)
    if hit is not None and time.monotonic() - hit[0] < SUGGESTIONS_CACHE_S:
        return list(hit[1])
    try:
        page = await up.get("conversation", f"/v1/tenants/{tenant}/accounts/{key[1]}/templates")
    except UpstreamError:
        return []
    approved = [t for t in _kit.items(page) if t.get("status") == "APPROVED"]
    if len(runtime.suggestions) >= SUGGESTIONS_CACHE_SIZE:
        runtime.suggestions.clear()
    runtime.suggestions[key] = (time.monotonic(), approved)
    return list(approved)


async def _numbers_and_templates(
    runtime: Runtime, up: Upstream, tenant: str
) -> tuple[list[dict[str, Any]], list[Any]]:
    numbers = await _numbers(up, tenant)
    return numbers, await _templates(runtime, up, tenant, numbers)


async def _list_page(
    request: Request,
    runtime: Runtime,
    up: Upstream,
    tenant: str,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    # The suggestions follow the numbers, alongside the campaigns (not after them).
    page, (numbers, templates) = await asyncio.gather(
        up.get("conversation", f"/v1/tenants/{tenant}/campaigns", {"limit": 50}),
        _numbers_and_templates(runtime, up, tenant),
    )
    return render(
        request,
        "campaigns/list.html",
        {
            "campaigns": _kit.items(page),
            "numbers": numbers,
            "templates": templates,
            "error": None,
            **extra,
        },
        status_code=status,
    )


@router.get("/campaigns", include_in_schema=False)
async def campaigns(
    request: Request, user: CurrentUser, up: UpstreamDep, runtime: RuntimeDep
) -> HTMLResponse:
    _kit.need(user, WRITE)
    return await _list_page(request, runtime, up, _kit.tenant_of(request, user))


@router.post("/campaigns/preview", include_in_schema=False)
async def preview(
    request: Request, user: CurrentUser, up: UpstreamDep, form: CampaignFields
) -> HTMLResponse:
    """The dry run: counts, exclusions and the first messages rendered (nothing written)."""
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    try:
        dry = await up.post(
            "conversation",
            f"/v1/tenants/{tenant}/campaigns/dry-run",
            {**form.spec(), "previews": 3},
        )
    except UpstreamError as exc:
        if exc.status in (401, 403):
            raise
        return render(request, "campaigns/_preview.html", {"error": exc})
    return render(request, "campaigns/_preview.html", {"dry": dry, "error": None})


@router.post("/campaigns", include_in_schema=False)
async def create(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    runtime: RuntimeDep,
    form: CampaignFields,
) -> Response:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    try:
        created = await up.post("conversation", f"/v1/tenants/{tenant}/campaigns", form.spec())
    except UpstreamError as exc:
        if exc.status in (401, 403):
            raise
        return await _list_page(request, runtime, up, tenant, status=422, error=exc)
    campaign_id = created["campaign_id"]
    if form.start:
        await up.post("conversation", f"/v1/tenants/{tenant}/campaigns/{campaign_id}/start")
    return _kit.back(f"/campaigns/{campaign_id}")


async def _state(up: Upstream, tenant: str, campaign_id: str) -> dict[str, Any]:
    metrics: dict[str, Any] = await up.get(
        "conversation", f"/v1/tenants/{tenant}/campaigns/{campaign_id}/metrics"
    )
    settled = metrics["status"] in FINAL and (
        int(metrics.get("delivered", 0)) + int(metrics.get("failed", 0))
        >= int(metrics.get("queued", 0))
    )
    return {"metrics": metrics, "funnel": funnel(metrics), "final": settled}


@router.get("/campaigns/{campaign_id}", include_in_schema=False)
async def campaign(
    request: Request, user: CurrentUser, up: UpstreamDep, campaign_id: str
) -> HTMLResponse:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    detail, state = await asyncio.gather(
        up.get("conversation", f"/v1/tenants/{tenant}/campaigns/{campaign_id}"),
        _state(up, tenant, campaign_id),
    )
    controls = CONTROLS.get(state["metrics"]["status"], ())
    return render(
        request,
        "campaigns/detail.html",
        {"campaign": detail, "campaign_id": campaign_id, "controls": controls, **state},
    )


@router.get("/campaigns/{campaign_id}/funnel", include_in_schema=False)
async def campaign_funnel(
    request: Request, user: CurrentUser, up: UpstreamDep, campaign_id: str
) -> HTMLResponse:
    """The funnel fragment htmx swaps in every second; 286 (stop polling) once settled."""
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    state = await _state(up, tenant, campaign_id)
    return render(
        request,
        "campaigns/_funnel.html",
        {"campaign_id": campaign_id, **state},
        status_code=STOP_POLLING if state["final"] else 200,
    )


@router.post("/campaigns/{campaign_id}/{action}", include_in_schema=False)
async def control(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    campaign_id: str,
    action: Literal["start", "pause", "resume", "cancel"],
) -> Response:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    await up.post("conversation", f"/v1/tenants/{tenant}/campaigns/{campaign_id}/{action}")
    return _kit.back(f"/campaigns/{campaign_id}")
