"""The AMQP edge: the two outbound lanes in; send results, retries and parked commands out.

::

    (whatsapp.outbound)      ──▶ Sender.send ──▶ [flowchat.status] <t>.<a>.send_result
    (whatsapp.outbound.bulk) ──▶ Sender.send(bulk) ─┘   (marketing: own small prefetch,
          ▲      │                                       held back by transactional work)
          │      │ SendRetry ──▶ (<lane queue>.retry.<tier>) ── TTL ──┘ (back to its lane)
          │      │ Park      ──▶ (whatsapp.outbound.dlq)  reason, code, attempts, times
          │      │             (a DeadLetter fate: the platform consumer parks it with
          │      │              the headers Park names, flowchat_sender.errors)
          │      └ undecodable ──▶ (flowchat.poison)  (the platform consumer)
          └── ack only after the result (or the retry / parked copy) is confirmed

Headers carried across retries (:mod:`flowchat_sender.headers`): ``x-flowchat-attempt``
(provider attempts used so far; limiter and breaker waits do not count), first and last
failure times.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter

from flowchat_contracts import OutboundCommand, SendResult, SendResultBatch, topology
from flowchat_platform.amqp import HEADER_ATTEMPT, HEADER_REASON, Amqp
from flowchat_platform.errors import PublishError, RetryLater
from flowchat_platform.logs import get_logger
from flowchat_sender import metrics
from flowchat_sender.batching import Batcher
from flowchat_sender.errors import SendRetry
from flowchat_sender.headers import (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_FIRST_FAILURE,
    HEADER_LAST_FAILURE,
    attempts_in,
    carried,
    now,
)
from flowchat_sender.service import Sender

log = get_logger(__name__)

DECODER: TypeAdapter[OutboundCommand] = TypeAdapter(OutboundCommand)


def attempts_of(message: AbstractIncomingMessage) -> int:
    return attempts_in(message.headers)


class ResultBatcher(Batcher[SendResult]):
    """Send results to ``flowchat.status``, each caller back once the broker confirmed
    the message holding its result (so its command is acked only then).

    Results that queue while a publish is out go together (:mod:`flowchat_sender.batching`):
    one message per account, a ``SendResultBatch``, or a plain ``SendResult`` when it is
    alone. One confirmed broker write per result cost as much as the provider call
    itself (benchmarks, #6). ``max_batch=1`` publishes every result on its own.
    """

    def __init__(self, amqp: Amqp, *, max_batch: int = 256, max_in_flight: int = 1) -> None:
        super().__init__(max_batch=max(1, max_batch), max_in_flight=max_in_flight)
        self._amqp = amqp

    async def publish(self, result: SendResult) -> None:
        if self.max_batch == 1:
            await self._publish(result)
        else:
            await self.submit(result)

    async def _run(self, items: list[SendResult]) -> list[Any]:
        groups: dict[tuple[str, str], list[SendResult]] = {}
        for result in items:
            groups.setdefault((result.tenant_id, result.account_id), []).append(result)
        # one account's failed publish fails only its own callers
        outcomes = await asyncio.gather(
            *(self._publish_group(g) for g in groups.values()), return_exceptions=True
        )
        failed = {
            key: outcome if isinstance(outcome, Exception) else self._aborted(outcome)
            for key, outcome in zip(groups, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        }
        return [failed.get((r.tenant_id, r.account_id)) for r in items]

    def _aborted(self, cause: BaseException) -> Exception:
        return PublishError(
            f"publish aborted: {cause!r}", exchange=topology.EXCHANGE_STATUS, routing_key=""
        )

    async def _publish_group(self, results: list[SendResult]) -> None:
        if len(results) == 1:
            await self._publish(results[0])
            return
        first = results[0]
        await self._amqp.publish(
            topology.EXCHANGE_STATUS,
            topology.status_routing_key(first.tenant_id, first.account_id, "send_result_batch"),
            SendResultBatch(
                tenant_id=first.tenant_id, account_id=first.account_id, results=results
            ),
            message_id=f"{first.message_id}:batch:{len(results)}",
        )

    async def _publish(self, result: SendResult) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_STATUS,
            topology.status_routing_key(result.tenant_id, result.account_id, "send_result"),
            result,
            message_id=f"{result.message_id}:{result.status}:{result.attempts}",
            correlation_id=result.correlation_id,
        )


class OutboundConsumer:
    """One consumer per lane on the same connection: ``whatsapp.outbound`` with
    ``prefetch``, ``whatsapp.outbound.bulk`` with ``bulk_prefetch`` (0: not consumed)."""

    def __init__(
        self,
        amqp: Amqp,
        sender: Sender,
        *,
        prefetch: int,
        ack_linger_s: float = 0.0,
        bulk_prefetch: int = 0,
    ) -> None:
        self.amqp = amqp
        self.sender = sender
        self.prefetch = prefetch
        self.bulk_prefetch = bulk_prefetch
        self.ack_linger_s = ack_linger_s

    async def start(self) -> None:
        await self.amqp.consume(
            topology.QUEUE_OUTBOUND,
            self.handle,
            decoder=DECODER,
            prefetch=self.prefetch,
            on_retry=self.on_retry,
            dead_letter_queue=topology.QUEUE_OUTBOUND_DLQ,
            ack_linger_s=self.ack_linger_s,
        )
        if self.bulk_prefetch > 0:
            await self.amqp.consume(
                topology.QUEUE_OUTBOUND_BULK,
                self.handle_bulk,
                decoder=DECODER,
                prefetch=self.bulk_prefetch,
                on_retry=self.on_retry_bulk,
                dead_letter_queue=topology.QUEUE_OUTBOUND_DLQ,
                ack_linger_s=self.ack_linger_s,
            )

    async def handle(self, command: OutboundCommand, message: AbstractIncomingMessage) -> None:
        """Send; a :class:`~flowchat_sender.errors.Park` goes to the platform's consumer,
        which parks the command in the DLQ with the headers the fate names."""
        # No await before send(): it takes the recipient's turn in delivery order.
        await self.sender.send(command, attempts_made=attempts_of(message))

    async def handle_bulk(self, command: OutboundCommand, message: AbstractIncomingMessage) -> None:
        await self.sender.send(command, attempts_made=attempts_of(message), bulk=True)

    async def on_retry_bulk(self, exc: RetryLater, message: AbstractIncomingMessage) -> None:
        await self.on_retry(exc, message, queue=topology.QUEUE_OUTBOUND_BULK)

    async def on_retry(
        self,
        exc: RetryLater,
        message: AbstractIncomingMessage,
        queue: str = topology.QUEUE_OUTBOUND,
    ) -> None:
        """Publish the command to the retry tier of its lane that waits ``exc.delay_s``
        (then ack)."""
        early = isinstance(exc, SendRetry) and exc.early
        tier = topology.retry_tier_for(exc.delay_s, queue=queue, at_most=early)
        headers = carried(message.headers)
        headers[HEADER_REASON] = exc.reason[:1000]
        if exc.counts_as_attempt:
            headers[HEADER_ATTEMPT] = attempts_of(message) + 1
            headers.setdefault(HEADER_FIRST_FAILURE, now())
            headers[HEADER_LAST_FAILURE] = now()
            error = exc.error if isinstance(exc, SendRetry) else None
            if error is not None:
                headers[HEADER_ERROR_CODE] = error.code
                headers[HEADER_ERROR_MESSAGE] = (error.message or error.title)[:1000]
        metrics.RETRIES.labels(
            tier.label if queue == topology.QUEUE_OUTBOUND else f"bulk_{tier.label}",
            str(exc.counts_as_attempt).lower(),
        ).inc()
        await self.amqp.publish(
            "",
            tier.queue,
            message.body,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            headers=headers,
            message_type=message.type,
        )
