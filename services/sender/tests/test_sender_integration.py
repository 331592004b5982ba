"""Integration tests: real RabbitMQ (own vhost) and Redis, stub tenant and Graph APIs over HTTP."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aio_pika
import aiohttp
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from flowchat_contracts import (
    OutboundCommand,
    SendResult,
    TextContent,
    send_results_in,
    topology,
)
from flowchat_contracts.command_events import CommandParked, CommandRejected
from flowchat_platform.amqp import HEADER_ATTEMPT, HEADER_REASON, Amqp
from flowchat_platform.redis import create_redis
from flowchat_platform.tenant_client import TenantClient
from flowchat_platform.testing import drain_queue, eventually, serve
from flowchat_sender import fates
from flowchat_sender.app import create_app
from flowchat_sender.breaker import CircuitBreaker
from flowchat_sender.claims import fingerprint
from flowchat_sender.cloud_api import CloudApiAdapter
from flowchat_sender.errors import SendRetry
from flowchat_sender.idempotency import IdempotencyStore
from flowchat_sender.ratelimit import RateLimiter
from flowchat_sender.service import Sender, SenderConfig
from flowchat_sender.settings import Settings
from flowchat_sender.twilio import TwilioAdapter

pytestmark = pytest.mark.integration

TOKEN = "service-token-0123456789"
PNID = "1065550001"
_ids = itertools.count(1)

# --------------------------------------------------------------------- stubs


@dataclass
class Tenant:
    """The tenant service's internal API, speaking AccountCredentials JSON."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: list[str] = field(default_factory=list)
    #: Tokens handed out in turn for an account (the last one repeats).
    tokens: dict[str, list[str]] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/internal/v1/accounts/{account_id}")
        async def account(account_id: str, request: Request) -> Response:
            assert request.headers["authorization"] == f"Bearer {TOKEN}"
            self.fetches.append(account_id)
            data = self.accounts.get(account_id)
            if data is None:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            data = dict(data)
            tokens = self.tokens.get(account_id)
            if tokens:
                data["access_token"] = tokens.pop(0) if len(tokens) > 1 else tokens[0]
                data["version"] = len(self.fetches)
            return JSONResponse(
                data,
                headers={
                    "Cache-Control": "private, max-age=60",
                    "ETag": f'"{account_id}-{data.get("version", 1)}"',
                },
            )

        return app


