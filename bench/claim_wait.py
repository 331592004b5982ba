"""The cost of durable claims (``FLOWCHAT_SENDER_CLAIM_REPLICAS``): idempotency claims
per second through the sender's store and batcher, with and without ``WAIT 1`` after
each batch, against a primary and a replica of this script's own (redis-server on free
ports, no persistence). Interleaved rounds; the median of each.

    .venv/bin/python -m bench.claim_wait [--claims 20000] [--rounds 3]

Not part of ``make bench`` (yet): its numbers are quoted in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from flowchat_contracts import OutboundCommand, SendResult, TextContent
from flowchat_platform.redis import create_redis
from flowchat_platform.redis_batch import RedisBatcher
from flowchat_sender.idempotency import IdempotencyStore


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(base: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _port()
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    d = base / str(port)
    d.mkdir()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(d)]
    args += ["--repl-diskless-sync-delay", "0", *extra]
    proc = subprocess.Popen(  # noqa: S603 - our own redis-server, our own arguments
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


async def _round(url: str, replicas: int, claims: int, concurrency: int, tag: str) -> float:
    redis = create_redis(url, timeout_s=2)
    batcher = RedisBatcher(redis, replicas=replicas, wait_ms=500)
    store = IdempotencyStore(redis, ttl_s=600, batcher=batcher)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        cmd = OutboundCommand(
            tenant_id=f"t{i % 100}",
            account_id="acc",
            idempotency_key=f"{tag}-{i}",
            message_id=f"{tag}-{i}",
            to="+16505550100",
            content=TextContent(body="x"),
        )
        async with gate:
            assert (await store.claim_and_admit(cmd, "bench")).claimed

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(claims)))
    rate = claims / (time.perf_counter() - started)
    await redis.aclose()
    return rate


async def _record_bytes(url: str) -> dict[str, int]:
    """``MEMORY USAGE`` of one claim, and of the same key once its result is stored."""
    redis = create_redis(url, timeout_s=2)
    store = IdempotencyStore(redis, ttl_s=600)
    cmd = OutboundCommand(
        tenant_id="0f8fad5b-d9cb-469f-a165-70867728950e",
        account_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
        idempotency_key="b1e0e9c2-3d4f-4b5a-8c6d-7e8f9a0b1c2d",
        message_id="a1e0e9c2-3d4f-4b5a-8c6d-7e8f9a0b1c2d",
        to="+16505550100",
        content=TextContent(body="x"),
    )
    await store.claim(cmd, "sender-7d9f-abc12:1")
    key = store.key(cmd.tenant_id, cmd.idempotency_key)
    claimed = int(await redis.memory_usage(key) or 0)
    result = SendResult(
        message_id=cmd.message_id,
        idempotency_key=cmd.idempotency_key,
        tenant_id=cmd.tenant_id,
        account_id=cmd.account_id,
        to=cmd.to,
        message_type="text",
        status="accepted",
        provider="meta",
        provider_message_id="wamid.HBgLMTY1MDU1NTAxMDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
    )
    await store.complete(cmd, "sender-7d9f-abc12:1", result)
    done = int(await redis.memory_usage(key) or 0)
    await redis.aclose()
    return {"claim": claimed, "with_result": done}


async def main(claims: int, rounds: int, concurrency: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="claim-wait-") as tmp:
        base = Path(tmp)
        primary, pport = _server(base)
        replica, _ = _server(base, "--replicaof", "127.0.0.1", str(pport))
        try:
            await asyncio.sleep(1.5)
            url = f"redis://127.0.0.1:{pport}/0"
            record = await _record_bytes(url)
            rates: dict[int, list[float]] = {0: [], 1: []}
            for r in range(rounds):
                for replicas in (0, 1):
                    rates[replicas].append(
                        await _round(url, replicas, claims, concurrency, f"r{r}w{replicas}")
                    )
        finally:
            for p in (replica, primary):
                p.terminate()
                p.wait(10)
    off, on = statistics.median(rates[0]), statistics.median(rates[1])
    return {
        "claims_per_round": claims,
        "concurrency": concurrency,
        "without_wait_claims_per_s": round(off),
        "with_wait_claims_per_s": round(on),
        "ratio": round(on / off, 3),
        "record_bytes": record,
        "rounds": {"without": [round(x) for x in rates[0]], "with": [round(x) for x in rates[1]]},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=512)
    a = parser.parse_args()
    print(json.dumps(asyncio.run(main(a.claims, a.rounds, a.concurrency)), indent=1))
