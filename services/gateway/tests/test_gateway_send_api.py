"""The tenants' send API end to end: API keys, scopes, ownership, idempotency, publish."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson
import pytest
from gateway_testkit import SERVICE_TOKEN, Gateway, TenantStub, closed_port_url, running_gateway
from prometheus_client import REGISTRY

from flowchat_contracts import OutboundCommand, topology
from flowchat_gateway.ports import IdempotencyRecord
from flowchat_gateway.schemas import SendMessageRequest
from flowchat_gateway.store import GatewayStore
from flowchat_platform.redis import create_redis

pytestmark = pytest.mark.integration

KEY_A = "fc_live_tenant_a_send_0123456789"
KEY_A_READ = "fc_live_tenant_a_read_0123456789"
KEY_B = "fc_live_tenant_b_send_0123456789"


def add_keys(gw: Gateway) -> None:
    gw.tenant.api_keys.update(
        {
            KEY_A: {"key_id": "key-a", "tenant_id": "tenant-a", "scopes": ["send", "read"]},
            KEY_A_READ: {"key_id": "key-a-read", "tenant_id": "tenant-a", "scopes": ["read"]},
            KEY_B: {"key_id": "key-b", "tenant_id": "tenant-b", "scopes": ["send"]},
        }
    )
    gw.tenant.add(account_id="acc-b-1", tenant_id="tenant-b", phone_number_id="222333444")


@pytest.fixture
def api(gateway: Gateway) -> Gateway:
    add_keys(gateway)
    return gateway


def text_request(**overrides) -> dict[str, Any]:
    return {
        "account_id": "acc-meta-1",
        "to": "+49 151 12345678",
        "content": {"type": "text", "body": "Your order has shipped!"},
        **overrides,
    }


async def send(
    gw: Gateway,
    body: dict[str, Any],
    *,
    key: str | None = KEY_A,
    idem: str | None = "auto",
    **headers,
):
    sent = dict(headers)
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    if idem == "auto":
        idem = uuid.uuid4().hex
    if idem is not None:
        sent["Idempotency-Key"] = idem
    return await gw.http.post("/v1/messages", json=body, headers=sent)


async def test_send_queues_an_outbound_command(api: Gateway) -> None:
    assert api.broker is not None
    r = await send(
        api,
        text_request(reply_to="wamid.Q1"),
        idem="order-1042-shipped",
        **{"X-Correlation-ID": "corr-send-1"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    ((message, data),) = await api.broker.drain(topology.QUEUE_OUTBOUND)
    command = OutboundCommand.model_validate(data)
    assert command.message_id == body["message_id"]
    assert (command.tenant_id, command.account_id) == ("tenant-a", "acc-meta-1")
    assert command.to == "4915112345678"  # the WhatsApp id, FlowChat's one form
    assert command.idempotency_key == "order-1042-shipped"
    assert command.correlation_id == "corr-send-1"
    assert command.reply_to == "wamid.Q1"
    assert command.content.type == "text"
    assert message.routing_key == topology.outbound_routing_key("tenant-a", "acc-meta-1")


@pytest.mark.parametrize(
    "content",
    [
        {"type": "image", "link": "https://example.com/a.jpg", "caption": "A"},
        {"type": "template", "name": "order_update", "language": "en_US"},
        {
            "type": "interactive_buttons",
            "body": "Confirm?",
            "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}],
        },
        {"type": "location", "latitude": 52.5, "longitude": 13.4},
    ],
)
async def test_send_other_types(api: Gateway, content: dict[str, Any]) -> None:
    assert api.broker is not None
    r = await send(api, text_request(content=content, category="utility"))
    assert r.status_code == 202, r.text
    ((_, data),) = await api.broker.drain(topology.QUEUE_OUTBOUND)
    assert data["content"]["type"] == content["type"]
    assert data["category"] == "utility"


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        (None, 401, "unauthorized"),
        ("fc_unknown_key_000000000000", 401, "unauthorized"),
        (KEY_A_READ, 403, "forbidden"),
        # The tenants' edge takes tenant keys only: FlowChat's own token is no key here.
        (SERVICE_TOKEN, 401, "unauthorized"),
    ],
)
async def test_auth_and_scope(api: Gateway, key: str | None, status: int, code: str) -> None:
    assert api.broker is not None
    r = await send(api, text_request(), key=key)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert await api.broker.drain(topology.QUEUE_OUTBOUND) == []


async def test_keys_that_cannot_be_checked_are_503(api: Gateway) -> None:
    assert api.broker is not None
    api.tenant.down = True
    r = await send(api, text_request())
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "tenant_unavailable"
    assert await api.broker.drain(topology.QUEUE_OUTBOUND) == []


async def test_another_tenants_account_is_404(api: Gateway) -> None:
    assert api.broker is not None
    r = await send(api, text_request(account_id="acc-meta-1"), key=KEY_B)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "account_not_found"
    r = await send(api, text_request(account_id="no-such-account"))
    assert r.status_code == 404
    ok = await send(api, text_request(account_id="acc-b-1"), key=KEY_B)
    assert ok.status_code == 202
    assert len(await api.broker.drain(topology.QUEUE_OUTBOUND)) == 1


async def test_idempotency_replay_and_conflict(api: Gateway) -> None:
    assert api.broker is not None
    first = await send(api, text_request(), idem="key-1")
    # Same message, number written differently: still the same request.
    again = await send(api, text_request(to="4915112345678"), idem="key-1")
    conflict = await send(
        api, text_request(content={"type": "text", "body": "something else"}), idem="key-1"
    )
    assert (first.status_code, again.status_code, conflict.status_code) == (202, 202, 409)
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    # Keys are per tenant: tenant B may use the same key for its own message.
    other = await send(api, text_request(account_id="acc-b-1"), key=KEY_B, idem="key-1")
    assert other.status_code == 202
    assert other.json()["message_id"] != first.json()["message_id"]
    assert len(await api.broker.drain(topology.QUEUE_OUTBOUND)) == 2


async def test_records_written_with_the_old_phone_form_still_replay(api: Gateway) -> None:
    """Before the WhatsApp id was FlowChat's form, the gateway hashed ``to`` as ``+E164``:
    a client retrying across the upgrade gets its message id back, not a 409."""
    assert api.broker is not None
    old_body = SendMessageRequest.model_validate(text_request(to="+4915112345678"))
    old_hash = hashlib.sha256(
        orjson.dumps(old_body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    redis = create_redis(api.settings.redis_url)
    try:
        store = GatewayStore(redis)
        done = IdempotencyRecord(old_hash, "msg-old-done", "done")
        unconfirmed = IdempotencyRecord(old_hash, "msg-old-unconfirmed", "unconfirmed")
        await store.idempotency_complete("tenant-a", "old-done", done, 600)
        await store.idempotency_complete("tenant-a", "old-unconfirmed", unconfirmed, 600)
    finally:
        await redis.aclose()
    replay = await send(api, text_request(), idem="old-done")
    assert replay.status_code == 202, replay.text
    assert replay.json()["message_id"] == "msg-old-done"
    assert replay.headers.get("idempotent-replayed") == "true"
    retried = await send(api, text_request(), idem="old-unconfirmed")
    assert retried.status_code == 202, retried.text
    assert retried.json()["message_id"] == "msg-old-unconfirmed"
    ((_, data),) = await api.broker.drain(topology.QUEUE_OUTBOUND)
    command = OutboundCommand.model_validate(data)
    assert (command.message_id, command.to) == ("msg-old-unconfirmed", "4915112345678")
    other = text_request(content={"type": "text", "body": "something else"})
    assert (await send(api, other, idem="old-done")).status_code == 409


async def test_idempotency_key_is_required(api: Gateway) -> None:
    r = await send(api, text_request(), idem=None)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_idempotency_key"
    r = await send(api, text_request(), idem="x" * 129)
    assert r.status_code == 400


@pytest.mark.parametrize("to", ["12", "+999123456789", "call me", "+1 650 555"])
async def test_invalid_phone_number_is_422(api: Gateway, to: str) -> None:
    assert api.broker is not None
    r = await send(api, text_request(to=to))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_phone_number"
    assert r.json()["error"]["details"] == [{"field": "to"}]
    assert await api.broker.drain(topology.QUEUE_OUTBOUND) == []


@pytest.mark.parametrize(
    "content",
    [
        {"type": "text", "body": ""},
        {"type": "image"},
        {"type": "interactive_buttons", "body": "b", "buttons": [{"id": "1", "title": "t"}] * 4},
        {"type": "fax", "body": "x"},
    ],
)
async def test_invalid_content_is_422(api: Gateway, content: dict[str, Any]) -> None:
    r = await send(api, text_request(content=content))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


async def test_rate_limit_per_key(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(
        module_amqp_url, redis_url, tenant_stub, send_rate_per_minute=2
    ) as gw:
        add_keys(gw)
        counted = REGISTRY.get_sample_value(
            "flowchat_gateway_rate_limited_total", {"tenant": "tenant-a"}
        )
        answers = [(await send(gw, text_request())).status_code for _ in range(3)]
        assert answers == [202, 202, 429]
        limited = await send(gw, text_request())
        assert int(limited.headers["retry-after"]) >= 1
        assert (await send(gw, text_request(account_id="acc-b-1"), key=KEY_B)).status_code == 202
        # the 429s count under the caller's tenant (from its key), tenant-b's under none
        after = REGISTRY.get_sample_value(
            "flowchat_gateway_rate_limited_total", {"tenant": "tenant-a"}
        )
        assert (after or 0) - (counted or 0) == 2
        assert not REGISTRY.get_sample_value(
            "flowchat_gateway_rate_limited_total", {"tenant": "tenant-b"}
        )


async def test_broker_down_is_503(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(
        closed_port_url("amqp"), redis_url, tenant_stub, wait_ready=False
    ) as gw:
        add_keys(gw)
        r = await send(gw, text_request(), idem="k-down")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
        # The claim is kept as unconfirmed: a retry with the same key is not "in progress".
        again = await send(gw, text_request(), idem="k-down")
        assert again.status_code == 503
        assert (await send(gw, text_request(to="+4915199999999"), idem="k-down")).status_code == 409
    # An unconfirmed publish may still land (a blocked broker delivers it later): the
    # retry publishes the same message id, so the sender sends one message under it.
    redis = create_redis(redis_url)
    try:
        record = await GatewayStore(redis).idempotency_get("tenant-a", "k-down")
    finally:
        await redis.aclose()
    assert record is not None
    assert record.state == "unconfirmed"
    async with running_gateway(module_amqp_url, redis_url, tenant_stub) as gw:
        add_keys(gw)
        assert gw.broker is not None
        ok = await send(gw, text_request(), idem="k-down")
        assert ok.status_code == 202
        assert ok.json()["message_id"] == record.message_id
        ((_, data),) = await gw.broker.drain(topology.QUEUE_OUTBOUND)
        assert OutboundCommand.model_validate(data).message_id == record.message_id
        replay = await send(gw, text_request(), idem="k-down")
        assert replay.json()["message_id"] == record.message_id


async def test_redis_down_is_503(module_amqp_url: str, tenant_stub: TenantStub) -> None:
    async with running_gateway(module_amqp_url, closed_port_url("redis"), tenant_stub) as gw:
        add_keys(gw)
        assert gw.broker is not None
        r = await send(gw, text_request())
        assert r.status_code == 503
        assert await gw.broker.drain(topology.QUEUE_OUTBOUND) == []


async def test_openapi_documents_the_public_routes(api: Gateway) -> None:
    spec = (await api.http.get("/openapi.json")).json()
    assert {"/v1/messages", "/webhooks/meta", "/webhooks/twilio/{account_id}"} <= set(spec["paths"])
    send_op = spec["paths"]["/v1/messages"]["post"]
    examples = send_op["requestBody"]["content"]["application/json"]["examples"]
    types = {e["value"]["content"]["type"] for e in examples.values()}
    assert types == {
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "template",
        "interactive_buttons",
        "interactive_list",
        "reaction",
        "location",
        "contacts",
    }
    assert {"202", "401", "403", "404", "409", "422", "429", "503"} <= set(send_op["responses"])


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_refusals_are_counted_by_the_route_that_answered(api: Gateway) -> None:
    """The one error handler counts each refusal in its route's metric, by outcome."""
    sends = "flowchat_gateway_send_requests_total"
    before = {o: _count(sends, outcome=o) for o in ("invalid", "not_found", "conflict")}
    unknown_before = _count(
        "flowchat_gateway_webhooks_total", provider="twilio", kind="webhook", outcome="not_found"
    )
    assert (await send(api, text_request(), idem=None)).status_code == 400
    assert (await send(api, text_request(to="12"))).status_code == 422
    assert (await send(api, text_request(account_id="nope"))).status_code == 404
    await send(api, text_request(), idem="k-twice")
    assert (await send(api, text_request(to="4915199999999"), idem="k-twice")).status_code == 409
    r = await api.http.post(
        "/webhooks/twilio/nope",
        content=b"Body=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert _count(sends, outcome="invalid") - before["invalid"] == 2
    assert _count(sends, outcome="not_found") - before["not_found"] == 1
    assert _count(sends, outcome="conflict") - before["conflict"] == 1
    unknown = _count(
        "flowchat_gateway_webhooks_total", provider="twilio", kind="webhook", outcome="not_found"
    )
    assert unknown - unknown_before == 1
