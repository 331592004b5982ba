"""What a customer's message costs the database (real PostgreSQL and Redis): the round
trips of a turn, counted, and the catalog built into products once per change."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from flowchat_contracts import CustomerIdentity, InboundMessage, OutboundCommand
from flowchat_conversation.commerce.domain import BotSettings, ConversationKey, Product
from flowchat_conversation.commerce.redis_sessions import RedisSessionStore
from flowchat_conversation.commerce.repository import Catalogs, Repository
from flowchat_conversation.commerce.service import ConversationService
from flowchat_conversation.sealing import identities
from flowchat_platform.db import migrate
from flowchat_platform.redis import create_redis

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "flowchat_conversation" / "migrations"
TOKEN = SecretStr("conversation-turn-cost-token-0123456")
#: How the service stores ids (the digests; tokens under keys derived from the token).
IDS = identities(None, None, TOKEN)
PHONE, BSUID = "2348100000777", "US.10000000000000000777"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[OutboundCommand] = []

    async def send(self, command: OutboundCommand) -> None:
        self.sent.append(command)

    async def publish_event(self, event: Any) -> None:
        raise AssertionError(f"no event expected: {event!r}")


class Statements:
    """Every statement the pool's connections send (asyncpg's query logger)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        self.sent.append(" ".join(record.query.split()))

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


def product(sku: str, price: str = "9.50") -> Product:
    return Product(
        sku=sku,
        name=f"Product {sku}",
        price=Decimal(price),
        currency="USD",
        category="Tools",
        stock=5,
    )


@pytest.fixture
async def turn(database_url, redis_url):
    await migrate(database_url, MIGRATIONS, schema="conversation")
    statements = Statements()

    async def init(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(statements)

    async def keep_session(_: asyncpg.Connection) -> None:
        """No reset query at release, as the service's pool (``reset=False``)."""

    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=2,
        server_settings={"search_path": "conversation"},
        init=init,
        reset=keep_session,
    )
    redis = create_redis(redis_url)
    ids = identities(None, None, TOKEN)
    ids.legacy = False  # as once the background pass found nobody stored in clear
    try:
        repository = Repository(pool, ids)
        await repository.put_settings("t1", BotSettings(business_name="Turn Hardware"))
        await repository.upsert_products("t1", [product("A-1"), product("B-2")])
        outbox = Outbox()
        service = ConversationService(
            repository,
            RedisSessionStore(redis, ttl_s=600, cart_ttl_s=3600),
            outbox,
            key_of=ids.key,
        )
        # a first turn: each connection learns the types it decodes once (asyncpg)
        first = hi("wamid.0", CustomerIdentity(wa_id="2348100000001"))
        assert await service.handle_inbound(first) == "handled"
        outbox.sent.clear()
        statements.take()
        yield service, statements, outbox, pool
    finally:
        await redis.aclose()
        await pool.close()


def hi(message_id: str, customer: CustomerIdentity) -> InboundMessage:
    return InboundMessage(
        tenant_id="t1",
        account_id="a1",
        provider="meta",
        provider_message_id=message_id,
        phone_number_id="pn1",
        customer_wa_id=PHONE,
        customer=customer,
        customer_name="Ada",
        type="text",
        text="Hi",
        timestamp=datetime.now(UTC),
    )


async def test_a_greeting_is_four_round_trips_and_a_redelivery_three(turn):
    service, statements, outbox, pool = turn
    assert await service.handle_inbound(hi("wamid.1", CustomerIdentity(wa_id=PHONE))) == "handled"
    sent = statements.take()
    # BEGIN, the lock with the dedupe row, the arrival (customer, contact, shop), COMMIT
    assert len(sent) == 4, "\n".join(sent)
    assert sent[0].startswith("BEGIN")
    assert sent[-1].startswith("COMMIT")
    assert "pg_advisory_xact_lock" in sent[1]
    assert "handled_messages" in sent[1]
    assert len(outbox.sent) == 1  # the greeting, with the categories
    async with pool.acquire() as conn:
        contact = await conn.fetchrow(
            "SELECT name, name_enc FROM conversation.contacts WHERE tenant_id = 't1' "
            "AND customer_wa_id = $1",
            IDS.key("t1", PHONE),
        )
    assert contact is not None
    assert contact["name"] is None
    assert IDS.open(contact["name_enc"]) == "Ada"
    statements.take()  # the test's own

    assert await service.handle_inbound(hi("wamid.1", CustomerIdentity(wa_id=PHONE))) == "duplicate"
    assert len(statements.take()) == 3  # BEGIN, the lock finding the dedupe row, COMMIT
    assert len(outbox.sent) == 1


