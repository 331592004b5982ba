"""Generated history for the inbox benchmark: ``messages`` rows in the inbox's own
schema (its Alembic migrations), built in SQL and kept between runs.

The database ``flowchat_bench_inbox_<n>`` is created once and reused while it still
matches: a marker row records the message count, this generator's version and the
migrations' head it was built at; anything else (a new migration, another generator)
rebuilds it from scratch. Loading is the usual bulk recipe: the migrations create the
tables, their indexes and constraints are noted (``pg_get_indexdef`` /
``pg_get_constraintdef``) and dropped, the rows go in with ``INSERT … SELECT`` from
``generate_series`` (two connections, one per core, each half the ids), and the very
same indexes and constraints come back afterwards, then ``VACUUM ANALYZE``.

The shape, skewed as real traffic is:

- ``TENANTS`` tenants ``bt000``…; a thread's tenant is ``floor(T·u³)`` of a hash of
  its id, so ``bt000`` holds about a fifth of everything and most tenants little;
- ``n / 10`` threads; message ``g``'s thread is ``1 + floor(threads·u²)``: the oldest
  threads hold thousands of messages, most a handful;
- half inbound (the customer), half outbound (bot, campaign, agent), outbound ones with
  a ``read`` / ``delivered`` status row;
- a year of timestamps in id order; text from :data:`VOCABULARY` drawn by Zipf's law
  (:func:`sentences`), a fifth with an order reference (``ord123456``) that only a
  couple of messages share: common, middling, rare and absent words to search.

Stored as the inbox stores them, encrypted at rest (issue 28), under the fixed
:data:`ENCRYPTION_KEY` and :data:`PRIVACY_KEY` that the benchmarks start the inbox with
(:data:`NO_RETENTION`): each message's ``[body, content]`` as a Fernet token made in SQL
(pgcrypto: ``0x80 | time | IV | AES-128-CBC | HMAC-SHA256``, base64url; the IV derived
from the id, fine for generated text only; the four fifths without an order reference
share their sentence's token, made once per sentence and direction, which is the same
size and costs the inbox the same to decrypt, and keeps the build from sealing ten
million rows one by one), its words as blind tokens (HMAC-SHA256 of
``search\\0<tenant>\\0<word>``, 8 bytes: one per word of the vocabulary and tenant,
computed once, and one per order reference), the customers' ids as keyed digests with
tokens beside them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import say
from bench.inbox_crypto import ENCRYPTION_KEY, FUNCTIONS, PRIVACY_KEY, keys
from flowchat_inbox import SCHEMA
from flowchat_platform.db import migrate

MIGRATIONS = Path(__file__).resolve().parents[1] / "services/inbox/src/flowchat_inbox/migrations"
#: Bump when the generated data changes: a cached database of another version is rebuilt.
GENERATOR = 3
TENANTS = 100
SENTENCES = 50_000
#: Tables loaded here; their indexes and constraints are dropped and rebuilt.
LOADED = ("messages", "threads", "aliases", "statuses")

_WORDS = (
    "the i you to a is my it and please for order of thanks hi in can what when this "
    "be have with do on we your hello yes no ok not delivery where status help need "
    "will at was how payment today time are me get there am size tomorrow want send "
    "price just received thank still available store call card refund return some "
    "could check number address morning about cancel one would tracking email if "
    "shipping item account confirm please change new update week invoice color week "
    "pickup open hours shirt shoes black white blue red jacket dress phone charger "
    "cable laptop screen broken replace warranty discount code coupon sale voucher "
    "login password reset app website link wrong missing damaged late early box "
    "package courier driver weekend monday friday evening appointment booking table "
    "reservation menu pizza burger coffee vegan gluten allergy receipt bank transfer "
    "cash installment subscription renew plan premium basic upgrade downgrade "
    "insurance claim policy doctor clinic prescription pharmacy dosage schedule "
    "reschedule branch downtown airport hotel checkin checkout luggage flight ticket "
    "seat visa passport lost found umbrella bicycle helmet tyre battery engine oil "
    "filter garden sofa mattress pillow curtain lamp kettle blender fridge freezer "
    "oven microwave warrantycard serialnumber firmware bluetooth wifi router modem "
    "fibre outage technician voucher giftcard loyalty points membership referral "
    "feedback complaint manager supervisor escalate urgent asap refunded shipped "
    "dispatched delivered collected returned exchanged repaired quoted estimated "
    "agua gracias pedido entrega obrigado encomenda merci commande livraison danke "
    "bestellung lieferung grazie ordine consegna"
)
#: Words of customer chats, most frequent first (Zipf: rank r drawn ∝ 1/r).
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys(_WORDS.split()))
#: Never generated: a search for it finds nothing (the planner's worst guess).
ABSENT_WORD = "zebracorn"
#: The inbox's settings on a generated database: its keys, and its messages are dated
#: from 2025-06-01 over a year, older than the inbox's retention (90 days), so an inbox
#: started with the defaults purges them at once (its retention pass runs at start).
NO_RETENTION = {
    "FLOWCHAT_INBOX_RETENTION_DAYS": "36500",
    "FLOWCHAT_INBOX_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    "FLOWCHAT_PRIVACY_KEY": PRIVACY_KEY,
}


def sentences(count: int = SENTENCES, seed: int = 23) -> list[str]:
    """``count`` message texts of 1-16 Zipf-drawn words (7 on average), seeded."""
    rng = random.Random(seed)  # noqa: S311 - seeded sample text, not a secret
    words = list(VOCABULARY)
    weights = [1 / r for r in range(1, len(words) + 1)]
    out = []
    for _ in range(count):
        length = min(16, 1 + int(rng.expovariate(1 / 6)))
        out.append(" ".join(rng.choices(words, weights, k=length)))
    return out


def database_name(messages: int) -> str:
    return f"flowchat_bench_inbox_{messages}"


def _dsn(base: str, name: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + name


def head() -> str:
    """The migrations' head revision (what a fresh database is migrated to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads()))


