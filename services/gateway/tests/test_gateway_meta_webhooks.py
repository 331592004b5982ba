"""Meta webhooks end to end: real HTTP, real RabbitMQ (own vhost), real Redis, stub tenant."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from gateway_testkit import (
    OTHER_APP_SECRET,
    TEMPLATE_APPROVED,
    VERIFY_TOKEN,
    WABA_ID,
    Gateway,
    TcpProxy,
    TenantStub,
    closed_port_url,
    messages_change,
    meta_body,
    quality_update,
    running_gateway,
    sign,
    status_change,
    text_message,
    with_port,
)

from flowchat_contracts import InboundMessage, StatusUpdate, topology
from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway.events import BusinessEvent
from flowchat_gateway.metrics import DEDUPE_UNAVAILABLE
from flowchat_gateway.normalize import _message_identity, event_id_for
from flowchat_platform.amqp import HEADER_REASON
from flowchat_platform.testing import eventually

pytestmark = pytest.mark.integration


def status(wamid: str, state: str, **extra) -> dict[str, Any]:
    return {
        "id": wamid,
        "status": state,
        "timestamp": "1750000100",
        "recipient_id": "16505551234",
        **extra,
    }


# --------------------------------------------------------------------- verification


async def test_verification_echoes_the_challenge_for_a_known_token(gateway: Gateway) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "12345"}
    r = await gateway.http.get("/webhooks/meta", params=params)
    assert r.status_code == 200
    assert r.text == "12345"
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong-token", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
async def test_verification_refused(gateway: Gateway, params: dict[str, Any]) -> None:
    r = await gateway.http.get("/webhooks/meta", params=params)
    assert r.status_code == 403
    assert "1" not in r.text or r.json()["error"]["code"] == "forbidden"


# --------------------------------------------------------------------- delivery


async def test_signed_webhook_is_published_before_200(gateway: Gateway) -> None:
    assert gateway.broker is not None
    body = meta_body(messages_change(text_message("wamid.ONE", "Hi there")))
    r = await gateway.post_meta(body, **{"X-Correlation-ID": "corr-meta-1"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert r.json()["published"] == 1
    # Confirmed before the answer: the event is already in the queue.
    (message, data), *rest = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert rest == []
    event = InboundMessage.model_validate(data)
    assert (event.tenant_id, event.account_id) == ("tenant-a", "acc-meta-1")
    assert (event.type, event.text, event.provider_message_id) == ("text", "Hi there", "wamid.ONE")
    assert event.correlation_id == "corr-meta-1"
    assert message.routing_key == topology.inbound_routing_key("tenant-a", "acc-meta-1", "text")
    assert message.message_id == event.event_id
    assert message.delivery_mode == 2  # persistent


@pytest.mark.parametrize(
    "signature",
    [None, "sha256=deadbeef", "garbage", "AUTO_OTHER_SECRET", "AUTO_TAMPERED"],
)
async def test_bad_signature_is_401_and_nothing_is_published(
    gateway: Gateway, signature: str | None
) -> None:
    assert gateway.broker is not None
    body = meta_body(messages_change(text_message("wamid.BAD")))
    if signature == "AUTO_OTHER_SECRET":
        signature = sign(body, OTHER_APP_SECRET)
    elif signature == "AUTO_TAMPERED":
        signature = sign(body)
        body = body.replace(b"hello", b"hellO")
    r = await gateway.post_meta(body, signature=signature)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_signature"
    assert await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []
    assert await gateway.broker.drain(topology.QUEUE_POISON) == []


async def test_one_tenants_secret_cannot_sign_for_another(gateway: Gateway) -> None:
    assert gateway.broker is not None
    gateway.tenant.add(
        account_id="acc-other",
        tenant_id="tenant-b",
        phone_number_id="777000777",
        waba_id="888",
        app_secret=OTHER_APP_SECRET,
    )
    victim_only = meta_body(messages_change(text_message("wamid.FORGED")))
    mixed = meta_body(
        messages_change(text_message("wamid.OWN"), phone_number_id="777000777"),
        messages_change(text_message("wamid.FORGED")),
    )
    # The other app's secret is now known to the gateway (it checked it for "mixed").
    r_mixed = await gateway.post_meta(mixed, signature=sign(mixed, OTHER_APP_SECRET))
    r_victim = await gateway.post_meta(victim_only, signature=sign(victim_only, OTHER_APP_SECRET))
    assert r_mixed.status_code == 200
    assert r_victim.status_code == 401
    inbound = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [(d["provider_message_id"], d["tenant_id"]) for _, d in inbound] == [
        ("wamid.OWN", "tenant-b")
    ]
    (parked, _), *_ = await gateway.broker.drain(topology.QUEUE_POISON)
    assert "signature_mismatch" in str(parked.headers[HEADER_REASON])


async def test_duplicate_is_answered_200_and_published_once(gateway: Gateway) -> None:
    assert gateway.broker is not None
    body = meta_body(messages_change(text_message("wamid.DUP")))
    first = await gateway.post_meta(body)
    second = await gateway.post_meta(body)
    # Meta may also resend the same message in a differently shaped batch.
    third = await gateway.post_meta(
        meta_body(messages_change(text_message("wamid.DUP"), text_message("wamid.NEW")))
    )
    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert second.json()["status"] == "duplicate"
    assert third.json()["published"] == 1
    assert third.json()["duplicates"] == 1
    published = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [d["provider_message_id"] for _, d in published] == ["wamid.DUP", "wamid.NEW"]


async def test_redelivered_statuses_keep_their_event_id_for_the_state_manager(
    gateway: Gateway,
) -> None:
    """Status-only bodies skip the gateway's Redis dedupe: a redelivered status is
    published again under the same event id, which the state-manager applies once."""
    assert gateway.broker is not None
    delivered = meta_body(status_change(status("wamid.OUT", "delivered")))
    read = meta_body(status_change(status("wamid.OUT", "read")))
    for body in (delivered, read, delivered, read):
        assert (await gateway.post_meta(body)).status_code == 200
    published = await gateway.broker.drain(topology.QUEUE_STATE_STATUS)
    assert [d["status"] for _, d in published] == ["delivered", "read", "delivered", "read"]
    ids = [d["event_id"] for _, d in published]
    assert ids[0] == ids[2]
    assert ids[1] == ids[3]
    assert ids[0] != ids[1]


async def test_batch_of_entries_and_changes_is_all_published(gateway: Gateway) -> None:
    assert gateway.broker is not None
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WABA_ID,
                "changes": [
                    messages_change(text_message("wamid.B1"), text_message("wamid.B2")),
                    status_change(
                        status(
                            "wamid.S1",
                            "sent",
                            biz_opaque_callback_data="fc-msg-1",
                            pricing={
                                "billable": True,
                                "pricing_model": "PMP",
                                "category": "utility",
                            },
                        ),
                        status(
                            "wamid.S2",
                            "failed",
                            errors=[{"code": 131026, "title": "Message undeliverable"}],
                        ),
                    ),
                ],
            },
            {
                "id": WABA_ID,
                "changes": [
                    TEMPLATE_APPROVED,
                    messages_change(
                        {
                            "from": "16505551234",
                            "id": "wamid.B3",
                            "timestamp": "1750000000",
                            "type": "interactive",
                            "interactive": {
                                "type": "button_reply",
                                "button_reply": {"id": "yes", "title": "Yes"},
                            },
                        }
                    ),
                ],
            },
        ],
    }
    body = json.dumps(payload).encode()
    r = await gateway.post_meta(body)
    assert r.status_code == 200, r.text
    assert r.json()["published"] == 6
    inbound = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert sorted(d["provider_message_id"] for _, d in inbound) == [
        "wamid.B1",
        "wamid.B2",
        "wamid.B3",
    ]
    keys = {m.routing_key for m, _ in inbound}
    assert keys == {"tenant-a.acc-meta-1.text", "tenant-a.acc-meta-1.interactive"}
    statuses = await gateway.broker.drain(topology.QUEUE_STATE_STATUS)
    by_id = {d["provider_message_id"]: StatusUpdate.model_validate(d) for _, d in statuses}
    assert by_id["wamid.S1"].message_id == "fc-msg-1"
    assert by_id["wamid.S1"].pricing is not None
    assert by_id["wamid.S1"].pricing.category == "utility"
    assert by_id["wamid.S2"].status == "failed"
    assert by_id["wamid.S2"].errors[0].code == 131026
    assert {m.routing_key for m, _ in statuses} == {"tenant-a.acc-meta-1.status_update"}
    events = await gateway.broker.drain(topology.EXCHANGE_EVENTS)
    assert len(events) == 1
    message, data = events[0]
    event = BusinessEvent.model_validate(data)
    assert (event.field, event.event) == ("message_template_status_update", "APPROVED")
    assert message.routing_key == "tenant-a.acc-meta-1.message_template_status_update"


async def test_account_level_update_alone_is_attributed_by_waba(gateway: Gateway) -> None:
    assert gateway.broker is not None
    # No earlier webhook: the WABA is resolved by the tenant service's by-waba lookup.
    body = meta_body(quality_update("15550783881"))
    r = await gateway.post_meta(body)
    assert r.status_code == 200, r.text
    events = await gateway.broker.drain(topology.EXCHANGE_EVENTS)
    assert [(m.routing_key, d["event"]) for m, d in events] == [
        ("tenant-a.acc-meta-1.phone_number_quality_update", "FLAGGED")
    ]


async def test_unknown_phone_number_id_is_parked_and_the_rest_published(gateway: Gateway) -> None:
    assert gateway.broker is not None
    body = meta_body(
        messages_change(text_message("wamid.KNOWN")),
        messages_change(text_message("wamid.STRAY"), phone_number_id="999999999"),
    )
    r = await gateway.post_meta(body)
    assert r.status_code == 200, r.text
    assert (r.json()["published"], r.json()["parked"]) == (1, 1)
    inbound = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [d["provider_message_id"] for _, d in inbound] == ["wamid.KNOWN"]
    (parked, data), *_ = await gateway.broker.drain(topology.QUEUE_POISON)
    assert "unknown_account" in str(parked.headers[HEADER_REASON])
    assert data["value"]["metadata"]["phone_number_id"] == "999999999"


async def test_only_unknown_numbers_need_a_known_secret(gateway: Gateway) -> None:
    assert gateway.broker is not None
    stray = meta_body(messages_change(text_message(), phone_number_id="999999999"))
    # Nothing is known yet: the signature cannot be checked, so it is refused.
    assert (await gateway.post_meta(stray)).status_code == 401
    await gateway.post_meta(meta_body(messages_change(text_message())))  # learns the app secret
    r = await gateway.post_meta(stray)
    assert r.status_code == 200
    assert r.json()["status"] == "parked"
    assert len(await gateway.broker.drain(topology.QUEUE_POISON)) == 1
    forged = await gateway.post_meta(stray, signature=sign(stray, OTHER_APP_SECRET))
    assert forged.status_code == 401


async def test_signed_but_unparseable_body_is_parked_with_200(gateway: Gateway) -> None:
    assert gateway.broker is not None
    await gateway.post_meta(meta_body(messages_change(text_message())))  # learns the app secret
    await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    for raw in (b'{"entry": [', b'{"object": "whatsapp_business_account"}'):
        r = await gateway.post_meta(raw)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "parked"
        (parked, _), *_ = await gateway.broker.drain(topology.QUEUE_POISON)
        assert parked.body == raw
        assert "unparseable" in str(parked.headers[HEADER_REASON])
    unsigned = await gateway.post_meta(b'{"entry": [', signature=sign(b"x", OTHER_APP_SECRET))
    assert unsigned.status_code == 401


async def test_malformed_message_in_a_signed_batch_is_parked(gateway: Gateway) -> None:
    assert gateway.broker is not None
    broken = text_message("wamid.BROKEN")
    broken["from"] = "not a number"
    r = await gateway.post_meta(meta_body(messages_change(broken, text_message("wamid.FINE"))))
    assert r.status_code == 200
    inbound = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [d["provider_message_id"] for _, d in inbound] == ["wamid.FINE"]
    (parked, data), *_ = await gateway.broker.drain(topology.QUEUE_POISON)
    assert data["id"] == "wamid.BROKEN"
    assert "malformed_message" in str(parked.headers[HEADER_REASON])


async def test_wrong_content_type_is_415(gateway: Gateway) -> None:
    body = meta_body(messages_change(text_message()))
    r = await gateway.http.post(
        "/webhooks/meta",
        content=body,
        headers={"Content-Type": "text/plain", "X-Hub-Signature-256": sign(body)},
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


async def test_body_over_the_limit_is_413(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(module_amqp_url, redis_url, tenant_stub, max_body_bytes=4096) as gw:
        body = meta_body(messages_change(text_message(body="x" * 5000)))
        r = await gw.post_meta(body)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"

        async def chunks():
            yield body[:3000]
            yield body[3000:]

        streamed = await gw.http.post(
            "/webhooks/meta",
            content=chunks(),
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)},
        )
        assert streamed.status_code == 413
        assert gw.broker is not None
        assert await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []


async def test_customer_service_window_is_recorded(gateway: Gateway) -> None:
    message = text_message("wamid.CSW")
    message["timestamp"] = "1750000000"
    await gateway.post_meta(meta_body(messages_change(message)))
    older = text_message("wamid.CSW-OLD")
    older["timestamp"] = "1740000000"  # arrives late: must not move the window back
    await gateway.post_meta(meta_body(messages_change(older)))
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:
        value = await client.get(customer_window_key("tenant-a", "acc-meta-1", "16505551234"))
        ttl = await client.ttl(customer_window_key("tenant-a", "acc-meta-1", "16505551234"))
    finally:
        await client.aclose()
    assert value == b"1750000000"
    assert ttl > 24 * 3600


async def test_dedupe_window_is_at_least_seven_days(gateway: Gateway) -> None:
    await gateway.post_meta(meta_body(messages_change(text_message("wamid.TTL"))))
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:
        keys = [k async for k in client.scan_iter("flowchat:gateway:dedupe:*")]
        assert len(keys) == 1

        async def marked() -> bool:  # the mark follows the answer, in the next batch
            return bool(await client.ttl(keys[0]) > 7 * 24 * 3600 - 60)

        await eventually(marked, timeout_s=5, interval_s=0.01)
        assert await client.get(keys[0]) == b"1"
    finally:
        await client.aclose()


async def test_an_event_claimed_by_another_request_is_answered_409_not_200(
    gateway: Gateway,
) -> None:
    """A claim left behind (a request still publishing, or a gateway that died before the
    confirm) never gets the provider's retry a 200: 409 until it expires, then published."""
    assert gateway.broker is not None
    body = meta_body(messages_change(text_message("wamid.HELD"), text_message("wamid.FREE")))
    event_id = event_id_for("acc-meta-1", _message_identity("meta", "wamid.HELD"))
    key = gateway.app.state.store.dedupe_key("acc-meta-1", event_id)
    client = aioredis.Redis.from_url(gateway.settings.redis_url)
    try:
        await client.set(key, "p:dead-gateway", px=700)
        held = await gateway.post_meta(body)
        assert held.status_code == 409
        assert held.json()["error"]["code"] == "in_flight"
        assert held.headers["retry-after"]
        published = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
        assert [d["provider_message_id"] for _, d in published] == ["wamid.FREE"]

        async def expired() -> bool:
            return not await client.exists(key)

        await eventually(expired, timeout_s=5, interval_s=0.05)
        retried = await gateway.post_meta(body)
        assert retried.status_code == 200
        assert retried.json()["published"] == 1
        assert retried.json()["duplicates"] == 1
        published = await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
        assert [d["provider_message_id"] for _, d in published] == ["wamid.HELD"]
    finally:
        await client.aclose()
    text = (await gateway.http.get("/metrics")).text
    assert (
        'flowchat_gateway_webhooks_total{kind="webhook",outcome="in_flight",provider="meta"}'
        in text
    )


