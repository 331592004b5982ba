"""The state-manager at scale: its week-partitioned ``messages`` (and ``message_events``)
with ``messages`` rows stored (10 million in ``make bench``, 50 million by ``make
bench-state-50m``, any size by ``FLOWCHAT_BENCH_STATE_MESSAGES``), built once and kept.

Reported:

- reads through the running service's API: ``GET /v1/messages/{id}`` (no partition key:
  every week's primary-key index is probed) and ``GET /v1/messages?since=&until=`` (a
  tenant's hour: pruned to one week), p50/p95/max;
- ingest: the status scenario (:mod:`bench.state`: send result, sent, delivered, read
  per message, through the queue) into this database, events/s;
- retention: a partition of ``sample`` messages (with their history) emptied the old
  way (batched ``DELETE``, 1,000 a transaction, the history cascading) and, filled again,
  the new way (:meth:`Repository.drop_partition`: detach and drop both tables'
  partitions), seconds each.

The database ``flowchat_bench_state_<n>`` is created once and reused while its marker
(row count, generator version, migrations' head) matches; anything else rebuilds it.
Building, all in the server (no row crosses the network): the service's migrations, then
every week of each table as a job of its own over ``BUILD_WORKERS`` connections
(``FLOWCHAT_BENCH_STATE_BUILD_WORKERS``): the partition created as a plain UNLOGGED table
(no WAL for its load nor its index builds: 1 M messages built in 141 s against 159 s
logged, one run each at a load average of about 18; the bench writes only to partitions
created logged, so no figure depends on it; a crash of PostgreSQL empties these weeks,
rebuild then by dropping the database), filled by one ``INSERT … SELECT`` from
``generate_series`` with no index, vacuumed and
analysed, given the parent's very indexes and keys (sorted once, not maintained row by
row), then attached (PostgreSQL adopts the matching indexes; the range check is one
scan). 10 M messages: 833 s on the loaded 2-core machine (load average about 25),
against 2,109 s for the previous generator (one load, then every index over the whole
tables) at a like load.

The shape: ``DAYS`` days up to yesterday, the same number of messages each; ``TENANTS``
tenants, skewed (``floor(T·u³)``: ``bs000`` sends about a fifth); one history row
(``sent``) per message; ids and WAMIDs as random as the real ones (md5 hex).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench import state, stats
from bench.common import RssSampler, isolated, load, say
from flowchat_platform.crypto import SecretBox
from flowchat_platform.db import migrate
from flowchat_platform.privacy import BlindIndex, IdentitySealer
from flowchat_platform.testing import DEFAULT_PG
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.repository import Repository

MIGRATIONS = (
    Path(__file__).resolve().parents[1]
    / "services/state-manager/src/flowchat_state_manager/migrations"
)
#: Bump when the generated data changes: a cached database of another version is rebuilt.
GENERATOR = 6
#: Connections building weeks at once (each: load, index, vacuum, attach).
BUILD_WORKERS = 3
TENANTS = 100
DAYS = 100
#: Days of the retention the figures assume (a day older than it is dropped).
RETENTION_DAYS = 90
TIMEOUT_S = 30.0
#: The keys the generated rows are sealed under and the service reads them with: each
#: ``recipient`` the keyed digest (pgcrypto's ``hmac``, as ``BlindIndex.digest``) and a
#: real Fernet token beside it (one, shared: the reads decrypt it as they would any).
PRIVACY_KEY = "flowchat-bench-state-privacy-key"
ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"flowchat-bench-state-encryption").digest()
).decode()
#: The service's environment over this database: the keys above (its start-up sealing
#: pass finds nothing to seal: one probe of the index of rows in clear, see
#: :func:`seal_start`).
SERVICE_ENV = {
    "FLOWCHAT_PRIVACY_KEY": PRIVACY_KEY,
    "FLOWCHAT_STATE_MANAGER_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    "FLOWCHAT_STATE_MANAGER_RETENTION_DAYS": "3650",
}
#: The sealing pass's batch before migration 0008: every message in id order, row-locked
#: (what every start walked, ``messages / 500`` batches, sealed or not).
_OLD_SEAL_BATCH = """
SELECT id, tenant_id, recipient, recipient_alias, recipient_enc, recipient_alias_enc
FROM messages WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
"""

_MESSAGES_SQL = """
INSERT INTO messages (id, tenant_id, account_id, idempotency_key, recipient, message_type,
    category, campaign_id, correlation_id, provider, provider_message_id, status,
    status_rank, created_at, updated_at, recipient_enc)
