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

import httpx
import pytest
from gateway_testkit import (
    Broker,
    TenantStub,
    customer_writes,
    gateway_settings,
    own_number,
    pywa_client,
    register_number,
    sandbox_number,
    sender_settings,
)

from flowchat_contracts import topology
from flowchat_contracts.meta_ids import message_id_of
from flowchat_gateway.app import create_app
from flowchat_platform.testing import eventually, free_port, serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender.app import create_app as create_sender

pytestmark = pytest.mark.integration

KEY = "fc_live_tenant_a_send_e2e_0123456789"
CUSTOMER = "4915112345678"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64


async def test_statuses_name_the_message_by_the_id_pywa_was_given(
    amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    gateway_port, sender_port = free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    number = sandbox_number("98", "15550002222", f"{gateway_url}/webhooks/meta")
    own_number(tenant_stub, number, account_id="acc-e2e", tenant_id="tenant-a")
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
        settings_ = sender_settings(amqp_url, redis_url, tenant_stub.url, gateway_url, sandbox)
        await stack.enter_async_context(serve(create_sender(settings_), port=sender_port))
        sb = await stack.enter_async_context(httpx.AsyncClient(base_url=sandbox, timeout=10))
        gw = await stack.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=10))
        await eventually(lambda: _ready(gw), timeout_s=15, interval_s=0.05)  # the broker connected
        broker = Broker(amqp_url)
        await broker.open()
        stack.push_async_callback(broker.close)

        await register_number(sb, number)
        # the customer writes first: the webhook through the gateway opens the window
        await customer_writes(sb, number, CUSTOMER)
        wa = pywa_client(stack, gateway_url, number, KEY)

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
