"""A clustered broker under load: three RabbitMQ nodes of this file's own
(:mod:`cluster_kit`), quorum queues replicated on all three, the platform connected
through a local load balancer standing in for the Kubernetes Service.

15. The leader of ``whatsapp.outbound`` SIGKILLed under send-API load; a
    :class:`PublishProbe` measures a plain channel and the platform's publisher whose
    first publish to a queue the node led comes right after the kill.
16. The node leading most inbound queues (``conversation.inbound`` and its partition
    queues, where the webhooks go) SIGKILLed under webhook load.
17. The node leading ``whatsapp.outbound`` partitioned away (routing rules blackhole
    its distribution traffic; ``pause_minority`` pauses it) under send-API load, then
    healed.
18. A rolling restart of the three nodes (``rabbit:stop_and_halt()``, what
    ``rabbitmqctl stop`` calls; start; wait for the cluster and the queues' members)
    under send-API load.

Each scenario counts what reached the sandbox: ``lost`` (a request answered 202/200
whose message never got there), ``duplicated`` (more than one send per idempotency
key, per internal message id, or more replies than a customer's "Hi" gets), and
``recover`` (the longest time in the scenario when nothing got through: no request
accepted, or no send reaching the sandbox, whichever is longer). The cluster and the
platform (without the opt-in inbox and relay) start once for the module, on a vhost, a
database and a Redis database of their own; each scenario seeds its own tenant and
starts and ends with three nodes running and every quorum queue on three members.

The suite queries and drives the nodes through one hidden Erlang node
(:class:`cluster_kit.ErlAgent`: an RPC takes milliseconds where each ``rabbitmqctl``
call started a VM of its own, 5 to 10 s on a loaded machine).

In ``make test-faults`` (as root: ``ip netns``; the target installs iproute2 when ``ip``
is missing; skipped when not root); ``make test-faults-scale`` runs this module alone.
What its time goes to on a loaded 2-core machine: starting the cluster and the platform
(started together: each service retries the broker until the cluster's balancer opens),
and the five node starts of the scenarios (one per kill, three in the rolling restart;
30 to 170 s each depending on the load); the webhook load is paced, because every
webhook is a bot's turn and an unpaced backlog took minutes to drain. Runs and their
durations: docs/operations.md, "Losing a broker node".
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cluster_kit import ClusterNode, RabbitCluster
from faults_kit import (
    FaultStack,
    Figures,
    RedisNode,
    Tenant,
    baseline_replies,
    deliver_until_accepted,
    duplicates,
    inbound_webhook,
    ledger,
    open_windows,
    seed_tenant,
    wait_for,
)

from flowchat_contracts import topology
from flowchat_platform.testing import create_database, drop_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="needs root and iproute2 (ip netns): make test-faults installs iproute2",
    ),
]

OUTBOUND = topology.QUEUE_OUTBOUND
INBOUND = topology.QUEUE_CONVERSATION_INBOUND
CONSUMED = (INBOUND, OUTBOUND, topology.QUEUE_STATE_STATUS)
KEY = re.compile(r"cl-[0-9a-f]{32}")


# --------------------------------------------------------------------------- fixtures


class ClusterStack(FaultStack):
    """The platform without the opt-in inbox and relay (nothing here needs them)."""

    @property
    def names(self) -> list[str]:
        return [n for n in super().names if n not in ("inbox", "relay")]


@pytest.fixture(scope="module")
def cluster_vhost() -> str:
    """The platform's vhost on the cluster (the cluster adds it as it starts)."""
    return f"cluster-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_vhost: str
) -> Iterator[RabbitCluster]:
    """Three nodes, started in the background: ``stack`` starts the platform's processes
    meanwhile and waits for both (each takes one to three minutes on a loaded machine)."""
    cl = RabbitCluster(tmp_path_factory.mktemp("rabbit-cluster"))
    try:
        cl.start_in_background(cluster_vhost)
        yield cl
    finally:
        cl.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    cluster: RabbitCluster,
    cluster_vhost: str,
    redis_node: RedisNode,
) -> Iterator[FaultStack]:
    """One stack for the module (its start is the slow part), on the cluster's vhost, a
    database and a Redis database of its own; each scenario seeds its own tenant."""
    import redis

    dsn = asyncio.run(create_database())
    redis_url = redis_node.url(14)
    with redis.Redis.from_url(redis_url) as r:
        r.flushdb()
    st = ClusterStack.create(
        tmp_path_factory.mktemp("cluster-stack"),
        amqp_url=cluster.url(cluster_vhost),
        database_url=dsn,
        redis_url=redis_url,
    )
    try:
        started = time.monotonic()
        # while the cluster starts: each service retries the broker until the cluster's
        # balancer opens (once the nodes are clustered and the vhost is there)
        for name in st.names:
            st.spawn(name)
        print(f"[cluster] three nodes clustered in {cluster.wait_started():.1f}s")
        st.wait_ready(st.names, timeout_s=300)  # several minutes when the machine is loaded
        print(f"[cluster] cluster and platform started in {time.monotonic() - started:.1f}s")
        yield st
    finally:
        codes = st.stop()
        asyncio.run(drop_database(dsn))
    bad = {n: c for n, c in codes.items() if c != 0}
    assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"


