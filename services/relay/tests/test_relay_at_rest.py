"""Events and the delivery log encrypted at rest (issue 28), against the running relay
and real PostgreSQL: no customer id, name or message text in any column of the relay's
tables (cast to text, so jsonb and bytea too); deliveries still carry bodies that verify
with ``standardwebhooks``; the export answers a customer's events by the keyed digest
of their id; an erasure finds them by digest; rows stored in clear before migration
0004 are sealed by the background pass (the body delivered stays byte for byte the
same) and re-encrypted when the key rotates."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
import pytest
from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import REGISTRY
from relay_testkit import (
    ENCRYPTION_KEY,
    Harness,
    Receiver,
    StartRelay,
    relay_settings,
    wait_for,
)
from standardwebhooks.webhooks import Webhook

from flowchat_platform.crypto import SecretBox
from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.privacy import BlindIndex, privacy_index
from flowchat_platform.sealing import SealingState
from flowchat_platform.testing import row_versions, temporary_database
from flowchat_relay import SCHEMA
from flowchat_relay.app import MIGRATIONS, seal_loop
from flowchat_relay.repository import Repository

pytestmark = pytest.mark.integration

PHONE = "15557650042"
BSUID = f"US.{PHONE}"
NAME = "Ada"
TEXT = "my secret parcel code 7731"
PRIVACY_KEY = "relay-at-rest-privacy-key-0123456789"


async def clear_text_hits(db: Any, needles: list[str]) -> list[str]:
    """``table.column`` of every relay column (any type, cast to text) holding a needle."""
    columns = await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name NOT LIKE 'alembic%' ORDER BY 1, 2",
        SCHEMA,
    )
    hits = []
    for c in columns:
        found = await db.fetchval(
            f'SELECT count(*) FROM "{c["table_name"]}" '
            f'WHERE "{c["column_name"]}"::text LIKE ANY($1::text[])',
            [f"%{n}%" for n in needles],
        )
        if found:
            hits.append(f"{c['table_name']}.{c['column_name']}")
    return hits


async def test_stored_encrypted_delivered_exact_exported_and_erased(
    start_relay: StartRelay, database_url: str
):
    # the endpoint's answer echoes the customer: the delivery log must not keep it in clear
    receiver = Receiver(answer=f"got {PHONE} {TEXT}".encode())
    meta = Receiver()
    async with (
        start_relay(FLOWCHAT_PRIVACY_KEY=PRIVACY_KEY) as h,
        receiver.running(),
        meta.running(),
    ):
        endpoint = await h.create_endpoint(receiver.url, ["message.received", "message.status"])
        await h.create_endpoint(meta.url, ["message.received"], format="meta")
        await h.publish_inbound(text=TEXT, wa_id=PHONE)
        await h.publish_status(recipient=PHONE)
        await wait_for(lambda: len(receiver.accepted) == 2 and len(meta.accepted) == 1)
        await wait_for(lambda: _attempts_logged(h, 3))

        # delivered as before: the bodies verify and carry the customer and the text
        events = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in receiver.accepted]
        received = next(e for e in events if e["type"] == "message.received")
        assert received["data"]["customer"]["wa_id"] == PHONE
        assert received["data"]["customer"]["user_id"] == BSUID
        assert received["data"]["text"] == TEXT
        assert sorted(e["sequence"] for e in events) == [1, 2]
        assert PHONE in meta.accepted[0].body.decode()

        # nothing in clear at rest, in any table or column
        assert await clear_text_hits(h.db, [PHONE, BSUID, TEXT, f'"{NAME}"']) == []
        # the delivery log still shows the answer, decrypted
        log = await h.attempts(endpoint["id"])
        assert any(PHONE in a["response"] for a in log)

        # the export: by digest, the bodies as delivered and each endpoint's delivery
        index = BlindIndex(PRIVACY_KEY.encode())
        digest = index.digest("tnt_a", PHONE)
        r = await h.http.get(f"/v1/customers/{digest}/events", headers=h.auth())
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert sorted(i["type"] for i in items) == ["message.received", "message.status"]
        got = next(i for i in items if i["type"] == "message.received")
        assert orjson.loads(receiver.accepted[0].body) in [i["body"] for i in items]
        assert got["meta_body"]["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] == PHONE
        assert sorted(d["status"] for d in got["deliveries"]) == ["delivered", "delivered"]
        # the BSUID finds the same received message; another tenant finds nothing
        by_bsuid = await h.http.get(
            f"/v1/customers/{index.digest('tnt_a', BSUID)}/events", headers=h.auth()
        )
        assert [i["type"] for i in by_bsuid.json()["items"]] == ["message.received"]
        other = await h.http.get(
            f"/v1/customers/{index.digest('tnt_b', PHONE)}/events",
            headers=h.auth("fc_key_tenant_b_admin"),
        )
        assert other.json()["items"] == []
        # paged: one at a time, the cursor gives the second
        first = (
            await h.http.get(
                f"/v1/customers/{digest}/events", params={"limit": 1}, headers=h.auth()
            )
        ).json()
        second = await h.http.get(
            f"/v1/customers/{digest}/events",
            params={"limit": 1, "cursor": first["next_cursor"]},
            headers=h.auth(),
        )
        assert len(first["items"]) == len(second.json()["items"]) == 1
        assert first["items"][0]["id"] != second.json()["items"][0]["id"]
        # not a digest: a machine-readable 422
        bad = await h.http.get(f"/v1/customers/{PHONE}/events", headers=h.auth())
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_request"
        assert (await h.http.get(f"/v1/customers/{digest}/events")).status_code == 401

        # an erasure finds the events by digest (no body in clear to search)
        pool = await create_pool(database_url, schema=SCHEMA)
        try:
            repository = Repository(pool, SecretBox([ENCRYPTION_KEY.encode()]), index=index)
            done = await repository.erase_customer("tnt_a", [PHONE, BSUID])
        finally:
            await pool.close()
        assert done["events_deleted"] == 2
        assert done["sequences_deleted"] == 1
        assert await h.count("SELECT count(*) FROM events") == 0
        assert await h.count("SELECT count(*) FROM attempts") == 0


async def _attempts_logged(h: Harness, n: int) -> bool:
    return await h.count("SELECT count(*) FROM attempts") >= n


BODY = {
    "id": "evt_legacy",
    "type": "message.received",
    "tenant_id": "t1",
    "sequence": 4,
    "data": {"customer": {"wa_id": PHONE, "user_id": BSUID}, "text": TEXT},
}
META = {"entry": [{"changes": [{"value": {"contacts": [{"wa_id": PHONE}]}}]}]}


async def store_in_clear(pool: asyncpg.Pool, key: bytes) -> str:
    """An endpoint (its secret under ``key``), and three events with their deliveries'
    answers and a conversation counter as the relay stored them before migration 0004;
    the first event's body as stored."""
    await pool.execute(
        "INSERT INTO endpoints (id, tenant_id, url, event_types, format, secret_enc) "
        "VALUES ('ep1', 't1', 'https://example.com/hook', '{message.received}', "
        "'flowchat', $1)",
        SecretBox([key]).encrypt("whsec_x"),
    )
    for i in range(3):  # stored before migration 0004: bodies in clear
        await pool.execute(
            "INSERT INTO events (id, type, tenant_id, account_id, body, meta_body) "
            "VALUES ($1, 'message.received', 't1', 'acc', $2::jsonb, $3::jsonb)",
            f"evt_legacy{i}",
            orjson.dumps({**BODY, "id": f"evt_legacy{i}"}).decode(),
            orjson.dumps(META).decode(),
        )
        delivery = await pool.fetchval(
            "INSERT INTO deliveries (event_id, endpoint_id) VALUES ($1, 'ep1') RETURNING id",
            f"evt_legacy{i}",
        )
        await pool.execute(
            "INSERT INTO attempts (delivery_id, endpoint_id, event_id, event_type, "
            "attempt, latency_ms, response, outcome) "
            "VALUES ($1, 'ep1', $2, 'message.received', 1, 5, $3, 'retry')",
            delivery,
            f"evt_legacy{i}",
            f"echo {PHONE}",
        )
    await pool.execute("INSERT INTO conversation_sequences VALUES ('t1', 'acc', $1, 4)", PHONE)
    body: str = await pool.fetchval("SELECT body::text FROM events WHERE id = 'evt_legacy0'")
    return body


