"""Status webhooks out of order and batched, per customer or per number, and the
clock control that closes the 24 h window."""

from __future__ import annotations

import asyncio

import pytest

from flowchat_platform.testing import eventually
from flowchat_sandbox.settings import Settings

WA = "2348010000088"


async def send(client, number, h):
    await h.open_window(client, number, WA)
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 200, r.text
    return r.json()["messages"][0]["id"]


def status_posts(receiver, wamid):
    """Each webhook POST's statuses for ``wamid``, in the order they were posted."""
    posts = []
    for received in receiver.requests:
        if not received.headers.get("content-type", "").startswith("application/json"):
            continue
        for entry in received.json()["entry"]:
            for change in entry["changes"]:
                found = [
                    s["status"] for s in change["value"].get("statuses", []) if s["id"] == wamid
                ]
                if found:
                    posts.append(found)
    return posts


async def ledger_status(client, wamid):
    (entry,) = [m for m in (await client.get("/sandbox/messages")).json() if m["wamid"] == wamid]
    return entry


async def test_in_order_by_default(client, number, receiver, h):
    wamid = await send(client, number, h)
    await eventually(lambda: len(status_posts(receiver, wamid)) == 3, timeout_s=5)
    assert status_posts(receiver, wamid) == [["sent"], ["delivered"], ["read"]]


async def test_customer_out_of_order_read_before_delivered(client, number, receiver, h):
    r = await client.put(f"/sandbox/customers/{WA}", json={"out_of_order_statuses": True})
    assert r.json()["out_of_order_statuses"] is True
    wamid = await send(client, number, h)
    await eventually(lambda: len(status_posts(receiver, wamid)) == 3, timeout_s=5)
    assert status_posts(receiver, wamid) == [["sent"], ["read"], ["delivered"]]
    entry = await ledger_status(client, wamid)
    assert entry["status"] == "read"  # the furthest status, not the last posted
    assert [s["status"] for s in entry["statuses"]] == ["sent", "read", "delivered"]
    delivered, read = (
        next(s for s in receiver.statuses(wamid) if s["status"] == name)
        for name in ("delivered", "read")
    )
    assert int(delivered["timestamp"]) <= int(read["timestamp"])


async def test_customer_batched_statuses_in_one_webhook(client, number, receiver, h):
    await client.put(f"/sandbox/customers/{WA}", json={"batch_statuses": True})
    wamid = await send(client, number, h)
    await eventually(lambda: status_posts(receiver, wamid), timeout_s=5)
    assert status_posts(receiver, wamid) == [["sent", "delivered", "read"]]
    entry = await ledger_status(client, wamid)
    assert len({s["delivery_id"] for s in entry["statuses"]}) == 1


async def test_number_fault_batches_out_of_order_for_every_customer(client, number, receiver, h):
    r = await client.put(
        f"/sandbox/numbers/{number.phone_number_id}/faults",
        json={"batch_statuses": True, "out_of_order_statuses": True},
    )
    assert r.status_code == 200, r.text
    await client.put(f"/sandbox/customers/{WA}", json={"reads": False})
    wamid = await send(client, number, h)
    await eventually(lambda: status_posts(receiver, wamid), timeout_s=5)
    assert status_posts(receiver, wamid) == [["delivered", "sent"]]
    for post in receiver.requests:
        assert h.signature_ok(post, number.app_secret)


async def test_clock_closes_the_window(client, number, receiver, h):
    await h.open_window(client, number, WA)
    r = await client.post("/sandbox/clock", json={"advance_s": 24 * 3600 + 1})
    assert r.status_code == 200
    assert r.json()["offset_s"] == 24 * 3600 + 1
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.json()["error"]["code"] == 131047
    assert (await client.post("/sandbox/clock", json={"advance_s": -5})).status_code == 422


class TestStatusWebhooksOff:
    """``status_webhooks=False`` (the sending benchmarks' provider): sends are answered
    and recorded, and no status webhook follows."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(status_delay_s=0.01, status_webhooks=False)

    async def test_send_recorded_and_no_status_posted(self, client, number, receiver, h):
        wamid = await send(client, number, h)
        before = len(receiver.requests)  # the customer's inbound message
        await asyncio.sleep(0.2)  # 20 status delays: sent, delivered and read were due
        assert len(receiver.requests) == before
        assert status_posts(receiver, wamid) == []
        assert (await ledger_status(client, wamid))["wamid"] == wamid
