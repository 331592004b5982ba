"""Every event type of issue 22 through the running relay to a real receiver on
loopback, each verified as a receiver verifies it (the ``standardwebhooks`` package),
from the facts their owners publish on ``flowchat.events``: the hand-offs, the
conversation service's ``order_changed`` / ``campaign_changed``, the gateway's
template-status and quality ``business_event``; kinds and fields no event type carries,
and bodies that are not JSON objects, are acked without an event or a crash."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pywa.utils import webhook_updates_validator
from relay_testkit import ACCOUNTS, T0, Harness, Receiver, wait_for
from standardwebhooks.webhooks import Webhook

from flowchat_contracts import CustomerIdentity, HandoffRequested, HandoffResolved, topology
from flowchat_contracts.tenant_events import (
    ALL_EVENT_TYPES,
    CampaignChanged,
    CampaignData,
    OrderChanged,
    OrderData,
)
from flowchat_platform.redis import create_redis
from flowchat_platform.subscriptions import SubscriptionView, subscriptions_key

pytestmark = pytest.mark.integration

CUSTOMER = CustomerIdentity(wa_id="15551230001")


def order(change: Any, status: str, previous: str | None = None) -> OrderChanged:
    return OrderChanged(
        tenant_id="tnt_a",
        account_id="acc_1",
        change=change,
        occurred_at=T0,
        order=OrderData(
            order_id="ORD-1",
            customer=CUSTOMER,
            status=status,
            previous_status=previous,
            currency="EUR",
            total="12.50",
            amount_paid="12.50" if change == "paid" else None,
            payment_reference="PAY-1",
        ),
    )


def campaign(change: Any, status: str, reason: str | None = None) -> CampaignChanged:
    return CampaignChanged(
        tenant_id="tnt_a",
        account_id="acc_1",
        change=change,
        occurred_at=T0,
        campaign=CampaignData(campaign_id="cmp_1", name="promo", status=status, reason=reason),
    )


def business(field: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "business_event",
        "event_id": uuid.uuid4().hex,
        "tenant_id": "tnt_a",
        "account_id": "acc_1",
        "provider": "meta",
        "field": field,
        "event": data.get("event"),
        "waba_id": ACCOUNTS["acc_1"]["waba_id"],
        "phone_number_id": ACCOUNTS["acc_1"]["phone_number_id"],
        "occurred_at": T0.isoformat(),
        "data": data,
    }


TEMPLATE = {
    "event": "REJECTED",
    "message_template_id": 1001,
    "message_template_name": "promo",
    "message_template_language": "en_US",
    "reason": "INVALID_FORMAT",
}
QUALITY = {"display_phone_number": "15550783881", "event": "FLAGGED", "current_limit": "TIER_1K"}


async def publish_every_fact(h: Harness) -> None:
    await h.publish_fact(
        HandoffRequested(
            tenant_id="tnt_a", account_id="acc_1", customer=CUSTOMER, reason="agent", bot_state="X"
        )
    )
    await h.publish_fact(
        HandoffResolved(
            tenant_id="tnt_a", account_id="acc_1", customer=CUSTOMER, resolved_by="u1", waited_s=42
        )
    )
    await h.publish_fact(order("created", "confirmed"))
    await h.publish_fact(order("status_changed", "shipped", "confirmed"))
    await h.publish_fact(order("paid", "shipped", "shipped"))
    await h.publish_fact(campaign("started", "running"))
    await h.publish_fact(campaign("paused", "paused", "template_paused"))
    await h.publish_fact(campaign("completed", "completed"))
    await h.publish_fact(business("message_template_status_update", TEMPLATE))
    await h.publish_fact(business("phone_number_quality_update", QUALITY))


async def test_every_event_type_delivered_and_verified_with_standardwebhooks(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, list(ALL_EVENT_TYPES))
        await publish_every_fact(harness)
        await harness.publish_status(status="failed", error=(131026, "Undeliverable"))
        await harness.publish_inbound(text="hi")
        await wait_for(lambda: len(receiver.accepted) == len(ALL_EVENT_TYPES), timeout_s=20)

    webhook = Webhook(endpoint["secret"])
    events = {}
    for got in receiver.accepted:
        event = webhook.verify(got.body, got.headers)
        assert event["id"] == got.headers["webhook-id"]
        assert (event["tenant_id"], event["account_id"]) == ("tnt_a", "acc_1")
        assert event["timestamp"]
        events[event["type"]] = event
    assert set(events) == set(ALL_EVENT_TYPES)
    assert events["conversation.handoff_resolved"]["data"]["waited_s"] == 42
    assert events["conversation.handoff_requested"]["data"]["customer"]["wa_id"] == "15551230001"
    assert events["order.created"]["data"]["total"] == "12.50"
    assert events["order.status_changed"]["data"]["previous_status"] == "confirmed"
    assert events["order.paid"]["data"]["amount_paid"] == "12.50"
    assert events["campaign.paused"]["data"]["reason"] == "template_paused"
    assert events["campaign.completed"]["data"]["status"] == "completed"
    template = events["template.status_changed"]["data"]
    assert (template["name"], template["language"], template["status"]) == (
        "promo",
        "en_US",
        "REJECTED",
    )
    assert template["template_id"] == "1001"
    assert template["reason"] == "INVALID_FORMAT"
    quality = events["account.quality_changed"]["data"]
    assert (quality["event"], quality["current_limit"]) == ("FLAGGED", "TIER_1K")
    # per conversation: the customer's hand-offs, orders, status and message count 1, 2, …
    # in one sequence; campaigns and account-level events name no conversation
    customer = [
        e["sequence"]
        for t, e in events.items()
        if t.startswith(("conversation.", "order.", "message."))
    ]
    assert len(customer) == 7
    assert sorted(customer) == list(range(1, len(customer) + 1))
    assert events["campaign.started"]["sequence"] is None
    assert events["template.status_changed"]["sequence"] is None


async def test_an_endpoint_gets_only_its_types_and_unknown_kinds_are_acked(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["order.paid", "campaign.paused"])
        await harness.publish_fact({"kind": "something_new", "tenant_id": "tnt_a"})
        await harness.publish_fact(business("account_update", {"event": "VERIFIED_ACCOUNT"}))
        await harness.publisher.publish(
            topology.EXCHANGE_EVENTS, "tnt_a.acc_1.junk", b"[1, 2]", mandatory=False
        )
        await publish_every_fact(harness)
        await wait_for(lambda: len(receiver.accepted) == 2, timeout_s=20)
        # a known kind that does not validate is parked, and the next one still flows
        await harness.publish_fact({"kind": "order_changed", "event_id": "broken"})
        await harness.publish_fact(campaign("paused", "paused", "operator"))
        await wait_for(lambda: len(receiver.accepted) == 3, timeout_s=20)

    webhook = Webhook(endpoint["secret"])
    types = [webhook.verify(r.body, r.headers)["type"] for r in receiver.accepted]
    assert sorted(types) == ["campaign.paused", "campaign.paused", "order.paid"]
    assert await harness.count("SELECT count(*) FROM events") == 3


async def test_template_and_quality_in_meta_format_verified_with_pywa(harness: Harness):
    receiver = Receiver()
    async with receiver.running():
        endpoint = await harness.create_endpoint(
            receiver.url,
            ["template.status_changed", "account.quality_changed", "order.created"],
            format="meta",
        )
        await publish_every_fact(harness)
        await wait_for(lambda: len(receiver.accepted) == 2, timeout_s=20)

    fields = {}
    for got in receiver.accepted:
        assert webhook_updates_validator(
            endpoint["secret"], got.body, got.headers["x-hub-signature-256"]
        )
        entry = got.json()["entry"][0]
        assert entry["id"] == ACCOUNTS["acc_1"]["waba_id"]
        change = entry["changes"][0]
        fields[change["field"]] = change["value"]
    # Meta's own shape and value; orders have no Meta form (not delivered in ``meta``)
    assert fields == {
        "message_template_status_update": TEMPLATE,
        "phone_number_quality_update": QUALITY,
    }


async def test_producers_learn_the_subscriptions_from_redis(harness: Harness, redis_url: str):
    """The relay keeps each tenant's subscribed event types (enabled endpoints only) in
    the set producers read (``flowchat_platform.subscriptions``)."""
    r = await harness.http.get("/v1/event-types", headers=harness.auth())
    assert r.json()["items"] == list(ALL_EVENT_TYPES)
    redis = create_redis(redis_url)
    view = SubscriptionView(redis, ttl_s=0)
    try:
        first = await harness.create_endpoint(
            "http://127.0.0.1:9/a", ["order.created", "campaign.paused"]
        )
        second = await harness.create_endpoint("http://127.0.0.1:9/b", ["order.paid"])
        assert await view.wants("tnt_a", "order.created")
        assert await view.wants("tnt_a", "order.paid")
        assert not await view.wants("tnt_a", "campaign.started")
        assert not await view.wants("tnt_b", "order.created")
        r = await harness.http.patch(
            f"/v1/endpoints/{first['id']}", json={"enabled": False}, headers=harness.auth()
        )
        assert r.status_code == 200, r.text
        assert not await view.wants("tnt_a", "order.created")
        assert await view.wants("tnt_a", "order.paid")
        r = await harness.http.delete(f"/v1/endpoints/{second['id']}", headers=harness.auth())
        assert r.status_code == 204, r.text
        assert not await view.wants("tnt_a", "order.paid")
        assert not await redis.exists(subscriptions_key("tnt_a"))
        # a set lost from Redis comes back with the periodic sync
        await harness.http.patch(
            f"/v1/endpoints/{first['id']}", json={"enabled": True}, headers=harness.auth()
        )
        await redis.delete(subscriptions_key("tnt_a"))
        await wait_for(lambda: view.wants("tnt_a", "campaign.paused"), timeout_s=5)
    finally:
        await redis.aclose()
