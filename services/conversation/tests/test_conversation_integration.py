"""The conversation service against real RabbitMQ, Redis and PostgreSQL."""

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from flowchat_contracts import (
    CustomerIdentity,
    HandoffRequested,
    HandoffResolved,
    InboundMessage,
    InboundMessageV2,
    OutboundCommand,
    Reply,
    TextContent,
    optout_key,
    topology,
)
from flowchat_contracts.tenant_events import OrderChanged
from flowchat_conversation.app import create_app
from flowchat_conversation.sealing import identities
from flowchat_conversation.settings import Settings
from flowchat_platform.amqp import HEADER_REASON
from flowchat_platform.testing import eventually, serve
from kindskit import subscribe, watch

pytestmark = pytest.mark.integration

TOKEN = "service-token-0123456789abcdef"
#: The service's keys (none set: derived from the token): ids are stored as digests.
IDS = identities(None, None, SecretStr(TOKEN))


def key(customer_id: str) -> str:
    """How tenant t1's customer ``customer_id`` is stored (the customer key, an alias)."""
    return IDS.key("t1", customer_id)


KEYS = {
    "fc_admin_t1": {"key_id": "k1", "tenant_id": "t1", "scopes": ["admin", "send"]},
    "fc_send_t1": {"key_id": "k2", "tenant_id": "t1", "scopes": ["send"]},
    "fc_admin_t2": {"key_id": "k3", "tenant_id": "t2", "scopes": ["admin"]},
}


def tenant_stub() -> FastAPI:
    """The tenant service's internal API as docs/interfaces.md describes it."""
    app = FastAPI()

    @app.post("/internal/v1/api-keys/verify")
    async def verify(body: dict[str, Any], authorization: str = Header("")) -> JSONResponse:
        if authorization != f"Bearer {TOKEN}":
            return JSONResponse(
                {"error": {"code": "unauthorized", "message": "", "details": []}}, 401
            )
        info = KEYS.get(body.get("key", ""))
        if info is None:
            return JSONResponse({"error": {"code": "not_found", "message": "", "details": []}}, 404)
        return JSONResponse(info)

    return app


@pytest.fixture
async def stack(amqp_url, redis_url, database_url):
    async with serve(tenant_stub()) as tenant_url:
        settings = Settings(
            AMQP_URL=amqp_url,
            REDIS_URL=redis_url,
            DATABASE_URL=database_url,
            FLOWCHAT_TENANT_URL=tenant_url,
            FLOWCHAT_SERVICE_TOKEN=TOKEN,
            subscriptions_ttl_s=0.1,
        )
        app = create_app(settings)
        async with serve(app) as base, httpx.AsyncClient(base_url=base) as http:

            async def ready():
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready, timeout_s=90)  # migrations: slow on a loaded machine
            conn = await aio_pika.connect(amqp_url)
            try:
                channel = await conn.channel(publisher_confirms=True)
                yield Stack(http, channel, database_url, app=app, redis_url=redis_url)
            finally:
                await conn.close()


class Stack:
    def __init__(
        self, http: httpx.AsyncClient, channel: Any, dsn: str, *, app: Any, redis_url: str
    ) -> None:
        self.http = http
        self.channel = channel
        self.dsn = dsn
        self.app = app
        self.redis_url = redis_url
        self.seen: list[OutboundCommand] = []

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def publish(self, message: InboundMessage | InboundMessageV2 | bytes) -> None:
        body = message if isinstance(message, bytes) else message.model_dump_json().encode()
        exchange = await self.channel.get_exchange(topology.EXCHANGE_INBOUND)
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=topology.inbound_routing_key("t1", "a1", "text"),
        )

    async def replies(self, count: int, *, timeout_s: float = 10) -> list[OutboundCommand]:
        queue = await self.channel.get_queue(topology.QUEUE_OUTBOUND)

        async def enough():
            while (m := await queue.get(no_ack=True, fail=False)) is not None:
                self.seen.append(OutboundCommand.model_validate_json(m.body))
            return len(self.seen) >= count

        await eventually(enough, timeout_s=timeout_s)
        out, self.seen = self.seen[:count], self.seen[count:]
        return out


_ids = itertools.count(1)


def inbound(text=None, *, reply=None, customer="15550001111", message_id=None, tenant="t1"):
    return InboundMessage(
        tenant_id=tenant,
        account_id="a1",
        provider="meta",
        provider_message_id=message_id or f"wamid.test{next(_ids)}",
        phone_number_id="pn1",
        customer_wa_id=customer,
        customer_name="Ada",
        type="interactive" if reply else "text",
        timestamp=datetime.now(UTC),
        text=text,
        reply=Reply(id=reply, title="x") if reply else None,
    )