async def test_a_customer_known_under_another_key_is_locked_and_touched_under_it(turn):
    service, statements, outbox, pool = turn
    assert await service.handle_inbound(hi("wamid.1", CustomerIdentity(wa_id=PHONE))) == "handled"
    statements.take()
    # the BSUID arrives with the phone the customer is known by: keyed by the phone
    both = CustomerIdentity(wa_id=PHONE, user_id=BSUID)
    assert await service.handle_inbound(hi("wamid.2", both)) == "handled"
    sent = statements.take()
    phone_lock = [s for s in sent if s.startswith("SELECT pg_advisory_xact_lock")]
    assert len(phone_lock) == 1  # the phone's conversation locked too, then its contact
    assert any(s.startswith("WITH c AS ( INSERT INTO contacts") for s in sent)
    async with pool.acquire() as conn:
        keys = await conn.fetch(
            "SELECT customer_wa_id FROM conversation.contacts WHERE tenant_id = 't1'"
        )
    assert IDS.key("t1", PHONE) in [r["customer_wa_id"] for r in keys]
    assert IDS.key("t1", BSUID) not in [r["customer_wa_id"] for r in keys]
    assert len(outbox.sent) == 2


async def test_an_operator_holding_the_conversation_keeps_the_bot_quiet(turn):
    service, _, outbox, pool = turn
    key = ConversationKey("t1", "a1", IDS.key("t1", PHONE))
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO conversation.handoffs (tenant_id, account_id, customer_wa_id) "
            "VALUES ($1, $2, $3)",
            key.tenant_id,
            key.account_id,
            key.customer_wa_id,
        )
    assert await service.handle_inbound(hi("wamid.1", CustomerIdentity(wa_id=PHONE))) == "handled"
    assert outbox.sent == []


async def test_the_catalog_is_built_once_until_a_row_changes(turn):
    service, *_ = turn
    repository = service.store
    key = ConversationKey("t1", "a1", IDS.key("t1", PHONE))
    identity = CustomerIdentity(wa_id=PHONE)
    async with repository.conversation(key) as tx:
        first = await tx.arrive(key, identity, None)
    async with repository.conversation(key) as tx:
        again = await tx.arrive(key, identity, None)
    assert [p.sku for p in first.catalog] == ["A-1", "B-2"]
    assert all(a is b for a, b in zip(first.catalog, again.catalog, strict=True))
    assert first.settings is again.settings
    await repository.upsert_products("t1", [product("A-1", "7.25")])
    async with repository.conversation(key) as tx:
        changed = await tx.arrive(key, identity, None)
    assert [p.price for p in changed.catalog] == [Decimal("7.2500"), Decimal("9.5000")]
    assert changed.catalog[1] is not first.catalog[1]  # built again, all of it


def test_catalogs_keep_the_newest_tenants_only():
    catalogs = Catalogs(tenants=2)
    row = ("A-1", "Product", "", Decimal("1.00"), "USD", "Tools", 1, True, None, None, None)
    a = catalogs.products("t1", [row])
    catalogs.products("t2", [row])
    assert catalogs.products("t1", [row])[0] is a[0]
    catalogs.products("t3", [row])  # t2 was the oldest: gone
    assert catalogs.products("t1", [row])[0] is a[0]
    assert catalogs.products("t2", [row])[0] is not a[0]
    mine = catalogs.products("t1", [row])
    mine.clear()  # a caller's list is its own
    assert catalogs.products("t1", [row])[0] is a[0]
