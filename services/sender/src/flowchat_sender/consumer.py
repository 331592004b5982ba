"""The AMQP edge: the two outbound lanes in; send results, retries and parked commands out.

::

    (whatsapp.outbound)      ──▶ Sender.send ──▶ [flowchat.status] <t>.<a>.send_result
                                                   (busy: <t|->.<a|->.send_result_batch)
    (whatsapp.outbound.bulk) ──▶ Sender.send(bulk) ─┘   (marketing: own small prefetch,
          ▲      │                                       held back by transactional work)
          │      │ SendRetry ──▶ (<lane queue>.retry.<tier>) ── TTL ──┘ (back to its lane)
          │      │ Park      ──▶ (whatsapp.outbound.dlq)  reason, code, attempts, times,
          │      │             after [flowchat.status] <t>.<a>.command_parked (the
          │      │             state-manager records the message as parked)
          │      │             (a DeadLetter fate: the platform consumer parks it with
          │      │              the headers Park names, flowchat_sender.errors)
          │      └ undecodable ──▶ (flowchat.poison)  (the platform consumer), after
          │                        [flowchat.events] <t>.<a>.command_rejected (the ids the
          │                        raw body gives, the reason: its publisher is told)
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

from flowchat_contracts import (
    SEND_RESULT_BATCH_VERSION_2,
    OutboundCommand,
    SendResult,
    SendResultBatch,
    SendResultBatchV2,
    topology,
)
from flowchat_contracts.command_events import (
    COMMAND_PARKED,
    COMMAND_REJECTED,
    CommandParked,
    rejected_from_raw,
)
from flowchat_platform.amqp import HEADER_ATTEMPT, HEADER_REASON, Amqp
from flowchat_platform.errors import PublishError, RetryLater
from flowchat_platform.logs import get_logger
from flowchat_platform.redis_batch import Batcher
from flowchat_sender import metrics
from flowchat_sender.errors import Park, SendRetry
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


def _lane(routing_key: str) -> str:
    """The lane a command's routing key sends it to."""
    bulk = routing_key.endswith(f".{topology.OUTBOUND_BULK_WORD}")
    return topology.QUEUE_OUTBOUND_BULK if bulk else topology.QUEUE_OUTBOUND


def attempts_of(message: AbstractIncomingMessage) -> int:
    return attempts_in(message.headers)