# --------------------------------------------------------------------- failures


async def test_broker_unreachable_gives_503_never_200(
    redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(
        closed_port_url("amqp"), redis_url, tenant_stub, wait_ready=False
    ) as gw:
        assert (await gw.http.get("/readyz")).status_code == 503
        assert (await gw.http.get("/healthz")).status_code == 200
        for _ in range(3):
            r = await gw.post_meta(meta_body(messages_change(text_message("wamid.DOWN"))))
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "unavailable"
            assert r.headers["retry-after"]


async def test_broker_outage_then_recovery_loses_nothing(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    amqp_url = module_amqp_url
    target = urlsplit(amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    try:
        async with running_gateway(
            with_port(amqp_url, proxy.port), redis_url, tenant_stub, observe_url=amqp_url
        ) as gw:
            assert gw.broker is not None
            before = meta_body(messages_change(text_message("wamid.BEFORE")))
            assert (await gw.post_meta(before)).status_code == 200
            await proxy.stop()
            during = meta_body(messages_change(text_message("wamid.DURING")))
            answers = [(await gw.post_meta(during)).status_code for _ in range(2)]
            assert answers == [503, 503]
            await proxy.start()

            async def delivered() -> bool:
                # Meta keeps retrying; once the broker is back the retry is accepted.
                return (await gw.post_meta(during)).status_code == 200

            await eventually(delivered, timeout_s=20, interval_s=0.5)
            inbound = await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
            ids = [d["provider_message_id"] for _, d in inbound]
            # Every webhook answered 200 is in the queue; the 503 ones were not marked
            # as seen, so the retry was published (exactly once).
            assert ids == ["wamid.BEFORE", "wamid.DURING"]
    finally:
        await proxy.stop()


async def test_redis_down_still_publishes(module_amqp_url: str, tenant_stub: TenantStub) -> None:
    async with running_gateway(module_amqp_url, closed_port_url("redis"), tenant_stub) as gw:
        assert gw.broker is not None
        skipped = DEDUPE_UNAVAILABLE.labels("meta", "check")
        before = skipped._value.get()
        body = meta_body(messages_change(text_message("wamid.NOREDIS")))
        assert (await gw.post_meta(body)).status_code == 200
        assert (await gw.post_meta(body)).status_code == 200
        inbound = await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
        # No dedupe without Redis: both published, with the same event id for consumers.
        assert [d["provider_message_id"] for _, d in inbound] == ["wamid.NOREDIS"] * 2
        assert inbound[0][1]["event_id"] == inbound[1][1]["event_id"]
        assert skipped._value.get() == before + 2
        metrics = (await gw.http.get("/metrics")).text
        assert 'flowchat_gateway_dedupe_unavailable_total{provider="meta",step="check"}' in metrics


async def test_tenant_service_down_gives_503(gateway: Gateway) -> None:
    assert gateway.broker is not None
    gateway.tenant.down = True
    r = await gateway.post_meta(meta_body(messages_change(text_message())))
    assert r.status_code == 503
    assert r.json()["error"]["details"] == [{"dependency": "tenant"}]
    assert await gateway.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []


async def test_webhook_metrics_by_outcome(gateway: Gateway) -> None:
    body = meta_body(messages_change(text_message("wamid.M")))
    await gateway.post_meta(body)
    await gateway.post_meta(body)
    await gateway.post_meta(body, signature="sha256=00")
    text = (await gateway.http.get("/metrics")).text
    for line in (
        'flowchat_gateway_webhooks_total{kind="webhook",outcome="accepted",provider="meta"}',
        'flowchat_gateway_webhooks_total{kind="webhook",outcome="duplicate",provider="meta"}',
        'flowchat_gateway_webhooks_total{kind="webhook",outcome="invalid_signature",provider="meta"}',
        'flowchat_gateway_events_total{kind="inbound_message",outcome="published",provider="meta",type="text"}',
        "flowchat_gateway_publish_duration_seconds_count",
    ):
        assert line in text
