"""Pages issue upstream calls that do not depend on each other together, and keep the
campaign form's template suggestions briefly (a fake upstream records the calls)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from flowchat_console.auth import ConsoleUser
from flowchat_console.deps import Runtime
from flowchat_console.errors import UpstreamError
from flowchat_console.pages import campaigns, inbox
from flowchat_console.upstream import Upstream

AGENT = ConsoleUser(user_id="usr_me", tenant_id="tnt_a", email="me@example.com", role="agent")


class FakeUpstream:
    """Answers by path; notes which calls were in flight together."""

    def __init__(self, answers: dict[str, Any], slow: str = "") -> None:
        self.answers = answers
        self.slow = slow
        self.calls: list[str] = []
        self.inflight: set[str] = set()
        self.overlaps: set[frozenset[str]] = set()

    async def get(self, service: str, path: str, params: Any = None) -> Any:
        self.calls.append(path)
        for other in self.inflight:
            self.overlaps.add(frozenset({path, other}))
        self.inflight.add(path)
        try:
            await asyncio.sleep(0.2 if path == self.slow else 0.01)
            answer = self.answers[path]
            if isinstance(answer, Exception):
                raise answer
            return answer
        finally:
            self.inflight.discard(path)


def _runtime() -> Runtime:
    return Runtime(settings=cast(Any, None), clients=cast(Any, None), sessions=cast(Any, None))


async def test_a_thread_panel_reads_the_people_alongside_the_conversation() -> None:
    up = FakeUpstream(
        {
            "/v1/conversations/7": {"thread_id": 3, "status": "open", "assignee": "usr_b"},
            "/v1/tenants/tnt_a/users": {"items": []},
            "/v1/threads/3": {"id": 3},
            "/v1/threads/3/messages": {"items": []},
        }
    )
    ctx = await inbox.thread_context(_runtime(), cast(Upstream, up), AGENT, 7)
    assert ctx["conversation"]["thread_id"] == 3
    assert frozenset({"/v1/conversations/7", "/v1/tenants/tnt_a/users"}) in up.overlaps
    assert frozenset({"/v1/threads/3", "/v1/threads/3/messages"}) in up.overlaps
    assert up.calls.count("/v1/tenants/tnt_a/users") == 1  # labels and agents: one read


async def test_campaign_suggestions_load_alongside_the_list_and_are_kept(monkeypatch) -> None:
    monkeypatch.setattr(campaigns, "render", lambda _r, _t, ctx, status_code=200: ctx)
    templates = "/v1/tenants/tnt_a/accounts/acc_1/templates"
    up = FakeUpstream(
        {
            "/v1/tenants/tnt_a/campaigns": {"items": []},
            "/v1/tenants/tnt_a/accounts": {"items": [{"account_id": "acc_1"}]},
            templates: {"items": [{"name": "hi", "status": "APPROVED"}, {"status": "PENDING"}]},
        },
        slow="/v1/tenants/tnt_a/campaigns",  # the suggestions do not wait for the list
    )
    runtime = _runtime()
    page: Any = await campaigns._list_page(cast(Any, None), runtime, cast(Upstream, up), "tnt_a")
    assert page["templates"] == [{"name": "hi", "status": "APPROVED"}]
    assert frozenset({"/v1/tenants/tnt_a/campaigns", templates}) in up.overlaps
    up.calls.clear()
    page = await campaigns._list_page(cast(Any, None), runtime, cast(Upstream, up), "tnt_a")
    assert page["templates"] == [{"name": "hi", "status": "APPROVED"}]
    assert templates not in up.calls  # kept SUGGESTIONS_CACHE_S


@pytest.mark.parametrize("status", [502, 403])
async def test_suggestions_that_cannot_be_read_are_none_and_not_kept(status: int) -> None:
    templates = "/v1/tenants/tnt_a/accounts/acc_1/templates"
    up = FakeUpstream({templates: UpstreamError("conversation", status, "x", "down")})
    runtime = _runtime()
    numbers = [{"account_id": "acc_1"}]
    assert await campaigns._templates(runtime, cast(Upstream, up), "tnt_a", numbers) == []
    assert runtime.suggestions == {}