async def seed(stack: Stack) -> None:
    r = await stack.http.put(
        "/v1/tenants/t1/settings",
        json={"business_name": "Acme Supplies", "currency": "USD", "tax_rate": "0.10"},
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text
    r = await stack.http.post(
        "/v1/tenants/t1/products",
        json=[
            {
                "sku": "CEM",
                "name": "Portland Cement",
                "price": "12.50",
                "category": "Building",
                "stock": 10,
            },
            {
                "sku": "NAIL",
                "name": "Steel Nails",
                "price": "0.10",
                "category": "Hardware",
                "stock": 1,
            },
        ],
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text


async def test_inbound_text_gets_the_greeting_and_the_catalog_in_one_message(stack):
    await seed(stack)
    message = inbound("hello")
    await stack.publish(message)
    (menu,) = await stack.replies(1)
    assert menu.content.type == "interactive_list"
    assert "Acme Supplies" in menu.content.body
    assert [r.title for r in menu.content.sections[0].rows] == ["Building", "Hardware"]
    assert menu.idempotency_key == f"reply:{message.provider_message_id}:0"
    assert menu.correlation_id == message.correlation_id
    assert (menu.tenant_id, menu.account_id, menu.to) == ("t1", "a1", "15550001111")
    await asyncio.sleep(0.3)
    assert await stack.replies(0) == []


async def test_default_business_name_without_settings(stack):
    await stack.publish(inbound("hi"))
    (text,) = await stack.replies(1)
    assert "our shop" in text.content.body  # no catalog: one text reply


async def test_redelivered_message_is_answered_once(stack):
    await seed(stack)
    first = inbound("hello")
    await stack.publish(first)
    await stack.publish(first)  # the gateway published it twice
    await stack.publish(inbound("help"))  # same conversation: handled after both copies
    replies = await stack.replies(2)
    keys = [r.idempotency_key for r in replies]
    assert keys[:1] == [f"reply:{first.provider_message_id}:0"]
    assert "how this chat works" in replies[1].content.body
    await asyncio.sleep(0.3)
    assert await stack.replies(0) == []
    assert stack.seen == []


async def test_malformed_message_is_parked_and_consumer_goes_on(stack):
    await stack.publish(b'{"kind": "inbound_message", "tenant_id": "t1"}')
    poison = await stack.channel.get_queue(topology.QUEUE_POISON)

    async def parked():
        return await poison.get(no_ack=True, fail=False)

    got = await eventually(parked)
    assert "invalid" in got.headers[HEADER_REASON]
    await stack.publish(inbound("hi"))
    assert len(await stack.replies(1)) == 1


async def test_a_whole_order_through_the_queue(stack):
    await seed(stack)
    customer = "15550002222"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("Cement x 3", customer=customer))
    _notes, review = await stack.replies(2)
    assert review.content.type == "interactive_buttons"
    assert "Total: 41.25 USD" in review.content.body
    await stack.publish(inbound(reply="review:confirm", customer=customer))
    invoice, document = await stack.replies(2)
    assert "ORD-" in invoice.content.body
    assert "41.25 USD" in invoice.content.body
    assert document.content.type == "document"
    assert document.content.filename.startswith("INV-")
    link = httpx.URL(document.content.link)  # the public URL; fetch it from this server
    # the first download starts the PDF worker process (seconds on a busy machine)
    pdf = await stack.http.get(link.raw_path.decode(), timeout=60)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    forged = await stack.http.get(link.path + "?token=forged")
    assert forged.status_code == 404
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "conversation"})
    try:
        stock = await conn.fetchval("SELECT stock FROM products WHERE tenant_id='t1' AND sku='CEM'")
        order = await conn.fetchrow(
            "SELECT status, total FROM orders WHERE customer_wa_id = $1", key(customer)
        )
    finally:
        await conn.close()
    assert stock == 7
    assert order is not None
    assert order["status"] == "confirmed"
    assert str(order["total"]) == "41.2500"


async def test_catalog_api_and_csv_import_report(stack):
    h = stack.admin
    r = await stack.http.post(
        "/v1/tenants/t1/products",
        json={"sku": "A1", "name": "Cement", "price": "10.5", "category": "Build", "stock": 3},
        headers=h,
    )
    assert r.status_code == 200
    assert r.json()["created"] == 1
    assert r.json()["products"][0]["price"] == "10.5"
    bad = await stack.http.post(
        "/v1/tenants/t1/products", json={"sku": "bad sku!", "name": "", "price": "-1"}, headers=h
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_request"
    csv_body = (
        "sku,name,price,category,stock\n"
        "A1,Cement 2,11,Build,4\n"
        "B1,Sand,3.25,Build,9\n"
        "B2,,1,Build,1\n"
        "B3,Nails,abc,Hardware,1\n"
    )
    r = await stack.http.post(
        "/v1/tenants/t1/products/import",
        content=csv_body,
        headers={**h, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["received"], report["created"], report["updated"]) == (4, 1, 1)
    assert [(x["line"], x["sku"]) for x in report["rejected"]] == [(4, "B2"), (5, "B3")]
    assert all(x["errors"] for x in report["rejected"])
    listed = (await stack.http.get("/v1/tenants/t1/products", headers=h)).json()["items"]
    assert {(p["sku"], p["name"], p["price"]) for p in listed} == {
        ("A1", "Cement 2", "11.0000"),
        ("B1", "Sand", "3.2500"),
    }
    # one product a page, by category, name and SKU, a cursor to the next
    first = (await stack.http.get("/v1/tenants/t1/products?limit=1", headers=h)).json()
    assert [p["sku"] for p in first["items"]] == ["A1"]
    params = {"limit": 1, "cursor": first["next_cursor"]}
    second = (await stack.http.get("/v1/tenants/t1/products", params=params, headers=h)).json()
    assert [p["sku"] for p in second["items"]] == ["B1"]
    assert second["next_cursor"] is None
    header = await stack.http.post(
        "/v1/tenants/t1/products/import", content="foo,bar\n1,2\n", headers=h
    )
    assert header.status_code == 422
    assert header.json()["error"]["code"] == "invalid_csv"


async def test_tenant_isolation_on_the_api(stack):
    def key(k):
        return {"Authorization": f"Bearer {k}"}

    product = {"sku": "X1", "name": "Thing", "price": "1", "category": "C"}
    ok = await stack.http.post("/v1/tenants/t1/products", json=product, headers=key("fc_admin_t1"))
    assert ok.status_code == 200
    other = await stack.http.get("/v1/tenants/t2/products", headers=key("fc_admin_t1"))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    scope = await stack.http.post(
        "/v1/tenants/t1/products", json=product, headers=key("fc_send_t1")
    )
    assert scope.status_code == 403
    unknown = await stack.http.get("/v1/tenants/t1/products", headers=key("fc_nope"))
    assert unknown.status_code == 401
    assert (await stack.http.get("/v1/tenants/t1/products")).status_code == 401
    t2 = await stack.http.get("/v1/tenants/t2/products", headers=key("fc_admin_t2"))
    assert t2.status_code == 200
    assert t2.json() == {"items": [], "next_cursor": None}


async def test_fast_messages_of_one_customer_are_handled_in_order(stack):
    await seed(stack)
    texts = ["hi", "Cement x 1", "Cement x 2", "Cement x 3", "cart"]
    for text in texts:
        await stack.publish(inbound(text))
    replies = await stack.replies(1 + 2 * 3 + 1)
    reviews = [r.content.body for r in replies if r.content.type == "interactive_buttons"]
    assert [b.splitlines()[1].split(":")[0] for b in reviews] == [
        "• 1 x Portland Cement",
        "• 2 x Portland Cement",
        "• 3 x Portland Cement",
        "• 3 x Portland Cement",
    ]


async def test_two_customers_race_for_the_last_unit(stack):
    await seed(stack)  # NAIL has stock 1
    customers = ["15550003333", "15550004444"]
    for c in customers:
        await stack.publish(inbound("hi", customer=c))
        await stack.publish(inbound("nails x 1", customer=c))
    await stack.replies(6)
    for c in customers:
        await stack.publish(inbound(reply="review:confirm", customer=c))
    outcomes = sorted(
        r.content.body.split()[0] for r in await stack.replies(4) if r.content.type != "document"
    )
    # one invoice (+ its PDF); the other customer hears it ran out (+ the categories again)
    bodies = " ".join(outcomes)
    assert outcomes.count("✅") == 1
    assert "Sorry," in bodies
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "conversation"})
    try:
        assert await conn.fetchval("SELECT stock FROM products WHERE sku='NAIL'") == 0
        assert await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'confirmed'") == 1
        # the loser's cart ran empty: its draft order is cancelled by the customer
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM orders "
                "WHERE status = 'cancelled' AND cancelled_by = 'customer'"
            )
            == 1
        )
    finally:
        await conn.close()


