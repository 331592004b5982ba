"""Inbox history at scale: thread pages and tenant-wide search over HTTP with 10 million
stored messages, and history ingest through the real consumer beside the sender's
throughput in the same run.

1. The history (:mod:`bench.inbox_data`): generated in SQL, kept between runs.
2. Reads: the inbox runs as a process on that database; requests go one at a time
   through its HTTP API (FlowChat's service token with ``X-Tenant-ID``), so a figure
   is the server's whole answer (auth, query, JSON), timed by the client. Thread pages:
   threads drawn half by message (busy threads come up as often as agents open them)
   and half uniformly, the first page and, when there is one, the next (keyset cursor).
   Search: the largest tenant (about a fifth of everything), a middling and a small
   one, each with common, middling and rare words, two words, a phrase, an order
   reference, a word that is nowhere, and the second page of the common ones. A
   warm-up of other threads and queries goes first, untimed.
3. Ingest: ``commands`` send commands (the throughput scenario's, to recipients of
   their own: each opens a thread) and half as many customer messages from those
   recipients are published; ``inbox.history`` gets a copy of each. The sender drains
   its queue (its msg/s from its results' own clocks, :func:`bench.sender.run_sender`)
   while the inbox is stopped; then the inbox starts on the 10 M database and its own
   ``flowchat_amqp_consumed_total`` (acks, sent only after each batch's commit) counts
   its progress. The rows it wrote are checked and deleted after.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench import inbox_crypto, inbox_data, sender, stats
from bench.common import RssSampler, Stack, isolated, load, say, scrape, seed_accounts
from bench.sender import QUIET_SANDBOX, curve_rate, watch
from bench.stats import metric_sum
from flowchat_contracts import CustomerIdentity, InboundMessage, topology
from flowchat_platform.amqp import Amqp
from flowchat_platform.testing import DEFAULT_PG

TARGETS = {"thread_page_p95_ms": 50, "search_p95_ms": 200, "ingest_vs_sender": 1.0}
PAGE = 50
TIMEOUT_S = 10.0

#: Search words by how often they occur (see ``inbox_data.VOCABULARY``'s ranks).
QUERIES: dict[str, list[str]] = {
    "common": ["order", "thanks", "delivery"],
    "middling": ["refund", "tracking", "invoice"],
    "rare": ["mattress", "firmware", "technician"],
    "two words": ["refund tracking", "blue shirt"],
    "phrase": ['"please help"'],
    "absent": [inbox_data.ABSENT_WORD],
}


class Client:
    """Timed GETs against the inbox as one tenant's caller. A request that fails or
    takes longer than :data:`TIMEOUT_S` counts as an error (kept in :attr:`errors`)
    with the time it took, so a slow query shows in the figures instead of hanging."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http, self.url, self.token = http, url, token
        self.errors: list[str] = []

    async def get(self, tenant: str, path: str, **params: Any) -> tuple[float, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}", "X-Tenant-ID": tenant}
        query = {k: str(v) for k, v in params.items() if v is not None}
        t0 = time.perf_counter()
        try:
            async with self.http.get(
                self.url + path,
                headers=headers,
                params=query,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            ) as r:
                body = await r.read()
                ms = (time.perf_counter() - t0) * 1000
                if r.status == 200:
                    return ms, orjson.loads(body)
                self.errors.append(f"{path} {query.get('q', '')!r}: {r.status}")
        except TimeoutError:
            ms = (time.perf_counter() - t0) * 1000
            self.errors.append(f"{path} {query.get('q', '')!r}: no answer in {TIMEOUT_S} s")
        return ms, {"next_cursor": None}


