"""The console's logic, free of HTTP and templates: turning the services' answers into
what a page shows (view models), and the rules a page applies before it calls a service.
Pages (``pages/*``) fetch through :class:`~flowchat_console.ports.Api` and render these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    return None


@dataclass(frozen=True)
class Window:
    """The 24 h customer-service window of a thread: free-form replies while open, only
    templates once closed."""

    open: bool
    closes_at: datetime | None

    def seconds_left(self, now: datetime) -> float | None:
        if not self.open or self.closes_at is None:
            return None
        return max((self.closes_at - now).total_seconds(), 0.0)


def window_of(body: dict[str, Any]) -> Window:
    """From a thread or conversation answer (``window_open``, ``window_closes_at``); unknown
    counts as closed (templates always work)."""
    return Window(
        open=bool(body.get("window_open")), closes_at=parse_time(body.get("window_closes_at"))
    )