# --------------------------------------------------------------------- orders API


async def sql(stack: Stack, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "conversation"})
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def place(stack: Stack, customer: str, text: str = "Cement x 2") -> str:
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound(text, customer=customer))
    await stack.replies(2)
    await stack.publish(inbound(reply="review:confirm", customer=customer))
    invoice, _document = await stack.replies(2)
    assert isinstance(invoice.content, TextContent)
    return next(w for w in invoice.content.body.split() if w.startswith("ORD-")).rstrip(".")


async def nothing_sent(stack: Stack) -> None:
    await asyncio.sleep(0.3)
    assert await stack.replies(0) == []
    assert stack.seen == []


async def test_outside_the_window_the_tenants_order_template_goes_out(stack):
    """Issue 25: a tenant-chosen template carries order updates outside the 24 h window
    (the order id and the new status as its body parameters); tracking is kept."""
    await seed(stack)
    settings = (await stack.http.get("/v1/tenants/t1/settings", headers=stack.admin)).json()
    template = {"name": "order_update", "language": "en"}
    r = await stack.http.put(
        "/v1/tenants/t1/settings",
        json={**settings, "order_update_template": template},
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text
    order_id = await placed(stack, "15550007777")
    await sql(
        stack,
        "UPDATE contacts SET last_seen_at = now() - interval '25 hours' WHERE customer_wa_id = $1",
        key("15550007777"),
    )
    url = f"/v1/tenants/t1/orders/{order_id}/status"
    for status, extra in (("processing", {}), ("shipped", {"tracking_number": "TRK-9"})):
        r = await stack.http.post(url, json={"status": status, **extra}, headers=stack.admin)
        assert r.status_code == 200, r.text
        (sent,) = await stack.replies(1)
        assert sent.category == "utility"
        assert sent.content.type == "template"
        assert sent.content.name == "order_update"
        (body,) = sent.content.components
        assert [p.text for p in body.parameters] == [order_id, status]
    order = r.json()
    assert (order["status"], order["tracking_number"]) == ("shipped", "TRK-9")
    events = await sql(
        stack,
        "SELECT to_status, notification FROM order_events WHERE order_id = $1 ORDER BY event_id",
        order_id,
    )
    assert [(e["to_status"], e["notification"]) for e in events][-2:] == [
        ("processing", "template"),
        ("shipped", "template"),
    ]


async def test_order_statuses_notify_inside_the_window_only(stack):
    await seed(stack)
    order_id = await place(stack, "15550005555")
    url = f"/v1/tenants/t1/orders/{order_id}/status"
    r = await stack.http.post(url, json={"status": "processing"}, headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "processing"
    (note,) = await stack.replies(1)
    assert "being prepared" in note.content.body
    assert note.idempotency_key == f"order:{order_id}:processing:0"
    again = await stack.http.post(url, json={"status": "processing"}, headers=stack.admin)
    assert again.status_code == 200  # a retried request changes and sends nothing
    await nothing_sent(stack)
    # the customer's last message is older than 24 h: no free-form message
    await sql(
        stack,
        "UPDATE contacts SET last_seen_at = now() - interval '25 hours' WHERE customer_wa_id = $1",
        key("15550005555"),
    )
    r = await stack.http.post(url, json={"status": "shipped"}, headers=stack.admin)
    assert r.status_code == 200, r.text
    await nothing_sent(stack)
    events = await sql(
        stack,
        "SELECT to_status, notification FROM order_events WHERE order_id = $1 ORDER BY event_id",
        order_id,
    )
    assert [(e["to_status"], e["notification"]) for e in events] == [
        ("draft", "none"),  # the cart's draft order, then the customer confirmed it
        ("confirmed", "none"),
        ("processing", "sent"),
        ("shipped", "needs_template"),
    ]
    late = await stack.http.post(
        url, json={"status": "cancelled", "reason": "too late"}, headers=stack.admin
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "invalid_transition"
    bad = await stack.http.post(url, json={"status": "lost"}, headers=stack.admin)
    assert bad.status_code == 422
    missing = await stack.http.get("/v1/tenants/t1/orders/ORD-NOPE", headers=stack.admin)
    assert missing.status_code == 404
    other = await stack.http.get(f"/v1/tenants/t2/orders/{order_id}", headers=stack.admin)
    assert other.status_code == 404  # another tenant's order does not exist for t2
    second = await place(stack, "15550006666")
    reasonless = await stack.http.post(
        f"/v1/tenants/t1/orders/{second}/status", json={"status": "cancelled"}, headers=stack.admin
    )
    assert reasonless.status_code == 422
    assert reasonless.json()["error"]["code"] == "reason_required"
    r = await stack.http.post(
        f"/v1/tenants/t1/orders/{second}/status",
        json={"status": "cancelled", "reason": "customer called"},
        headers=stack.admin,
    )
    assert r.status_code == 200
    assert r.json()["invoice"]["status"] == "void"
    (cancelled,) = await stack.replies(1)
    assert "customer called" in cancelled.content.body
    (stock,) = await sql(stack, "SELECT stock FROM products WHERE sku = 'CEM'")
    assert stock["stock"] == 8  # 10 - 2 shipped; the cancelled 2 came back


async def test_a_spanish_customers_order_notices_are_in_spanish(stack):
    """Issue 25: the notices the tenant's order changes send (paid, shipped with its
    tracking button) speak the customer's chosen language, amounts in Babel's format."""
    await seed(stack)
    order_id = await place(stack, "15550004444")
    await sql(
        stack, "UPDATE contacts SET locale = 'es' WHERE customer_wa_id = $1", key("15550004444")
    )
    r = await stack.http.post(
        f"/v1/tenants/t1/orders/{order_id}/payments",
        json={"reference": "E1", "amount": "27.50"},
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text
    (thanks,) = await stack.replies(1)
    assert thanks.content.body == (
        f"💰 Recibimos tu pago de 27,50\xa0US$ por el pedido {order_id}. "
        "¡Gracias! Te avisaremos cuando se envíe."
    )
    url = f"/v1/tenants/t1/orders/{order_id}/status"
    r = await stack.http.post(url, json={"status": "processing"}, headers=stack.admin)
    assert r.status_code == 200, r.text
    (preparing,) = await stack.replies(1)
    assert preparing.content.body == f"📦 Tu pedido {order_id} se está preparando."
    r = await stack.http.post(
        url,
        json={"status": "shipped", "tracking_url": "https://track.example/T9"},
        headers=stack.admin,
    )
    assert r.status_code == 200, r.text
    (shipped,) = await stack.replies(1)
    assert shipped.content.type == "cta_url"
    assert shipped.content.body == (
        f"🚚 Tu pedido {order_id} está en camino. Seguimiento: https://track.example/T9."
    )
    assert shipped.content.display_text == "Rastrear pedido"


async def test_payments_overdue_and_cancel_unpaid(stack):
    await seed(stack)
    paid_id = await place(stack, "15550007777")
    late_id = await place(stack, "15550008888")
    pay = f"/v1/tenants/t1/orders/{paid_id}/payments"
    odd = await stack.http.post(
        pay, json={"reference": "B1", "amount": "1.001"}, headers=stack.admin
    )
    assert odd.status_code == 422
    assert odd.json()["error"]["code"] == "invalid_amount"
    part = await stack.http.post(pay, json={"reference": "B1", "amount": "10"}, headers=stack.admin)
    assert part.status_code == 200, part.text
    assert part.json()["order"]["invoice"]["balance"] == "17.5000"
    (note,) = await stack.replies(1)
    assert "Still to pay: 17.50 USD" in note.content.body
    full = await stack.http.post(
        pay, json={"reference": "B2", "amount": "17.5"}, headers=stack.admin
    )
    assert full.status_code == 200
    body = full.json()
    assert (body["result"], body["notification"]) == ("added", "sent")
    assert body["order"]["payment_status"] == "paid"
    assert body["order"]["invoice"]["status"] == "paid"
    (thanks,) = await stack.replies(1)
    assert "We received your payment of 27.50 USD" in thanks.content.body
    dup = await stack.http.post(
        pay, json={"reference": "B2", "amount": "17.5"}, headers=stack.admin
    )
    assert dup.json()["result"] == "duplicate"
    reused = await stack.http.post(
        f"/v1/tenants/t1/orders/{late_id}/payments",
        json={"reference": "B2", "amount": "1"},
        headers=stack.admin,
    )
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "reference_used"
    await nothing_sent(stack)
    # the paid customer's conversation is complete
    await stack.publish(inbound("what now?", customer="15550007777"))
    (hint,) = await stack.replies(1)
    assert "complete" in hint.content.body

    orders = stack.app.state.api.orders
    assert await orders.cancel_unpaid("t1", late_id) is False  # not due yet
    listed = await stack.http.get("/v1/tenants/t1/orders?overdue=true", headers=stack.admin)
    assert listed.json()["items"] == []
    await sql(
        stack,
        "UPDATE invoices SET due_at = now() - interval '1 hour' WHERE order_id = ANY($1)",
        [paid_id, late_id],
    )
    listed = await stack.http.get("/v1/tenants/t1/orders?overdue=true", headers=stack.admin)
    assert [o["order_id"] for o in listed.json()["items"]] == [late_id]
    assert listed.json()["items"][0]["invoice"]["overdue"] is True
    assert [o.order_id for o in await orders.overdue(None)] == [late_id]
    assert await orders.cancel_unpaid("t1", paid_id) is False
    assert await orders.cancel_unpaid("t1", late_id) is True
    assert await orders.cancel_unpaid("t1", late_id) is False
    (gone,) = await stack.replies(1)
    assert "not paid in time" in gone.content.body
    assert gone.to == "15550008888"
    (stock,) = await sql(stack, "SELECT stock FROM products WHERE sku = 'CEM'")
    assert stock["stock"] == 8
    after = await stack.http.post(
        f"/v1/tenants/t1/orders/{late_id}/payments",
        json={"reference": "B9", "amount": "27.5"},
        headers=stack.admin,
    )
    assert after.status_code == 409
    assert after.json()["error"]["code"] == "order_cancelled"


async def test_handoff_is_published_and_released_once_by_the_inbox_resolve(stack):
    """The bot's hand-off publishes ``handoff_requested`` (one event, not one per turn);
    the inbox's ``handoff_resolved`` releases it as the release route does, once."""
    await seed(stack)
    customer = "15550008888"
    handoffs = await stack.channel.declare_queue(exclusive=True)
    await handoffs.bind(topology.EXCHANGE_EVENTS, f"*.*.{topology.HANDOFF_REQUESTED}")
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("agent", customer=customer))
    (agent,) = await stack.replies(1)
    assert "connecting you" in agent.content.body
    await stack.publish(inbound("hello?", customer=customer))
    await nothing_sent(stack)
    got: list[Any] = []

    async def requested() -> bool:
        while (m := await handoffs.get(no_ack=True, fail=False)) is not None:
            got.append(m)
        return bool(got)

    await eventually(requested, timeout_s=10)
    await asyncio.sleep(0.3)
    await requested()
    assert len(got) == 1  # the hand-off, not every turn after it
    (message,) = got
    event = HandoffRequested.model_validate_json(message.body)
    assert message.routing_key == f"t1.a1.{topology.HANDOFF_REQUESTED}"
    assert message.message_id == event.event_id
    assert (event.tenant_id, event.account_id) == ("t1", "a1")
    assert event.customer.wa_id == customer
    assert event.reason
    assert event.bot_state

    resolved = HandoffResolved(
        tenant_id="t1",
        account_id="a1",
        customer=CustomerIdentity(wa_id=customer),
        resolved_by="agent-1",
    )
    exchange = await stack.channel.get_exchange(topology.EXCHANGE_EVENTS)
    for _ in range(2):  # delivered twice: released once
        await exchange.publish(
            aio_pika.Message(resolved.model_dump_json().encode(), message_id=resolved.event_id),
            routing_key=f"t1.a1.{topology.HANDOFF_RESOLVED}",
        )
    (back,) = await stack.replies(1)
    assert "assistant again" in back.content.body
    await nothing_sent(stack)
    release = f"/v1/tenants/t1/conversations/{customer}/release"
    assert (await stack.http.post(release, headers=stack.admin)).status_code == 404
    await stack.publish(inbound("menu", customer=customer))
    (menu,) = await stack.replies(1)
    assert menu.content.type == "interactive_list"


async def test_handoff_survives_session_expiry_until_released_and_purge(stack):
    await seed(stack)
    customer = "15550009999"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("agent", customer=customer))
    (agent,) = await stack.replies(1)
    assert "connecting you" in agent.content.body
    await stack.publish(inbound("hello?", customer=customer))
    await nothing_sent(stack)
    async with aioredis.from_url(stack.redis_url) as redis:
        await redis.delete(f"conversation:session:{{t1}}:a1:{customer}")  # the session expired
    await stack.publish(inbound("anyone?", customer=customer))
    await nothing_sent(stack)
    release = f"/v1/tenants/t1/conversations/{customer}/release"
    r = await stack.http.post(release, headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"released": ["a1"]}
    (back,) = await stack.replies(1)
    assert "assistant again" in back.content.body
    assert (await stack.http.post(release, headers=stack.admin)).status_code == 404
    await stack.publish(inbound("menu", customer=customer))
    (menu,) = await stack.replies(1)
    assert menu.content.type == "interactive_list"

    # (same stack, to save a start) old dedupe rows are purged in bounded batches
    await sql(
        stack,
        "INSERT INTO handled_messages (tenant_id, provider_message_id, conversation, handled_at) "
        "SELECT 't1', 'old' || n, 'c', now() - interval '5 days' FROM generate_series(1, 5) n",
    )
    await sql(
        stack,
        "INSERT INTO handled_messages (tenant_id, provider_message_id, conversation) "
        "VALUES ('t1', 'new', 'c')",
    )
    orders = stack.app.state.api.orders
    assert await orders.purge_handled(older_than_s=3600, batch=2) == 5
    rows = await sql(stack, "SELECT provider_message_id FROM handled_messages")
    ids = {r["provider_message_id"] for r in rows}
    assert "new" in ids  # recent rows (this conversation's too) are kept
    assert len(ids) == 6
    assert not [i for i in ids if i.startswith("old")]


async def reminders_of(stack: Stack, customer: str) -> list[tuple[str, str, str | None]]:
    rows = await sql(
        stack,
        "SELECT kind, state, outcome FROM reminders WHERE wa_id = $1 ORDER BY created_at",
        key(customer),
    )
    return [(r["kind"], r["state"], r["outcome"]) for r in rows]


async def test_the_bot_schedules_and_cancels_its_reminders(stack):
    await seed(stack)
    customer = "15550003333"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("Cement x 2", customer=customer))
    await stack.replies(2)
    # a cart left as it is: reminded after a while; each new message moves the reminder
    assert await reminders_of(stack, customer) == [("abandoned_cart", "pending", None)]
    await stack.publish(inbound("Cement x 3", customer=customer))
    await stack.replies(2)
    assert await reminders_of(stack, customer) == [
        ("abandoned_cart", "cancelled", "replaced"),
        ("abandoned_cart", "pending", None),
    ]
    (due,) = await sql(
        stack, "SELECT due_at - now() AS left FROM reminders WHERE state = 'pending'"
    )
    assert timedelta(minutes=50) < due["left"] <= timedelta(hours=1)
    # ordered: no abandoned cart; the payment is due, reminded before the invoice is due
    await stack.publish(inbound(reply="review:confirm", customer=customer))
    invoice, _ = await stack.replies(2)
    order_id = next(w for w in invoice.content.body.split() if w.startswith("ORD-")).rstrip(".")
    assert await reminders_of(stack, customer) == [
        ("abandoned_cart", "cancelled", "replaced"),
        ("abandoned_cart", "cancelled", "resolved"),
        ("payment_due", "pending", None),
    ]
    (row,) = await sql(
        stack,
        "SELECT r.dedupe_key, r.reference, i.due_at - r.due_at AS before FROM reminders r "
        "JOIN invoices i ON i.order_id = r.reference WHERE r.kind = 'payment_due'",
    )
    assert (row["dedupe_key"], row["reference"]) == (f"payment_due:{order_id}", order_id)
    assert row["before"] == timedelta(hours=12)
    # paid: the payment reminder is cancelled
    r = await stack.http.post(
        f"/v1/tenants/t1/orders/{order_id}/payments",
        json={"reference": "BANK-1", "amount": "41.25"},
        headers=stack.admin,
    )
    assert r.json()["order"]["payment_status"] == "paid", r.text
    await stack.replies(1)
    assert (await reminders_of(stack, customer))[-1] == ("payment_due", "cancelled", "resolved")
    # delivered: a follow-up later
    for status in ("processing", "shipped", "delivered"):
        r = await stack.http.post(
            f"/v1/tenants/t1/orders/{order_id}/status", json={"status": status}, headers=stack.admin
        )
        assert r.status_code == 200, r.text
        await stack.replies(1)
    assert (await reminders_of(stack, customer))[-1] == ("order_follow_up", "pending", None)

    # an order left unpaid past its due time is cancelled (with its reminder)
    late = "15550004444"
    late_id = await place(stack, late)
    await sql(
        stack,
        "UPDATE invoices SET due_at = now() - interval '1 minute' WHERE order_id = $1",
        late_id,
    )
    assert await stack.app.state.api.orders.cancel_overdue() == 1
    (gone,) = await stack.replies(1)
    assert "not paid in time" in gone.content.body
    assert ("payment_due", "cancelled", "resolved") in await reminders_of(stack, late)
    assert await stack.app.state.api.orders.cancel_overdue() == 0


async def test_asking_for_a_product_out_of_stock_reminds_when_it_is_back(stack):
    await seed(stack)
    await sql(stack, "UPDATE products SET stock = 0 WHERE sku = 'NAIL'")
    customer = "15550006666"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    for _ in range(2):  # asked twice: one reminder
        await stack.publish(inbound("Steel nails x 5", customer=customer))
        note, _menu = await stack.replies(2)
        assert "Steel Nails is out of stock. I'll message you when it's back." in note.content.body
    rows = await sql(stack, "SELECT kind, reference, state FROM reminders WHERE kind = 'restock'")
    assert [tuple(r) for r in rows] == [("restock", "NAIL", "pending")]
    # still out of stock when due: it waits; back in stock: it fires, once
    await sql(stack, "UPDATE reminders SET due_at = now() WHERE kind = 'restock'")

    async def postponed() -> bool:
        (r,) = await sql(
            stack, "SELECT due_at > now() + interval '50 minutes' AS later FROM reminders"
        )
        return bool(r["later"])

    await eventually(postponed, timeout_s=10)
    await nothing_sent(stack)
    await sql(stack, "UPDATE products SET stock = 50 WHERE sku = 'NAIL'")
    await sql(stack, "UPDATE reminders SET due_at = now() WHERE kind = 'restock'")
    (back,) = await stack.replies(1, timeout_s=15)
    assert back.to == customer
    assert back.content.type == "text"  # inside the 24 h window: a session message
    assert back.content.body == "Good news, Ada: Steel Nails is back in stock. Type menu to order."
    (r,) = await sql(stack, "SELECT state, outcome FROM reminders WHERE kind = 'restock'")
    assert (r["state"], r["outcome"]) == ("fired", "session")


async def test_stop_start_keep_the_optout_set_and_a_blocked_contact_gets_no_answer(stack):
    await seed(stack)
    client = aioredis.from_url(stack.redis_url)
    key = optout_key("t1")
    try:
        customer = "15550009999"
        await stack.publish(inbound("STOP", customer=customer))
        (stopped,) = await stack.replies(1)
        assert "no longer receive marketing" in stopped.content.body
        assert await client.smembers(key) == {customer.encode()}
        await stack.publish(inbound("START", customer=customer))
        await stack.replies(1)  # (the opt-in leaves the set once committed, after the reply)

        async def opted_in() -> bool:
            return await client.smembers(key) == set()

        await eventually(opted_in, timeout_s=10)
        # the tenant blocks the contact: no answers; STOP still counts, silently
        page = await stack.http.get(
            "/v1/tenants/t1/contacts", params={"q": customer}, headers=stack.admin
        )
        contact_id = page.json()["items"][0]["contact_id"]
        r = await stack.http.patch(
            f"/v1/tenants/t1/contacts/{contact_id}", json={"status": "blocked"}, headers=stack.admin
        )
        assert r.json()["status"] == "blocked"
        await stack.publish(inbound("hi", customer=customer))
        await stack.publish(inbound("Cement x 2", customer=customer))
        await stack.publish(inbound("STOP", customer=customer))

        async def opted_out() -> bool:
            return await client.smembers(key) == {customer.encode()}

        await eventually(opted_out, timeout_s=10)
        await nothing_sent(stack)
        contact = (
            await stack.http.get(f"/v1/tenants/t1/contacts/{contact_id}", headers=stack.admin)
        ).json()
        assert (contact["marketing_opt_in"], contact["opt_in_source"]) == (False, "keyword")
        assert await reminders_of(stack, customer) == []  # no abandoned cart for them
    finally:
        await client.aclose()


async def test_an_order_whose_commit_was_lost_is_written_on_redelivery(stack):
    """The replies went out and the session was saved, then the commit failed: the
    redelivery must still write the order (not only the dedupe row)."""
    await seed(stack)
    customer = "15550003333"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("Cement x 3", customer=customer))
    await stack.replies(2)
    conn = await asyncpg.connect(stack.dsn, server_settings={"search_path": "conversation"})
    try:
        # the first commit of the "Confirm" message fails (a deferred trigger at COMMIT)
        await conn.execute(
            """
            CREATE SEQUENCE lost_commit_seq;
            CREATE FUNCTION lose_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.provider_message_id = 'wamid.lost-commit'
                 AND nextval('conversation.lost_commit_seq') = 1 THEN
                RAISE EXCEPTION 'commit lost (test)';
              END IF;
              RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER lose_commit AFTER INSERT ON handled_messages
              DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lose_commit();
            """
        )
        confirm = inbound(reply="review:confirm", customer=customer, message_id="wamid.lost-commit")
        await stack.publish(confirm)
        first = await stack.replies(2)
        again = await stack.replies(2)  # the redelivery answers with the same commands
        await asyncio.sleep(0.3)
        order = await conn.fetchrow(
            "SELECT status FROM orders WHERE customer_wa_id = $1", key(customer)
        )
        stock = await conn.fetchval("SELECT stock FROM products WHERE tenant_id='t1' AND sku='CEM'")
        handled = await conn.fetchval(
            "SELECT count(*) FROM handled_messages WHERE provider_message_id = $1",
            confirm.provider_message_id,
        )
    finally:
        await conn.close()
    assert "ORD-" in first[0].content.body
    assert [c.message_id for c in again] == [c.message_id for c in first]
    assert [c.idempotency_key for c in again] == [c.idempotency_key for c in first]
    assert order is not None, "the customer was told the order is confirmed; it is not stored"
    assert order["status"] == "confirmed"
    assert stock == 7
    assert handled == 1