async def ensure(base_dsn: str, messages: int) -> tuple[str, dict[str, Any]]:
    """The DSN of a database holding ``messages`` generated messages (built now, or
    kept from an earlier run) and what its build took."""
    name = database_name(messages)
    admin = await asyncpg.connect(base_dsn)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _dsn(base_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        marker = await _marker(conn)
        wanted: dict[str, Any] = {"messages": messages, "generator": GENERATOR, "head": head()}
        same = marker and all(marker.get(k) == wanted[k] for k in ("messages", "generator"))
        if marker and same:
            await _forget_other_tenants(conn)
            upgraded = None
            if marker["head"] != wanted["head"]:
                upgraded = await _upgrade(conn, dsn, wanted["head"])
            if marker["head"] == wanted["head"] or upgraded is not None:
                say(
                    f"inbox: reusing {name} ({messages:,} messages, built in {marker['seconds']} s)"
                )
                return dsn, {
                    **marker,
                    "head": wanted["head"],
                    "reused": True,
                    "upgraded_s": upgraded,
                }
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.execute("DROP TABLE IF EXISTS bench_meta, bench_sentences")
    finally:
        await conn.close()
    await migrate(dsn, MIGRATIONS, SCHEMA)
    build = await _build(dsn, messages)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE bench_meta (messages bigint, generator int, head text, "
            "seconds float8, steps jsonb, built_at timestamptz DEFAULT now())"
        )
        await conn.execute(
            "INSERT INTO bench_meta (messages, generator, head, seconds, steps) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)",
            messages,
            GENERATOR,
            wanted["head"],
            build["seconds"],
            _json(build["steps"]),
        )
    finally:
        await conn.close()
    return dsn, {**wanted, **build, "reused": False}


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def _upgrade(conn: asyncpg.Connection, dsn: str, head: str) -> float | None:
    """A newer migration applied in place, as a deployment would (seconds taken), or
    None when the database cannot be upgraded (another branch's revision): rebuilt."""
    t0 = time.perf_counter()
    try:
        await migrate(dsn, MIGRATIONS, SCHEMA)
    except Exception as exc:  # noqa: BLE001 - any failure means: build it afresh
        say(f"inbox: cached database not upgradable ({exc!r}); rebuilding")
        return None
    await conn.execute("UPDATE bench_meta SET head = $1", head)
    await conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.messages")
    seconds = round(time.perf_counter() - t0, 1)
    say(f"inbox: cached database upgraded to {head} in {seconds} s")
    return seconds


async def _marker(conn: asyncpg.Connection) -> dict[str, Any] | None:
    if not await conn.fetchval("SELECT to_regclass('public.bench_meta') IS NOT NULL"):
        return None
    row = await conn.fetchrow(
        "SELECT messages, generator, head, seconds, steps::text AS steps FROM bench_meta"
    )
    if row is None:
        return None
    import orjson

    return {**dict(row), "steps": orjson.loads(row["steps"])}


async def _forget_other_tenants(conn: asyncpg.Connection) -> None:
    """Rows an earlier run's ingest left (its tenants are not ``bt…``)."""
    for table in ("statuses", "messages", "conversations", "threads", "aliases"):
        await conn.execute(f"DELETE FROM {SCHEMA}.{table} WHERE tenant_id NOT LIKE 'bt%'")  # noqa: S608


async def forget_tenant(dsn: str, tenant_id: str) -> None:
    """Delete what a run ingested for ``tenant_id``: the cached database stays at its size."""
    conn = await asyncpg.connect(dsn)
    try:
        for table in ("statuses", "messages", "conversations", "threads", "aliases"):
            await conn.execute(f"DELETE FROM {SCHEMA}.{table} WHERE tenant_id = $1", tenant_id)  # noqa: S608
    finally:
        await conn.close()


# --------------------------------------------------------------------- the build


async def _session(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        dsn,
        command_timeout=None,
        server_settings={
            "search_path": SCHEMA,
            "synchronous_commit": "off",
            "maintenance_work_mem": "1GB",
            "work_mem": "256MB",
            "max_parallel_maintenance_workers": "0",
            "jit": "off",
        },
    )


async def _schema_objects(conn: asyncpg.Connection) -> tuple[list[str], list[str], list[str]]:
    """(constraint drops, index drops, the statements putting them all back), for
    :data:`LOADED` and the foreign keys pointing at them."""
    tables = [
        r["oid"]
        for r in await conn.fetch(
            "SELECT oid FROM pg_class WHERE relnamespace = $1::regnamespace AND relname = ANY($2)",
            SCHEMA,
            list(LOADED),
        )
    ]
    constraints = await conn.fetch(
        """
        SELECT c.conname, c.conrelid::regclass::text AS tbl, c.contype::text AS contype,
               pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c
        WHERE c.contype IN ('p', 'u', 'f')
          AND (c.conrelid = ANY($1::oid[]) OR c.confrelid = ANY($1::oid[]))
        """,
        tables,
    )
    indexes = await conn.fetch(
        """
        SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
        FROM pg_index i
        WHERE i.indrelid = ANY($1::oid[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        """,
        tables,
    )
    fks = [c for c in constraints if c["contype"] == "f"]
    keys = [c for c in constraints if c["contype"] != "f"]
    drops = [f'ALTER TABLE {c["tbl"]} DROP CONSTRAINT "{c["conname"]}"' for c in [*fks, *keys]]
    index_drops = [f"DROP INDEX {i['name']}" for i in indexes]
    restore = [f'ALTER TABLE {c["tbl"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in keys]
    restore += [i["def"] for i in indexes]
    restore += [f'ALTER TABLE {c["tbl"]} ADD CONSTRAINT "{c["conname"]}" {c["def"]}' for c in fks]
    return drops, index_drops, restore


_MESSAGES = """
INSERT INTO messages (id, tenant_id, thread_id, dedupe_key, direction, author, type, sealed,
                      search_tokens, message_id, provider_message_id, occurred_at, recorded_at)
SELECT g, tid, th,
       CASE WHEN inb THEN 'in:meta:wamid.B' || g ELSE 'out:bench-' || g END,
       CASE WHEN inb THEN 'inbound' ELSE 'outbound' END,
       CASE WHEN inb THEN 'customer' WHEN g % 7 = 0 THEN 'campaign'
            WHEN g % 11 = 0 THEN 'agent' ELSE 'bot' END,
       'text',
       CASE WHEN ref IS NULL THEN CASE WHEN inb THEN sealed_in ELSE sealed_out END
            ELSE public.bench_fernet(
                convert_to(jsonb_build_array(b, CASE WHEN inb THEN jsonb_build_object('text', b)
                           ELSE jsonb_build_object('type', 'text', 'body', b) END)::text,
                           'UTF8'),
                decode(md5(g::text), 'hex'), extract(epoch FROM at)::bigint, $7, $8) END,
       ARRAY(SELECT tk.tokens[i] FROM unnest(word_ids) i)
           || CASE WHEN ref IS NULL THEN '{}'::bigint[]
                   ELSE ARRAY[public.bench_word_token(tid, ref, $9)] END,
       CASE WHEN inb THEN NULL ELSE 'msg-b' || g END,
       CASE WHEN inb THEN 'wamid.B' || g ELSE NULL END,
       at, at
FROM (
    SELECT g, th, inb, at, tn, 'bt' || lpad(tn::text, 3, '0') AS tid, word_ids, ref,
           sealed_in, sealed_out, CASE WHEN ref IS NULL THEN body ELSE body || ' ' || ref END AS b
    FROM (
        SELECT g, th, inb, at, s.body, s.word_ids, s.sealed_in, s.sealed_out,
               floor($4::int * power((hashint8(th)::bigint + 2147483648) / 4294967296.0, 3))::int
                   AS tn,
               CASE WHEN g % 5 = 0 THEN 'ord' || ((g * 7919) % 900000 + 100000) END AS ref
        FROM (
            SELECT g, 1 + floor($3::bigint * power(random(), 2))::bigint AS th,
                   random() < 0.5 AS inb,
                   timestamptz '2025-06-01' + g * ($5::float8 * interval '1 second') AS at,
                   (g * 104729) % $6::int AS sid
            FROM generate_series($1::bigint, $2::bigint) g
        ) x
        JOIN public.bench_sentences s ON s.id = x.sid
    ) y
) z
JOIN public.bench_tokens tk ON tk.tenant = z.tn
"""

_THREADS = """
INSERT INTO threads (id, tenant_id, account_id, customer_key, customer_key_enc, wa_id,
                     wa_id_enc, last_message_at, last_inbound_at, message_count, created_at)
SELECT thread_id, tenant_id, tenant_id || '_acc' || (thread_id % 3), d, tok, d, tok,
       last_at, last_in, n, first_at
FROM (
    SELECT *, public.bench_digest(tenant_id, ck, $3) AS d,
           public.bench_fernet(convert_to(ck, 'UTF8'), decode(md5('t' || thread_id), 'hex'),
                               extract(epoch FROM first_at)::bigint, $1, $2) AS tok
    FROM (
        SELECT thread_id, min(tenant_id) AS tenant_id, (2340000000000 + thread_id)::text AS ck,
               max(occurred_at) AS last_at, min(occurred_at) AS first_at,
               max(occurred_at) FILTER (WHERE direction = 'inbound') AS last_in, count(*) AS n
        FROM messages GROUP BY thread_id
    ) t0
) t
"""

_ALIASES = (
    "INSERT INTO aliases (tenant_id, alias, customer_key, customer_key_enc) "
    "SELECT tenant_id, customer_key, customer_key, customer_key_enc FROM threads"
)

_STATUSES = """
INSERT INTO statuses (tenant_id, message_id, status, rank, error_code, updated_at)
SELECT tenant_id, message_id, CASE WHEN id % 3 = 0 THEN 'delivered' ELSE 'read' END,
       CASE WHEN id % 3 = 0 THEN 3 ELSE 4 END, NULL, occurred_at + interval '5 seconds'
FROM messages WHERE message_id IS NOT NULL
"""


Statement = str | tuple[str, tuple[Any, ...]]


async def _parallel(dsn: str, statements: Sequence[Statement], workers: int = 2) -> None:
    """Run ``statements`` (SQL, or SQL and its arguments) on ``workers`` connections (each
    takes the next one free)."""
    queue: list[Statement] = list(statements)

    async def worker() -> None:
        conn = await _session(dsn)
        try:
            while queue:
                item = queue.pop(0)
                sql, args = item if isinstance(item, tuple) else (item, ())
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def _build(dsn: str, messages: int) -> dict[str, Any]:
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str, t0: float) -> None:
        steps[name] = round(time.perf_counter() - t0, 1)
        say(f"inbox data: {name} in {steps[name]} s")

    restore = await _prepare(dsn)
    await _load(dsn, messages, step)
    await _finish(dsn, restore, step)
    return {"seconds": round(time.perf_counter() - started, 1), "steps": steps}


async def _prepare(dsn: str) -> list[str]:
    """Indexes and constraints dropped (returned: how to put them back), the texts in."""
    conn = await _session(dsn)
    try:
        drops, index_drops, restore = await _schema_objects(conn)
        for sql in [*drops, *index_drops]:
            await conn.execute(sql)
        for table in LOADED:
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await conn.execute(FUNCTIONS)
        # each sentence's distinct words by their rank in the vocabulary (1-based), and
        # each tenant's token of every word of the vocabulary in that order
        rank = {w: i for i, w in enumerate(VOCABULARY, start=1)}
        await conn.execute(
            "CREATE TABLE public.bench_sentences (id int PRIMARY KEY, body text NOT NULL, "
            "word_ids int[] NOT NULL, sealed_in bytea, sealed_out bytea)"
        )
        await conn.copy_records_to_table(
            "bench_sentences",
            schema_name="public",
            columns=["id", "body", "word_ids"],
            records=[
                (i, text, [rank[w] for w in dict.fromkeys(text.split())])
                for i, text in enumerate(sentences())
            ],
        )
        # each sentence sealed once per direction, dated by its id (the inbox ignores a
        # token's time): the four fifths of the messages without an order reference
        # share these, the rest are sealed one by one
        await conn.execute(
            """
            UPDATE public.bench_sentences SET
                sealed_in = public.bench_fernet(convert_to(jsonb_build_array(
                    body, jsonb_build_object('text', body))::text, 'UTF8'),
                    decode(md5('in' || id), 'hex'), 1748736000 + id, $1, $2),
                sealed_out = public.bench_fernet(convert_to(jsonb_build_array(
                    body, jsonb_build_object('type', 'text', 'body', body))::text, 'UTF8'),
                    decode(md5('out' || id), 'hex'), 1748736000 + id, $1, $2)
            """,
            *keys()[:2],
        )
        await conn.execute("CREATE TABLE public.bench_tokens (tenant int, tokens bigint[])")
        await conn.execute(
            """
            INSERT INTO public.bench_tokens (tenant, tokens)
            SELECT tn, ARRAY(
                SELECT public.bench_word_token('bt' || lpad(tn::text, 3, '0'), w, $2)
                FROM unnest($1::text[]) WITH ORDINALITY AS v(w, o) ORDER BY o) AS tokens
            FROM generate_series(0, $3::int - 1) tn
            """,
            list(VOCABULARY),
            keys()[2],
            TENANTS,
        )
    finally:
        await conn.close()
    return restore


async def _load(dsn: str, messages: int, step: Callable[[str, float], None]) -> None:
    threads = max(10, messages // 10)
    # a year's worth of timestamps, in id order
    spacing_s = 365 * 86400 / messages
    t0 = time.perf_counter()
    half = messages // 2

    async def load(lo: int, hi: int) -> None:
        c = await _session(dsn)
        try:
            await c.execute("SET search_path = inbox, public")
            await c.execute(_MESSAGES, lo, hi, threads, TENANTS, spacing_s, SENTENCES, *keys())
        finally:
            await c.close()

    await asyncio.gather(load(1, half), load(half + 1, messages))
    step("messages", t0)
    t0 = time.perf_counter()
    loads: list[Statement] = [(_THREADS, keys()), _STATUSES]
    await _parallel(dsn, loads)
    step("threads and statuses", t0)
    t0 = time.perf_counter()
    conn = await _session(dsn)
    try:
        await conn.execute(_ALIASES)
        await conn.execute("DROP TABLE public.bench_sentences, public.bench_tokens")
        for seq, table in (("messages_id_seq", "messages"), ("threads_id_seq", "threads")):
            await conn.execute(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))")  # noqa: S608
    finally:
        await conn.close()
    step("aliases", t0)


async def _finish(dsn: str, restore: list[str], step: Callable[[str, float], None]) -> None:
    t0 = time.perf_counter()
    # the GIN index first (the longest), the keys before the foreign keys needing them
    keys = [s for s in restore if "PRIMARY KEY" in s or " UNIQUE " in s]
    fks = [s for s in restore if "FOREIGN KEY" in s]
    rest = [s for s in restore if s not in keys and s not in fks]
    gin = [s for s in rest if "USING gin" in s]
    rest = [s for s in rest if s not in gin]
    await _parallel(dsn, [*gin, *keys, *rest])
    await _parallel(dsn, fks)
    step("indexes and constraints", t0)
    t0 = time.perf_counter()
    conn = await _session(dsn)
    try:
        for table in LOADED:
            await conn.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
    finally:
        await conn.close()
    await _parallel(dsn, [f"VACUUM (ANALYZE) {t}" for t in LOADED])
    step("vacuum analyze", t0)
