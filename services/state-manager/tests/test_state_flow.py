# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
# (the pyproject relaxes "*.tests.*" for tests; "state-manager" is no package name, so
# mypy names these modules bare and the override misses them: the same settings here)
"""The state-manager end to end on real RabbitMQ and PostgreSQL: statuses in on
flowchat.status, records in the database, changes out on flowchat.events."""

import asyncio
from datetime import UTC, datetime

import pytest

from flowchat_contracts import (
    ProviderError,
    SendResultBatch,
    SendResultBatchV2,
    send_results_in,
    topology,
)
from flowchat_contracts.command_events import CommandParked, MessageStatusChanged

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_normal_flow_accepted_sent_delivered_read(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid, campaign_id="cmp_1"))
    for status in ("sent", "delivered", "read"):
        await harness.publish(harness.status_update(wamid, status))

    message = await harness.message(mid)
    assert message["status"] == "read"
    assert message["provider_message_id"] == wamid
    assert message["campaign_id"] == "cmp_1"
    assert message["recipient"] == "15551230001"
    assert message["error"] is None
    assert await harness.history(mid) == ["accepted", "sent", "delivered", "read"]

    events = await harness.events_for(mid, 4)
    assert [(e["previous_status"], e["status"]) for e in events] == [
        ("queued", "accepted"),
        ("accepted", "sent"),
        ("sent", "delivered"),
        ("delivered", "read"),
    ]
    # a campaign message's statuses carry the fourth word (routing keys v2)
    assert events[-1]["_routing_key"] == topology.status_event_key(
        "tnt_a", "acc_1", "read", campaign=True
    )
    assert events[-1]["_routing_key"] == "tnt_a.acc_1.read.campaign"
    assert {e["campaign_id"] for e in events} == {"cmp_1"}
    assert events[1]["provider_message_id"] == wamid


async def test_read_before_delivered_stays_read_and_keeps_history(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid))
    await harness.publish(harness.status_update(wamid, "sent"))
    await harness.publish(harness.status_update(wamid, "read"))
    await harness.publish(harness.status_update(wamid, "delivered"))

    assert (await harness.message(mid))["status"] == "read"
    # history is in the order FlowChat learned it, and keeps the late delivered
    assert await harness.history(mid) == ["accepted", "sent", "read", "delivered"]
    events = await harness.events_for(mid, 3)
    await asyncio.sleep(0.5)
    events = [e for e in await harness.take_events() if e["message_id"] == mid]
    assert [e["status"] for e in events] == ["accepted", "sent", "read"]


