"""PostgreSQL faults: every backend of the test's own database terminated
(``pg_terminate_backend``, the kit's ``terminate_backends``) again and again while
customers order through the bot and the send API's messages and their statuses flow.

10. Pools reconnect: right after the terminations, one request to each service that
    owns a database (tenant, conversation, state-manager) succeeds at once. No partial
    writes: each customer has exactly one order, with its line and its invoice, and the
    product's stock went down by exactly what was ordered; every handled inbound
    message has one dedupe row; every message the send API accepted has its state-
    manager record, whose status is the highest of its recorded history and whose
    WAMID is the one the sandbox gave. Nothing acknowledged is lost, nothing sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from faults_kit import (
    FaultStack,
    Tenant,
    duplicates,
    ledger,
    open_windows,
    seed_tenant,
    sign,
    terminate_backends,
    wait_for,
)
from pydantic import SecretStr

from flowchat_platform.privacy import privacy_index

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RANK = {"queued": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "played": 5}
FINAL_OK = {"accepted", "sent", "delivered", "read"}
#: The bot's messages to a new customer's "Hi" (the greeting leads the category list)...
GREETING_REPLIES = 1
#: ... and to "Cement x 2" and to "Confirm".
REPLIES_PER_STEP = 2
ORDER_QTY = 2
START_STOCK = 500


@dataclass
class Terminator:
    """Terminates every backend of the database every ``interval_s`` until stopped."""

    dsn: str
    interval_s: float = 0.4
    rounds: list[int] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.rounds.append(await terminate_backends(self.dsn))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    @property
    def killed(self) -> int:
        return sum(self.rounds)


def meta_message(tenant: Tenant, wa_id: str, message: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": tenant.display.lstrip("+"),
            "phone_number_id": tenant.phone_number_id,
        },
        "contacts": [{"profile": {"name": "Ada"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": f"wamid.FAULTS{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                **message,
            }
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": tenant.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
    ).encode()


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": body}}


def button(button_id: str, title: str) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
    }


@dataclass
class Counts:
    """Answers other than 200/202 before a request was accepted, by status (0: no answer)."""

    refused: Counter[int] = field(default_factory=Counter)


async def deliver(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, body: bytes, counts: Counts
) -> None:
    """Post a webhook like Meta: again until the gateway answers 200."""
    deadline = time.monotonic() + 60
    while True:
        try:
            r = await client.post(
                f"{stack.urls['gateway']}/webhooks/meta",
                content=body,
                headers=sign(tenant.app_secret, body),
            )
            if r.status_code == 200:
                return
            counts.refused[r.status_code] += 1
        except httpx.TransportError:
            counts.refused[0] += 1
        assert time.monotonic() < deadline, "webhook never accepted"
        await asyncio.sleep(0.3)


async def api_send(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    to: str,
    body: str,
    counts: Counts,
) -> str:
    """The send API, retried with the same idempotency key until it answers 202."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + 60
    while True:
        try:
            r = await client.post(
                f"{stack.urls['gateway']}/v1/messages",
                headers={"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": key},
                json={
                    "account_id": tenant.account_id,
                    "to": to,
                    "content": {"type": "text", "body": body},
                },
            )
            if r.status_code == 202:
                return str(r.json()["message_id"])
            assert r.status_code in (429, 500, 502, 503), r.text
            counts.refused[r.status_code] += 1
        except httpx.TransportError:
            counts.refused[0] += 1
        assert time.monotonic() < deadline, "send never accepted"
        await asyncio.sleep(0.3)


async def bot_count(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, wa_id: str
) -> int:
    entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
    return sum(1 for e in entries if e["wa_id"] == wa_id)


async def step(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    customers: list[str],
    message: dict[str, Any],
    expect: int,
    counts: Counts,
) -> None:
    """Every customer writes ``message``; wait until each has ``expect`` bot messages."""
    await asyncio.gather(
        *(
            deliver(client, stack, tenant, meta_message(tenant, c, message), counts)
            for c in customers
        )
    )

    async def answered() -> bool:
        got = [await bot_count(client, stack, tenant, c) for c in customers]
        return all(n >= expect for n in got)

    with contextlib.suppress(AssertionError):
        await wait_for(answered, timeout_s=45, interval_s=0.5, what="bot replies")


