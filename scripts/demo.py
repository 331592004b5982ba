#!/usr/bin/env python3
"""make demo: seed a demo tenant, number and catalog, play a customer, print the chat.

Everything goes through the platform's public edges, as in production:
the sandbox registers a business number (the stand-in for Meta), the tenant service
registers it for a new tenant (validating its token against the sandbox), the
conversation service gets a catalog, and then a customer writes through the sandbox,
whose signed webhooks reach the gateway. The transcript and each bot message's
final status (from the state-manager) are printed.

Reads the stack's URLs and secrets from the environment (``.run/stack.env``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

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
    },
    {
        "sku": "SND-25",
        "name": "Sharp sand 25kg",
        "description": "Washed sand, 25 kg bag",
        "price": "3.20",
        "currency": "USD",
        "category": "Building",
        "stock": 800,
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


@dataclass
class Seeded:
    tenant_id: str
    account_id: str
    phone_number_id: str
    customer: str
    api_key: str


@dataclass
class Line:
    who: str
    text: str
    wamid: str | None = None
    status: str | None = None


@dataclass
class Demo:
    env: dict[str, str]
    session: aiohttp.ClientSession
    lines: list[Line] = field(default_factory=list)

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

    async def customer_says(self, seeded: Seeded, payload: dict[str, Any], shown: str) -> None:
        before = len(await self.bot_messages(seeded))
        self.lines.append(Line("customer", shown))
        await self.call(
            "POST",
            f"{self.url('SANDBOX')}/sandbox/customers/{seeded.customer}/messages",
            json={"phone_number_id": seeded.phone_number_id, "name": "Ada", **payload},
        )
        deadline = time.monotonic() + 15
        seen, settled_at = before, time.monotonic()
        while time.monotonic() < deadline:
            bot = await self.bot_messages(seeded)
            if len(bot) != seen:
                seen, settled_at = len(bot), time.monotonic()
            elif seen > before and time.monotonic() - settled_at > 0.6:
                # a reply may come in several messages: wait until they stop coming
                for message in bot[before:]:
                    self.lines.append(
                        Line("bot", render(message["message"]), wamid=message.get("wamid"))
                    )
                return
            await asyncio.sleep(0.1)
        raise SystemExit(f"no reply from the bot within 15 s after {shown!r}")

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

    async def final_statuses(
        self, seeded: Seeded, want: str = "read", timeout_s: float = 20
    ) -> None:
        headers = {
            **self.bearer(self.env["FLOWCHAT_SERVICE_TOKEN"]),
            "X-Tenant-ID": seeded.tenant_id,
        }
        deadline = time.monotonic() + timeout_s
        for line in self.lines:
            if line.who != "bot" or not line.wamid:
                continue
            while True:
                async with self.session.get(
                    f"{self.url('STATE')}/v1/messages/by-wamid/{line.wamid}", headers=headers
                ) as r:
                    line.status = (await r.json())["status"] if r.status == 200 else "unknown"
                if line.status in (want, "failed") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)


def render(message: dict[str, Any]) -> str:
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


def print_transcript(lines: list[Line]) -> None:
    print("\n=== FlowChat demo: a customer chats with Acme Hardware ===\n")
    for line in lines:
        who = "customer" if line.who == "customer" else "bot     "
        first, *rest = line.text.splitlines() or [""]
        status = f"   [{line.status}]" if line.status else ""
        print(f"{who} │ {first}{status}")
        for more in rest:
            print(f"         │ {more}")
    print()


async def run_demo(env: dict[str, str]) -> list[Line]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        demo = Demo(env, session)
        seeded = await demo.seed()
        await demo.play(seeded)
        await demo.final_statuses(seeded)
        return demo.lines


def load_env(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export ") :].split("=", 1)
                env[k] = v
    return env


def main() -> int:
    lines = asyncio.run(run_demo(load_env(ROOT / ".run" / "stack.env")))
    print_transcript(lines)
    bot = [line for line in lines if line.who == "bot"]
    if not bot or any(line.status != "read" for line in bot):
        print("some bot messages did not reach 'read'", file=sys.stderr)
        return 1
    print(f"{len(bot)} bot messages, all read.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
