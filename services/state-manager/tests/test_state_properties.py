# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
# (the pyproject relaxes "*.tests.*" for tests; "state-manager" is no package name, so
# mypy names these modules bare and the override misses them: the same settings here)
"""Property-based tests of the whole status path on real PostgreSQL: any order, any
duplication and any interleaving of one message's events (send result included, so
statuses are sometimes held before the mapping exists) end in the same final
status and the same history, with nothing left pending."""

import asyncio
import itertools

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowchat_state_manager.batching import Batcher
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import Handled, StateService
from flowchat_state_manager.state import Status, final_status

pytestmark = pytest.mark.integration

PROVIDER = ["sent", "delivered", "read", "played", "failed"]
PROFILE = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def scenario(build, data):
    mid, wamid = build.new_ids()
    statuses = data.draw(st.lists(st.sampled_from(PROVIDER), unique=True), label="statuses")
    events = [build.send_result(mid, wamid)]
    for s in statuses:
        echo = data.draw(st.booleans(), label=f"{s} carries message id")
        events.append(build.status_update(wamid, s, message_id=mid if echo else None))
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=4), label="duplicates")
    order = data.draw(st.permutations(events + dupes), label="order")
    expected = ["accepted", *sorted(statuses, key=PROVIDER.index)]
    return mid, wamid, order, expected


async def apply(service, event):
    if event.kind == "send_result":
        await service.record_send_result(event)
    else:
        await service.record_status(event)


async def check(pool, mid, wamid, expected):
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM messages WHERE id = $1", mid)
        history = await conn.fetch(
            "SELECT status FROM message_events WHERE message_id = $1 "
            "ORDER BY provider_timestamp, id",
            mid,
        )
        pending = await conn.fetchval(
            "SELECT count(*) FROM pending_statuses WHERE provider_message_id = $1", wamid
        )
        bodies = await conn.fetch("SELECT body FROM outbox ORDER BY id")
    final = final_status(Status(s) for s in expected)
    assert final is not None
    assert status == final.value
    # history in provider-timestamp order: the events' timestamps follow the happy path
    assert [r["status"] for r in history] == expected
    assert pending == 0
    changes = [e for e in (orjson.loads(b["body"]) for b in bodies) if e["message_id"] == mid]
    # one event per change, each a real move, the last one the final status
    assert changes
    assert all(c["status"] != c["previous_status"] for c in changes)
    assert len({c["status"] for c in changes}) == len(changes)
    assert changes[-1]["status"] == final.value
    for before, after in itertools.pairwise(changes):
        assert after["previous_status"] == before["status"]


@PROFILE
@given(data=st.data())
async def test_any_order_and_duplication_same_state_and_history(state_pool, build, data):
    service = StateService(Repository(state_pool))
    mid, wamid, order, expected = scenario(build, data)
    for event in order:
        await apply(service, event)
    await check(state_pool, mid, wamid, expected)


@PROFILE
@given(data=st.data())
async def test_concurrent_events_for_one_message_serialize(state_pool, build, data):
    service = StateService(Repository(state_pool))
    mid, wamid, order, expected = scenario(build, data)
    await asyncio.gather(*(apply(service, e) for e in order))
    await check(state_pool, mid, wamid, expected)


@PROFILE
@given(data=st.data())
async def test_batched_transactions_same_state_and_history(state_pool, build, data):
    """Several events per transaction (batched writes), cut anywhere."""
    service = StateService(Repository(state_pool))
    mid, wamid, order, expected = scenario(build, data)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order) - 1))), label="cuts"))
    for start, end in zip([0, *cuts], [*cuts, len(order)], strict=True):
        if order[start:end]:
            await service.apply_batch(order[start:end])
    await check(state_pool, mid, wamid, expected)


@PROFILE
@given(data=st.data())
async def test_batcher_under_concurrency_same_state_and_history(state_pool, build, data):
    """Two messages' events submitted all at once through the batching workers (with and
    without a linger under load)."""
    service = StateService(Repository(state_pool))
    linger = data.draw(st.sampled_from([0.0, 0.005]), label="linger")
    batcher = Batcher(service, workers=2, max_batch=4, linger_s=linger)
    first, second = scenario(build, data), scenario(build, data)
    mixed = data.draw(st.permutations(first[2] + second[2]), label="interleaving")
    runner = asyncio.create_task(batcher.run())
    try:
        await asyncio.gather(*(batcher.submit(e) for e in mixed))
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    for mid, wamid, _, expected in (first, second):
        await check(state_pool, mid, wamid, expected)


async def test_a_rejected_event_fails_alone_in_its_batch(state_pool, build):
    service = StateService(Repository(state_pool))
    mid, wamid = build.new_ids()
    await service.apply(build.send_result(mid, wamid))
    other_mid, other_wamid = build.new_ids()
    batch = [
        build.status_update(wamid, "sent"),
        build.status_update(wamid, "delivered", tenant="tnt_other"),  # not its tenant
        build.send_result(other_mid, other_wamid),
        build.status_update(wamid, "read"),
    ]
    batcher = Batcher(service, workers=1, max_batch=10)
    futures = [asyncio.ensure_future(batcher.submit(e)) for e in batch]  # queued together
    runner = asyncio.create_task(batcher.run())
    try:
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert isinstance(results[1], RejectedEvent)
    assert [r.outcomes for i, r in enumerate(results) if i != 1 and isinstance(r, Handled)] == [
        [("sent", "applied")],
        [("accepted", "applied")],
        [("read", "applied")],
    ]
    statuses = dict(await state_pool.fetch("SELECT id, status FROM messages"))
    assert statuses == {mid: "read", other_mid: "accepted"}
