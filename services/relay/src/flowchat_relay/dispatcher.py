"""The delivery worker: per-endpoint scheduling, signing, retries. No I/O of its own.

Isolation: every endpoint with due deliveries gets a worker of its own with
``concurrency`` lanes. The worker leases due deliveries in batches (one query leases up
to ``batch`` of them; the lease is how long they stay invisible to other workers and
replicas) and hands them to its lanes as lanes come free, leasing the next batch while
the last ones are still in flight. An endpoint whose last batch saw a failure leases
only ``concurrency`` at a time, so a black-holed endpoint never holds many leases. A
black-holed endpoint ties up only its own lanes (each for at most the total timeout);
the other endpoints' workers never wait behind it.

Outcomes are recorded in batches by one writer (one transaction, a statement per kind
of outcome, for whatever finished since the last write). An outcome not yet recorded
when the process dies is the delivery leased again when its lease ends: at least once.

Outcomes: 2xx delivered; 410 Gone disables the endpoint at once (the delivery waits,
pending, for the endpoint to be enabled again); anything else (3xx — redirects are
never followed —, 4xx, 5xx, no answer, a timeout, an unsafe address) is retried after
``backoff`` (exponential with jitter, or the endpoint's ``Retry-After``), until
``retry_for_s`` after the event was stored (or replayed), then failed. An endpoint
whose deliveries all failed for ``disable_after_s`` is disabled. Each disabling, once
committed, is told to ``notices`` (an ``endpoint_disabled`` event on ``flowchat.events``);
a notice that cannot be published is logged and counted, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import orjson

from flowchat_contracts.tenant_events import EndpointDisabled
from flowchat_platform.logs import get_logger
from flowchat_relay import metrics
from flowchat_relay.events import PING
from flowchat_relay.ports import (
    Claimed,
    DeliveryStore,
    Disabled,
    Endpoint,
    Notices,
    Outcome,
    Poster,
    PostResult,
)
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


def disabled_event(done: Disabled, last: Outcome) -> EndpointDisabled:
    """The ``endpoint_disabled`` fact of a disabling: its id derived from the endpoint and
    the disabling's time (the same disabling, the same id), the URL's host only."""
    endpoint = last.claimed.endpoint
    at = done.at
    return EndpointDisabled(
        event_id=uuid.uuid5(
            uuid.NAMESPACE_URL, f"relay/{done.endpoint_id}/disabled/{at.isoformat()}"
        ).hex,
        tenant_id=endpoint.tenant_id,
        endpoint_id=done.endpoint_id,
        url_host=urlsplit(endpoint.url).hostname or "",
        reason="gone" if done.reason == "gone" else "failing",
        disabled_at=at,
        last_status_code=last.result.status,
        last_error=last.result.error[:512] if last.result.error else None,
    )


#: Outcomes recorded in one transaction at most.
OUTCOME_BATCH = 500


@dataclass
class _LaneState:
    """What an endpoint's lanes tell its worker: a failure (lease smaller batches), a
    410 (lease no more)."""

    failed: bool = False
    gone: bool = False


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
        batch: int = 64,
        poll_interval_s: float = 1.0,
        min_scan_interval_s: float = 0.02,
        clock: Clock = utcnow,
        rand: Callable[[], float] = random.random,
        notices: Notices | None = None,
    ) -> None:
        self._store = store
        self._notices = notices
        self._poster = poster
        self.concurrency = concurrency
        self.retry_for_s = retry_for_s
        self.backoff_base_s = backoff_base_s
        self.max_backoff_s = max_backoff_s
        self.disable_after_s = disable_after_s
        #: how long one attempt may take, at most (total timeout + a margin)
        self.lease_s = lease_s
        self.batch = max(batch, concurrency)
        self.poll_interval_s = poll_interval_s
        self.min_scan_interval_s = min_scan_interval_s
        self._clock = clock
        self._rand = rand
        self._wake = asyncio.Event()
        self._workers: dict[str, asyncio.Task[None]] = {}
        #: each running worker's "new deliveries are due" signal
        self._pokes: dict[str, asyncio.Event] = {}
        self._outcomes: list[Outcome] = []
        self._outcome_ready = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def lease_for(self, count: int) -> float:
        """The lease of a batch of ``count``: the rounds its lanes need for it and for
        the previous batch's deliveries still in flight, each the longest an attempt takes."""
        return self.lease_s * (math.ceil(count / self.concurrency) + 1)

    async def run(self) -> None:
        """Start a worker for every endpoint with due deliveries; until cancelled."""
        writer = asyncio.create_task(self._write_outcomes(), name="relay-outcomes")
        last_scan = -math.inf
        try:
            while True:
                # a burst of new events scans once per interval, not once per event; a
                # lone event is scanned for at once
                await asyncio.sleep(
                    max(0.0, last_scan + self.min_scan_interval_s - time.monotonic())
                )
                last_scan = time.monotonic()
                self._wake.clear()
                try:
                    for endpoint_id in await self._store.due_endpoints():
                        if endpoint_id in self._pokes:  # its worker leases them
                            self._pokes[endpoint_id].set()
                        elif endpoint_id not in self._workers:
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
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if self._outcomes:  # what finished before the stop: recorded, not redelivered
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._record(self._outcomes), 5.0)

    async def _drain(self, endpoint_id: str) -> None:
        lanes = asyncio.Semaphore(self.concurrency)
        inflight: set[asyncio.Task[None]] = set()
        state = _LaneState()
        poke = self._pokes[endpoint_id] = asyncio.Event()
        try:
            while not state.gone:
                limit = self.concurrency if state.failed else self.batch
                state.failed = False
                poke.clear()
                batch = await self._store.lease(endpoint_id, limit, self.lease_for(limit))
                if not batch:
                    if not inflight:
                        break
                    # nothing due now: lease again when a lane comes free or new
                    # deliveries come (a slow attempt never holds up the next ones)
                    waiter = asyncio.create_task(poke.wait())
                    await asyncio.wait({waiter, *inflight}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                for claimed in batch:
                    await lanes.acquire()
                    task = asyncio.create_task(self._lane(claimed, lanes, state))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
            if inflight:
                await asyncio.gather(*inflight)
        except asyncio.CancelledError:
            for task in inflight:
                task.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - leases expire; the next round retries
            log.warning("endpoint worker failed", endpoint_id=endpoint_id, error=repr(exc))
        finally:
            self._workers.pop(endpoint_id, None)
            self._pokes.pop(endpoint_id, None)
            self._wake.set()  # deliveries that came while the worker wound down

    async def _lane(self, claimed: Claimed, lanes: asyncio.Semaphore, state: _LaneState) -> None:
        try:
            outcome = await self.attempt(claimed)
        except Exception as exc:  # noqa: BLE001 - its lease ends; it is attempted again
            log.warning("attempt failed", endpoint_id=claimed.endpoint.id, error=repr(exc))
            state.failed = True
            return
        finally:
            lanes.release()
        if not outcome.delivered:
            state.failed = True
        if outcome.disable is not None:
            state.gone = True
        self._outcomes.append(outcome)
        self._outcome_ready.set()

    async def attempt(self, claimed: Claimed) -> Outcome:
        """Post one leased delivery; what became of it (recorded by the writer)."""
        endpoint = claimed.endpoint
        if claimed.body is None:
            result = PostResult(status=None, latency_s=0.0, error="no body in this format")
        else:
            now = self._clock()
            headers = sign(endpoint, claimed.event_id, claimed.body, now)
            result = await self._poster.post(endpoint.url, claimed.body, headers)
        metrics.DELIVERY_SECONDS.observe(result.latency_s)
        if result.ok:
            metrics.DELIVERIES.labels("delivered").inc()
            return Outcome(claimed, result, "delivered")
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
        metrics.DELIVERIES.labels(outcome).inc()
        return Outcome(claimed, result, outcome, next_attempt_at=next_at, disable=disable)

    async def _write_outcomes(self) -> None:
        """Record what the lanes finished, in batches, until cancelled; a failed write is
        tried again (the leases are long enough), the outcomes kept in order."""
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            batch, self._outcomes = self._outcomes[:OUTCOME_BATCH], self._outcomes[OUTCOME_BATCH:]
            if self._outcomes:
                self._outcome_ready.set()
            try:
                await self._record(batch)
            except asyncio.CancelledError:
                self._outcomes[:0] = batch
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be back soon
                log.warning("outcomes not recorded", count=len(batch), error=repr(exc))
                self._outcomes[:0] = batch
                self._outcome_ready.set()
                await asyncio.sleep(1.0)

    async def _record(self, batch: list[Outcome]) -> None:
        disabled = await self._store.record(batch, disable_after_s=self.disable_after_s)
        for done in disabled:  # committed: tell the platform, once per disabling
            metrics.ENDPOINTS_DISABLED.labels(done.reason).inc()
            last = next(o for o in reversed(batch) if o.claimed.endpoint.id == done.endpoint_id)
            if done.reason == "gone":  # the 410 that did it
                last = next(
                    (o for o in batch if o.claimed.endpoint.id == done.endpoint_id and o.disable),
                    last,
                )
            event = disabled_event(done, last)
            log.warning(
                "endpoint disabled",
                endpoint_id=done.endpoint_id,
                tenant_id=event.tenant_id,
                reason=done.reason,
                event_id=event.event_id,
            )
            await self._notify(event)

    async def _notify(self, event: EndpointDisabled) -> None:
        if self._notices is None:
            return
        try:
            await self._notices.endpoint_disabled(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the disabling stands; the event is lost
            metrics.NOTICES_UNPUBLISHED.labels(event.kind).inc()
            log.error(
                "endpoint_disabled not published",
                endpoint_id=event.endpoint_id,
                tenant_id=event.tenant_id,
                event_id=event.event_id,
                error=repr(exc),
            )

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
