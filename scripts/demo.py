#!/usr/bin/env python3
"""make demo: seed a demo tenant, number and catalog, play a customer, print the chat.

Everything goes through the platform's public edges, as in production:
the sandbox registers a business number (the stand-in for Meta), the tenant service
registers it for a new tenant (validating its token against the sandbox), the
conversation service gets a catalog, and then a customer writes through the sandbox,
whose signed webhooks reach the gateway. The transcript and each bot message's
final status (from the state-manager) are printed.

The tenant also plugs its own systems in: a small webhook receiver on loopback is
registered with the relay (every event type, the ``flowchat`` format, each delivery's
Standard Webhooks signature checked) and the events it received are printed beside the
transcript. The demo ends with a hand-off: the customer asks for a person, a demo agent
(the tenant's admin API key acting as ``X-Agent-ID: demo-agent`` in the inbox) claims
the conversation, replies and resolves it, and the bot answers the customer again.
Then the same shop on its other channel and in another language: the tenant's Twilio
number (an account registered with the tenant service and in the sandbox's Twilio side,
whose signed form webhooks reach the gateway) gets a customer who types every answer to
the bot's numbered text menus, and a customer who writes "español" orders in Spanish
(the bot's words, product names, amounts and dates in Spanish). Each is printed as a
transcript of its own.
Last, the console's URL is printed with the demo users' sign-in (an admin, an agent, a
viewer of the tenant and an operator, each invited and with a password set), and another
customer is left waiting in the inbox for them to answer.

Reads the stack's URLs and secrets from the environment (``.run/stack.env``).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]

CATALOG = [
    {
        "sku": "CEM-50",
        "name": "Cement 50kg",
        "description": "Portland cement, 50 kg bag",
        "price": "9.50",
        "currency": "USD",
        "category": "Building",
        "stock": 500,
        "translations": {"es": {"name": "Cemento 50kg", "description": "Saco de 50 kg"}},
    },
    {
        "sku": "SND-25",
        "name": "Sharp sand 25kg",
        "description": "Washed sand, 25 kg bag",
        "price": "3.20",
        "currency": "USD",
        "category": "Building",
        "stock": 800,
        "translations": {"es": {"name": "Arena 25kg", "description": "Arena lavada, 25 kg"}},
    },
    {
        "sku": "NAIL-1",
        "name": "Nails 1kg",
        "description": "Steel nails, 1 kg box",
        "price": "2.75",
        "currency": "USD",
        "category": "Hardware",
        "stock": 300,
    },
    {
        "sku": "PNT-W5",
        "name": "White paint 5L",
        "description": "Emulsion paint, 5 litres",
        "price": "18.00",
        "currency": "USD",
        "category": "Paint",
        "stock": 60,
    },
]

#: The customer's side of the demo: a greeting, then picks from the bot's own lists
#: and buttons. A step is skipped when the bot did not offer what it needs.
SCRIPT: list[tuple[str, str]] = [
    ("text", "Hi"),
    ("list", "Building"),
    ("list", "Cement 50kg"),
    ("text", "10"),
    ("text", "Sharp sand x 5"),
    ("button", "Confirm"),
    ("text", "PAY-778120"),
]

#: A customer on the tenant's Twilio number: the bot's lists and buttons come as numbered
#: text menus there, and every answer is typed (a number, a label, a word).
TWILIO_SCRIPT: list[str] = ["Hi", "1", "cement 50kg", "4", "confirm", "TRX-55120"]

#: A customer who chooses Spanish, then taps the bot's (Spanish) lists and buttons.
SPANISH_SCRIPT: list[tuple[str, str]] = [
    ("text", "Hola"),
    ("text", "español"),
    ("list", "Building"),
    ("list", "Cemento 50kg"),
    ("text", "6"),
    ("button", "Confirmar"),
    ("text", "TRX-77120"),
]


@dataclass
class Seeded:
    tenant_id: str
    account_id: str
    phone_number_id: str
    customer: str
    api_key: str
    #: ``meta`` (``phone_number_id`` is the Cloud API number's id) or ``twilio``
    #: (``phone_number_id`` is the Twilio number, ``+1415…``).
    channel: str = "meta"


@dataclass(frozen=True)
class ConsoleSignIn:
    role: str
    email: str
    password: str


@dataclass
class Line:
    who: str
    text: str
    wamid: str | None = None
    status: str | None = None


#: The customer's side of the hand-off, after the order: asks for a person, writes
#: while waiting; then (after the agent resolved) the bot answers again.
HANDOFF_ASK = "agent"
HANDOFF_WAITING = "Can someone check if the cement can come on Saturday?"
AGENT_ID = "demo-agent"
AGENT_REPLY = "Hi Ada, this is Sam from Acme. Yes, Saturday morning works: it's booked."
BACK_TO_BOT = "Hi"


@dataclass
class Received:
    """One delivery the tenant's endpoint received."""

    event: dict[str, Any]
    verified: bool


