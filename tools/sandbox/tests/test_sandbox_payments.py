"""The payment-provider emulator: links per invoice (idempotent), payments, signed
``payment.succeeded`` events and their redelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

SECRET = "emulator-secret"


def signed(body: bytes, header: str) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    mac = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), parts["v1"])


async def test_a_link_per_invoice_and_a_signed_event_per_payment(
    client: httpx.AsyncClient, receiver: Any
) -> None:
    r = await client.put(
        "/sandbox/payments/webhook", json={"url": f"{receiver.url}/pay-hook", "secret": SECRET}
    )
    assert r.status_code == 200, r.text
    link = {"invoice_id": "INV-1", "amount": "12.50", "currency": "usd", "description": "x"}
    unauth = await client.post("/payments/v1/payment_links", json=link)
    assert unauth.status_code == 401
    auth = {"Authorization": "Bearer k"}
    first = await client.post("/payments/v1/payment_links", json=link, headers=auth)
    assert first.status_code == 201, first.text
    again = await client.post("/payments/v1/payment_links", json=link, headers=auth)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]  # one link per invoice
    link_id = first.json()["id"]
    assert first.json()["url"].endswith(f"/payments/pay/{link_id}")
    page = await client.get(f"/payments/pay/{link_id}")
    assert page.status_code == 200
    assert "12.50 USD" in page.text

    paid = await client.post(f"/sandbox/payments/{link_id}/pay")
    assert paid.status_code == 200, paid.text
    assert paid.json()["webhook_status"] == 200
    (hook,) = [r for r in receiver.requests if r.path == "/pay-hook"]
    assert signed(hook.body, hook.headers["x-payment-signature"])
    event = json.loads(hook.body)
    assert event["type"] == "payment.succeeded"
    assert event["data"]["invoice_id"] == "INV-1"
    assert event["data"]["amount"] == "12.50"
    assert event["data"]["payment_id"] == paid.json()["payment_id"]
    assert (await client.get(f"/payments/v1/payment_links/{link_id}")).json()["status"] == "paid"
    twice = await client.post(f"/sandbox/payments/{link_id}/pay")
    assert twice.status_code == 409

    event_id = paid.json()["event_id"]
    redelivered = await client.post(f"/sandbox/payments/events/{event_id}/redeliver")
    assert redelivered.status_code == 200
    hooks = [r for r in receiver.requests if r.path == "/pay-hook"]
    assert len(hooks) == 2
    assert hooks[1].body == hooks[0].body  # the same event, signed afresh
    assert signed(hooks[1].body, hooks[1].headers["x-payment-signature"])
    missing = await client.post("/sandbox/payments/plink_nope/pay")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_a_link_request_it_cannot_read_is_a_422(client: httpx.AsyncClient) -> None:
    # found by schemathesis in the fault suite: these were 500s
    auth = {"Authorization": "Bearer k"}
    empty = await client.post("/payments/v1/payment_links", headers=auth)
    assert empty.status_code == 422, empty.text
    for bad in (
        {"invoice_id": "INV-9", "amount": "NaN", "currency": "USD"},
        {"invoice_id": "INV-9", "amount": "Infinity", "currency": "USD"},
        {"invoice_id": "INV-9", "amount": "1", "currency": "USD", "metadata": [1, 2, 3]},
    ):
        r = await client.post("/payments/v1/payment_links", json=bad, headers=auth)
        assert r.status_code == 422, (bad, r.text)
