"""The per-message cost of encrypting customers' ids at rest (issue 28): the
state-manager's write path (send results into ``messages``) with its recipients sealed
(``flowchat_platform.privacy.IdentitySealer``: an HMAC-SHA256 digest in the id column and a
Fernet token beside it) against the same path storing them in clear, on the same fresh
PostgreSQL database, rounds alternated; and the CPU cost of sealing and opening one id.

Measured at the repository (``StateService.apply_batch`` in batches of 100, as the
service's batcher writes them), not through the broker: what encryption adds, not what
a whole hop costs (``state_manager`` measures that).

The inbox the same way (``inbox``): its ingest (``Repository.apply``, batches of 100
inbound messages with a name and 7 words of text) with customers' ids, names and text
sealed (``flowchat_inbox.sealing``: digests, Fernet tokens, blind word tokens) against
the same statements with every value stored as it is (ids in clear, the text as its
bytes, unkeyed word hashes in the same GIN index): what the cryptography costs.

``conversation``: the conversation service's per-message path through its repository
(the conversation's lock, the customer resolved from its ids, the contact touched with
the profile name, the dedupe row), customers sealed (digests as keys and aliases, ids
and names as Fernet tokens; :mod:`flowchat_conversation.sealing`) against the same
statements storing the ids and names as they are.
"""

from __future__ import annotations

import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson

from bench import stats
from bench.common import load, say
from flowchat_contracts import CustomerIdentity, SendResult
from flowchat_conversation.app import MIGRATIONS as CONVERSATION_MIGRATIONS
from flowchat_conversation.commerce.domain import ConversationKey
from flowchat_conversation.commerce.repository import Repository as ConversationRepository
from flowchat_conversation.sealing import Identities
from flowchat_inbox import SCHEMA as INBOX_SCHEMA
from flowchat_inbox.app import MIGRATIONS as INBOX_MIGRATIONS
from flowchat_inbox.ports import Entry
from flowchat_inbox.repository import Repository as InboxRepository
from flowchat_inbox.sealing import InboxSealer
from flowchat_platform.crypto import SecretBox
from flowchat_platform.db import create_pool, migrate
from flowchat_platform.privacy import BlindIndex, IdentitySealer, normalise_id, search_words
from flowchat_platform.testing import temporary_database
from flowchat_state_manager import SCHEMA
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService

BATCH = 100


def _results(n: int, tag: str) -> list[SendResult]:
    return [
        SendResult(
            tenant_id="tnt_bench",
            account_id="acc_1",
            message_id=f"m{tag}{i}-{uuid.uuid4().hex[:8]}",
            idempotency_key=f"k{tag}{i}",
            to=f"23480{i:08d}",
            message_type="text",
            status="accepted",
            provider="meta",
            provider_message_id=f"wamid.{uuid.uuid4().hex}",
        )
        for i in range(n)
    ]


async def _write(service: StateService, results: list[SendResult]) -> float:
    """Seconds of CPU+I/O per message for the whole list, in batches."""
    started = time.perf_counter()
    for i in range(0, len(results), BATCH):
        await service.apply_batch(results[i : i + BATCH])
    return (time.perf_counter() - started) / len(results)


def _cpu_per_id(sealer: IdentitySealer, n: int) -> dict[str, float]:
    ids = [f"23480{i:08d}" for i in range(n)]
    t0 = time.perf_counter()
    tokens = [sealer.seal("tnt_bench", i)[1] for i in ids]
    t1 = time.perf_counter()
    for token in tokens:
        sealer.open(token, None)
    t2 = time.perf_counter()
    return {"seal_us": round((t1 - t0) / n * 1e6, 1), "open_us": round((t2 - t1) / n * 1e6, 1)}