async def _threads_to_read(dsn: str, messages: int, count: int) -> list[tuple[str, int]]:
    """``count`` (tenant, thread): half drawn by message, half uniformly by thread."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "inbox"})
    try:
        percent = min(100.0, count * 4 * 100 / messages)
        by_message = await conn.fetch(
            f"SELECT tenant_id, thread_id FROM messages TABLESAMPLE SYSTEM ({percent}) "  # noqa: S608
            "WHERE tenant_id LIKE 'bt%' LIMIT $1",
            count * 4,
        )
        top = await conn.fetchval("SELECT max(id) FROM threads WHERE tenant_id LIKE 'bt%'")
        rng = random.Random(7)  # noqa: S311 - a seeded sample, not a secret
        ids = rng.sample(range(1, top + 1), min(top, count))
        uniform = await conn.fetch(
            "SELECT tenant_id, id AS thread_id FROM threads WHERE id = ANY($1::bigint[])", ids
        )
    finally:
        await conn.close()
    picked = rng.sample(list(by_message), min(len(by_message), count // 2))
    rows = [*picked, *uniform[: count - len(picked)]]
    rng.shuffle(rows)
    return [(r["tenant_id"], r["thread_id"]) for r in rows]


async def _search_tenants(dsn: str) -> dict[str, tuple[str, int]]:
    """The largest tenant, a middling one and a small one: label → (tenant, messages)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "inbox"})
    try:
        rows = await conn.fetch(
            "SELECT tenant_id, sum(message_count)::bigint AS n FROM threads "
            "WHERE tenant_id LIKE 'bt%' GROUP BY 1 ORDER BY 2 DESC"
        )
    finally:
        await conn.close()
    pick = {"largest": rows[0], "middling": rows[len(rows) // 8], "small": rows[len(rows) // 2]}
    return {k: (r["tenant_id"], int(r["n"])) for k, r in pick.items()}


async def _order_refs(dsn: str, tenant: str, count: int) -> list[str]:
    """Order references of the tenant's newest generated messages (the text is encrypted:
    known from the message ids, :func:`bench.inbox_crypto.order_ref`)."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "inbox"})
    try:
        rows = await conn.fetch(
            "SELECT id FROM messages WHERE tenant_id = $1 AND id % 5 = 0 "
            "ORDER BY occurred_at DESC, id DESC LIMIT 500",
            tenant,
        )
    finally:
        await conn.close()
    refs = [ref for r in rows if (ref := inbox_crypto.order_ref(r["id"]))]
    rng = random.Random(11)  # noqa: S311 - a seeded sample, not a secret
    return rng.sample(refs, min(count, len(refs)))


async def measure_reads(
    url: str, token: str, dsn: str, messages: int, quick: bool
) -> dict[str, Any]:
    threads = await _threads_to_read(dsn, messages, 120 if quick else 500)
    warm, timed = threads[:20], threads[20:]
    tenants = await _search_tenants(dsn)
    page_ms: list[float] = []
    deep = 0
    by_kind: dict[str, list[float]] = {}
    per_tenant: dict[str, list[float]] = {}
    async with aiohttp.ClientSession() as http:
        client = Client(http, url, token)
        for tenant, thread in warm:
            await client.get(tenant, f"/v1/threads/{thread}/messages", limit=PAGE)
        for tenant, thread in timed:
            ms, body = await client.get(tenant, f"/v1/threads/{thread}/messages", limit=PAGE)
            page_ms.append(ms)
            if body["next_cursor"]:
                ms, _ = await client.get(
                    tenant,
                    f"/v1/threads/{thread}/messages",
                    limit=PAGE,
                    cursor=body["next_cursor"],
                )
                page_ms.append(ms)
                deep += 1
        # warm-up: words of each kind that the timed queries do not use
        for tenant, _ in tenants.values():
            for q in ("hello", "payment", "bluetooth"):
                await client.get(tenant, "/v1/search", q=q, limit=PAGE)
        for label, (tenant, _) in tenants.items():
            queries = {**QUERIES, "order reference": await _order_refs(dsn, tenant, 2)}
            for kind, words in queries.items():
                for q in words:
                    ms, body = await client.get(tenant, "/v1/search", q=q, limit=PAGE)
                    by_kind.setdefault(kind, []).append(ms)
                    per_tenant.setdefault(label, []).append(ms)
                    if kind == "common" and body["next_cursor"]:
                        ms, _ = await client.get(
                            tenant, "/v1/search", q=q, limit=PAGE, cursor=body["next_cursor"]
                        )
                        by_kind.setdefault("common, page 2", []).append(ms)
                        per_tenant[label].append(ms)
        errors = client.errors
    search_ms = [ms for values in by_kind.values() for ms in values]
    return {
        "errors": errors,
        "thread_page_ms": stats.summary(page_ms),
        "thread_pages": {"threads": len(timed), "second_pages": deep, "page_size": PAGE},
        "search_ms": stats.summary(search_ms),
        "search_by_kind_ms": {k: stats.summary(v) for k, v in by_kind.items()},
        "search_by_tenant_ms": {k: stats.summary(v) for k, v in per_tenant.items()},
        "search_tenants": {k: {"tenant": t, "messages": n} for k, (t, n) in tenants.items()},
    }


def _replies(accounts: list[Any], commands: list[Any], count: int) -> list[InboundMessage]:
    """``count`` customer messages from the commands' recipients (their threads exist
    by then), with text to index."""
    texts = inbox_data.sentences(200, seed=5)
    by_id = {a.account_id: a for a in accounts}
    now = datetime.now(UTC)
    out = []
    for i, c in enumerate(commands[:count]):
        a = by_id[c.account_id]
        out.append(
            InboundMessage(
                tenant_id=c.tenant_id,
                account_id=c.account_id,
                provider="meta",
                provider_message_id=f"wamid.bench{uuid.uuid4().hex}",
                phone_number_id=a.phone_number_id,
                type="text",
                text=texts[i % len(texts)],
                timestamp=now + timedelta(milliseconds=i),
                customer_wa_id=c.to,
                customer=CustomerIdentity(wa_id=c.to),
            )
        )
    return out


async def _publish_inbound(amqp_url: str, items: list[InboundMessage]) -> None:
    pub = Amqp(amqp_url, service="bench")
    await pub.connect()
    try:
        for i in range(0, len(items), 500):
            await pub.publish_many(
                (
                    topology.EXCHANGE_INBOUND,
                    topology.inbound_routing_key(m.tenant_id, m.account_id, m.type),
                    m,
                )
                for m in items[i : i + 500]
            )
    finally:
        await pub.close(grace_s=0)


async def run_ingest(stack: Stack, dsn: str, total: int) -> dict[str, Any]:
    proc = await stack.start("inbox", env={"DATABASE_URL": dsn, **inbox_data.NO_RETENTION})
    async with aiohttp.ClientSession() as http:

        async def acked() -> int:
            text = await scrape(http, proc.url)
            return int(
                metric_sum(
                    text,
                    "flowchat_amqp_consumed_total",
                    queue=topology.QUEUE_INBOX_HISTORY,
                    fate="ack",
                )
            )

        with RssSampler([proc]) as rss:
            curve = await watch(acked, total, timeout_s=600)
        text = await scrape(http, proc.url)
    await stack.stop(proc)
    batches = metric_sum(text, "flowchat_inbox_ingest_batch_size_count")
    return {
        "rate": curve_rate(curve, total),
        "acked": curve[-1][1],
        "all_acked_s": round(curve[-1][0] - curve[0][0], 2),
        "batches": batches,
        "mean_batch": round(total / batches, 1) if batches else None,
        "rss_peak_mb": rss.peak["inbox"],
    }


async def inbox(quick: bool) -> dict[str, Any]:
    messages = 200_000 if quick else 10_000_000
    n = 1500 if quick else 8000
    replies = n // 2
    base = os.environ.get("DATABASE_URL", DEFAULT_PG)
    t0 = time.perf_counter()
    dsn, build = await inbox_data.ensure(base, messages)
    ready_s = round(time.perf_counter() - t0, 1)
    out: dict[str, Any] = {
        "messages_stored": messages,
        "database": {**build, "ready_s": ready_s, "name": inbox_data.database_name(messages)},
    }
    async with isolated("inbox") as stack:
        await stack.start("sandbox", env=QUIET_SANDBOX)
        await stack.start("tenant")
        # the throughput scenario's set-up: four numbers at Meta's top rate
        accounts = await seed_accounts(stack, 4, throughput_mps=1000)
        amqp_url, token = stack.env["AMQP_URL"], stack.env["FLOWCHAT_SERVICE_TOKEN"]
        proc = await stack.start("inbox", env={"DATABASE_URL": dsn, **inbox_data.NO_RETENTION})
        with RssSampler([proc]) as rss:
            reads = await measure_reads(proc.url, token, dsn, messages, quick)
        await stack.stop(proc)
        out.update(reads)
        say(
            f"inbox reads over {messages:,} messages: thread page p50 "
            f"{reads['thread_page_ms']['p50']:.1f} ms p95 {reads['thread_page_ms']['p95']:.1f} "
            f"ms; search p50 {reads['search_ms']['p50']:.1f} ms p95 "
            f"{reads['search_ms']['p95']:.1f} ms max {reads['search_ms']['max']:.1f} ms; "
            f"{len(reads['errors'])} errors {reads['errors'][:5]}"
        )
        commands = sender.commands(accounts, n, f"ib{uuid.uuid4().hex[:6]}")
        await sender.fill(amqp_url, commands)
        await _publish_inbound(amqp_url, _replies(accounts, commands, replies))
        run = await sender.run_sender(stack, n)
        try:
            ingest = await run_ingest(stack, dsn, n + replies)
            stored = await _stored(dsn, accounts[0].tenant_id)
        finally:
            await inbox_data.forget_tenant(dsn, accounts[0].tenant_id)
    ratio = stats.ratio(ingest["rate"], run["rate"])
    out["ingest"] = {
        "history_msgs_per_s": round(ingest["rate"]),
        "sender_msgs_per_s": round(run["rate"]),
        "ratio": ratio,
        "queued": {"send_commands": n, "customer_messages": replies},
        "stored_after": stored,
        "all_acked_s": ingest["all_acked_s"],
        "mean_batch": ingest["mean_batch"],
        "inbox_rss_peak_mb": max(ingest["rss_peak_mb"], rss.peak["inbox"]),
        "sender_outcomes": run["outcomes"],
    }
    out["targets"] = TARGETS
    out["load_avg"] = load()
    out["pass"] = bool(
        out["thread_page_ms"]["p95"] <= TARGETS["thread_page_p95_ms"]
        and out["search_ms"]["p95"] <= TARGETS["search_p95_ms"]
        and (ratio or 0) >= TARGETS["ingest_vs_sender"]
        and stored["messages"] == n + replies
        and not reads["errors"]
    )
    say(
        f"inbox ingest with {messages:,} stored: {ingest['rate']:,.0f} msg/s "
        f"(sender {run['rate']:,.0f} msg/s, {ratio}x); {stored['messages']:,} of "
        f"{n + replies:,} stored"
    )
    return out


async def _stored(dsn: str, tenant: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": "inbox"})
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM messages WHERE tenant_id = $1) AS messages, "
            "(SELECT count(*) FROM threads WHERE tenant_id = $1) AS threads",
            tenant,
        )
    finally:
        await conn.close()
    assert row is not None
    return {"messages": int(row["messages"]), "threads": int(row["threads"])}