async def test_rows_stored_in_clear_are_sealed_then_rotated():
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    index = privacy_index(None, None)
    meta = META
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        try:
            old = Repository(pool, SecretBox([old_key]), index=index)
            clear_body = await store_in_clear(pool, old_key)

            # the export finds a row stored in clear only once sealed (the pass runs at start)
            assert (
                len(await old.customer_events("t1", index.digest("t1", PHONE), after=None, limit=9))
                == 0
            )

            # sealed in batches of 2: every body, meta body and answer
            sealed = 0
            after = ""
            while True:
                n, last = await old.seal_events(after, 2, rotate=False)
                sealed += n
                if last is None:
                    break
                after = last
            assert sealed == 3
            assert (await old.seal_attempts("", 10, rotate=False))[0] == 3
            assert await old.seal_sequences() == 1
            assert await old.seal_sequences() == 0  # idempotent
            async with pool.acquire() as conn:
                assert await clear_text_hits(conn, [PHONE, BSUID, TEXT]) == []
            # the customers' digests were set from the body: the export finds them now
            found = await old.customer_events("t1", index.digest("t1", BSUID), after=None, limit=9)
            assert [e.id for e in found] == ["evt_legacy0", "evt_legacy1", "evt_legacy2"]
            assert found[0].body == orjson.loads(clear_body)
            # the body leased for delivery is byte for byte the one stored in clear before
            leased = await old.lease("ep1", 10, 30)
            assert {c.event_id: c.body for c in leased}["evt_legacy0"] == clear_body.encode()
            # the sequence goes on where it was
            assert (
                await pool.fetchval(
                    "SELECT sequence FROM conversation_sequences WHERE conversation = $1",
                    index.digest("t1", PHONE),
                )
                == 4
            )

            # rotation: new key first, old still configured; afterwards the old key alone
            # opens nothing, the new one alone opens everything
            rotating = Repository(pool, SecretBox([new_key, old_key]), index=index)
            for step in (rotating.seal_events, rotating.seal_attempts, rotating.seal_endpoints):
                n, last = await step("", 100, rotate=True)
                assert last is None
                assert n >= 1
            newest = SecretBox([new_key])
            token = await pool.fetchval("SELECT body_enc FROM events WHERE id = 'evt_legacy0'")
            assert newest.decrypt_bytes(token) == clear_body.encode()
            with pytest.raises(InvalidToken):
                SecretBox([old_key]).decrypt_bytes(token)
            meta_token = await pool.fetchval(
                "SELECT meta_body_enc FROM events WHERE id = 'evt_legacy0'"
            )
            assert orjson.loads(newest.decrypt_bytes(meta_token)) == meta
            response = await pool.fetchval("SELECT response_enc FROM attempts LIMIT 1")
            assert newest.decrypt(response) == f"echo {PHONE}"
            secret = await pool.fetchval("SELECT secret_enc FROM endpoints")
            assert newest.decrypt(secret) == "whsec_x"

            # erasure by digest after sealing
            done = await Repository(pool, newest, index=index).erase_customer("t1", [PHONE])
            assert done["events_deleted"] == 3
        finally:
            await pool.close()


