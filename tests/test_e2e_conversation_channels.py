"""One conversation on every channel and in the customer's language, through the
whole platform (one stack, the scenarios side by side, each its own tenant):

- **over Twilio**: the customer writes to the tenant's Twilio number in the sandbox
  (form webhooks signed like Twilio's → gateway → conversation → sender → the
  sandbox's Twilio Messages API) and gets the bot's lists and buttons as numbered
  text menus; the answers are typed, as a person types them (the number, the label,
  a misspelling), and a whole order is placed;
- **in Spanish**: a tenant whose default language is Spanish, with translated product
  names; the whole order in Spanish, amounts and dates in Spanish formats;
- **a flooding customer**: past the tenant's per-customer inbound limit the bot says
  once that it will reply shortly and answers nothing more; every message still
  reaches the history in the inbox, and the service counts what it dropped.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from typing import Any

import httpx
import pytest

from test_e2e_conversation_commerce import Shop, open_shop, order_id_in
from test_e2e_inbox import agent_logs_in, until

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


async def a_full_order_over_twilio_with_typed_answers(
    platform_stack: Any, load_script: Any, http: httpx.AsyncClient
) -> None:
    shop = await open_twilio_shop(platform_stack, load_script, http)
    c = f"2348{secrets.randbelow(10**9):09d}"
    hello = await shop.say(c, "Hi", 1)
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


async def a_full_order_in_spanish(stack: Any, load_script: Any, http: httpx.AsyncClient) -> None:
    shop = await open_shop(stack, load_script, http)
    r = await http.put(
        f"{shop.api}/settings",
        json={"business_name": "Ferretería Acme", "currency": "USD", "tax_rate": "0.075",
              "locale": "es"},
        headers=shop.admin,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    cement = {
        "sku": "CEM-50",
        "name": "Cement 50kg",
        "description": "Portland cement, 50 kg bag",
        "price": "9.50",
        "currency": "USD",
        "category": "Building",
        "stock": 500,
        "translations": {"es": {"name": "Cemento 50kg", "description": "Saco de 50 kg"}},
    }
    r = await http.post(f"{shop.api}/products", json=[cement], headers=shop.admin)
    assert r.status_code == 200, r.text
    c = shop.new_customer()
    (hello,) = await shop.say(c, "Hola", 1)  # the greeting leads the categories
    assert hello.startswith("¡Hola Ada! Bienvenido a Ferretería Acme.")
    assert "Explora nuestro catálogo" in hello
    await shop.tap(c, "list", "Building", 1)
    (ask,) = await shop.tap(c, "list", "Cemento 50kg", 1)
    assert "Cemento 50kg: 9,50\xa0US$ cada uno" in ask
    assert "¿Cuántos quieres?" in ask
    added, review = await shop.say(c, "10", 2)
    assert "Agregué 10 x Cemento 50kg a tu carrito." in added
    assert "Impuesto (7,5 %): 7,13\xa0US$" in review
    assert "Total: 102,13\xa0US$" in review
    assert "Confirmar | Editar | Cancelar" in review
    invoice, document = await shop.tap(c, "button", "Confirmar", 2)
    assert document.startswith("📄 INV-")
    assert "Factura INV-" in document  # the caption
    assert "✅ Pedido ORD-" in invoice
    assert "🧾 *Factura INV-" in invoice
    assert "*Total: 102,13\xa0US$*" in invoice
    assert "Por favor, paga antes del " in invoice
    months = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic")
    due = invoice.split("Por favor, paga antes del ")[1]
    assert any(f" {m} " in due for m in months), due  # a Spanish date
    order_id = order_id_in(invoice)
    (claim,) = await shop.say(c, "TRX-77120", 1)
    assert claim.startswith("¡Gracias! Recibimos tu confirmación de pago TRX-77120")
    assert order_id in claim
    (helped,) = await shop.say(c, "ayuda", 1)  # the bot's own word, in Spanish
    assert "así funciona este chat" in helped
    # an English-speaking customer of the same tenant chooses English
    d = shop.new_customer()
    await shop.say(d, "Hola", 1)
    english, _ = await shop.say(d, "english", 2)
    assert english == "OK, I'll speak English with you."
    await shop.settled()


LIMIT = 5
FLOOD = 10


def limited(metrics: str, action: str) -> float:
    m = re.search(
        rf'^flowchat_conversation_inbound_limited_total{{action="{action}"}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(m.group(1)) if m else 0.0


async def a_flooding_customer_is_limited(
    stack: Any, load_script: Any, http: httpx.AsyncClient
) -> None:
    shop: Shop = await open_shop(stack, load_script, http)
    r = await http.put(
        f"{shop.api}/settings",
        json={"business_name": "Acme Hardware", "currency": "USD", "tax_rate": "0.075",
              "inbound_limit_per_minute": LIMIT},
        headers=shop.admin,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["inbound_limit_per_minute"] == LIMIT
    # the window is the clock's minute: start the scenario well inside one
    if time.time() % 60 > 30:
        await asyncio.sleep(61 - time.time() % 60)
    c = shop.new_customer()
    await shop.say(c, "Hi", 1)  # message 1
    for _ in range(LIMIT - 1):  # messages 2..LIMIT: answered
        (helped,) = await shop.say(c, "help", 1)
        assert "how this chat works" in helped
    (notice,) = await shop.say(c, "help", 1)  # the first past the limit
    assert "reply shortly" in notice
    for n in range(FLOOD):  # the rest: no bot processing
        await shop.send(c, {"text": f"hello {n}?"})
    conversation = stack.urls["conversation"]

    async def dropped() -> bool:
        text = (await http.get(f"{conversation}/metrics")).text
        return limited(text, "dropped") >= FLOOD and limited(text, "noticed") >= 1

    await until("the flood counted", dropped)
    await shop.settled()  # nothing more from the bot: one notice, no answers

    # every message still reached the history
    agent = await agent_logs_in(shop, "ada")
    agent.pop("user_id")
    inbox = stack.urls["inbox"]

    async def history() -> list[dict[str, Any]] | None:
        r = await http.get(f"{inbox}/v1/threads", headers=agent)
        assert r.status_code == 200, r.text
        thread = next((t for t in r.json()["items"] if t["wa_id"] == c), None)
        if thread is None:
            return None
        r = await http.get(
            f"{inbox}/v1/threads/{thread['id']}/messages", params={"limit": 100}, headers=agent
        )
        items: list[dict[str, Any]] = r.json()["items"]
        inbound = [m for m in items if m["direction"] == "inbound"]
        return items if len(inbound) >= 1 + LIMIT + FLOOD else None

    messages = await until("the whole flood in the history", history)
    texts = [m["text"] for m in messages if m["direction"] == "inbound"]
    assert sorted(texts) == sorted(
        ["Hi", *["help"] * LIMIT, *[f"hello {n}?" for n in range(FLOOD)]]
    )


async def test_every_channel_every_language_and_a_flood(platform_stack, load_script):
    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(
            a_full_order_over_twilio_with_typed_answers(platform_stack, load_script, http),
            a_full_order_in_spanish(platform_stack, load_script, http),
            a_flooding_customer_is_limited(platform_stack, load_script, http),
        )
