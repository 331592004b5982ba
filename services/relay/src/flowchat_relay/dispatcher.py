"""The delivery worker: per-endpoint scheduling, signing, retries. No I/O of its own.

Isolation: every endpoint with due deliveries gets a worker of its own with
``concurrency`` lanes; a lane leases one due delivery at a time (``claim``: the lease
is how long the delivery stays invisible to other lanes and replicas), posts it and
records the outcome. A black-holed endpoint ties up only its own lanes (each for at
most the total timeout); the other endpoints' workers never wait behind it.

Outcomes: 2xx delivered; 410 Gone disables the endpoint at once (the delivery waits,
pending, for the endpoint to be enabled again); anything else (3xx — redirects are
never followed —, 4xx, 5xx, no answer, a timeout, an unsafe address) is retried after
``backoff`` (exponential with jitter, or the endpoint's ``Retry-After``), until
``retry_for_s`` after the event was stored (or replayed), then failed. An endpoint
whose deliveries all failed for ``disable_after_s`` is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import orjson

from flowchat_platform.logs import get_logger
from flowchat_relay import metrics
from flowchat_relay.events import PING
from flowchat_relay.ports import Claimed, DeliveryStore, Endpoint, Poster, PostResult
from flowchat_relay.service import Clock, utcnow
from flowchat_relay.signing import meta_headers, standard_headers

log = get_logger(__name__)


def backoff_s(attempt: int, *, base_s: float, max_s: float, rand: Callable[[], float]) -> float:
    """Delay before attempt ``attempt + 1``: ``base · 2^(attempt-1)`` capped at ``max_s``,
    the upper half jittered (so retries of many deliveries spread out)."""
    ceiling = min(max_s, base_s * 2.0 ** min(attempt - 1, 40))
    return float(ceiling / 2 + rand() * ceiling / 2)


def sign(endpoint: Endpoint, msg_id: str, body: bytes, now: datetime) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": "FlowChat-Relay/1"}
    if endpoint.format == "meta":
        headers.update(meta_headers(endpoint.secret, body))
    else:
        headers.update(
            standard_headers(endpoint.signing_secrets(now), msg_id, int(now.timestamp()), body)
        )
    return headers


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        poster: Poster,
        *,
        concurrency: int,
        retry_for_s: float,
        backoff_base_s: float,
        max_backoff_s: float,
        disable_after_s: float,
        lease_s: float,
        poll_interval_s: float = 1.0,
        clock: Clock = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._poster = poster
        self.concurrency = concurrency
        self.retry_for_s = retry_for_s
        self.backoff_base_s = backoff_base_s
        self.max_backoff_s = max_backoff_s
        self.disable_after_s = disable_after_s
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._rand = rand
        self._wake = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Start a worker for every endpoint with due deliveries; until cancelled."""
        try:
            while True:
                self._wake.clear()
                try:
                    for endpoint_id in await self._store.due_endpoints():
                        if endpoint_id not in self._workers:
                            self._workers[endpoint_id] = asyncio.create_task(
                                self._drain(endpoint_id), name=f"relay-endpoint-{endpoint_id}"
                            )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the database may be back next round
                    log.warning("due deliveries unavailable", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
        finally:
            workers = list(self._workers.values())
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _drain(self, endpoint_id: str) -> None:
        try:
            await asyncio.gather(*(self._lane(endpoint_id) for _ in range(self.concurrency)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - leases expire; the next round retries
            log.warning("endpoint worker failed", endpoint_id=endpoint_id, error=repr(exc))
        finally:
            self._workers.pop(endpoint_id, None)
            self._wake.set()  # deliveries that came while the worker wound down

    async def _lane(self, endpoint_id: str) -> None:
        while True:
            claimed = await self._store.claim(endpoint_id, self.lease_s)
            if claimed is None:
                return
            await self.deliver(claimed)

    async def deliver(self, claimed: Claimed) -> str:
        """Post one leased delivery and record what happened; the outcome's name."""
        endpoint = claimed.endpoint
        now = self._clock()
        headers = sign(endpoint, claimed.event_id, claimed.body, now)
        result = await self._poster.post(endpoint.url, claimed.body, headers)
        metrics.DELIVERY_SECONDS.observe(result.latency_s)
        if result.ok:
            await self._store.delivered(claimed, result)
            metrics.DELIVERIES.labels("delivered").inc()
            return "delivered"
        now = self._clock()
        disable: str | None = None
        next_at: datetime | None = None
        if result.status == 410:
            outcome, disable = "gone", "gone"
            next_at = now
        else:
            deadline = claimed.window_start + timedelta(seconds=self.retry_for_s)
            delay = (
                result.retry_after_s
                if result.retry_after_s is not None
                else backoff_s(
                    claimed.attempt,
                    base_s=self.backoff_base_s,
                    max_s=self.max_backoff_s,
                    rand=self._rand,
                )
            )
            candidate = now + timedelta(seconds=delay)
            if now >= deadline:
                outcome = "failed"
            else:
                outcome = "unsafe" if result.error == "unsafe target" else "retry"
                next_at = min(candidate, deadline)
        disabled = await self._store.failed_attempt(
            claimed,
            result,
            outcome=outcome,
            next_attempt_at=next_at,
            disable=disable,
            disable_after_s=self.disable_after_s,
        )
        metrics.DELIVERIES.labels(outcome).inc()
        if disabled is not None:
            metrics.ENDPOINTS_DISABLED.labels(disabled).inc()
            log.warning(
                "endpoint disabled",
                endpoint_id=endpoint.id,
                tenant_id=endpoint.tenant_id,
                reason=disabled,
            )
        return outcome

    async def ping(self, endpoint: Endpoint) -> PostResult:
        """Post a signed ``endpoint.ping`` event now (not stored, not retried)."""
        now = self._clock()
        msg_id = f"evt_ping_{uuid.uuid4().hex}"
        body = orjson.dumps(
            {
                "type": PING,
                "id": msg_id,
                "tenant_id": endpoint.tenant_id,
                "timestamp": now.isoformat(),
                "data": {"endpoint_id": endpoint.id},
            }
        )
        started = time.perf_counter()
        result = await self._poster.post(endpoint.url, body, sign(endpoint, msg_id, body, now))
        metrics.DELIVERY_SECONDS.observe(time.perf_counter() - started)
        return result
