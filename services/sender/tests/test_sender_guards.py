"""Template catalog and guards against the real sandbox (in-process), RabbitMQ and Redis.

- the catalog is synced from every page into Redis (TTL 24 h), once for many concurrent
  sends and once for several replicas; an unreachable Graph API lets Meta decide
  without a Graph call per message;
- template commands that do not match the catalog fail with FlowChat's own codes and
  never reach the provider; a template status webhook refreshes the catalog;
- marketing to an opted-out customer fails before the provider; other categories pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr
from sender_testkit import Number, World, own_redis_url, world

from flowchat_contracts import (
    TemplateComponent,
    TemplateContent,
    TemplateParameter,
    optout_key,
)
from flowchat_platform.accounts import AccountCredentials
from flowchat_platform.privacy import privacy_index
from flowchat_platform.testing import eventually, free_port, serve
from flowchat_sender import fates
from flowchat_sender.app import create_app
from flowchat_sender.templates import GraphTemplates, TemplateCatalog, TemplateGuard

pytestmark = pytest.mark.integration

TOKEN = "guards-test-service-token-0123"
FILLERS = 23


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    number = Number.fresh(
        "tg", "acc-g", pnid_prefix="10688", display_phone_number="+1 650 555 8801"
    )
    tenant = number.tenant_id
    async with world(
        amqp_url,
        own_redis_url(redis_url),
        number,
        token=TOKEN,
        forget=[f"*{tenant}*"],
        defaults={"template_page_size": 10},
    ) as kit:
        yield kit


class Counting:
    """The real Graph client, counting catalog fetches."""

    def __init__(self, inner: GraphTemplates) -> None:
        self.inner = inner
        self.fetches = 0

    async def fetch(self, account: AccountCredentials) -> list[dict[str, Any]]:
        self.fetches += 1
        return await self.inner.fetch(account)


def body(*values: str) -> TemplateComponent:
    return TemplateComponent(
        type="body", parameters=[TemplateParameter(type="text", text=v) for v in values]
    )


ORDER_COMPONENTS = [{"type": "BODY", "text": "Hi {{1}}, order {{2}} is on its way."}]


# --------------------------------------------------------------------- the catalog


async def test_catalog_syncs_every_page_once_for_concurrent_sends_and_replicas(
    w: World,
) -> None:
    for i in range(FILLERS):
        await w.template(f"filler_{i:02d}", components=[{"type": "BODY", "text": "x"}])
    await w.template("order_update", components=ORDER_COMPONENTS)  # the last page
    redis = aioredis.Redis.from_url(w.redis_url)
    async with aiohttp.ClientSession() as session:
        graph = GraphTemplates(session, graph_url=w.sandbox_url, version="v23.0", page_size=10)
        source = Counting(graph)
        guard = TemplateGuard(TemplateCatalog(redis, source))
        good = w.command(
            1,
            TemplateContent(name="order_update", language="en_US", components=[body("Ann", "#42")]),
        )
        account = w.number.credentials
        verdicts = await asyncio.gather(*(guard.check(good, account) for _ in range(40)))
        assert verdicts == [None] * 40
        assert source.fetches == 1  # single-flight: one sync of 3 pages for 40 sends

        key = TemplateCatalog.key(w.tenant, w.waba)
        assert await redis.hlen(key) == FILLERS + 1 + 1  # + the sync time
        ttl = await redis.ttl(key)
        assert 24 * 3600 - 60 < ttl <= 24 * 3600

        replica = Counting(graph)
        other = TemplateGuard(TemplateCatalog(redis, replica))
        assert await other.check(good, w.number.credentials) is None
        assert replica.fetches == 0  # another replica reads Redis, not Graph
        await guard.catalog.close()
    await redis.aclose()


async def test_unreachable_graph_lets_meta_decide_without_a_call_per_message(w: World) -> None:
    redis = aioredis.Redis.from_url(w.redis_url)
    async with aiohttp.ClientSession() as session:
        dead = GraphTemplates(
            session, graph_url=f"http://127.0.0.1:{free_port()}", version="v23.0", timeout_s=2
        )
        source = Counting(dead)
        guard = TemplateGuard(TemplateCatalog(redis, source, retry_s=60))
        cmd = w.command(1, TemplateContent(name="anything", language="en_US"))
        first = await asyncio.gather(*(guard.check(cmd, w.number.credentials) for _ in range(20)))
        later = [await guard.check(cmd, w.number.credentials) for _ in range(20)]
        assert first + later == [None] * 40  # not checked: the provider decides
        assert source.fetches == 1
        assert not await redis.exists(TemplateCatalog.key(w.tenant, w.waba))
        await guard.catalog.close()
    await redis.aclose()


# --------------------------------------------------------------------- through the sender


async def test_template_commands_that_do_not_match_fail_before_the_provider(w: World) -> None:
    for i in range(FILLERS):
        await w.template(f"filler_{i:02d}", components=[{"type": "BODY", "text": "x"}])
    await w.template("order_update", components=ORDER_COMPONENTS)
    await w.template("held", status="PAUSED")
    await w.template(
        "promo",
        category="MARKETING",
        parameter_format="NAMED",
        components=[
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Hi {{first_name}}!"},
            {
                "type": "BUTTONS",
                "buttons": [{"type": "URL", "text": "Shop", "url": "https://shop.test/{{1}}"}],
            },
        ],
    )
    named = TemplateContent(
        name="promo",
        language="en_US",
        components=[
            TemplateComponent(
                type="header",
                parameters=[TemplateParameter(type="image", link="https://shop.test/a.jpg")],
            ),
            TemplateComponent(
                type="body",
                parameters=[
                    TemplateParameter(type="text", text="Ann", parameter_name="first_name")
                ],
            ),
            TemplateComponent(
                type="button",
                sub_type="url",
                index=0,
                parameters=[TemplateParameter(type="text", text="spring")],
            ),
        ],
    )
    ok = TemplateContent(name="order_update", language="en_US", components=[body("Ann", "#1")])
    cases = {
        "ok": (ok, None),
        "named": (named, None),
        "count": (ok.model_copy(update={"components": [body("Ann")]}), -22),
        "unnamed": (
            named.model_copy(
                update={"components": [named.components[0], body("Ann"), named.components[2]]}
            ),
            -23,
        ),
        "paused": (TemplateContent(name="held", language="en_US"), -21),
        "unknown": (TemplateContent(name="nope", language="en_US"), -20),
        "language": (ok.model_copy(update={"language": "de"}), -20),
    }
    commands = {k: w.command(i, c) for i, (k, (c, _)) in enumerate(cases.items())}
    async with serve(create_app(w.settings())) as sender_url:
        await w.publish(list(commands.values()), in_order=True)
        results = await w.results(len(commands))
        async with httpx.AsyncClient(base_url=sender_url) as http:
            scraped = (await http.get("/metrics")).text
    for name, (_, code) in cases.items():
        result = results[commands[name].message_id]
        if code is None:
            assert result.status == "accepted", (name, result.error)
            continue
        assert result.status == "failed", name
        assert result.error is not None
        assert result.error.code == code, (name, result.error)
        assert result.error.message.startswith("not sent by FlowChat"), result.error
    language = results[commands["language"].message_id].error
    assert language is not None
    assert "in en_US only" in language.message
    assert set(await w.ledger_ids()) == {commands["ok"].message_id, commands["named"].message_id}
    assert 'flowchat_sender_template_refusals_total{code="-22"} 1.0' in scraped
    assert 'flowchat_sender_sends_total{account="acc-g"' in scraped


async def test_template_status_webhook_refreshes_the_catalog(w: World) -> None:
    template_id = await w.template("order_update", components=ORDER_COMPONENTS)
    ok = TemplateContent(name="order_update", language="en_US", components=[body("Ann", "#1")])
    redis = aioredis.Redis.from_url(w.redis_url)
    key = TemplateCatalog.key(w.tenant, w.waba)
    async with serve(create_app(w.settings(template_recheck_s=3600))):
        await w.publish([w.command(1, ok)], in_order=True)
        assert (await w.results(1))[f"{w.tenant}-m1"].status == "accepted"

        # Meta pauses the template, and approves a new one: the gateway publishes both
        r = await w.sandbox.patch(f"/sandbox/templates/{template_id}", json={"status": "PAUSED"})
        assert r.status_code == 200, r.text
        await w.template("shipping_news", components=[{"type": "BODY", "text": "Shipped."}])
        await w.business_event(
            "message_template_status_update",
            {
                "event": "PAUSED",
                "message_template_id": int(template_id),
                "message_template_name": "order_update",
                "message_template_language": "en_US",
                "reason": "NONE",
            },
        )
        await w.business_event(
            "message_template_status_update",
            {
                "event": "APPROVED",
                "message_template_name": "shipping_news",
                "message_template_language": "en_US",
            },
        )

        async def refreshed() -> bool:
            fresh = await redis.hget(key, "shipping_news:en_US")
            paused = await redis.hget(key, "order_update:en_US")
            return fresh is not None and paused is not None and b'"PAUSED"' in paused

        await eventually(refreshed, timeout_s=15)
        news = TemplateContent(name="shipping_news", language="en_US")
        await w.publish([w.command(2, ok), w.command(3, news)], in_order=True)
        results = await w.results(2)
    await redis.aclose()
    paused = results[f"{w.tenant}-m2"]
    assert paused.status == "failed"
    assert paused.error is not None
    assert paused.error.code == fates.TEMPLATE_NOT_APPROVED
    assert "PAUSED" in paused.error.message
    assert results[f"{w.tenant}-m3"].status == "accepted"
    assert set(await w.ledger_ids()) == {f"{w.tenant}-m1", f"{w.tenant}-m3"}


async def test_marketing_to_an_opted_out_customer_fails_before_the_provider(w: World) -> None:
    await w.template("promo_plain", category="MARKETING")
    promo = TemplateContent(name="promo_plain", language="en_US")
    opted, other = "+16508880001", "+16508880002"
    redis = aioredis.Redis.from_url(w.redis_url)
    await redis.sadd(optout_key(w.tenant), opted.lstrip("+"))
    commands = [
        w.command(1, promo, to=opted, category="marketing"),
        w.command(2, promo, to=opted, category="utility"),
        w.command(3, promo, to=other, category="marketing"),
    ]
    async with serve(create_app(w.settings())):
        await w.publish(commands, in_order=True)
        results = await w.results(3)
        await w.publish([commands[0]])  # a duplicate: the stored refusal, not a send
        again = await w.results(1)
    await redis.aclose()
    refused = results[commands[0].message_id]
    assert refused.status == "failed"
    assert refused.error is not None
    assert refused.error.code == fates.OPTED_OUT
    assert "opted out" in refused.error.message
    assert results[commands[1].message_id].status == "accepted"  # not marketing
    assert results[commands[2].message_id].status == "accepted"
    assert again[commands[0].message_id].error == refused.error
    assert set(await w.ledger_ids()) == {commands[1].message_id, commands[2].message_id}


async def test_marketing_to_an_erased_customer_fails_by_its_keyed_digest(w: World) -> None:
    """An erased customer is in the opt-out set only as ``h:<HMAC>`` (issue 28): the guard
    refuses a marketing send to any form of the number, and nothing else."""
    await w.template("promo_plain", category="MARKETING")
    promo = TemplateContent(name="promo_plain", language="en_US")
    erased, other = "+16508880011", "+16508880012"
    index = privacy_index(None, SecretStr(TOKEN))  # the key every service derives
    redis = aioredis.Redis.from_url(w.redis_url)
    await redis.sadd(optout_key(w.tenant), "h:" + index.digest(w.tenant, erased))
    commands = [
        w.command(1, promo, to=erased, category="marketing"),
        w.command(2, promo, to=erased.lstrip("+"), category="marketing"),
        w.command(3, promo, to=other, category="marketing"),
    ]
    async with serve(create_app(w.settings())):
        await w.publish(commands, in_order=True)
        results = await w.results(3)
    await redis.aclose()
    for refused in (results[commands[0].message_id], results[commands[1].message_id]):
        assert refused.status == "failed"
        assert refused.error is not None
        assert refused.error.code == fates.OPTED_OUT
    assert results[commands[2].message_id].status == "accepted"
    assert set(await w.ledger_ids()) == {commands[2].message_id}


async def test_status_events_patch_only_real_statuses(w: World) -> None:
    await w.template("order_update", components=ORDER_COMPONENTS)
    redis = aioredis.Redis.from_url(w.redis_url)
    async with aiohttp.ClientSession() as session:
        catalog = TemplateCatalog(
            redis, GraphTemplates(session, graph_url=w.sandbox_url, version="v23.0")
        )
        assert await catalog.refresh(w.number.credentials) is not None
        key = TemplateCatalog.key(w.tenant, w.waba)

        async def status() -> str:
            raw = await redis.hget(key, "order_update:en_US")
            assert raw is not None
            return str(orjson.loads(raw)["status"])

        assert not await catalog.patch(w.tenant, w.waba, "order_update", "en_US", "FLAGGED")
        assert await status() == "APPROVED"  # flagged templates still send
        assert await catalog.patch(w.tenant, w.waba, "order_update", "en_US", "disabled")
        assert await status() == "DISABLED"
        assert await catalog.patch(w.tenant, w.waba, "order_update", "en_US", "REINSTATED")
        assert await status() == "APPROVED"
        assert not await catalog.patch(w.tenant, w.waba, "unknown", "en_US", "PAUSED")
        await catalog.close()
    await redis.aclose()
