"""A tenant's code written for Meta, moved onto FlowChat by its base URL alone, gets
its messages' statuses in the ``meta`` format under the id the send answered.

An unmodified pywa client (transport pointed at the gateway: ``ToGateway``) sends
through the gateway's Cloud-API-compatible endpoint, one message with
``biz_opaque_callback_data`` (pywa's ``tracker``) and one without; the real sender sends
them to the sandbox (Meta), whose status webhooks come back through the gateway; the
real state-manager records them and publishes ``message_status_changed``; the real
relay delivers them to a receiver registered in ``meta`` format. Every delivery passes
pywa's own signature check (the endpoint's secret as the app secret) and parses with
pywa's own ``MessageStatus``: its id is the id pywa was given, its tracker the one
pywa sent. Real RabbitMQ (a vhost of its own), Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# the gateway's kit (on pytest's pythonpath; not on the relay tests' MYPYPATH)
from gateway_testkit import (  # type: ignore[import-not-found]
    SERVICE_TOKEN,
    TenantStub,
    customer_writes,
    gateway_settings,
    own_number,
    pywa_client,
    register_number,
    sandbox_number,
    sender_settings,
    threaded_server,
)
from pywa.types.message_status import MessageStatus
from pywa.utils import webhook_updates_validator
from relay_testkit import Receiver, relay_settings

from flowchat_gateway.app import create_app as create_gateway
from flowchat_platform.testing import eventually, free_port, serve
from flowchat_relay.app import create_app as create_relay
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings
from flowchat_sender.app import create_app as create_sender
from flowchat_state_manager.app import create_app as create_state
from flowchat_state_manager.settings import Settings as StateSettings

pytestmark = pytest.mark.integration

SEND_KEY = "fc_live_tenant_a_relay_e2e_0123456789"
ADMIN_KEY = "fc_live_tenant_a_relay_admin_012345"
CUSTOMER = "4915112345678"


@pytest.fixture
def stub() -> Iterator[TenantStub]:
    stub = TenantStub()
    with threaded_server(stub.app()) as url:
        stub.url = url
        yield stub


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_meta_statuses_carry_the_id_pywa_was_given_and_its_tracker(
    amqp_url: str, redis_url: str, database_url: str, stub: TenantStub
) -> None:
    gateway_port, sender_port, state_port = free_port(), free_port(), free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    number = sandbox_number("97", "15550003333", f"{gateway_url}/webhooks/meta")
    own_number(stub, number, account_id="acc-relay-e2e", tenant_id="tenant-a")
    stub.api_keys[SEND_KEY] = {"key_id": "key-send", "tenant_id": "tenant-a", "scopes": ["send"]}
    stub.api_keys[ADMIN_KEY] = {"key_id": "key-adm", "tenant_id": "tenant-a", "scopes": ["admin"]}
    sandbox_app = create_sandbox(SandboxSettings(status_delay_s=0.05, webhook_max_attempts=5))
    receiver = Receiver()
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(receiver.running())
        sandbox = await stack.enter_async_context(serve(sandbox_app))
        # the relay first: it declares its own queues
        relay_url = await stack.enter_async_context(
            serve(
                create_relay(
                    relay_settings(
                        amqp_url,
                        database_url,
                        stub.url,
                        redis_url,
                        FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
                    )
                )
            )
        )
        relay = await stack.enter_async_context(httpx.AsyncClient(base_url=relay_url, timeout=10))
        await eventually(lambda: _ready(relay), timeout_s=30)
        r = await relay.post(
            "/v1/endpoints",
            json={"url": receiver.url, "event_types": ["message.status"], "format": "meta"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        state_settings = StateSettings(
            AMQP_URL=amqp_url,
            DATABASE_URL=database_url,
            # the relay's subscriptions (which statuses leave the state-manager) live here
            REDIS_URL=redis_url,
            FLOWCHAT_TENANT_URL=stub.url,
            FLOWCHAT_SERVICE_TOKEN=SERVICE_TOKEN,
            FLOWCHAT_ENV="test",
            outbox_poll_interval_s=0.1,
        )
        state_url = await stack.enter_async_context(
            serve(create_state(state_settings), port=state_port)
        )
        state = await stack.enter_async_context(httpx.AsyncClient(base_url=state_url))
        await eventually(lambda: _ready(state), timeout_s=30)
        settings = gateway_settings(
            amqp_url,
            redis_url,
            stub.url,
            graph_url=sandbox,
            public_url=gateway_url,
            FLOWCHAT_SENDER_URL=f"http://127.0.0.1:{sender_port}",
            FLOWCHAT_STATE_URL=state_url,
        )
        await stack.enter_async_context(serve(create_gateway(settings), port=gateway_port))
        settings_ = sender_settings(amqp_url, redis_url, stub.url, gateway_url, sandbox)
        await stack.enter_async_context(serve(create_sender(settings_), port=sender_port))
        sb = await stack.enter_async_context(httpx.AsyncClient(base_url=sandbox, timeout=10))
        gw = await stack.enter_async_context(httpx.AsyncClient(base_url=gateway_url, timeout=10))
        await eventually(lambda: _ready(gw), timeout_s=15)

        await register_number(sb, number)
        # the customer writes first: the webhook through the gateway opens the window
        await customer_writes(sb, number, CUSTOMER)
        await asyncio.sleep(0.3)  # the inbound webhook's window reaches Redis first
        wa = pywa_client(stack, gateway_url, number, SEND_KEY)
        tracked = await asyncio.to_thread(
            wa.send_message, to=CUSTOMER, text="your order shipped", tracker="order-42"
        )
        plain = await asyncio.to_thread(wa.send_message, to=CUSTOMER, text="thank you")
        trackers = {tracked.id: "order-42", plain.id: None}

        seen: dict[str, dict[str, MessageStatus[Any]]] = {}

        def statuses() -> bool:
            for got in receiver.accepted:
                update: Any = got.json()
                status = MessageStatus.from_update(client=wa, update=update)
                seen.setdefault(status.id, {})[status.status.value] = status
            return all({"sent", "delivered", "read"} <= set(seen.get(i, {})) for i in trackers)

        await eventually(statuses, timeout_s=30, interval_s=0.2)

    for got in receiver.accepted:
        assert webhook_updates_validator(secret, got.body, got.headers["x-hub-signature-256"])
        assert not webhook_updates_validator("not-it", got.body, got.headers["x-hub-signature-256"])
    # every status names a message by the id pywa was given, and echoes its tracker
    assert set(seen) == set(trackers)
    for message_id, by_status in seen.items():
        for status in by_status.values():
            assert status.tracker == trackers[message_id]
            assert status.metadata.phone_number_id == number["phone_number_id"]
            assert status.from_user.wa_id == CUSTOMER