@dataclass
class Graph:
    """Meta's Graph API (and Twilio's Messages.json): records requests, answers like Meta."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    #: error code to answer per access token (absent: success)
    fail_token: dict[str, int] = field(default_factory=dict)
    fail_code: int | None = None
    status: int = 400
    #: each Cloud API request is answered this late; the most answered at once is kept
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{version}/{phone_number_id}/messages")
        async def send(version: str, phone_number_id: str, request: Request) -> Response:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await answer(version, phone_number_id, request)
            finally:
                self.in_flight -= 1

        async def answer(version: str, phone_number_id: str, request: Request) -> Response:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            body = await request.json()
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.requests.append(
                {"version": version, "pnid": phone_number_id, "token": token, "body": body}
            )
            code = self.fail_token.get(token, self.fail_code)
            if code is not None:
                return JSONResponse(
                    {
                        "error": {
                            "message": f"(#{code}) failure",
                            "type": "OAuthException",
                            "code": code,
                            "error_data": {"messaging_product": "whatsapp", "details": "stub"},
                            "fbtrace_id": "X",
                        }
                    },
                    status_code=self.status,
                )
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                    "messages": [{"id": f"wamid.{len(self.requests)}"}],
                }
            )

        @app.post("/2010-04-01/Accounts/{sid}/Messages.json")
        async def twilio(sid: str, request: Request) -> Response:
            form = dict(parse_qsl((await request.body()).decode()))
            auth = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            self.requests.append({"sid": sid, "auth": auth, "form": form})
            return JSONResponse({"sid": f"SM{len(self.requests):032d}", "status": "queued"}, 201)

        return app


def meta_account(account_id: str = "acc-1", **kw: Any) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "tenant_id": "t1",
        "provider": "meta",
        "phone_number_id": PNID,
        "waba_id": "waba-1",
        "access_token": "good-token",
        "app_secret": "s" * 20,
        "throughput_mps": 80,
        **kw,
    }


def command(n: int | None = None, **kw: Any) -> OutboundCommand:
    n = n if n is not None else next(_ids)
    base: dict[str, Any] = {
        "tenant_id": "t1",
        "account_id": "acc-1",
        "idempotency_key": f"key-{n}",
        "message_id": f"msg-{n}",
        "to": f"+1650555{n:04d}",
        "content": TextContent(body=f"hello {n}"),
    }
    base.update(kw)
    return OutboundCommand(**base)


# --------------------------------------------------------------------- the running sender


@dataclass
class Stack:
    amqp_url: str
    redis_url: str
    tenant: Tenant
    graph: Graph
    client: Amqp
    #: The ``command_parked`` messages seen on ``state-manager.status`` so far.
    parked: list[CommandParked] = field(default_factory=list)

    async def publish(
        self, cmd: OutboundCommand | bytes, headers: dict[str, Any] | None = None
    ) -> None:
        await self.client.publish(
            topology.EXCHANGE_OUTBOUND,
            topology.outbound_routing_key("t1", "acc-1"),
            cmd,
            headers=headers,
        )

    async def take(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        return await drain_queue(self.amqp_url, queue)

    async def results(self, expected: int, timeout_s: float = 10) -> list[SendResult]:
        got: list[SendResult] = []

        async def enough() -> bool:
            for m in await self.take(topology.QUEUE_STATE_STATUS):
                if orjson.loads(m.body)["kind"] == "command_parked":
                    self.parked.append(CommandParked.model_validate_json(m.body))
                else:
                    got.extend(send_results_in(m.body))
            return len(got) >= expected

        await eventually(enough, timeout_s=timeout_s)
        return got


@pytest.fixture
async def stack(amqp_url: str, redis_url: str) -> AsyncIterator[Stack]:
    tenant, graph = Tenant(), Graph()
    tenant.accounts["acc-1"] = meta_account()
    async with serve(tenant.app()) as tenant_url, serve(graph.app()) as graph_url:
        settings = Settings(
            AMQP_URL=amqp_url,
            REDIS_URL=redis_url,
            FLOWCHAT_TENANT_URL=tenant_url,
            FLOWCHAT_SERVICE_TOKEN=TOKEN,
            FLOWCHAT_GATEWAY_URL="http://gateway.test",
            graph_url=graph_url,
            twilio_url=graph_url,
            shutdown_grace_s=5,
        )
        async with serve(create_app(settings)) as sender_url:
            async with httpx.AsyncClient(base_url=sender_url) as http:

                async def ready() -> bool:
                    return (await http.get("/readyz")).status_code == 200

                await eventually(ready, timeout_s=15)
            client = Amqp(amqp_url, service="test", declare=False)
            await client.connect()
            try:
                # the consumer starts right after the broker connects
                await asyncio.sleep(0.2)
                yield Stack(amqp_url, redis_url, tenant, graph, client)
            finally:
                await client.close(grace_s=1)


# --------------------------------------------------------------------- end to end


async def test_one_command_one_post_one_result(stack: Stack) -> None:
    cmd = command(reply_to="wamid.PREV")
    await stack.publish(cmd)
    [result] = await stack.results(1)
    assert result.status == "accepted"
    assert result.message_id == cmd.message_id
    assert result.provider_message_id == "wamid.1"
    assert result.attempts == 1
    [req] = stack.graph.requests
    assert req["version"] == "v23.0"
    assert req["pnid"] == PNID
    assert req["token"] == "good-token"
    assert req["body"]["biz_opaque_callback_data"] == cmd.message_id
    assert req["body"]["context"] == {"message_id": "wamid.PREV"}
    assert req["body"]["text"]["body"] == cmd.content.body  # type: ignore[union-attr]


async def test_duplicate_command_is_not_sent_twice(stack: Stack) -> None:
    cmd = command()
    await stack.publish(cmd)
    [first] = await stack.results(1)
    again = cmd.model_copy(update={"message_id": "another-id", "correlation_id": "c2"})
    await stack.publish(cmd)
    await stack.publish(again)
    results = await stack.results(2)
    assert len(stack.graph.requests) == 1
    assert {r.provider_message_id for r in results} == {first.provider_message_id}
    # the same key for a different message: parked as a conflict, never sent
    conflict = cmd.model_copy(update={"content": TextContent(body="something else")})
    await stack.publish(conflict)

    async def parked() -> list[Any]:
        return await stack.take(topology.QUEUE_OUTBOUND_DLQ)

    [msg] = await eventually(parked)
    assert "conflict" in msg.headers[HEADER_REASON]
    assert len(stack.graph.requests) == 1


async def test_retryable_error_goes_to_a_retry_tier_with_the_attempt(stack: Stack) -> None:
    stack.graph.fail_code = 131000
    await stack.publish(command())
    tier = topology.retry_tier_for(fates.backoff_s(1)).queue  # 5 s
    assert tier == "whatsapp.outbound.retry.5s"

    async def retried() -> list[Any]:
        return await stack.take(tier)

    [msg] = await eventually(retried)
    assert msg.headers[HEADER_ATTEMPT] == 1
    assert msg.headers["x-flowchat-error-code"] == 131000
    assert "x-flowchat-first-failure" in msg.headers
    assert len(stack.graph.requests) == 1
    assert await stack.take(topology.QUEUE_STATE_STATUS) == []  # not failed yet


async def test_a_rate_limit_wait_past_the_inline_limit_comes_back_before_its_slot(
    stack: Stack,
) -> None:
    # one slot a second: the first six sleep in-process (waits up to 5 s), the seventh's
    # slot is 6 s away: it waits in the 5 s tier (claimed again when back), not the 30 s
    # one, which left the number idle for 24 s
    stack.tenant.accounts["acc-1"] = meta_account(throughput_mps=1)
    for i in range(7):
        await stack.publish(command(to=f"+1650666{i:04d}"))
    deferred: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def in_5s_tier() -> bool:
        deferred.extend(await stack.take(topology.retry_tier_for(5).queue))
        return len(deferred) == 1

    await eventually(in_5s_tier)
    assert "rate limit (number)" in str(deferred[0].headers[HEADER_REASON])
    assert HEADER_ATTEMPT not in deferred[0].headers  # waiting uses no attempt
    assert await stack.take(topology.retry_tier_for(30).queue) == []


async def test_last_attempt_goes_to_the_dlq_and_tells_the_state_manager(stack: Stack) -> None:
    """Parked, not failed (a terminal status a replay could not undo): a
    ``command_parked`` on ``flowchat.status`` and no send result."""
    stack.graph.fail_code = 133004
    cmd = command()
    await stack.publish(cmd, headers={HEADER_ATTEMPT: 4})
    assert await stack.results(0) == []

    async def told() -> bool:
        await stack.results(0)
        return bool(stack.parked)

    await eventually(told)
    [note] = stack.parked
    assert (note.message_id, note.idempotency_key) == (cmd.message_id, cmd.idempotency_key)
    assert note.correlation_id == cmd.correlation_id
    assert note.provider == "meta"
    assert note.error is not None
    assert note.error.code == 133004
    assert note.attempts == 5
    assert note.reason.startswith("retries exhausted after 5 attempts")

    async def parked() -> list[Any]:
        return await stack.take(topology.QUEUE_OUTBOUND_DLQ)

    [msg] = await eventually(parked)
    assert msg.headers["x-flowchat-attempts"] == 5
    assert msg.headers["x-flowchat-error-code"] == 133004
    assert "retries exhausted" in msg.headers[HEADER_REASON]
    assert {"x-flowchat-first-failure", "x-flowchat-last-failure"} <= set(msg.headers)
    assert OutboundCommand.model_validate_json(msg.body) == cmd


async def test_permanent_error_fails_at_once(stack: Stack) -> None:
    stack.graph.fail_code = 131047
    await stack.publish(command())
    [result] = await stack.results(1)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == 131047
    assert "template" in result.error.title
    assert len(stack.graph.requests) == 1
    for tier in topology.RETRY_TIERS:
        assert await stack.take(tier.queue) == []


async def test_expired_token_refreshes_credentials_once(stack: Stack) -> None:
    stack.tenant.tokens["acc-1"] = ["expired-token", "fresh-token"]
    stack.graph.fail_token["expired-token"] = 190
    await stack.publish(command())
    [result] = await stack.results(1)
    assert result.status == "accepted"
    assert [r["token"] for r in stack.graph.requests] == ["expired-token", "fresh-token"]
    assert stack.tenant.fetches == ["acc-1", "acc-1"]


async def test_token_still_refused_after_refresh_fails(stack: Stack) -> None:
    stack.graph.fail_code = 190
    await stack.publish(command())
    [result] = await stack.results(1)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == 190
    assert "fresh credentials" in result.error.title
    assert len(stack.graph.requests) == 2
    assert stack.tenant.fetches == ["acc-1", "acc-1"]


async def test_unknown_account_and_suspended_tenant_fail_with_a_reason(stack: Stack) -> None:
    stack.tenant.accounts["acc-s"] = meta_account("acc-s", tenant_status="suspended")
    await stack.publish(command(account_id="nope"))
    await stack.publish(command(account_id="acc-s"))
    results = {r.account_id: r for r in await stack.results(2)}
    assert results["nope"].status == "failed"
    assert results["nope"].error is not None
    assert "not found" in results["nope"].error.message
    assert results["acc-s"].error is not None
    assert "suspended" in results["acc-s"].error.message
    assert stack.graph.requests == []


async def test_malformed_command_is_parked_and_the_consumer_carries_on(stack: Stack) -> None:
    await stack.publish(b'{"kind": "outbound_command", "to": ')
    await stack.publish(b'{"kind": "outbound_command", "tenant_id": "t1"}')
    await stack.publish(command())
    [result] = await stack.results(1)
    assert result.status == "accepted"
    poison = await stack.take(topology.QUEUE_POISON)
    assert len(poison) == 2
    assert all(str(m.headers[HEADER_REASON]).startswith("invalid") for m in poison)


async def test_invalid_command_published_with_plain_amqp_is_rejected_on_events(
    stack: Stack,
) -> None:
    """A publisher in another language sees its invalid command refused: a
    ``command_rejected`` on ``flowchat.events`` with the ids the body gives and the
    reason, then the command in ``flowchat.poison`` (no FlowChat code publishes here)."""
    conn = await aio_pika.connect(stack.amqp_url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        events = await channel.declare_queue(exclusive=True)
        await events.bind(topology.EXCHANGE_EVENTS, "t1.*.command_rejected")
        await events.bind(topology.EXCHANGE_EVENTS, "unknown.unknown.command_rejected")
        exchange = await channel.get_exchange(topology.EXCHANGE_OUTBOUND)
        bad = {  # no content, a "to" that is no customer id
            "tenant_id": "t1",
            "account_id": "acc-1",
            "idempotency_key": "order-77-receipt",
            "correlation_id": "corr-77",
            "to": "not-a-number",
        }
        await exchange.publish(
            aio_pika.Message(orjson.dumps(bad), content_type="application/json"), "t1.acc-1"
        )
        await exchange.publish(aio_pika.Message(b"[1, 2"), "t1.acc-1")
        got: list[CommandRejected] = []

        async def both() -> bool:
            message = await events.get(no_ack=True, fail=False)
            if message is not None:
                got.append(CommandRejected.model_validate_json(message.body))
                assert message.message_id == got[-1].event_id
                assert message.routing_key in (
                    "t1.acc-1.command_rejected",
                    "unknown.unknown.command_rejected",
                )
            return len(got) == 2

        await eventually(both)
    finally:
        await conn.close()
    first, second = sorted(got, key=lambda e: e.tenant_id is None)
    assert (first.tenant_id, first.account_id) == ("t1", "acc-1")
    assert (first.idempotency_key, first.correlation_id) == ("order-77-receipt", "corr-77")
    assert first.reason.startswith("invalid")
    assert "content" in first.reason
    assert "to" in first.reason
    assert first.queue == topology.QUEUE_OUTBOUND
    assert second.tenant_id is None
    assert second.idempotency_key is None
    assert second.reason.startswith("invalid")
    poison = await stack.take(topology.QUEUE_POISON)
    assert len(poison) == 2


async def test_twilio_account_sends_a_form_with_basic_auth(stack: Stack) -> None:
    stack.tenant.accounts["acc-tw"] = {
        "account_id": "acc-tw",
        "tenant_id": "t1",
        "provider": "twilio",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "twilio-token-0123456789",
        "twilio_number": "+14155550100",
    }
    await stack.publish(command(account_id="acc-tw"))
    [result] = await stack.results(1)
    assert result.status == "accepted"
    assert result.provider == "twilio"
    [req] = stack.graph.requests
    assert req["auth"] == "AC" + "0" * 32 + ":twilio-token-0123456789"
    assert req["form"]["From"] == "whatsapp:+14155550100"
    assert req["form"]["StatusCallback"] == "http://gateway.test/webhooks/twilio/acc-tw"


async def test_a_bsuid_on_a_twilio_account_fails_cleanly(stack: Stack) -> None:
    """Twilio cannot address a BSUID: a failed result with FlowChat's own code, no call."""
    stack.tenant.accounts["acc-tw"] = {
        "account_id": "acc-tw",
        "tenant_id": "t1",
        "provider": "twilio",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "twilio-token-0123456789",
        "twilio_number": "+14155550100",
    }
    await stack.publish(command(account_id="acc-tw", to="US.13491208655302741918"))
    [result] = await stack.results(1)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error.code == fates.RECIPIENT_UNSUPPORTED
    assert "BSUID" in result.error.message
    assert stack.graph.requests == []
    assert await stack.take(topology.QUEUE_POISON) == []


