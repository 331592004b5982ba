"""The id the Cloud-API-compatible endpoint answers is the id FlowChat's statuses carry.

pywa (unchanged, transport pointed at the gateway) sends through the gateway; the real
sender takes the queued command and sends it to the sandbox (Meta); the sandbox's
status webhooks come back through the gateway's ``/webhooks/meta``; the ``StatusUpdate``
the gateway publishes names the message by FlowChat's id, which is ``message_id_of``
the id pywa was given. Media goes through the real sender's media API to the sandbox.
Real RabbitMQ (a vhost of its own: the sender consumes) and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import httpx
import pytest
from gateway_testkit import SERVICE_TOKEN, Broker, TenantStub, ToGateway, gateway_settings
from pywa.client import WhatsApp

from flowchat_contracts import topology
from flowchat_contracts.meta_ids import message_id_of
from flowchat_gateway.app import create_app
from flowchat_platform.testing import eventually, free_port, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender.app import create_app as create_sender
from flowchat_sender.settings import Settings as SenderSettings

pytestmark = pytest.mark.integration

KEY = "fc_live_tenant_a_send_e2e_0123456789"
CUSTOMER = "4915112345678"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64


async def test_statuses_name_the_message_by_the_id_pywa_was_given(
    amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    gateway_port, sender_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    suffix = f"{secrets.randbelow(10**6):06d}"
    number = {
        "phone_number_id": f"1098{suffix}",
        "waba_id": f"2098{suffix}",
        "display_phone_number": "15550002222",
        "access_token": "EAAG" + secrets.token_urlsafe(24),
        "app_secret": secrets.token_hex(16),
        "webhook_url": f"{gateway_url}/webhooks/meta",
    }
    tenant_stub.reset()
    tenant_stub.accounts.clear()
    tenant_stub.add(
        account_id="acc-e2e",
        tenant_id="tenant-a",
        phone_number_id=number["phone_number_id"],
        waba_id=number["waba_id"],
        display_phone_number=number["display_phone_number"],
        access_token=number["access_token"],
        app_secret=number["app_secret"],
    )
    tenant_stub.api_keys[KEY] = {"key_id": "key-e2e", "tenant_id": "tenant-a", "scopes": ["send"]}
    sandbox_app = create_sandbox(SandboxSettings(status_delay_s=0.05, webhook_max_attempts=5))
    async with contextlib.AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(serve(sandbox_app))
        settings = gateway_settings(
            amqp_url,
            redis_url,
            tenant_stub.url,
            graph_url=sandbox,
            public_url=gateway_url,
            FLOWCHAT_SENDER_URL=f"http://127.0.0.1:{sender_port}",
        )
        await stack.enter_async_context(serve(create_app(settings), port=gateway_port))
        sender_settings = SenderSettings(
            AMQP_URL=amqp_url,
            REDIS_URL=redis_url,
            FLOWCHAT_TENANT_URL=tenant_stub.url,
            FLOWCHAT_GATEWAY_URL=gateway_url,
            FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
            FLOWCHAT_ENV="test",
            graph_url=sandbox,
            shutdown_grace_s=5,
        )
        await stack.enter_async_context(serve(create_sender(sender_settings), port=sender_port))
        sb = await stack.enter_async_context(httpx.AsyncClient(base_url=sandbox, timeout=10))
        gw = await stack.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=10))
        await eventually(lambda: _ready(gw), timeout_s=15, interval_s=0.05)  # the broker connected
        broker = Broker(amqp_url)
        await broker.open()
        stack.push_async_callback(broker.close)

        r = await sb.post("/sandbox/numbers", json=number)
        assert r.status_code == 201, r.text
        # the customer writes first: the webhook through the gateway opens the window
        r = await sb.post(
            f"/sandbox/customers/{CUSTOMER}/messages",
            json={"phone_number_id": number["phone_number_id"], "text": "hello"},
        )
        assert r.status_code == 200, r.text

        session = httpx.Client(transport=ToGateway(gateway_url), timeout=10)
        stack.callback(session.close)
        wa = WhatsApp(phone_id=number["phone_number_id"], token=KEY, session=session)

        media = await asyncio.to_thread(
            wa.upload_media, media=PNG, mime_type="image/png", filename="a.png"
        )
        stored = (await sb.get("/sandbox/media")).json()
        assert media.id in [m["id"] for m in stored]  # uploaded to Meta by the sender
        await asyncio.sleep(0.3)  # the inbound webhook's window reaches Redis first
        sent = [
            await asyncio.to_thread(wa.send_message, to=CUSTOMER, text="your order shipped"),
            await asyncio.to_thread(wa.send_image, to=CUSTOMER, image=media),
        ]
        wanted = {message_id_of(s.id): s.id for s in sent}
        assert None not in wanted

        seen: dict[str, set[str]] = {}

        async def statuses_arrived() -> bool:
            for _, data in await broker.drain(topology.QUEUE_STATE_STATUS):
                if isinstance(data, dict) and data.get("kind") == "status_update":
                    seen.setdefault(str(data.get("message_id")), set()).add(data["status"])
            return all({"delivered", "read"} <= seen.get(str(m), set()) for m in wanted)

        await eventually(statuses_arrived, timeout_s=20, interval_s=0.2)
        ledger = (await sb.get("/sandbox/messages", params={"to": CUSTOMER})).json()
        assert [e["type"] for e in ledger] == ["text", "image"]
        assert ledger[1]["body"]["image"] == {"id": media.id}
        assert {e["body"]["biz_opaque_callback_data"] for e in ledger} == set(wanted)


async def _ready(gw: httpx.AsyncClient) -> bool:
    return (await gw.get("/readyz")).status_code == 200
