"""Customers' data encrypted at rest (issue 28): after real traffic the inbox's tables
hold no phone number, BSUID, name or message text in clear (read directly), while the
API reads them back and search finds the words; rows stored before encryption are sealed
by the background pass and re-encrypted when the key rotates; erasure finds the customer
by the digests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from inbox_testkit import ENCRYPTION_KEY, Kit, sealer
from prometheus_client import REGISTRY

from flowchat_contracts.privacy import ErasureRequested
from flowchat_inbox import SCHEMA
from flowchat_inbox.app import MIGRATIONS
from flowchat_inbox.repository import Repository
from flowchat_inbox.seal_pass import seal_identities, seal_loop
from flowchat_inbox.service import HistoryService
from flowchat_platform.crypto import SecretBox
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.testing import row_versions, temporary_database

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def stored_in_clear(conn: asyncpg.Connection, needles: list[str]) -> list[str]:
    """``table: needle`` for every row of the inbox's tables holding a needle, as text
    or as bytes (a bytea column is read as its bytes, not only as hex)."""
    found = []
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
        SCHEMA,
    )
    for t in tables:
        columns = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = $1 AND table_name = $2",
            SCHEMA,
            t["table_name"],
        )
        parts = [
            f"coalesce(encode(r.{c['column_name']}, 'escape'), '')"
            if c["data_type"] == "bytea"
            else f"coalesce(r.{c['column_name']}::text, '')"
            for c in columns
        ]
        row_text = " || ' ' || ".join(parts)
        for needle in needles:
            hits = await conn.fetchval(
                f'SELECT count(*) FROM {SCHEMA}."{t["table_name"]}" r WHERE ({row_text}) LIKE $1',
                f"%{needle}%",
            )
            if hits:
                found.append(f"{t['table_name']}: {needle}")
    return found


def sealed_total(table: str, action: str) -> float:
    return (
        REGISTRY.get_sample_value("flowchat_inbox_sealed_total", {"table": table, "action": action})
        or 0.0
    )


async def test_after_real_traffic_no_id_name_or_text_is_stored_in_clear(kit: Kit) -> None:
    t, wa = kit.new_tenant(), kit.phone()
    bsuid = f"US.{uuid.uuid4().hex[:16]}"
    tag = uuid.uuid4().hex[:10]
    name = f"Zoltanne{tag}"
    said, answered = f"parcel{tag} arrived broken", f"sorry{tag} we replace it today"
    inbound = kit.inbound(t, wa_id=wa, user_id=bsuid, text=said).model_copy(
        update={"customer_name": name}
    )
    await kit.publish(inbound)
    await kit.publish(kit.outbound(t, wa, text=answered))
    await kit.publish(kit.handoff(t, user_id=bsuid))  # one thread: found by the BSUID's digest

    # the API reads everything back in clear
    thread = await kit.thread_of(t)
    assert (thread["wa_id"], thread["user_id"], thread["customer_key"]) == (wa, bsuid, bsuid)
    assert thread["customer_name"] == name
    assert thread["last_preview"] == answered
    assert thread["message_count"] == 2
    texts = {m["text"] for m in await kit.messages(t, thread["id"])}
    assert texts == {said, answered}
    listed = await kit.get("/v1/threads", t, customer="+" + wa)
    assert [x["id"] for x in listed["items"]] == [thread["id"]]
    (conversation,) = (await kit.get("/v1/conversations", t))["items"]
    assert conversation["thread_id"] == thread["id"]

    # search: every word of the query, in any order, any case
    async def found(q: str) -> list[str]:
        return [m["text"] for m in (await kit.get("/v1/search", t, q=q))["items"]]

    assert await found(f"parcel{tag}") == [said]
    assert await found(f"BROKEN parcel{tag}") == [said]
    assert await found(f"parcel{tag} replace") == []  # the words are in two messages
    assert await found(f"sorry{tag}") == [answered]
    assert await found("!!!") == []
    assert (await kit.get("/v1/search", kit.new_tenant(), q=f"parcel{tag}"))["items"] == []

    # the tables themselves, read directly: nothing in clear
    needles = [wa, bsuid, name, f"parcel{tag}", f"sorry{tag}"]
    assert await stored_in_clear(kit.db, needles) == []

    # erasure by the phone number (with a +) finds the sealed rows by their digests
    assert kit.settings is not None
    pool = await create_pool(kit.settings.database_url, schema=SCHEMA, max_size=2)
    try:
        history = HistoryService(Repository(pool, sealer()))
        report = await history.erase(
            ErasureRequested(request_id=uuid.uuid4().hex, tenant_id=t, identities=["+" + wa])
        )
    finally:
        await pool.close()
    assert report["threads_deleted"] == 1
    assert report["messages_deleted"] == 2
    assert report["aliases_deleted"] == 2
    assert await kit.db.fetchval("SELECT count(*) FROM aliases WHERE tenant_id = $1", t) == 0
    assert (await kit.get("/v1/threads", t))["items"] == []


async def test_rows_stored_before_are_sealed_then_re_encrypted_under_a_new_key() -> None:
    wa, bsuid = "447700900123", f"US.{uuid.uuid4().hex[:16]}"
    text = "oldword payment late"
    at = datetime.now(UTC) - timedelta(days=1)
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA, max_size=2)
        conn: asyncpg.Connection | None = None
        try:
            # as the inbox stored them before encryption
            thread = await pool.fetchval(
                """
                INSERT INTO threads (tenant_id, account_id, customer_key, wa_id, user_id,
                    customer_name, last_message_at, last_preview, message_count)
                VALUES ('t1', 'acc', $1, $2, $1, 'Grace Hopper', $3, $4, 3) RETURNING id
                """,
                bsuid,
                wa,
                at,
                text,
            )
            await pool.execute(
                "INSERT INTO aliases (tenant_id, alias, customer_key) "
                "VALUES ('t1', $1, $1), ('t1', $2, $1)",
                bsuid,
                wa,
            )
            await pool.executemany(
                """
                INSERT INTO messages (tenant_id, thread_id, dedupe_key, direction, author,
                                      type, body, content, occurred_at)
                VALUES ('t1', $1, $2, 'inbound', 'customer', 'text', $3, $4::jsonb, $5)
                """,
                [
                    (thread, f"in:{i}", f"{text} {i}", f'{{"text": "{text} {i}"}}', at)
                    for i in range(3)
                ],
            )
            old = sealer()
            before = {k: sealed_total(k, "sealed") for k in ("threads", "aliases", "messages")}

            repository = Repository(pool, old)
            assert await seal_identities(repository, batch=1) == 3  # resumes batch by batch
            await seal_loop(repository, rotate=False, batch=2, pause_s=0)

            assert {k: sealed_total(k, "sealed") - v for k, v in before.items()} == {
                "threads": 1,
                "aliases": 2,
                "messages": 3,
            }
            conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
            assert await stored_in_clear(conn, [wa, bsuid, "Grace", "oldword"]) == []
            (read,) = await repository.threads("t1", account_id=None, after=None, limit=5)
            assert (read.customer_key, read.wa_id, read.user_id) == (bsuid, wa, bsuid)
            assert (read.customer_name, read.last_preview) == ("Grace Hopper", text)
            found = await repository.search("t1", "OLDWORD late", after=None, limit=10)
            assert sorted(m.body or "" for m in found) == [f"{text} {i}" for i in range(3)]
            assert found[0].content == {"text": found[0].body}
            # nothing left: a second start changes nothing (no row updated or locked)
            before_start = await row_versions(conn, SCHEMA)
            assert await seal_identities(repository, batch=10) == 0
            await seal_loop(repository, rotate=False, batch=2, pause_s=0)
            assert await row_versions(conn, SCHEMA) == before_start

            # a new key first, the old one still configured: every token re-encrypted
            new_key = SecretBox.generate_key()
            rotated_before = sealed_total("messages", "rotated")
            await seal_loop(
                Repository(pool, sealer(new_key, ENCRYPTION_KEY)), rotate=True, batch=2, pause_s=0
            )
            assert sealed_total("messages", "rotated") - rotated_before == 3
            key_id = SecretBox.from_keys(new_key).key_id
            state = await conn.fetch("SELECT name, key_id, cursor FROM sealing_state")
            assert {tuple(r) for r in state} == {
                (t, key_id, None) for t in ("threads", "aliases", "messages")
            }
            # the next start with the same keys: nothing re-encrypted again
            before_start = await row_versions(conn, SCHEMA)
            await seal_loop(
                Repository(pool, sealer(new_key, ENCRYPTION_KEY)), rotate=True, batch=2, pause_s=0
            )
            assert sealed_total("messages", "rotated") - rotated_before == 3
            assert await row_versions(conn, SCHEMA) == before_start
            only_new = Repository(pool, sealer(new_key))  # the old key removed
            (read,) = await only_new.threads("t1", account_id=None, after=None, limit=5)
            assert (read.wa_id, read.customer_name) == (wa, "Grace Hopper")
            messages = await only_new.messages("t1", read.id, after=None, limit=10)
            assert sorted(m.body or "" for m in messages) == [f"{text} {i}" for i in range(3)]
            # the same customer writing again lands in the same (now sealed) thread
            assert await only_new.threads("t1", account_id=None, after=None, limit=5, customer=wa)
        finally:
            if conn is not None:
                await conn.close()
            await pool.close()
