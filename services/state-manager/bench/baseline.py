"""Baseline for ingest.py on the same machine at the same moment: the platform's
consume → confirmed publish to flowchat.events → ack loop with no database at all
(the floor the state-manager's work sits on). Not a test."""

from __future__ import annotations

import argparse
import asyncio
import time

from bench_common import make_events  # type: ignore[import-not-found]
from flowchat_contracts import StatusEvent, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import temporary_vhost
from pydantic import TypeAdapter


async def main(messages: int, prefetch: int) -> None:
    with temporary_vhost() as url:
        pub = Amqp(url, service="bench-pub")
        await pub.connect()
        ordered = make_events(messages)
        for start in range(0, len(ordered), 400):
            await pub.publish_many(
                (
                    topology.EXCHANGE_STATUS,
                    topology.status_routing_key(e.tenant_id, e.account_id, e.kind),
                    e,
                )
                for e in ordered[start : start + 400]
            )
        total = len(ordered)
        svc = Amqp(url, service="bench-svc")
        await svc.connect()
        done = asyncio.Event()
        count = 0

        async def handle(event: object, message: object) -> None:
            nonlocal count
            await svc.publish(
                topology.EXCHANGE_EVENTS, "t.a.read", b'{"x":1}', message_id="e", mandatory=False
            )
            count += 1
            if count == total:
                done.set()

        t0 = time.perf_counter()
        await svc.consume(
            topology.QUEUE_STATE_STATUS,
            handle,
            decoder=TypeAdapter(StatusEvent),
            prefetch=prefetch,
        )
        await asyncio.wait_for(done.wait(), timeout=600)
        elapsed = time.perf_counter() - t0
        print(
            f"baseline: {total} events consumed+published+acked in {elapsed:.2f}s: "
            f"{total / elapsed:,.0f} events/s"
        )
        await svc.close(grace_s=1)
        await pub.close(grace_s=0)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=2500)
    p.add_argument("--prefetch", type=int, default=256)
    a = p.parse_args()
    asyncio.run(main(a.messages, a.prefetch))