async def test_duplicates_are_ignored_and_published_once(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    result = harness.send_result(mid, wamid)
    delivered = harness.status_update(wamid, "delivered")
    await harness.publish(result, result)
    await harness.publish(harness.status_update(wamid, "sent"))
    # the same event redelivered, and the same status from a second webhook delivery
    await harness.publish(delivered, delivered, harness.status_update(wamid, "delivered"))
    await harness.publish(harness.status_update(wamid, "sent"))

    assert (await harness.message(mid))["status"] == "delivered"
    assert await harness.history(mid) == ["accepted", "sent", "delivered"]
    await harness.events_for(mid, 3)
    await asyncio.sleep(0.5)
    events = [e for e in await harness.take_events() if e["message_id"] == mid]
    assert [e["status"] for e in events] == ["accepted", "sent", "delivered"]
    assert len({e["event_id"] for e in events}) == 3


async def test_status_before_send_result_is_held_then_applied(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(
        harness.status_update(wamid, "sent"), harness.status_update(wamid, "delivered")
    )
    held = await harness.db.fetch(
        "SELECT status FROM pending_statuses WHERE provider_message_id = $1 ORDER BY status",
        wamid,
    )
    assert [r["status"] for r in held] == ["delivered", "sent"]
    r = await harness.http.get(f"/v1/messages/{mid}", headers=harness.auth())
    assert r.status_code == 404

    await harness.publish(harness.send_result(mid, wamid))

    assert (await harness.message(mid))["status"] == "delivered"
    # listed as FlowChat learned them: the held statuses before the send result
    history = await harness.history(mid)
    assert sorted(history[:2]) == ["delivered", "sent"]
    assert history[2] == "accepted"
    assert (
        await harness.db.fetchval(
            "SELECT count(*) FROM pending_statuses WHERE provider_message_id = $1", wamid
        )
        == 0
    )
    events = await harness.events_for(mid, 3)
    assert [e["status"] for e in events] == ["accepted", "sent", "delivered"]


async def test_status_carrying_the_message_id_maps_the_wamid(shared_harness):
    """biz_opaque_callback_data echoes FlowChat's id: a status can map an unmapped message."""
    harness = shared_harness
    mid, wamid = harness.new_ids()
    error = ProviderError(code=131000, title="Something went wrong")
    await harness.publish(harness.send_result(mid, None, status="failed", error=error))
    assert (await harness.message(mid))["status"] == "failed"

    await harness.publish(harness.status_update(wamid, "sent", message_id=mid))

    message = await harness.message(mid)
    assert message["provider_message_id"] == wamid
    assert message["status"] == "failed"  # terminal
    assert message["error"]["code"] == 131000
    assert await harness.history(mid) == ["failed", "sent"]
    events = await harness.events_for(mid, 1)
    assert [e["status"] for e in events] == ["failed"]


async def test_failed_after_sent_is_recorded_as_failed(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid))
    await harness.publish(harness.status_update(wamid, "sent"))
    error = ProviderError(
        code=131026, title="Message undeliverable", details="Receiver is incapable"
    )
    await harness.publish(harness.status_update(wamid, "failed", errors=[error]))
    await harness.publish(harness.status_update(wamid, "delivered"))  # late: history only

    message = await harness.message(mid)
    assert message["status"] == "failed"
    assert message["error"] == {
        "code": 131026,
        "title": "Message undeliverable",
        "details": "Receiver is incapable",
    }
    # the history lists what FlowChat learned, in that order
    assert await harness.history(mid) == ["accepted", "sent", "failed", "delivered"]
    events = await harness.events_for(mid, 3)
    assert [e["status"] for e in events] == ["accepted", "sent", "failed"]
    assert events[-1]["error_code"] == 131026
    assert events[-1]["_routing_key"] == "tnt_a.acc_1.failed"


async def test_malformed_message_is_poisoned_and_the_consumer_goes_on(shared_harness):
    harness = shared_harness
    await harness.poison()  # start from an empty poison queue
    await harness.publish(b'{"kind": "status_update", "tenant_id": "t"}')
    await harness.publish(b"not json at all")
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid))
    assert (await harness.message(mid))["status"] == "accepted"

    parked = await harness.poison()
    assert len(parked) == 2
    reasons = [m.headers["x-flowchat-reason"] for m in parked]
    assert all(r.startswith("invalid:") for r in reasons)
    assert parked[1].body == b"not json at all"


async def test_status_for_another_tenants_message_is_parked(shared_harness):
    harness = shared_harness
    await harness.poison()  # start from an empty poison queue
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid, tenant="tnt_a"))
    await harness.publish(harness.status_update(wamid, "read", tenant="tnt_b"))
    assert (await harness.message(mid))["status"] == "accepted"
    parked = await harness.poison()
    assert len(parked) == 1
    assert "another tenant" in parked[0].headers["x-flowchat-reason"]


async def test_a_batch_of_send_results_records_each_one(shared_harness):
    harness = shared_harness
    ids = [harness.new_ids() for _ in range(3)]
    batch = SendResultBatch(
        tenant_id="tnt_a",
        account_id="acc_1",
        results=[harness.send_result(mid, wamid) for mid, wamid in ids],
    )
    await harness.publish(batch)
    for mid, wamid in ids:
        message = await harness.message(mid)
        assert (message["status"], message["provider_message_id"]) == ("accepted", wamid)
        events = await harness.events_for(mid, 1)
        assert [(e["previous_status"], e["status"]) for e in events] == [("queued", "accepted")]