async def test_metrics_are_exported(stack: Stack) -> None:
    await stack.publish(command())
    await stack.results(1)
    # The test process shares the registry with the app it serves.
    from prometheus_client import generate_latest

    text = generate_latest().decode()
    assert "flowchat_sender_sends_total" in text
    assert "flowchat_sender_send_duration_seconds_bucket" in text


# --------------------------------------------------------------------- the service alone


@dataclass
class Parts:
    sender: Sender
    graph: Graph
    tenant: Tenant
    results: list[SendResult]
    redis: aioredis.Redis
    limiter: RateLimiter
    breaker: CircuitBreaker


@pytest.fixture
async def parts(redis_url: str) -> AsyncIterator[Parts]:
    tenant, graph = Tenant(), Graph()
    tenant.accounts["acc-1"] = meta_account()
    results: list[SendResult] = []

    async def publish(r: SendResult) -> None:
        results.append(r)

    async with (
        serve(tenant.app()) as tenant_url,
        serve(graph.app()) as graph_url,
        aiohttp.ClientSession() as session,
    ):
        redis = create_redis(redis_url)
        limiter = RateLimiter(redis)
        breaker = CircuitBreaker(min_volume=2, failure_ratio=0.5, open_s=30)
        sender = Sender(
            accounts=TenantClient(tenant_url, TOKEN, session=session),
            providers={
                "meta": CloudApiAdapter(session, graph_url=graph_url, version="v23.0"),
                "twilio": TwilioAdapter(session, twilio_url=graph_url, gateway_url=None),
            },
            idempotency=IdempotencyStore(redis, ttl_s=600),
            limiter=limiter,
            breaker=breaker,
            publish=publish,
            config=SenderConfig(claim_grace_s=2),
        )
        try:
            yield Parts(sender, graph, tenant, results, redis, limiter, breaker)
        finally:
            await redis.aclose()


