"""A flooding customer, through the whole platform: past the tenant's per-customer
inbound limit the bot says once that it will reply shortly and answers nothing more;
every message still reaches the conversation's history in the inbox, and the
conversation service counts what it dropped (``flowchat_conversation_inbound_limited_total``).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pytest

from test_e2e_conversation_commerce import open_shop
from test_e2e_inbox import agent_logs_in, until

pytestmark = pytest.mark.e2e

LIMIT = 5
FLOOD = 10


def limited(metrics: str, action: str) -> float:
    m = re.search(
        rf'^flowchat_conversation_inbound_limited_total{{action="{action}"}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(m.group(1)) if m else 0.0


async def test_a_flooding_customer_is_limited(platform_stack, load_script):
    async with httpx.AsyncClient(timeout=20) as http:
        shop = await open_shop(platform_stack, load_script, http)
        r = await http.put(
            f"{shop.api}/settings",
            json={
                "business_name": "Acme Hardware",
                "currency": "USD",
                "tax_rate": "0.075",
                "inbound_limit_per_minute": LIMIT,
            },
            headers=shop.admin,
        )
        assert r.status_code == 200, r.text
        assert r.json()["inbound_limit_per_minute"] == LIMIT
        # the window is the clock's minute: start the scenario well inside one
        if time.time() % 60 > 30:
            await asyncio.sleep(61 - time.time() % 60)
        c = shop.new_customer()
        await shop.say(c, "Hi", 2)  # message 1
        for _ in range(LIMIT - 1):  # messages 2..LIMIT: answered
            (helped,) = await shop.say(c, "help", 1)
            assert "how this chat works" in helped
        (notice,) = await shop.say(c, "help", 1)  # the first past the limit
        assert "reply shortly" in notice
        for n in range(FLOOD):  # the rest: no bot processing
            await shop.send(c, {"text": f"hello {n}?"})
        conversation = platform_stack.urls["conversation"]

        async def dropped() -> bool:
            text = (await http.get(f"{conversation}/metrics")).text
            return limited(text, "dropped") >= FLOOD and limited(text, "noticed") >= 1

        await until("the flood counted", dropped)
        await shop.settled()  # nothing more from the bot: one notice, no answers

        # every message still reached the history
        agent = await agent_logs_in(shop, "ada")
        agent.pop("user_id")
        inbox = platform_stack.urls["inbox"]

        async def history() -> list[dict[str, Any]] | None:
            r = await http.get(f"{inbox}/v1/threads", headers=agent)
            assert r.status_code == 200, r.text
            thread = next((t for t in r.json()["items"] if t["wa_id"] == c), None)
            if thread is None:
                return None
            r = await http.get(
                f"{inbox}/v1/threads/{thread['id']}/messages",
                params={"limit": 100},
                headers=agent,
            )
            items: list[dict[str, Any]] = r.json()["items"]
            inbound = [m for m in items if m["direction"] == "inbound"]
            return items if len(inbound) >= 1 + LIMIT + FLOOD else None

        messages = await until("the whole flood in the history", history)
        texts = [m["text"] for m in messages if m["direction"] == "inbound"]
        assert sorted(texts) == sorted(
            ["Hi", *["help"] * LIMIT, *[f"hello {n}?" for n in range(FLOOD)]]
        )
