"""Issue 25's order lifecycle through the whole platform (sandbox → gateway →
conversation → sender → sandbox, and the sandbox's payment-provider emulator):

- a draft order per open cart, visible through the API, with a discount code, taken
  over by the order when the customer confirms (same id), numbered invoices;
- a paid invoice through the provider emulator: the payment link arrives as a CTA-URL
  button, the emulator's signed webhook marks the invoice paid, a redelivered event
  changes nothing, a forged one is refused;
- shipping with tracking (a CTA-URL button), and a cancellation after payment that
  produces a credit note;
- the customer clearing a cart: its draft cancelled by the customer;
- WhatsApp's native commerce: product, multi-product and catalog messages from the
  connected catalog, the customer's native cart (``order``) taken as the draft order,
  the delivery-address Flow sent for it and its answer (``nfm_reply``) stored on it.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest

from test_e2e_conversation_commerce import Shop, open_shop, order_id_in, redis_url  # noqa: F401

pytestmark = pytest.mark.e2e


async def drafts_of(shop: Shop, customer: str) -> list[dict[str, Any]]:
    return [o for o in await shop.orders_of(customer) if o["status"] == "draft"]


async def cta(shop: Shop, customer: str) -> dict[str, Any]:
    """The last CTA-URL button the customer got."""
    for message in reversed(await shop.last_messages(customer, 4)):
        inter = message.get("interactive") or {}
        if inter.get("type") == "cta_url":
            return dict(inter)
    raise AssertionError(f"{customer}: no CTA-URL button")


async def wait_for(check: Any, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def draft_discount_pay_ship_cancel(shop: Shop) -> None:
    c = shop.new_customer()
    await shop.say(c, "Hi", 1)
    _, review = await shop.say(c, "Cement x 10", 2)
    assert "10 x Cement 50kg" in review
    (draft,) = await drafts_of(shop, c)
    assert [(x["sku"], x["quantity"]) for x in draft["lines"]] == [("CEM-50", 10)]
    assert draft["invoice"] is None
    assert Decimal(draft["total"]) == Decimal("102.13")

    # a discount code on the draft (one use), then the cart grows: the draft follows
    code = f"SPRING{int(time.time() * 1000) % 10**8}"
    r = await shop.http.put(
        f"{shop.api}/discount-codes/{code}",
        json={"rate": "0.1", "max_uses": 1},
        headers=shop.admin,
    )
    assert r.status_code == 200, r.text
    r = await shop.http.post(
        f"{shop.api}/orders/{draft['order_id']}/discount-code",
        json={"code": code},
        headers=shop.admin,
    )
    assert r.status_code == 200, r.text
    assert Decimal(r.json()["discount"]) == Decimal("9.50")
    _, review = await shop.say(c, "nails x 2", 2)
    (again,) = await drafts_of(shop, c)
    assert again["order_id"] == draft["order_id"]
    assert {x["sku"] for x in again["lines"]} == {"CEM-50", "NAIL-1"}
    assert again["discount_code"] == code

    invoice, pay, _document = await shop.tap(c, "button", "Confirm", 3)
    order_id = order_id_in(invoice)
    assert order_id == draft["order_id"]  # the draft became the order
    assert "Invoice INV-0" in invoice
    assert "[Pay now] http" in pay
    order = await shop.order(order_id)
    assert order["status"] == "confirmed"
    assert order["discount_code"] == code
    assert await drafts_of(shop, c) == []
    codes = await shop.http.get(f"{shop.api}/discount-codes", headers=shop.admin)
    (used,) = [x for x in codes.json()["items"] if x["code"] == code]
    assert used["uses"] == 1

    # the invoice as a resource: JSON (by id and by number) and PDF
    invoice_id = order["invoice"]["invoice_id"]
    number = order["invoice"]["number"]
    assert number.startswith("INV-0")
    got = await shop.http.get(f"{shop.api}/invoices/{invoice_id}", headers=shop.admin)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["order_id"], body["status"], body["overdue"]) == (order_id, "unpaid", False)
    by_number = await shop.http.get(f"{shop.api}/invoices/{number}", headers=shop.admin)
    assert by_number.json()["invoice_id"] == invoice_id
    pdf = await shop.http.get(f"{shop.api}/invoices/{invoice_id}/pdf", headers=shop.admin)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")

    # the customer pays on the provider's page: the signed webhook marks it paid
    button = await cta(shop, c)
    url = button["action"]["parameters"]["url"]
    assert url == body["payment_link"]
    link_id = url.rsplit("/", 1)[-1]
    paid = await shop.http.post(f"{shop.sandbox}/sandbox/payments/{link_id}/pay")
    assert paid.status_code == 200, paid.text
    assert paid.json()["webhook_status"] == 200
    shop.expected[c] += 1
    thanks = (await shop.wait(c, shop.expected[c]))[-1]
    assert "We received your payment" in thanks["text"]
    order = await shop.order(order_id)
    assert (order["payment_status"], order["invoice"]["status"]) == ("paid", "paid")
    total = Decimal(order["total"])
    assert Decimal(order["invoice"]["amount_paid"]) == total
    event_id = paid.json()["event_id"]
    again_r = await shop.http.post(f"{shop.sandbox}/sandbox/payments/events/{event_id}/redeliver")
    assert again_r.json()["webhook_status"] == 200  # accepted as a duplicate
    assert Decimal((await shop.order(order_id))["invoice"]["amount_paid"]) == total
    forged = await shop.http.post(
        f"{shop.stack.urls['conversation']}/v1/payments/webhook",
        content=json.dumps({"id": "evt_x", "type": "payment.succeeded", "data": {}}),
        headers={"X-Payment-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert forged.status_code == 401

    # processing, then shipped with tracking: a CTA-URL button to the carrier's page
    for status, extra in (
        ("processing", {}),
        ("shipped", {"tracking_number": "TRK-1", "tracking_url": "https://track.example/TRK-1"}),
    ):
        r = await shop.http.post(
            f"{shop.api}/orders/{order_id}/status",
            json={"status": status, **extra},
            headers=shop.admin,
        )
        assert r.status_code == 200, r.text
        shop.expected[c] += 1
        await shop.wait(c, shop.expected[c])
    track = await cta(shop, c)
    assert track["action"]["parameters"] == {
        "display_text": "Track order",
        "url": "https://track.example/TRK-1",
    }
    assert (await shop.order(order_id))["tracking_number"] == "TRK-1"


async def cancellation_after_payment_gives_a_credit_note(shop: Shop) -> None:
    c = shop.new_customer()
    await shop.say(c, "Hi", 1)
    await shop.say(c, "White paint x 2", 2)
    invoice, _, _ = await shop.tap(c, "button", "Confirm", 3)
    order_id = order_id_in(invoice)
    link_id = (await cta(shop, c))["action"]["parameters"]["url"].rsplit("/", 1)[-1]
    paid = await shop.http.post(f"{shop.sandbox}/sandbox/payments/{link_id}/pay")
    assert paid.json()["webhook_status"] == 200
    shop.expected[c] += 1
    await shop.wait(c, shop.expected[c])
    r = await shop.http.post(
        f"{shop.api}/orders/{order_id}/status",
        json={"status": "cancelled", "reason": "out of paint after all"},
        headers=shop.admin,
    )
    assert r.status_code == 200, r.text
    order = r.json()
    assert (order["status"], order["cancelled_by"]) == ("cancelled", "tenant")
    assert order["cancel_reason"] == "out of paint after all"
    invoice_out = order["invoice"]
    assert invoice_out["status"] == "credited"
    credit = invoice_out["credit_note"]
    assert credit["number"].startswith("CN-0")
    assert Decimal(credit["amount"]) == Decimal(order["total"])
    shop.expected[c] += 1
    told = (await shop.wait(c, shop.expected[c]))[-1]["text"]
    assert "was cancelled" in told
    assert f"Credit note {credit['number']}" in told
    credited = await shop.http.get(
        f"{shop.api}/invoices", params={"status": "credited"}, headers=shop.admin
    )
    assert order_id in [i["order_id"] for i in credited.json()["items"]]


async def the_customer_clears_a_cart(shop: Shop) -> None:
    c = shop.new_customer()
    await shop.say(c, "Hi", 1)
    await shop.say(c, "nails x 3", 2)
    (draft,) = await drafts_of(shop, c)
    await shop.say(c, "cancel", 1)  # one message: the clear leads the category list
    order = await shop.order(draft["order_id"])
    assert (order["status"], order["cancelled_by"]) == ("cancelled", "customer")
    assert order["cancel_reason"] == "cart cleared by the customer"


CONNECTED = [
    {"sku": "TIL-W", "name": "White tiles box", "price": "20.00", "category": "Tiles",
     "stock": 50, "catalog_id": "cat-acme", "retailer_id": "tile-white"},
    {"sku": "GLU-1", "name": "Tile glue 5kg", "price": "8.00", "category": "Tiles",
     "stock": 50, "catalog_id": "cat-acme", "retailer_id": "glue-5"},
]  # fmt: skip


async def native_cart_and_flow(shop: Shop) -> None:
    c = shop.new_customer()
    await shop.say(c, "Hi", 1)
    products = f"{shop.api}/conversations/{c}/products"
    account = shop.seeded.account_id
    for skus, kind in (
        (["TIL-W", "GLU-1"], "product_list"),
        (["TIL-W"], "product"),
        ([], "catalog_message"),
    ):
        r = await shop.http.post(
            products, json={"account_id": account, "skus": skus}, headers=shop.admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["notification"] == "sent"
        shop.expected[c] += 1
        sent = (await shop.wait(c, shop.expected[c]))[-1]["message"]["interactive"]
        assert sent["type"] == kind
    r = await shop.http.post(
        products, json={"account_id": account, "skus": ["CEM-50"]}, headers=shop.admin
    )
    assert r.status_code == 409  # not in a connected catalog
    assert r.json()["error"]["code"] == "catalog_not_connected"

    cart = {
        "catalog_id": "cat-acme",
        "product_items": [
            {
                "product_retailer_id": "tile-white",
                "quantity": 3,
                "item_price": 20,
                "currency": "USD",
            },
            {"product_retailer_id": "glue-5", "quantity": 1, "item_price": 8, "currency": "USD"},
        ],
    }
    review = " ".join(await shop.say(c, {"order": cart}, 1))
    assert "3 x White tiles box" in review
    assert "1 x Tile glue 5kg" in review
    (draft,) = await drafts_of(shop, c)
    assert sorted((x["sku"], x["quantity"]) for x in draft["lines"]) == [("GLU-1", 1), ("TIL-W", 3)]

    r = await shop.http.post(
        f"{shop.api}/orders/{draft['order_id']}/address-flow", headers=shop.admin
    )
    assert r.status_code == 200, r.text
    shop.expected[c] += 1
    flow = (await shop.wait(c, shop.expected[c]))[-1]["message"]["interactive"]
    assert flow["type"] == "flow"
    assert flow["action"]["parameters"]["flow_token"] == draft["order_id"]
    answer = {"flow_token": draft["order_id"], "street": "1 Marina Rd", "city": "Lagos"}
    (saved,) = await shop.say(
        c, {"nfm_reply": {"name": "flow", "body": "Sent", "response_json": json.dumps(answer)}}, 1
    )
    assert "delivery address" in saved
    assert (await shop.order(draft["order_id"]))["delivery_address"] == answer
    invoice, _, _ = await shop.tap(c, "button", "Confirm", 3)
    assert order_id_in(invoice) == draft["order_id"]
    order = await shop.order(draft["order_id"])
    assert order["status"] == "confirmed"
    assert order["delivery_address"] == answer
    assert Decimal(order["subtotal"]) == Decimal("68.00")


async def test_order_lifecycle_invoices_and_payments(platform_stack, load_script):
    async with httpx.AsyncClient(timeout=20) as http:
        shop = await open_shop(platform_stack, load_script, http)
        settings = await http.get(f"{shop.api}/settings", headers=shop.admin)
        assert settings.status_code == 200, settings.text
        r = await http.put(
            f"{shop.api}/settings",
            json={**settings.json(), "online_payments": True, "address_flow_id": "flow-address-1"},
            headers=shop.admin,
        )
        assert r.status_code == 200, r.text
        r = await http.post(f"{shop.api}/products", json=CONNECTED, headers=shop.admin)
        assert r.status_code == 200, r.text
        await asyncio.gather(
            draft_discount_pay_ship_cancel(shop),
            cancellation_after_payment_gives_a_credit_note(shop),
            the_customer_clears_a_cart(shop),
            native_cart_and_flow(shop),
        )
        await shop.settled()
        # invoice numbers: per tenant, without gaps
        listed = await http.get(f"{shop.api}/invoices", headers=shop.admin)
        numbers = sorted(int(i["number"].split("-")[1]) for i in listed.json()["items"])
        assert numbers == list(range(1, len(numbers) + 1))
    log = platform_stack.log("conversation")
    assert "Traceback" not in log
    assert '"level": "error"' not in log