SELECT md5('m' || g), t.tenant, t.tenant || '_acc', md5('k' || g),
       encode(public.hmac(convert_to(t.tenant, 'UTF8') || '\\x00'::bytea
                          || convert_to('1555' || lpad((g % 10000000)::text, 7, '0'), 'UTF8'),
                          $6::bytea, 'sha256'), 'hex'), 'text', 'marketing',
       CASE WHEN g % 3 = 0 THEN 'cmp' || (g / 50000) END, md5('c' || g), 'meta',
       'wamid.' || md5('w' || g), 'read', 4,
       $3::timestamptz + (g - $1) * $4::interval, $3::timestamptz + (g - $1) * $4::interval,
       $7::bytea
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT 'bs' || lpad(floor($5 * power(
         (hashint8(g) & 2147483647)::float8 / 2147483647, 3))::int::text, 3, '0') AS tenant) t
"""
_EVENTS_SQL = """
INSERT INTO message_events (id, message_id, tenant_id, status, provider_timestamp,
    received_at, event_id, sequence, message_created_at)
SELECT g, md5('m' || g), t.tenant, 'sent', ts, ts, 'ev' || g, g, ts
FROM generate_series($1::bigint, $2::bigint) AS g,
     LATERAL (SELECT 'bs' || lpad(floor($5 * power(
         (hashint8(g) & 2147483647)::float8 / 2147483647, 3))::int::text, 3, '0') AS tenant,
         $3::timestamptz + (g - $1) * $4::interval AS ts) t
"""


def _seal_params() -> tuple[bytes, bytes]:
    """The ``hmac`` key and the Fernet token of the generator's ``$6`` and ``$7``."""
    token = SecretBox([ENCRYPTION_KEY.encode()]).encrypt("15550000001")
    assert token is not None
    return PRIVACY_KEY.encode(), token


def database_name(messages: int) -> str:
    return f"flowchat_bench_state_{messages}"


def _dsn(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


def head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads()))


def first_day(messages: int) -> date:
    """The first generated day: the build's days end yesterday (at build time)."""
    return datetime.now(UTC).date() - timedelta(days=DAYS)


async def ensure(base_dsn: str, messages: int) -> tuple[str, dict[str, Any]]:
    """The DSN of a database holding ``messages`` generated messages (built now, or
    kept from an earlier run) and what its build took."""
    name = database_name(messages)
    admin = await asyncpg.connect(base_dsn)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _dsn(base_dsn, name)
    wanted: dict[str, Any] = {"messages": messages, "generator": GENERATOR, "head": head()}
    conn = await asyncpg.connect(dsn)
    try:
        marker = await _marker(conn)
        if marker and all(marker.get(k) == wanted[k] for k in ("messages", "generator", "head")):
            say(f"state partitions: reusing {name} ({messages:,} messages)")
            return dsn, {**marker, "reused": True}
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.execute("DROP TABLE IF EXISTS bench_meta")
    finally:
        await conn.close()
    await migrate(dsn, MIGRATIONS, SCHEMA)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public")
    finally:
        await conn.close()
    build = await _build(dsn, messages)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE bench_meta (messages bigint, generator int, head text, "
            "first_day date, seconds float8, steps jsonb, built_at timestamptz DEFAULT now())"
        )
        await conn.execute(
            "INSERT INTO bench_meta (messages, generator, head, first_day, seconds, steps) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            messages,
            GENERATOR,
            wanted["head"],
            build["first_day"],
            build["seconds"],
            orjson.dumps(build["steps"]).decode(),
        )
    finally:
        await conn.close()
    return dsn, {**wanted, **build, "reused": False}


async def _marker(conn: asyncpg.Connection) -> dict[str, Any] | None:
    if not await conn.fetchval("SELECT to_regclass('public.bench_meta') IS NOT NULL"):
        return None
    row = await conn.fetchrow(
        "SELECT messages, generator, head, first_day, seconds, steps::text AS steps FROM bench_meta"
    )
    if row is None:
        return None
    return {**dict(row), "steps": orjson.loads(row["steps"])}


async def _connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        dsn,
        server_settings={"search_path": SCHEMA, "session_replication_role": "replica"},
        command_timeout=None,
    )


