"""PostgreSQL access of the inbox (asyncpg; schema ``inbox``): :class:`HistoryStore` and
:class:`InboxStore` of :mod:`.ports`, rows mapped to its values here.

Customers' ids, names and message text are stored encrypted (:mod:`.sealing`): ids as
keyed digests (lookups, unique keys and joins work on them) with Fernet tokens beside
them, text as Fernet tokens, search through blind word tokens. The background pass
(:meth:`Repository.seal_batch`) seals rows stored before and re-encrypts on key rotation.

A batch of history ops is one transaction. A thread is found by any of the customer's
ids (``aliases``): a customer first seen by phone and later by phone and BSUID stays in
one thread. Messages are inserted ``ON CONFLICT DO NOTHING`` on their dedupe key, so a
redelivery changes nothing. A claim is one conditional ``UPDATE … WHERE status =
'waiting'``: of two agents racing, exactly one gets the row back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from flowchat_contracts import CustomerIdentity
from flowchat_inbox.ports import (
    Applied,
    Conversation,
    ConversationFilter,
    Entry,
    HandoffOpen,
    Message,
    Op,
    StatusChange,
    TenantWait,
    Thread,
    WaitStats,
)
from flowchat_inbox.sealing import InboxSealer
from flowchat_platform.errors import StoreUnavailable
from flowchat_platform.privacy import is_sealed
from flowchat_platform.sealing import batch_lock

Conn = asyncpg.Connection | PoolConnectionProxy

_THREAD = (
    "id, tenant_id, account_id, customer_key, wa_id, user_id, customer_name, "
    "last_message_at, last_inbound_at, last_preview, message_count, customer_key_enc, "
    "wa_id_enc, user_id_enc, customer_name_enc, last_preview_enc"
)
_MESSAGE = (
    "m.id, m.thread_id, m.direction, m.author, m.agent_id, m.type, m.body, m.content, "
    "m.sealed, m.message_id, m.provider_message_id, s.status, s.updated_at AS status_at, "
    "s.error_code, m.occurred_at"
)
_MESSAGE_FROM = (
    "messages m LEFT JOIN statuses s ON s.tenant_id = m.tenant_id AND s.message_id = m.message_id"
)
_CONVERSATION = (
    "id, tenant_id, account_id, thread_id, status, assignee, reason, bot_state, opened_at, "
    "claimed_at, first_response_at, resolved_at, resolved_by, tags"
)
PREVIEW_CHARS = 160


def _thread(r: asyncpg.Record, sealer: InboxSealer) -> Thread:
    values = dict(r)
    for column in _SEALED_THREAD:
        values[column] = sealer.open(values.pop(f"{column}_enc"), values[column])
    return Thread(**values)


def _message(r: asyncpg.Record, sealer: InboxSealer) -> Message:
    values = dict(r)
    values["body"], values["content"] = sealer.open_message(
        values.pop("sealed"), values["body"], values["content"]
    )
    return Message(**values)


#: A thread's token columns (``<column>_enc``).
_SEALED_THREAD = ("customer_key", "wa_id", "user_id", "customer_name", "last_preview")


def _seal_stored(
    sealer: InboxSealer, tenant_id: str, stored: str | None, token: bytes | None
) -> tuple[str | None, bytes | None]:
    """An id column of a row stored before encryption, sealed (as it is if it already is)."""
    if token is not None or stored is None or is_sealed(stored):
        return stored, token
    return sealer.seal_id(tenant_id, stored)


#: A thread's customer as written: (key token, phone digits, BSUID, name).
_ThreadIds = tuple[bytes | None, str | None, str | None, str | None]


def _wa_id(customer: CustomerIdentity) -> str | None:
    return customer.wa_id.lstrip("+") if customer.wa_id else None


def _tokens_literal(tokens: Sequence[int]) -> str:
    """A ``bigint[]`` literal (arrays of arrays cannot go through ``unnest`` row by row)."""
    return "{" + ",".join(str(t) for t in tokens) + "}"


def _message_event(thread_id: int, row_id: int, e: Entry) -> dict[str, Any]:
    """The live update of a recorded message (no text: the stream says what changed)."""
    return {
        "type": "message",
        "thread_id": thread_id,
        "message": row_id,
        "account_id": e.account_id,
        "direction": e.direction,
        "author": e.author,
        "message_type": e.type,
        "occurred_at": e.occurred_at.isoformat(),
    }


def _keyset(after: tuple[datetime, int] | None, args: list[Any]) -> str:
    """Older than ``after`` (a bound the index range starts at), appended to ``args``."""
    if after is None:
        return ""
    args.extend(after)
    return f"AND (m.occurred_at, m.id) < (${len(args) - 1}, ${len(args)})"


def _page_query(
    condition: str,
    tenant_id: str,
    arg: object,
    after: tuple[datetime, int] | None,
    limit: int,
    scope: str = "m.tenant_id = $1",
) -> tuple[Any, ...]:
    """SQL and arguments of one page of a tenant's messages matching ``condition`` (on
    ``$2`` = ``arg``), newest first. Keyset: a later page starts where the index range
    of ``(occurred_at, id) < cursor`` starts (a query text of its own, so the bound is
    an index condition, never a filter over the pages before). ``scope``: how the rows
    are kept to the tenant (``$1``)."""
    args: list[Any] = [tenant_id, arg]
    keyset = _keyset(after, args)
    args.append(limit)
    sql = f"""
        SELECT {_MESSAGE} FROM {_MESSAGE_FROM}
        WHERE {scope} AND {condition} {keyset}
        ORDER BY m.occurred_at DESC, m.id DESC LIMIT ${len(args)}
        """  # noqa: S608 - condition is one of the repository's constants
    return (sql, *args)


#: A thread page's rows are the tenant's when the thread (``$2``) is.
_THREAD_OF_TENANT = "EXISTS (SELECT 1 FROM threads t WHERE t.id = $2 AND t.tenant_id = $1)"

#: Search step 1 walks at most these many of the tenant's newest messages, window
#: after window (a later one only when the matches so far promise a full page in it).
SEARCH_WINDOWS: tuple[int, ...] = (5_000, 20_000)


def _search_window(
    condition: str,
    tenant_id: str,
    tokens: list[int],
    after: tuple[datetime, int] | None,
    limit: int,
    size: int,
) -> tuple[Any, ...]:
    """Matches among the tenant's newest ``size`` messages after the cursor (the walk
    stops once ``limit`` are found)."""
    args: list[Any] = [tenant_id, tokens]
    keyset = _keyset(after, args)
    args.append(limit)
    sql = f"""
        SELECT {_MESSAGE}
        FROM (SELECT * FROM messages m WHERE m.tenant_id = $1 {keyset}
              ORDER BY m.occurred_at DESC, m.id DESC LIMIT {int(size)}) m
        LEFT JOIN statuses s ON s.tenant_id = m.tenant_id AND s.message_id = m.message_id
        WHERE {condition}
        ORDER BY m.occurred_at DESC, m.id DESC LIMIT ${len(args)}
        """  # noqa: S608 - condition and keyset are the repository's own
    return (sql, *args)


def _window_edge(tenant_id: str, after: tuple[datetime, int] | None, size: int) -> tuple[Any, ...]:
    """The last message of a full search window of ``size`` (None: the window held
    every message left)."""
    args: list[Any] = [tenant_id]
    keyset = _keyset(after, args)
    sql = f"""
        SELECT m.occurred_at, m.id FROM messages m WHERE m.tenant_id = $1 {keyset}
        ORDER BY m.occurred_at DESC, m.id DESC OFFSET {int(size) - 1} LIMIT 1
        """  # noqa: S608 - keyset is the repository's own
    return (sql, *args)


def _conversation(r: asyncpg.Record) -> Conversation:
    values = dict(r)
    values["tags"] = tuple(values["tags"] or ())
    return Conversation(**values)


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class Repository:
    def __init__(self, pool: asyncpg.Pool, sealer: InboxSealer) -> None:
        self.pool = pool
        self.sealer = sealer

    def _forms(self, tenant_id: str, ids: Sequence[str]) -> list[str]:
        """Every stored form of ``ids``: their digests (sealed rows) and as given (rows
        stored before encryption, until the background pass seals them)."""
        return sorted({*ids, *(self.sealer.digest(tenant_id, i) for i in ids)})

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        except (
            OSError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.CannotConnectNowError,
        ) as exc:
            raise StoreUnavailable(repr(exc), store="postgresql") from exc

    # ------------------------------------------------------------ erasure

    async def erase_customer(self, tenant_id: str, ids: Sequence[str]) -> dict[str, int]:
        """Delete every thread of the customer named by any of ``ids`` (their messages,
        statuses and hand-off conversations) and the customer's aliases (those named and
        every one linked to the threads' keys); counts by kind."""
        ids = self._forms(tenant_id, ids)
        async with self._tx() as conn:
            found = await conn.fetch(
                """
                SELECT id, customer_key FROM threads WHERE tenant_id = $1 AND (
                    customer_key = ANY($2::text[]) OR wa_id = ANY($2::text[])
                    OR user_id = ANY($2::text[])
                    OR customer_key IN (SELECT customer_key FROM aliases
                                        WHERE tenant_id = $1 AND alias = ANY($2::text[])))
                FOR UPDATE
                """,
                tenant_id,
                ids,
            )
            threads = [r["id"] for r in found]
            # every id linked to the customer's threads goes too (not only those named)
            ids = sorted({*ids, *(r["customer_key"] for r in found)})
            statuses = await conn.execute(
                """
                DELETE FROM statuses WHERE tenant_id = $1 AND message_id IN (
                    SELECT message_id FROM messages
                    WHERE thread_id = ANY($2::bigint[]) AND message_id IS NOT NULL)
                """,
                tenant_id,
                threads,
            )
            messages = await conn.execute(
                "DELETE FROM messages WHERE thread_id = ANY($1::bigint[])", threads
            )
            conversations = await conn.execute(
                "DELETE FROM conversations WHERE thread_id = ANY($1::bigint[])", threads
            )
            deleted = await conn.execute(
                "DELETE FROM threads WHERE id = ANY($1::bigint[])", threads
            )
            aliases = await conn.execute(
                """
                DELETE FROM aliases WHERE tenant_id = $1 AND (alias = ANY($2::text[])
                    OR customer_key = ANY($2::text[]))
                """,
                tenant_id,
                ids,
            )
        return {
            "threads_deleted": _count(deleted),
            "messages_deleted": _count(messages),
            "statuses_deleted": _count(statuses),
            "conversations_deleted": _count(conversations),
            "aliases_deleted": _count(aliases),
        }

    # ------------------------------------------------------------ encryption at rest

    async def seal_threads(self, after: int, batch: int, *, rotate: bool) -> tuple[int, int | None]:
        """Seal one batch of threads stored in clear before encryption (``rotate``: walk
        every thread after id ``after`` and re-encrypt its tokens under the newest key);
        ``(rows changed, last id seen)`` (None: done)."""
        seal = self.sealer
        where = "id > $1" if rotate else "customer_key_enc IS NULL AND id > $1"
        async with self._tx() as conn:
            rows = await conn.fetch(
                f"SELECT {_THREAD} FROM threads WHERE {where} "  # noqa: S608
                f"ORDER BY id LIMIT $2 {batch_lock(rotate=rotate)}",
                after,
                batch,
            )
            changes = []
            for r in rows:
                if r["customer_key_enc"] is not None:  # sealed: re-encrypted
                    tokens = [seal.rotate(r[f"{c}_enc"]) for c in _SEALED_THREAD]
                    changes.append((r["id"], r["customer_key"], r["wa_id"], r["user_id"], *tokens))
                    continue
                t = r["tenant_id"]
                key, key_enc = _seal_stored(seal, t, r["customer_key"], None)
                wa, wa_enc = _seal_stored(seal, t, r["wa_id"], r["wa_id_enc"])
                user, user_enc = _seal_stored(seal, t, r["user_id"], r["user_id_enc"])
                name = r["customer_name_enc"] or seal.encrypt(r["customer_name"])
                preview = r["last_preview_enc"] or seal.encrypt(r["last_preview"])
                changes.append((r["id"], key, wa, user, key_enc, wa_enc, user_enc, name, preview))
            await conn.executemany(
                """
                UPDATE threads SET customer_key = $2, wa_id = $3, user_id = $4,
                    customer_key_enc = $5, wa_id_enc = $6, user_id_enc = $7,
                    customer_name_enc = $8, last_preview_enc = $9, customer_name = NULL,
                    last_preview = NULL
                WHERE id = $1
                """,
                changes,
            )
        return len(changes), (rows[-1]["id"] if len(rows) == batch else None)

    async def seal_aliases(
        self, after: tuple[str, str], batch: int, *, rotate: bool
    ) -> tuple[int, tuple[str, str] | None]:
        """:meth:`seal_threads` for aliases (an alias sealed is a new key: the row is
        replaced by its digest's), keyset ``(tenant, alias)``."""
        seal = self.sealer
        where = "(tenant_id, alias) > ($1, $2)"
        if not rotate:
            where += " AND customer_key_enc IS NULL"
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT tenant_id, alias, customer_key, customer_key_enc FROM aliases "  # noqa: S608
                f"WHERE {where} ORDER BY tenant_id, alias LIMIT $3 {batch_lock(rotate=rotate)}",
                *after,
                batch,
            )
            rotated = [
                (r["tenant_id"], r["alias"], seal.rotate(r["customer_key_enc"]))
                for r in rows
                if r["customer_key_enc"] is not None
            ]
            clear = [r for r in rows if r["customer_key_enc"] is None]
            sealed = [
                (
                    r["tenant_id"],
                    seal.digest(r["tenant_id"], r["alias"]),
                    *seal.seal_id(r["tenant_id"], r["customer_key"]),
                )
                for r in clear
            ]
            await conn.executemany(
                "UPDATE aliases SET customer_key_enc = $3 WHERE tenant_id = $1 AND alias = $2",
                rotated,
            )
            if clear:
                await conn.execute(
                    "DELETE FROM aliases a USING unnest($1::text[], $2::text[]) AS u(t, al) "
                    "WHERE a.tenant_id = u.t AND a.alias = u.al",
                    [r["tenant_id"] for r in clear],
                    [r["alias"] for r in clear],
                )
                await conn.executemany(
                    "INSERT INTO aliases (tenant_id, alias, customer_key, customer_key_enc) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    sealed,
                )
        last = (rows[-1]["tenant_id"], rows[-1]["alias"]) if len(rows) == batch else None
        return len(rotated) + len(sealed), last

    async def seal_messages(
        self, after: int, batch: int, *, rotate: bool
    ) -> tuple[int, int | None]:
        """:meth:`seal_threads` for messages: text and content into one token, the words
        into blind tokens; ``rotate``: every token re-encrypted."""
        seal = self.sealer
        where = "id > $1" if rotate else "sealed IS NULL AND id > $1"
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT id, tenant_id, body, content, sealed FROM messages "  # noqa: S608
                f"WHERE {where} ORDER BY id LIMIT $2 {batch_lock(rotate=rotate)}",
                after,
                batch,
            )
            rotated = [(r["id"], seal.rotate(r["sealed"])) for r in rows if r["sealed"]]
            sealed = []
            for r in rows:
                if r["sealed"] is None:
                    body, content = seal.open_message(None, r["body"], r["content"])
                    tokens = seal.search_tokens(r["tenant_id"], body)
                    sealed.append((r["id"], seal.seal_message(body, content), tokens))
            await conn.executemany("UPDATE messages SET sealed = $2 WHERE id = $1", rotated)
            await conn.executemany(
                "UPDATE messages SET sealed = $2, search_tokens = $3::bigint[], body = NULL, "
                "content = NULL WHERE id = $1",
                sealed,
            )
        return len(rotated) + len(sealed), (rows[-1]["id"] if len(rows) == batch else None)

    # ------------------------------------------------------------ retention

    async def _purge(self, sql: str, cutoff: datetime, batch: int, default_days: int) -> int:
        async with self._tx() as conn:
            result = await conn.execute(sql, cutoff, batch, default_days)
        return int(result.split()[-1])

    # A row's cutoff: ``$1`` (now - the default ``$3`` days) moved to now - its tenant's
    # days when the tenant chose its own (``tenant_retention``).
    _TENANT_CUTOFF = (
        "$1::timestamptz + make_interval(days => $3::int - coalesce(r.message_days, $3::int))"
    )

    async def purge_messages(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        return await self._purge(
            f"""
            DELETE FROM messages WHERE id IN (
                SELECT m.id FROM messages m
                LEFT JOIN tenant_retention r ON r.tenant_id = m.tenant_id
                WHERE m.occurred_at < {self._TENANT_CUTOFF}
                LIMIT $2 FOR UPDATE OF m SKIP LOCKED)
            """,  # noqa: S608
            cutoff,
            batch,
            default_days,
        )

    async def purge_statuses(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        return await self._purge(
            f"""
            DELETE FROM statuses WHERE (tenant_id, message_id) IN (
                SELECT s.tenant_id, s.message_id FROM statuses s
                LEFT JOIN tenant_retention r ON r.tenant_id = s.tenant_id
                WHERE s.updated_at < {self._TENANT_CUTOFF}
                LIMIT $2 FOR UPDATE OF s SKIP LOCKED)
            """,  # noqa: S608
            cutoff,
            batch,
            default_days,
        )

    async def purge_previews(self, cutoff: datetime, batch: int, default_days: int = 0) -> int:
        return await self._purge(
            f"""
            UPDATE threads SET last_preview = NULL, last_preview_enc = NULL WHERE id IN (
                SELECT t.id FROM threads t
                LEFT JOIN tenant_retention r ON r.tenant_id = t.tenant_id
                WHERE t.last_message_at < {self._TENANT_CUTOFF}
                  AND (t.last_preview IS NOT NULL OR t.last_preview_enc IS NOT NULL)
                LIMIT $2 FOR UPDATE OF t SKIP LOCKED)
            """,  # noqa: S608
            cutoff,
            batch,
            default_days,
        )

    async def retention(self, tenant_id: str) -> int | None:
        """The tenant's own retention of message content in days (None: the default)."""
        value = await self.pool.fetchval(
            "SELECT message_days FROM tenant_retention WHERE tenant_id = $1", tenant_id
        )
        return int(value) if value is not None else None

    async def set_retention(self, tenant_id: str, days: int | None) -> None:
        if days is None:
            await self.pool.execute("DELETE FROM tenant_retention WHERE tenant_id = $1", tenant_id)
            return
        await self.pool.execute(
            """
            INSERT INTO tenant_retention (tenant_id, message_days) VALUES ($1, $2)
            ON CONFLICT (tenant_id) DO UPDATE SET message_days = EXCLUDED.message_days,
                updated_at = now()
            """,
            tenant_id,
            days,
        )

    # ------------------------------------------------------------------ ingest

    async def apply(self, ops: Sequence[Op]) -> list[Applied]:
        """One transaction, set-based: a handful of statements per batch whatever its
        size (aliases, threads, messages, thread counters, statuses); hand-offs (rare)
        one by one."""
        results: list[Applied | None] = [None] * len(ops)
        entries = [(i, op) for i, op in enumerate(ops) if isinstance(op, Entry)]
        statuses = [(i, op) for i, op in enumerate(ops) if isinstance(op, StatusChange)]
        handoffs = [(i, op) for i, op in enumerate(ops) if isinstance(op, HandoffOpen)]
        async with self._tx() as conn:
            if entries:
                await self._entries(conn, entries, results)
            if statuses:
                await self._statuses(conn, statuses, results)
            for i, h in handoffs:
                results[i] = await self._handoff(conn, h)
        out = [r for r in results if r is not None]
        assert len(out) == len(ops)
        return out

    async def _customer_keys(
        self, conn: Conn, customers: list[tuple[str, CustomerIdentity, bool]]
    ) -> list[tuple[str, bytes | None]]:
        """Each (tenant, customer, links ids)'s key as stored (a digest) and a token of the
        key in clear: the key any of its ids is filed under (its own key first), else its
        own; an inbound customer's new ids are linked to it. Works on digests only."""
        seal = self.sealer
        digests = [{i: seal.digest(t, i) for i in (*c.ids, c.key)} for t, c, _ in customers]
        pairs = sorted(
            {(t, d) for (t, _, _), ds in zip(customers, digests, strict=True) for d in ds.values()}
        )
        known: dict[tuple[str, str], tuple[str, bytes | None]] = {
            (r["tenant_id"], r["alias"]): (r["customer_key"], r["customer_key_enc"])
            for r in await conn.fetch(
                "SELECT a.tenant_id, a.alias, a.customer_key, a.customer_key_enc FROM aliases a "
                "JOIN unnest($1::text[], $2::text[]) AS u(tenant_id, alias) "
                "USING (tenant_id, alias)",
                [t for t, _ in pairs],
                [a for _, a in pairs],
            )
        }
        new_aliases: dict[tuple[str, str], tuple[str, bytes | None]] = {}
        keys: list[tuple[str, bytes | None]] = []
        for (t, customer, links), ds in zip(customers, digests, strict=True):
            ids = [ds[i] for i in customer.ids]
            own = ds[customer.key]
            found = [known[(t, i)] for i in ids if (t, i) in known]
            key = known.get((t, own)) or (found[0] if found else None)
            if key is None or (key[1] is None and key[0] == own):
                key = (own, seal.encrypt(customer.key))
            keys.append(key)
            linking = ids if links else (() if found else (own,))
            for alias in linking:
                if (t, alias) not in known:
                    known[(t, alias)] = key
                    new_aliases[(t, alias)] = key
        if new_aliases:
            rows = sorted(new_aliases.items(), key=lambda kv: kv[0])
            await conn.execute(
                "INSERT INTO aliases (tenant_id, alias, customer_key, customer_key_enc) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) "
                "ON CONFLICT DO NOTHING",
                [t for (t, _), _ in rows],
                [a for (_, a), _ in rows],
                [k for _, (k, _) in rows],
                [token for _, (_, token) in rows],
            )
        return keys

    async def _upsert_threads(
        self,
        conn: Conn,
        threads: dict[tuple[str, str, str], _ThreadIds],
        at: dict[tuple[str, str, str], datetime],
    ) -> dict[tuple[str, str, str], int]:
        """The threads (tenant, account, key digest) → id, created or updated with the
        customer's ids (digest and token) and name (token), in a fixed order (no
        lock-order deadlocks)."""
        seal = self.sealer
        ordered = sorted(threads.items(), key=lambda kv: kv[0])
        wa = [seal.seal_id(k[0], v[1]) for k, v in ordered]
        user = [seal.seal_id(k[0], v[2]) for k, v in ordered]
        return {
            (r["tenant_id"], r["account_id"], r["customer_key"]): r["id"]
            for r in await conn.fetch(
                """
                INSERT INTO threads (tenant_id, account_id, customer_key, customer_key_enc,
                                     wa_id, wa_id_enc, user_id, user_id_enc, customer_name_enc,
                                     last_message_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[],
                                     $5::text[], $6::bytea[], $7::text[], $8::bytea[],
                                     $9::bytea[], $10::timestamptz[])
                ON CONFLICT (tenant_id, account_id, customer_key) DO UPDATE SET
                    customer_key_enc = coalesce(threads.customer_key_enc,
                                                EXCLUDED.customer_key_enc),
                    wa_id_enc = CASE WHEN EXCLUDED.wa_id IS NULL OR (EXCLUDED.wa_id = threads.wa_id
                                     AND threads.wa_id_enc IS NOT NULL)
                                THEN threads.wa_id_enc ELSE EXCLUDED.wa_id_enc END,
                    wa_id = coalesce(EXCLUDED.wa_id, threads.wa_id),
                    user_id_enc = CASE WHEN EXCLUDED.user_id IS NULL
                                       OR (EXCLUDED.user_id = threads.user_id
                                           AND threads.user_id_enc IS NOT NULL)
                                  THEN threads.user_id_enc ELSE EXCLUDED.user_id_enc END,
                    user_id = coalesce(EXCLUDED.user_id, threads.user_id),
                    customer_name_enc = coalesce(EXCLUDED.customer_name_enc,
                                                 threads.customer_name_enc),
                    customer_name = CASE WHEN EXCLUDED.customer_name_enc IS NULL
                                    THEN threads.customer_name END
                RETURNING id, tenant_id, account_id, customer_key
                """,
                [k[0] for k, _ in ordered],
                [k[1] for k, _ in ordered],
                [k[2] for k, _ in ordered],
                [v[0] for _, v in ordered],
                [d for d, _ in wa],
                [token for _, token in wa],
                [d for d, _ in user],
                [token for _, token in user],
                [seal.encrypt(v[3]) for _, v in ordered],
                [at[k] for k, _ in ordered],
            )
        }

    async def _insert_messages(
        self, conn: Conn, rows_in: list[tuple[int, Entry, int]]
    ) -> dict[tuple[str, str], int]:
        """The messages (a redelivered dedupe key inserts nothing): text and content as
        one token, the words as blind tokens; (tenant, dedupe key) → id of those inserted."""
        seal = self.sealer
        return {
            (r["tenant_id"], r["dedupe_key"]): r["id"]
            for r in await conn.fetch(
                """
                INSERT INTO messages (tenant_id, thread_id, dedupe_key, direction, author,
                                      agent_id, type, sealed, search_tokens, message_id,
                                      provider_message_id, occurred_at)
                SELECT t, th, dk, dir, au, ag, ty, se, st::bigint[], mi, pm, oc
                FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                            $6::text[], $7::text[], $8::bytea[], $9::text[], $10::text[],
                            $11::text[], $12::timestamptz[])
                     AS u(t, th, dk, dir, au, ag, ty, se, st, mi, pm, oc)
                ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
                RETURNING id, tenant_id, dedupe_key
                """,
                [e.tenant_id for _, e, _ in rows_in],
                [th for _, _, th in rows_in],
                [e.dedupe_key for _, e, _ in rows_in],
                [e.direction for _, e, _ in rows_in],
                [e.author for _, e, _ in rows_in],
                [e.agent_id for _, e, _ in rows_in],
                [e.type for _, e, _ in rows_in],
                [seal.seal_message(e.body, e.content) for _, e, _ in rows_in],
                [_tokens_literal(seal.search_tokens(e.tenant_id, e.body)) for _, e, _ in rows_in],
                [e.message_id for _, e, _ in rows_in],
                [e.provider_message_id for _, e, _ in rows_in],
                [e.occurred_at for _, e, _ in rows_in],
            )
        }

    async def _touch_threads(
        self,
        conn: Conn,
        rows_in: list[tuple[int, Entry, int]],
        inserted: dict[tuple[str, str], int],
        results: list[Applied | None],
    ) -> None:
        """Each op's result; the threads' counters, latest message and the customer's
        last message (the 24 h window) for what was inserted."""
        touched: dict[int, list[Any]] = {}
        for i, e, thread_id in rows_in:
            row_id = inserted.get((e.tenant_id, e.dedupe_key))
            if row_id is None:
                results[i] = Applied(False, e.tenant_id)
                continue
            results[i] = Applied(True, e.tenant_id, _message_event(thread_id, row_id, e))
            if e.direction == "internal":
                continue
            t = touched.setdefault(thread_id, [e.occurred_at, None, None, 0])
            if e.occurred_at >= t[0]:
                t[0] = e.occurred_at
                t[2] = (e.body or f"[{e.type}]")[:PREVIEW_CHARS]
            if e.direction == "inbound" and (t[1] is None or e.occurred_at > t[1]):
                t[1] = e.occurred_at
            t[3] += 1
        if touched:
            ordered_t = sorted(touched.items())
            await conn.execute(
                """
                UPDATE threads t SET
                    last_message_at = greatest(t.last_message_at, u.at),
                    last_inbound_at = greatest(t.last_inbound_at, u.inbound_at),
                    last_preview_enc = CASE WHEN u.at >= t.last_message_at THEN u.preview
                                       ELSE t.last_preview_enc END,
                    last_preview = CASE WHEN u.at >= t.last_message_at THEN NULL
                                   ELSE t.last_preview END,
                    message_count = t.message_count + u.n
                FROM unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[], $4::bytea[],
                            $5::int[]) AS u(id, at, inbound_at, preview, n)
                WHERE t.id = u.id
                """,
                [k for k, _ in ordered_t],
                [v[0] for _, v in ordered_t],
                [v[1] for _, v in ordered_t],
                [self.sealer.encrypt(v[2]) for _, v in ordered_t],
                [v[3] for _, v in ordered_t],
            )

    async def _entries(
        self, conn: Conn, entries: list[tuple[int, Entry]], results: list[Applied | None]
    ) -> None:
        keys = await self._customer_keys(
            conn, [(e.tenant_id, e.customer, e.links_ids) for _, e in entries]
        )
        # the threads: the latest name and ids of the batch for each
        threads: dict[tuple[str, str, str], _ThreadIds] = {}
        first_at: dict[tuple[str, str, str], datetime] = {}
        for (_, e), (key, token) in zip(entries, keys, strict=True):
            tkey = (e.tenant_id, e.account_id, key)
            old = threads.get(tkey) or (token, None, None, None)
            first_at.setdefault(tkey, e.occurred_at)
            threads[tkey] = (
                old[0],
                _wa_id(e.customer) or old[1],
                e.customer.user_id or old[2],
                e.customer_name or old[3],
            )
        thread_ids = await self._upsert_threads(conn, threads, first_at)
        rows_in: list[tuple[int, Entry, int]] = []
        seen: set[tuple[str, str]] = set()
        for (i, e), (key, _) in zip(entries, keys, strict=True):
            if (e.tenant_id, e.dedupe_key) in seen:
                results[i] = Applied(False, e.tenant_id)
                continue
            seen.add((e.tenant_id, e.dedupe_key))
            rows_in.append((i, e, thread_ids[(e.tenant_id, e.account_id, key)]))
        inserted = await self._insert_messages(conn, rows_in)
        await self._touch_threads(conn, rows_in, inserted, results)

    async def _statuses(
        self, conn: Conn, statuses: list[tuple[int, StatusChange]], results: list[Applied | None]
    ) -> None:
        best: dict[tuple[str, str], StatusChange] = {}
        for _, s in statuses:
            k = (s.tenant_id, s.message_id)
            if k not in best or s.rank > best[k].rank:
                best[k] = s
        rows = sorted(best.items())
        changed = {
            (r["tenant_id"], r["message_id"])
            for r in await conn.fetch(
                """
                INSERT INTO statuses (tenant_id, message_id, status, rank, error_code, updated_at)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[],
                                     $5::int[], $6::timestamptz[])
                ON CONFLICT (tenant_id, message_id) DO UPDATE SET
                    status = EXCLUDED.status, rank = EXCLUDED.rank,
                    error_code = EXCLUDED.error_code, updated_at = EXCLUDED.updated_at
                WHERE statuses.rank < EXCLUDED.rank
                RETURNING tenant_id, message_id
                """,
                [k[0] for k, _ in rows],
                [k[1] for k, _ in rows],
                [s.status for _, s in rows],
                [s.rank for _, s in rows],
                [s.error_code for _, s in rows],
                [s.occurred_at for _, s in rows],
            )
        }
        for i, s in statuses:
            k = (s.tenant_id, s.message_id)
            if best[k] is s and k in changed:
                results[i] = Applied(
                    True,
                    s.tenant_id,
                    {
                        "type": "status",
                        "message_id": s.message_id,
                        "status": s.status,
                        "account_id": s.account_id,
                    },
                )
            else:
                results[i] = Applied(False, s.tenant_id)

    async def _thread_id(
        self,
        conn: Conn,
        tenant_id: str,
        account_id: str,
        entry_customer: CustomerIdentity,
        *,
        links: bool,
        at: datetime,
    ) -> int:
        ((key, token),) = await self._customer_keys(conn, [(tenant_id, entry_customer, links)])
        tkey = (tenant_id, account_id, key)
        ids = await self._upsert_threads(
            conn, {tkey: (token, _wa_id(entry_customer), entry_customer.user_id, None)}, {tkey: at}
        )
        return ids[tkey]

    async def _insert_message(self, conn: Conn, thread_id: int, e: Entry) -> Applied:
        results: list[Applied | None] = [None]
        rows_in = [(0, e, thread_id)]
        await self._touch_threads(
            conn, rows_in, await self._insert_messages(conn, rows_in), results
        )
        assert results[0] is not None
        return results[0]

    async def _handoff(self, conn: Conn, h: HandoffOpen) -> Applied:
        thread_id = await self._thread_id(
            conn, h.tenant_id, h.account_id, h.customer, links=True, at=h.occurred_at
        )
        row = await conn.fetchrow(
            f"""
            INSERT INTO conversations (tenant_id, account_id, thread_id, status, reason,
                                       bot_state, source_event_id, opened_at)
            VALUES ($1, $2, $3, 'waiting', $4, $5, $6, $7)
            ON CONFLICT DO NOTHING
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            h.tenant_id,
            h.account_id,
            thread_id,
            h.reason,
            h.bot_state,
            h.event_id,
            h.occurred_at,
        )
        if row is None:  # a redelivery, or the thread already has an open conversation
            return Applied(False, h.tenant_id)
        c = _conversation(row)
        return Applied(
            True,
            h.tenant_id,
            {
                "type": "conversation",
                "conversation_id": c.id,
                "thread_id": c.thread_id,
                "account_id": c.account_id,
                "status": c.status,
                "assignee": None,
                "tags": [],
            },
        )

    # ------------------------------------------------------------------ history reads

    async def threads(
        self,
        tenant_id: str,
        *,
        account_id: str | None,
        after: tuple[datetime, int] | None,
        limit: int,
        customer: str | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[Thread]:
        at, row_id = after if after else (None, None)
        if ids is not None:  # these threads (the primary key), those of the tenant
            rows = await self.pool.fetch(
                f"""
                SELECT {_THREAD} FROM threads
                WHERE id = ANY($1::bigint[]) AND tenant_id = $2
                  AND ($3::text IS NULL OR account_id = $3)
                  AND ($4::timestamptz IS NULL OR (last_message_at, id) < ($4, $5))
                ORDER BY last_message_at DESC, id DESC LIMIT $6
                """,  # noqa: S608
                list(ids),
                tenant_id,
                account_id,
                at,
                row_id,
                limit,
            )
            return [_thread(r, self.sealer) for r in rows]
        rows = await self.pool.fetch(
            f"""
            SELECT {_THREAD} FROM threads
            WHERE tenant_id = $1 AND ($2::text IS NULL OR account_id = $2)
              AND ($3::timestamptz IS NULL OR (last_message_at, id) < ($3, $4))
              AND ($6::text[] IS NULL OR customer_key = ANY($6) OR wa_id = ANY($6)
                   OR user_id = ANY($6)
                   OR customer_key IN (SELECT customer_key FROM aliases
                                       WHERE tenant_id = $1 AND alias = ANY($6)))
            ORDER BY last_message_at DESC, id DESC LIMIT $5
            """,  # noqa: S608
            tenant_id,
            account_id,
            at,
            row_id,
            limit,
            self._forms(tenant_id, [customer]) if customer else None,
        )
        return [_thread(r, self.sealer) for r in rows]

    async def thread(self, tenant_id: str, thread_id: int) -> Thread | None:
        row = await self.pool.fetchrow(
            f"SELECT {_THREAD} FROM threads WHERE tenant_id = $1 AND id = $2",  # noqa: S608
            tenant_id,
            thread_id,
        )
        return _thread(row, self.sealer) if row else None

    async def messages(
        self, tenant_id: str, thread_id: int, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]:
        # messages_thread (thread_id, occurred_at DESC, id DESC): one index range per page.
        # The tenant is checked on the thread (a one-time filter), not on the messages: a
        # tenant the statistics do not know yet (new, or grown since the last ANALYZE)
        # looks like a handful of rows, and with ``m.tenant_id = $1`` the planner may walk
        # all of its messages newest first (messages_tenant_recent) looking for the
        # thread's (the likely cause of thread pages of about 1 s in the console bench at
        # 10 M before this change; not isolated: that bench now also ANALYZEs its copy).
        rows = await self.pool.fetch(
            *_page_query(
                "m.thread_id = $2",
                tenant_id,
                thread_id,
                after,
                limit,
                scope=_THREAD_OF_TENANT,
            )
        )
        return [_message(r, self.sealer) for r in rows]

    async def search(
        self, tenant_id: str, query: str, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]:
        """The tenant's messages matching ``query``, newest first, in steps whose cost
        is bounded whatever the words (the planner cannot tell a rare word from an
        absent one: both are estimated at half the rarest frequency it tracks, and a
        walk it picks for such a word reads the whole tenant):

        1. walks of the tenant's messages newest first (``messages_tenant_recent``)
           through :data:`SEARCH_WINDOWS` (a few thousand rows, then more only if
           the words came often enough to fill the page there): a common word fills
           the page within a few hundred rows and the walk stops there;
        2. if the page is not full, the rest from older messages through the GIN index
           (bitmap scans only: the words' matches in this tenant, by
           ``messages_search_tokens``), quick because the words are rare here.

        The text is encrypted: a message matches when it holds every word of the query
        (blind tokens, :meth:`~flowchat_platform.privacy.BlindIndex.search_tokens`), in
        any order; no phrases, prefixes, ``or`` nor ``-word``.
        """
        tokens = self.sealer.search_tokens(tenant_id, query)
        if not tokens:  # no word to look for
            return []
        words = "m.search_tokens @> $2::bigint[]"
        rows: list[asyncpg.Record] = []
        bound = after
        async with self.pool.acquire() as conn, conn.transaction(readonly=True):
            # exact bitmaps (a lossy one re-checks every row of its pages)
            await conn.execute("SET LOCAL work_mem = '64MB'")
            walked = 0
            for size in SEARCH_WINDOWS:
                if walked and len(rows) * size < (limit - len(rows)) * walked:
                    break  # too rare here to fill the page by walking: the index is quicker
                rows += await conn.fetch(
                    *_search_window(words, tenant_id, tokens, bound, limit - len(rows), size)
                )
                if len(rows) >= limit:
                    return [_message(r, self.sealer) for r in rows]
                edge = await conn.fetchrow(*_window_edge(tenant_id, bound, size))
                if edge is None:  # the window held every message left
                    return [_message(r, self.sealer) for r in rows]
                bound = (edge["occurred_at"], edge["id"])
                walked += size
            # the plan is made for these words (never a generic one) and never walks
            # the tenant (no plain index scans)
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            await conn.execute("SET LOCAL enable_indexscan = off")
            rows += await conn.fetch(
                *_page_query(words, tenant_id, tokens, bound, limit - len(rows))
            )
        return [_message(r, self.sealer) for r in rows]

    # ------------------------------------------------------------------ inbox

    async def conversation(self, tenant_id: str, conversation_id: int) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"SELECT {_CONVERSATION} FROM conversations WHERE tenant_id = $1 AND id = $2",  # noqa: S608
            tenant_id,
            conversation_id,
        )
        return _conversation(row) if row else None

    async def conversations(
        self,
        tenant_id: str,
        flt: ConversationFilter,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[Conversation]:
        where = ["tenant_id = $1"]
        args: list[Any] = [tenant_id]
        view = flt.view or "open"
        if view == "resolved":
            where.append("status = 'resolved'")
        else:
            where.append("status <> 'resolved'")
        if view == "unassigned":
            where.append("status = 'waiting'")
        elif view == "waiting":
            where.append("first_response_at IS NULL")
        elif view == "mine":
            args.append(flt.agent_id)
            where.append(f"assignee = ${len(args)}")
        if flt.account_id:
            args.append(flt.account_id)
            where.append(f"account_id = ${len(args)}")
        if flt.tag:
            args.append([flt.tag])
            where.append(f"tags @> ${len(args)}::text[]")
        if after:
            args.extend(after)
            where.append(f"(opened_at, id) > (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await self.pool.fetch(
            f"SELECT {_CONVERSATION} FROM conversations WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY opened_at, id LIMIT ${len(args)}",
            *args,
        )
        return [_conversation(r) for r in rows]

    async def claim(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"""
            UPDATE conversations SET status = 'assigned', assignee = $3, claimed_at = $4
            WHERE tenant_id = $1 AND id = $2 AND status = 'waiting'
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            tenant_id,
            conversation_id,
            agent_id,
            now,
        )
        return _conversation(row) if row else None

    async def assign(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"""
            UPDATE conversations SET status = 'assigned', assignee = $3,
                claimed_at = coalesce(claimed_at, $4)
            WHERE tenant_id = $1 AND id = $2 AND status <> 'resolved'
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            tenant_id,
            conversation_id,
            agent_id,
            now,
        )
        return _conversation(row) if row else None

    async def resolve(
        self, tenant_id: str, conversation_id: int, agent_id: str, now: datetime
    ) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"""
            UPDATE conversations SET status = 'resolved', resolved_at = $4, resolved_by = $3
            WHERE tenant_id = $1 AND id = $2 AND status <> 'resolved'
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            tenant_id,
            conversation_id,
            agent_id,
            now,
        )
        return _conversation(row) if row else None

    async def record_reply(
        self, conversation: Conversation, entry: Entry, now: datetime
    ) -> Conversation:
        async with self._tx() as conn:
            # The thread row first, as ingest takes it (thread, then message): the copy of
            # this reply arriving on the history queue then waits instead of deadlocking.
            await conn.execute(
                "SELECT 1 FROM threads WHERE id = $1 FOR UPDATE", conversation.thread_id
            )
            await self._insert_message(conn, conversation.thread_id, entry)
            if entry.direction == "outbound":
                row = await conn.fetchrow(
                    f"""
                    UPDATE conversations SET first_response_at = coalesce(first_response_at, $2)
                    WHERE id = $1 RETURNING {_CONVERSATION}
                    """,  # noqa: S608
                    conversation.id,
                    now,
                )
                assert row is not None  # the conversation exists: the caller just read it
                return _conversation(row)
        return conversation

    async def tag(
        self, tenant_id: str, conversation_id: int, add: Sequence[str], remove: Sequence[str]
    ) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"""
            UPDATE conversations SET tags = ARRAY(
                SELECT DISTINCT t FROM unnest(tags || $3::text[]) AS t
                WHERE t <> ALL($4::text[]) ORDER BY t)
            WHERE tenant_id = $1 AND id = $2
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            tenant_id,
            conversation_id,
            list(add),
            list(remove),
        )
        return _conversation(row) if row else None

    async def take_over(
        self, thread: Thread, agent_id: str, event_id: str, reason: str, now: datetime
    ) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"""
            INSERT INTO conversations (tenant_id, account_id, thread_id, status, assignee,
                                       reason, source_event_id, opened_at, claimed_at)
            VALUES ($1, $2, $3, 'assigned', $4, $5, $6, $7, $7)
            ON CONFLICT DO NOTHING
            RETURNING {_CONVERSATION}
            """,  # noqa: S608
            thread.tenant_id,
            thread.account_id,
            thread.id,
            agent_id,
            reason,
            event_id,
            now,
        )
        if row is None:
            # Our own event's copy may have been ingested first (a waiting conversation
            # of this event): the agent takes that one.
            row = await self.pool.fetchrow(
                f"""
                UPDATE conversations SET status = 'assigned', assignee = $3, claimed_at = $4
                WHERE tenant_id = $1 AND source_event_id = $2 AND status = 'waiting'
                RETURNING {_CONVERSATION}
                """,  # noqa: S608
                thread.tenant_id,
                event_id,
                agent_id,
                now,
            )
        return _conversation(row) if row else None

    async def open_conversation_of(self, tenant_id: str, thread_id: int) -> Conversation | None:
        row = await self.pool.fetchrow(
            f"SELECT {_CONVERSATION} FROM conversations "  # noqa: S608
            "WHERE tenant_id = $1 AND thread_id = $2 AND status <> 'resolved'",
            tenant_id,
            thread_id,
        )
        return _conversation(row) if row else None

    async def wait_stats(self, tenant_id: str | None, now: datetime) -> WaitStats:
        row = await self.pool.fetchrow(
            """
            SELECT count(*) AS waiting, min(opened_at) AS oldest FROM conversations
            WHERE status <> 'resolved' AND first_response_at IS NULL
              AND ($1::text IS NULL OR tenant_id = $1)
            """,
            tenant_id,
        )
        assert row is not None
        oldest = row["oldest"]
        return WaitStats(
            waiting=int(row["waiting"]),
            oldest_wait_s=max(0.0, (now - oldest).total_seconds()) if oldest else None,
        )

    async def longest_waits(self, now: datetime, limit: int) -> list[TenantWait]:
        rows = await self.pool.fetch(
            """
            SELECT tenant_id, count(*) AS waiting, min(opened_at) AS oldest FROM conversations
            WHERE status <> 'resolved' AND first_response_at IS NULL
            GROUP BY tenant_id ORDER BY min(opened_at), tenant_id LIMIT $1
            """,
            limit,
        )
        return [
            TenantWait(
                r["tenant_id"], int(r["waiting"]), max(0.0, (now - r["oldest"]).total_seconds())
            )
            for r in rows
        ]
