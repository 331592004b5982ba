"""The gateway benchmark's baseline: the same hop done by a bare loop, under the same
uvicorn settings as every service (``flowchat_platform.runner``): a FastAPI POST
endpoint that reads the body, checks its ``X-Hub-Signature-256`` (HMAC-SHA256 under the
app secret), parses it, publishes one persistent message per event (every message and
status of the body) to a durable quorum queue with publisher confirms, waits for the
confirms and answers JSON. No account lookup, dedupe, normalisation or metrics: what the
gateway adds to that is its cost.

With a fourth argument, ``REDIS_URL``, a body that carries messages also makes the one
Redis round trip issue #26 allows the gateway (its dedupe): a ``SET NX EX`` per message,
pipelined, before the publish; duplicates are not published. Status-only bodies make none,
as in the gateway. That variant is shown beside the target's baseline, not judged: it
tells the cost of the dedupe from the cost of the gateway's other work.

Run: ``python bench/bare_app.py PORT AMQP_URL APP_SECRET [REDIS_URL]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import orjson
import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

QUEUE = "bench.bare"


def events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entry in payload.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            out += value.get("messages", []) + value.get("statuses", [])
    return out


def create(amqp_url: str, secret: bytes, redis_url: str | None = None) -> FastAPI:
    state: dict[str, Any] = {}
    redis = aioredis.Redis.from_url(redis_url) if redis_url else None

    async def fresh(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events to publish: all of them, or with Redis the messages not seen yet
        (one pipelined round trip) and every status."""
        messages = [e for e in found if "from" in e]
        if redis is None or not messages:
            return found
        async with redis.pipeline(transaction=False) as pipe:
            for e in messages:
                pipe.set(f"bench:bare:dedupe:{e['id']}", b"1", nx=True, ex=600)
            claimed = await pipe.execute()
        seen = {id(e) for e, ok in zip(messages, claimed, strict=True) if not ok}
        return [e for e in found if id(e) not in seen]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(amqp_url)
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        state["exchange"] = channel.default_exchange
        yield
        await connection.close()

    app = FastAPI(lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.post("/webhooks/meta")
    async def webhook(request: Request) -> Response:
        raw = await request.body()
        expected = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
            return JSONResponse({"error": "invalid_signature"}, status_code=401)
        found = await fresh(events(orjson.loads(raw)))
        exchange = state["exchange"]
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        orjson.dumps(e), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                    ),
                    routing_key=QUEUE,
                )
                for e in found
            )
        )
        return JSONResponse({"published": len(found)})

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    uvicorn.run(
        create(sys.argv[2], sys.argv[3].encode(), sys.argv[4] if len(sys.argv) > 4 else None),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        server_header=False,
    )
