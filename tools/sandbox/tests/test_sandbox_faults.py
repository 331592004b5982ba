"""Injected faults per number: 5xx, timeouts, latency, error codes, dropped webhooks."""

from __future__ import annotations

import asyncio
import time

WA = "2348010000006"


async def faults(client, number, **values):
    r = await client.put(f"/sandbox/numbers/{number.phone_number_id}/faults", json=values)
    assert r.status_code == 200, r.text
    return r.json()


async def test_5xx_rate_gives_transient_meta_errors(client, number, h):
    await h.open_window(client, number, WA)
    await faults(client, number, error_rate=1.0, error_status=503)
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == 2
    r = await client.delete(f"/sandbox/numbers/{number.phone_number_id}/faults")
    assert r.status_code == 204
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 200
    # nothing reached "WhatsApp" while it failed
    assert len((await client.get("/sandbox/messages", params={"to": WA})).json()) == 1


async def test_latency_is_added(client, number, h):
    await h.open_window(client, number, WA)
    await faults(client, number, latency_ms=200)
    started = time.perf_counter()
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 200
    assert time.perf_counter() - started >= 0.2


async def test_timeouts_hold_then_answer_504(client, number, h):
    await faults(client, number, timeout_rate=1.0)
    started = time.perf_counter()
    r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
    assert r.status_code == 504
    assert time.perf_counter() - started >= 0.3  # fault_timeout_s in the test settings


async def test_error_code_for_next_n_sends(client, number, h):
    await h.open_window(client, number, WA)
    await faults(client, number, error_code=130429, error_count=2)
    codes = []
    for _ in range(3):
        r = await client.post(number.messages_path, headers=number.auth, json=h.text(WA))
        codes.append(r.json().get("error", {}).get("code", r.status_code))
    assert codes == [130429, 130429, 200]


async def test_dropped_and_duplicated_webhooks(client, number, receiver, h):
    await faults(client, number, drop_webhooks=1)
    await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "lost"},
    )
    assert receiver.requests == []
    deliveries = (await client.get("/sandbox/webhooks")).json()
    assert [d["state"] for d in deliveries] == ["dropped"]
    await faults(client, number, duplicate_webhooks=True)
    await client.post(
        f"/sandbox/customers/{WA}/messages",
        json={"phone_number_id": number.phone_number_id, "text": "twice"},
    )
    await asyncio.sleep(0.05)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body


async def test_faults_need_a_known_number(client):
    r = await client.put("/sandbox/numbers/unknown/faults", json={"latency_ms": 5})
    assert r.status_code == 404
    r = await client.put("/sandbox/numbers/unknown/faults", json={"error_rate": 2})
    assert r.status_code == 422
