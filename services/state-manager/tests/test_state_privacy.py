"""Recipients encrypted at rest (issue 28): the id columns hold keyed digests and the ids
Fernet tokens; lookups by either id keep working; rows stored in clear before are sealed
in the background, tokens re-encrypted when the key rotates; an erasure leaves a
pseudonym and no id."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from pydantic import SecretStr

from flowchat_contracts import CustomerIdentity
from flowchat_platform.crypto import SecretBox
from flowchat_platform.privacy import BlindIndex, IdentitySealer, identity_box
from flowchat_state_manager.models import MessageFilter, StatusReaders
from flowchat_state_manager.privacy import seal_loop
from flowchat_state_manager.query_service import QueryService
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

PHONE = "15551239876"
BSUID = "US.13491208655302749876"
INDEX = BlindIndex(b"i" * 32)
OLD_KEY, NEW_KEY = SecretBox.generate_key(), SecretBox.generate_key()


def sealer(keys: str = OLD_KEY) -> IdentitySealer:
    return IdentitySealer(SecretBox.from_keys(keys), INDEX)


async def found(repository: Repository, recipient: str) -> list[str]:
    page = await QueryService(repository).list_messages(
        "tnt_a", MessageFilter(recipient=recipient), cursor=None, limit=10
    )
    return [m.id for m in page.items]


async def raw_text(pool: asyncpg.Pool, message_id: str) -> str:
    """The row as PostgreSQL renders it (bytea as hex): what a reader of the table sees."""
    return str(await pool.fetchval("SELECT m::text FROM messages m WHERE id = $1", message_id))


async def test_ids_are_stored_sealed_and_found_by_either(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    repository = Repository(state_pool, sealer())
    service = StateService(repository)
    mid, wamid = build.new_ids()
    await service.record_send_result(build.send_result(mid, wamid, to="+" + PHONE))
    update = build.status_update(wamid, "sent").model_copy(
        update={"customer": CustomerIdentity(wa_id=PHONE, user_id=BSUID)}
    )
    await service.apply_batch([update])

    text = await raw_text(state_pool, mid)
    assert PHONE not in text
    assert BSUID not in text
    row = await state_pool.fetchrow(
        "SELECT recipient, recipient_alias FROM messages WHERE id = $1", mid
    )
    assert row is not None
    assert row["recipient"] == INDEX.digest("tnt_a", PHONE)
    assert row["recipient_alias"] == INDEX.digest("tnt_a", BSUID)
    record = await repository.get("tnt_a", mid)
    assert record is not None
    assert (record.recipient, record.recipient_alias) == (PHONE, BSUID)
    for typed in ("+" + PHONE, PHONE, BSUID):
        assert await found(repository, typed) == [mid], typed


async def test_clear_rows_are_sealed_then_rotated_to_a_new_key(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    mid, wamid = build.new_ids()
    await StateService(Repository(state_pool)).record_send_result(
        build.send_result(mid, wamid, to=PHONE)
    )
    assert PHONE in await raw_text(state_pool, mid)  # stored before encryption
    old = Repository(state_pool, sealer())
    assert await found(old, PHONE) == [mid]  # read in clear until sealed

    sealed = 0
    after: str | None = ""
    while after is not None:
        n, after = await old.seal_batch(after, 2, rotate=False)
        sealed += n
    assert sealed >= 1
    assert PHONE not in await raw_text(state_pool, mid)
    assert await found(old, PHONE) == [mid]

    rotating = Repository(state_pool, sealer(f"{NEW_KEY},{OLD_KEY}"))
    after = ""
    while after is not None:
        _, after = await rotating.seal_batch(after, 100, rotate=True)
    new_only = Repository(state_pool, sealer(NEW_KEY))
    record = await new_only.get("tnt_a", mid)
    assert record is not None
    assert record.recipient == PHONE


async def unsealed_plan(pool: asyncpg.Pool) -> str:
    """The plan of the sealing pass's batch query (rows still in clear) as text (the
    conditions stay as a filter: a locking query rechecks them)."""
    from flowchat_state_manager.repository import _UNSEALED

    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        try:
            rows = await conn.fetch(
                "EXPLAIN SELECT id FROM messages WHERE id > '' AND "
                f"({_UNSEALED}) ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED"
            )
        finally:
            await conn.execute("RESET enable_seqscan")
    return "\n".join(r[0] for r in rows)


async def test_a_start_with_nothing_to_seal_probes_the_index_of_clear_rows(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    """Sealing walks only the rows in clear (the partial index ``messages_unsealed``): a
    sealed row, a pseudonymised one and a clear one stored; the pass sees the clear one
    alone, and then none."""
    repository = Repository(state_pool, sealer())
    service = StateService(repository)
    clear_id, wamid = build.new_ids()
    await StateService(Repository(state_pool)).record_send_result(
        build.send_result(clear_id, wamid, to=PHONE)
    )
    sealed_id, wamid = build.new_ids()
    await service.record_send_result(build.send_result(sealed_id, wamid, to=PHONE))
    erased_id, wamid = build.new_ids()
    await service.record_send_result(build.send_result(erased_id, wamid, to="15550000002"))
    await repository.erase_recipient("tnt_a", ["15550000002"], "erased:abc")

    plan = await unsealed_plan(state_pool)
    used = set(re.findall(r"Index Scan using (\S+)", plan))
    partial = {
        r[0]
        for r in await state_pool.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'messages_unsealed'::regclass"
        )
    }
    assert used, plan
    assert used <= partial, plan
    assert await repository.seal_batch("", 500, rotate=False) == (1, None)
    assert PHONE not in await raw_text(state_pool, clear_id)
    assert await repository.seal_batch("", 500, rotate=False) == (0, None)
    in_index = await state_pool.fetchval(
        "SELECT count(*) FROM messages WHERE id = ANY($1::text[]) AND recipient_enc IS NULL "
        "AND recipient !~ '^([0-9a-f]{64}$|erased:)'",
        [clear_id, sealed_id, erased_id],
    )
    assert in_index == 0


async def test_a_rotation_runs_once_per_newest_key(state_pool: asyncpg.Pool, build: Any) -> None:
    """The rotation pass is recorded under the newest key's fingerprint: a start with the
    same keys re-encrypts nothing; a newer key rotates again."""
    mid, wamid = build.new_ids()
    await StateService(Repository(state_pool, sealer())).record_send_result(
        build.send_result(mid, wamid, to=PHONE)
    )

    async def token() -> bytes:
        return bytes(
            await state_pool.fetchval("SELECT recipient_enc FROM messages WHERE id = $1", mid)
        )

    async def start(keys: str) -> None:
        await seal_loop(
            Repository(state_pool, sealer(keys)), rotate=keys.count(",") > 0, batch=50, pause_s=0
        )

    before = await token()
    await start(f"{NEW_KEY},{OLD_KEY}")
    rotated = await token()
    assert rotated != before
    assert await Repository(state_pool, sealer(f"{NEW_KEY},{OLD_KEY}")).rotation_recorded()
    await start(f"{NEW_KEY},{OLD_KEY}")
    assert await token() == rotated  # nothing walked again
    newest = SecretBox.generate_key()
    await start(f"{newest},{NEW_KEY},{OLD_KEY}")
    assert await token() != rotated
    record = await Repository(state_pool, sealer(newest)).get("tnt_a", mid)
    assert record is not None
    assert record.recipient == PHONE


async def test_an_erasure_leaves_a_pseudonym_and_no_id(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    repository = Repository(state_pool, sealer())
    mid, wamid = build.new_ids()
    service = StateService(repository)
    await service.record_send_result(build.send_result(mid, wamid, to=PHONE))
    assert len(service.written) == 1  # the message as written, its ids with it
    done = await repository.erase_recipient("tnt_a", [PHONE], "erased:abc")
    assert done["messages_pseudonymised"] == 1
    row = await state_pool.fetchrow("SELECT * FROM messages WHERE id = $1", mid)
    assert row is not None
    assert row["recipient"] == "erased:abc"
    assert row["recipient_enc"] is None
    assert await found(repository, PHONE) == []
    # a status after it: the kept row is outdated (nothing written at it), read again
    assert (await service.record_status(build.status_update(wamid, "sent"))).events == 1
    bodies = await state_pool.fetch(
        "SELECT convert_from(body, 'UTF8')::json->>'recipient' AS recipient FROM outbox "
        "WHERE convert_from(body, 'UTF8')::json->>'message_id' = $1 ORDER BY id",
        mid,
    )
    assert bodies[0]["recipient"] == PHONE  # accepted, before the erasure
    assert len(bodies) == 2
    assert bodies[1]["recipient"] != PHONE  # sent


def test_without_keys_of_its_own_the_box_is_derived_from_the_token() -> None:
    token = SecretStr("s" * 32)
    a = identity_box(None, token, "X")
    b = identity_box(None, token, "X")
    assert b.decrypt(a.encrypt(PHONE)) == PHONE


class _CountingSealer(IdentitySealer):
    """Counts the ids it opens (decrypts or reads back)."""

    def __init__(self) -> None:
        super().__init__(SecretBox.from_keys(OLD_KEY), INDEX)
        self.opened = 0

    def open(self, token: bytes | None, stored: str | None) -> str | None:
        self.opened += 1
        return super().open(token, stored)


class _Nobody:
    """An audience that reads no status of a bot reply (no relay endpoint, no inbox)."""

    async def readers(self, tenant_ids: Any) -> StatusReaders:
        return StatusReaders(every=False)


async def test_ids_are_opened_only_when_an_event_is_built(
    state_pool: asyncpg.Pool, build: Any
) -> None:
    counting = _CountingSealer()
    repository = Repository(state_pool, counting)
    quiet = StateService(repository, audience=_Nobody())
    mid, wamid = build.new_ids()
    await quiet.record_send_result(build.send_result(mid, wamid, to="+" + PHONE))
    counting.opened = 0
    # statuses nobody reads: recorded, the ids never decrypted
    for status in ("sent", "delivered"):
        handled = await quiet.record_status(build.status_update(wamid, status))
        assert handled.outcomes == [(status, "applied")]
        assert handled.events == 0
    assert counting.opened == 0
    # a status that names the customer's other id: the recipient is read to compare
    named = build.status_update(wamid, "read").model_copy(
        update={"customer": CustomerIdentity(wa_id=PHONE, user_id=BSUID)}
    )
    assert (await quiet.record_status(named)).outcomes == [("read", "applied")]
    assert counting.opened == 2
    record = await repository.get("tnt_a", mid)
    assert record is not None
    assert (record.recipient, record.recipient_alias) == (PHONE, BSUID)
    # an event built (every status read): it carries the recipient in clear
    loud = StateService(repository)
    mid2, wamid2 = build.new_ids()
    counting.opened = 0
    await loud.record_send_result(build.send_result(mid2, wamid2, to="+" + PHONE))
    assert counting.opened == 2  # for the send result's event
    assert (await loud.record_status(build.status_update(wamid2, "sent"))).events == 1
    assert counting.opened == 2  # the message as written is kept (``Written``): opened once
    loud.written.clear()  # as an erasure does
    assert (await loud.record_status(build.status_update(wamid2, "delivered"))).events == 1
    assert counting.opened == 4  # read again: opened again
    bodies = await state_pool.fetch(
        "SELECT convert_from(body, 'UTF8')::json->>'recipient' AS recipient FROM outbox "
        "WHERE convert_from(body, 'UTF8')::json->>'message_id' = $1 "
        "AND convert_from(body, 'UTF8')::json->>'status' = 'sent'",
        mid2,
    )
    assert [b["recipient"] for b in bodies] == [PHONE]