# --------------------------------------------------------------------- identities (BSUIDs)

BSUID = "US.13491208655302741918"


def from_identity(
    text: str | None = None,
    *,
    user_id: str | None = BSUID,
    phone: str | None = None,
    type: str = "text",
    reply: str | None = None,
    **kw: Any,
) -> InboundMessage | InboundMessageV2:
    """A message as the gateway publishes it today: v1 with ``customer`` when the phone
    number shows, v2 when the customer hides it behind a username."""
    fields: dict[str, Any] = {
        "tenant_id": "t1",
        "account_id": "a1",
        "provider": "meta",
        "provider_message_id": f"wamid.id{next(_ids)}",
        "phone_number_id": "pn1",
        "customer_name": "Sheena",
        "type": "interactive" if reply else type,
        "timestamp": datetime.now(UTC),
        "text": text,
        "reply": Reply(id=reply, title="x") if reply else None,
        "customer": CustomerIdentity(wa_id=phone, user_id=user_id, username="sheena.n"),
        **kw,
    }
    if phone is None:
        return InboundMessageV2(**fields)
    return InboundMessage(customer_wa_id=phone, **fields)


async def test_a_customer_known_only_by_bsuid_is_answered_and_orders_under_it(stack):
    # v2 (no phone number) used to be parked as poison: it is read, answered at the BSUID
    await seed(stack)
    first = from_identity("hi")
    assert first.schema_version == 2
    await stack.publish(first)
    (greeting,) = await stack.replies(1)
    assert "Acme Supplies" in greeting.content.body
    assert greeting.to == BSUID
    await stack.publish(from_identity("Cement x 3"))
    _notes, review = await stack.replies(2)
    assert "Total: 41.25 USD" in review.content.body
    await stack.publish(from_identity(reply="review:confirm"))
    invoice, _document = await stack.replies(2)
    assert "ORD-" in invoice.content.body
    assert invoice.to == BSUID
    orders = await sql(stack, "SELECT customer_wa_id FROM orders")
    assert [o["customer_wa_id"] for o in orders] == [key(BSUID)]
    listed = await stack.http.get(
        "/v1/tenants/t1/orders", params={"customer": BSUID}, headers=stack.admin
    )
    assert [o["customer_wa_id"] for o in listed.json()["items"]] == [BSUID]
    contacts = await sql(stack, "SELECT customer_wa_id, name, name_enc FROM contacts")
    assert [(c["customer_wa_id"], c["name"]) for c in contacts] == [(key(BSUID), None)]
    assert IDS.open(contacts[0]["name_enc"]) == "Sheena"
    aliases = await sql(stack, "SELECT alias, customer_key, kind, alias_enc FROM customer_aliases")
    assert [tuple(a)[:3] for a in aliases] == [(key(BSUID), key(BSUID), "bsuid")]
    assert IDS.open(aliases[0]["alias_enc"]) == BSUID