async def test_erasure_finds_rows_not_sealed_yet():
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool: asyncpg.Pool = await create_pool(dsn, schema=SCHEMA)
        try:
            await pool.execute(
                "INSERT INTO events (id, type, tenant_id, account_id, body) "
                "VALUES ('e1', 'message.status', 't1', 'acc', $1::jsonb)",
                orjson.dumps({"data": {"recipient": f"+{PHONE}"}}).decode(),
            )
            repository = Repository(pool, SecretBox([Fernet.generate_key()]))
            assert (await repository.erase_customer("t1", [PHONE]))["events_deleted"] == 1
        finally:
            await pool.close()


def rotated_total() -> float:
    return sum(
        REGISTRY.get_sample_value("flowchat_relay_sealed_total", {"table": t, "action": "rotated"})
        or 0.0
        for t in ("events", "attempts", "endpoints")
    )


async def test_a_start_with_nothing_to_do_writes_nothing_and_a_rotation_runs_once():
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    index = privacy_index(None, None)
    async with temporary_database() as dsn:
        await migrate_with_retry(dsn, MIGRATIONS, SCHEMA)
        pool = await create_pool(dsn, schema=SCHEMA)
        state = SealingState(pool)

        async def start(*keys: bytes) -> None:
            """What the relay does to its rows at start (the pass run to its end)."""
            box = SecretBox(list(keys))
            settings = relay_settings(
                "amqp://127.0.0.1/",
                dsn,
                "http://127.0.0.1:1",
                "redis://127.0.0.1/0",
                encryption_keys=",".join(k.decode() for k in keys),
                seal_batch_size=2,
                seal_pause_s=0,
            )
            repository = Repository(pool, box, index=index)
            await repository.seal_sequences()
            await seal_loop(repository, settings, state)

        try:
            await store_in_clear(pool, old_key)
            await start(old_key)
            async with pool.acquire() as conn:
                assert await clear_text_hits(conn, [PHONE, BSUID, TEXT]) == []
                before = await row_versions(conn, SCHEMA)
                await start(old_key)  # nothing left: no row updated, deleted or locked
                assert await row_versions(conn, SCHEMA) == before

                counted = rotated_total()
                await start(new_key, old_key)  # every token re-encrypted, once
                assert rotated_total() - counted == 7  # 3 events, 3 answers, 1 endpoint
                done = await conn.fetch("SELECT name, key_id, cursor FROM sealing_state")
                key_id = SecretBox([new_key]).key_id
                assert {tuple(r) for r in done} == {
                    (t, key_id, None) for t in ("events", "attempts", "endpoints")
                }
                before = await row_versions(conn, SCHEMA)
                await start(new_key, old_key)  # the next start: nothing to do
                assert rotated_total() - counted == 7
                assert await row_versions(conn, SCHEMA) == before

            newest = SecretBox([new_key])
            for token in await pool.fetch("SELECT body_enc AS t FROM events"):
                assert orjson.loads(newest.decrypt_bytes(token["t"]))["tenant_id"] == "t1"
            assert newest.decrypt(await pool.fetchval("SELECT secret_enc FROM endpoints"))
        finally:
            await pool.close()
