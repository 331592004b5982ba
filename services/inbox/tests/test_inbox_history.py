"""History: every message of a thread from the queues, with its author, content, status;
idempotent ingest; identities linked; cursor pages; per-tenant search; isolation."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from inbox_testkit import Kit

from flowchat_contracts import topology

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_a_thread_holds_both_directions_with_authors_content_and_status(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    bot = kit.outbound(t, wa, text="Welcome! Type menu", message_id=f"msg-{uuid.uuid4().hex}")
    campaign = kit.outbound(t, wa, text="Sale today", campaign_id="cmp1")
    reminder = kit.outbound(t, wa, text="Your payment is due", key=f"reminder:{uuid.uuid4().hex}")
    api = kit.outbound(t, "+" + wa, template=True)
    agent = kit.outbound(t, wa, text="Hi, Grace here").model_copy(
        update={"origin": "agent", "agent_id": "grace"}
    )
    await kit.publish(kit.inbound(t, wa_id=wa, text="hello shop"))
    await kit.publish(bot, campaign, reminder, api, agent)
    await kit.publish(kit.status(t, bot.message_id, "delivered"))
    await kit.publish(kit.status(t, bot.message_id, "sent"))  # late: never backwards

    thread = await kit.thread_of(t)
    assert thread["wa_id"] == wa
    assert thread["customer_key"] == wa
    assert thread["message_count"] == 6
    items = await kit.messages(t, thread["id"])
    by_author = {m["author"]: m for m in items}
    assert set(by_author) == {"customer", "bot", "campaign", "reminder", "api", "agent"}
    assert by_author["customer"]["direction"] == "inbound"
    assert by_author["customer"]["text"] == "hello shop"
    assert by_author["bot"]["status"] == "delivered"
    assert by_author["agent"]["agent_id"] == "grace"
    assert by_author["api"]["type"] == "template"
    assert by_author["api"]["content"]["name"] == "order_update"
    assert by_author["campaign"]["status"] is None


async def test_redelivered_messages_are_recorded_once(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    inbound = kit.inbound(t, wa_id=wa, text="once")
    outbound = kit.outbound(t, wa, text="reply once")
    await kit.publish(inbound, outbound)
    await kit.publish(inbound, outbound, inbound)
    thread = await kit.thread_of(t)
    assert thread["message_count"] == 2
    assert len(await kit.messages(t, thread["id"])) == 2


async def test_a_status_before_its_command_still_shows(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    cmd = kit.outbound(t, wa, text="x")
    await kit.publish(kit.status(t, cmd.message_id, "read"))
    await kit.publish(cmd)
    thread = await kit.thread_of(t)
    (m,) = await kit.messages(t, thread["id"])
    assert m["status"] == "read"


async def test_phone_and_bsuid_of_one_customer_share_one_thread(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    bsuid = f"US.{uuid.uuid4().hex[:12]}"
    await kit.publish(kit.inbound(t, user_id=bsuid, text="hidden phone"))
    await kit.publish(kit.inbound(t, user_id=bsuid, wa_id=wa, text="now with phone"))
    await kit.publish(
        kit.outbound(t, wa, text="to the phone"), kit.outbound(t, bsuid, text="to the bsuid")
    )
    thread = await kit.thread_of(t)
    assert thread["customer_key"] == bsuid
    assert thread["user_id"] == bsuid
    assert thread["wa_id"] == wa
    assert thread["message_count"] == 4


async def test_threads_of_each_number_are_apart_and_filterable(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    await kit.publish(
        kit.inbound(t, wa_id=wa, account="acc1"), kit.inbound(t, wa_id=wa, account="acc2")
    )
    assert len((await kit.get("/v1/threads", t))["items"]) == 2
    only = (await kit.get("/v1/threads", t, account_id="acc2"))["items"]
    assert [x["account_id"] for x in only] == ["acc2"]


async def test_thread_list_and_thread_pages_by_cursor(kit: Kit) -> None:
    t = kit.new_tenant()
    phones = [kit.phone() for _ in range(5)]
    await kit.publish(*(kit.inbound(t, wa_id=p) for p in phones))
    seen: list[int] = []
    cursor = None
    while True:
        page = await kit.get("/v1/threads", t, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5

    wa = phones[0]
    await kit.publish(*(kit.inbound(t, wa_id=wa, text=f"m{i}") for i in range(6)))
    thread_id = next(
        x["id"] for x in (await kit.get("/v1/threads", t, limit=100))["items"] if x["wa_id"] == wa
    )
    texts: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await kit.get(f"/v1/threads/{thread_id}/messages", t, **params)
        texts += [m["text"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(texts) == 7
    assert len(set(texts)) == 7


async def test_search_finds_words_of_the_tenant_only(kit: Kit) -> None:
    a, b = kit.new_tenant(), kit.new_tenant()
    word = f"zebra{uuid.uuid4().hex[:6]}"
    await kit.publish(
        kit.inbound(a, wa_id=kit.phone(), text=f"do you sell {word} shirts?"),
        kit.outbound(a, kit.phone(), text=f"yes, {word} shirts in stock"),
        kit.inbound(a, wa_id=kit.phone(), text="nothing to see"),
        kit.inbound(b, wa_id=kit.phone(), text=f"{word} from another tenant"),
    )
    found = (await kit.get("/v1/search", a, q=word))["items"]
    assert len(found) == 2
    assert all(word in m["text"] for m in found)
    assert len((await kit.get("/v1/search", b, q=word))["items"]) == 1
    page = await kit.get("/v1/search", a, q=word, limit=1)
    assert page["next_cursor"]
    rest = await kit.get("/v1/search", a, q=word, limit=1, cursor=page["next_cursor"])
    assert rest["items"][0]["id"] != page["items"][0]["id"]


async def test_another_tenants_thread_is_not_found(kit: Kit) -> None:
    a, b = kit.new_tenant(), kit.new_tenant()
    await kit.publish(kit.inbound(a, wa_id=kit.phone()))
    thread = await kit.thread_of(a)
    for path in (f"/v1/threads/{thread['id']}", f"/v1/threads/{thread['id']}/messages"):
        r = await kit.http.get(path, headers=kit.key(b, "admin"))
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    assert (await kit.get("/v1/threads", b))["items"] == []


async def test_threads_asked_by_id_are_the_tenants_only(kit: Kit) -> None:
    a, b = kit.new_tenant(), kit.new_tenant()
    await kit.publish(kit.inbound(a, wa_id=kit.phone()), kit.inbound(a, wa_id=kit.phone()))
    await kit.publish(kit.inbound(b, wa_id=kit.phone()))
    mine = [t["id"] for t in (await kit.get("/v1/threads", a))["items"]]
    (theirs,) = [t["id"] for t in (await kit.get("/v1/threads", b))["items"]]
    assert len(mine) == 2
    asked = ",".join(str(i) for i in [*mine, theirs, 999_999_999])
    page = await kit.get("/v1/threads", a, ids=asked)
    assert sorted(t["id"] for t in page["items"]) == sorted(mine)
    assert (await kit.get("/v1/threads", a, ids=str(mine[0]), limit=1))["items"][0]["id"] == mine[0]
    r = await kit.http.get("/v1/threads", headers=kit.key(a), params={"ids": "1,x"})
    assert r.status_code == 422


async def test_bad_input_is_refused_clearly(kit: Kit) -> None:
    t = kit.new_tenant()
    h = kit.key(t, "read")
    r = await kit.http.get("/v1/threads", headers=h, params={"cursor": "not-a-cursor"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_cursor")
    r = await kit.http.get("/v1/threads", headers=h, params={"limit": 0})
    assert r.status_code == 422
    r = await kit.http.get("/v1/search", headers=h, params={"q": ""})
    assert r.status_code == 422
    r = await kit.http.get("/v1/threads/abc", headers=h)
    assert r.status_code == 422
    r = await kit.http.get("/v1/threads")
    assert r.status_code == 401
    r = await kit.http.get("/v1/threads", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    r = await kit.http.get("/v1/threads", headers=kit.key(t, "send"))
    assert r.status_code == 403


async def test_a_malformed_queue_message_is_parked_and_ingest_goes_on(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    await kit.take(topology.QUEUE_POISON)
    await kit.publish(b"{not json", b'{"kind": "outbound_command", "tenant_id": "x"}')
    parked = await kit.channel.get_queue(topology.QUEUE_POISON, ensure=False)
    msgs = []
    while (m := await parked.get(no_ack=True, fail=False, timeout=5)) is not None:
        msgs.append(m)
    assert len(msgs) == 2
    await kit.publish(kit.inbound(t, wa_id=wa, text="still here"))
    thread = await kit.thread_of(t)
    assert thread["last_preview"] == "still here"


async def test_a_burst_is_written_in_batches_exactly_once(kit: Kit) -> None:
    from prometheus_client import REGISTRY

    t = kit.new_tenant()
    phones = [kit.phone() for _ in range(20)]
    inbound = [kit.inbound(t, wa_id=phones[i % 20], text=f"burst {i}") for i in range(200)]
    outbound = [kit.outbound(t, phones[i % 20], text=f"answer {i}") for i in range(40)]
    statuses = [
        kit.status(t, c.message_id, s) for c in outbound[:10] for s in ("sent", "read", "delivered")
    ]
    batches = REGISTRY.get_sample_value("flowchat_inbox_ingest_batch_size_count") or 0.0
    await kit.publish(*inbound, *outbound, *inbound[:50], *statuses)
    written = (REGISTRY.get_sample_value("flowchat_inbox_ingest_batch_size_count") or 0.0) - batches
    assert written < len(inbound) + len(outbound)  # several messages per transaction
    threads = (await kit.get("/v1/threads", t, limit=100))["items"]
    assert len(threads) == 20
    assert sum(x["message_count"] for x in threads) == 240
    read = {c.message_id for c in outbound[:10]}
    for thread in threads:
        for m in await kit.messages(t, thread["id"]):
            if m["message_id"] in read:
                assert m["status"] == "read"
