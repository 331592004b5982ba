"""Order per recipient and the priority gate, on their own (no I/O)."""

from __future__ import annotations

import asyncio

from flowchat_contracts import topology
from flowchat_sender.lanes import PriorityGate, RecipientOrder


async def test_one_recipient_in_call_order_others_concurrently() -> None:
    order = RecipientOrder()
    log: list[str] = []
    running = 0
    most = 0
    release = asyncio.Event()

    async def work(key: str, name: str, hold: bool) -> None:
        nonlocal running, most
        previous, mine = order.take(key)  # before any await, like the consumer
        try:
            await order.wait(previous)
            running += 1
            most = max(most, running)
            if hold:
                await release.wait()  # the first of each key is slow
            await asyncio.sleep(0)
            log.append(name)
            running -= 1
        finally:
            order.done(key, mine)

    tasks = [
        asyncio.create_task(work(key, f"{key}{i}", hold=i == 0))
        for i in range(4)
        for key in ("a", "b")
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == []  # both heads hold their keys: nothing behind them ran
    assert most == 2  # ... while the two keys ran side by side
    release.set()
    await asyncio.gather(*tasks)
    assert [n for n in log if n[0] == "a"] == ["a0", "a1", "a2", "a3"]
    assert [n for n in log if n[0] == "b"] == ["b0", "b1", "b2", "b3"]
    assert len(order) == 0  # no key left behind


async def test_a_cancelled_turn_lets_the_next_one_go() -> None:
    order = RecipientOrder()
    first_prev, first = order.take("k")
    second_prev, second = order.take("k")
    third_prev, third = order.take("k")
    waiting = asyncio.create_task(order.wait(second_prev))
    await asyncio.sleep(0)
    waiting.cancel()  # the second command is cancelled while it waits ...
    order.done("k", second)
    assert not first.done()  # ... which never cancels the first one's turn
    order.done("k", first)
    await asyncio.wait_for(order.wait(third_prev), 1)  # the third may go
    order.done("k", third)
    assert first_prev is None
    assert len(order) == 0


async def test_bulk_waits_for_transactional_work_and_keeps_its_order() -> None:
    gate = PriorityGate(hold_at=1)
    started: list[int] = []

    async def bulk(i: int) -> None:
        await gate.turn()
        started.append(i)

    await bulk(0)  # nothing transactional: straight through
    gate.enter()  # a transactional command starts
    tasks = [asyncio.create_task(bulk(i)) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    assert started == [0]
    assert gate.waiting == 3
    gate.enter()
    gate.leave()
    await asyncio.sleep(0.01)
    assert started == [0]  # one transactional command still under way
    gate.leave()
    late = asyncio.create_task(bulk(4))  # arrives before the woken ones have run
    await asyncio.gather(*tasks, late)
    assert started == [0, 1, 2, 3, 4]
    assert gate.waiting == 0


async def test_hold_at_lets_bulk_run_beside_a_few_transactional_commands() -> None:
    gate = PriorityGate(hold_at=3)
    gate.enter()
    gate.enter()
    await asyncio.wait_for(gate.turn(), 1)
    gate.enter()
    waiter = asyncio.create_task(gate.turn())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    gate.leave()
    await asyncio.wait_for(waiter, 1)


def test_marketing_has_its_own_lane_and_retry_tiers() -> None:
    key = topology.outbound_routing_key("t.1", "a", "marketing")
    assert key == "t_1.a.bulk"
    assert topology.outbound_routing_key("t.1", "a", "utility") == "t_1.a"
    assert topology.outbound_routing_key("t", "a") == "t.a"
    assert topology.outbound_queue("marketing") == topology.QUEUE_OUTBOUND_BULK
    assert topology.outbound_queue("authentication") == topology.QUEUE_OUTBOUND
    bindings = {(b.queue, b.routing_key) for b in topology.ALL_BINDINGS}
    assert (topology.QUEUE_OUTBOUND, "*.*") in bindings
    assert (topology.QUEUE_OUTBOUND_BULK, "*.*.bulk") in bindings
    bulk_tier = topology.retry_tier_for(6, queue=topology.QUEUE_OUTBOUND_BULK)
    assert bulk_tier.queue == "whatsapp.outbound.bulk.retry.30s"
    assert bulk_tier.spec().arguments["x-dead-letter-routing-key"] == topology.QUEUE_OUTBOUND_BULK
    assert topology.retry_tier_for(6).queue == "whatsapp.outbound.retry.30s"


def test_a_wait_that_may_end_early_takes_the_longest_tier_within_it() -> None:
    waits = (0.5, 1.5, 6, 100, 9999)
    at_most = [topology.retry_tier_for(s, at_most=True).delay_s for s in waits]
    assert at_most == [1, 1, 5, 30, 3600]
    bulk = topology.retry_tier_for(6, queue=topology.QUEUE_OUTBOUND_BULK, at_most=True)
    assert bulk.queue == "whatsapp.outbound.bulk.retry.5s"