def _sibling(parts: Parts, **config: Any) -> Sender:
    """Another sender over the same parts, with its own configuration."""
    return Sender(
        accounts=parts.sender._accounts,
        providers=parts.sender._providers,
        idempotency=parts.sender._idem,
        limiter=parts.limiter,
        breaker=parts.breaker,
        publish=parts.sender._publish,
        config=SenderConfig(**config),
    )


async def test_at_most_max_active_commands_are_worked_on_at_once(parts: Parts) -> None:
    parts.graph.delay_s = 0.1
    sender = _sibling(parts, max_active=3)
    results = await asyncio.gather(*(sender.send(command()) for _ in range(12)))
    assert [r.status for r in results] == ["accepted"] * 12
    assert len(parts.graph.requests) == 12
    assert parts.graph.max_in_flight == 3


async def test_a_command_asleep_for_its_rate_slot_gives_its_place_up(parts: Parts) -> None:
    # one place; acc-slow's second command sleeps ~1 s for its slot meanwhile acc-2 sends
    parts.tenant.accounts["acc-slow"] = meta_account("acc-slow", throughput_mps=1)
    parts.tenant.accounts["acc-2"] = meta_account("acc-2", phone_number_id=f"{PNID}2")
    sender = _sibling(parts, max_active=1)
    finished: list[str] = []

    async def send(cmd: OutboundCommand) -> None:
        await sender.send(cmd)
        finished.append(cmd.account_id)

    first = asyncio.create_task(send(command(account_id="acc-slow")))
    asleep = asyncio.create_task(send(command(account_id="acc-slow")))
    await eventually(lambda: len(parts.graph.requests) == 1)
    await asyncio.sleep(0.2)  # the second acc-slow command is asleep by now
    await send(command(account_id="acc-2"))
    await asyncio.gather(first, asleep)
    assert finished == ["acc-slow", "acc-2", "acc-slow"]


