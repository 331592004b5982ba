"""Customers' data encrypted at rest in every service (issue 28): real traffic through
the whole stack — a customer of the demo shop with history, an order with its invoice,
a campaign message and a message with text of their own, delivered by the relay to the
tenant's webhook endpoint (which echoes what it got) — then every column of every table
of every service's schema is read directly, whatever its type (jsonb, arrays and other
types cast to text; bytea read as escaped bytes, so text stored unencrypted in a bytea
column is found too), for the customer's phone number, BSUID, name and message text.

Nothing may be found in clear. The schemas are checked one at a time in a fixed order
(relay and state-manager first), each failure naming the ``schema.table.column`` that
holds what.
"""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request, Response

from flowchat_platform.testing import eventually, serve
from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import Shop, open_shop
from test_e2e_privacy import SYSTEM_SCHEMAS, customer_with_an_order, export, run_campaign

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

#: Checked first, in this order; then every other schema, sorted.
FIRST_SCHEMAS = ("relay", "state_manager")


async def clear_columns(database_url: str, needles: list[str]) -> dict[str, list[str]]:
    """Per schema, ``table.column: needle`` for every column with a row holding a needle
    in clear (case-insensitive)."""
    found: dict[str, list[str]] = {}
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            """
            SELECT c.table_schema, c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE t.table_type = 'BASE TABLE' AND c.table_schema <> ALL($1::text[])
              AND c.table_schema NOT LIKE 'pg_%' AND c.table_name <> 'alembic_version'
            ORDER BY 1, 2, 3
            """,
            list(SYSTEM_SCHEMAS),
        )
        patterns = [f"%{n}%" for n in needles]
        for c in columns:
            column = f'"{c["column_name"]}"'
            text = f"encode({column}, 'escape')" if c["data_type"] == "bytea" else f"{column}::text"
            table = f'"{c["table_schema"]}"."{c["table_name"]}"'
            rows = await conn.fetch(
                f"SELECT DISTINCT p FROM {table}, unnest($1::text[]) AS p WHERE {text} ILIKE p",
                patterns,
            )
            for r in rows:
                found.setdefault(c["table_schema"], []).append(
                    f"{c['table_name']}.{c['column_name']}: {r['p'].strip('%')}"
                )
        schemas = await conn.fetch(
            "SELECT DISTINCT table_schema FROM information_schema.tables "
            "WHERE table_schema <> ALL($1::text[]) AND table_schema NOT LIKE 'pg_%'",
            list(SYSTEM_SCHEMAS),
        )
        for s in schemas:
            found.setdefault(s["table_schema"], [])
    finally:
        await conn.close()
    return found


def echo_receiver(got: list[bytes]) -> FastAPI:
    """The tenant's endpoint: 200, answering with the body it got (a careless receiver:
    the relay's delivery log must not keep the answer in clear)."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        got.append(body)
        return Response(body[:500], media_type="application/json")

    return app


async def traffic(stack: ProcessStack, shop: Shop, hook_url: str, got: list[bytes]) -> list[str]:
    """A customer's history, order, campaign message and own text, delivered by the
    relay; the needles to look for (phone, BSUID, name, text)."""
    c = f"2348030{secrets.randbelow(10**6):06d}"
    name = f"Ada Atrest {secrets.token_hex(3)}"
    text = f"my parcel code is zq{secrets.token_hex(4)}"
    order_id, bsuid = await customer_with_an_order(stack, shop, c, name, hook_url)
    assert order_id.startswith("ORD-")
    sent = await run_campaign(shop, "Spring")
    assert sent["targeted"] >= 1, sent
    await shop.send(c, {"text": text, "name": name})

    async def everywhere() -> bool:
        exported = await export(shop, c)
        inbox = str(exported["services"]["inbox"])
        relay = exported["services"].get("relay", {}).get("events", [])
        return text in inbox and any(text in str(e["body"]) for e in relay)

    await eventually(everywhere, timeout_s=60, interval_s=0.5)
    await eventually(lambda: any(text.encode() in b for b in got), timeout_s=30)
    await asyncio.sleep(2.0)  # the last statuses and delivery outcomes are written
    return [c, bsuid, name, text]


def test_no_customer_data_in_clear_in_any_service_table(platform_stack: ProcessStack) -> None:
    got: list[bytes] = []

    async def scenario() -> dict[str, list[str]]:
        async with (
            httpx.AsyncClient(timeout=20) as http,
            serve(echo_receiver(got)) as receiver,
        ):
            shop = await open_shop(platform_stack, load_script, http)
            needles = await traffic(platform_stack, shop, f"{receiver}/hook", got)
        return await clear_columns(platform_stack.env["DATABASE_URL"], needles)

    found = asyncio.run(scenario())
    for schema, hits in sorted(found.items()):  # the whole picture, shown on a failure
        print(f"{schema}: {len(hits)} in clear", *hits, sep="\n  ")
    assert set(FIRST_SCHEMAS) <= set(found), sorted(found)
    order = [*FIRST_SCHEMAS, *sorted(set(found) - set(FIRST_SCHEMAS))]
    for schema in order:
        assert found[schema] == [], f"{schema}: customer data in clear:\n" + "\n".join(
            found[schema]
        )