async def test_a_batch_with_a_rejected_result_is_parked_whole_and_the_rest_recorded(
    shared_harness,
):
    harness = shared_harness
    await harness.poison()  # start from an empty poison queue
    (mine, wamid), (theirs, their_wamid) = harness.new_ids(), harness.new_ids()
    await harness.publish(harness.send_result(theirs, their_wamid, tenant="tnt_b"))
    batch = SendResultBatch(
        tenant_id="tnt_a",
        account_id="acc_1",
        results=[harness.send_result(mine, wamid), harness.send_result(theirs, their_wamid)],
    )
    await harness.publish(batch)
    assert (await harness.message(mine))["status"] == "accepted"
    parked = await harness.poison()
    assert len(parked) == 1
    assert parked[0].headers["x-flowchat-reason"].startswith("1 of 2 results rejected:")
    assert "another tenant" in parked[0].headers["x-flowchat-reason"]
    assert send_results_in(parked[0].body) == batch.results


async def test_a_v2_batch_records_results_of_several_accounts_and_tenants(shared_harness):
    harness = shared_harness
    scopes = [("tnt_a", "acc_1"), ("tnt_a", "acc_2"), ("tnt_b", "acc_9")]
    ids = [harness.new_ids() for _ in scopes]
    batch = SendResultBatchV2(
        results=[
            harness.send_result(mid, wamid, tenant=tenant, account=account)
            for (mid, wamid), (tenant, account) in zip(ids, scopes, strict=True)
        ]
    )
    await harness.publish(batch)
    for (mid, wamid), (tenant, account) in zip(ids, scopes, strict=True):
        message = await harness.message(mid, tenant=tenant)
        assert (message["status"], message["provider_message_id"]) == ("accepted", wamid)
        events = await harness.events_for(mid, 1)
        assert [(e["previous_status"], e["status"]) for e in events] == [("queued", "accepted")]
        # each result's change goes out under its own tenant and account
        assert events[0]["_routing_key"] == topology.events_routing_key(tenant, account, "accepted")


async def test_a_v2_batch_with_a_rejected_result_is_parked_whole_and_the_rest_recorded(
    shared_harness,
):
    harness = shared_harness
    await harness.poison()  # start from an empty poison queue
    (mine, wamid), (theirs, their_wamid) = harness.new_ids(), harness.new_ids()
    (other, other_wamid) = harness.new_ids()
    await harness.publish(harness.send_result(theirs, their_wamid, tenant="tnt_b"))
    batch = SendResultBatchV2(
        results=[
            harness.send_result(mine, wamid),
            harness.send_result(other, other_wamid, account="acc_2"),
            harness.send_result(theirs, their_wamid),  # tnt_b's message claimed by tnt_a
        ]
    )
    await harness.publish(batch)
    assert (await harness.message(mine))["status"] == "accepted"
    assert (await harness.message(other))["status"] == "accepted"
    parked = await harness.poison()
    assert len(parked) == 1
    assert parked[0].headers["x-flowchat-reason"].startswith("1 of 3 results rejected:")
    assert send_results_in(parked[0].body) == batch.results
    # replayed, the recorded ones are applied once: no second event
    await harness.publish(batch)
    assert await harness.history(mine) == ["accepted"]
    assert len(await harness.poison()) == 1


