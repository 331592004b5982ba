"""Work of concurrent callers, sent together: Redis scripts as one call
(:class:`RedisBatcher`: the sender's claims and token buckets, the gateway's webhook
dedupe marks and customer windows), the sender's results as one broker message per
account (:class:`flowchat_sender.consumer.ResultBatcher`).

With hundreds of messages in flight, one round trip (and one ``send`` syscall) per
command per message was the sender's largest cost (and, per webhook, the gateway's).
A :class:`Batcher` queues the items and sends them together, Nagle-style: while
``max_in_flight`` batches are out, new items wait for one to come back (or for
``max_batch`` of them to queue up), so the batch size follows the load — a lone item
goes at once, a busy sender sends tens per write. Each caller still gets its own reply
or its own error, so one failing item never fails its neighbours.

A batch of Redis work is one ``EVALSHA`` of a bundle script that runs each item's
script in turn (:class:`RedisBatcher`), not a pipeline of one command per item:
redis-py spends Python on packing, reading and dispatching every command. Claim and
store of a message took 165 → 130 µs of the sender's CPU (4,000 at a time); in the
benchmark the sender's CPU per message fell 5 % (median of five interleaved runs, #6)
while Redis' rose 0.02 ms.

Redis Cluster (``redis+cluster://``): one script runs on one node, so a batch is cut
into one ``EVALSHA`` per hash slot, sent concurrently (every item's keys share its
tenant's hash tag, so each item is within one slot).

Durable claims (``replicas`` > 0): a batch holding a claim is followed, on the same
connection, by ``WAIT replicas wait_ms``; each claim learns whether its write reached
that many replicas before the provider is called (docs/architecture.md, "Redis
failover"). One ``WAIT`` per batch, not per message.

Hash reads (:class:`HashReads`): ``HGETALL`` of concurrent callers as one
non-transactional pipeline per batch (the sender's template catalogs, read for every
WABA a fresh process meets: 1,000 at once after a restart took one round trip and one
pooled connection each). On a Redis Cluster, redis-py's cluster pipeline sends a
batch as one pipeline per node.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError, NoScriptError, RedisError

from flowchat_platform.redis import is_cluster

T = TypeVar("T")


@dataclass(frozen=True)
class LuaScript:
    """A script body over ``KEYS`` and ``ARGV`` and its reply (nil comes back as None)."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324