def _weeks(day0: date) -> list[tuple[date, int, int]]:
    """(Monday, first day index, last day index) of every week holding generated days."""
    weeks: dict[date, list[int]] = {}
    for d in range(DAYS):
        day = day0 + timedelta(days=d)
        weeks.setdefault(day - timedelta(days=day.weekday()), []).append(d)
    return [(monday, days[0], days[-1]) for monday, days in sorted(weeks.items())]


async def _keys(conn: asyncpg.Connection, parent: str) -> tuple[list[str], list[str]]:
    """The parent's constraints (PRIMARY KEY / UNIQUE definitions) and its other indexes
    (definitions with ``{table}`` for the partition), as the migrations declare them."""
    constraints = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
        parent,
    )
    indexes = await conn.fetch(
        """
        SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
        WHERE i.indrelid = $1::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY i.indexrelid
        """,
        parent,
    )
    defs = []
    for i in indexes:
        # "CREATE INDEX name ON ONLY messages USING btree (...)": unnamed, on the partition
        head, _, rest = i["def"].partition(" ON ONLY ")
        _, _, tail = rest.partition(" USING ")
        unique = "UNIQUE " if head.startswith("CREATE UNIQUE") else ""
        defs.append(f"CREATE {unique}INDEX ON {{table}} USING {tail}")
    return [c["def"] for c in constraints], defs


async def _build_week(
    dsn: str,
    parent: str,
    monday: date,
    first: int,
    last: int,
    per_day: int,
    day0: date,
    keys: tuple[list[str], list[str]],
    timings: dict[str, float],
) -> None:
    """One week of ``parent``: its partition created as a plain table, filled by
    ``INSERT … SELECT`` with no index, indexed (the parent's very definitions), vacuumed
    and analysed, then attached (the attach adopts the matching indexes and constraints)."""
    lo = first * per_day + 1
    hi = (last + 1) * per_day
    start = datetime.combine(day0 + timedelta(days=first), datetime.min.time(), UTC)
    step = timedelta(seconds=86_400 / per_day)
    table = f"{parent}_p{monday:%Y%m%d}"
    bounds = (
        f"FROM ('{monday:%Y-%m-%d} 00:00:00+00') TO ('{monday + timedelta(days=7):%Y-%m-%d} "
        "00:00:00+00')"
    )
    conn = await _connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        await conn.execute("SET synchronous_commit = off")
        t = time.perf_counter()
        # a week the migrations created already (empty): replaced
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        # UNLOGGED: no WAL for the load nor the index builds (the bench never writes to
        # these weeks; every partition it writes to is created logged)
        await conn.execute(f"CREATE UNLOGGED TABLE {table} (LIKE {parent} INCLUDING DEFAULTS)")
        sql = _MESSAGES_SQL if parent == "messages" else _EVENTS_SQL
        extra = _seal_params() if parent == "messages" else ()
        await conn.execute(
            sql.replace(f"INSERT INTO {parent} ", f"INSERT INTO {table} ", 1),
            lo,
            hi,
            start,
            step,
            TENANTS,
            *extra,
        )
        timings["load_s"] += time.perf_counter() - t
        t = time.perf_counter()
        await conn.execute(f"VACUUM (ANALYZE) {table}")
        timings["vacuum_analyze_s"] += time.perf_counter() - t
        t = time.perf_counter()
        constraints, indexes = keys
        for c in constraints:
            await conn.execute(f"ALTER TABLE {table} ADD {c}")
        for i in indexes:
            await conn.execute(i.replace("{table}", table))
        timings["indexes_s"] += time.perf_counter() - t
        t = time.perf_counter()
        await conn.execute(f"ALTER TABLE {parent} ATTACH PARTITION {table} FOR VALUES {bounds}")
        timings["attach_s"] += time.perf_counter() - t
    finally:
        await conn.close()