async def test_a_customer_known_by_phone_keeps_the_cart_when_a_bsuid_arrives(stack):
    await seed(stack)
    phone = "15550007777"
    await stack.publish(inbound("hi", customer=phone))  # v1 of an old publisher: phone only
    await stack.replies(1)
    await stack.publish(inbound("Cement x 2", customer=phone))
    await stack.replies(2)
    # the same person, now with a BSUID beside the phone: the BSUID joins the customer
    await stack.publish(from_identity("cart", phone=phone))
    (cart,) = await stack.replies(1)
    assert "2 x Portland Cement" in cart.content.body
    assert cart.to == phone
    # and the phone hidden (BSUID only): still the same customer, answered at the phone
    await stack.publish(from_identity("cart"))
    (again,) = await stack.replies(1)
    assert "2 x Portland Cement" in again.content.body
    assert again.to == phone
    contacts = await sql(stack, "SELECT customer_wa_id FROM contacts")
    assert [c["customer_wa_id"] for c in contacts] == [key(phone)]
    aliases = await sql(stack, "SELECT alias, customer_key FROM customer_aliases ORDER BY alias")
    assert {a["alias"]: a["customer_key"] for a in aliases} == {
        key(phone): key(phone),
        key(BSUID): key(phone),
    }


async def test_an_id_change_links_the_new_ids_to_the_customer(stack):
    await seed(stack)
    old_phone, new_phone, new_bsuid = "15550006666", "15550006667", "US.99990000111122223333"
    await stack.publish(from_identity("hi", phone=old_phone))
    await stack.replies(1)
    await stack.publish(from_identity("Cement x 2", phone=old_phone))
    await stack.replies(2)
    change = from_identity(
        type="system",
        phone=old_phone,  # ``from``: the old number
        user_id=new_bsuid,
        system={"type": "user_changed_number", "body": "User Sheena changed number"},
        previous_customer=CustomerIdentity(wa_id=old_phone, user_id=BSUID),
    )
    change = change.model_copy(
        update={"customer": CustomerIdentity(wa_id=new_phone, user_id=new_bsuid)}
    )
    await stack.publish(change)
    await stack.publish(from_identity("cart", phone=new_phone, user_id=new_bsuid))
    (cart,) = await stack.replies(1)  # the system message got no reply
    assert "2 x Portland Cement" in cart.content.body  # the same customer's cart
    assert cart.to == new_phone
    aliases = await sql(stack, "SELECT alias, customer_key FROM customer_aliases")
    assert {a["alias"]: a["customer_key"] for a in aliases} == dict.fromkeys(
        (key(i) for i in (old_phone, BSUID, new_phone, new_bsuid)), key(BSUID)
    )