async def test_a_crowded_fast_number_defers_to_the_tier_that_brings_it_back_first(
    parts: Parts,
) -> None:
    # 2 mps and one sleeper per account at most: the first command sends, the second
    # sleeps for its slot 0.5 s away, the third finds the account crowded: deferred with
    # no slot reserved, no attempt used, to the 1 s tier (the 5 s one idled the number)
    parts.tenant.accounts["acc-fast"] = meta_account("acc-fast", throughput_mps=2)
    sender = _sibling(parts, max_waiting_per_account=1)
    first = asyncio.create_task(sender.send(command(account_id="acc-fast")))
    second = asyncio.create_task(sender.send(command(account_id="acc-fast")))
    await eventually(lambda: sender._waiting["acc-fast"] == 1)
    third = command(account_id="acc-fast")
    with pytest.raises(SendRetry) as info:
        await sender.send(third)
    assert info.value.early
    assert info.value.counts_as_attempt is False
    assert 0.5 < info.value.delay_s <= 1.0
    assert topology.retry_tier_for(info.value.delay_s, at_most=True).queue == (
        "whatsapp.outbound.retry.1s"
    )
    assert await parts.redis.get(IdempotencyStore.key("t1", third.idempotency_key)) is None
    await asyncio.gather(first, second)
    assert len(parts.graph.requests) == 2


