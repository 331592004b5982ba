"""Contacts: the list (search, tag), tags and marketing consent of one contact, and the
CSV import with its report of rejected rows.

Upstream: the conversation service, ``/v1/tenants/{t}/contacts`` (GET list, PATCH one,
PUT ``…/marketing``, POST ``…/import``), for owners and admins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from flowchat_console.pages import _kit

router = APIRouter()
AREA = "contacts"
MAX_CSV_BYTES = 20 * 1024 * 1024


@router.get("/contacts", response_class=HTMLResponse)
async def contacts(request: Request, q: str | None = None, tag: str | None = None,
                   cursor: str | None = None) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    params: dict[str, str] = {"limit": "50"}
    if q:
        params["q"] = q
    if tag:
        params["tag"] = tag
    if cursor:
        params["cursor"] = cursor
    page = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/contacts",
        as_service=True, params=params,
    )
    return _kit.render(request, "contacts/list.html", {
        "contacts": _kit.items(page), "next_cursor": page.get("next_cursor"),
        "q": q or "", "tag": tag or "", "report": None,
    })


@router.post("/contacts/import", response_class=HTMLResponse)
async def import_csv(request: Request, file: Annotated[UploadFile, File()]) -> Response:
    """Send the file to the conversation service; answer the report (an htmx fragment,
    or the whole page without htmx)."""
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    body = await file.read(MAX_CSV_BYTES + 1)
    report = await _kit.call(
        request, user, "conversation", "POST", f"/v1/tenants/{tenant}/contacts/import",
        as_service=True, content=body, headers={"Content-Type": "text/csv"},
    )
    context = {"report": report, "filename": file.filename or "contacts.csv"}
    if request.headers.get("HX-Request"):
        return _kit.render(request, "contacts/_report.html", context)
    page = await _kit.call(
        request, user, "conversation", "GET", f"/v1/tenants/{tenant}/contacts",
        as_service=True, params={"limit": "50"},
    )
    return _kit.render(request, "contacts/list.html", {
        **context, "contacts": _kit.items(page), "next_cursor": page.get("next_cursor"),
        "q": "", "tag": "",
    })


@router.post("/contacts/{contact_id}/tags")
async def set_tags(request: Request, contact_id: int, tags: Annotated[str, Form()] = "") -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    wanted = sorted({t.strip() for t in tags.replace(";", ",").split(",") if t.strip()})
    await _kit.call(
        request, user, "conversation", "PATCH", f"/v1/tenants/{tenant}/contacts/{contact_id}",
        as_service=True, json={"tags": wanted},
    )
    return _kit.back("/contacts")


@router.post("/contacts/{contact_id}/consent")
async def set_consent(request: Request, contact_id: int,
                      opt_in: Annotated[str, Form()]) -> Response:
    user = _kit.require(request, AREA)
    tenant = _kit.tenant_of(request, user)
    await _kit.call(
        request, user, "conversation", "PUT",
        f"/v1/tenants/{tenant}/contacts/{contact_id}/marketing",
        as_service=True, json={"opt_in": opt_in == "yes"},
    )
    return _kit.back("/contacts")