async def poll_apis(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    seen: Counter[tuple[str, int]],
) -> None:
    """While backends are terminated: the services' read APIs, every 0.2 s."""
    while True:
        for name, status in (await probe_apis(client, stack, tenant, "msg-none")).items():
            seen[(name, status)] += 1
        await asyncio.sleep(0.2)


async def probe_apis(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, message_id: str
) -> dict[str, int]:
    """One request to each service that owns a database: its status code."""
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    admin = {"Authorization": f"Bearer {tenant.api_key}"}
    service = {
        "Authorization": f"Bearer {stack.env['FLOWCHAT_SERVICE_TOKEN']}",
        "X-Tenant-ID": tenant.tenant_id,
    }
    calls = {
        "tenant": (f"{stack.urls['tenant']}/v1/tenants/{tenant.tenant_id}", operator),
        "conversation": (
            f"{stack.urls['conversation']}/v1/tenants/{tenant.tenant_id}/products",
            admin,
        ),
        "state-manager": (f"{stack.urls['state-manager']}/v1/messages/{message_id}", service),
    }
    out = {}
    for name, (url, headers) in calls.items():
        try:
            out[name] = (await client.get(url, headers=headers)).status_code
        except httpx.TransportError:
            out[name] = 0
    return out


# ----------------------------------------------------------------------------- 10


@pytest.mark.timeout(240)
async def test_postgres_backends_terminated_pools_reconnect_no_partial_writes(
    make_stack, fault_db, figures
):
    stack = make_stack()
    customers = [f"2348014{n:06d}" for n in range(100, 108)]  # order through the bot
    recipients = [f"2348014{n:06d}" for n in range(200, 208)]  # get the send API's messages
    counts = Counts()
    async with httpx.AsyncClient(timeout=30) as client:
        tenant = await seed_tenant(client, stack)
        await open_windows(client, stack, tenant, customers + recipients)
        terminator = Terminator(fault_db)
        terminator.start()
        started = time.monotonic()
        during: Counter[tuple[str, int]] = Counter()
        polling = asyncio.create_task(poll_apis(client, stack, tenant, during))
        try:
            # the send API's messages: the state-manager records them and their statuses
            sends = asyncio.gather(
                *(
                    api_send(client, stack, tenant, recipients[n % 8], f"notice {n}", counts)
                    for n in range(40)
                )
            )
            await step(client, stack, tenant, customers, text("Hi"), GREETING_REPLIES, counts)
            await step(
                client,
                stack,
                tenant,
                customers,
                text(f"Cement x {ORDER_QTY}"),
                GREETING_REPLIES + REPLIES_PER_STEP,
                counts,
            )
            await step(
                client,
                stack,
                tenant,
                customers,
                button("review:confirm", "Confirm"),
                GREETING_REPLIES + 2 * REPLIES_PER_STEP,
                counts,
            )
            ids = list(await sends)
        finally:
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
            await terminator.stop()
        faulted_s = time.monotonic() - started
        # right after the last termination: one request each, no retry
        await terminate_backends(fault_db)
        await asyncio.sleep(0.5)
        probed = await probe_apis(client, stack, tenant, ids[0])
        healed = time.monotonic()

        async def recorded() -> bool:
            states = await message_states(fault_db, ids)
            return len(states) == len(ids) and all(s in FINAL_OK for s, _ in states.values())

        with contextlib.suppress(AssertionError):
            await wait_for(recorded, timeout_s=30, interval_s=0.5, what="all sends recorded")
        figures.recover_s = time.monotonic() - healed
        await asyncio.sleep(2)  # late duplicates would show up now
        entries = await ledger(client, stack, phone_number_id=tenant.phone_number_id)
        r = await client.get(
            f"{stack.urls['conversation']}/v1/tenants/{tenant.tenant_id}/products",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
        )
        stock = next(p["stock"] for p in r.json()["items"] if p["sku"] == "CEM-50")
    states = await message_states(fault_db, ids)
    history = await message_history(fault_db, ids)
    orders = await order_rows(fault_db, tenant.tenant_id)
    # orders name their customer by its keyed digest (customers' ids are encrypted at rest)
    key, token = stack.env.get("FLOWCHAT_PRIVACY_KEY"), stack.env["FLOWCHAT_SERVICE_TOKEN"]
    index = privacy_index(SecretStr(key) if key else None, SecretStr(token))
    named = {index.digest(tenant.tenant_id, c): c for c in customers}
    orders = {named.get(k, k): rows for k, rows in orders.items()}
    handled = await handled_count(fault_db, tenant.tenant_id)
    wamids = {e["biz_opaque_callback_data"]: e["wamid"] for e in entries}
    replies = {c: sum(1 for e in entries if e["wa_id"] == c) for c in customers}
    api_entries = [e for e in entries if e.get("biz_opaque_callback_data") in set(ids)]
    bot_entries = len(entries) - len(api_entries)

    torn_states = [
        i
        for i, (status, wamid) in states.items()
        if wamid != wamids.get(i)
        or status not in history.get(i, set())
        or any(RANK.get(h, 100) > RANK.get(status, 100) for h in history.get(i, set()))
    ]
    good_orders = {
        c
        for c, rows in orders.items()
        if len(rows) == 1 and rows[0]["lines"] == 1 and rows[0]["qty"] == ORDER_QTY
        if rows[0]["invoices"] == 1
    }
    recorded_ok = [i for i in ids if i in states and states[i][0] in FINAL_OK]
    figures.sent = len(ids) + len(customers)
    figures.processed = len(set(recorded_ok) & set(wamids)) + len(good_orders)
    figures.lost = figures.sent - figures.processed
    figures.duplicated = duplicates(entries) + sum(
        max(0, n - GREETING_REPLIES - 2 * REPLIES_PER_STEP) for n in replies.values()
    )
    figures.notes = (
        f"terminated={terminator.killed} backends in {len(terminator.rounds)} rounds over "
        f"{faulted_s:.1f}s; refused-then-retried={dict(counts.refused)}; after: {probed}; "
        f"orders={sum(len(v) for v in orders.values())} stock={stock} handled={handled} "
        f"torn={len(torn_states)} bot_msgs={bot_entries} "
        f"during={ {f'{n}:{c}': k for (n, c), k in sorted(during.items())} }"
    )
    assert terminator.killed >= 10, "the terminations hardly hit anything"
    assert probed == {"tenant": 200, "conversation": 200, "state-manager": 200}, probed
    # while connections are cut: a retryable 503, never a 500
    assert {code for _, code in during} <= {200, 404, 503}, during
    assert set(counts.refused) <= {503}, counts.refused
    assert not torn_states, torn_states[:5]
    assert good_orders == set(customers), {
        c: [render(e) for e in entries if e["wa_id"] == c] for c in set(customers) - good_orders
    }
    assert stock == START_STOCK - ORDER_QTY * len(customers), stock
    assert handled == 3 * len(customers), handled
    assert figures.lost == 0
    assert figures.duplicated == 0