async def test_redis_unreachable_means_no_send(parts: Parts) -> None:
    dead = create_redis("redis://127.0.0.1:1/0", timeout_s=0.2)
    try:
        sender = Sender(
            accounts=parts.sender._accounts,
            providers=parts.sender._providers,
            idempotency=IdempotencyStore(dead, ttl_s=60),
            limiter=RateLimiter(dead),
            breaker=CircuitBreaker(),
            publish=parts.sender._publish,
        )
        with pytest.raises(SendRetry) as info:
            await sender.send(command())
        assert info.value.counts_as_attempt is False
        assert parts.graph.requests == []
    finally:
        await dead.aclose()


async def test_claim_without_result_is_parked_not_resent(parts: Parts) -> None:
    cmd = command()
    key = IdempotencyStore.key(cmd.tenant_id, cmd.idempotency_key)
    stale = {"fp": fingerprint(cmd), "owner": "dead-process", "at": time.time() - 60}
    await parts.redis.set(key, orjson.dumps({**stale, "result": None}))
    from flowchat_sender.errors import Park

    with pytest.raises(Park, match="outcome unknown; not resent"):
        await parts.sender.send(cmd)
    # a fresh claim (another replica mid-send) waits instead, without using an attempt
    await parts.redis.set(key, orjson.dumps({**stale, "at": time.time(), "result": None}))
    with pytest.raises(SendRetry) as info:
        await parts.sender.send(cmd)
    assert info.value.counts_as_attempt is False
    assert parts.graph.requests == []