async def test_events_carry_the_commands_idempotency_key_and_correlation_id(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    result = harness.send_result(mid, wamid)
    await harness.publish(result)
    await harness.publish(harness.status_update(wamid, "delivered"))
    events = await harness.events_for(mid, 2)
    assert {e["idempotency_key"] for e in events} == {result.idempotency_key}
    assert {e["correlation_id"] for e in events} == {result.correlation_id}


def command_parked(mid, **kw):
    body = {
        "tenant_id": "tnt_a",
        "account_id": "acc_1",
        "correlation_id": f"corr-{mid}",
        "message_id": mid,
        "idempotency_key": f"key-{mid}",
        "to": "15551230001",
        "message_type": "template",
        "provider": "meta",
        "reason": "retries exhausted after 5 attempts: Service unavailable",
        "error": {"code": 131016, "title": "Service unavailable"},
        "attempts": 5,
        **kw,
    }
    return CommandParked.model_validate(body)


async def test_a_parked_command_is_recorded_parked_with_its_reason_then_a_replay_moves_it_on(
    shared_harness,
):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(command_parked(mid))
    message = await harness.message(mid)
    assert message["status"] == "parked"
    assert message["idempotency_key"] == f"key-{mid}"
    assert message["error"]["code"] == 131016
    assert message["error"]["title"].startswith("retries exhausted after 5 attempts")
    r = await harness.http.get(f"/v1/messages/by-idempotency-key/key-{mid}", headers=harness.auth())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "parked"
    [event] = await harness.events_for(mid, 1)
    assert event["_routing_key"] == topology.events_routing_key("tnt_a", "acc_1", "parked")
    assert (event["previous_status"], event["status"]) == ("queued", "parked")
    assert (event["idempotency_key"], event["correlation_id"]) == (f"key-{mid}", f"corr-{mid}")
    assert event["error_code"] == 131016
    assert event["error_title"].startswith("retries exhausted")
    MessageStatusChanged.model_validate(event)
    # parked again (a second replay failed too): history only, no second event
    await harness.publish(command_parked(mid, attempts=10))
    # the replay went through: the provider's answer moves the message on
    await harness.publish(harness.send_result(mid, wamid))
    events = await harness.events_for(mid, 2)
    assert [(e["previous_status"], e["status"]) for e in events] == [
        ("queued", "parked"),
        ("parked", "accepted"),
    ]
    moved_on = await harness.message(mid)
    assert moved_on["status"] == "accepted"
    assert moved_on["error"] is None  # the parking reason went with the parking


async def test_a_parked_note_after_an_outcome_is_history_only(shared_harness):
    harness = shared_harness
    mid, wamid = harness.new_ids()
    await harness.publish(harness.send_result(mid, wamid))
    await harness.publish(command_parked(mid))
    assert (await harness.message(mid))["status"] == "accepted"
    await asyncio.sleep(0.3)
    events = [e for e in await harness.take_events() if e["message_id"] == mid]
    assert [e["status"] for e in events] == ["accepted"]


async def test_history_is_listed_in_the_order_flowchat_learned_it(shared_harness):
    """Meta's whole-second timestamps put ``accepted`` after ``read``: the history keeps
    the order FlowChat learned the statuses in, Meta's timestamp beside each, by pages."""
    harness = shared_harness
    mid, wamid = harness.new_ids()
    late = datetime(2025, 6, 1, 12, 0, 30, tzinfo=UTC)  # after every status below, per Meta
    await harness.publish(harness.send_result(mid, wamid, at=late))
    for status in ("sent", "delivered", "read"):
        await harness.publish(harness.status_update(wamid, status))

    assert await harness.history(mid) == ["accepted", "sent", "delivered", "read"]
    url, auth = f"/v1/messages/{mid}/events", harness.auth()
    first = (await harness.http.get(url, params={"limit": 3}, headers=auth)).json()
    assert [e["status"] for e in first["items"]] == ["accepted", "sent", "delivered"]
    assert first["items"][0]["provider_timestamp"] == late.isoformat().replace("+00:00", "Z")
    sequences = [e["sequence"] for e in first["items"]]
    assert sequences == sorted(sequences)
    rest = await harness.http.get(url, params={"cursor": first["next_cursor"]}, headers=auth)
    assert [e["status"] for e in rest.json()["items"]] == ["read"]
    assert rest.json()["next_cursor"] is None
    bad = await harness.http.get(url, params={"cursor": "not-ours"}, headers=auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_cursor"