async def test_messages_the_bot_does_not_use_get_no_reply(stack):
    ignored: list[dict[str, Any]] = [
        {"type": "edit", "text": "edited", "original_message_id": "wamid.x", "edited_type": "text"},
        {"type": "revoke", "original_message_id": "wamid.x"},
        {"type": "call_permission_reply", "call_permission": {"response": "accept"}},
        {"type": "flow_response", "flow": {"name": "flow", "response_json": "{}"}},
        {"type": "system", "system": {"type": "customer_identity_changed"}},
    ]
    for fields in ignored:
        await stack.publish(from_identity(phone="15550005555", **fields))
    hello = from_identity("hi", phone="15550005555")
    await stack.publish(hello)
    (greeting,) = await stack.replies(1)
    assert greeting.idempotency_key == f"reply:{hello.provider_message_id}:0"
    await asyncio.sleep(0.3)
    assert await stack.replies(0) == []
    assert stack.seen == []  # no "Sorry, I can't read this"


async def test_stop_and_start_hold_for_every_id_of_the_person(stack):
    client = aioredis.from_url(stack.redis_url)
    key = optout_key("t1")
    phone = "15550004444"
    try:
        await stack.publish(from_identity("STOP", phone=phone))
        await stack.replies(1)
        assert await client.smembers(key) == {phone.encode(), BSUID.encode()}
        await stack.publish(from_identity("START"))  # BSUID only: the same person

        async def opted_in() -> bool:
            return await client.smembers(key) == set()

        await stack.replies(1)
        await eventually(opted_in, timeout_s=10)
    finally:
        await client.aclose()