async def test_retryable_failure_releases_the_claim_so_the_retry_sends(parts: Parts) -> None:
    parts.graph.fail_code = 131016
    cmd = command()
    with pytest.raises(SendRetry) as info:
        await parts.sender.send(cmd)
    assert info.value.counts_as_attempt is True
    assert info.value.error is not None
    assert info.value.error.code == 131016
    parts.graph.fail_code = None
    result = await parts.sender.send(cmd, attempts_made=1)
    assert result.status == "accepted"
    assert result.attempts == 2
    assert len(parts.graph.requests) == 2


async def test_throughput_error_lowers_the_numbers_rate(parts: Parts) -> None:
    parts.graph.fail_code = 130429
    with pytest.raises(SendRetry):
        await parts.sender.send(command())
    assert await parts.redis.get(f"flowchat:sender:rl:{{t1}}:throttle:{PNID}") == b"0.5"


async def test_pair_rate_error_holds_only_that_recipient(parts: Parts) -> None:
    parts.graph.fail_code = 131056
    held = command()
    with pytest.raises(SendRetry) as info:
        await parts.sender.send(held)
    assert info.value.counts_as_attempt is True
    parts.graph.fail_code = None
    with pytest.raises(SendRetry) as again:  # same recipient: held, not sent
        await parts.sender.send(held.model_copy(update={"idempotency_key": "other"}))
    assert again.value.counts_as_attempt is False
    result = await parts.sender.send(command())  # another recipient goes through
    assert result.status == "accepted"
    assert len(parts.graph.requests) == 2


async def test_open_breaker_defers_without_using_attempts(parts: Parts) -> None:
    parts.graph.fail_code = 131000
    for _ in range(2):
        with pytest.raises(SendRetry):
            await parts.sender.send(command())
    assert len(parts.graph.requests) == 2
    with pytest.raises(SendRetry) as info:
        await parts.sender.send(command())
    assert "circuit open" in info.value.reason
    assert info.value.counts_as_attempt is False
    assert len(parts.graph.requests) == 2
    parts.tenant.accounts["acc-2"] = meta_account("acc-2", phone_number_id="2065550002")
    parts.graph.fail_code = None
    other = await parts.sender.send(command(account_id="acc-2"))  # other accounts unaffected
    assert other.status == "accepted"


# --------------------------------------------------------------------- the limiter


async def test_limiter_never_exceeds_the_rate_across_replicas(redis_url: str) -> None:
    rate = 40
    replicas = [create_redis(redis_url) for _ in range(2)]
    # with the service's own burst tolerance (10 ms: less than one 25 ms slot here)
    burst_s = Settings().number_burst_s
    limiters = [RateLimiter(r, pair_burst=1000, number_burst_s=burst_s) for r in replicas]
    admitted: list[float] = []

    async def one(i: int) -> None:
        limiter = limiters[i % 2]
        admission = await limiter.acquire("t", "num-1", f"{i}", rate_mps=rate, max_wait_s=5.0)
        assert admission.admitted
        await asyncio.sleep(admission.wait_s)
        admitted.append(time.monotonic())

    try:
        await asyncio.gather(*(one(i) for i in range(100)))
    finally:
        for r in replicas:
            await r.aclose()
    admitted.sort()
    for start in admitted:
        in_window = sum(1 for t in admitted if start <= t < start + 1.0)
        assert in_window <= rate + 1
    span = admitted[-1] - admitted[0]
    assert span == pytest.approx(99 / rate, rel=0.03)