@dataclass
class Receiver:
    """The tenant's own webhook endpoint: an HTTP server on loopback that keeps every
    event the relay delivers and checks its Standard Webhooks signature."""

    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/flowchat-events", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/flowchat-events"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(json.loads(body), self.verify(body, request)))
        return web.Response(status=204)

    def verify(self, body: bytes, request: web.Request) -> bool:
        if self.secret is None:
            return False
        try:
            from standardwebhooks import Webhook  # the dev group has it
        except ImportError:
            return False
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:  # noqa: BLE001 - any failure means "not verified"
            return False
        return True

    async def settled(self, at_least: int, timeout_s: float = 20, quiet_s: float = 1.5) -> None:
        """Wait until ``at_least`` events arrived and none came for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        seen, since = len(self.received), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            if len(self.received) != seen:
                seen, since = len(self.received), time.monotonic()
            elif seen >= at_least and time.monotonic() - since > quiet_s:
                return


@dataclass
class Demo:
    env: dict[str, str]
    session: aiohttp.ClientSession
    lines: list[Line] = field(default_factory=list)
    #: Where the hand-off begins in ``lines`` (None: no hand-off played).
    handoff_at: int | None = None

    def url(self, name: str) -> str:
        return self.env[f"FLOWCHAT_{name}_URL"].rstrip("/")

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, url: str, *, ok: tuple[int, ...] = (200, 201, 202), **kw: Any
    ) -> Any:
        async with self.session.request(method, url, **kw) as r:
            body = await r.json(content_type=None) if r.content_length != 0 else None
            if r.status not in ok:
                raise SystemExit(f"{method} {url} → {r.status}: {body}")
            return body

    # ------------------------------------------------------------------ seeding

    async def seed(self) -> Seeded:
        suffix = f"{secrets.randbelow(10**6):06d}"
        phone_number_id = f"1099{suffix}"
        display = f"+1555{suffix[:3]}{suffix[3:]}0"[:12]
        access_token = "EAAG" + secrets.token_urlsafe(32)
        app_secret = secrets.token_hex(16)
        verify_token = secrets.token_urlsafe(16)
        await self.call(
            "POST",
            f"{self.url('SANDBOX')}/sandbox/numbers",
            json={
                "phone_number_id": phone_number_id,
                "waba_id": f"2099{suffix}",
                "display_phone_number": display,
                "verified_name": "Acme Hardware",
                "access_token": access_token,
                "app_secret": app_secret,
                "webhook_url": f"{self.url('GATEWAY')}/webhooks/meta",
            },
        )
        operator = self.bearer(self.env["FLOWCHAT_OPERATOR_KEY"])
        tenant = await self.call(
            "POST",
            f"{self.url('TENANT')}/v1/tenants",
            headers=operator,
            json={
                "name": f"acme-{suffix}",
                "business_name": "Acme Hardware",
                "timezone": "Africa/Lagos",
                "locale": "en",
                "currency": "USD",
                "tax_rate": "0.075",
            },
        )
        tenant_id = tenant["tenant_id"]
        account = await self.call(
            "POST",
            f"{self.url('TENANT')}/v1/tenants/{tenant_id}/accounts",
            headers=operator,
            json={
                "provider": "meta",
                "phone_number_id": phone_number_id,
                "waba_id": f"2099{suffix}",
                "display_phone_number": display,
                "app_id": f"3099{suffix}",
                "app_secret": app_secret,
                "verify_token": verify_token,
                "access_token": access_token,
            },
        )
        key = await self.call(
            "POST",
            f"{self.url('TENANT')}/v1/tenants/{tenant_id}/api-keys",
            headers=operator,
            json={"name": "demo", "scopes": ["send", "read", "admin"]},
        )
        admin = self.bearer(key["key"])
        conversation = self.url("CONVERSATION")
        await self.call(
            "PUT",
            f"{conversation}/v1/tenants/{tenant_id}/settings",
            headers=admin,
            json={"business_name": "Acme Hardware", "currency": "USD", "tax_rate": "0.075"},
        )
        await self.call(
            "POST", f"{conversation}/v1/tenants/{tenant_id}/products", headers=admin, json=CATALOG
        )
        return Seeded(
            tenant_id,
            account["account_id"],
            phone_number_id,
            customer=f"234801{suffix}0",
            api_key=key["key"],
        )

    async def add_twilio(self, seeded: Seeded) -> Seeded:
        """The tenant's Twilio number: an account registered with the tenant service and
        the same account in the sandbox's Twilio side (its form webhooks, signed like
        Twilio's, reach the gateway). The answer: ``seeded`` on that number, with a new
        customer."""
        sid = "AC" + secrets.token_hex(16)
        token = secrets.token_hex(16)
        number = f"+1415{secrets.randbelow(10**7):07d}"
        account = await self.call(
            "POST",
            f"{self.url('TENANT')}/v1/tenants/{seeded.tenant_id}/accounts",
            headers=self.bearer(self.env["FLOWCHAT_OPERATOR_KEY"]),
            json={
                "provider": "twilio",
                "twilio_account_sid": sid,
                "twilio_auth_token": token,
                "twilio_number": number,
            },
        )
        await self.call(
            "POST",
            f"{self.url('SANDBOX')}/sandbox/twilio/accounts",
            json={
                "account_sid": sid,
                "auth_token": token,
                "number": number,
                "webhook_url": f"{self.url('GATEWAY')}/webhooks/twilio/{account['account_id']}",
            },
        )
        return replace(
            seeded,
            account_id=account["account_id"],
            phone_number_id=number,
            customer=f"2348{secrets.randbelow(10**9):09d}",
            channel="twilio",
        )

    # ------------------------------------------------------------------ playing

    async def transcript(self, seeded: Seeded) -> list[dict[str, Any]]:
        data = await self.call(
            "GET",
            f"{self.url('SANDBOX')}/sandbox/conversations/{seeded.customer}",
            params={"phone_number_id": seeded.phone_number_id},
        )
        return list(data.get("messages", data) if isinstance(data, dict) else data)

    async def bot_messages(self, seeded: Seeded) -> list[dict[str, Any]]:
        return [m for m in await self.transcript(seeded) if m.get("direction") == "outbound"]

    async def customer_says(
        self, seeded: Seeded, payload: dict[str, Any], shown: str, *, answered: bool = True
    ) -> None:
        """The customer writes; then (``answered``) wait for the bot's reply."""
        before = len(await self.bot_messages(seeded))
        self.lines.append(Line("customer", shown))
        await self.call(
            "POST",
            f"{self.url('SANDBOX')}/sandbox/customers/{seeded.customer}/messages",
            json={**to_number(seeded), "name": "Ada", **payload},
        )
        if answered:
            await self.replies(seeded, before, "bot", f"after {shown!r}")

    async def replies(self, seeded: Seeded, before: int, who: str, what: str) -> None:
        """Wait for the business's messages after the first ``before`` and add them as
        ``who``'s lines (a reply may come in several messages: until they stop coming)."""
        deadline = time.monotonic() + 15
        seen, settled_at = before, time.monotonic()
        while time.monotonic() < deadline:
            sent = await self.bot_messages(seeded)
            if len(sent) != seen:
                seen, settled_at = len(sent), time.monotonic()
            elif seen > before and time.monotonic() - settled_at > 0.6:
                for message in sent[before:]:
                    self.lines.append(
                        Line(
                            who,
                            render(message["message"]),
                            wamid=message.get("wamid") or message.get("sid"),
                        )
                    )
                return
            await asyncio.sleep(0.1)
        raise SystemExit(f"no message from the {who} within 15 s {what}")

    async def type_all(self, seeded: Seeded, script: list[str]) -> None:
        """The customer types each answer (channels with text menus: Twilio)."""
        for text in script:
            await self.customer_says(seeded, {"text": text}, text)

    async def play(self, seeded: Seeded, script: list[tuple[str, str]] = SCRIPT) -> None:
        for kind, value in script:
            if kind == "text":
                await self.customer_says(seeded, {"text": value}, value)
                continue
            recent = (await self.bot_messages(seeded))[-3:]
            choice = next(
                (
                    c
                    for m in reversed(recent)
                    if (c := find_choice(m.get("message", {}), kind, value))
                ),
                None,
            )
            if choice is None:
                break  # the bot did not offer it: the conversation ends here
            key = "list_reply" if kind == "list" else "button_reply"
            await self.customer_says(seeded, {key: choice}, f"[{choice['title']}]")

    # ------------------------------------------------------------------ plugging in

    async def subscribe(self, seeded: Seeded, url: str) -> dict[str, Any]:
        """Register ``url`` with the relay for every event type; the answer carries the
        signing secret (shown this once)."""
        admin = self.bearer(seeded.api_key)
        relay = self.url("RELAY")
        types = await self.call("GET", f"{relay}/v1/event-types", headers=admin)
        endpoint: dict[str, Any] = await self.call(
            "POST",
            f"{relay}/v1/endpoints",
            headers=admin,
            json={
                "url": url,
                "description": "the demo's receiver",
                "event_types": types["items"],
                "format": "flowchat",
            },
        )
        return endpoint

    # ------------------------------------------------------------------ the hand-off

    async def hand_off(self, seeded: Seeded) -> None:
        """The customer asks for a person; the demo agent claims the conversation in the
        inbox, replies and resolves it; the customer's next message is the bot's again."""
        self.handoff_at = len(self.lines)
        await self.customer_says(seeded, {"text": HANDOFF_ASK}, HANDOFF_ASK)
        await self.customer_says(seeded, {"text": HANDOFF_WAITING}, HANDOFF_WAITING, answered=False)
        agent = {**self.bearer(seeded.api_key), "X-Agent-ID": AGENT_ID}
        inbox = self.url("INBOX")
        conversation = await self.waiting_conversation(seeded, inbox, agent)
        url = f"{inbox}/v1/conversations/{conversation['id']}"
        await self.call("POST", f"{url}/claim", headers=agent)
        self.lines.append(Line("note", f"{AGENT_ID} claimed the conversation in the inbox"))
        before = len(await self.bot_messages(seeded))
        await self.call(
            "POST",
            f"{url}/messages",
            headers=agent,
            json={
                "content": {"type": "text", "body": AGENT_REPLY},
                "idempotency_key": f"demo-{conversation['id']}-1",
            },
        )
        await self.replies(seeded, before, "agent", "after the agent's reply")
        before = len(await self.bot_messages(seeded))
        await self.call("POST", f"{url}/resolve", headers=agent)
        self.lines.append(Line("note", f"{AGENT_ID} resolved the conversation"))
        await self.replies(seeded, before, "bot", "after the agent resolved")
        await self.customer_says(seeded, {"text": BACK_TO_BOT}, BACK_TO_BOT)

    async def console_people(self, seeded: Seeded) -> list[ConsoleSignIn]:
        """People of the demo tenant for the console (an admin, an agent, a viewer) and an
        operator: invited through the tenant service's API, each password set from the
        invitation, as a person would."""
        operator = self.bearer(self.env["FLOWCHAT_OPERATOR_KEY"])
        tenant = self.url("TENANT")
        people: list[ConsoleSignIn] = []
        for role in ("admin", "agent", "viewer", "operator"):
            email = f"{role}-{seeded.tenant_id[-6:].lower()}@acme.example"
            if role == "operator":
                url, body = f"{tenant}/v1/operator/users", {"email": email, "name": "Olu"}
            else:
                url = f"{tenant}/v1/tenants/{seeded.tenant_id}/users"
                body = {"email": email, "role": role, "name": f"Demo {role}"}
            invited = await self.call("POST", url, headers=operator, json=body)
            password = secrets.token_urlsafe(12)
            await self.call(
                "POST",
                f"{tenant}/v1/auth/invitations/accept",
                json={"token": invited["invitation"]["token"], "password": password},
            )
            people.append(ConsoleSignIn(role, email, password))
        return people

    async def leave_a_customer_waiting(self, seeded: Seeded) -> None:
        """Another customer asks for a person and stays waiting: the console's inbox has
        someone to answer."""
        customer = f"2348099{secrets.randbelow(10**5):05d}"
        for text in ("Hi", HANDOFF_ASK):
            await self.call(
                "POST",
                f"{self.url('SANDBOX')}/sandbox/customers/{customer}/messages",
                json={"phone_number_id": seeded.phone_number_id, "name": "Bola", "text": text},
            )
            await asyncio.sleep(1.0)

    async def waiting_conversation(
        self, seeded: Seeded, inbox: str, agent: dict[str, str], timeout_s: float = 15
    ) -> dict[str, Any]:
        """The customer's waiting conversation in the inbox, once the inbox opened it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            page = await self.call(
                "GET", f"{inbox}/v1/conversations", params={"view": "waiting"}, headers=agent
            )
            for item in page["items"]:
                thread = await self.call(
                    "GET", f"{inbox}/v1/threads/{item['thread_id']}", headers=agent
                )
                if thread["wa_id"] == seeded.customer:
                    found: dict[str, Any] = item
                    return found
            await asyncio.sleep(0.2)
        raise SystemExit(f"the inbox opened no waiting conversation within {timeout_s:.0f} s")

    async def final_statuses(
        self, seeded: Seeded, want: str = "read", timeout_s: float = 20
    ) -> None:
        headers = {
            **self.bearer(self.env["FLOWCHAT_SERVICE_TOKEN"]),
            "X-Tenant-ID": seeded.tenant_id,
        }
        deadline = time.monotonic() + timeout_s
        for line in self.lines:
            if line.who not in ("bot", "agent") or not line.wamid:
                continue
            while True:
                async with self.session.get(
                    f"{self.url('STATE')}/v1/messages/by-wamid/{line.wamid}", headers=headers
                ) as r:
                    line.status = (await r.json())["status"] if r.status == 200 else "unknown"
                if line.status in (want, "failed") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)


def to_number(seeded: Seeded) -> dict[str, str]:
    """The sandbox's field naming the business number a customer writes to."""
    if seeded.channel == "twilio":
        return {"twilio_number": seeded.phone_number_id}
    return {"phone_number_id": seeded.phone_number_id}