def render(entry: dict[str, Any]) -> str:
    body = entry.get("body") or {}
    kind = body.get("type", "?")
    part = body.get(kind) or {}
    if kind == "text":
        return str(part.get("body", ""))[:80]
    if kind == "interactive":
        return "[buttons] " + str((part.get("body") or {}).get("text", ""))[:80]
    return f"[{kind}]"


async def message_states(dsn: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, status, provider_message_id FROM state_manager.messages "
            "WHERE id = ANY($1::text[])",
            ids,
        )
    finally:
        await conn.close()
    return {r["id"]: (r["status"], r["provider_message_id"]) for r in rows}


async def message_history(dsn: str, ids: list[str]) -> dict[str, set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT message_id, status FROM state_manager.message_events "
            "WHERE message_id = ANY($1::text[])",
            ids,
        )
    finally:
        await conn.close()
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["message_id"], set()).add(r["status"])
    return out


async def order_rows(dsn: str, tenant_id: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT o.order_id, o.customer_wa_id,
                   (SELECT count(*) FROM conversation.order_lines l
                     WHERE l.order_id = o.order_id) AS lines,
                   (SELECT coalesce(sum(quantity), 0) FROM conversation.order_lines l
                     WHERE l.order_id = o.order_id) AS qty,
                   (SELECT count(*) FROM conversation.invoices i
                     WHERE i.order_id = o.order_id) AS invoices
            FROM conversation.orders o WHERE o.tenant_id = $1
            """,
            tenant_id,
        )
    finally:
        await conn.close()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["customer_wa_id"].lstrip("+"), []).append(dict(r))
    return out


async def handled_count(dsn: str, tenant_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM conversation.handled_messages WHERE tenant_id = $1",
                tenant_id,
            )
        )
    finally:
        await conn.close()
