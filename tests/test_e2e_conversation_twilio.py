"""The commerce bot over Twilio, through the whole platform: the customer writes to
the tenant's Twilio number in the sandbox (form webhooks signed like Twilio's →
gateway → conversation → sender → the sandbox's Twilio Messages API) and gets the
bot's lists and buttons as numbered text menus; the answers are typed, as a person
types them (the number, the label, a misspelling), and a whole order is placed."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e


class TwilioShop:
    def __init__(self, stack: Any, seeded: Any, number: str, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.seeded = seeded
        self.number = number
        self.http = http
        self.sandbox = stack.urls["sandbox"]
        self.api = f"{stack.urls['conversation']}/v1/tenants/{seeded.tenant_id}"
        self.admin = {"Authorization": f"Bearer {seeded.api_key}"}
        self.seen: dict[str, int] = {}

    async def outbound(self, customer: str) -> list[dict[str, Any]]:
        r = await self.http.get(
            f"{self.sandbox}/sandbox/conversations/{customer}",
            params={"phone_number_id": self.number},
        )
        r.raise_for_status()
        return [m for m in r.json() if m["direction"] == "outbound"]

    async def say(self, customer: str, text: str, expect: int) -> list[dict[str, Any]]:
        """The customer types ``text``; the ``expect`` messages the bot sends back."""
        before = self.seen.get(customer, 0)
        self.seen[customer] = before + expect
        r = await self.http.post(
            f"{self.sandbox}/sandbox/customers/{customer}/messages",
            json={"twilio_number": self.number, "name": "Ada", "text": text},
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 15
        while True:
            got = await self.outbound(customer)
            if len(got) >= before + expect:
                return got[before : before + expect]
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got) - before}/{expect} replies: {got[before:]}")
            await asyncio.sleep(0.05)


def body_of(messages: list[dict[str, Any]]) -> str:
    return "\n---\n".join(str(m["message"].get("Body", "")) for m in messages)


async def open_twilio_shop(stack: Any, load_script: Any, http: httpx.AsyncClient) -> TwilioShop:
    demo = load_script("demo")
    async with demo.aiohttp.ClientSession() as session:
        seeded = await demo.Demo(stack.env, session).seed()
    sid = "AC" + secrets.token_hex(16)
    token = secrets.token_hex(16)
    number = f"+1415{secrets.randbelow(10**7):07d}"
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    r = await http.post(
        f"{stack.urls['tenant']}/v1/tenants/{seeded.tenant_id}/accounts",
        headers=operator,
        json={
            "provider": "twilio",
            "twilio_account_sid": sid,
            "twilio_auth_token": token,
            "twilio_number": number,
        },
    )
    assert r.status_code == 201, r.text
    account_id = r.json()["account_id"]
    r = await http.post(
        f"{stack.urls['sandbox']}/sandbox/twilio/accounts",
        json={
            "account_sid": sid,
            "auth_token": token,
            "number": number,
            "webhook_url": f"{stack.urls['gateway']}/webhooks/twilio/{account_id}",
        },
    )
    assert r.status_code == 201, r.text
    return TwilioShop(stack, seeded, number, http)


async def test_a_full_order_over_twilio_with_typed_answers(platform_stack, load_script):
    async with httpx.AsyncClient(timeout=20) as http:
        shop = await open_twilio_shop(platform_stack, load_script, http)
        c = f"2348{secrets.randbelow(10**9):09d}"
        hello = await shop.say(c, "Hi", 2)
        assert all(m["status"] != "failed" for m in hello), hello
        text = body_of(hello)
        assert "Acme Hardware" in text
        assert "1. Building" in text  # the category list as a numbered menu
        assert "Reply with a number" in text
        (products,) = await shop.say(c, "1", 1)  # the number
        assert "Cement 50kg" in body_of([products])
        (ask,) = await shop.say(c, "cemnt 50kg", 1)  # the label, misspelt
        assert "How many" in body_of([ask])
        _, review = await shop.say(c, "4", 2)  # a quantity now, not a choice
        summary = body_of([review])
        assert "4 x Cement 50kg" in summary
        assert "1. Confirm\n2. Edit\n3. Cancel" in summary
        invoice = await shop.say(c, "confrim", 2)  # the button's label, misspelt
        assert "Invoice INV-" in body_of(invoice)
        assert any("MediaUrl" in m["message"] for m in invoice)  # the PDF by link
        (order,) = (
            await http.get(f"{shop.api}/orders", params={"customer": c}, headers=shop.admin)
        ).json()["items"]
        assert [(x["sku"], x["quantity"]) for x in order["lines"]] == [("CEM-50", 4)]
        (claim,) = await shop.say(c, "TRX-55120", 1)
        assert "TRX-55120" in body_of([claim])
        await asyncio.sleep(0.5)
        sent = await shop.outbound(c)
        assert len(sent) == shop.seen[c]
        assert all(m["status"] != "failed" for m in sent), [m["errors"] for m in sent]
