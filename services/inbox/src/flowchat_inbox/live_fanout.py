"""Live updates across replicas, through the broker.

Every replica's writers and agents' actions publish their live updates to the fanout
exchange ``inbox.live`` (transient messages, no confirms: a live update lost with a
broker restart is what a stream's reconnect-and-page covers); every replica consumes
them from an exclusive, auto-deleted queue of its own and hands them to its
:class:`~flowchat_inbox.live.LiveHub`, whose streams filter by tenant. So an agent's
stream on one replica sees a claim made on another, and a message ingested by either.

:meth:`BrokerLive.publish` is synchronous (the :class:`~flowchat_inbox.ports.Live`
port): it queues the update for a background task; a full buffer drops (counted) rather
than holding the writers back. The replica's queue is bounded too (``x-max-length``,
oldest dropped): a slow replica does not grow the broker's memory.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from flowchat_inbox import metrics
from flowchat_inbox.live import LiveHub
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

EXCHANGE_LIVE = "inbox.live"
#: Most updates waiting in a replica's queue before the oldest are dropped.
QUEUE_MAX = 10_000


class BrokerLive:
    def __init__(self, hub: LiveHub, amqp_url: str, *, buffer: int = 10_000) -> None:
        self.hub = hub
        self._url = amqp_url
        self._out: asyncio.Queue[bytes] = asyncio.Queue(buffer)
        self._conn: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None

    @property
    def ready(self) -> bool:
        return self._conn is not None and not self._conn.is_closed

    def publish(self, tenant_id: str, event: dict[str, Any]) -> None:
        try:
            self._out.put_nowait(orjson.dumps({"tenant_id": tenant_id, "event": event}))
        except asyncio.QueueFull:
            metrics.LIVE_DROPPED.labels("buffer_full").inc()

    async def start(self) -> None:
        """Connect, declare the exchange and this replica's queue, and consume it."""
        self._conn = await aio_pika.connect_robust(self._url, client_properties={"name": "inbox"})
        out = await self._conn.channel(publisher_confirms=False)
        self._exchange = await out.declare_exchange(
            EXCHANGE_LIVE, aio_pika.ExchangeType.FANOUT, durable=True
        )
        inbound = await self._conn.channel()
        await inbound.set_qos(prefetch_count=1000)
        exchange = await inbound.get_exchange(EXCHANGE_LIVE)
        queue = await inbound.declare_queue(
            exclusive=True,
            auto_delete=True,
            arguments={"x-max-length": QUEUE_MAX, "x-overflow": "drop-head"},
        )
        await queue.bind(exchange)
        await queue.consume(self._on_message, no_ack=True)

    async def run(self) -> None:
        """Publish queued updates to the exchange (a background task)."""
        while True:
            body = await self._out.get()
            try:
                assert self._exchange is not None
                await self._exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                    routing_key="",
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a live update is best effort
                metrics.LIVE_DROPPED.labels("publish_failed").inc()
                log.warning("live update not published", error=repr(exc))

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            data = orjson.loads(message.body)
            tenant_id, event = data["tenant_id"], data["event"]
            if not isinstance(tenant_id, str) or not isinstance(event, dict):
                raise TypeError("not a live update")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            metrics.LIVE_DROPPED.labels("invalid").inc()
            return
        self.hub.publish(tenant_id, event)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