def render(message: dict[str, Any]) -> str:
    if "Body" in message or "MediaUrl" in message:  # Twilio's Messages API form
        body = str(message.get("Body", ""))
        media = message.get("MediaUrl")
        return f"{body}\n  📎 {media}".strip() if media else body
    kind = message.get("type")
    if kind == "text":
        return str(message["text"]["body"])
    if kind == "interactive":
        inter = message["interactive"]
        text = inter.get("body", {}).get("text", "")
        action = inter.get("action", {})
        if inter.get("type") == "button":
            titles = [b["reply"]["title"] for b in action.get("buttons", [])]
            return f"{text}\n  buttons: {' | '.join(titles)}"
        if inter.get("type") == "cta_url":
            params = action.get("parameters", {})
            return f"{text}\n  [{params.get('display_text')}] {params.get('url')}"
        rows = [row["title"] for s in action.get("sections", []) for row in s.get("rows", [])]
        return f"{text}\n  [{action.get('button', 'list')}]: {', '.join(rows)}"
    if kind == "document":
        doc = message["document"]
        return f"📄 {doc.get('filename', 'document')} {doc.get('caption', '')}".strip()
    return f"<{kind}>"


def find_choice(message: dict[str, Any], kind: str, title: str) -> dict[str, str] | None:
    inter = message.get("interactive") or {}
    action = inter.get("action") or {}
    if kind == "list" and inter.get("type") == "list":
        for section in action.get("sections", []):
            for row in section.get("rows", []):
                if row["title"].lower().startswith(title.lower()):
                    return {"id": row["id"], "title": row["title"]}
    if kind == "button" and inter.get("type") == "button":
        for button in action.get("buttons", []):
            if button["reply"]["title"].lower() == title.lower():
                return {"id": button["reply"]["id"], "title": button["reply"]["title"]}
    return None


