"""Redis that scales and fails over, on redis-servers of this file's own.

13. Redis Cluster: three primaries and three replicas (``redis-server
    --cluster-enabled yes`` on ports of their own, formed by ``redis-cli --cluster
    create``). The sender's code, as its app builds it (``create_redis`` of a
    ``redis+cluster://`` URL, one :class:`RedisBatcher` shared by the idempotency store
    and the limiter), claims concurrent sends of thirty tenants whose keys spread over
    every primary: the claim script (idempotency key, the customer's window written by
    the gateway's own store, the tenant's opt-out set, the four limiter keys) answers
    each right (claimed, duplicate, opted out, window closed, limiter wait), batches
    hold several slots, and the limiter paces one number exactly. With
    ``claim_replicas=1`` the ``WAIT`` goes to the slot's own primary and every claim is
    acknowledged by its replica.

14. Primary failover, asynchronous replication (the last writes lost): a primary and
    a replica linked through a proxy that can stall the replication stream. A claim
    the replica never got, then the primary killed and the replica promoted
    (``REPLICAOF NO ONE``), then the command delivered again:

    - without ``claim_replicas``: the claim is gone and the command is sent twice;
    - with ``claim_replicas=1`` (``WAIT 1 <ms>`` after the claim, on its connection):
      the claim that no replica acknowledged is released and nothing is sent; after
      the failover the redelivery sends it once, and a claim that was replicated but
      whose result was lost is not resent (its outcome is unknown, as after a crash).

A delivery here is the sender's order of Redis calls (claim and admit in one script,
the provider call, the result stored), with the provider a counter.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from faults_kit import Figures, TcpProxy, free_port, port_answers
from redis.asyncio.cluster import RedisCluster

from flowchat_contracts import OutboundCommand, SendResult, TextContent, optout_key
from flowchat_contracts.shared_state import tenant_tag
from flowchat_gateway.store import GatewayStore
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.redis import create_redis, is_cluster
from flowchat_platform.redis_batch import RedisBatcher
from flowchat_sender.claims import Claim, OptOutCheck, WindowCheck
from flowchat_sender.idempotency import IdempotencyStore
from flowchat_sender.ratelimit import RateLimiter
from flowchat_sender.templates import TemplateCatalog

pytestmark = [pytest.mark.integration]

EXE = shutil.which("redis-server") or "/usr/bin/redis-server"
CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and not port_answers(port + 10000):
            return port
    raise AssertionError("no free port pair for a cluster node")


class Server:
    """One redis-server of this file's own (no persistence), in its own directory."""

    def __init__(self, base: Path, *extra: str) -> None:
        self.port = cluster_port()
        self.dir = base / str(self.port)
        self.dir.mkdir(parents=True)
        args = [EXE, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir), "--repl-diskless-sync-delay", "0"]
        args += extra
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not port_answers(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"redis-server did not start: {self.dir}/redis.log")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def info(self, section: str) -> dict[str, object]:
        with self.client() as c:
            return dict(c.info(section))

    def linked(self) -> bool:
        """A primary, or a replica whose link to its primary is up."""
        info = self.info("replication")
        return info.get("role") == "master" or info.get("master_link_status") == "up"

    def cluster_ok(self) -> bool:
        with self.client() as c:
            return b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.wait(timeout=10)


def wait_until(check: object, what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.05)


# --------------------------------------------------------------------------- helpers


def command(tenant: str, n: int, to: str = "16505550100") -> OutboundCommand:
    return OutboundCommand(
        tenant_id=tenant,
        account_id=f"acc-{tenant}",
        idempotency_key=f"key-{n}",
        message_id=f"msg-{tenant}-{n}",
        to=f"+{to}",
        content=TextContent(body=f"hello {n}"),
    )


