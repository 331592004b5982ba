"""The console's pages over a large history: the server time of each page a signed-in
agent opens, with the inbox on :mod:`bench.inbox_data`'s database (10 million messages;
200,000 with ``--quick``).

The console only calls the other services' HTTP APIs as the signed-in user, so the bench
runs the tenant service, the inbox (on the generated database) and the console as
processes. The generated tenants (``bt…``) are not known to the tenant service, so the
bench creates a real tenant and copies one generated tenant's history under its id
(threads, messages, statuses and hand-off conversations, new ids; the largest tenant
with ``--quick``, a middling one in the full run to keep the copy short), removed after
(``inbox_data.forget_tenant``; an interrupted run's copy is removed by the next
``inbox_data.ensure``). An agent of that tenant is invited, sets a password and signs in
to the console through its form, as a person does.

Timed, one request at a time by the client (the whole answer: the console's sign-in
check, its upstream calls, rendering): the inbox lists (``/inbox`` for each view), the
inbox with a conversation open (its thread panel: conversation, thread, latest 50
messages, people), the recent conversations, search (common, rare, absent words), and
thread history pages. A warm-up of each kind goes first, untimed. The same searches and
thread pages asked of the inbox's own API (the agent's access token) are the baseline:
the difference is the console's share (its session check, extra calls, rendering).
"""

from __future__ import annotations

import os
import time
from typing import Any

import aiohttp
import asyncpg

from bench import inbox_data, stats
from bench.common import isolated, load, say
from flowchat_platform.testing import DEFAULT_PG

TARGETS = {"page_p95_ms": 200}
TIMEOUT_S = 10.0
SCHEMA = "inbox"
#: Columns never copied (new ids, the copy's tenant and remapped threads; generated).
SKIP = {"id", "tenant_id", "thread_id"}


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
            await conn.execute(f"ANALYZE {SCHEMA}.threads")
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


async def _agent(
    http: aiohttp.ClientSession, tenant_url: str, operator_key: str
) -> tuple[str, str, str]:
    """A new tenant and an agent of it: (tenant id, e-mail, password)."""
    op = {"Authorization": f"Bearer {operator_key}"}
    tenant = await _call(
        http,
        "POST",
        f"{tenant_url}/v1/tenants",
        headers=op,
        json={"name": "bench-console", "business_name": "Bench"},
    )
    tid = tenant["tenant_id"]
    email = f"agent-{tid[-6:]}@bench.example"
    invited = await _call(
        http,
        "POST",
        f"{tenant_url}/v1/tenants/{tid}/users",
        headers=op,
        json={"email": email, "role": "agent"},
    )
    password = "bench-" + tid[-12:] + "-pw"
    await _call(
        http,
        "POST",
        f"{tenant_url}/v1/auth/invitations/accept",
        json={"token": invited["invitation"]["token"], "password": password},
    )
    return tid, email, password


class Browser:
    """A signed-in browser: the console's cookies, timed GETs of whole pages."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.errors: list[str] = []

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

    async def page(self, path: str) -> float:
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
        except TimeoutError:
            self.errors.append(f"{path}: no answer in {TIMEOUT_S} s")
        return (time.perf_counter() - t0) * 1000


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
    async with isolated("console") as stack:
        tenant_proc = await stack.start("tenant")
        inbox_proc = await stack.start(
            "inbox", env={"DATABASE_URL": dsn, **inbox_data.NO_RETENTION}
        )
        # plain HTTP on loopback: cookies without Secure, so the client keeps sending them
        console_proc = await stack.start("console", env={"FLOWCHAT_CONSOLE_COOKIE_SECURE": "false"})
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            tid, email, password = await _agent(
                http, tenant_proc.url, stack.env["FLOWCHAT_OPERATOR_KEY"]
            )
            try:
                t0 = time.perf_counter()
                copied = await copy_tenant(dsn, source, tid)
                out["copied"] = {
                    **copied,
                    "from": source,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                threads, conversations = await _sample(dsn, tid, rounds + 5)
                browser = Browser(http, console_proc.url)
                await browser.sign_in(email, password)
                words = [
                    "order",
                    "thanks",
                    "delivery",
                    "refund",
                    "mattress",
                    inbox_data.ABSENT_WORD,
                ]
                pages: dict[str, list[str]] = {
                    "inbox lists": [
                        f"/inbox?view={v}" for v in ("waiting", "open", "mine", "unassigned")
                    ],
                    "inbox with a thread": [
                        f"/inbox?view=open&c={c}" for c in conversations[:rounds]
                    ],
                    "recent conversations": ["/conversations"],
                    "search": [f"/conversations?q={w}" for w in words],
                    "thread history": [f"/conversations/threads/{t}" for t in threads[:rounds]],
                }
                pages = {k: v for k, v in pages.items() if v}  # no hand-offs: no such page
                for paths in pages.values():  # warm-up, untimed
                    await browser.page(paths[0])
                timed: dict[str, list[float]] = {}
                for kind, paths in pages.items():
                    for i in range(max(rounds, len(paths))):
                        timed.setdefault(kind, []).append(await browser.page(paths[i % len(paths)]))
                # the baseline: the inbox's own API for the same reads, as the same agent
                login = await _call(
                    http,
                    "POST",
                    f"{tenant_proc.url}/v1/auth/login",
                    json={"email": email, "password": password},
                )
                bearer = {"Authorization": f"Bearer {login['access_token']}"}
                direct: dict[str, list[float]] = {}
                api = {
                    "search": [f"/v1/search?q={w}&limit=20" for w in words],
                    "thread history": [
                        f"/v1/threads/{t}/messages?limit=50" for t in threads[:rounds]
                    ],
                }
                for kind, paths in api.items():
                    for i in range(max(rounds, len(paths)) if paths else 0):
                        t0 = time.perf_counter()
                        async with http.get(
                            inbox_proc.url + paths[i % len(paths)], headers=bearer
                        ) as r:
                            await r.read()
                        direct.setdefault(kind, []).append((time.perf_counter() - t0) * 1000)
            finally:
                await inbox_data.forget_tenant(dsn, tid)
    every = [ms for values in timed.values() for ms in values]
    out["inbox_api_ms"] = {k: stats.summary(v) for k, v in direct.items()}
    out.update(
        {
            "source_tenant_messages": source_messages,
            "page_ms": stats.summary(every),
            "by_page_ms": {k: stats.summary(v) for k, v in timed.items()},
            "errors": browser.errors,
            "targets": TARGETS,
            "load_avg": load(),
        }
    )
    out["pass"] = bool(
        not browser.errors
        and all(s["p95"] <= TARGETS["page_p95_ms"] for s in out["by_page_ms"].values())
    )
    say(
        f"console pages over {messages:,} messages (tenant copy of {source_messages:,}): "
        + "; ".join(f"{k} p95 {s['p95']:.0f} ms" for k, s in out["by_page_ms"].items())
        + f"; {len(browser.errors)} errors {browser.errors[:3]}; the inbox's own API: "
        + "; ".join(f"{k} p95 {s['p95']:.0f} ms" for k, s in out["inbox_api_ms"].items())
    )
    return out
