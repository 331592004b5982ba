"""A hand-off through the whole platform (issue 23): a customer asks the bot for an agent
through the sandbox (signed webhook → gateway → conversation); the conversation service
publishes ``handoff_requested``; the inbox opens a waiting conversation with the whole
history (the customer's and the bot's messages, copied from the queues). The agent is
a real user: invited through the tenant service's API, sets a password, logs in, and
uses the access token of that login on the inbox (resolved by the tenant service). The
agent claims the conversation (a second agent is refused with the holder) and replies
(inbox → sender → sandbox); the agent resolves, the inbox publishes
``handoff_resolved``, the conversation service releases the hand-off ("assistant
again") and the bot answers the next message.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import pytest

from stackkit import ProcessStack, load_script
from test_e2e_conversation_commerce import Shop, open_shop

pytestmark = pytest.mark.e2e


async def until(what: str, check: Any, timeout_s: float = 20) -> Any:
    """The first truthy result of ``await check()`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(0.1)


async def agent_logs_in(shop: Shop, name: str) -> dict[str, str]:
    """A new agent of the shop's tenant: invited (by an operator, through the tenant
    service's API), the password set from the invitation, logged in; the bearer headers
    of the login's access token and the user id."""
    tenant = shop.stack.urls["tenant"]
    operator = {"Authorization": f"Bearer {shop.stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    email = f"{name}-{secrets.token_hex(4)}@acme.example"
    r = await shop.http.post(
        f"{tenant}/v1/tenants/{shop.seeded.tenant_id}/users",
        json={"email": email, "role": "agent", "name": name.title()},
        headers=operator,
    )
    assert r.status_code == 201, r.text
    invitation = r.json()["invitation"]["token"]
    password = secrets.token_urlsafe(16)
    r = await shop.http.post(
        f"{tenant}/v1/auth/invitations/accept", json={"token": invitation, "password": password}
    )
    assert r.status_code == 200, r.text
    r = await shop.http.post(f"{tenant}/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    login = r.json()
    assert login["user"]["role"] == "agent"
    return {
        "Authorization": f"Bearer {login['access_token']}",
        "user_id": login["user"]["user_id"],
    }


async def hand_off_to_an_agent_and_back(shop: Shop, inbox: str) -> None:
    ada = await agent_logs_in(shop, "ada")
    ada_id = ada.pop("user_id")
    agent = ada
    r = await shop.http.get(f"{inbox}/v1/conversations", headers={"Authorization": "Bearer fca.x"})
    assert r.status_code == 401  # no token the tenant service issued: refused
    c = shop.new_customer()
    hello = await shop.say(c, "Hi", 1)
    assert "Acme Hardware" in hello[0]
    (connecting,) = await shop.say(c, "agent", 1)
    assert "connecting you" in connecting
    # the bot is quiet while people have the customer
    await shop.send(c, {"text": "hello? anyone?"})

    async def waiting() -> dict[str, Any] | None:
        r = await shop.http.get(
            f"{inbox}/v1/conversations", params={"view": "waiting"}, headers=agent
        )
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            t = await shop.http.get(f"{inbox}/v1/threads/{item['thread_id']}", headers=agent)
            if t.json()["wa_id"] == c:
                found: dict[str, Any] = item
                return found
        return None

    conversation = await until("the waiting conversation", waiting)
    assert conversation["status"] == "waiting"
    assert conversation["assignee"] is None
    assert conversation["reason"]
    assert conversation["bot_state"]
    thread = conversation["thread_id"]

    async def history() -> list[dict[str, Any]] | None:
        r = await shop.http.get(f"{inbox}/v1/threads/{thread}/messages", headers=agent)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        # newest first: 3 from the customer, 2 from the bot (the greeting, "connecting you")
        return items if len(items) >= 5 else None

    messages = list(reversed(await until("the whole history", history)))
    authors = [(m["direction"], m["author"]) for m in messages]
    assert authors.count(("inbound", "customer")) == 3, authors
    assert authors.count(("outbound", "bot")) == 2, authors
    inbound_texts = [m["text"] for m in messages if m["direction"] == "inbound"]
    assert inbound_texts == ["Hi", "agent", "hello? anyone?"]
    assert any("connecting you" in (m["text"] or "") for m in messages if m["author"] == "bot")

    url = f"{inbox}/v1/conversations/{conversation['id']}"
    claimed = await shop.http.post(f"{url}/claim", headers=agent)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["assignee"] == ada_id
    bo = await agent_logs_in(shop, "bo")
    bo.pop("user_id")
    other = await shop.http.post(f"{url}/claim", headers=bo)
    assert other.status_code == 409, other.text
    assert other.json()["error"]["details"][0]["holder"] == ada_id

    body = "Hi, this is Ada from Acme. How can I help?"
    r = await shop.http.post(
        f"{url}/messages",
        json={"content": {"type": "text", "body": body}, "idempotency_key": "ada-1"},
        headers=agent,
    )
    assert r.status_code == 202, r.text
    shop.expected[c] += 1
    got = await shop.wait(c, shop.expected[c])
    assert shop.demo.render(got[-1]["message"]) == body

    r = await shop.http.get(f"{inbox}/v1/threads/{thread}/messages", headers=agent)
    mine = [m for m in r.json()["items"] if m["author"] == "agent"]
    assert [(m["agent_id"], m["text"]) for m in mine] == [(ada_id, body)]

    r = await shop.http.post(f"{url}/resolve", headers=agent)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolved_by"]) == ("resolved", ada_id)
    shop.expected[c] += 1
    back = await shop.wait(c, shop.expected[c])
    assert "assistant again" in shop.demo.render(back[-1]["message"])

    # the bot answers again
    menu = await shop.say(c, "menu", 1)
    assert "[" in menu[0]  # the catalogue list
    await shop.settled()


def test_a_customer_is_handed_to_an_agent_and_back_to_the_bot(
    platform_stack: ProcessStack,
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            shop = await open_shop(platform_stack, load_script, http)
            await hand_off_to_an_agent_and_back(shop, platform_stack.urls["inbox"])

    asyncio.run(scenario())
