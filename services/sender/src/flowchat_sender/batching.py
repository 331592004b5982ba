"""Redis commands of concurrent messages, sent together as one pipeline.

With hundreds of messages in flight, one round trip (and one ``send`` syscall) per
command per message was the sender's largest cost. :class:`RedisBatcher` queues the
commands and writes them as one non-transactional pipeline, Nagle-style: while
``max_in_flight`` pipelines are out, new commands wait for one to come back (or
for ``max_batch`` of them to queue up), so the batch size follows the load — a
lone command goes at once, a busy sender sends tens per write. Each caller still
gets its own reply or its own error
(``raise_on_error=False``), so one failing command never fails its neighbours.

Scripts run by ``EVALSHA`` (loaded on the first ``NOSCRIPT``), never through
redis-py's pipeline script registry, which would add a ``SCRIPT EXISTS`` round trip
to every batch.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324


class RedisBatcher:
    def __init__(
        self, redis: aioredis.Redis, *, max_batch: int = 256, max_in_flight: int = 2
    ) -> None:
        self._redis = redis
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        #: Pipelines sent so far (batches), for tests and the benchmark.
        self.batches = 0
        self.commands = 0

    async def execute(self, *args: Any) -> Any:
        """Run one command in the next pipeline; its parsed reply (or its error, raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) >= self.max_batch:
            self._start(self._take())
        elif not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    async def script(self, script: LuaScript, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._redis.script_load(script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    def _take(self) -> list[tuple[tuple[Any, ...], asyncio.Future[Any]]]:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        return batch

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending and self._in_flight < self.max_in_flight:
            self._start(self._take())

    def _start(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self._in_flight += 1
        task = asyncio.create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    async def _run(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.commands += len(batch)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException as exc:  # cancelled (shutdown) or a bug: never strand a caller
            for _, future in batch:
                if not future.done():
                    future.set_exception(RedisError(f"pipeline aborted: {exc!r}"))
            raise
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)