class Batcher(ABC, Generic[T]):
    """Items of concurrent callers in batches; :meth:`_run` sends one and returns a reply
    per item, and each caller gets its own (raised when it is an error). When ``_run``
    raises, every caller of the batch gets that error; when it is cancelled (shutdown),
    :meth:`_aborted`'s, so no caller is ever stranded."""

    def __init__(
        self, *, max_batch: int = 256, max_in_flight: int = 2, timeout_s: float | None = None
    ) -> None:
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        #: A batch not answered within it fails each of its callers with ``TimeoutError``:
        #: one deadline per batch, not one per caller (each costs a timer).
        self.timeout_s = timeout_s
        self._in_flight = 0
        self._pending: list[tuple[T, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches sent so far and the items in them, for tests and the benchmark.
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> Any:
        """Send ``item`` in the next batch; its reply (or its error, raised)."""
        return await self.enqueue(item)

    def enqueue(self, item: T) -> asyncio.Future[Any]:
        """Queue ``item`` for the next batch without waiting for it: its future (its
        reply, or its error). A caller that does not await it must take its exception
        (a done callback), or asyncio logs it as never retrieved."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch:
            self._start(self._take())
        elif not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    @abstractmethod
    async def _run(self, items: list[T]) -> list[Any]:
        """Send ``items``; a reply (or an exception) per item, in their order."""

    @abstractmethod
    def _aborted(self, cause: BaseException) -> Exception:
        """The error of every caller of a batch whose sending was cancelled."""

    async def _send(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                replies = await self._run([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - each caller gets it
            replies = [exc] * len(batch)
        except BaseException as exc:
            for _, future in batch:
                settle(future, self._aborted(exc))
            raise
        for (_, future), reply in zip(batch, replies, strict=True):
            settle(future, reply)

    def _take(self) -> list[tuple[T, asyncio.Future[Any]]]:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        return batch

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending and self._in_flight < self.max_in_flight:
            self._start(self._take())

    def _start(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        self._in_flight += 1
        self.batches += 1
        self.items += len(batch)
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)


def settle(future: asyncio.Future[Any], reply: Any) -> None:
    """Give a caller its reply, or its error when ``reply`` is one (skip the cancelled)."""
    if future.done():
        return
    if isinstance(reply, BaseException):
        future.set_exception(reply)
    else:
        future.set_result(reply)


#: Runs the items of one batch. ARGV: item count, then per item its script's id, key
#: count, argument count and arguments; KEYS: every item's keys in turn. A failing item
#: (``redis.call`` raised, or a Lua error) becomes an error reply in its place only;
#: what it wrote before failing stays, as with a script of its own.
_BUNDLE_RUN = """
local out, k, a = {}, 0, 2
for i = 1, tonumber(ARGV[1]) do
  local f, nk, na = F[ARGV[a]], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local ok, r = pcall(f, {unpack(KEYS, k + 1, k + nk)}, {unpack(ARGV, a, a + na - 1)})
  if not ok then
    r = redis.error_reply(type(r) == 'table' and r.err or tostring(r))
  elseif r == nil then
    r = false
  end
  out[i] = r
  k, a = k + nk, a + na
end
return out
"""


class ScriptBundle:
    """The scripts seen so far as one Lua source: each a function of ``(KEYS, ARGV)``
    under a short id, and :data:`_BUNDLE_RUN` to run a batch of them."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._functions: list[str] = []
        self.source = ""
        self.sha = ""

    def id_of(self, script: LuaScript) -> str:
        known = self._ids.get(script.sha)
        if known is None:
            known = self._ids[script.sha] = str(len(self._ids) + 1)
            self._functions.append(f"F['{known}'] = function(KEYS, ARGV)\n{script.source}\nend\n")
            self.source = "local F = {}\n" + "".join(self._functions) + _BUNDLE_RUN
            self.sha = LuaScript(self.source).sha
        return known


#: One item of a Redis batch: its script's id in the bundle, keys, arguments, and
#: whether it waits for replicas (a claim).
_Item = tuple[str, list[str], list[Any], bool]


@dataclass(frozen=True)
class Durable:
    """A reply and how many replicas acknowledged the batch's writes (``WAIT``)."""

    reply: Any
    replicas: int


class _RedisWork(Batcher[T]):
    """A batcher whose batches go to Redis: a cancelled batch fails its callers with a
    :class:`RedisError`, which the callers already handle as Redis being unavailable."""

    def _aborted(self, cause: BaseException) -> Exception:
        return RedisError(f"batch aborted: {cause!r}")


class RedisBatcher(_RedisWork[_Item]):
    """Scripts of concurrent callers run by one ``EVALSHA`` per batch (the bundle is
    loaded on the first ``NOSCRIPT``, and again after a new script joins it); on a
    Redis Cluster, one per hash slot. ``replicas`` > 0: a batch with a
    :meth:`durable_script` item also sends ``WAIT replicas wait_ms`` after it."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_batch: int = 256,
        max_in_flight: int = 2,
        replicas: int = 0,
        wait_ms: int = 100,
        timeout_s: float | None = None,
    ) -> None:
        super().__init__(max_batch=max_batch, max_in_flight=max_in_flight, timeout_s=timeout_s)
        self._redis = redis
        self._bundle = ScriptBundle()
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self.replicas = max(0, replicas)
        self.wait_ms = max(0, wait_ms)
        self._cluster: RedisCluster | None = (
            cast(RedisCluster, redis) if is_cluster(redis) else None
        )

    async def script(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` in the next batch; its reply (or its error, raised)."""
        return await self.submit((self._bundle.id_of(script), keys, args, False))

    def script_later(
        self, script: LuaScript, keys: list[str], args: list[Any]
    ) -> asyncio.Future[Any]:
        """Queue ``script`` for the next batch without waiting: its reply's future (work
        whose outcome the caller does not wait for, such as a mark after the fact)."""
        return self.enqueue((self._bundle.id_of(script), keys, args, False))

    async def durable_script(self, script: LuaScript, keys: list[str], args: list[Any]) -> Durable:
        """Run ``script`` in the next batch and wait for ``replicas`` to acknowledge it
        (at most ``wait_ms``): its reply and how many did (``replicas`` is 0: 0)."""
        reply = await self.submit((self._bundle.id_of(script), keys, args, self.replicas > 0))
        return reply if isinstance(reply, Durable) else Durable(reply, 0)

    async def _run(self, items: list[_Item]) -> list[Any]:
        if self._cluster is None:
            return await self._run_slot(items)
        by_slot: dict[int, list[int]] = {}
        for i, (_, keys, _, _) in enumerate(items):
            by_slot.setdefault(key_slot(keys[0].encode()), []).append(i)
        if len(by_slot) == 1:
            return await self._run_slot(items)
        groups = list(by_slot.values())
        answers = await asyncio.gather(
            *(self._run_slot([items[i] for i in group]) for group in groups),
            return_exceptions=True,
        )
        replies: list[Any] = [None] * len(items)
        for group, answer in zip(groups, answers, strict=True):
            for n, i in enumerate(group):
                replies[i] = answer if isinstance(answer, BaseException) else answer[n]
        return replies

    async def _run_slot(self, items: list[_Item]) -> list[Any]:
        """The items of one hash slot (all of them, off a cluster) as one ``EVALSHA``."""
        keys: list[str] = []
        args: list[Any] = [len(items)]
        for fid, k, a, _ in items:
            keys += k
            args += (fid, len(k), len(a))
            args += a
        # every item's script is in the bundle as it is now (later ones only add to it)
        sha, source = self._bundle.sha, self._bundle.source
        durable = any(item[3] for item in items)
        try:
            if durable:
                replies, acked = await self._with_wait(sha, keys, args)
            else:
                replies = await self._redis.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._load(sha, source)
            if durable:
                replies, acked = await self._with_wait(sha, keys, args)
            else:
                replies = await self._redis.evalsha(sha, len(keys), *keys, *args)
        if not durable:
            return list(replies)
        return [
            Durable(r, acked) if item[3] and not isinstance(r, BaseException) else r
            for item, r in zip(items, replies, strict=True)
        ]

    async def _load(self, sha: str, source: str) -> None:
        """Load the bundle once however many slots found it missing at the same time (on
        a cluster, ``SCRIPT LOAD`` goes to every primary: one per slot was seconds)."""
        loading = self._loading.get(sha)
        if loading is None:
            loading = self._loading[sha] = asyncio.ensure_future(self._redis.script_load(source))
            loading.add_done_callback(lambda _: self._loading.pop(sha, None))
        await asyncio.shield(loading)

    async def _with_wait(self, sha: str, keys: list[str], args: list[Any]) -> tuple[list[Any], int]:
        """``EVALSHA`` then ``WAIT`` on one connection (``WAIT`` counts the replicas that
        have this connection's writes): the replies and the replicas that acknowledged."""
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        wait = ("WAIT", self.replicas, self.wait_ms)
        if self._cluster is None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.execute_command(*command)
                pipe.execute_command(*wait)
                replies, acked = await pipe.execute(raise_on_error=False)
        else:
            # the node of the slot, one connection: the cluster client would send WAIT
            # to every primary; a moved slot fails the batch (retried) and re-reads the map
            await self._cluster.initialize()
            node = self._cluster.get_node_from_key(keys[0])
            if node is None:
                raise RedisError(f"no node serves the slot of {keys[0]!r}")
            commands = [PipelineCommand(0, *command), PipelineCommand(1, *wait)]
            await node.execute_pipeline(commands)
            replies, acked = commands[0].result, commands[1].result
            if isinstance(replies, MovedError):
                await self._cluster.nodes_manager.initialize()
        for answer in (replies, acked):
            if isinstance(answer, BaseException):
                raise answer
        return list(replies), int(acked)


class HashReads(_RedisWork[str]):
    """``HGETALL`` of concurrent callers: one pipeline per batch (a reply per key, an
    empty dict for a missing one); a key's error reply fails its caller only."""

    def __init__(self, redis: aioredis.Redis, **batching: Any) -> None:
        """``batching``: :class:`Batcher`'s (``max_batch``, ``max_in_flight``, ``timeout_s``)."""
        super().__init__(**batching)
        self._redis = redis

    async def hgetall(self, key: str) -> dict[Any, Any]:
        """The hash at ``key`` as the client's ``hgetall`` gives it, read in the next batch."""
        return cast(dict[Any, Any], await self.submit(key))

    async def _run(self, items: list[str]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in items:
                pipe.hgetall(key)
            return list(await pipe.execute(raise_on_error=False))