async def _build(dsn: str, messages: int) -> dict[str, Any]:
    """Every week built apart and in parallel (:func:`_build_week`, ``BUILD_WORKERS``
    connections), so no index is maintained row by row and no step waits for the whole
    table; the step timings are summed over the workers (CPU-side seconds, not wall)."""
    t0 = time.perf_counter()
    per_day = messages // DAYS
    day0 = first_day(messages)
    weeks = _weeks(day0)
    timings = {"load_s": 0.0, "indexes_s": 0.0, "vacuum_analyze_s": 0.0, "attach_s": 0.0}
    conn = await _connect(dsn)
    try:
        keys = {p: await _keys(conn, p) for p in ("messages", "message_events")}
    finally:
        await conn.close()
    workers = int(os.environ.get("FLOWCHAT_BENCH_STATE_BUILD_WORKERS", str(BUILD_WORKERS)))
    say(
        f"state partitions: generating {messages:,} messages over {DAYS} days "
        f"({len(weeks)} weeks, {workers} workers)"
    )
    # the larger jobs first (messages: seven indexes; then the history: four)
    queue: asyncio.Queue[tuple[str, date, int, int]] = asyncio.Queue()
    for parent in ("messages", "message_events"):
        for w in sorted(weeks, key=lambda w: w[1] - w[2]):
            queue.put_nowait((parent, *w))
    jobs = queue.qsize()
    done = 0

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            parent, monday, first, last = queue.get_nowait()
            await _build_week(
                dsn, parent, monday, first, last, per_day, day0, keys[parent], timings
            )
            done += 1
            say(f"state partitions: {done}/{jobs} table weeks ({time.perf_counter() - t0:.0f} s)")

    await asyncio.gather(*(worker() for _ in range(workers)))
    steps = {k: round(v, 1) for k, v in timings.items()}
    t1 = time.perf_counter()
    conn = await _connect(dsn)
    try:
        # the weeks around today (the ingest's and the service's) and the sequences
        await conn.fetchval(
            "SELECT create_message_partitions($1, $2)",
            day0,
            datetime.now(UTC).date() + timedelta(days=7),
        )
        await conn.execute("SELECT setval('message_events_id_seq', $1)", messages + 1)
        await conn.execute("SELECT setval('status_learned_seq', $1)", messages + 1)
        await conn.execute("ANALYZE messages")
        await conn.execute("ANALYZE message_events")
    finally:
        await conn.close()
    steps["finish_s"] = round(time.perf_counter() - t1, 1)
    seconds = round(time.perf_counter() - t0, 1)
    steps["wall_s"] = seconds
    say(f"state partitions: built in {seconds} s {steps}")
    return {
        "first_day": day0,
        "seconds": seconds,
        "steps": steps,
        "per_day": per_day,
        "workers": workers,
    }


# ------------------------------------------------------------ reads


async def _sample_ids(dsn: str, messages: int, count: int) -> list[tuple[str, str]]:
    """(tenant, message id) of ``count`` random generated messages."""
    rng = random.Random(7)  # noqa: S311 - a seeded sample
    gs = [rng.randint(1, messages) for _ in range(count)]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        rows = await conn.fetch(
            "SELECT tenant_id, id FROM messages WHERE id = ANY($1::text[])",
            [_md5(f"m{g}") for g in gs],
        )
    finally:
        await conn.close()
    return [(r["tenant_id"], r["id"]) for r in rows]


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - the generator's ids


async def measure_reads(
    url: str, token: str, dsn: str, messages: int, first: date, quick: bool
) -> dict[str, Any]:
    count = 200 if quick else 1000
    ids = await _sample_ids(dsn, messages, count + 50)
    rng = random.Random(11)  # noqa: S311 - a seeded sample
    errors: list[str] = []
    by_id: list[float] = []
    by_range: list[float] = []
    listed: list[int] = []

    async def get(http: aiohttp.ClientSession, tenant: str, path: str, **params: Any) -> float:
        headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant}
        t0 = time.perf_counter()
        try:
            async with http.get(
                url + path,
                headers=headers,
                params={k: str(v) for k, v in params.items()},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S),
            ) as r:
                body = await r.read()
                if r.status != 200:
                    errors.append(f"{path}: {r.status} {body[:100]!r}")
                elif path == "/v1/messages":
                    listed.append(len(orjson.loads(body)["items"]))
        except TimeoutError:
            errors.append(f"{path}: no answer in {TIMEOUT_S} s")
        return (time.perf_counter() - t0) * 1000

    async with aiohttp.ClientSession() as http:
        for tenant, mid in ids[:50]:  # warm-up
            await get(http, tenant, f"/v1/messages/{mid}")
        for tenant, mid in ids[50:]:
            by_id.append(await get(http, tenant, f"/v1/messages/{mid}"))
        for _ in range(count):
            tenant = f"bs{min(TENANTS - 1, int(TENANTS * rng.random() ** 3)):03d}"
            since = datetime.combine(first, datetime.min.time(), UTC) + timedelta(
                seconds=rng.randint(0, (DAYS - 1) * 86_400)
            )
            by_range.append(
                await get(
                    http,
                    tenant,
                    "/v1/messages",
                    since=since.isoformat(),
                    until=(since + timedelta(hours=1)).isoformat(),
                    limit=50,
                )
            )
    return {
        "by_id_ms": stats.summary(by_id),
        "by_tenant_hour_ms": stats.summary(by_range),
        "by_tenant_hour_items_mean": round(sum(listed) / max(1, len(listed)), 1),
        "reads": {"by_id": len(by_id), "by_tenant_hour": len(by_range)},
        "errors": errors[:20],
        "error_count": len(errors),
    }