@pytest.fixture(autouse=True)
def whole_cluster(cluster: RabbitCluster, cluster_vhost: str, stack: FaultStack) -> Iterator[None]:
    """Each scenario starts and ends with three nodes running, clustered, queues whole
    (a scenario that failed half-way may have left a node down or cut off)."""
    restore(cluster, cluster_vhost)
    yield
    restore(cluster, cluster_vhost)


def restore(cluster: RabbitCluster, vhost: str) -> None:
    """Every node running and clustered again (partition healed), every consumed queue
    with three members online."""
    cluster.heal()
    for node in cluster.nodes:
        if node.proc is None or node.proc.poll() is not None:
            node.start(timeout_s=420)
    cluster.wait_members(len(cluster.nodes), timeout_s=240)
    deadline = time.monotonic() + 120
    while not queues_whole(cluster, vhost):
        assert time.monotonic() < deadline, "queues not back on three members"
        time.sleep(0.5)


def queues_whole(cluster: RabbitCluster, vhost: str) -> bool:
    try:
        queues = cluster.queues(vhost)
    except Exception:  # noqa: BLE001 - a node still booting
        return False
    if len(queues) < cluster.queue_count(vhost):
        return False  # a queue whose recorded leader is down
    quorum = [q for q in queues.values() if q.get("type") == "quorum"]
    return all(len(q.get("online") or []) == 3 for q in quorum)


# --------------------------------------------------------------------------- load


