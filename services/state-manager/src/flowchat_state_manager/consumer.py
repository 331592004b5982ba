"""The AMQP edge: ``state-manager.status`` messages → :class:`StateService`.

The platform's consumer decodes each body as a ``StatusEvent`` (undecodable →
``flowchat.poison`` with the reason), calls :meth:`StatusConsumer.handle`, and acks
when it returns, which is after the transaction holding the event committed
(:mod:`flowchat_state_manager.batching` groups concurrent deliveries into one).

A ``send_result_batch`` (a busy sender's results: v1 of one account, v2 of any
accounts and tenants, each result naming its own) is applied result by result; when
some are rejected the whole message is parked with their reasons (the others are
recorded already, and a replay of the parked copy repeats them harmlessly: every
result is applied once by its event id).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from aio_pika.abc import AbstractIncomingMessage
from pydantic import Field, TypeAdapter

from flowchat_contracts import (
    AnySendResultBatch,
    SendResult,
    SendResultBatch,
    SendResultBatchV2,
    StatusUpdate,
)
from flowchat_contracts.command_events import CommandParked
from flowchat_platform.errors import DeadLetter, RetryLater, StoreUnavailable
from flowchat_platform.logs import get_logger
from flowchat_state_manager import metrics
from flowchat_state_manager.batching import Batcher
from flowchat_state_manager.errors import RejectedEvent
from flowchat_state_manager.service import REJECTED

log = get_logger(__name__)

#: Everything on ``state-manager.status``: ``flowchat.status``'s contracts and the
#: sender's ``command_parked``, told apart by ``kind`` (a batch by its version too).
StateEvent = Annotated[
    SendResult | AnySendResultBatch | StatusUpdate | CommandParked, Field(discriminator="kind")
]
Incoming = SendResult | SendResultBatch | SendResultBatchV2 | StatusUpdate | CommandParked
DECODER: TypeAdapter[Incoming] = TypeAdapter(StateEvent)


class StatusConsumer:
    def __init__(self, batcher: Batcher, *, unavailable_pause_s: float = 1.0) -> None:
        self._batcher = batcher
        self._pause = unavailable_pause_s

    async def handle(
        self,
        event: Incoming,
        message: AbstractIncomingMessage,
    ) -> None:
        if not isinstance(event, SendResultBatch | SendResultBatchV2):
            await self._apply(event)
            return
        outcomes = await asyncio.gather(
            *(self._apply(r) for r in event.results), return_exceptions=True
        )
        rejected: list[DeadLetter] = []
        for outcome in outcomes:
            if isinstance(outcome, DeadLetter):
                rejected.append(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome  # the database: the whole message again (applied ones skip)
        if rejected:
            reasons = "; ".join(sorted({r.reason for r in rejected}))
            raise DeadLetter(f"{len(rejected)} of {len(event.results)} results {reasons}")

    async def _apply(self, event: SendResult | StatusUpdate | CommandParked) -> None:
        try:
            await self._batcher.submit(event)
        except RejectedEvent as exc:
            status = "parked" if isinstance(event, CommandParked) else event.status
            metrics.STATUSES.labels(status, REJECTED).inc()
            log.warning(
                "status event rejected",
                reason=exc.reason,
                message_id=exc.message_id,
                tenant_id=event.tenant_id,
            )
            raise DeadLetter(f"rejected: {exc.reason}") from exc
        except StoreUnavailable as exc:
            log.warning("database unavailable; message requeued", error=str(exc))
            await asyncio.sleep(self._pause)  # do not spin on redeliveries while it is down
            raise RetryLater("database unavailable", delay_s=self._pause) from exc
