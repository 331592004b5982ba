import asyncio

from flowchat_conversation.commerce.orders import order_ids
from flowchat_conversation.commerce.service import KeyedLocks


async def test_keyed_locks_are_fifo_per_key_and_forgotten():
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key, name, delay):
        async with locks.hold(key):
            await asyncio.sleep(delay)
            order.append(name)

    tasks = [
        asyncio.create_task(work("a", "a1", 0.05)),
        asyncio.create_task(work("a", "a2", 0)),
        asyncio.create_task(work("b", "b1", 0)),
        asyncio.create_task(work("a", "a3", 0)),
    ]
    await asyncio.gather(*tasks)
    assert [n for n in order if n.startswith("a")] == ["a1", "a2", "a3"]
    assert order.index("b1") < order.index("a1")  # other keys are not blocked
    assert len(locks) == 0


def test_order_ids_are_deterministic_per_message():
    assert order_ids("t1", "wamid.1") == order_ids("t1", "wamid.1")
    assert order_ids("t1", "wamid.1") != order_ids("t2", "wamid.1")
    order_id, reference = order_ids("t1", "wamid.1")
    assert order_id.startswith("ORD-")
    assert reference.startswith("PAY-")
