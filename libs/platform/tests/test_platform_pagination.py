"""The one list convention: opaque keyset cursors, a bounded limit, ``{items, next_cursor}``."""

import base64
from datetime import UTC, datetime

import httpx
import pytest

from flowchat_platform.http import PageCursor, PageLimit, build_app
from flowchat_platform.pagination import (
    MAX_LIMIT,
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
    page_of,
)

AT = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_a_cursor_round_trips_its_keyset():
    cursor = encode_cursor((AT, 42, "ab", None))
    assert "=" not in cursor
    assert "{" not in cursor
    assert decode_cursor(cursor, datetime, int, str, int) == (AT, 42, "ab", None)
    assert decode_cursor(None, int) is None
    assert decode_cursor("", int) is None


@pytest.mark.parametrize(
    "cursor",
    ["%%%", "bm90IGpzb24", encode_cursor((1,)), encode_cursor(("x", 1)), encode_cursor((True, 1))],
)
def test_a_cursor_not_of_this_shape_is_refused(cursor):
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, int, int)


def test_a_naive_datetime_is_neither_encoded_nor_accepted():
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_cursor((datetime(2026, 1, 1),))
    forged = base64.urlsafe_b64encode(b'[{"t":"2026-01-01T00:00:00"}]').decode()
    with pytest.raises(InvalidCursor):
        decode_cursor(forged, datetime)


def test_page_of_gives_a_cursor_only_when_there_is_more():
    rows = [(3, "c"), (2, "b"), (1, "a")]
    items, cursor = page_of(rows, 2, lambda r: r)
    assert items == rows[:2]
    assert cursor is not None
    assert decode_cursor(cursor, int, str) == (2, "b")
    assert page_of(rows, 3, lambda r: r) == (rows, None)


def _app():
    app = build_app("demo")
    numbers = list(range(10, 0, -1))

    @app.get("/numbers", response_model=Page[int])
    async def listing(limit: PageLimit = 3, cursor: PageCursor = None) -> Page[int]:
        after = decode_cursor(cursor, int)
        rows = [n for n in numbers if after is None or n < after[0]][: limit + 1]
        items, next_cursor = page_of(rows, limit, lambda n: (n,))
        return Page[int](items=items, next_cursor=next_cursor)

    return app


async def test_an_app_pages_to_the_end_and_refuses_a_bad_cursor_and_limit():
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, str] = {"cursor": cursor} if cursor else {}
            body = (await c.get("/numbers", params=params)).json()
            assert set(body) == {"items", "next_cursor"}
            seen += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(10, 0, -1))
        bad = await c.get("/numbers", params={"cursor": "nope"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "invalid_cursor"
        over = await c.get("/numbers", params={"limit": MAX_LIMIT + 1})
        assert over.status_code == 422
    schema = app.openapi()["components"]["schemas"]["Page_int_"]
    assert set(schema["properties"]) == {"items", "next_cursor"}