def print_transcript(
    lines: list[Line],
    handoff_at: int | None = None,
    received: list[Received] | None = None,
    title: str = "a customer chats with Acme Hardware",
) -> None:
    """The chat; with ``received``, under each message the webhook events the tenant's
    endpoint got for it (``message.received`` for the customer's, the ``message.status``
    changes for the business's), and the other events after the chat."""
    events = Events(received or [])
    print(f"\n=== FlowChat demo: {title} ===\n")
    for i, line in enumerate(lines):
        if i == handoff_at:
            print("\n--- hand-off: the customer asks for a person ---\n")
        if line.who == "note":
            print(f"         · {line.text}")
            continue
        first, *rest = line.text.splitlines() or [""]
        status = f"   [{line.status}]" if line.status else ""
        print(f"{line.who:8} │ {first}{status}")
        for more in rest:
            print(f"         │ {more}")
        if received is not None:
            print(f"         ⤷ webhook: {events.beside(line)}")
    if received is not None and events.rest():
        print("\nother events:")
        for r in events.rest():
            print(f"         ⤷ webhook: {r.event.get('type')} {describe(r.event)} {mark(r)}")
    print()


def mark(r: Received) -> str:
    return "✓ signed" if r.verified else "✗ SIGNATURE NOT VERIFIED"


