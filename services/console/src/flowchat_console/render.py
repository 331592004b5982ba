"""Rendering pages: one Jinja2 environment (autoescaped) and :func:`render`, which gives
every template what the layout needs: the user, the menu, the CSRF token, ``can()``.

    return render(request, "inbox/index.html", {"items": items})

Templates live in ``templates/`` (``base.html`` the layout; ``<area>/…`` each page's; a
name starting with ``_`` is a fragment htmx swaps in).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from flowchat_console import nav
from flowchat_console.timing import Rendering

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def duration(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``3 h 20 min``, ``2 d 4 h``."""
    if seconds is None:
        return "\u2013"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def ago(value: Any, now: datetime | None = None) -> str:
    """How long since ``value`` (an ISO time or datetime)."""
    at = _parse(value)
    if at is None:
        return "\u2013"
    return duration(((now or datetime.now(UTC)) - at).total_seconds())


def when(value: Any) -> str:
    """A time as ``2026-12-07 00:22 UTC``."""
    at = _parse(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at else "\u2013"


def iso(value: Any) -> str:
    at = _parse(value)
    return at.isoformat() if at else ""


#: A message's status as ticks (WhatsApp's): sent ✓, delivered ✓✓, read ✓✓ (blue).
TICKS = {
    "accepted": ("🕓", "queued"),
    "queued": ("🕓", "queued"),
    "sent": ("✓", "sent"),
    "delivered": ("✓✓", "delivered"),
    "read": ("✓✓", "read"),
    "played": ("✓✓", "played"),
    "failed": ("⚠", "failed"),
    "parked": ("⚠", "parked"),
    "deleted": ("⌫", "deleted"),
}


def ticks(status: str | None) -> tuple[str, str]:
    """(symbol, words) for a message status."""
    if not status:
        return ("", "")
    return TICKS.get(status, ("", status))


templates.env.filters["ago"] = ago
templates.env.filters["when"] = when
templates.env.filters["iso"] = iso
templates.env.filters["duration"] = duration
templates.env.globals["ticks"] = ticks


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def context(request: Request, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    user = getattr(request.state, "user", None)
    runtime = getattr(request.app.state, "runtime", None)
    served = runtime.served if runtime is not None else set()
    return {
        "request": request,
        "user": user,
        "menu": nav.menu(user, served),
        "can": lambda action: nav.can(user, action),
        "csrf_token": getattr(request.state, "csrf", ""),
        "htmx": is_htmx(request),
        "path": request.url.path,
        **(extra or {}),
    }


def render(
    request: Request,
    template: str,
    extra: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """The page (or fragment) ``template`` with the layout's context."""
    with Rendering():
        response = templates.TemplateResponse(
            request,
            template,
            context(request, extra),
            status_code=status_code,
            headers=dict(headers or {}),
        )
    response.headers.setdefault("Cache-Control", "no-store")
    return response
