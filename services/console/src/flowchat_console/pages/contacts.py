"""Contacts: the list (search, tag), tags and marketing consent of one contact, and the
CSV import with its report of rejected rows.

Upstream: the conversation service with the user's token (owners, admins, operators),
``/v1/tenants/{t}/contacts`` (GET list, PATCH one, PUT ``…/marketing``, POST
``…/import``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from flowchat_console import service
from flowchat_console.deps import CurrentUser, UpstreamDep
from flowchat_console.errors import UpstreamError
from flowchat_console.pages import _kit
from flowchat_console.render import is_htmx, render
from flowchat_console.upstream import Upstream, error_of

router = APIRouter()
WRITE = "contacts.write"
MAX_CSV_BYTES = 20 * 1024 * 1024


async def _list(up: Upstream, tenant: str, **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = await up.get(
        "conversation", f"/v1/tenants/{tenant}/contacts", {"limit": 50, **params}
    )
    return page


@router.get("/contacts", include_in_schema=False)
async def contacts(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    q: str | None = None,
    tag: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    page = await _list(up, tenant, q=q or None, tag=tag or None, cursor=cursor)
    return render(
        request,
        "contacts/list.html",
        {
            "contacts": _kit.items(page),
            "next_cursor": page.get("next_cursor"),
            "q": q or "",
            "tag": tag or "",
            "report": None,
        },
    )


async def import_file(up: Upstream, path: str, file: UploadFile) -> Any:
    """POST the uploaded CSV file as the raw body; the service's report (or its error)."""
    body = await file.read(MAX_CSV_BYTES + 1)
    answer = await up.response(
        "POST", "conversation", path, content=body, headers={"Content-Type": "text/csv"}
    )
    if answer.status_code >= 400:
        raise error_of("conversation", answer)
    return answer.json()


@router.post("/contacts/import", include_in_schema=False)
async def import_csv(
    request: Request, user: CurrentUser, up: UpstreamDep, file: Annotated[UploadFile, File()]
) -> HTMLResponse:
    """The report of the import: an htmx fragment, or the whole page without htmx."""
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    report = await import_file(up, f"/v1/tenants/{tenant}/contacts/import", file)
    context = {"report": report, "filename": file.filename or "contacts.csv"}
    if is_htmx(request):
        return render(request, "contacts/_report.html", context)
    page = await _list(up, tenant)
    return render(
        request,
        "contacts/list.html",
        {
            **context,
            "contacts": _kit.items(page),
            "next_cursor": page.get("next_cursor"),
            "q": "",
            "tag": "",
        },
    )


@router.post("/contacts/import/part", include_in_schema=False)
async def import_part(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JSONResponse:
    """One part of a file the browser imports piece by piece (``static/app.js``: the
    header and up to a few hundred rows, raw CSV; ``offset``: rows before it), so the page
    shows the rows done as they are; its report with the file's line numbers."""
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise UpstreamError("console", 413, "too_large", "the file is too large")
    answer = await up.response(
        "POST",
        "conversation",
        f"/v1/tenants/{tenant}/contacts/import",
        content=body,
        headers={"Content-Type": "text/csv"},
    )
    if answer.status_code >= 400:
        raise error_of("conversation", answer)
    return JSONResponse(service.shift_report(answer.json(), offset))


class _Parts(BaseModel):
    filename: str = Field(default="contacts.csv", max_length=300)
    parts: list[dict[str, Any]] = Field(max_length=100_000)


@router.post("/contacts/import/report", include_in_schema=False)
async def import_report(request: Request, user: CurrentUser) -> HTMLResponse:
    """The report of a file imported piece by piece (the parts' reports as one)."""
    _kit.need(user, WRITE)
    try:
        done = _Parts.model_validate_json(await request.body())
    except ValidationError:
        raise UpstreamError("console", 422, "invalid_report", "not an import report") from None
    report = service.merge_reports(done.parts)
    return render(request, "contacts/_report.html", {"report": report, "filename": done.filename})


@router.post("/contacts/{contact_id}/tags", include_in_schema=False)
async def set_tags(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    contact_id: int,
    tags: Annotated[str, Form()] = "",
) -> Response:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    wanted = sorted({t.strip() for t in tags.replace(";", ",").split(",") if t.strip()})
    await up.patch("conversation", f"/v1/tenants/{tenant}/contacts/{contact_id}", {"tags": wanted})
    return _kit.back("/contacts")


@router.post("/contacts/{contact_id}/consent", include_in_schema=False)
async def set_consent(
    request: Request,
    user: CurrentUser,
    up: UpstreamDep,
    contact_id: int,
    opt_in: Annotated[str, Form()],
) -> Response:
    _kit.need(user, WRITE)
    tenant = _kit.tenant_of(request, user)
    await up.put(
        "conversation",
        f"/v1/tenants/{tenant}/contacts/{contact_id}/marketing",
        {"opt_in": opt_in == "yes"},
    )
    return _kit.back("/contacts")