@dataclass
class SendLoad:
    """Workers posting to the gateway's send API, each request retried with its own
    ``Idempotency-Key`` until a 202, as a client does; the text carries the key."""

    client: httpx.AsyncClient
    stack: FaultStack
    tenant: Tenant
    customers: list[str]
    #: key → monotonic time of its 202
    accepted: dict[str, float] = field(default_factory=dict)
    #: key → message id the gateway answered (every 202 of a key)
    message_ids: dict[str, set[str]] = field(default_factory=dict)
    unaccepted: set[str] = field(default_factory=set)
    #: answers no retry changes (a 4xx other than 429): the scenario is wrong
    rejected: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    attempts: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, workers: int = 4, pause_s: float = 0.15) -> None:
        self.tasks = [asyncio.create_task(self._worker(w, pause_s)) for w in range(workers)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def _worker(self, w: int, pause_s: float) -> None:
        n = 0
        while not self.stop.is_set():
            to = self.customers[(w * 7919 + n) % len(self.customers)]
            n += 1
            await self.send_until_accepted(f"cl-{uuid.uuid4().hex}", to)
            await asyncio.sleep(pause_s)

    async def send_until_accepted(self, key: str, to: str, deadline_s: float = 60) -> None:
        body = {
            "account_id": self.tenant.account_id,
            "to": to,
            "content": {"type": "text", "body": f"order update {key}"},
        }
        headers = {"Authorization": f"Bearer {self.tenant.api_key}", "Idempotency-Key": key}
        stop = time.monotonic() + deadline_s
        while time.monotonic() < stop:
            self.attempts += 1
            try:
                r = await self.client.post(
                    f"{self.stack.urls['gateway']}/v1/messages", headers=headers, json=body
                )
                status = r.status_code
            except httpx.TransportError:
                status = 0
            if status == 202:
                self.accepted[key] = time.monotonic()
                self.message_ids.setdefault(key, set()).add(str(r.json()["message_id"]))
                return
            self.refused[status] += 1
            # 409: the same key still in progress (an earlier attempt timed out here)
            if 400 <= status < 500 and status not in (409, 429):
                self.rejected.append(f"{status} {r.text[:300]}")
                self.stop.set()
                return
            await asyncio.sleep(0.25)
        self.unaccepted.add(key)

    def longest_gap(self, since: float) -> float:
        """The longest time after ``since`` in which no request was accepted."""
        times = sorted(t for t in self.accepted.values() if t >= since)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    async def wait_accepted(self, count: int, timeout_s: float = 60) -> None:
        await wait_for(
            lambda: len(self.accepted) >= count or self.rejected,
            timeout_s=timeout_s,
            what=f"load: {len(self.accepted)} accepted, refused {dict(self.refused)}",
        )
        assert not self.rejected, f"requests rejected: {self.rejected[:3]}"


def sandbox_gap(entries: list[dict[str, Any]], around: float) -> float:
    """The longest pause between consecutive sends the sandbox took, within the window
    from 5 s before ``around`` (a ``time.time()``) onwards."""
    times = sorted(float(e["timestamp"]) for e in entries if float(e["timestamp"]) >= around - 5)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def settle_sends(load: SendLoad, fig: Figures, timeout_s: float = 90) -> list[Any]:
    """Wait until every accepted key reached the sandbox; fill processed, lost, duplicated."""

    async def sent_keys() -> Counter[str]:
        entries = await ledger(load.client, load.stack, phone_number_id=load.tenant.phone_number_id)
        return Counter(k for e in entries for k in KEY.findall(str(e.get("body"))))

    async def all_there() -> bool:
        seen = await sent_keys()
        return all(seen[k] >= 1 for k in load.accepted)

    with contextlib.suppress(AssertionError):
        await wait_for(all_there, timeout_s=timeout_s, interval_s=0.5, what="sends")
    await asyncio.sleep(2)  # late duplicates would show up now
    entries = await ledger(load.client, load.stack, phone_number_id=load.tenant.phone_number_id)
    seen = Counter(k for e in entries for k in KEY.findall(str(e.get("body"))))
    fig.sent = len(load.accepted) + len(load.unaccepted)
    fig.processed = sum(1 for k in load.accepted if seen[k] >= 1)
    fig.lost = len(load.accepted) - fig.processed
    per_key = sum(n - 1 for n in seen.values() if n > 1)
    two_ids = sum(1 for ids in load.message_ids.values() if len(ids) > 1)
    fig.duplicated = max(per_key, duplicates(entries)) + two_ids
    return entries


async def send_scenario_setup(
    client: httpx.AsyncClient, stack: FaultStack, customers: int = 60
) -> tuple[Tenant, list[str]]:
    tenant = await seed_tenant(client, stack)
    wa_ids = [f"2348014{n:06d}" for n in range(3000, 3000 + customers)]
    await open_windows(client, stack, tenant, wa_ids)
    return tenant, wa_ids


def queues_ready(cluster: RabbitCluster, vhost: str, members: int = 3) -> bool:
    """Every consumed queue has a leader, ``members`` members online and a consumer."""
    try:
        queues = cluster.queues(vhost)
    except Exception:  # noqa: BLE001 - a node still booting
        return False
    partitions = [n for n in queues if n.startswith(f"{INBOUND}.")]
    for name in (*CONSUMED, *partitions):
        q = queues.get(name)
        if q is None or not q.get("leader") or int(q.get("consumers") or 0) < 1:
            return False
        if len(q.get("online") or []) < members:
            return False
    return True


def inbound_leaders(cluster: RabbitCluster, vhost: str) -> Counter[str]:
    """Node → how many of the inbound queues (``conversation.inbound`` and its
    partitions, where the gateway's webhooks go) it leads."""
    return Counter(
        str(q["leader"])
        for name, q in cluster.queues(vhost).items()
        if name == INBOUND or name.startswith(f"{INBOUND}.")
    )


def replicated(cluster: RabbitCluster, vhost: str) -> dict[str, int]:
    """Quorum queue → members (every quorum queue of the vhost)."""
    return {
        name: len(q.get("members") or [])
        for name, q in cluster.queues(vhost).items()
        if q.get("type") == "quorum"
    }


async def flows(count: Any, more: int, timeout_s: float, done: Any = None) -> float | None:
    """Seconds until ``count()`` grew by ``more`` (requests accepted) or the load has
    nothing left to send (``done()``); None if not within ``timeout_s`` (not fatal: the
    scenario goes on and reports it)."""
    started, base = time.monotonic(), count()

    def grew() -> bool:
        return bool(count() >= base + more or (done is not None and done()))

    with contextlib.suppress(AssertionError):
        await wait_for(grew, timeout_s=timeout_s, what="flow")
        return time.monotonic() - started
    return None


PUBLISHED = re.compile(
    r'^flowchat_amqp_published_total\{[^}]*outcome="(\w+)"[^}]*service="gateway"[^}]*\} (\S+)$'
    r'|^flowchat_amqp_published_total\{[^}]*service="gateway"[^}]*outcome="(\w+)"[^}]*\} (\S+)$',
    re.M,
)


async def gateway_publishes(client: httpx.AsyncClient, stack: FaultStack) -> Counter[str]:
    """The gateway's publishes so far by outcome (confirmed, failed: nacked or
    unroutable, timeout: no confirm in time), from its ``/metrics``."""
    r = await client.get(f"{stack.urls['gateway']}/metrics")
    out: Counter[str] = Counter()
    for m in PUBLISHED.finditer(r.text):
        outcome, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        out[outcome] += int(float(value))
    return out


def publish_outcomes(before: Counter[str], after: Counter[str]) -> str:
    """What the gateway's publishes did during the scenario (a 503 is one of these)."""
    d = {k: after[k] - before[k] for k in ("failed", "timeout")}
    return f"gw_nacked_or_failed={d['failed']} gw_confirm_timeouts={d['timeout']}"


def secs(value: float | None) -> str:
    return "no" if value is None else f"{value:.1f}s"


def describe(load: SendLoad, extra: str = "") -> str:
    refused = ",".join(f"{s}x{n}" for s, n in sorted(load.refused.items())) or "none"
    return f"attempts={load.attempts} refused={refused} unaccepted={len(load.unaccepted)} {extra}"


def node_url(node: ClusterNode, vhost: str) -> str:
    from urllib.parse import quote

    return f"amqp://guest:guest@{node.host}:{node.port}/{quote(vhost, safe='')}"


@dataclass
class PublishProbe:
    """Two publishers connected to a surviving node before the kill, whose first publish
    to a quorum queue the killed node led comes right after it (as for a publisher that
    reconnected at once, while the queue's record still names the dead leader): a plain
    aio-pika channel with confirms (what every service did before) and the platform's
    :class:`Amqp` (a new channel after a nack); each publishes until its first confirm.
    On RabbitMQ 3.10 such a channel has every publish to that queue nacked until the
    dead node is back (docs/operations.md, "Losing a broker node")."""

    cluster: RabbitCluster
    vhost: str
    queue: str = field(default_factory=lambda: f"probe.{uuid.uuid4().hex[:8]}")
    #: publisher → seconds from the kill to its first confirm (None: none)
    confirmed_s: dict[str, float | None] = field(default_factory=dict)
    nacks: Counter[str] = field(default_factory=Counter)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    _conn: Any = None
    _channel: Any = None
    _amqp: Any = None

    async def prepare(self, leader: ClusterNode) -> None:
        """The queue, led by ``leader`` (declared on a connection to it: client-local);
        both publishers connected to another node."""
        import aio_pika

        from flowchat_platform.amqp import Amqp

        conn = await aio_pika.connect(node_url(leader, self.vhost))
        try:
            ch = await conn.channel()
            await ch.declare_queue(
                self.queue,
                durable=True,
                arguments={"x-queue-type": "quorum", "x-overflow": "reject-publish"},
            )
        finally:
            await conn.close()
        survivor = next(n for n in self.cluster.nodes if n is not leader)
        url = node_url(survivor, self.vhost)
        self._conn = await aio_pika.connect_robust(url)
        self._channel = await self._conn.channel(publisher_confirms=True)
        self._amqp = Amqp(url, service="probe", declare=False, publish_timeout_s=5)
        await self._amqp.connect()

    async def run(self, killed: float, timeout_s: float) -> None:
        try:
            await asyncio.gather(
                self._publisher("plain", killed, timeout_s),
                self._publisher("amqp", killed, timeout_s),
            )
        finally:
            await self.close()

    async def close(self) -> None:
        if self._amqp is not None:
            await self._amqp.close(grace_s=1)
        if self._conn is not None and not self._conn.is_closed:
            await self._conn.close()

    async def _publisher(self, kind: str, killed: float, timeout_s: float) -> None:
        import aio_pika

        self.confirmed_s[kind] = None
        deadline = killed + timeout_s
        while time.monotonic() < deadline and not self.stop.is_set():
            try:
                if kind == "amqp":
                    await self._amqp.publish("", self.queue, b"{}")
                else:
                    await asyncio.wait_for(
                        self._channel.default_exchange.publish(
                            aio_pika.Message(b"{}", delivery_mode=2), self.queue
                        ),
                        5,
                    )
            except Exception:  # noqa: BLE001 - a nack, a timeout: counted, retried
                self.nacks[kind] += 1
                await asyncio.sleep(0.2)
                continue
            self.confirmed_s[kind] = time.monotonic() - killed
            return

    def describe(self) -> str:
        return " ".join(
            f"probe_{k}={secs(v)}/{self.nacks[k]}nacks" for k, v in self.confirmed_s.items()
        )


# --------------------------------------------------------------------------- scenarios


async def _kill_leader_under_send_load(
    cluster: RabbitCluster, vhost: str, stack: FaultStack, queue: str, figures: Figures
) -> tuple[SendLoad, ClusterNode]:
    async with httpx.AsyncClient(timeout=15) as client:
        tenant, customers = await send_scenario_setup(client, stack)
        members = replicated(cluster, vhost)
        assert members, "no quorum queue"
        assert all(n == 3 for n in members.values()), members
        load = SendLoad(client, stack, tenant, customers)
        published = await gateway_publishes(client, stack)
        leader = await asyncio.to_thread(cluster.leader_of, vhost, queue)
        probe = PublishProbe(cluster, vhost)
        await probe.prepare(leader)
        load.start()
        probing: asyncio.Task[None] | None = None
        try:
            await load.wait_accepted(20)
            killed_wall, killed = time.time(), time.monotonic()
            await asyncio.to_thread(leader.kill)
            probing = asyncio.create_task(probe.run(killed, 45))
            await wait_for(
                lambda: asyncio.to_thread(queues_ready, cluster, vhost, 2),
                timeout_s=120,
                interval_s=0.5,
                what="a new leader and consumers on the surviving nodes",
            )
            consumers_s = time.monotonic() - killed
            new_leader = (await asyncio.to_thread(cluster.queues, vhost))[queue]["leader"]
            on_two = await flows(lambda: len(load.accepted), 15, 45)
            with contextlib.suppress(AssertionError):
                await wait_for(
                    lambda: probe.confirmed_s.get("amqp") is not None,
                    timeout_s=max(1.0, killed + 45 - time.monotonic()),
                    what="probe",
                )
            probe.stop.set()  # the plain channel: confirmed by now, or only once the node is back
            await probing
            # the killed node comes back (rejoins on its own data), and sends flow then
            await asyncio.to_thread(leader.start, 420)
            after = await flows(lambda: len(load.accepted), 15, 120)
            assert after is not None, f"no sends accepted after the node came back {describe(load)}"
        finally:
            probe.stop.set()
            if probing is not None:
                await probing
            else:
                await probe.close()
            await load.finish()
        entries = await settle_sends(load, figures)
        outcomes = publish_outcomes(published, await gateway_publishes(client, stack))
        figures.recover_s = max(load.longest_gap(killed - 5), sandbox_gap(entries, killed_wall))
        figures.notes = describe(
            load,
            f"killed={leader.name.split('@')[0]} new_leader={str(new_leader).split('@')[0]} "
            f"consumers_back={consumers_s:.1f}s flowing_on_two={secs(on_two)} {outcomes} "
            + probe.describe(),
        )
        assert probe.confirmed_s["amqp"] is not None, f"Amqp never confirmed: {probe.describe()}"
        return load, leader


@pytest.mark.timeout(900)
async def test_outbound_leader_killed(cluster, cluster_vhost, stack, figures):
    _load, leader = await _kill_leader_under_send_load(
        cluster, cluster_vhost, stack, OUTBOUND, figures
    )
    assert cluster.queues(cluster_vhost)[OUTBOUND]["leader"] != leader.name
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(900)
async def test_inbound_leader_killed(cluster, cluster_vhost, stack, figures):
    async with httpx.AsyncClient(timeout=15) as client:
        tenant = await seed_tenant(client, stack)
        per_customer = await baseline_replies(client, stack, tenant)
        customers = [f"1555{n:07d}" for n in range(4000, 5200)]
        await open_windows(client, stack, tenant, customers)
        published = await gateway_publishes(client, stack)
        accepted: dict[str, float] = {}
        refused: Counter[int] = Counter()
        pending: asyncio.Queue[str] = asyncio.Queue()
        for c in customers:
            pending.put_nowait(c)
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set() and not pending.empty():
                wa_id = pending.get_nowait()
                attempts: list[Any] = []
                body = inbound_webhook(tenant, wa_id, "Hi")
                if await deliver_until_accepted(client, stack, tenant, body, wa_id, attempts):
                    accepted[wa_id] = time.monotonic()
                refused.update(a.status for a in attempts if a.status != 200)
                # paced (about 7 webhooks a second in all): every one is a bot's turn,
                # and a backlog of them is what the scenario would spend its time on
                await asyncio.sleep(0.4)

        workers = [asyncio.create_task(worker()) for _ in range(3)]
        try:
            await wait_for(lambda: len(accepted) >= 20, timeout_s=120, what="load")
            # the node leading most inbound queues (the partitions the webhooks go to)
            led = await asyncio.to_thread(inbound_leaders, cluster, cluster_vhost)
            leader = cluster.node_named(led.most_common(1)[0][0])
            killed_wall, killed = time.time(), time.monotonic()
            await asyncio.to_thread(leader.kill)
            await wait_for(
                lambda: asyncio.to_thread(queues_ready, cluster, cluster_vhost, 2),
                timeout_s=120,
                interval_s=0.5,
                what="a new leader and consumers on the surviving nodes",
            )
            consumers_s = time.monotonic() - killed
            still_led = (await asyncio.to_thread(inbound_leaders, cluster, cluster_vhost))[
                leader.name
            ]
            on_two = await flows(lambda: len(accepted), 15, 45, pending.empty)
            await asyncio.to_thread(leader.start, 420)
            after = await flows(lambda: len(accepted), 15, 120, pending.empty)
            assert after is not None, f"no webhook accepted after the node came back {refused}"
        finally:
            stop.set()
            await asyncio.gather(*workers)

        async def answered() -> bool:
            entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
            counts = Counter(e["to"] for e in entries)
            return all(counts[c] >= per_customer for c in accepted)

        with contextlib.suppress(AssertionError):
            await wait_for(answered, timeout_s=90, interval_s=0.5, what="replies")
        await asyncio.sleep(2)
        entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
        counts = Counter(e["to"] for e in entries)
        outcomes = publish_outcomes(published, await gateway_publishes(client, stack))
        figures.sent = len(accepted)
        figures.processed = sum(1 for c in accepted if counts[c] >= per_customer)
        figures.lost = len(accepted) - figures.processed
        figures.duplicated = duplicates(entries) + sum(
            max(0, counts[c] - per_customer) for c in accepted
        )
        times = sorted(t for t in accepted.values() if t >= killed - 5)
        api_gap = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
        figures.recover_s = max(api_gap, sandbox_gap(entries, killed_wall))
        figures.notes = (
            f"replies_each={per_customer} refused="
            f"{','.join(f'{s}x{n}' for s, n in sorted(refused.items())) or 'none'} "
            f"killed={leader.name.split('@')[0]} (led {led[leader.name]} inbound queues) "
            f"consumers_back={consumers_s:.1f}s flowing_on_two={secs(on_two)} {outcomes} "
            f"unaccepted={len(customers) - len(accepted) - pending.qsize()}"
        )
    assert still_led == 0, "the killed node still leads inbound queues"
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(900)
async def test_node_partitioned_pause_minority(cluster, cluster_vhost, stack, figures):
    async with httpx.AsyncClient(timeout=15) as client:
        tenant, customers = await send_scenario_setup(client, stack)
        load = SendLoad(client, stack, tenant, customers)
        published = await gateway_publishes(client, stack)
        load.start()
        try:
            await load.wait_accepted(20)
            # the hardest node to lose: the one leading the send queue
            victim = await asyncio.to_thread(cluster.leader_of, cluster_vhost, OUTBOUND)
            cut_wall, cut = time.time(), time.monotonic()
            await asyncio.to_thread(cluster.partition, victim)

            def paused() -> bool:
                # pause_minority: the node stops its listeners (AMQP port closed)
                return not victim.answers()

            await wait_for(paused, timeout_s=120, interval_s=0.2, what="minority node paused")
            paused_s = time.monotonic() - cut
            await wait_for(
                lambda: asyncio.to_thread(queues_ready, cluster, cluster_vhost, 2),
                timeout_s=120,
                interval_s=0.5,
                what="a new leader and consumers on the majority",
            )
            majority_s = time.monotonic() - cut
            on_majority = await flows(lambda: len(load.accepted), 15, 45)
            await asyncio.to_thread(cluster.heal)
            healed = time.monotonic()
            await asyncio.to_thread(cluster.wait_members, 3, 90)
            await wait_for(
                lambda: asyncio.to_thread(queues_ready, cluster, cluster_vhost, 3),
                timeout_s=120,
                interval_s=0.5,
                what="three members online again",
            )
            rejoined_s = time.monotonic() - healed
            after = await flows(lambda: len(load.accepted), 15, 120)
            assert after is not None, f"no sends accepted after healing {describe(load)}"
        finally:
            await asyncio.to_thread(cluster.heal)
            await load.finish()
        entries = await settle_sends(load, figures)
        outcomes = publish_outcomes(published, await gateway_publishes(client, stack))
        figures.recover_s = max(load.longest_gap(cut - 5), sandbox_gap(entries, cut_wall))
        figures.notes = describe(
            load,
            f"partitioned={victim.name.split('@')[0]} paused_after={paused_s:.1f}s "
            f"majority_ready={majority_s:.1f}s flowing_on_majority={secs(on_majority)} "
            f"rejoined_after_heal={rejoined_s:.1f}s {outcomes} "
            "method=blackhole-rules(dist addresses, own netns)",
        )
    assert figures.lost == 0
    assert figures.duplicated == 0


@pytest.mark.timeout(900)
async def test_rolling_restart(cluster, cluster_vhost, stack, figures):
    async with httpx.AsyncClient(timeout=15) as client:
        tenant, customers = await send_scenario_setup(client, stack)
        load = SendLoad(client, stack, tenant, customers)
        published = await gateway_publishes(client, stack)
        load.start()
        restarts: list[str] = []
        try:
            await load.wait_accepted(20)
            began_wall, began = time.time(), time.monotonic()
            for node in cluster.nodes:
                t0 = time.monotonic()
                await asyncio.to_thread(cluster.stop_gracefully, node)
                await asyncio.to_thread(node.start, 420)
                await asyncio.to_thread(cluster.wait_members, 3, 90)
                await wait_for(
                    lambda: asyncio.to_thread(queues_ready, cluster, cluster_vhost, 3),
                    timeout_s=120,
                    interval_s=0.5,
                    what="three members online after a node's restart",
                )
                restarts.append(f"{node.name.split('@')[0]}:{time.monotonic() - t0:.1f}s")
            rolled_s = time.monotonic() - began
            after = await flows(lambda: len(load.accepted), 15, 120)
            assert after is not None, f"no sends accepted after the restarts {describe(load)}"
        finally:
            await load.finish()
        entries = await settle_sends(load, figures)
        outcomes = publish_outcomes(published, await gateway_publishes(client, stack))
        figures.recover_s = max(load.longest_gap(began - 5), sandbox_gap(entries, began_wall))
        figures.notes = describe(
            load, f"restarts={' '.join(restarts)} rolling_total={rolled_s:.1f}s {outcomes}"
        )
    assert figures.lost == 0
    assert figures.duplicated == 0
