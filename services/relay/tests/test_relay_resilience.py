"""Delivery under trouble: a receiver down for a while, a black-holed and a failing
endpoint beside a healthy one, 410 Gone, retries until the window ends, replays,
Retry-After, endpoints disabled after failing for too long, malformed queue messages."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY
from relay_testkit import Harness, Receiver, StartRelay, wait_for

from flowchat_contracts import topology
from flowchat_platform.errors import HEADER_REASON
from flowchat_platform.testing import drain_queue


async def test_a_receiver_down_for_a_while_gets_everything_once_after_it_returns(
    harness: Harness,
):
    receiver = Receiver()
    endpoint = await harness.create_endpoint(receiver.url, ["message.status"])
    sent = [await harness.publish_status() for _ in range(10)]
    # nobody listens: every attempt is refused and retried
    await wait_for(
        lambda: harness.count("SELECT count(*) FROM attempts WHERE outcome = 'retry'"),
    )
    await wait_for(
        lambda: harness.count("SELECT count(DISTINCT delivery_id) FROM attempts"),
    )
    await asyncio.sleep(1.0)
    async with receiver.running():
        await wait_for(lambda: len(receiver.accepted) >= 10, timeout_s=15)
        await asyncio.sleep(1.0)  # nothing more comes
    assert sorted(receiver.ids()) == sorted(f"evt_{s['event_id']}" for s in sent)
    log = await harness.attempts(endpoint["id"])
    assert {a["error"] for a in log if a["outcome"] == "retry"} == {"connection failed"}
    assert await harness.count("SELECT count(*) FROM deliveries WHERE status = 'delivered'") == 10


async def test_a_black_holed_and_a_failing_endpoint_never_delay_a_healthy_one(
    start_relay: StartRelay,
):
    healthy, black_hole, failing = Receiver(), Receiver(hang=True), Receiver(status=500)
    async with (
        healthy.running(),
        black_hole.running(),
        failing.running(),
        start_relay(total_timeout_s=30.0, endpoint_concurrency=2) as h,
    ):
        await h.create_endpoint(black_hole.url, ["message.status"])
        await h.create_endpoint(failing.url, ["message.status"])
        await h.create_endpoint(healthy.url, ["message.status"])
        # the black hole's lanes fill first and stay stuck for the whole test
        started = time.monotonic()
        for _ in range(20):
            await h.publish_status()
        await wait_for(lambda: len(healthy.accepted) == 20, timeout_s=10)
        took = time.monotonic() - started
        # its concurrency cap: 2 in flight, the 18 others waiting behind them
        await wait_for(lambda: len(black_hole.got) == 2)
        await asyncio.sleep(0.5)
        assert len(black_hole.got) == 2
        assert failing.got  # failing, retried, never in the way
    assert took < 5.0, took


async def test_410_gone_disables_the_endpoint_at_once(harness: Harness):
    receiver = Receiver(status=410)
    async with receiver.running():
        endpoint = await harness.create_endpoint(receiver.url, ["message.status"])
        await harness.publish_status()
        shown = await wait_for(
            lambda: _disabled(harness, endpoint["id"]),
        )
        await harness.publish_status()
        await asyncio.sleep(0.5)
    assert shown["disabled_reason"] == "gone"
    assert len(receiver.got) == 1
    # a disabled endpoint subscribes to nothing: the second event was not stored
    assert await harness.count("SELECT count(*) FROM events") == 1
    metric = REGISTRY.get_sample_value(
        "flowchat_relay_endpoints_disabled_total", {"reason": "gone"}
    )
    assert metric is not None
    assert metric >= 1


async def _disabled(harness: Harness, endpoint_id: str) -> dict[str, object] | None:
    shown = await harness.endpoint(endpoint_id)
    return shown if not shown["enabled"] else None


async def test_failed_after_the_retry_window_then_replayed(start_relay: StartRelay):
    receiver = Receiver(status=503, answer=b"busy")
    async with receiver.running(), start_relay(retry_for_s=1.0) as h:
        endpoint = await h.create_endpoint(receiver.url, ["message.status"])
        sent = await h.publish_status()
        await wait_for(
            lambda: h.count("SELECT count(*) FROM deliveries WHERE status = 'failed'"),
        )
        log = await h.attempts(endpoint["id"])
        assert len(log) >= 2  # retried before it failed
        assert log[0]["outcome"] == "failed"
        assert log[0]["response"] == "busy"
        assert all(a["status_code"] == 503 for a in log)
        attempts_before = len(receiver.got)

        receiver.status = 200
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        r = await h.http.post(
            f"/v1/endpoints/{endpoint['id']}/replay", json={"since": since}, headers=h.auth()
        )
        assert r.status_code == 202, r.text
        assert r.json() == {"replayed": 1}
        await wait_for(lambda: receiver.accepted)
        assert receiver.ids() == [f"evt_{sent['event_id']}"]
        assert len(receiver.got) == attempts_before + 1

        # replay one delivery by its id (from the log)
        delivery_id = log[0]["delivery_id"]
        r = await h.http.post(
            f"/v1/endpoints/{endpoint['id']}/deliveries/{delivery_id}/replay", headers=h.auth()
        )
        assert r.status_code == 202
        await wait_for(lambda: len(receiver.accepted) == 2)
        r = await h.http.post(
            f"/v1/endpoints/{endpoint['id']}/deliveries/999999/replay", headers=h.auth()
        )
        assert r.status_code == 404


async def test_retry_after_is_honoured(start_relay: StartRelay):
    receiver = Receiver(status=429, headers={"Retry-After": "2"})
    async with receiver.running(), start_relay(backoff_base_s=0.05, max_backoff_s=0.05) as h:
        await h.create_endpoint(receiver.url, ["message.status"])
        await h.publish_status()
        await wait_for(lambda: len(receiver.got) >= 2, timeout_s=10)
    gap = receiver.got[1].at - receiver.got[0].at
    assert gap >= 1.9, gap


async def test_an_endpoint_failing_everything_for_too_long_is_disabled(start_relay: StartRelay):
    receiver = Receiver(status=500)
    async with receiver.running(), start_relay(disable_after_s=1.0) as h:
        endpoint = await h.create_endpoint(receiver.url, ["message.status"])
        await h.publish_status()
        shown = await wait_for(lambda: _disabled(h, endpoint["id"]), timeout_s=10)
        assert shown["disabled_reason"] == "failing"
        # enabled again by the tenant: the pending delivery goes out
        receiver.status = 200
        r = await h.http.patch(
            f"/v1/endpoints/{endpoint['id']}", json={"enabled": True}, headers=h.auth()
        )
        assert r.json()["enabled"] is True
        assert r.json()["disabled_reason"] is None
        await wait_for(lambda: receiver.accepted)


async def test_a_malformed_status_event_is_parked_and_the_consumer_carries_on(
    harness: Harness,
):
    receiver = Receiver()
    async with receiver.running():
        await harness.create_endpoint(receiver.url, ["message.status"])
        await harness.publisher.publish(
            topology.EXCHANGE_EVENTS,
            "tnt_a.acc_1.delivered",
            orjson.dumps({"kind": "message_status_changed", "tenant_id": "tnt_a"}),
            mandatory=False,
        )
        await harness.publisher.publish(
            topology.EXCHANGE_EVENTS, "tnt_a.acc_1.x", b"not json", mandatory=False
        )
        # a business event of the gateway: not a webhook event yet, acked and dropped
        await harness.publisher.publish(
            topology.EXCHANGE_EVENTS,
            "tnt_a.acc_1.account_update",
            orjson.dumps({"kind": "business_event", "tenant_id": "tnt_a"}),
            mandatory=False,
        )
        good = await harness.publish_status()
        await wait_for(lambda: receiver.accepted)
    assert receiver.ids() == [f"evt_{good['event_id']}"]
    assert await harness.count("SELECT count(*) FROM events") == 1


async def test_poison_holds_the_malformed_ones(start_relay: StartRelay, amqp_url: str):
    async with start_relay() as h:
        await h.publisher.publish(
            topology.EXCHANGE_EVENTS,
            "tnt_a.acc_1.delivered",
            orjson.dumps({"kind": "message_status_changed", "tenant_id": "tnt_a"}),
            mandatory=False,
        )
        await h.publisher.publish(
            topology.EXCHANGE_INBOUND, "tnt_a.acc_1.text", b"{}", mandatory=False
        )

        seen: list[AbstractIncomingMessage] = []

        async def parked() -> bool:
            seen.extend(await drain_queue(amqp_url, topology.QUEUE_POISON))
            return len(seen) >= 2

        await wait_for(parked)
        reasons = sorted(str((m.headers or {}).get(HEADER_REASON, "")) for m in seen)
        assert any("message_status_changed" in r for r in reasons), reasons


def _oldest(endpoint_id: str) -> float | None:
    return REGISTRY.get_sample_value(
        "flowchat_relay_oldest_undelivered_seconds", {"endpoint": endpoint_id}
    )


async def test_oldest_undelivered_age_per_endpoint_and_gone_with_the_endpoint(
    harness: Harness,
):
    down, up = Receiver(), Receiver()
    async with up.running():
        stuck = await harness.create_endpoint(down.url, ["message.status"])
        fine = await harness.create_endpoint(up.url, ["message.status"])
        await harness.publish_status()
        await wait_for(lambda: up.accepted)
        await wait_for(lambda: (_oldest(stuck["id"]) or 0) > 0.5)
        assert _oldest(fine["id"]) == 0
        r = await harness.http.delete(f"/v1/endpoints/{stuck['id']}", headers=harness.auth())
        assert r.status_code == 204
        await wait_for(lambda: _oldest(stuck["id"]) is None)
    outcomes = {
        o: REGISTRY.get_sample_value("flowchat_relay_deliveries_total", {"outcome": o})
        for o in ("delivered", "retry")
    }
    assert all(v and v > 0 for v in outcomes.values()), outcomes
