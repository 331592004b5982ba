"""Search past the newest messages: the walks of ``Repository.search`` (window after
window) and its GIN step (older than the walks) join their matches in order, across
cursor pages. The windows are shrunk to a few messages so a handful exercise every step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from inbox_testkit import Kit

from flowchat_inbox import repository

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def _all_pages(kit: Kit, tenant: str, word: str) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": word, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await kit.get("/v1/search", tenant, **params)
        found += [m["text"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@pytest.mark.parametrize("windows", [(3,), (2, 2), (2, 4)])
async def test_matches_older_than_the_window_come_in_order_after_the_newer_ones(
    kit: Kit, monkeypatch: pytest.MonkeyPatch, windows: tuple[int, ...]
) -> None:
    monkeypatch.setattr(repository, "SEARCH_WINDOWS", windows)
    t, word = kit.new_tenant(), f"quokka{uuid.uuid4().hex[:6]}"
    # oldest first: the newest three hold one match; the next one ("three", where
    # the index step or the second walk starts) and two older ones match too
    texts = ["one", "plain", "two", "three", "plain", "four", "plain"]
    start = datetime.now(UTC) - timedelta(hours=1)
    await kit.publish(
        *(
            kit.inbound(
                t,
                wa_id=kit.phone(),
                text=f"{word} {x}" if x != "plain" else "nothing here",
                at=start + timedelta(seconds=i),
            )
            for i, x in enumerate(texts)
        )
    )
    assert await _all_pages(kit, t, word) == [
        f"{word} {n}" for n in ("four", "three", "two", "one")
    ]


async def test_a_word_only_beyond_the_window_is_found(
    kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repository, "SEARCH_WINDOWS", (3,))
    t, word = kit.new_tenant(), f"quokka{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(hours=1)
    texts = [f"{word} old", *(["nothing here"] * 5)]
    await kit.publish(
        *(
            kit.inbound(t, wa_id=kit.phone(), text=x, at=start + timedelta(seconds=i))
            for i, x in enumerate(texts)
        )
    )
    assert await _all_pages(kit, t, word) == [f"{word} old"]
    assert await _all_pages(kit, t, f"absent{uuid.uuid4().hex[:6]}") == []