# ------------------------------------------------------------ start-up sealing


async def seal_start(dsn: str, messages: int, batches: int = 20) -> dict[str, Any]:
    """The service's start-up sealing pass over this database (every row sealed): what it
    costs now (its batch through the partial index of rows in clear, which finds none),
    and ``batches`` batches of the walk it did before (every message, 500 a transaction,
    row-locked) with that walk's whole length extrapolated (its 0.05 s pauses left out)."""
    batch = 500
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=1, server_settings={"search_path": SCHEMA}
    )
    assert pool is not None
    try:
        sealer = IdentitySealer(SecretBox([ENCRYPTION_KEY.encode()]), BlindIndex(b"k" * 32))
        repository = Repository(pool, sealer)
        probes = []
        for _ in range(5):  # the first plans it (every partition's index opened)
            t0 = time.perf_counter()
            changed, last = await repository.seal_batch("", batch, rotate=False)
            probes.append((time.perf_counter() - t0) * 1000)
        after, walked = "", 0
        t0 = time.perf_counter()
        for _ in range(batches):
            async with pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(_OLD_SEAL_BATCH, after, batch)
            walked += len(rows)
            after = rows[-1]["id"]
        walk_s = time.perf_counter() - t0
    finally:
        await pool.close()
    per_batch_ms = walk_s * 1000 / batches
    return {
        "now": {
            "first_ms": round(probes[0], 1),
            "ms": round(sorted(probes)[2], 1),
            "rows_changed": changed,
            "done": last is None,
        },
        "before": {
            "batch_rows": batch,
            "batch_ms": round(per_batch_ms, 1),
            "batches_measured": batches,
            "whole_walk_s_estimated": round(per_batch_ms * messages / batch / 1000),
        },
    }


# ------------------------------------------------------------ retention


async def retention_cost(dsn: str, sample: int) -> dict[str, Any]:
    """A partition of ``sample`` messages (with their history) emptied by batched DELETE
    (the old retention: 1,000 messages and their history a transaction) and, filled
    again, dropped (the new one)."""
    day = date(2000, 1, 3)  # a Monday far outside the generated weeks
    day_start = datetime.combine(day, datetime.min.time(), UTC)
    step = timedelta(seconds=86_400 / sample)
    lo = 10_000_000_000  # ids of their own
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=2, server_settings={"search_path": SCHEMA}
    )
    assert pool is not None
    out: dict[str, Any] = {"sample_messages": sample, "sample_history_rows": sample}
    try:

        async def fill() -> None:
            conn = await _connect(dsn)
            try:
                await conn.fetchval("SELECT create_message_partitions($1, $1)", day)
                await conn.execute(
                    _MESSAGES_SQL, lo, lo + sample - 1, day_start, step, TENANTS, *_seal_params()
                )
                await conn.execute(_EVENTS_SQL, lo, lo + sample - 1, day_start, step, TENANTS)
                await conn.execute(f"VACUUM (ANALYZE) messages_p{day:%Y%m%d}")
                await conn.execute(f"VACUUM (ANALYZE) message_events_p{day:%Y%m%d}")
            finally:
                await conn.close()

        await fill()
        t0 = time.perf_counter()
        deleted = batches = 0
        while True:
            n = await pool.fetchval(
                """
                WITH m AS (
                    DELETE FROM messages WHERE (id, created_at) IN (
                        SELECT id, created_at FROM messages
                        WHERE created_at >= $1 AND created_at < $2 LIMIT 1000)
                    RETURNING id, created_at
                ), e AS (
                    DELETE FROM message_events WHERE (message_id, message_created_at) IN (
                        SELECT id, created_at FROM m)
                )
                SELECT count(*) FROM m
                """,
                day_start,
                day_start + timedelta(days=1),
            )
            deleted += n
            batches += 1
            if n < 1000:
                break
        delete_s = time.perf_counter() - t0
        out["delete"] = {
            "seconds": round(delete_s, 2),
            "rows": deleted,
            "batches": batches,
            "messages_per_s": round(deleted / delete_s) if delete_s else None,
        }
        await Repository(pool).drop_partition(day)  # empty now
        await fill()
        t0 = time.perf_counter()
        estimated = await Repository(pool).drop_partition(day)
        drop_s = time.perf_counter() - t0
        out["drop_partition"] = {"seconds": round(drop_s, 3), "estimated_rows": estimated}
        out["delete_vs_drop"] = round(delete_s / drop_s, 1) if drop_s else None
    finally:
        await pool.close()
    return out


