"""A template approved just after a catalog sync is sent (issue 21, defect 3).

Before: the catalog was re-synced on a miss only when older than ``TEMPLATE_RECHECK_S``
(300 s), so a template approved right after a sync, with no status webhook, failed
permanently with -20 (or -21 while the catalog still said PENDING) for up to five
minutes. Now a miss against a catalog synced before the command was made triggers a
fresh sync (single-flight per WABA, at most one per ``TEMPLATE_MISS_SYNC_S``); when it
is too soon for one, the command waits in a retry tier without using an attempt. A
miss that a sync made after the command confirms is final.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from sender_testkit import Number, World, own_redis_url, world

from flowchat_contracts import TemplateContent
from flowchat_platform.testing import serve
from flowchat_sender import fates, metrics
from flowchat_sender.app import create_app
from flowchat_sender.errors import SendRetry
from flowchat_sender.templates import Catalog, TemplateCatalog

TOKEN = "template-miss-test-token-012345"


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    number = Number.fresh("tm", "acc-m", pnid_prefix="10691")
    async with world(
        amqp_url, own_redis_url(redis_url), number, token=TOKEN, forget=[f"*{number.tenant_id}*"]
    ) as kit:
        yield kit


@pytest.mark.integration
async def test_a_template_approved_right_after_a_sync_is_sent(w: World) -> None:
    await w.template("order_update")
    pending = await w.template("pending_news", status="PENDING")
    graph = metrics.TEMPLATE_CATALOG.labels("graph")
    syncs_before = float(graph._value.get())
    # no status webhook reaches the sender (nor would one: the sandbox posts to a sink)
    r = await w.sandbox.put(f"/sandbox/numbers/{w.pnid}/faults", json={"drop_webhooks": -1})
    assert r.status_code == 200, r.text
    async with serve(create_app(w.settings())):
        first = w.command(1, TemplateContent(name="order_update", language="en_US"))
        await w.publish([first])
        assert (await w.results(1))[first.message_id].status == "accepted"  # catalog synced

        # right after the sync: one template approved, one created approved
        r = await w.sandbox.patch(f"/sandbox/templates/{pending}", json={"status": "APPROVED"})
        assert r.status_code == 200, r.text
        await w.template("fresh_news")
        commands = [
            w.command(2, TemplateContent(name="pending_news", language="en_US")),
            w.command(3, TemplateContent(name="fresh_news", language="en_US")),
            *(w.command(n, TemplateContent(name="fresh_news", language="en_US")) for n in (4, 5)),
            w.command(6, TemplateContent(name="no_such_template", language="en_US")),
        ]
        await w.publish(commands)
        results = await w.results(len(commands), timeout_s=30)
    for c in commands[:4]:
        assert results[c.message_id].status == "accepted", results[c.message_id].error
        assert results[c.message_id].attempts == 1  # the wait used no attempt
    unknown = results[commands[4].message_id]
    assert unknown.status == "failed"
    assert unknown.error is not None
    assert unknown.error.code == fates.TEMPLATE_UNKNOWN
    # the first load, then one sync for every miss together
    assert float(graph._value.get()) - syncs_before <= 2


# --------------------------------------------------------------------- the rule, alone


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def catalog_at(clock: Clock, **kw: Any) -> TemplateCatalog:
    # These branches decide without Redis or the Graph API (a sync would need both).
    return TemplateCatalog(cast(Any, None), cast(Any, None), clock=clock, **kw)


async def test_a_miss_against_a_catalog_synced_after_the_command_is_final() -> None:
    clock = Clock(1000.0)
    catalogs = catalog_at(clock)
    synced = Catalog({}, synced_at=999.0)
    account = Number.fresh("tu", "acc-u", pnid_prefix="10692").credentials
    assert await catalogs.after_miss(account, synced, made_at=998.0) is synced


async def test_too_soon_for_a_sync_is_a_retry_without_an_attempt_until_recheck_s() -> None:
    clock = Clock(1000.0)
    catalogs = catalog_at(clock, miss_sync_s=5.0, recheck_s=300.0)
    young = Catalog({}, synced_at=998.0)
    account = Number.fresh("tu", "acc-u", pnid_prefix="10692").credentials
    with pytest.raises(SendRetry) as retry:
        await catalogs.after_miss(account, young, made_at=999.0)
    assert not retry.value.counts_as_attempt
    assert retry.value.delay_s == pytest.approx(3.0)
    # a command made before the catalog's sync but waiting longer than recheck_s: final
    old = Catalog({}, synced_at=999.0)
    assert await catalogs.after_miss(account, old, made_at=1000.0 - 301) is not None


async def test_a_failing_graph_api_lets_meta_decide() -> None:
    clock = Clock(1000.0)
    catalogs = catalog_at(clock, retry_s=60.0)
    account = Number.fresh("tu", "acc-u", pnid_prefix="10692").credentials
    catalogs._failed[TemplateCatalog.key(account.tenant_id, account.waba_id or "")] = 990.0
    assert await catalogs.after_miss(account, Catalog({}, synced_at=900.0), made_at=999.0) is None