def _compared(
    plain_us: list[float], sealed_us: list[float], messages: int, rounds: int
) -> dict[str, Any]:
    """One path's rounds in clear and sealed: medians, what sealing adds, the ratio."""
    p, s = stats.median(plain_us), stats.median(sealed_us)
    return {
        "messages_per_run": messages,
        "rounds": rounds,
        "plain_us_per_message": round(p, 1),
        "sealed_us_per_message": round(s, 1),
        "added_us_per_message": round(s - p, 1),
        "ratio": stats.ratio(s, p),
    }


class _InboxInClear(InboxSealer):
    """The inbox's write path with nothing encrypted: the values as they are."""

    def digest(self, tenant_id: str, customer_id: str) -> str:
        return customer_id

    def seal_id(self, tenant_id: str, customer_id: str | None) -> tuple[str | None, bytes | None]:
        return customer_id, (customer_id.encode() if customer_id is not None else None)

    def encrypt(self, text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    def seal_message(self, body: str | None, content: dict[str, Any]) -> bytes:
        return orjson.dumps([body, content])

    def search_tokens(self, tenant_id: str, text: str | None) -> list[int]:
        return [zlib.crc32(w.encode()) for w in search_words(text)]


def _inbound(n: int, tag: str) -> list[Entry]:
    """``n`` inbound messages of 100 customers (so threads are found again, as in traffic)."""
    now = datetime.now(UTC)
    return [
        Entry(
            tenant_id="tnt_bench",
            account_id="acc_1",
            customer=CustomerIdentity(wa_id=f"23480{i % 100:08d}", user_id=f"NG.{i % 100:012d}"),
            dedupe_key=f"in:meta:{tag}{i}",
            direction="inbound",
            author="customer",
            type="text",
            body=f"hello my order ord{i:06d} is late where is it",
            content={"text": f"hello my order ord{i:06d} is late where is it"},
            occurred_at=now,
            provider_message_id=f"wamid.{tag}{i}",
            customer_name=f"Customer {i % 100}",
            links_ids=True,
        )
        for i in range(n)
    ]


async def _ingest(repository: InboxRepository, entries: list[Entry]) -> float:
    started = time.perf_counter()
    for i in range(0, len(entries), BATCH):
        await repository.apply(entries[i : i + BATCH])
    return (time.perf_counter() - started) / len(entries)


async def inbox_cost(sealer: IdentitySealer, messages: int, rounds: int) -> dict[str, Any]:
    """The inbox's ingest sealed against in clear, µs per message (rounds alternated)."""
    sealed = InboxSealer(sealer)
    plain_us: list[float] = []
    sealed_us: list[float] = []
    async with temporary_database() as database_url:
        await migrate(database_url, INBOX_MIGRATIONS, schema=INBOX_SCHEMA)
        pool = await create_pool(database_url, schema=INBOX_SCHEMA, max_size=4)
        try:
            plain = InboxRepository(pool, _InboxInClear(sealer))
            encrypted = InboxRepository(pool, sealed)
            await _ingest(plain, _inbound(200, "warm"))
            for r in range(rounds):
                plain_us.append(await _ingest(plain, _inbound(messages, f"p{r}-")) * 1e6)
                sealed_us.append(await _ingest(encrypted, _inbound(messages, f"s{r}-")) * 1e6)
                say(
                    f"privacy (inbox) round {r + 1}/{rounds}: {plain_us[-1]:.0f} µs/message "
                    f"in clear, {sealed_us[-1]:.0f} µs/message sealed"
                )
        finally:
            await pool.close()
    sample = _inbound(1000, "cpu")
    t0 = time.perf_counter()
    for e in sample:
        sealed.seal_message(e.body, e.content)
        sealed.search_tokens(e.tenant_id, e.body)
    cpu = (time.perf_counter() - t0) / len(sample) * 1e6
    return {
        **_compared(plain_us, sealed_us, messages, rounds),
        "seal_message_cpu_us": round(cpu, 1),
    }


async def encryption_cost(quick: bool) -> dict[str, Any]:
    messages = 1000 if quick else 5000
    rounds = 1 if quick else 3
    sealer = IdentitySealer(SecretBox([SecretBox.generate_key().encode()]), BlindIndex(b"b" * 32))
    plain_us: list[float] = []
    sealed_us: list[float] = []
    async with temporary_database() as database_url:
        await migrate(database_url, MIGRATIONS, schema=SCHEMA)
        pool = await create_pool(database_url, schema=SCHEMA, max_size=4)
        try:
            plain = StateService(Repository(pool))
            sealed = StateService(Repository(pool, sealer))
            await _write(plain, _results(200, "warm"))  # connections, plans
            for r in range(rounds):
                plain_us.append(await _write(plain, _results(messages, f"p{r}")) * 1e6)
                sealed_us.append(await _write(sealed, _results(messages, f"s{r}")) * 1e6)
                say(
                    f"privacy round {r + 1}/{rounds}: {plain_us[-1]:.0f} µs/message plain, "
                    f"{sealed_us[-1]:.0f} µs/message sealed"
                )
        finally:
            await pool.close()
    return {
        **_compared(plain_us, sealed_us, messages, rounds),
        "cpu_per_id": _cpu_per_id(sealer, 5000),
        "inbox": await inbox_cost(sealer, messages, rounds),
        "conversation": await conversation_cost(quick, sealer),
        "load_avg": load(),
    }


class _ConversationInClear(Identities):
    """The conversation repositories' statements with ids and names stored as they are
    (the baseline: what they stored before encryption)."""

    def __init__(self, sealer: IdentitySealer) -> None:
        super().__init__(sealer)
        self.legacy = False

    def key(self, tenant_id: str, customer_id: str) -> str:
        return normalise_id(customer_id)

    def encrypt(self, value: str | None) -> bytes | None:
        return None


async def _turns(repo: ConversationRepository, ids: Identities, tag: str, n: int) -> float:
    """Seconds per message: ``n`` messages from n/5 customers (5 each, in turn);
    ``tag`` (digits) keeps each run's customers apart."""
    customers = [f"23481{tag}{i:06d}" for i in range(max(1, n // 5))]
    started = time.perf_counter()
    for m in range(n):
        phone = customers[m % len(customers)]
        identity = CustomerIdentity(wa_id=phone)
        locked = ConversationKey("tnt_bench", "acc_1", ids.key("tnt_bench", identity.key))
        async with repo.conversation(locked) as tx:
            await tx.mark_handled("tnt_bench", f"wamid.{tag}{m}", str(locked))
            customer = await tx.resolve_customer(locked, identity)
            key = ConversationKey("tnt_bench", "acc_1", customer.key)
            await tx.touch_contact(key, f"Customer {phone[-4:]}")
    return (time.perf_counter() - started) / n


async def conversation_cost(quick: bool, sealer: IdentitySealer) -> dict[str, Any]:
    messages = 500 if quick else 2500
    rounds = 1 if quick else 3
    sealed_ids = Identities(sealer)
    sealed_ids.legacy = False  # after the background pass: nothing left in clear
    plain_us: list[float] = []
    sealed_us: list[float] = []
    async with temporary_database() as database_url:
        await migrate(database_url, CONVERSATION_MIGRATIONS, schema="conversation")
        pool = await create_pool(database_url, schema="conversation", max_size=4)
        try:
            clear_ids = _ConversationInClear(sealer)
            plain = ConversationRepository(pool, clear_ids)
            sealed = ConversationRepository(pool, sealed_ids)
            await _turns(plain, clear_ids, "90", 100)  # connections, plans
            for r in range(rounds):
                plain_us.append(await _turns(plain, clear_ids, f"1{r}", messages) * 1e6)
                sealed_us.append(await _turns(sealed, sealed_ids, f"2{r}", messages) * 1e6)
                say(
                    f"privacy (conversation) round {r + 1}/{rounds}: {plain_us[-1]:.0f} "
                    f"µs/message plain, {sealed_us[-1]:.0f} µs/message sealed"
                )
        finally:
            await pool.close()
    return {
        **_compared(plain_us, sealed_us, messages, rounds),
    }