def describe(event: dict[str, Any]) -> str:
    """The data of an event other than a message's (hand-offs, orders…) in a few words."""
    data = event.get("data") or {}
    shown = {k: v for k, v in data.items() if isinstance(v, str | int | float) and k != "text"}
    return ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])[:80]


class Events:
    """The endpoint's deliveries, matched to the transcript's lines."""

    def __init__(self, received: list[Received]) -> None:
        ordered = sorted(received, key=lambda r: r.event.get("sequence") or 0)
        self.inbound = [r for r in ordered if r.event.get("type") == "message.received"]
        self.statuses: dict[str, list[Received]] = {}
        self.used: set[int] = {id(r) for r in self.inbound}
        for r in ordered:
            if r.event.get("type") == "message.status":
                data = r.event.get("data") or {}
                wamid = str(data.get("provider_message_id") or data.get("message_id"))
                self.statuses.setdefault(wamid, []).append(r)
                self.used.add(id(r))
        self.all = received
        self.customer_lines = 0

    def beside(self, line: Line) -> str:
        if line.who == "customer":
            k, self.customer_lines = self.customer_lines, self.customer_lines + 1
            if k >= len(self.inbound):
                return "(no message.received)"
            r = self.inbound[k]
            return f"message.received #{r.event.get('sequence')} {mark(r)}"
        got = self.statuses.get(line.wamid or "", [])
        if not got:
            return "(no message.status)"
        chain = " → ".join(str((r.event.get("data") or {}).get("status")) for r in got)
        ok = all(r.verified for r in got)
        return f"message.status {chain} {'✓ signed' if ok else '✗ SIGNATURE NOT VERIFIED'}"

    def rest(self) -> list[Received]:
        return [r for r in self.all if id(r) not in self.used]


