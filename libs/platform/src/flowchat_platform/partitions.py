"""Partition queues spread over a service's live replicas, each handled by one at a time.

A partitioned stream (the conversation service's ``conversation.inbound.<n>``) is a set
of quorum queues, each with ``x-single-active-consumer``: whatever consumes a queue,
RabbitMQ delivers to one consumer at a time, in queue order, and when that consumer's
channel goes (a replica killed, a partition released) it returns the unacknowledged
messages to the head of the queue and only then activates the next consumer. Order per
partition therefore holds across replicas; what is left is to spread the partitions:

- **Membership** in Redis: every replica adds itself to a sorted set
  (``flowchat:partitions:{<group>}:members``, one key: Redis-Cluster safe) with an
  expiry ``ttl_s`` ahead (Redis' own clock, one script), every ``interval_s``; members
  past their expiry are dropped. A replica that stops leaves the set at once; one that
  is killed drops out after ``ttl_s``.
- **Assignment** by rendezvous hashing: a queue belongs to the member with the highest
  hash of (member, queue). Every replica computes the same owner from the same member
  list; a member joining or leaving moves only its own share of the queues.
- **Hand-over**: a replica consumes the queues it owns and releases those it no longer
  owns by closing their channels (``Amqp.release``: never ``basic.cancel``, which
  would activate the next consumer while earlier messages are still being handled).
  Two replicas that briefly both think they own a queue are both subscribed; the
  single active consumer keeps one of them idle until the other lets go.

No lock is held anywhere: a stale member list costs a partition a second or two of
idleness or of waiting behind its old owner, never a second active consumer. Handlers
must still be idempotent (a released or killed consumer's unacknowledged messages are
delivered again) and serialise one key's work across processes for the short overlap
of a hand-over (the conversation service's advisory lock per conversation).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from flowchat_platform import metrics
from flowchat_platform.amqp import Amqp, ConsumerHandle
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

__all__ = ["PartitionMembers", "PartitionedConsumer", "member_id", "owner_of"]

#: ZADD the member with an expiry ttl ahead, drop the expired, list the live ones (Redis
#: time: the replicas' clocks need not agree). KEYS[1] members; ARGV[1] member, ARGV[2]
#: ttl in ms.
_BEAT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def member_id() -> str:
    """This process's name in a group: host, pid and a random word (a restarted pod
    with the same name and pid is still a new member)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _weight(member: str, queue: str) -> int:
    digest = hashlib.blake2b(f"{member}\x00{queue}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner_of(queue: str, members: Sequence[str]) -> str | None:
    """The member that owns ``queue`` (rendezvous hashing); None with no member."""
    return max(members, key=lambda m: (_weight(m, queue), m), default=None)


class PartitionMembers:
    """A group's live members in Redis (see the module's docstring)."""

    def __init__(self, redis: Any, group: str, *, ttl_s: float = 3.0) -> None:
        self.redis = redis
        self.group = group
        self.key = f"flowchat:partitions:{{{group}}}:members"
        self.ttl_ms = int(ttl_s * 1000)
        self._beat = redis.register_script(_BEAT)

    async def beat(self, member: str) -> list[str]:
        """Renew ``member``; the live members, sorted."""
        raw = await self._beat(keys=[self.key], args=[member, self.ttl_ms])
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)

    async def leave(self, member: str) -> None:
        await self.redis.zrem(self.key, member)


class PartitionedConsumer:
    """Consume the ``queues`` this replica owns among the group's live members; follow the
    members as they come and go (every ``interval_s``)."""

    def __init__(
        self,
        amqp: Amqp,
        members: PartitionMembers,
        queues: Sequence[str],
        consume: Callable[[str], Awaitable[ConsumerHandle]],
        *,
        member: str | None = None,
        interval_s: float = 1.0,
        release_grace_s: float = 10.0,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.amqp = amqp
        self.members = members
        self.queues = tuple(queues)
        self._consume = consume
        self.member = member or member_id()
        self.interval_s = interval_s
        self.release_grace_s = release_grace_s
        #: Run once before the first rebalance (declaring the queues), again until it works.
        self._prepare = prepare
        self.held: dict[str, ConsumerHandle] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._releases: set[asyncio.Task[None]] = set()
        self._labels = (amqp.service, members.group)

    async def start(self) -> None:
        """Join the group, take up this replica's queues and keep following the group, in a
        task of its own (a service's start does not wait for the queues)."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Leave the group (the others take the queues up within one interval) and stop
        following it. The consumers are stopped with the broker client: they were started
        with ``return_on_stop``, so stopping returns their unacknowledged messages."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=self.interval_s + 5)
            if not self._task.done():
                self._task.cancel()
        try:
            await self.members.leave(self.member)
        except Exception as exc:  # noqa: BLE001 - Redis gone: the entry expires on its own
            log.warning("partition group not left", group=self.members.group, error=repr(exc))
        if self._releases:
            await asyncio.wait(self._releases, timeout=self.release_grace_s)

    async def _run(self) -> None:
        prepared = self._prepare is None
        first = True
        while not self._stop.is_set():
            if not first:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
            first = False
            if self._stop.is_set():
                return
            try:
                if not prepared and self._prepare is not None:
                    await self._prepare()
                    prepared = True
                await self.rebalance()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep what is held; try again
                log.warning(
                    "partition membership unavailable", group=self.members.group, error=repr(exc)
                )

    async def rebalance(self) -> None:
        """Renew this member, then consume what it owns and release what it does not."""
        members = await self.members.beat(self.member)
        metrics.PARTITION_MEMBERS.labels(*self._labels).set(len(members))
        mine = [q for q in self.queues if owner_of(q, members) == self.member]
        gone = [q for q in self.held if q not in mine]
        new = [q for q in mine if q not in self.held]
        for queue in gone:
            handle = self.held.pop(queue)
            task = asyncio.create_task(self.amqp.release(handle, self.release_grace_s))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
        for queue in new:
            if self._stop.is_set():
                break
            self.held[queue] = await self._consume(queue)
        if gone or new:
            metrics.PARTITION_REBALANCES.labels(*self._labels, "released").inc(len(gone))
            metrics.PARTITION_REBALANCES.labels(*self._labels, "taken").inc(len(new))
            log.info(
                "partitions rebalanced",
                group=self.members.group,
                members=len(members),
                held=len(self.held),
                taken=len(new),
                released=len(gone),
            )
        metrics.PARTITIONS_HELD.labels(*self._labels).set(len(self.held))
