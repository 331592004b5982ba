"""PostgreSQL access of the inbox (asyncpg; schema ``inbox``): :class:`HistoryStore` and
:class:`InboxStore` of :mod:`.ports`, rows mapped to its values here.

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
import orjson
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
    Thread,
    WaitStats,
)
from flowchat_platform.errors import StoreUnavailable

Conn = asyncpg.Connection | PoolConnectionProxy

_THREAD = (
    "id, tenant_id, account_id, customer_key, wa_id, user_id, customer_name, "
    "last_message_at, last_inbound_at, last_preview, message_count"
)
_MESSAGE = (
    "m.id, m.thread_id, m.direction, m.author, m.agent_id, m.type, m.body, m.content, "
    "m.message_id, m.provider_message_id, s.status, s.updated_at AS status_at, s.error_code, "
    "m.occurred_at"
)
_MESSAGE_FROM = (
    "messages m LEFT JOIN statuses s ON s.tenant_id = m.tenant_id AND s.message_id = m.message_id"
)
_CONVERSATION = (
    "id, tenant_id, account_id, thread_id, status, assignee, reason, bot_state, opened_at, "
    "claimed_at, first_response_at, resolved_at, resolved_by"
)
PREVIEW_CHARS = 160


def _thread(r: asyncpg.Record) -> Thread:
    return Thread(**dict(r))


def _message(r: asyncpg.Record) -> Message:
    values = dict(r)
    values["content"] = orjson.loads(values["content"])
    return Message(**values)


def _conversation(r: asyncpg.Record) -> Conversation:
    return Conversation(**dict(r))


class Repository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

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

    # ------------------------------------------------------------------ ingest

    async def apply(self, ops: Sequence[Op]) -> list[Applied]:
        async with self._tx() as conn:
            return [await self._apply_one(conn, op) for op in ops]

    async def _apply_one(self, conn: Conn, op: Op) -> Applied:
        if isinstance(op, Entry):
            return await self._entry(conn, op)
        if isinstance(op, StatusChange):
            return await self._status(conn, op)
        return await self._handoff(conn, op)

    async def _thread_id(
        self,
        conn: Conn,
        tenant_id: str,
        account_id: str,
        entry_customer: CustomerIdentity,
        *,
        links: bool,
        at: datetime,
        name: str | None = None,
    ) -> int:
        ids = list(entry_customer.ids)
        known = {
            r["alias"]: r["customer_key"]
            for r in await conn.fetch(
                "SELECT alias, customer_key FROM aliases "
                "WHERE tenant_id = $1 AND alias = ANY($2::text[])",
                tenant_id,
                ids,
            )
        }
        # The key the customer's first id was filed under (the identity's own key first).
        key = known.get(entry_customer.key) or next(
            (known[i] for i in ids if i in known), entry_customer.key
        )
        missing = [i for i in ids if i not in known] if links else []
        if not links and not known:
            missing = [entry_customer.key]
        if missing:
            await conn.executemany(
                "INSERT INTO aliases (tenant_id, alias, customer_key) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                [(tenant_id, i, key) for i in missing],
            )
        wa_id = entry_customer.wa_id.lstrip("+") if entry_customer.wa_id else None
        thread_id: int = await conn.fetchval(
            """
            INSERT INTO threads (tenant_id, account_id, customer_key, wa_id, user_id,
                                 customer_name, last_message_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (tenant_id, account_id, customer_key) DO UPDATE SET
                wa_id = coalesce(EXCLUDED.wa_id, threads.wa_id),
                user_id = coalesce(EXCLUDED.user_id, threads.user_id),
                customer_name = coalesce(EXCLUDED.customer_name, threads.customer_name)
            RETURNING id
            """,
            tenant_id,
            account_id,
            key,
            wa_id,
            entry_customer.user_id,
            name,
            at,
        )
        return thread_id

    async def _entry(self, conn: Conn, e: Entry) -> Applied:
        thread_id = await self._thread_id(
            conn,
            e.tenant_id,
            e.account_id,
            e.customer,
            links=e.links_ids,
            at=e.occurred_at,
            name=e.customer_name,
        )
        return await self._insert_message(conn, thread_id, e)

    async def _insert_message(self, conn: Conn, thread_id: int, e: Entry) -> Applied:
        row_id = await conn.fetchval(
            """
            INSERT INTO messages (tenant_id, thread_id, dedupe_key, direction, author, agent_id,
                                  type, body, content, message_id, provider_message_id,
                                  occurred_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)
            ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
            RETURNING id
            """,
            e.tenant_id,
            thread_id,
            e.dedupe_key,
            e.direction,
            e.author,
            e.agent_id,
            e.type,
            e.body,
            orjson.dumps(e.content).decode(),
            e.message_id,
            e.provider_message_id,
            e.occurred_at,
        )
        if row_id is None:
            return Applied(False, e.tenant_id)
        if e.direction != "internal":
            await conn.execute(
                """
                UPDATE threads SET
                    last_message_at = greatest(last_message_at, $2),
                    last_inbound_at = CASE WHEN $3 THEN greatest(last_inbound_at, $2)
                                      ELSE last_inbound_at END,
                    last_preview = CASE WHEN $2 >= last_message_at THEN $4 ELSE last_preview END,
                    message_count = message_count + 1
                WHERE id = $1
                """,
                thread_id,
                e.occurred_at,
                e.direction == "inbound",
                (e.body or f"[{e.type}]")[:PREVIEW_CHARS],
            )
        return Applied(
            True,
            e.tenant_id,
            {
                "type": "message",
                "thread_id": thread_id,
                "message": row_id,
                "account_id": e.account_id,
                "direction": e.direction,
                "author": e.author,
                "message_type": e.type,
                "occurred_at": e.occurred_at.isoformat(),
            },
        )

    async def _status(self, conn: Conn, s: StatusChange) -> Applied:
        changed = await conn.fetchval(
            """
            INSERT INTO statuses (tenant_id, message_id, status, rank, error_code, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, message_id) DO UPDATE SET
                status = EXCLUDED.status, rank = EXCLUDED.rank,
                error_code = EXCLUDED.error_code, updated_at = EXCLUDED.updated_at
            WHERE statuses.rank < EXCLUDED.rank
            RETURNING 1
            """,
            s.tenant_id,
            s.message_id,
            s.status,
            s.rank,
            s.error_code,
            s.occurred_at,
        )
        if not changed:
            return Applied(False, s.tenant_id)
        return Applied(
            True,
            s.tenant_id,
            {
                "type": "status",
                "message_id": s.message_id,
                "status": s.status,
                "account_id": s.account_id,
            },
        )

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
    ) -> list[Thread]:
        at, row_id = after if after else (None, None)
        rows = await self.pool.fetch(
            f"""
            SELECT {_THREAD} FROM threads
            WHERE tenant_id = $1 AND ($2::text IS NULL OR account_id = $2)
              AND ($3::timestamptz IS NULL OR (last_message_at, id) < ($3, $4))
            ORDER BY last_message_at DESC, id DESC LIMIT $5
            """,  # noqa: S608
            tenant_id,
            account_id,
            at,
            row_id,
            limit,
        )
        return [_thread(r) for r in rows]

    async def thread(self, tenant_id: str, thread_id: int) -> Thread | None:
        row = await self.pool.fetchrow(
            f"SELECT {_THREAD} FROM threads WHERE tenant_id = $1 AND id = $2",  # noqa: S608
            tenant_id,
            thread_id,
        )
        return _thread(row) if row else None

    async def messages(
        self, tenant_id: str, thread_id: int, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]:
        at, row_id = after if after else (None, None)
        rows = await self.pool.fetch(
            f"""
            SELECT {_MESSAGE} FROM {_MESSAGE_FROM}
            WHERE m.thread_id = $2 AND m.tenant_id = $1
              AND ($3::timestamptz IS NULL OR (m.occurred_at, m.id) < ($3, $4))
            ORDER BY m.occurred_at DESC, m.id DESC LIMIT $5
            """,  # noqa: S608
            tenant_id,
            thread_id,
            at,
            row_id,
            limit,
        )
        return [_message(r) for r in rows]

    async def search(
        self, tenant_id: str, query: str, *, after: tuple[datetime, int] | None, limit: int
    ) -> list[Message]:
        at, row_id = after if after else (None, None)
        rows = await self.pool.fetch(
            f"""
            SELECT {_MESSAGE} FROM {_MESSAGE_FROM}
            WHERE m.tenant_id = $1 AND m.search @@ websearch_to_tsquery('simple', $2)
              AND ($3::timestamptz IS NULL OR (m.occurred_at, m.id) < ($3, $4))
            ORDER BY m.occurred_at DESC, m.id DESC LIMIT $5
            """,  # noqa: S608
            tenant_id,
            query,
            at,
            row_id,
            limit,
        )
        return [_message(r) for r in rows]

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