# ------------------------------------------------------------ scenario


async def partitions(quick: bool) -> dict[str, Any]:
    # FLOWCHAT_BENCH_STATE_MESSAGES: another size (a smaller machine, a first look)
    messages = int(
        os.environ.get("FLOWCHAT_BENCH_STATE_MESSAGES", "1000000" if quick else "10000000")
    )
    # FLOWCHAT_BENCH_STATE_SAMPLE: the retention sample (the DELETE runs ~1,000 rows/s)
    sample = int(os.environ.get("FLOWCHAT_BENCH_STATE_SAMPLE", "20000" if quick else "500000"))
    ingest_messages = 400 if quick else 2500
    base = os.environ.get("DATABASE_URL", DEFAULT_PG)
    t0 = time.perf_counter()
    dsn, build = await ensure(base, messages)
    first = build["first_day"]
    out: dict[str, Any] = {
        "messages_stored": messages,
        "history_rows_stored": messages,
        "days": DAYS,
        "database": {
            **{k: v for k, v in build.items() if k != "first_day"},
            "first_day": str(first),
            "ready_s": round(time.perf_counter() - t0, 1),
            "name": database_name(messages),
        },
    }
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        out["database"]["size_gb"] = round(
            await conn.fetchval("SELECT pg_database_size(current_database())") / 2**30, 2
        )
        out["database"]["partitions"] = await conn.fetchval(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass"
        )
    finally:
        await conn.close()
    out["seal_start"] = await seal_start(dsn, messages)
    seal = out["seal_start"]
    say(
        f"state start-up sealing over {messages:,} sealed messages: {seal['now']['ms']} ms "
        f"(first {seal['now']['first_ms']} ms; before: a walk of about "
        f"{seal['before']['whole_walk_s_estimated']:,} s)"
    )
    async with isolated("state-partitions") as stack:
        token = stack.env["FLOWCHAT_SERVICE_TOKEN"]
        proc = await stack.start(
            "state-manager",
            env={"DATABASE_URL": dsn, **SERVICE_ENV},
        )
        with RssSampler([proc]) as rss:
            reads = await measure_reads(proc.url, token, dsn, messages, first, quick)
        await stack.stop(proc)
        out.update(reads)
        say(
            f"state reads over {messages:,} messages: by id p50 {reads['by_id_ms']['p50']:.1f} "
            f"p95 {reads['by_id_ms']['p95']:.1f} ms; tenant hour p50 "
            f"{reads['by_tenant_hour_ms']['p50']:.1f} p95 "
            f"{reads['by_tenant_hour_ms']['p95']:.1f} ms; {reads['error_count']} errors"
        )
        total = await state.preload(stack.env["AMQP_URL"], ingest_messages, "p")
        run = await state.run_service(
            stack,
            total,
            ingest_messages,
            env={"DATABASE_URL": dsn, **SERVICE_ENV},
        )
        await _forget_bench_tenant(dsn)
        out["ingest"] = {
            "events_per_s": round(run["rate"]),
            "messages": ingest_messages,
            "events": total,
            "all_acked_s": run["all_acked_s"],
            "messages_read": run["messages_read"],
            "rss_peak_mb": max(run["rss_peak_mb"], rss.peak["state-manager"]),
        }
        say(f"state ingest into {messages:,} stored: {run['rate']:,.0f} events/s")
    out["retention"] = await retention_cost(dsn, sample)
    say(
        f"state retention of {sample:,} messages: DELETE {out['retention']['delete']['seconds']}"
        f" s, drop partition {out['retention']['drop_partition']['seconds']} s"
    )
    out["load_avg"] = load()
    return out


async def _forget_bench_tenant(dsn: str) -> None:
    """The ingest's rows (tenant ``tnt_bench``) out again: the cached database stays as built."""
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute("DELETE FROM messages WHERE tenant_id = 'tnt_bench'")
        await conn.execute("DELETE FROM pending_statuses WHERE tenant_id = 'tnt_bench'")
        await conn.execute("DELETE FROM outbox")
    finally:
        await conn.close()
