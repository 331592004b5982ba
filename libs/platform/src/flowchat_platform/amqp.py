"""RabbitMQ helpers: connect with backoff, declare the topology, publish with
confirms and a deadline, consume with manual acks and message fates.

Rules (DESIGN.md): persistent messages, publisher confirms with ``mandatory`` (an
unroutable message raises), separate publish and consume connections, strong
references to channels, every publish bounded by a timeout, acks only after the
handler's effect is durable, undecodable messages parked in ``flowchat.poison``
with the reason and the consumer carrying on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import aio_pika
import aiormq
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from pydantic import BaseModel, TypeAdapter, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from flowchat_contracts import topology
from flowchat_platform import metrics
from flowchat_platform.errors import (
    HEADER_ATTEMPT,
    HEADER_ORIGIN_QUEUE,
    HEADER_REASON,
    DeadLetter,
    Discard,
    MessageFate,
    PublishError,
    RetryLater,
)
from flowchat_platform.logs import bind_in_task, get_logger
from flowchat_platform.transient import is_transient

log = get_logger(__name__)

T = TypeVar("T")

__all__ = [
    "EXCHANGES",
    "HEADER_ATTEMPT",
    "HEADER_ORIGIN_QUEUE",
    "HEADER_REASON",
    "PERSISTENT",
    "Amqp",
    "ConsumerHandle",
    "declare_own_queues",
    "declare_topology",
    "encode",
    "loads",
]

PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
#: Exchanges a client publishes to: the topology's and the default one.
EXCHANGES = frozenset({"", *(spec.name for spec in topology.ALL_EXCHANGES)})


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()


class Amqp:
    """One service's broker client: a publish connection and a consume connection."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        publish_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        declare: bool = True,
        queue_stats_interval_s: float = 15.0,
        transient_retry_max_s: float = 5.0,
        transient_retry_for_s: float = 600.0,
        nack_reopen_interval_s: float = 1.0,
    ) -> None:
        self.url = url
        #: After a ``basic.nack`` or a publish not confirmed in time, the publish channel
        #: is replaced by a new one, at most once per ``nack_reopen_interval_s`` (see
        #: :meth:`_replace_pub_channel`).
        self.nack_reopen_interval_s = nack_reopen_interval_s
        #: A handler failing because a dependency is unavailable runs again in place,
        #: backing off up to ``transient_retry_max_s``, for up to ``transient_retry_for_s``
        #: (then the message goes back to its queue, one delivery spent).
        self.transient_retry_max_s = transient_retry_max_s
        self.transient_retry_for_s = transient_retry_for_s
        self.service = service
        self.publish_timeout_s = publish_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.declare = declare
        self._pub_conn: AbstractRobustConnection | None = None
        self._sub_conn: AbstractRobustConnection | None = None
        self._pub_channel: AbstractChannel | None = None
        #: The first publish channel (the topology was declared on it, and aio-pika
        #: declares it again through it after a reconnect): kept open when replaced.
        self._declared_channel: AbstractChannel | None = None
        self._reopened_at = float("-inf")
        self._reopening: asyncio.Task[None] | None = None
        self._retired: set[asyncio.Task[None]] = set()
        self._consumers: list[_Consumer[Any]] = []
        self._connected = asyncio.Event()
        #: Queues whose depth is exported (consumed queues and where they park), in order.
        self._watched: dict[str, None] = {}
        self.queue_stats_interval_s = queue_stats_interval_s
        self._stats_task: asyncio.Task[None] | None = None
        self._stats_stop = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Connect (retrying with backoff until it works) and declare the topology."""
        async for attempt in AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=10),
            retry=retry_if_exception_type((OSError, aio_pika.exceptions.AMQPError, TimeoutError)),
            before_sleep=lambda rs: log.warning(
                "broker unavailable, retrying",
                attempt=rs.attempt_number,
                error=repr(rs.outcome.exception()) if rs.outcome else None,
            ),
        ):
            with attempt:
                await self._connect_once()
        self._connected.set()
        metrics.AMQP_CONNECTED.labels(self.service).set(1)
        log.info("broker connected")

    async def _connect_once(self) -> None:
        await self._close_connections()
        props: dict[str, Any] = {"connection_name": f"{self.service}-publish"}
        self._pub_conn = await aio_pika.connect_robust(
            self.url, timeout=self.connect_timeout_s, client_properties=props
        )
        self._sub_conn = await aio_pika.connect_robust(
            self.url,
            timeout=self.connect_timeout_s,
            client_properties={"connection_name": f"{self.service}-consume"},
        )
        self._pub_channel = await self._pub_conn.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._declared_channel = self._pub_channel
        if self.declare:
            await declare_topology(self._pub_channel)

    @property
    def ready(self) -> bool:
        return (
            self._connected.is_set()
            and self._pub_conn is not None
            and not self._pub_conn.is_closed
            and self._sub_conn is not None
            and not self._sub_conn.is_closed
            and self._pub_channel is not None
            and not self._pub_channel.is_closed
        )

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def stop_consuming(self, grace_s: float) -> None:
        """Cancel every consumer, then wait (up to ``grace_s``) for in-flight handlers."""
        await self._stop_queue_stats()
        for consumer in self._consumers:
            if consumer.return_on_stop:
                await consumer.release()
            else:
                await consumer.cancel()
        deadline = time.monotonic() + grace_s
        for consumer in self._consumers:
            await consumer.drain(max(0.0, deadline - time.monotonic()))

    async def close(self, grace_s: float = 10.0) -> None:
        await self.stop_consuming(grace_s)
        await self._close_connections()
        metrics.AMQP_CONNECTED.labels(self.service).set(0)

    async def _close_connections(self) -> None:
        for task in (self._reopening, *self._retired):
            if task is not None and not task.done():
                task.cancel()
        for conn in (self._sub_conn, self._pub_conn):
            if conn is not None and not conn.is_closed:
                try:
                    await asyncio.wait_for(conn.close(), timeout=5)
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    log.warning("broker close failed", error=repr(exc))
        self._sub_conn = self._pub_conn = None
        self._pub_channel = self._declared_channel = None

    # ------------------------------------------------------------ publish

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | BaseModel,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        message_type: str | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        Raises :class:`PublishError` when the broker is unreachable, nacks, returns the
        message as unroutable, or does not confirm within the deadline. ``mandatory=False``
        is for fan-out events that may have no subscriber yet (``flowchat.events``): an
        unroutable message is then confirmed and dropped by the broker instead of raising.
        """
        data = encode(body) if isinstance(body, BaseModel) else body
        if message_type is None and isinstance(body, BaseModel):
            message_type = getattr(body, "kind", None)
        # Straight to the channel's aiormq layer (what aio-pika's Exchange.publish ends in):
        # aio-pika's Message object cost a third of every publish (benchmarks, #6).
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=PERSISTENT,
            message_id=message_id,
            correlation_id=correlation_id,
            headers=headers or {},
            message_type=message_type,
            app_id=self.service,
        )
        timeout = self.publish_timeout_s if timeout_s is None else timeout_s
        label = exchange or "(default)"
        started = time.perf_counter()
        try:
            channel = self._pub_channel if self.ready and exchange in EXCHANGES else None
            if channel is None:
                raise PublishError(
                    "broker not connected", exchange=exchange, routing_key=routing_key
                )
            async with asyncio.timeout(timeout):  # no task per publish (wait_for makes one)
                underlay = await channel.get_underlay_channel()
                await underlay.basic_publish(
                    data,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                )
        except PublishError:
            metrics.AMQP_PUBLISHED.labels(self.service, label, "failed").inc()
            raise
        except (TimeoutError, asyncio.CancelledError) as exc:
            metrics.AMQP_PUBLISHED.labels(self.service, label, "timeout").inc()
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._replace_pub_channel(channel, "confirm timeout")
            raise PublishError(
                f"publish not confirmed within {timeout}s",
                exchange=exchange,
                routing_key=routing_key,
            ) from exc
        except Exception as exc:
            metrics.AMQP_PUBLISHED.labels(self.service, label, "failed").inc()
            if isinstance(exc, aiormq.exceptions.DeliveryError) and isinstance(
                exc.frame, aiormq.spec.Basic.Nack
            ):
                self._replace_pub_channel(channel, "nack")
            raise PublishError(
                f"publish failed: {exc!r}", exchange=exchange, routing_key=routing_key
            ) from exc
        _published(self.service, label, "confirmed").inc()
        _publish_seconds(self.service, label).observe(time.perf_counter() - started)

    def _replace_pub_channel(self, failed: AbstractChannel | None, why: str) -> None:
        """Replace the publish channel after a ``basic.nack`` or a publish not confirmed
        within its deadline (at most once per ``nack_reopen_interval_s``; the publish
        still raises, the caller retries).

        A quorum queue's publisher state lives in the channel, made at its first publish
        to the queue from the leader the queue's record names then. A channel opened
        while a leader is being replaced (a reconnect after its node died) keeps asking
        the dead node and has every publish to that queue nacked until the node is back
        (RabbitMQ 3.10: ``rabbit_fifo_client`` registers its enqueuer by an RPC to that
        one node). Its publishes can also go unconfirmed: on 3.10 a channel sends each
        enqueue to the leader it knows, and learns of a new one only from that leader's
        notice to the publishers it has applied (or a rejection by a live follower); one
        left out of the notice resends only once 32 publishes to that queue are pending
        (its credit then blocked) and 10 s have passed. A new channel starts from the
        record as it is now (docs/operations.md, "Losing a broker node")."""
        now = time.monotonic()
        if (
            failed is None
            or failed is not self._pub_channel
            or (self._reopening is not None and not self._reopening.done())
            or now - self._reopened_at < self.nack_reopen_interval_s
        ):
            return
        self._reopened_at = now
        self._reopening = asyncio.create_task(self._reopen_pub_channel(failed, why))

    async def _reopen_pub_channel(self, old: AbstractChannel, why: str) -> None:
        conn = self._pub_conn
        if conn is None or conn.is_closed:
            return
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                new = await conn.channel(publisher_confirms=True, on_return_raises=True)
        except Exception as exc:  # noqa: BLE001 - the old channel stays; next nack tries again
            log.warning("publish channel not reopened", error=repr(exc))
            return
        if self._pub_conn is not conn or self._pub_channel is not old:
            await new.close()  # reconnected meanwhile: that channel is current
            return
        self._pub_channel = new
        log.warning("publish channel reopened", after=why)
        if old is not self._declared_channel:
            # publishes in flight on it get their confirms first
            task = asyncio.create_task(self._close_later(old, self.publish_timeout_s))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    @staticmethod
    async def _close_later(channel: AbstractChannel, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), timeout=5)

    async def publish_many(
        self, items: Iterable[tuple[str, str, BaseModel]], *, timeout_s: float | None = None
    ) -> None:
        """Publish several messages concurrently; return once all are confirmed."""
        tasks = [
            self.publish(
                ex,
                key,
                model,
                message_id=getattr(model, "event_id", None),
                correlation_id=getattr(model, "correlation_id", None),
                timeout_s=timeout_s,
            )
            for ex, key, model in items
        ]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # ------------------------------------------------------------ consume

    async def consume(
        self,
        queue: str,
        handler: Callable[[T, AbstractIncomingMessage], Awaitable[None]],
        *,
        decoder: TypeAdapter[T],
        prefetch: int = 32,
        on_retry: Callable[[RetryLater, AbstractIncomingMessage], Awaitable[None]] | None = None,
        dead_letter_queue: str = topology.QUEUE_POISON,
        ack_linger_s: float = 0.0,
        on_poison: Callable[[AbstractIncomingMessage, str], Awaitable[None]] | None = None,
        return_on_stop: bool = False,
    ) -> ConsumerHandle:
        """Start consuming ``queue``; each message is decoded, handled, then acked.

        ``return_on_stop``: for a queue with a single active consumer (a conversation
        partition). Stopping then closes the consumer's channel instead of cancelling it,
        so the broker returns every unacknowledged delivery to the queue, ahead of the
        newer messages, and only then activates the next consumer; a ``basic.cancel``
        would activate the next consumer while this one still works on earlier messages
        (two replicas on one partition at once). Handlers in flight run on, their acks
        skipped: the next consumer gets those messages again and its handler dedupes
        them (:meth:`release` does the same for one consumer).

        ``ack_linger_s`` > 0 batches acknowledgements: finished deliveries are acked
        within that many seconds, runs of them with one ``basic.ack(multiple=True)``
        (a high-rate consumer then writes one frame for many messages). Never earlier
        than without it; pending acks are flushed when consuming stops.

        Fates: success → ack; :class:`Discard` → ack; :class:`DeadLetter` → copied to
        ``dead_letter_queue`` with the headers it names (the reason at least), then ack;
        an undecodable body → ``on_poison(message, reason)`` when given (say, to tell the
        publisher: it runs before the copy, and when it raises the message goes back to
        the queue), copied to the poison queue with the reason, then ack;
        :class:`RetryLater` → ``on_retry`` (which must publish the retry) then ack, or
        requeue when there is no ``on_retry``; a dependency unavailable
        (:func:`~flowchat_platform.transient.is_transient`: Redis, PostgreSQL, another
        service down) → handled again in place with backoff, keeping the message's
        place and delivery count; any other exception → rejected back to the queue
        (its delivery limit parks a message that always fails).
        """
        if self._sub_conn is None:
            raise RuntimeError("connect() first")
        consumer: _Consumer[T] = _Consumer(
            self, queue, handler, decoder, prefetch, on_retry, dead_letter_queue, ack_linger_s
        )
        consumer.on_poison = on_poison
        consumer.return_on_stop = return_on_stop
        await consumer.start(self._sub_conn)
        self._consumers.append(consumer)
        self._watched.update({queue: None, dead_letter_queue: None})
        if self._stats_task is None:
            self._stats_stop.clear()
            self._stats_task = asyncio.create_task(self._watch_queues())
        return consumer

    async def release(self, consumer: ConsumerHandle, grace_s: float) -> None:
        """Stop one consumer by closing its channel: its unacknowledged deliveries go back
        to the queue (for the queue's next consumer), then wait up to ``grace_s`` for its
        handlers in flight. Its queue stays watched."""
        self._consumers = [c for c in self._consumers if c is not consumer]
        await consumer.release()
        await consumer.drain(grace_s)

    # ------------------------------------------------------------ queue depth

    async def _watch_queues(self) -> None:
        """Export depth and consumers of the watched queues every interval (passive declare)."""
        # Stopped by an event, never cancelled mid-call (see _stop_queue_stats).
        while not self._stats_stop.is_set():
            await self.sample_queues()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stats_stop.wait(), self.queue_stats_interval_s)

    async def sample_queues(self) -> None:
        """One reading of every watched queue; a queue that cannot be read is skipped.

        The round reads every queue on one plain channel (:func:`_plain_channel`): a
        channel per queue cost five broker round trips a queue, each round, in every
        service, idle or not. A missing queue closes the channel (NOT_FOUND); the next
        queue opens another."""
        channel: aio_pika.Channel | None = None
        try:
            for name in list(self._watched):
                conn = self._sub_conn
                if conn is None or conn.is_closed or self._stats_stop.is_set():
                    return
                try:
                    if channel is None or channel.is_closed:
                        channel = await _plain_channel(conn)
                    queue = await channel.declare_queue(name, passive=True)
                    result = queue.declaration_result
                    metrics.AMQP_QUEUE_MESSAGES.labels(self.service, name).set(
                        result.message_count or 0
                    )
                    metrics.AMQP_QUEUE_CONSUMERS.labels(self.service, name).set(
                        result.consumer_count or 0
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a missing queue or a broker blip
                    log.debug("queue depth unavailable", queue=name, error=repr(exc))
        finally:
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def queue_exists(self, name: str) -> bool | None:
        """Whether the queue ``name`` is declared (a passive declare on a plain channel of
        its own); None when the broker cannot say (not connected, a blip)."""
        conn = self._sub_conn
        if conn is None or conn.is_closed:
            return None
        try:
            channel = await _plain_channel(conn)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the broker cannot say
            return None
        try:
            await channel.declare_queue(name, passive=True)
            return True
        except aio_pika.exceptions.ChannelClosed:
            return False  # NOT_FOUND closes the channel
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the broker cannot say
            return None
        finally:
            if not channel.is_closed:
                with contextlib.suppress(Exception):
                    await channel.close()

    async def _stop_queue_stats(self) -> None:
        task, self._stats_task = self._stats_task, None
        self._stats_stop.set()
        if task is None:
            return
        # Let the current reading finish: cancelling a channel mid-open breaks the
        # connection the consumers share (the broker answers CHANNEL_ERROR).
        await asyncio.wait({task}, timeout=10)
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        elif not task.cancelled() and task.exception() is not None:
            log.warning("queue depth task failed", error=repr(task.exception()))

    async def park(
        self,
        message: AbstractIncomingMessage,
        queue: str,
        reason: str,
        *,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Copy a message to a parking queue, keeping body and ids: with ``headers``
        (a fate's :meth:`~flowchat_platform.errors.DeadLetter.parked_headers`), else the
        message's own plus the reason and its routing key as the origin."""
        if headers is None:
            headers = DeadLetter(reason).parked_headers(
                message.headers or {}, queue="", routing_key=message.routing_key or ""
            )
        await self.publish(
            "",
            queue,
            message.body,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            headers=headers,
            message_type=message.type,
        )


class ConsumerHandle:
    """What :meth:`Amqp.consume` returns: the consumer, to :meth:`Amqp.release` it."""

    queue_name: str
    return_on_stop: bool = False

    async def release(self) -> None:
        raise NotImplementedError

    async def drain(self, timeout_s: float) -> None:
        raise NotImplementedError


class _Consumer(ConsumerHandle, Generic[T]):
    def __init__(
        self,
        amqp: Amqp,
        queue: str,
        handler: Callable[[T, AbstractIncomingMessage], Awaitable[None]],
        decoder: TypeAdapter[T],
        prefetch: int,
        on_retry: Callable[[RetryLater, AbstractIncomingMessage], Awaitable[None]] | None,
        dead_letter_queue: str,
        ack_linger_s: float = 0.0,
    ) -> None:
        self.amqp = amqp
        self._acks = _AckBatcher(ack_linger_s, self._send) if ack_linger_s > 0 else None
        self.queue_name = queue
        self.handler = handler
        self.decoder = decoder
        self.prefetch = prefetch
        self.on_retry = on_retry
        self.dead_letter_queue = dead_letter_queue
        self.on_poison: Callable[[AbstractIncomingMessage, str], Awaitable[None]] | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set by :meth:`release` before its channel's Close: no ack, nack or reject starts
        #: on the channel from then on (see :meth:`_send`).
        self._releasing = False
        #: acks, nacks and rejects on their way to the socket
        self._sending = 0
        self._sent = asyncio.Event()
        self._sent.set()

    async def start(self, conn: AbstractRobustConnection) -> None:
        self._channel = await conn.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        spec = next((q for q in topology.QUEUE_SPECS if q.name == self.queue_name), None)
        if spec is not None:
            self._queue = await self._channel.declare_queue(
                spec.name, durable=True, arguments=spec.arguments
            )
        else:
            self._queue = await self._channel.declare_queue(self.queue_name, passive=True)
        # a plain function: aio-pika calls it directly, with no task of its own
        self._tag = await self._queue.consume(self._on_message, no_ack=False)
        log.info("consuming", queue=self.queue_name, prefetch=self.prefetch)

    async def cancel(self) -> None:
        self._stopping.set()
        if self._queue is not None and self._tag is not None:
            try:
                await asyncio.wait_for(self._queue.cancel(self._tag), timeout=5)
            except Exception as exc:  # noqa: BLE001 - the connection may be gone already
                log.warning("consumer cancel failed", queue=self.queue_name, error=repr(exc))
            self._tag = None

    async def release(self) -> None:
        """Close the channel (no ``basic.cancel``): the broker returns this consumer's
        unacknowledged deliveries to the queue, in order, and activates its next consumer.

        Nothing is written on the channel after its ``channel.close``: RabbitMQ forgets
        the channel before it answers ``close-ok``, so a frame that reaches it later
        (an ack of a handler that finished meanwhile) names a channel it does not know,
        and it closes the whole connection (``504 CHANNEL_ERROR - expected
        'channel.open'``), every other consumer on it with it. Acks already on their way
        are written first; later ones are skipped (the next consumer gets those
        messages again and its handler dedupes them)."""
        self._stopping.set()
        self._releasing = True
        channel, self._tag = self._channel, None
        if self._sending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent.wait(), timeout=5)
        if channel is not None and not channel.is_closed:
            try:
                await asyncio.wait_for(channel.close(), timeout=5)
            except Exception as exc:  # noqa: BLE001 - the connection may be gone already
                log.warning("consumer channel close failed", queue=self.queue_name, error=repr(exc))
        log.info("consumer released", queue=self.queue_name)

    async def drain(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        except TimeoutError:
            log.warning(
                "in-flight messages left at shutdown", queue=self.queue_name, count=self._inflight
            )
        if self._acks is not None:
            await self._acks.flush(final=True)

    async def _send(
        self, message: AbstractIncomingMessage, send: Callable[[], Awaitable[None]]
    ) -> bool:
        """Write an ack, nack or reject of ``message`` unless its channel is closed or
        being released (False: not written; the broker redelivers the message)."""
        if self._releasing or _channel_closed(message):
            log.info("handled after its channel closed; redelivery expected")
            return False
        self._sending += 1
        self._sent.clear()
        try:
            await send()
        finally:
            self._sending -= 1
            if not self._sending:
                self._sent.set()
        return True

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        if self._acks is None:
            await self._send(message, message.ack)
        else:
            self._acks.finished(message)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        if self._acks is not None:
            self._acks.settled(message)

    def _on_message(self, message: AbstractIncomingMessage) -> None:
        """Start the message's handling in a task of its own and return.

        A plain function, not a coroutine: aio-pika calls it from the channel's
        delivery task, which aiormq cancels when the channel closes (broker restart,
        cut connection). The handling must not stop half-way (a provider called with
        no outcome recorded, a transaction cut): it runs on in its own task; its ack
        then fails and the broker redelivers, which every handler dedupes. Tasks start
        in delivery order. (A coroutine here cost a task and a shield more per message.)
        """
        if self._acks is not None:
            self._acks.delivered(message)
        self._inflight += 1
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(self._process(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        fate = "ack"
        # the task's own context (a copy): bound for its log lines, gone with it
        bind_in_task(message.correlation_id, queue=self.queue_name)
        try:
            fate = await self._handle(message)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
            _consumed(self.amqp.service, self.queue_name, fate).inc()
            _handle_seconds(self.amqp.service, self.queue_name).observe(
                time.perf_counter() - started
            )

    async def _handle(self, message: AbstractIncomingMessage) -> str:
        try:
            try:
                item = self.decoder.validate_json(message.body)
            except ValidationError as exc:
                reason = _validation_reason(exc)
                log.warning("undecodable message parked", reason=reason)
                if self.on_poison is not None:
                    await self.on_poison(message, f"invalid: {reason}")
                await self.amqp.park(message, topology.QUEUE_POISON, f"invalid: {reason}")
                await self._ack(message)
                return "poison"
            try:
                await self._run_handler(item, message)
            except Discard as exc:
                log.info("message discarded", reason=exc.reason)
                await self._ack(message)
                return "discard"
            except DeadLetter as exc:
                log.warning("message dead-lettered", reason=exc.reason)
                headers = exc.parked_headers(
                    message.headers or {},
                    queue=self.queue_name,
                    routing_key=message.routing_key or "",
                )
                await self.amqp.park(message, self.dead_letter_queue, exc.reason, headers=headers)
                await self._ack(message)
                return "dead_letter"
            except RetryLater as exc:
                if self.on_retry is None:
                    await self._settle(message)
                    await self._send(message, lambda: message.nack(requeue=True))
                    return "requeue"
                # its publish (to a retry queue) fails like a handler's: again in place,
                # not rejected at once (a leader election spent the delivery limit in
                # 0.1 s and parked good messages, #26's fault run of 2026-12-07)
                retry, on_retry = exc, self.on_retry
                await self._in_place(lambda: on_retry(retry, message), message)
                await self._ack(message)
                return "retry"
            await self._ack(message)
            return "ack"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("handler failed; message rejected for redelivery", error=repr(exc))
            try:
                await self._settle(message)
                await self._send(message, lambda: message.reject(requeue=True))
            except Exception as reject_exc:  # noqa: BLE001 - channel gone: broker redelivers
                log.warning("reject failed", error=repr(reject_exc))
            return "requeue"

    async def _run_handler(self, item: T, message: AbstractIncomingMessage) -> None:
        await self._in_place(lambda: self.handler(item, message), message)

    async def _in_place(
        self, op: Callable[[], Awaitable[None]], message: AbstractIncomingMessage
    ) -> None:
        """``op`` (the handler, or its retry's publish); while it fails because a
        dependency is unavailable, again in place.

        Rejecting at once would redeliver at once: a Redis restart of a few seconds
        would spend the queue's delivery limit in a hot loop and park a good message
        in the poison queue. Held here, the message keeps its place (per-conversation
        order) and its delivery count. It goes back to the queue only when consuming
        stops, its channel is gone, or ``transient_retry_for_s`` has passed.
        """
        delay = 0.1
        deadline = time.monotonic() + self.amqp.transient_retry_for_s
        while True:
            try:
                await op()
                return
            except MessageFate:
                raise
            except Exception as exc:
                if (
                    not is_transient(exc)
                    or self._stopping.is_set()
                    or time.monotonic() + delay > deadline
                    or _channel_closed(message)
                ):
                    raise
                metrics.AMQP_HANDLER_RETRIES.labels(self.amqp.service, self.queue_name).inc()
                log.warning(
                    "dependency unavailable; handling the message again in place",
                    error=repr(exc),
                    retry_in_s=round(delay, 2),
                )
                error = exc
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                raise error
            delay = min(delay * 2, self.amqp.transient_retry_max_s)


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    """The delivery's channel is gone: the broker redelivers it, nobody can ack it here."""
    try:
        return bool(message.channel.is_closed)
    except Exception:  # noqa: BLE001 - no channel to ask: treat as gone
        return True


async def _plain_channel(conn: AbstractRobustConnection) -> aio_pika.Channel:
    """A channel for passive declares: no confirms, no prefetch, not restored on a
    reconnect (a robust channel's open also sends confirm.select and basic.qos, two more
    round trips). A declare of a missing queue closes it (NOT_FOUND)."""
    channel = aio_pika.Channel(conn, publisher_confirms=False)
    await channel
    return channel


class _AckBatcher:
    """Acknowledgements of one consumer's channel, as few ``basic.ack`` frames as possible.

    Delivery tags on a channel are consecutive from 1, in delivery order. Every
    ``linger_s`` the contiguous run of settled tags from the lowest unacknowledged one
    is closed with one ``basic.ack(multiple=True)`` naming its last *finished* tag, so
    the frame covers only deliveries this consumer has finished (or settled itself:
    rejected, nacked, acked alone). It stops at the first tag still in progress or
    not yet seen. Finished deliveries behind one in progress are acked one by one
    after a full linger, so a slow message never holds its neighbours' credit long.
    After a reconnect (a new channel) the old channel's tags are dropped: the broker
    redelivers those messages anyway.
    """

    _OPEN, _DONE, _SETTLED = 0, 1, 2

    def __init__(
        self,
        linger_s: float,
        send: Callable[[AbstractIncomingMessage, Callable[[], Awaitable[None]]], Awaitable[bool]],
    ) -> None:
        self.linger_s = linger_s
        #: the consumer's guarded write (nothing after its channel's release)
        self._send = send
        self._channel: Any = None
        self._next = 1
        #: tag → (state, round it finished in, message)
        self._tags: dict[int, tuple[int, int, AbstractIncomingMessage]] = {}
        #: Finished tags not yet acknowledged, in the order (and so the round) they
        #: finished: a flush looks at these, never at every delivery in flight.
        self._done: dict[int, None] = {}
        self._round = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def delivered(self, message: AbstractIncomingMessage) -> None:
        if message.delivery_tag is None:
            return
        if message.channel is not self._channel:
            self._channel = message.channel
            self._next = 1
            self._tags.clear()
            self._done.clear()
        self._tags[message.delivery_tag] = (self._OPEN, 0, message)

    def settled(self, message: AbstractIncomingMessage) -> None:
        """``message`` is being rejected or nacked on its own."""
        tag = message.delivery_tag
        if message.channel is self._channel and tag in self._tags:
            self._tags[tag] = (self._SETTLED, 0, message)

    def finished(self, message: AbstractIncomingMessage) -> None:
        tag = message.delivery_tag
        entry = self._tags.get(tag) if tag is not None else None
        if entry is None or message.channel is not self._channel or entry[0] != self._OPEN:
            self._spawn(self._ack(message))  # not tracked (an old channel's): on its own
            return
        assert tag is not None
        self._tags[tag] = (self._DONE, self._round, message)
        self._done[tag] = None
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._spawn(self.flush())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ack(self, message: AbstractIncomingMessage, *, multiple: bool = False) -> None:
        tag = message.delivery_tag
        if tag is None:
            return
        try:
            await self._send(
                message, lambda: message.channel.basic_ack(delivery_tag=tag, multiple=multiple)
            )
        except Exception as exc:  # noqa: BLE001 - channel gone: the broker redelivers
            log.warning("ack failed", error=repr(exc))

    async def flush(self, *, final: bool = False) -> None:
        async with self._lock:
            self._round += 1
            last: AbstractIncomingMessage | None = None
            tag = self._next
            while (entry := self._tags.get(tag)) is not None and entry[0] != self._OPEN:
                if entry[0] == self._DONE:
                    last = entry[2]
                    self._done.pop(tag, None)
                del self._tags[tag]
                tag += 1
            self._next = tag
            if last is not None:
                await self._ack(last, multiple=True)
            for tag in list(self._done):
                entry = self._tags.get(tag)
                if entry is None or entry[0] != self._DONE:
                    self._done.pop(tag, None)
                    continue
                if not final and entry[1] >= self._round - 1:
                    break  # the rest finished later still
                self._tags[tag] = (self._SETTLED, 0, entry[2])
                self._done.pop(tag, None)
                await self._ack(entry[2])
            waiting = bool(self._done)
            if waiting and self._timer is None and not final:
                self._timer = asyncio.get_running_loop().call_later(self.linger_s, self._tick)
        if final:
            current = asyncio.current_task()
            await asyncio.gather(*(t for t in list(self._tasks) if t is not current))


# Metric children of the per-message paths, looked up once per label set.
_published = functools.lru_cache(maxsize=256)(metrics.AMQP_PUBLISHED.labels)
_publish_seconds = functools.lru_cache(maxsize=256)(metrics.AMQP_PUBLISH_SECONDS.labels)
_consumed = functools.lru_cache(maxsize=256)(metrics.AMQP_CONSUMED.labels)
_handle_seconds = functools.lru_cache(maxsize=256)(metrics.AMQP_HANDLE_SECONDS.labels)


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


async def declare_topology(channel: AbstractChannel) -> None:
    """Declare every exchange, queue and binding of :mod:`flowchat_contracts.topology`
    (and remove its retired bindings)."""
    exchanges: dict[str, AbstractExchange] = {}
    for ex in (*topology.ALL_EXCHANGES, *topology.INTERNAL_EXCHANGES):
        exchanges[ex.name] = await channel.declare_exchange(
            ex.name, aio_pika.ExchangeType(ex.type), durable=True, arguments=ex.arguments or None
        )
    for eb in topology.EXCHANGE_BINDINGS:
        await exchanges[eb.destination].bind(exchanges[eb.source], eb.routing_key)
    queues: dict[str, AbstractQueue] = {}
    for q in topology.ALL_QUEUES:
        queues[q.name] = await channel.declare_queue(q.name, durable=True, arguments=q.arguments)
    for b in topology.ALL_BINDINGS:
        await queues[b.queue].bind(
            exchanges[b.exchange], b.routing_key, arguments=b.arguments or None
        )
    for b in topology.RETIRED_BINDINGS:
        await queues[b.queue].unbind(exchanges[b.exchange], b.routing_key)


async def declare_own_queues(
    url: str,
    queues: tuple[topology.QueueSpec, ...],
    bindings: tuple[topology.BindingSpec, ...],
    retired: tuple[topology.BindingSpec, ...] = (),
) -> None:
    """Declare a service's own queues and bindings (the inbox's, the relay's, the
    conversation partitions):
    only that service declares them, so nothing is copied where it is not deployed.
    ``retired`` bindings (of earlier versions) are removed (a no-op when absent)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for spec in queues:
            await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        for b in bindings:
            queue = await channel.get_queue(b.queue, ensure=False)
            await queue.bind(b.exchange, b.routing_key, arguments=b.arguments or None)
        for b in retired:
            queue = await channel.get_queue(b.queue, ensure=False)
            await queue.unbind(b.exchange, b.routing_key)
    finally:
        await connection.close()


def loads(body: bytes) -> Any:
    return orjson.loads(body)