class Provider:
    """The provider's side: how many times each message was handed over."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()


async def deliver(
    store: IdempotencyStore,
    limiter: RateLimiter,
    provider: Provider,
    cmd: OutboundCommand,
    *,
    owner: str,
    window: bool = False,
    optout: bool = False,
    complete: bool = True,
) -> Claim:
    """The sender's Redis steps for one delivery: claim (with the guards and the limiter
    slot, one script), the provider call when claimed, the result stored."""
    claim = await store.claim_and_admit(
        cmd,
        owner,
        limit=limiter.request(
            cmd.tenant_id, f"pn-{cmd.tenant_id}", cmd.to, rate_mps=1000, max_wait_s=5
        ),
        window=WindowCheck(cmd.tenant_id, cmd.account_id, cmd.to) if window else None,
        optout=OptOutCheck(cmd.tenant_id, cmd.to) if optout else None,
    )
    if claim.claimed and claim.window_closed is None and not claim.opted_out:
        provider.sent[cmd.message_id] += 1
        if complete:
            await store.complete(cmd, owner, accepted(cmd))
    return claim


def accepted(cmd: OutboundCommand) -> SendResult:
    return SendResult(
        message_id=cmd.message_id,
        idempotency_key=cmd.idempotency_key,
        tenant_id=cmd.tenant_id,
        account_id=cmd.account_id,
        to=cmd.to,
        message_type="text",
        status="accepted",
        provider="meta",
        provider_message_id=f"wamid.{cmd.message_id}",
        attempts=1,
    )


# --------------------------------------------------------------------------- 13. cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    base = tmp_path_factory.mktemp("redis-cluster")
    extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
    nodes: list[Server] = []
    try:
        for _ in range(6):
            nodes.append(Server(base, *extra, "--cluster-node-timeout", "2000"))
        subprocess.run(
            [
                CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in nodes:
            wait_until(node.cluster_ok, f"cluster state ok on {node.port}")
        # every replica in sync with its primary (the WAIT below counts on them)
        for node in nodes:
            wait_until(node.linked, f"replica {node.port} linked")
        for node in nodes:
            if node.info("replication").get("role") == "master":
                wait_until(lambda node=node: caught_up(node), f"replica of {node.port} online")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def cluster_client(cluster: list[Server]) -> AsyncIterator[aioredis.Redis]:
    client = create_redis(f"redis+cluster://127.0.0.1:{cluster[0].port}")
    try:
        yield client
    finally:
        await client.aclose()


async def test_sender_scripts_on_a_redis_cluster(
    cluster_client: aioredis.Redis, figures: Figures
) -> None:
    client = cluster_client
    assert is_cluster(client)
    nodes = cast(RedisCluster, client)
    await nodes.initialize()
    tenants = [f"tc{i}" for i in range(30)]
    primaries = {getattr(nodes.get_node_from_key(tenant_tag(t)), "name", None) for t in tenants}
    assert len(primaries) == 3, "the tenants' keys spread over every primary"

    batcher = RedisBatcher(client)
    store = IdempotencyStore(client, ttl_s=600, batcher=batcher)
    limiter = RateLimiter(client, batcher=batcher)
    provider = Provider()
    customer, opted, silent = "16505550100", "16505550111", "16505550122"

    # the gateway's own store writes the claims and windows (one batch over many slots;
    # the first batch loads the scripts on every primary: not the deadline under test)
    gateway = GatewayStore(client, timeout_s=5)
    now = int(time.time())
    window_claims = await gateway.claim(
        [gateway.dedupe_key(f"acc-{t}", "evt-1") for t in tenants],
        600,
        [(t, f"acc-{t}", customer, now) for t in tenants]
        + [(t, f"acc-{t}", silent, now - 30 * 3600) for t in tenants],
    )
    assert window_claims.done == window_claims.in_flight == frozenset()
    marks = [gateway.dedupe_key(f"acc-{t}", f"evt-{n}") for t in tenants for n in (1, 2)]
    taken = await gateway.claim(marks, 600)  # one script per slot
    assert len(taken.in_flight) == len(tenants)
    assert taken.done == frozenset()
    for t in tenants:
        await client.sadd(optout_key(t), opted)

    async def one(t: str, n: int, to: str) -> Claim:
        return await deliver(
            store, limiter, provider, command(t, n, to), owner="a", window=True, optout=True
        )

    started = time.perf_counter()
    claims = await asyncio.gather(
        *(one(t, n, to) for t in tenants for n, to in ((1, customer), (2, opted), (3, silent)))
    )
    elapsed = time.perf_counter() - started
    by_kind = Counter(
        "sent"
        if c.claimed and c.window_closed is None and not c.opted_out
        else "optout"
        if c.opted_out
        else "closed"
        if c.window_closed is not None
        else "other"
        for c in claims
    )
    assert by_kind == {"sent": 30, "optout": 30, "closed": 30}, by_kind
    assert batcher.batches < batcher.items, "concurrent claims went in batches"

    # delivered again (another replica, say): duplicates, never a second send
    again = await asyncio.gather(*(one(t, 1, customer) for t in tenants))
    assert all(c.record is not None and c.record.result is not None for c in again)
    assert set(provider.sent.values()) == {1}
    assert len(provider.sent) == 30

    # the limiter, alone and in the claim: one number at 10/s paced 100 ms apart
    waits = [
        (await limiter.acquire("tc0", "pn-pace", f"r{i}", rate_mps=10, max_wait_s=5)).wait_s
        for i in range(5)
    ]
    steps = [b - a for a, b in itertools.pairwise(waits)]
    assert all(0.07 < s < 0.13 for s in steps), waits
    await limiter.hold("tc1", "pn-tc1", customer, duration_s=5)
    held = await deliver(store, limiter, provider, command("tc1", 9), owner="a")
    assert held.admission is not None
    assert held.admission.limit == "hold"
    await limiter.throttle("tc2", "pn-tc2", factor=0.5, duration_s=5)
    assert await client.get("flowchat:sender:rl:{tc2}:throttle:pn-tc2") == b"0.5"

    # durable claims on the cluster: WAIT on the slot's primary, its replica answers
    durable = RedisBatcher(client, replicas=1, wait_ms=800)
    dstore = IdempotencyStore(client, ttl_s=600, batcher=durable)
    dlimiter = RateLimiter(client, batcher=durable)

    def durably(t: str) -> Callable[[], Awaitable[Claim]]:
        return lambda: deliver(dstore, dlimiter, provider, command(t, 5, "16505550133"), owner="b")

    dclaims = await asyncio.gather(*(retried(durably(t)) for t in tenants))
    assert all(c.claimed for c in dclaims), [c for c in dclaims if not c.claimed][:3]
    assert durable.batches < durable.items

    figures.sent = len(claims) + len(again) + len(dclaims)
    figures.processed = figures.sent
    figures.duplicated = sum(n - 1 for n in provider.sent.values())
    figures.notes = (
        f"3 primaries+3 replicas, 30 tenants on {len(primaries)} primaries, "
        f"{batcher.items} scripts in {batcher.batches} batches, 90 claims {elapsed * 1000:.0f} ms"
    )
    assert figures.duplicated == 0


class _NoGraph:
    """The template source of a test whose catalogs are all in Redis: never called."""

    async def fetch(self, account: AccountCredentials) -> list[dict[str, Any]]:
        raise AssertionError(f"{account.waba_id}: synced from Graph, not read from Redis")


async def test_template_catalogs_read_together_on_a_redis_cluster(
    cluster_client: aioredis.Redis,
) -> None:
    """A fresh sender's template catalogs of thirty WABAs on every primary: read in
    batches (redis-py's cluster pipeline: one per node), each WABA its own catalog."""
    client = cluster_client
    nodes = cast(RedisCluster, client)
    await nodes.initialize()
    accounts = [
        AccountCredentials(
            account_id=f"acc-tc{i}", tenant_id=f"tc{i}", provider="meta", waba_id=f"wc{i}"
        )
        for i in range(30)
    ]
    keys = [TemplateCatalog.key(a.tenant_id, a.waba_id or "") for a in accounts]
    owners = {getattr(nodes.get_node_from_key(k), "name", None) for k in keys}
    assert len(owners) == 3, "the catalogs spread over every primary"
    for a, key in zip(accounts, keys, strict=True):
        template = {"name": f"t_{a.waba_id}", "language": "en_US", "status": "APPROVED"}
        await client.hset(key, mapping={"@synced_at": "1.5", "t:en_US": orjson.dumps(template)})

    catalog = TemplateCatalog(client, _NoGraph())
    got = await asyncio.gather(*(catalog.get(a) for a in accounts))
    for a, c in zip(accounts, got, strict=True):
        assert c is not None
        assert set(c.templates) == {(f"t_{a.waba_id}", "en_US")}
        assert c.synced_at == 1.5
    assert catalog.reads.items == 30
    assert catalog.reads.batches < 30, "concurrent reads went in batches"
    await catalog.close()


# --------------------------------------------------------------------------- 14. failover


def caught_up(primary: Server) -> bool:
    """``primary``'s replica is online and has everything it wrote."""
    info = primary.info("replication")
    replica = info.get("slave0")
    return (
        isinstance(replica, dict)
        and replica.get("state") == "online"
        and replica.get("offset") == info.get("master_repl_offset")
    )


class Pair:
    """A primary, and a replica that reads its stream through a proxy that can stall."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.primary = Server(base)
        self.proxy = TcpProxy(self.primary.port).__enter__()
        self.replica = Server(base, "--replicaof", "127.0.0.1", str(self.proxy.port))
        self.spare: Server | None = None
        wait_until(self.replica.linked, "replica in sync")
        self.synced()

    def synced(self) -> None:
        """Wait until the replica has applied everything the primary wrote."""
        wait_until(
            lambda: (
                self.primary.info("replication").get("master_repl_offset")
                == self.replica.info("replication").get("slave_repl_offset")
            ),
            "replica caught up",
        )

    def fail_over(self) -> None:
        """The primary dies with writes its replica never got; the replica is promoted."""
        self.primary.kill()
        self.proxy.set("cut")
        with self.replica.client() as c:
            c.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: self.replica.info("replication").get("role") == "master", "promoted")

    def attach_spare(self) -> None:
        """A new replica of the promoted one (what an operator or Sentinel adds)."""
        self.spare = Server(self.base, "--replicaof", "127.0.0.1", str(self.replica.port))
        wait_until(self.spare.linked, "spare in sync")
        wait_until(lambda: caught_up(self.replica), "spare caught up")

    def close(self) -> None:
        for s in (self.primary, self.replica, self.spare):
            if s is not None:
                s.stop()
        with contextlib.suppress(Exception):
            self.proxy.__exit__(None, None, None)


async def retried(delivery: Callable[[], Awaitable[Claim]]) -> Claim:
    """A delivery as the sender retries it: a claim no replica acknowledged in time
    (``StoreUnavailable``, nothing sent) goes to the infra retry tier and comes back;
    here at most 5 times, 0.3 s apart (a loaded machine can be slow to acknowledge)."""
    for _ in range(5):
        try:
            return await delivery()
        except StoreUnavailable:
            await asyncio.sleep(0.3)
    return await delivery()


async def failover_run(base: Path, replicas: int) -> tuple[Provider, list[str]]:
    """Two commands around a failover; the provider's counts and what happened."""
    pair = Pair(base)
    provider = Provider()
    notes: list[str] = []
    first, second = command("tf", 1), command("tf", 2, to="16505550200")
    try:
        before = create_redis(pair.primary.url, timeout_s=2)
        batcher = RedisBatcher(before, replicas=replicas, wait_ms=800)
        store = IdempotencyStore(before, ttl_s=600, batcher=batcher)
        limiter = RateLimiter(before, batcher=batcher)
        # first: claimed while the replica follows, sent; its result never replicated
        claim = await retried(
            lambda: deliver(store, limiter, provider, first, owner="p1", complete=False)
        )
        assert claim.claimed
        pair.synced()
        pair.proxy.set("stall")
        await store.complete(first, "p1", accepted(first))
        # second: claimed while the replica hears nothing
        try:
            await deliver(store, limiter, provider, second, owner="p1")
            notes.append("second claimed unreplicated")
        except StoreUnavailable:
            notes.append("second refused (no replica ack)")
        await before.aclose()

        pair.fail_over()
        after = create_redis(pair.replica.url, timeout_s=2)
        if replicas:
            pair.attach_spare()
        batcher = RedisBatcher(after, replicas=replicas, wait_ms=800)
        store = IdempotencyStore(after, ttl_s=600, batcher=batcher)
        limiter = RateLimiter(after, batcher=batcher)
        # the broker redelivers both (neither was acknowledged before the failover)
        for cmd in (first, second):
            claim = await retried(
                lambda cmd=cmd: deliver(store, limiter, provider, cmd, owner="p2")  # type: ignore[misc]
            )
            record = claim.record
            notes.append(
                f"{cmd.message_id}: "
                + (
                    "sent"
                    if claim.claimed
                    else "unknown outcome"
                    if record and not record.result
                    else "dup"
                )
            )
        await after.aclose()
    finally:
        pair.close()
    return provider, notes


async def test_failover_never_sends_a_claimed_command_twice(
    tmp_path: Path, figures: Figures
) -> None:
    started = time.monotonic()
    without, notes_without = await failover_run(tmp_path / "without", replicas=0)
    # asynchronous replication: the unreplicated claim is gone, the command sent again
    assert without.sent["msg-tf-2"] == 2, (without.sent, notes_without)

    durable, notes_with = await failover_run(tmp_path / "with", replicas=1)
    assert "second refused (no replica ack)" in notes_with
    # the replicated claim survives (no result: outcome unknown, not resent) and the
    # refused one is sent once, after the failover
    assert durable.sent == {"msg-tf-1": 1, "msg-tf-2": 1}, (durable.sent, notes_with)
    assert "msg-tf-1: unknown outcome" in notes_with

    figures.sent = 2
    figures.processed = sum(1 for n in durable.sent.values() if n)
    figures.duplicated = sum(n - 1 for n in durable.sent.values())
    figures.recover_s = time.monotonic() - started
    figures.notes = (
        f"without WAIT: duplicated={sum(n - 1 for n in without.sent.values())} "
        f"({'; '.join(notes_without)}); with WAIT 1: {'; '.join(notes_with)}"
    )
    assert figures.duplicated == 0
