"""One list convention for every FlowChat API: ``{"items": [...], "next_cursor": ...}``.

Every list endpoint answers a :class:`Page` and reads the same two query parameters
(:data:`flowchat_platform.http.PageLimit`, :data:`flowchat_platform.http.PageCursor`):

- ``limit``: how many items at most (1..:data:`MAX_LIMIT`, :data:`DEFAULT_LIMIT` unless
  given);
- ``cursor``: the previous page's ``next_cursor``; absent for the first page.

A cursor is opaque to clients: base64url (unpadded) of a JSON array holding the
*keyset* of the last item of the page (its sort key, e.g. ``(created_at, id)``), so the
next page is ``WHERE (created_at, id) < (…)`` whatever was inserted meanwhile, never an
offset. ``next_cursor`` is ``null`` on the last page. A cursor this API did not issue
(not base64, not JSON, not the keyset's shape) raises :class:`InvalidCursor`, which
every app answers ``400 invalid_cursor`` (:func:`flowchat_platform.http.build_app`).

Pure: no I/O library, so business logic may page with it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from flowchat_platform.errors import FlowchatError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "InvalidCursor",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "page_of",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")
R = TypeVar("R")

#: One part of a keyset: what a sort column can hold.
KeyPart = str | int | datetime | None


class InvalidCursor(FlowchatError, ValueError):
    """A cursor this API did not issue (answered ``400 invalid_cursor``)."""

    def __init__(self, message: str = "the cursor is not one this API issued") -> None:
        super().__init__(message)


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, and the cursor of the next page (null: the last)."""

    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page",
        examples=["WyIyMDI2LTEyLTA2VDEwOjAwOjAwKzAwOjAwIiwxMjNd"],
    )


def encode_cursor(key: Sequence[KeyPart]) -> str:
    """The opaque cursor of a keyset (datetimes must be timezone-aware)."""
    parts: list[Any] = []
    for part in key:
        if isinstance(part, datetime):
            if part.tzinfo is None:
                raise ValueError("a cursor's datetime must be timezone-aware")
            parts.append({"t": part.isoformat()})
        else:
            parts.append(part)
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *shape: type) -> tuple[Any, ...] | None:
    """The keyset in ``cursor``, checked against ``shape`` (one type per part: ``str``,
    ``int``, ``datetime``); None for no cursor (the first page).

    A part may be None (a nullable sort column) whatever its type.
    """
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor from exc
    if not isinstance(parts, list) or len(parts) != len(shape):
        raise InvalidCursor
    return tuple(_part(value, kind) for value, kind in zip(parts, shape, strict=True))


def _part(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is datetime:
        if not isinstance(value, dict) or not isinstance(value.get("t"), str):
            raise InvalidCursor
        try:
            moment = datetime.fromisoformat(value["t"])
        except ValueError as exc:
            raise InvalidCursor from exc
        if moment.tzinfo is None:
            raise InvalidCursor
        return moment
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidCursor
    if kind is str and not isinstance(value, str):
        raise InvalidCursor
    return value


def page_of(
    rows: Sequence[R], limit: int, key: Callable[[R], Sequence[KeyPart]]
) -> tuple[list[R], str | None]:
    """The first ``limit`` of ``rows`` (fetched with ``limit + 1``) and the next cursor:
    the keyset of the last item kept when there was one more row, else None."""
    items = list(rows[:limit])
    if len(rows) > limit and items:
        return items, encode_cursor(key(items[-1]))
    return items, None