async def test_an_inbox_take_over_quiets_the_bot_until_resolved(stack):
    """An agent takes over a conversation the bot is handling (the inbox's
    ``handoff_requested`` with ``taken_over_by``): the bot goes quiet, with no message of
    its own, until ``handoff_resolved``. The bot's own ``handoff_requested`` (no
    ``taken_over_by``) arriving late reopens nothing."""
    await seed(stack)
    customer = "15550007777"
    await stack.publish(inbound("hi", customer=customer))
    await stack.replies(1)
    await stack.publish(inbound("menu", customer=customer))
    await stack.replies(1)  # mid-conversation: the session is not fresh
    exchange = await stack.channel.get_exchange(topology.EXCHANGE_EVENTS)

    async def event(model: HandoffRequested | HandoffResolved, kind: str) -> None:
        await exchange.publish(
            aio_pika.Message(model.model_dump_json().encode(), message_id=model.event_id),
            routing_key=f"t1.a1.{kind}",
        )

    async def handoff_open() -> bool:
        rows = await sql(
            stack,
            "SELECT 1 FROM handoffs WHERE tenant_id = 't1' AND account_id = 'a1' "
            "AND customer_wa_id = $1 AND released_at IS NULL",
            key(customer),
        )
        return bool(rows)

    who = CustomerIdentity(wa_id=customer)
    taken = HandoffRequested(
        tenant_id="t1", account_id="a1", customer=who, reason="taken over", taken_over_by="ann"
    )
    for _ in range(2):  # delivered twice: one hand-off, no message
        await event(taken, topology.HANDOFF_REQUESTED)
    await eventually(handoff_open, timeout_s=10)
    await nothing_sent(stack)
    await stack.publish(inbound("cart", customer=customer))
    await nothing_sent(stack)  # the agent has the customer
    await event(
        HandoffResolved(tenant_id="t1", account_id="a1", customer=who, resolved_by="ann"),
        topology.HANDOFF_RESOLVED,
    )
    (back,) = await stack.replies(1)
    assert "assistant again" in back.content.body
    # the bot's own hand-off event, late: ignored (no taken_over_by)
    await event(
        HandoffRequested(tenant_id="t1", account_id="a1", customer=who, reason="asked"),
        topology.HANDOFF_REQUESTED,
    )
    await asyncio.sleep(0.3)
    assert not await handoff_open()
    await stack.publish(inbound("menu", customer=customer))
    (menu,) = await stack.replies(1)
    assert menu.content.type == "interactive_list"