class ResultBatcher(Batcher[SendResult]):
    """Send results to ``flowchat.status``, each caller back once the broker confirmed
    the message holding its result (so its command is acked only then).

    Results that queue while a publish is out go together (:mod:`flowchat_platform.redis_batch`),
    a lone one as a plain ``SendResult``. ``version`` 2 (the default): one
    ``send_result_batch`` v2 for all of them, whatever their accounts and tenants.
    ``version`` 1: one v1 batch per account, for state-managers that read only v1
    during a rollout; with a thousand numbers busy nearly every result then left alone
    (one confirmed broker write per result: the sender's throughput halved from 1 to
    1,000 accounts, #26). One confirmed broker write per result cost as much as the
    provider call itself (benchmarks, #6). ``max_batch=1`` publishes every result on
    its own.
    """

    def __init__(
        self,
        amqp: Amqp,
        *,
        max_batch: int = 256,
        max_in_flight: int = 1,
        version: int = SEND_RESULT_BATCH_VERSION_2,
    ) -> None:
        super().__init__(max_batch=max(1, max_batch), max_in_flight=max_in_flight)
        if version not in (1, SEND_RESULT_BATCH_VERSION_2):
            raise ValueError(f"no send_result_batch version {version}")
        self._amqp = amqp
        self.version = version

    async def publish(self, result: SendResult) -> None:
        if self.max_batch == 1:
            await self._publish(result)
        else:
            await self.submit(result)

    async def _run(self, items: list[SendResult]) -> list[Any]:
        if self.version == SEND_RESULT_BATCH_VERSION_2:
            await self._publish_many(items)  # raises: every caller of the batch gets it
            return [None] * len(items)
        groups: dict[tuple[str, str], list[SendResult]] = {}
        for result in items:
            groups.setdefault((result.tenant_id, result.account_id), []).append(result)
        # one account's failed publish fails only its own callers
        outcomes = await asyncio.gather(
            *(self._publish_many(g) for g in groups.values()), return_exceptions=True
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

    async def _publish_many(self, results: list[SendResult]) -> None:
        """``results`` in one message: alone, a ``SendResult``; else a batch of
        :attr:`version` (v1: the caller groups them by account)."""
        if len(results) == 1:
            await self._publish(results[0])
            return
        first = results[0]
        batch: SendResultBatch | SendResultBatchV2
        if self.version == SEND_RESULT_BATCH_VERSION_2:
            batch = SendResultBatchV2(results=results)
        else:
            batch = SendResultBatch(
                tenant_id=first.tenant_id, account_id=first.account_id, results=results
            )
        await self._amqp.publish(
            topology.EXCHANGE_STATUS,
            topology.send_results_routing_key(
                ((r.tenant_id, r.account_id) for r in results), batch.kind
            ),
            batch,
            message_id=f"{first.message_id}:batch:{len(results)}",
            correlation_id=batch.correlation_id,
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
            on_poison=self.on_poison,
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
                on_poison=self.on_poison,
            )

    async def on_poison(self, message: AbstractIncomingMessage, reason: str) -> None:
        """Tell the publisher of an invalid command: ``command_rejected`` on
        ``flowchat.events`` (with a confirm, before the command goes to the poison queue)."""
        event = rejected_from_raw(
            message.body,
            reason=reason,
            queue=_lane(message.routing_key or ""),
            message_id=message.message_id,
            correlation_id=message.correlation_id,
        )
        await self.amqp.publish(
            topology.EXCHANGE_EVENTS,
            topology.events_routing_key(
                event.tenant_id or "unknown", event.account_id or "unknown", COMMAND_REJECTED
            ),
            event,
            message_id=event.event_id,
            correlation_id=event.correlation_id,
            mandatory=False,
        )
        metrics.REJECTED.inc()

    async def handle(self, command: OutboundCommand, message: AbstractIncomingMessage) -> None:
        """Send; a :class:`~flowchat_sender.errors.Park` goes to the platform's consumer,
        which parks the command in the DLQ with the headers the fate names."""
        # No await before send(): it takes the recipient's turn in delivery order.
        try:
            await self.sender.send(command, attempts_made=attempts_of(message))
        except Park as exc:
            await self.on_park(command, exc, message)
            raise

    async def handle_bulk(self, command: OutboundCommand, message: AbstractIncomingMessage) -> None:
        try:
            await self.sender.send(command, attempts_made=attempts_of(message), bulk=True)
        except Park as exc:
            await self.on_park(command, exc, message)
            raise

    async def on_park(
        self, command: OutboundCommand, exc: Park, message: AbstractIncomingMessage
    ) -> None:
        """Tell the state-manager the command is parked (``command_parked`` on
        ``flowchat.status``, confirmed before the command is parked and acked: a failed
        publish sends the command back to its queue instead)."""
        parked = CommandParked(
            tenant_id=command.tenant_id,
            account_id=command.account_id,
            correlation_id=command.correlation_id,
            message_id=command.message_id,
            idempotency_key=command.idempotency_key,
            to=command.to,
            message_type=command.content.type,
            category=command.category,
            campaign_id=command.campaign_id,
            provider=exc.provider,
            reason=exc.reason[:1000],
            error=exc.error,
            attempts=exc.attempts if exc.attempts is not None else attempts_of(message),
        )
        await self.amqp.publish(
            topology.EXCHANGE_STATUS,
            topology.status_routing_key(command.tenant_id, command.account_id, COMMAND_PARKED),
            parked,
            message_id=f"{command.message_id}:parked:{parked.attempts}",
            correlation_id=command.correlation_id,
        )

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