async def test_a_number_sends_a_burst_at_once_then_keeps_its_rate(redis_url: str) -> None:
    # 10 mps with 1 s of tolerance (the same 11 slots as 1,000 mps with 10 ms in the
    # service, at a scale a busy machine keeps: a slot is 100 ms): 11 commands arriving
    # together go at once, not each asleep for a slot of its own; the 12th waits for its
    # slot, and the schedule holds after that
    redis = create_redis(redis_url)
    try:
        limiter = RateLimiter(redis, pair_burst=1000, number_burst_s=1.0)
        waits: list[float] = []
        called: list[float] = []
        for i in range(40):
            called.append(time.monotonic())
            admission = await limiter.acquire("t", "fast", f"r{i}", rate_mps=10, max_wait_s=5)
            waits.append(admission.wait_s)
        assert waits[:11] == [0.0] * 11
        assert 0 < waits[11] <= 0.1
        # each later one a slot (100 ms) further on, less the time between the calls
        expected = waits[11] + 2.8 - (called[-1] - called[11])
        assert waits[-1] == pytest.approx(expected, abs=0.03)

        even = RateLimiter(redis, pair_burst=1000)  # no tolerance: every slot 100 ms apart
        first = await even.acquire("t", "even", "a", rate_mps=10, max_wait_s=1)
        second = await even.acquire("t", "even", "b", rate_mps=10, max_wait_s=1)
        assert first.wait_s == 0
        assert 0 < second.wait_s <= 0.1
    finally:
        await redis.aclose()


async def test_limiter_pair_rate_hold_and_throttle(redis_url: str) -> None:
    redis = create_redis(redis_url)
    try:
        limiter = RateLimiter(redis, pair_interval_s=6.0, pair_burst=3)
        for _ in range(3):
            assert (await limiter.acquire("t", "n", "r1", rate_mps=1000, max_wait_s=1)).admitted
        fourth = await limiter.acquire("t", "n", "r1", rate_mps=1000, max_wait_s=1)
        assert not fourth.admitted
        assert fourth.limit == "pair"
        assert fourth.wait_s == pytest.approx(6.0, abs=0.2)
        assert (await limiter.acquire("t", "n", "r2", rate_mps=1000, max_wait_s=1)).admitted

        await limiter.hold("t", "n", "r3", duration_s=4)
        held = await limiter.acquire("t", "n", "r3", rate_mps=1000, max_wait_s=1)
        assert not held.admitted
        assert held.limit == "hold"
        assert 3.5 < held.wait_s <= 4

        # throttled to half of 10/s: the next slot is 200 ms apart, not 100 ms
        await limiter.throttle("t", "m", factor=0.5, duration_s=10)
        first = await limiter.acquire("t", "m", "a", rate_mps=10, max_wait_s=1)
        second = await limiter.acquire("t", "m", "b", rate_mps=10, max_wait_s=1)
        assert first.wait_s == 0
        assert second.wait_s == pytest.approx(0.2, abs=0.02)
        # a wait beyond max_wait reserves nothing and says when to come back
        far = await limiter.acquire("t", "m", "c", rate_mps=10, max_wait_s=0.1)
        assert not far.admitted
        assert far.limit == "number"
    finally:
        await redis.aclose()


def test_settings_refuse_a_placeholder_service_token() -> None:
    from flowchat_platform.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="FLOWCHAT_SERVICE_TOKEN"):
        Settings(FLOWCHAT_SERVICE_TOKEN="changeme").check_secrets()
    Settings(FLOWCHAT_SERVICE_TOKEN=TOKEN).check_secrets()
    assert Settings().http_port == 8703
    assert json.loads(json.dumps(Settings().graph_version)) == "v23.0"