def print_events_summary(received: list[Received], url: str) -> None:
    by_type: dict[str, int] = {}
    for r in received:
        kind = str(r.event.get("type", "?"))
        by_type[kind] = by_type.get(kind, 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(by_type.items()))
    verified = sum(r.verified for r in received)
    print(
        f"The tenant's endpoint {url} received {len(received)} events ({summary}); "
        f"{verified} verified with the standardwebhooks package."
    )


@dataclass
class Run:
    """What ``run_demo`` played: the transcript, where its hand-off begins, and what the
    tenant's endpoint received."""

    lines: list[Line]
    handoff_at: int | None
    received: list[Received]
    endpoint_url: str
    seeded: Seeded


async def run_demo(env: dict[str, str]) -> Run:
    receiver = Receiver()
    url = await receiver.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            demo = Demo(env, session)
            seeded = await demo.seed()
            endpoint = await demo.subscribe(seeded, url)
            receiver.secret = endpoint["secret"]
            await demo.play(seeded)
            await demo.hand_off(seeded)
            await demo.final_statuses(seeded)
            # every customer message, and each business message's four statuses
            # (accepted, sent, delivered, read)
            said = sum(line.who == "customer" for line in demo.lines)
            sent = sum(line.who in ("bot", "agent") for line in demo.lines)
            await receiver.settled(said + 4 * sent)
            return Run(demo.lines, demo.handoff_at, list(receiver.received), url, seeded)
    finally:
        await receiver.stop()


