"""One conversation through the real system: sandbox → gateway → conversation → sender →
sandbox, and statuses back through the gateway to the state-manager (the make demo path)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


async def test_customer_greeting_is_answered_and_read(platform_stack, load_script):
    demo = load_script("demo")
    lines = await demo.run_demo(platform_stack.env)
    customer = [line for line in lines if line.who == "customer"]
    bot = [line for line in lines if line.who == "bot"]
    assert customer[0].text == "Hi"
    assert bot, "the bot answered nothing"
    assert "Acme Hardware" in bot[0].text
    assert all(line.wamid and line.wamid.startswith("wamid.") for line in bot)
    assert [line.status for line in bot] == ["read"] * len(bot)
    # every bot message went through the sender exactly once (sandbox ledger)
    async with httpx.AsyncClient(base_url=platform_stack.urls["sandbox"]) as client:
        ledger = (await client.get("/sandbox/messages")).json()
    entries = ledger.get("messages", ledger) if isinstance(ledger, dict) else ledger
    wamids = [entry["wamid"] for entry in entries]
    assert sorted(wamids) == sorted(line.wamid for line in bot)
