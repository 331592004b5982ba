"""Every page of the console over a large history: the server time of each page an
agent, a tenant admin and an operator open, with the inbox on :mod:`bench.inbox_data`'s
database (10 million messages; 200,000 with ``--quick``).

The console only calls the other services' HTTP APIs as the signed-in user, so the bench
runs the sandbox, the tenant service, the inbox (on the generated database), the
conversation service, the relay, the sender and the console as processes (the gateway
and the state manager are not started: the operator's health page finds them down). The
generated tenants (``bt…``) are not known to the tenant service, so the bench creates a
real tenant (with a number at the sandbox and an approved template) and copies one
generated tenant's history under its id (threads, messages, statuses; new ids; the
largest tenant with ``--quick``, a middling one in the full run to keep the copy short),
removed after (``inbox_data.forget_tenant``; an interrupted run's copy is removed by the
next ``inbox_data.ensure``). The generated history has no hand-offs: the agent takes
``HANDOFFS`` threads over through the inbox's API. The admin pages get their data through
the services' APIs (2,000 contacts, 200 products, a draft campaign, a webhook endpoint,
an API key). An agent, a tenant admin and an operator sign in through the console's
form, as people do.

Timed, one request at a time by the client (the whole answer: the console's session
check, its upstream calls, rendering): the inbox lists, the inbox with a conversation
open, recent conversations, search (common, rare, absent words), thread history pages;
contacts, campaigns, a campaign, catalog, orders, numbers, templates, integrations, a
webhook's deliveries, team, audit; the operator's tenants, DLQ and health. A warm-up of
each kind goes first, untimed. Each answer's ``Server-Timing`` (the console's own
account: upstream calls, rendering) is kept (medians by page). The same searches and
thread pages asked of the inbox's own API (the agent's access token) are the baseline:
the difference is the console's share.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from typing import Any

import aiohttp
import asyncpg

from bench import inbox_data, stats
from bench.common import TEMPLATE, Account, Stack, isolated, load, say, seed_accounts
from flowchat_platform.testing import DEFAULT_PG, free_port

TARGETS = {"page_p95_ms": 200}
TIMEOUT_S = 10.0
SCHEMA = "inbox"
#: Columns never copied (new ids, the copy's tenant and remapped threads; generated).
SKIP = {"id", "tenant_id", "thread_id"}
#: Contacts imported for the contacts page; threads the agent takes over (hand-offs:
#: the inbox lists and the inbox with a conversation open).
SEED_CONTACTS = 2000
HANDOFFS = 30
#: Searched: common, middling, rare words and one never generated.
WORDS = ("order", "thanks", "delivery", "refund", "mattress", inbox_data.ABSENT_WORD)


async def _columns(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
        "AND table_name = $2 AND is_generated = 'NEVER' ORDER BY ordinal_position",
        SCHEMA,
        table,
    )
    return [r["column_name"] for r in rows if r["column_name"] not in SKIP]


async def copy_tenant(dsn: str, source: str, target: str) -> dict[str, int]:
    """Copy ``source``'s history under ``target`` (new thread ids); row counts."""
    conn = await asyncpg.connect(dsn, command_timeout=None)
    try:
        async with conn.transaction():
            await conn.execute("CREATE TEMP TABLE tmap (old bigint, new bigint) ON COMMIT DROP")
            await conn.execute(
                f"INSERT INTO tmap SELECT id, "  # noqa: S608
                f"nextval(pg_get_serial_sequence('{SCHEMA}.threads', 'id')) "
                f"FROM {SCHEMA}.threads WHERE tenant_id = $1",
                source,
            )
            counts: dict[str, int] = {}
            cols = await _columns(conn, "threads")
            listed = ", ".join(cols)
            status = await conn.execute(
                f"INSERT INTO {SCHEMA}.threads (id, tenant_id, {listed}) "  # noqa: S608
                f"SELECT m.new, $1, {', '.join('t.' + c for c in cols)} "
                f"FROM {SCHEMA}.threads t JOIN tmap m ON m.old = t.id",
                target,
            )
            counts["threads"] = int(status.split()[-1])
            for table in ("messages", "conversations"):
                cols = await _columns(conn, table)
                status = await conn.execute(
                    f"INSERT INTO {SCHEMA}.{table} (tenant_id, thread_id, {', '.join(cols)}) "  # noqa: S608
                    f"SELECT $2, m.new, {', '.join('x.' + c for c in cols)} "
                    f"FROM {SCHEMA}.{table} x JOIN tmap m ON m.old = x.thread_id "
                    "WHERE x.tenant_id = $1",
                    source,
                    target,
                )
                counts[table] = int(status.split()[-1])
            # what autovacuum's ANALYZE would know of a tenant grown over time: a bulk
            # copy of 130,000 messages into 10 M is below its threshold (10 %), and a
            # tenant absent from the statistics looks like a handful of rows to the
            # planner (which then walks all of them for a rare word)
            for table in ("threads", "messages", "conversations"):
                await conn.execute(f"ANALYZE {SCHEMA}.{table}")
            return counts
    finally:
        await conn.close()