def load_env(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export ") :].split("=", 1)
                env[k] = v
    return env


def main() -> int:
    run = asyncio.run(run_demo(load_env(ROOT / ".run" / "stack.env")))
    print_transcript(run.lines, run.handoff_at, run.received)
    print_events_summary(run.received, run.endpoint_url)
    sent = [line for line in run.lines if line.who in ("bot", "agent")]
    if not sent or any(line.status != "read" for line in sent):
        print("some bot or agent messages did not reach 'read'", file=sys.stderr)
        return 1
    if not run.received or not all(r.verified for r in run.received):
        print("the endpoint received no events, or some failed verification", file=sys.stderr)
        return 1
    agent = sum(line.who == "agent" for line in sent)
    print(f"{len(sent) - agent} bot and {agent} agent messages, all read.")
    env = load_env(ROOT / ".run" / "stack.env")
    for chat in asyncio.run(channels_demo(env, run.seeded)):
        print_transcript(chat.lines, title=chat.title)
        bot = [line for line in chat.lines if line.who == "bot"]
        if not bot or any(line.status != "read" for line in bot):
            print(f"some bot messages did not reach 'read' ({chat.title})", file=sys.stderr)
            return 1
    print_console(env, asyncio.run(console_demo(env, run.seeded)))
    return 0


@dataclass
class Chat:
    """Another conversation of the demo: its title and its transcript."""

    title: str
    lines: list[Line]


async def channels_demo(env: dict[str, str], seeded: Seeded) -> list[Chat]:
    """The demo tenant's shop over its Twilio number (typed answers to numbered menus)
    and with a customer who chooses Spanish, each with its messages' final statuses."""
    chats: list[Chat] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        twilio = Demo(env, session)
        on_twilio = await twilio.add_twilio(seeded)
        await twilio.type_all(on_twilio, TWILIO_SCRIPT)
        await twilio.final_statuses(on_twilio)
        chats.append(Chat("a customer orders over Twilio (numbered text menus)", twilio.lines))
        spanish = Demo(env, session)
        in_spanish = replace(seeded, customer=f"5215{secrets.randbelow(10**9):09d}")
        await spanish.play(in_spanish, SPANISH_SCRIPT)
        await spanish.final_statuses(in_spanish)
        chats.append(Chat("a customer who writes «español» orders in Spanish", spanish.lines))
    return chats


async def console_demo(env: dict[str, str], seeded: Seeded) -> list[ConsoleSignIn]:
    """The console's demo users (admin, agent, viewer, operator) and a customer left
    waiting in the inbox."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        demo = Demo(env, session)
        people = await demo.console_people(seeded)
        await demo.leave_a_customer_waiting(seeded)
        return people


def print_console(env: dict[str, str], people: list[ConsoleSignIn]) -> None:
    url = env.get("FLOWCHAT_CONSOLE_URL", "http://127.0.0.1:8708")
    print(f"\n=== The console: {url}/ (a customer is waiting in the inbox) ===")
    for p in people:
        print(f"  {p.role:8}  {p.email:40}  password {p.password}")


if __name__ == "__main__":
    raise SystemExit(main())
