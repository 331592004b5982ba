"""Ingest benchmark: status events/s through the state-manager (not a test).

Pre-loads ``flowchat.status`` with ``--messages`` messages x 4 events (send result,
sent, delivered, read) on a fresh vhost and database, then starts the service and
times until every message is ``read`` and the outbox is empty (every change
published with a confirm). Run: ``uv run python services/state-manager/bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
import httpx
from bench_common import make_events  # type: ignore[import-not-found]
from flowchat_contracts import topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import eventually, serve, temporary_database, temporary_vhost
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import create_app
from flowchat_state_manager.settings import Settings


async def main(
    messages: int, prefetch: int, pool: int, verbose: bool = False, waves: bool = True
) -> None:
    with temporary_vhost() as amqp_url:
        async with temporary_database() as dsn:
            publisher = Amqp(amqp_url, service="bench")
            await publisher.connect()
            started = time.perf_counter()
            ordered = make_events(messages, waves=waves)
            for start in range(0, len(ordered), 400):
                await publisher.publish_many(
                    (
                        topology.EXCHANGE_STATUS,
                        topology.status_routing_key(ev.tenant_id, ev.account_id, ev.kind),
                        ev,
                    )
                    for ev in ordered[start : start + 400]
                )
            total = messages * 4
            print(f"pre-loaded {total} events in {time.perf_counter() - started:.1f}s")
            await publisher.close(grace_s=0)

            settings = Settings(  # type: ignore[call-arg]
                AMQP_URL=amqp_url,
                DATABASE_URL=dsn,
                FLOWCHAT_SERVICE_TOKEN="bench-token-0123456789",  # noqa: S106 - a local bench
                FLOWCHAT_ENV="test",
                LOG_LEVEL="WARNING",
                prefetch=prefetch,
                db_pool_size=pool,
            )
            db = await asyncpg.connect(dsn)
            try:
                async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as h:

                    async def consuming() -> bool:
                        return (await h.get("/readyz")).status_code == 200

                    await eventually(consuming, timeout_s=60, interval_s=0.01)
                    t0 = time.perf_counter()

                    async def done() -> bool:
                        read = await db.fetchval(
                            f"SELECT count(*) FROM {SCHEMA}.messages WHERE status = 'read'"  # noqa: S608
                        )
                        backlog = await db.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox")  # noqa: S608
                        return bool(read == messages and backlog == 0)

                    from prometheus_client import REGISTRY

                    def consumed() -> bool:
                        n = REGISTRY.get_sample_value(
                            "flowchat_amqp_consumed_total",
                            {
                                "service": "state-manager",
                                "queue": topology.QUEUE_STATE_STATUS,
                                "fate": "ack",
                            },
                        )
                        return (n or 0) >= total

                    await eventually(consumed, timeout_s=600, interval_s=0.02)
                    acked = time.perf_counter() - t0
                    await eventually(done, timeout_s=600, interval_s=0.05)
                    elapsed = time.perf_counter() - t0
                    print(f"all acked after {acked:.2f}s: {total / acked:,.0f} events/s")
                    pending = await db.fetchval(
                        f"SELECT count(*) FROM {SCHEMA}.pending_statuses"  # noqa: S608
                    )
                    print(
                        f"ingested {total} events ({messages} messages) in {elapsed:.2f}s: "
                        f"{total / elapsed:,.0f} events/s with every change published; "
                        f"pending left {pending}"
                    )
            finally:
                await db.close()
            if verbose:
                from prometheus_client import REGISTRY

                for metric in REGISTRY.collect():
                    if metric.name.startswith(
                        (
                            "flowchat_amqp_published",
                            "flowchat_amqp_consumed",
                            "flowchat_state_manager",
                        )
                    ):
                        for sample in metric.samples:
                            if sample.name.endswith(("_total", "_sum", "_count")) and sample.value:
                                print(sample.name, sample.labels, sample.value)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--prefetch", type=int, default=64)
    p.add_argument("--pool", type=int, default=10)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--grouped", action="store_true", help="each message's events adjacent")
    a = p.parse_args()
    asyncio.run(main(a.messages, a.prefetch, a.pool, a.verbose, not a.grouped))