async def _pick_source(dsn: str, quick: bool) -> tuple[str, int]:
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            "SELECT tenant_id, sum(message_count)::bigint AS n FROM threads "
            "WHERE tenant_id LIKE 'bt%' GROUP BY 1 ORDER BY 2 DESC"
        )
    finally:
        await conn.close()
    row = rows[0] if quick else rows[len(rows) // 8]
    return row["tenant_id"], int(row["n"])


async def _sample(dsn: str, tenant: str, count: int) -> tuple[list[int], list[int]]:
    """Threads (by message: busy ones as often as agents open them) and conversations."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        threads = await conn.fetch(
            "SELECT thread_id FROM messages WHERE tenant_id = $1 ORDER BY random() LIMIT $2",
            tenant,
            count,
        )
        conversations = await conn.fetch(
            "SELECT id FROM conversations WHERE tenant_id = $1 ORDER BY random() LIMIT $2",
            tenant,
            count,
        )
    finally:
        await conn.close()
    return [r["thread_id"] for r in threads], [r["id"] for r in conversations]


async def _call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with http.request(method, url, **kw) as r:
        body = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"{method} {url}: {r.status} {body}")
        return body


async def _person(
    http: aiohttp.ClientSession, tenant_url: str, operator_key: str, tid: str | None, role: str
) -> tuple[str, str]:
    """A person (``role`` of tenant ``tid``; ``tid`` None: a FlowChat operator), invited
    and with a password set from the invitation: (e-mail, password)."""
    op = {"Authorization": f"Bearer {operator_key}"}
    email = f"{role}-{secrets.token_hex(4)}@bench.example"
    if tid is None:
        url, body = f"{tenant_url}/v1/operator/users", {"email": email, "name": "Ops"}
    else:
        url, body = f"{tenant_url}/v1/tenants/{tid}/users", {"email": email, "role": role}
    invited = await _call(http, "POST", url, headers=op, json=body)
    password = "bench-" + secrets.token_urlsafe(12)
    await _call(
        http,
        "POST",
        f"{tenant_url}/v1/auth/invitations/accept",
        json={"token": invited["invitation"]["token"], "password": password},
    )
    return email, password


async def _token(http: aiohttp.ClientSession, tenant_url: str, email: str, password: str) -> str:
    login = await _call(
        http, "POST", f"{tenant_url}/v1/auth/login", json={"email": email, "password": password}
    )
    return str(login["access_token"])


def _csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


async def _seed_admin_pages(
    http: aiohttp.ClientSession, stack: Stack, account: Account, admin_token: str
) -> dict[str, str]:
    """What the admin pages show, made through the services' APIs: contacts, products,
    a draft campaign, a webhook endpoint, an API key. The ids the pages need."""
    tid = account.tenant_id
    conv = f"{stack.url('conversation')}/v1/tenants/{tid}"
    admin = {"Authorization": f"Bearer {admin_token}"}
    csv_type = {**admin, "Content-Type": "text/csv"}
    contacts = [f"+23480{i:08d},Customer {i},bench,Lagos" for i in range(SEED_CONTACTS)]
    imported = await _call(
        http,
        "POST",
        f"{conv}/contacts/import",
        headers=csv_type,
        data=_csv("phone,name,tags,city", contacts),
    )
    if imported["imported"] != SEED_CONTACTS:
        raise RuntimeError(f"contacts import: {imported['imported']} of {SEED_CONTACTS}")
    products = [f"SKU-{i:04d},Product {i},{1 + i % 90}.50,USD,Bench,{i % 50}" for i in range(200)]
    await _call(
        http,
        "POST",
        f"{conv}/products/import",
        headers=csv_type,
        data=_csv("sku,name,price,currency,category,stock", products),
    )
    campaign = await _call(
        http,
        "POST",
        f"{conv}/campaigns",
        headers=admin,
        json={
            "name": "bench campaign",
            "account_id": account.account_id,
            "template": {"name": TEMPLATE, "language": "en_US"},
            "segment": {"tags_all": ["bench"]},
        },
    )
    service = {
        "Authorization": f"Bearer {stack.env['FLOWCHAT_SERVICE_TOKEN']}",
        "X-Tenant-ID": tid,
    }
    endpoint = await _call(
        http,
        "POST",
        f"{stack.url('relay')}/v1/endpoints",
        headers=service,
        json={"url": f"{stack.url('sandbox')}/bench-hook", "event_types": ["message.received"]},
    )
    await _call(
        http,
        "POST",
        f"{stack.url('tenant')}/v1/tenants/{tid}/api-keys",
        headers=admin,
        json={"name": "bench", "scopes": ["read"]},
    )
    return {
        "campaign": str(campaign["campaign_id"]),
        "endpoint": str(endpoint.get("endpoint_id") or endpoint.get("id")),
        "account": account.account_id,
    }


async def _take_over(
    http: aiohttp.ClientSession, inbox_url: str, token: str, threads: list[int]
) -> list[int]:
    """Hand-offs (the generated history has none): the agent takes these threads over
    through the inbox's API; the conversations' ids."""
    bearer = {"Authorization": f"Bearer {token}"}
    out = []
    for t in threads:
        body = await _call(http, "POST", f"{inbox_url}/v1/threads/{t}/takeover", headers=bearer)
        out.append(int(body["id"]))
    return out


def server_timing(value: str | None) -> dict[str, float]:
    """``Server-Timing`` (``total;dur=41.2, upstream;dur=55.0;desc="3 calls", …``) → ms by
    name, and ``calls``."""
    out: dict[str, float] = {}
    for part in (value or "").split(","):
        name, *params = (p.strip() for p in part.split(";"))
        for param in params:
            key, _, raw = param.partition("=")
            if key == "dur":
                out[name] = float(raw)
            elif key == "desc" and name == "upstream":
                out["calls"] = float(raw.strip('"').split()[0])
    return out


class Browser:
    """A signed-in browser: the console's cookies, timed GETs of whole pages (and the
    console's own account of each: its ``Server-Timing``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.errors: list[str] = []
        self.timing: dict[str, list[dict[str, float]]] = {}

    async def close(self) -> None:
        await self.http.close()

    async def sign_in(self, email: str, password: str) -> None:
        async with self.http.get(self.url + "/sign-in") as r:
            await r.read()
        csrf = self.http.cookie_jar.filter_cookies(self.url)["fc_csrf"].value  # type: ignore[arg-type]
        async with self.http.post(
            self.url + "/sign-in",
            data={"email": email, "password": password, "csrf_token": csrf},
            allow_redirects=False,
        ) as r:
            if r.status != 303:
                raise RuntimeError(f"sign-in: {r.status} {(await r.text())[-300:]}")

    async def page(self, path: str, kind: str | None = None) -> float:
        t0 = time.perf_counter()
        try:
            async with self.http.get(
                self.url + path,
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
                allow_redirects=False,
            ) as r:
                await r.read()
                if r.status != 200:
                    self.errors.append(f"{path}: {r.status}")
                if kind is not None:
                    found = server_timing(r.headers.get("Server-Timing"))
                    self.timing.setdefault(kind, []).append(found)
        except TimeoutError:
            self.errors.append(f"{path}: no answer in {TIMEOUT_S} s")
        return (time.perf_counter() - t0) * 1000


async def _time_pages(
    browser: Browser, pages: dict[str, list[str]], rounds: int
) -> dict[str, list[float]]:
    """Each kind's pages in turn, ``rounds`` times (after one untimed warm-up each)."""
    for paths in pages.values():
        await browser.page(paths[0])
    timed: dict[str, list[float]] = {}
    for kind, paths in pages.items():
        for i in range(max(rounds, len(paths))):
            ms = await browser.page(paths[i % len(paths)], kind)
            timed.setdefault(kind, []).append(ms)
    return timed


def _where(browser: Browser) -> dict[str, dict[str, float]]:
    """The console's account of each page kind (medians): total, upstream (summed), render,
    upstream calls."""
    out: dict[str, dict[str, float]] = {}
    for kind, rows in browser.timing.items():
        keys = sorted({k for r in rows for k in r})
        out[kind] = {k: round(statistics.median(r.get(k, 0.0) for r in rows), 1) for k in keys}
    return out


def _pages(
    tid: str, ids: dict[str, str], conversations: list[int], threads: list[int]
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """Every page of the console, by kind: the agent's, the tenant admin's, the operator's."""
    agent_pages: dict[str, list[str]] = {
        "inbox lists": [f"/inbox?view={v}" for v in ("waiting", "open", "mine", "unassigned")],
        "inbox with a thread": [f"/inbox?view=mine&c={c}" for c in conversations],
        "recent conversations": ["/conversations"],
        "search": [f"/conversations?q={w}" for w in WORDS],
        "thread history": [f"/conversations/threads/{t}" for t in threads],
    }
    admin_pages: dict[str, list[str]] = {
        "contacts": ["/contacts", "/contacts?tag=bench", "/contacts?q=Customer 1"],
        "campaigns": ["/campaigns"],
        "campaign": [f"/campaigns/{ids['campaign']}"],
        "catalog": ["/catalog"],
        "orders": ["/orders"],
        "numbers": ["/numbers"],
        "templates": [f"/numbers/{ids['account']}/templates"],
        "integrations": ["/integrations"],
        "deliveries": [f"/integrations/endpoints/{ids['endpoint']}"],
        "team": ["/team"],
        "audit": ["/audit"],
    }
    operator_pages: dict[str, list[str]] = {
        "operator: tenants": ["/operator"],
        "operator: DLQ": ["/operator/dlq", f"/operator/dlq?tenant_id={tid}"],
        "operator: health": ["/operator/health"],
    }
    return agent_pages, admin_pages, operator_pages


async def _baseline(
    http: aiohttp.ClientSession, inbox_url: str, token: str, threads: list[int], rounds: int
) -> dict[str, list[float]]:
    """The inbox's own API for the same searches and thread pages, as the same agent."""
    bearer = {"Authorization": f"Bearer {token}"}
    direct: dict[str, list[float]] = {}
    api = {
        "search": [f"/v1/search?q={w}&limit=20" for w in WORDS],
        "thread history": [f"/v1/threads/{t}/messages?limit=50" for t in threads],
    }
    for kind, paths in api.items():
        for i in range(max(rounds, len(paths)) if paths else 0):
            t0 = time.perf_counter()
            async with http.get(inbox_url + paths[i % len(paths)], headers=bearer) as r:
                await r.read()
            direct.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
    return direct


async def console(quick: bool) -> dict[str, Any]:
    messages = 200_000 if quick else 10_000_000
    rounds = 20 if quick else 60
    base = os.environ.get("DATABASE_URL", DEFAULT_PG)
    dsn, build = await inbox_data.ensure(base, messages)
    source, source_messages = await _pick_source(dsn, quick)
    out: dict[str, Any] = {
        "messages_stored": messages,
        "database": {**build, "name": inbox_data.database_name(messages)},
    }
    browsers: list[Browser] = []
    async with isolated("console") as stack:
        sandbox = await stack.start("sandbox")
        tenant_proc = await stack.start("tenant")
        inbox_proc = await stack.start(
            "inbox", env={"DATABASE_URL": dsn, **inbox_data.NO_RETENTION}
        )
        # the template checks (campaigns, the template picker) ask the sandbox
        await stack.start("conversation", env={"FLOWCHAT_CONVERSATION_GRAPH_URL": sandbox.url})
        # the webhook endpoint points at the sandbox: plain HTTP on loopback
        await stack.start("relay", env={"FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS": "true"})
        await stack.start("sender")
        # not started here: the health page finds them down at once (a closed port)
        absent = {
            f"FLOWCHAT_{v}_URL": f"http://127.0.0.1:{free_port()}" for v in ("GATEWAY", "STATE")
        }
        # plain HTTP on loopback: cookies without Secure, so the client keeps sending them
        console_proc = await stack.start(
            "console", env={"FLOWCHAT_CONSOLE_COOKIE_SECURE": "false", **absent}
        )
        async with aiohttp.ClientSession() as http:
            op_key = stack.env["FLOWCHAT_OPERATOR_KEY"]
            (account,) = await seed_accounts(stack, 1, throughput_mps=80)
            tid = account.tenant_id
            try:
                t0 = time.perf_counter()
                copied = await copy_tenant(dsn, source, tid)
                out["copied"] = {
                    **copied,
                    "from": source,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                people = {
                    role: await _person(http, tenant_proc.url, op_key, tid, role)
                    for role in ("agent", "admin")
                }
                people["operator"] = await _person(http, tenant_proc.url, op_key, None, "operator")
                threads, _ = await _sample(dsn, tid, rounds + 5)
                agent_token = await _token(http, tenant_proc.url, *people["agent"])
                conversations = await _take_over(
                    http, inbox_proc.url, agent_token, list(dict.fromkeys(threads))[:HANDOFFS]
                )
                ids = await _seed_admin_pages(
                    http,
                    stack,
                    account,
                    await _token(http, tenant_proc.url, *people["admin"]),
                )
                for role in ("agent", "admin", "operator"):
                    browsers.append(Browser(console_proc.url))
                    await browsers[-1].sign_in(*people[role])
                agent, admin, operator = browsers
                agent_pages, admin_pages, operator_pages = _pages(
                    tid, ids, conversations, threads[:rounds]
                )
                timed = {
                    **await _time_pages(agent, agent_pages, rounds),
                    **await _time_pages(admin, admin_pages, rounds),
                    **await _time_pages(operator, operator_pages, rounds),
                }
                direct = await _baseline(
                    http, inbox_proc.url, agent_token, threads[:rounds], rounds
                )
            finally:
                for b in browsers:
                    await b.close()
                await inbox_data.forget_tenant(dsn, tid)
    errors = [e for b in browsers for e in b.errors]
    every = [ms for values in timed.values() for ms in values]
    out["inbox_api_ms"] = {k: stats.summary(v) for k, v in direct.items()}
    out.update(
        {
            "source_tenant_messages": source_messages,
            "page_ms": stats.summary(every),
            "by_page_ms": {k: stats.summary(v) for k, v in timed.items()},
            "server_timing_median_ms": {k: v for b in browsers for k, v in _where(b).items()},
            "errors": errors,
            "targets": TARGETS,
            "load_avg": load(),
        }
    )
    out["pass"] = bool(
        not errors and all(s["p95"] <= TARGETS["page_p95_ms"] for s in out["by_page_ms"].values())
    )
    say(
        f"console pages over {messages:,} messages (tenant copy of {source_messages:,}): "
        + "; ".join(f"{k} p95 {s['p95']:.0f} ms" for k, s in out["by_page_ms"].items())
        + f"; {len(errors)} errors {errors[:3]}; the inbox's own API: "
        + "; ".join(f"{k} p95 {s['p95']:.0f} ms" for k, s in out["inbox_api_ms"].items())
    )
    return out
