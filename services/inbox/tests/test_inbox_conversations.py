"""The inbox: a hand-off opens a conversation; list and filter; claim (one winner, 409
with the holder); assign; reply (window rule); notes; resolve (told on the broker);
another tenant's conversation answers 404."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from inbox_testkit import Kit

from flowchat_contracts import topology
from flowchat_platform.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

OLD = timedelta(days=2)


async def test_a_hand_off_opens_one_waiting_conversation(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa)
    handoff = kit.handoff(t, wa_id=wa)
    await kit.publish(handoff, handoff)  # a second hand-off while one is open: still one
    c = await kit.get(f"/v1/conversations/{cid}", t)
    assert c["status"] == "waiting"
    assert c["assignee"] is None
    assert c["reason"] == "customer asked for an agent"
    assert c["bot_state"] == "BROWSING_PRODUCTS"
    assert c["window_open"] is True
    thread = await kit.thread_of(t)
    assert c["thread_id"] == thread["id"]
    assert len((await kit.get("/v1/conversations", t))["items"]) == 1


async def test_two_agents_claiming_at_once_one_wins_the_other_gets_409_with_the_holder(
    kit: Kit,
) -> None:
    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    url = f"/v1/conversations/{cid}/claim"
    results = await asyncio.gather(
        *(kit.http.post(url, headers={**kit.key(t), "X-Agent-ID": f"agent{i}"}) for i in range(8))
    )
    won = [r for r in results if r.status_code == 200]
    lost = [r for r in results if r.status_code == 409]
    assert len(won) == 1
    assert len(lost) == 7
    holder = won[0].json()["assignee"]
    assert {r.json()["error"]["code"] for r in lost} == {"already_claimed"}
    assert {r.json()["error"]["details"][0]["holder"] for r in lost} == {holder}
    again = await kit.http.post(url, headers={**kit.key(t), "X-Agent-ID": holder})
    assert again.status_code == 200  # one's own claim again is a no-op


async def test_views_waiting_mine_unassigned_and_by_number(kit: Kit) -> None:
    t = kit.new_tenant()
    first = await kit.open_conversation(t, kit.phone())
    await kit.publish(kit.inbound(t, wa_id=(wa2 := kit.phone()), account="acc2"))
    await kit.publish(kit.handoff(t, wa_id=wa2, account="acc2"))
    me = {**kit.key(t), "X-Agent-ID": "ann"}
    r = await kit.http.post(f"/v1/conversations/{first}/claim", headers=me)
    assert r.status_code == 200

    async def ids(view: str, **params: str) -> list[int]:
        r = await kit.http.get("/v1/conversations", headers=me, params={"view": view, **params})
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    second = (await ids("unassigned"))[0]
    assert second != first
    assert await ids("mine") == [first]
    assert sorted(await ids("waiting")) == sorted([first, second])
    assert await ids("open", account_id="acc2") == [second]
    r = await kit.http.get("/v1/conversations", headers=me, params={"view": "everything"})
    assert r.status_code == 422


async def test_assign_by_a_manager_and_reply_only_by_the_holder(kit: Kit) -> None:
    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    ann = {**kit.key(t), "X-Agent-ID": "ann"}
    bob = {**kit.key(t), "X-Agent-ID": "bob"}
    r = await kit.http.post(
        f"/v1/conversations/{cid}/assign", headers=ann, json={"agent_id": "bob"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["assignee"] == "bob"
    body = {"content": {"type": "text", "body": "hello from ann"}}
    r = await kit.http.post(f"/v1/conversations/{cid}/messages", headers=ann, json=body)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "not_holder"
    r = await kit.http.post(f"/v1/conversations/{cid}/messages", headers=bob, json=body)
    assert r.status_code == 202, r.text
    r = await kit.http.post(
        f"/v1/conversations/{cid}/assign", headers=ann, json={"agent_id": "no spaces"}
    )
    assert r.status_code == 422


async def test_a_reply_goes_out_as_the_agent_and_lands_in_the_thread(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa)
    await kit.take(topology.QUEUE_OUTBOUND)
    grace = {**kit.key(t), "X-Agent-ID": "grace"}
    assert (await kit.http.post(f"/v1/conversations/{cid}/claim", headers=grace)).status_code == 200
    body = {
        "content": {"type": "text", "body": "Grace here, how can I help?"},
        "idempotency_key": "r1",
    }
    r = await kit.http.post(f"/v1/conversations/{cid}/messages", headers=grace, json=body)
    assert r.status_code == 202, r.text
    assert r.json()["conversation"]["first_response_at"] is not None
    sent = [c for c in await kit.take(topology.QUEUE_OUTBOUND) if c["tenant_id"] == t]
    assert len(sent) == 1
    assert sent[0]["to"] == wa
    assert sent[0]["origin"] == "agent"
    assert sent[0]["agent_id"] == "grace"
    assert sent[0]["content"]["body"] == "Grace here, how can I help?"
    thread = await kit.thread_of(t)
    # the copy on inbox.history is a duplicate of the recorded reply
    await kit.publish(kit.inbound(t, wa_id=wa, text="thanks"))
    msgs = await kit.messages(t, thread["id"])
    agent = [m for m in msgs if m["author"] == "agent"]
    assert len(agent) == 1
    assert agent[0]["agent_id"] == "grace"
    assert agent[0]["message_id"] == r.json()["message_id"]


async def test_outside_the_24h_window_only_templates(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa, inbound_at=datetime.now(UTC) - OLD)
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    assert (await kit.http.post(f"/v1/conversations/{cid}/claim", headers=h)).status_code == 200
    assert (await kit.get(f"/v1/conversations/{cid}", t))["window_open"] is False
    text = {"content": {"type": "text", "body": "late free text"}}
    r = await kit.http.post(f"/v1/conversations/{cid}/messages", headers=h, json=text)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "outside_customer_service_window"
    assert "24-hour" in err["message"]
    assert err["details"][0]["rule"] == "customer_service_window"
    template = {"content": {"type": "template", "name": "follow_up", "language": "en"}}
    r = await kit.http.post(f"/v1/conversations/{cid}/messages", headers=h, json=template)
    assert r.status_code == 202, r.text


async def test_notes_are_internal_and_bad_notes_are_refused(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa)
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    await kit.take(topology.QUEUE_OUTBOUND)
    r = await kit.http.post(
        f"/v1/conversations/{cid}/notes", headers=h, json={"text": "VIP, be nice"}
    )
    assert r.status_code == 201, r.text
    msgs = await kit.messages(t, r.json()["thread_id"])
    note = next(m for m in msgs if m["type"] == "note")
    assert (note["direction"], note["author"], note["agent_id"]) == ("internal", "agent", "ann")
    assert [c for c in await kit.take(topology.QUEUE_OUTBOUND) if c["tenant_id"] == t] == []
    url = f"/v1/conversations/{cid}/notes"
    assert (await kit.http.post(url, headers=h, json={"text": "x" * 100_000})).status_code == 413
    assert (await kit.http.post(url, headers=h, json={"text": "x" * 5000})).status_code == 422
    assert (await kit.http.post(url, headers=h, json={"text": ""})).status_code == 422
    assert (await kit.http.post(url, headers=h, json={"txt": "typo"})).status_code == 422
    r = await kit.http.post(url, headers={**h, "Content-Type": "application/json"}, content=b"{no")
    assert r.status_code == 422
    r = await kit.http.post(url, headers=h, json={"text": "nul \u0000 here"})
    assert r.status_code == 422


async def test_resolve_tells_the_conversation_service_and_closes(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa)
    await kit.take(topology.QUEUE_CONVERSATION_EVENTS)
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    await kit.http.post(f"/v1/conversations/{cid}/claim", headers=h)
    r = await kit.http.post(
        f"/v1/conversations/{cid}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "ok"}},
    )
    assert r.status_code == 202
    other = {**kit.key(t, n=2)}
    r = await kit.http.post(
        f"/v1/conversations/{cid}/resolve", headers={**other, "X-Agent-ID": "zed"}
    )
    assert r.status_code == 200  # an admin key manages: may resolve another's conversation
    assert r.json()["status"] == "resolved"
    assert r.json()["resolved_by"] == "zed"
    told = [e for e in await kit.take(topology.QUEUE_CONVERSATION_EVENTS) if e["tenant_id"] == t]
    assert len(told) == 1
    assert told[0]["kind"] == "handoff_resolved"
    assert told[0]["_routing_key"] == f"{t}.acc1.handoff_resolved"
    assert told[0]["customer"]["wa_id"] == wa
    assert told[0]["waited_s"] >= 0
    for action in ("claim", "resolve"):
        r = await kit.http.post(f"/v1/conversations/{cid}/{action}", headers=h)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "conversation_resolved")
    assert (await kit.get("/v1/conversations", t))["items"] == []
    resolved = (await kit.get("/v1/conversations", t, view="resolved"))["items"]
    assert [c["id"] for c in resolved] == [cid]
    # the customer asks again: a new conversation
    await kit.publish(kit.handoff(t, wa_id=wa))
    assert len((await kit.get("/v1/conversations", t))["items"]) == 1


async def test_read_keys_read_but_do_not_act(kit: Kit) -> None:
    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    viewer = kit.key(t, "read")
    assert (await kit.http.get(f"/v1/conversations/{cid}", headers=viewer)).status_code == 200
    for action in ("claim", "resolve"):
        r = await kit.http.post(f"/v1/conversations/{cid}/{action}", headers=viewer)
        assert r.status_code == 403, r.text
    r = await kit.http.post(f"/v1/conversations/{cid}/notes", headers=viewer, json={"text": "hi"})
    assert r.status_code == 403


async def test_another_tenants_conversation_is_not_found(kit: Kit) -> None:
    a, b = kit.new_tenant(), kit.new_tenant()
    cid = await kit.open_conversation(a, kit.phone())
    h = {**kit.key(b), "X-Agent-ID": "mallory"}
    calls = [
        kit.http.get(f"/v1/conversations/{cid}", headers=h),
        kit.http.post(f"/v1/conversations/{cid}/claim", headers=h),
        kit.http.post(f"/v1/conversations/{cid}/assign", headers=h, json={"agent_id": "m"}),
        kit.http.post(
            f"/v1/conversations/{cid}/messages",
            headers=h,
            json={"content": {"type": "text", "body": "x"}},
        ),
        kit.http.post(f"/v1/conversations/{cid}/notes", headers=h, json={"text": "x"}),
        kit.http.post(f"/v1/conversations/{cid}/resolve", headers=h),
    ]
    for r in await asyncio.gather(*calls):
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    # and B's key naming A's tenant is refused outright
    r = await kit.http.get("/v1/conversations", headers={**h, "X-Tenant-ID": a})
    assert r.status_code == 403
    c = await kit.get(f"/v1/conversations/{cid}", a)
    assert (c["status"], c["assignee"]) == ("waiting", None)


async def test_waiting_stats_and_first_response_time(kit: Kit) -> None:
    from prometheus_client import REGISTRY

    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    stats = await kit.get("/v1/conversations/stats", t)
    assert stats["waiting"] == 1
    assert stats["oldest_wait_s"] >= 0
    before = REGISTRY.get_sample_value("flowchat_inbox_first_response_seconds_count") or 0.0
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    await kit.http.post(f"/v1/conversations/{cid}/claim", headers=h)
    r = await kit.http.post(
        f"/v1/conversations/{cid}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "hi"}},
    )
    assert r.status_code == 202
    await kit.http.post(
        f"/v1/conversations/{cid}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "2"}},
    )
    after = REGISTRY.get_sample_value("flowchat_inbox_first_response_seconds_count") or 0.0
    assert after == before + 1
    assert (await kit.get("/v1/conversations/stats", t))["waiting"] == 0
    metrics = (await kit.http.get("/metrics")).text
    assert "flowchat_inbox_customers_waiting" in metrics
    assert "flowchat_inbox_oldest_wait_seconds" in metrics


async def test_the_service_token_acts_for_the_tenant_it_names(kit: Kit) -> None:
    from inbox_testkit import SERVICE_TOKEN

    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    svc = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    r = await kit.http.get("/v1/conversations", headers=svc)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "tenant_required")
    console = {**svc, "X-Tenant-ID": t, "X-Agent-ID": "user_42"}
    r = await kit.http.post(f"/v1/conversations/{cid}/claim", headers=console)
    assert r.status_code == 200
    assert r.json()["assignee"] == "user_42"
    r = await kit.http.get("/v1/conversations", headers={**console, "X-Agent-ID": "bad id!"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_agent_id")
    other = kit.new_tenant()
    r = await kit.http.get(f"/v1/conversations/{cid}", headers={**svc, "X-Tenant-ID": other})
    assert r.status_code == 404


async def test_a_customer_known_by_phone_and_bsuid_is_answered_on_the_phone(kit: Kit) -> None:
    import uuid

    t, wa = kit.new_tenant(), kit.phone()
    bsuid = f"US.{uuid.uuid4().hex[:12]}"
    await kit.publish(kit.inbound(t, wa_id=wa, user_id=bsuid, text="agent please"))
    await kit.publish(kit.handoff(t, user_id=bsuid))
    (c,) = (await kit.get("/v1/conversations", t))["items"]
    await kit.take(topology.QUEUE_OUTBOUND)
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    await kit.http.post(f"/v1/conversations/{c['id']}/claim", headers=h)
    r = await kit.http.post(
        f"/v1/conversations/{c['id']}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "hi"}},
    )
    assert r.status_code == 202, r.text
    (sent,) = [x for x in await kit.take(topology.QUEUE_OUTBOUND) if x["tenant_id"] == t]
    assert sent["to"] == wa
    thread = await kit.thread_of(t)
    assert thread["id"] == c["thread_id"]


async def test_an_agent_takes_over_a_conversation_the_bot_is_handling(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    await kit.publish(kit.inbound(t, wa_id=wa, text="is the blue one in stock?"))
    thread = await kit.thread_of(t)
    await kit.take(topology.QUEUE_CONVERSATION_EVENTS)
    ann = {**kit.key(t), "X-Agent-ID": "ann"}
    r = await kit.http.post(f"/v1/threads/{thread['id']}/takeover", headers=ann)
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["status"], c["assignee"], c["reason"]) == (
        "assigned",
        "ann",
        "taken over by an agent",
    )
    told = [e for e in await kit.take(topology.QUEUE_CONVERSATION_EVENTS) if e["tenant_id"] == t]
    assert [e["kind"] for e in told] == ["handoff_requested"]
    assert told[0]["customer"]["wa_id"] == wa
    assert told[0]["taken_over_by"] == "ann"  # the conversation service quiets the bot
    # the event's copy on inbox.history adds no second conversation
    await kit.publish(kit.inbound(t, wa_id=wa, text="hello?"))
    assert [x["id"] for x in (await kit.get("/v1/conversations", t))["items"]] == [c["id"]]
    r = await kit.http.post(
        f"/v1/threads/{thread['id']}/takeover", headers={**kit.key(t), "X-Agent-ID": "bob"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "conversation_open")
    assert r.json()["error"]["details"][0] == {"conversation_id": c["id"], "holder": "ann"}
    other = kit.new_tenant()
    r = await kit.http.post(f"/v1/threads/{thread['id']}/takeover", headers=kit.key(other))
    assert r.status_code == 404
    r = await kit.http.post(f"/v1/threads/{thread['id']}/takeover", headers=kit.key(t, "read"))
    assert r.status_code == 403


async def test_media_and_template_replies_and_the_window_shown_on_the_thread(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cid = await kit.open_conversation(t, wa)
    thread = await kit.thread_of(t)
    assert thread["window_open"] is True
    closes = datetime.fromisoformat(thread["window_closes_at"])
    last = datetime.fromisoformat(thread["last_inbound_at"])
    assert closes - last == timedelta(hours=24)
    c = await kit.get(f"/v1/conversations/{cid}", t)
    assert (c["window_open"], c["window_closes_at"]) == (True, thread["window_closes_at"])
    await kit.take(topology.QUEUE_OUTBOUND)
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    assert (await kit.http.post(f"/v1/conversations/{cid}/claim", headers=h)).status_code == 200
    replies = [
        {"type": "image", "link": "https://example.com/a.jpg", "caption": "the blue one"},
        {"type": "document", "media_id": "1234567890", "filename": "invoice.pdf"},
        {
            "type": "template",
            "name": "order_update",
            "language": "en",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-17"}]}],
        },
    ]
    for n, content in enumerate(replies):
        r = await kit.http.post(
            f"/v1/conversations/{cid}/messages",
            headers=h,
            json={"content": content, "idempotency_key": f"m{n}"},
        )
        assert r.status_code == 202, r.text
    sent = [x for x in await kit.take(topology.QUEUE_OUTBOUND) if x["tenant_id"] == t]
    assert [x["content"]["type"] for x in sent] == ["image", "document", "template"]
    assert {(x["origin"], x["agent_id"], x["to"]) for x in sent} == {("agent", "ann", wa)}
    msgs = await kit.messages(t, thread["id"])
    by_agent = sorted((m["type"], m["text"]) for m in msgs if m["author"] == "agent")
    assert by_agent == [
        ("document", "invoice.pdf"),
        ("image", "the blue one"),
        ("template", "order_update A-17"),
    ]
    # media with neither id nor link, an unknown type: 422, nothing sent
    for bad in ({"type": "image"}, {"type": "hologram", "body": "x"}):
        r = await kit.http.post(
            f"/v1/conversations/{cid}/messages", headers=h, json={"content": bad}
        )
        assert r.status_code == 422, r.text
    r = await kit.http.post(
        f"/v1/conversations/{cid}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "x" * 40_000}},
    )
    assert r.status_code == 413
    assert [x for x in await kit.take(topology.QUEUE_OUTBOUND) if x["tenant_id"] == t] == []


async def test_old_threads_show_the_window_closed(kit: Kit) -> None:
    t = kit.new_tenant()
    await kit.open_conversation(t, kit.phone(), inbound_at=datetime.now(UTC) - OLD)
    thread = await kit.thread_of(t)
    assert thread["window_open"] is False
    assert datetime.fromisoformat(thread["window_closes_at"]) < datetime.now(UTC)


async def test_tags_are_added_removed_and_filter_the_list(kit: Kit) -> None:
    t = kit.new_tenant()
    first = await kit.open_conversation(t, kit.phone())
    await kit.publish(kit.inbound(t, wa_id=(wa2 := kit.phone())))
    await kit.publish(kit.handoff(t, wa_id=wa2))
    second = next(
        c["id"] for c in (await kit.get("/v1/conversations", t))["items"] if c["id"] != first
    )
    h = {**kit.key(t), "X-Agent-ID": "ann"}

    async def tag(cid: int, **body: list[str]) -> httpx.Response:
        return await kit.http.post(f"/v1/conversations/{cid}/tags", headers=h, json=body)

    r = await tag(first, add=["vip", "billing", "vip"])
    assert (r.status_code, r.json()["tags"]) == (200, ["billing", "vip"])
    r = await tag(second, add=["billing"])
    assert r.json()["tags"] == ["billing"]
    r = await tag(first, remove=["billing"], add=["refund"])
    assert r.json()["tags"] == ["refund", "vip"]

    async def ids(**params: str) -> list[int]:
        return [c["id"] for c in (await kit.get("/v1/conversations", t, **params))["items"]]

    assert await ids(tag="vip") == [first]
    assert await ids(tag="billing") == [second]
    assert await ids(tag="nothing") == []
    assert (await kit.get(f"/v1/conversations/{first}", t))["tags"] == ["refund", "vip"]
    for bad in ({"add": ["Has Space"]}, {"add": ["x" * 40]}, {"tags": ["a"]}):
        r = await kit.http.post(f"/v1/conversations/{first}/tags", headers=h, json=bad)
        assert r.status_code == 422, bad
    r = await tag(first, add=[f"t{n}" for n in range(19)])
    assert (r.status_code, r.json()["error"]["code"]) == (422, "too_many_tags")
    r = await kit.http.get("/v1/conversations", headers=h, params={"tag": "Bad Tag"})
    assert r.status_code == 422
    r = await kit.http.post(
        f"/v1/conversations/{first}/tags", headers=kit.key(t, "read"), json={"add": ["x"]}
    )
    assert r.status_code == 403
    other = {**kit.key(kit.new_tenant()), "X-Agent-ID": "m"}
    r = await kit.http.post(f"/v1/conversations/{first}/tags", headers=other, json={"add": ["x"]})
    assert r.status_code == 404


async def test_per_tenant_wait_gauges_hold_the_tenants_waiting_longest(kit: Kit) -> None:
    from prometheus_client import REGISTRY

    from flowchat_inbox import metrics

    t = kit.new_tenant()
    cid = await kit.open_conversation(t, kit.phone())
    await kit.db.execute(
        "UPDATE conversations SET opened_at = now() - interval '1 day' WHERE id = $1", cid
    )

    def oldest(tenant: str) -> float | None:
        return REGISTRY.get_sample_value(
            "flowchat_inbox_tenant_oldest_wait_seconds", {"tenant": tenant}
        )

    await eventually(lambda: (oldest(t) or 0) >= 86_400, timeout_s=5)
    assert REGISTRY.get_sample_value("flowchat_inbox_tenant_customers_waiting", {"tenant": t}) == 1
    assert (REGISTRY.get_sample_value("flowchat_inbox_oldest_wait_seconds") or 0) >= 86_400
    assert REGISTRY.get_sample_value("flowchat_inbox_wait_alert_seconds") == 900
    tenants = {
        s.labels["tenant"]
        for family in metrics.TENANT_OLDEST_WAIT.collect()
        for s in family.samples
    }
    assert t in tenants
    assert len(tenants) <= 20  # bounded: the top tenants only
    h = {**kit.key(t), "X-Agent-ID": "ann"}
    await kit.http.post(f"/v1/conversations/{cid}/claim", headers=h)
    r = await kit.http.post(
        f"/v1/conversations/{cid}/messages",
        headers=h,
        json={"content": {"type": "text", "body": "sorry for the wait"}},
    )
    assert r.status_code == 202
    await eventually(lambda: oldest(t) is None, timeout_s=5)  # answered: the series goes
