"""A service's side of ``flowchat.privacy`` (``flowchat_contracts.privacy``).

:class:`ErasureAgent` consumes the service's ``<service>.privacy`` queue, runs the
service's eraser (which returns what it did, by kind) and publishes one
:class:`~flowchat_contracts.privacy.ErasureReported`. The message is acked after the
report is confirmed; a failed eraser leaves the request on the queue (a dependency
down: handled again in place; anything else: redelivered, parked after the delivery
limit). Erasers are idempotent: a redelivered request finds nothing left and reports
zero rows (the conversation service keeps each service's first report).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aio_pika.abc import AbstractIncomingMessage
from pydantic import TypeAdapter

from flowchat_contracts import topology
from flowchat_contracts.privacy import ErasureReported, ErasureRequested
from flowchat_platform.amqp import Amqp
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

__all__ = ["ERASURE_REQUESTED", "Eraser", "ErasureAgent"]

#: A service's erasure: what it did, by kind (``{"messages_deleted": 3}``).
Eraser = Callable[[ErasureRequested], Awaitable[Mapping[str, int]]]

ERASURE_REQUESTED: TypeAdapter[ErasureRequested] = TypeAdapter(ErasureRequested)


class ErasureAgent:
    """Consume ``<service>.privacy``, erase, report."""

    def __init__(self, amqp: Amqp, service: str, eraser: Eraser) -> None:
        self._amqp = amqp
        self.service = service
        self._eraser = eraser

    async def start(self, *, prefetch: int = 1) -> None:
        await self._amqp.consume(
            topology.privacy_queue(self.service),
            self.handle,
            decoder=ERASURE_REQUESTED,
            prefetch=prefetch,
        )

    async def handle(self, request: ErasureRequested, _message: AbstractIncomingMessage) -> None:
        actions = dict(await self._eraser(request))
        report = ErasureReported(
            request_id=request.request_id,
            tenant_id=request.tenant_id,
            service=self.service,
            actions={k: int(v) for k, v in actions.items()},
        )
        await self.report(report)
        log.info(
            "customer erased",
            tenant_id=request.tenant_id,
            request_id=request.request_id,
            **{k: int(v) for k, v in actions.items()},
        )

    async def report(self, report: ErasureReported) -> None:
        await self._amqp.publish(
            topology.EXCHANGE_PRIVACY,
            topology.erasure_reported_key(report.tenant_id, report.service),
            report,
            message_id=report.event_id,
            correlation_id=report.request_id,
            mandatory=False,
        )
