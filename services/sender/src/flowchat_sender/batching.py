"""Work of concurrent messages, sent together: Redis commands as one pipeline
(:class:`RedisBatcher`), send results as one broker message per account
(:class:`flowchat_sender.consumer.ResultBatcher`).

With hundreds of messages in flight, one round trip (and one ``send`` syscall) per
command per message was the sender's largest cost. A :class:`Batcher` queues the
items and sends them together, Nagle-style: while ``max_in_flight`` batches are out,
new items wait for one to come back (or for ``max_batch`` of them to queue up), so the
batch size follows the load — a lone item goes at once, a busy sender sends tens per
write. Each caller still gets its own reply or its own error, so one failing item
never fails its neighbours.

Scripts run by ``EVALSHA`` (loaded on the first ``NOSCRIPT``), never through
redis-py's pipeline script registry, which would add a ``SCRIPT EXISTS`` round trip
to every batch.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

T = TypeVar("T")


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324


class Batcher(ABC, Generic[T]):
    """Items of concurrent callers in batches; :meth:`_run` sends one and settles its
    futures (a reply or an error each)."""

    def __init__(self, *, max_batch: int = 256, max_in_flight: int = 2) -> None:
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._pending: list[tuple[T, asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches sent so far and the items in them, for tests and the benchmark.
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> Any:
        """Send ``item`` in the next batch; its reply (or its error, raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_batch:
            self._start(self._take())
        elif not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    @abstractmethod
    async def _run(self, batch: list[tuple[T, asyncio.Future[Any]]]) -> None:
        """Send ``batch``; settle every future not done yet, even when cancelled."""

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
        task = asyncio.create_task(self._run(batch))
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


class RedisBatcher(Batcher[tuple[Any, ...]]):
    """Redis commands in one non-transactional pipeline per batch."""

    def __init__(
        self, redis: aioredis.Redis, *, max_batch: int = 256, max_in_flight: int = 2
    ) -> None:
        super().__init__(max_batch=max_batch, max_in_flight=max_in_flight)
        self._redis = redis

    async def execute(self, *args: Any) -> Any:
        """Run one command in the next pipeline; its parsed reply (or its error, raised)."""
        return await self.submit(args)

    async def script(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._redis.script_load(script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            for _, future in batch:
                settle(future, exc)
            return
        except BaseException as exc:  # cancelled (shutdown) or a bug: never strand a caller
            for _, future in batch:
                settle(future, RedisError(f"pipeline aborted: {exc!r}"))
            raise
        for (_, future), reply in zip(batch, replies, strict=True):
            settle(future, reply)