# ------------------------------------------------------------ facts for the relay
# ``order_changed`` on ``flowchat.events`` only while some endpoint of the tenant
# subscribes to its event type (the relay's sets in Redis, ``flowchat_platform.subscriptions``).

ORDER_TYPES = ["order.created", "order.status_changed", "order.paid"]


async def placed(stack: Stack, customer: str) -> str:
    """:func:`place`, once the order is committed (the invoice goes out just before)."""
    order_id = await place(stack, customer)

    async def committed() -> bool:
        r = await stack.http.get(f"/v1/tenants/t1/orders/{order_id}", headers=stack.admin)
        return r.status_code == 200

    await eventually(committed, timeout_s=5)
    return order_id


async def test_order_facts_only_while_an_endpoint_subscribes(stack: Stack) -> None:
    await seed(stack)
    facts = await watch(stack.channel, "order_changed")
    # nobody subscribes: an order and its status change publish nothing
    quiet = await placed(stack, "15550003333")
    r = await stack.http.post(
        f"/v1/tenants/t1/orders/{quiet}/status", json={"status": "processing"}, headers=stack.admin
    )
    assert r.status_code == 200, r.text
    await stack.replies(1)
    # another tenant's subscription is not t1's
    await subscribe(stack.redis_url, "t2", ORDER_TYPES)
    r = await stack.http.post(
        f"/v1/tenants/t1/orders/{quiet}/status", json={"status": "shipped"}, headers=stack.admin
    )
    assert r.status_code == 200, r.text
    await stack.replies(1)
    await asyncio.sleep(0.3)
    assert await facts.take() == []

    await subscribe(stack.redis_url, "t1", ORDER_TYPES)
    order_id = await placed(stack, "15550004444")
    url = f"/v1/tenants/t1/orders/{order_id}"
    r = await stack.http.post(f"{url}/status", json={"status": "processing"}, headers=stack.admin)
    assert r.status_code == 200, r.text
    r = await stack.http.post(
        f"{url}/payments", json={"reference": "P1", "amount": "27.50"}, headers=stack.admin
    )
    assert r.status_code == 200, r.text
    got = await facts.count(3)
    events = [OrderChanged.model_validate_json(m.body) for m in got]
    assert [e.change for e in events] == ["created", "status_changed", "paid"]
    assert all(m.message_id == e.event_id for m, e in zip(got, events, strict=True))
    assert all(m.routing_key == "t1.a1.order_changed" for m in got)
    created, changed, paid = (e.order for e in events)
    assert {e.order.order_id for e in events} == {order_id}
    assert created.customer is not None
    assert created.customer.wa_id == "15550004444"
    assert (created.status, created.total, created.currency) == ("confirmed", "27.50", "USD")
    assert (changed.previous_status, changed.status) == ("confirmed", "processing")
    assert paid.amount_paid == "27.50"

    # the subscription goes: nothing more
    await subscribe(stack.redis_url, "t1", ["message.status"])
    r = await stack.http.post(f"{url}/status", json={"status": "shipped"}, headers=stack.admin)
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.5)
    assert len(await facts.take()) == 3
