"""One conversation through the real system: sandbox → gateway → conversation → sender →
sandbox, and statuses back through the gateway to the state-manager (the make demo path),
with the tenant's webhook endpoint registered with the relay and a hand-off answered by
an agent in the inbox at the end."""

from __future__ import annotations

import httpx
import pytest

#: make demo plays three conversations (Cloud API, Twilio, Spanish) through a loaded stack
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def test_customer_greeting_is_answered_and_read(platform_stack, load_script):
    demo = load_script("demo")
    run = await demo.run_demo(platform_stack.env)
    lines = run.lines
    customer = [line for line in lines if line.who == "customer"]
    sent = [line for line in lines if line.who in ("bot", "agent")]
    bot = [line for line in sent if line.who == "bot"]
    assert customer[0].text == "Hi"
    assert bot, "the bot answered nothing"
    assert "Acme Hardware" in bot[0].text
    assert all(line.wamid and line.wamid.startswith("wamid.") for line in sent)
    assert [line.status for line in sent] == ["read"] * len(sent)
    # every business message went through the sender exactly once (sandbox ledger)
    async with httpx.AsyncClient(base_url=platform_stack.urls["sandbox"]) as client:
        ledger = (await client.get("/sandbox/messages")).json()
    entries = ledger.get("messages", ledger) if isinstance(ledger, dict) else ledger
    wamids = [entry["wamid"] for entry in entries]
    assert sorted(wamids) == sorted(line.wamid for line in sent)

    # the hand-off: the agent's reply reached the customer, then the bot spoke again
    assert run.handoff_at is not None
    handoff = lines[run.handoff_at :]
    assert [line.text for line in handoff if line.who == "agent"] == [demo.AGENT_REPLY]
    after = handoff[[line.who for line in handoff].index("agent") + 1 :]
    assert "assistant again" in next(line.text for line in after if line.who == "bot")
    assert after[-1].who == "bot"
    assert after[-2].who == "customer"

    # the tenant's endpoint: one signed message.received per customer message, in order,
    # and each business message's statuses up to read
    assert run.received
    assert all(r.verified for r in run.received)
    events = [r.event for r in run.received]
    inbound = sorted(
        (e for e in events if e["type"] == "message.received"), key=lambda e: e["sequence"]
    )
    assert len(inbound) == len(customer)
    assert inbound[0]["data"]["text"] == "Hi"
    assert inbound[-1]["data"]["text"] == demo.BACK_TO_BOT
    read = {
        e["data"]["provider_message_id"]
        for e in events
        if e["type"] == "message.status" and e["data"]["status"] == "read"
    }
    assert read == {line.wamid for line in sent}

    # make demo's console part: its users sign in to the console (each lands on its home)
    people = await demo.console_demo(platform_stack.env, run.seeded)
    assert [p.role for p in people] == ["admin", "agent", "viewer", "operator"]
    console = platform_stack.urls["console"]
    for person in people:
        async with httpx.AsyncClient(base_url=console) as browser:
            await browser.get("/sign-in")
            token = browser.cookies["fc_csrf"]  # Secure (FLOWCHAT_ENV=test): sent by hand
            r = await browser.post(
                "/sign-in",
                data={"email": person.email, "password": person.password, "csrf_token": token},
                headers={"Cookie": f"fc_csrf={token}"},
            )
            assert r.status_code == 303, (person.role, r.text[-500:])
            home = "/operator" if person.role == "operator" else "/inbox"
            assert r.headers["location"] == home

    # make demo's other channel and language: the same shop over its Twilio number
    # (numbered text menus, typed answers) and a customer who chooses Spanish
    twilio, spanish = await demo.channels_demo(platform_stack.env, run.seeded)
    said = "\n".join(line.text for line in twilio.lines if line.who == "bot")
    assert "1. Building" in said
    assert "Reply with a number" in said
    assert "4 x Cement 50kg" in said
    assert "Invoice INV-" in said
    assert "TRX-55120" in twilio.lines[-1].text
    said = "\n".join(line.text for line in spanish.lines if line.who == "bot")
    assert "Cemento 50kg: 9,50\xa0US$ cada uno" in said
    assert "Factura INV-" in said
    assert spanish.lines[-1].text.startswith("¡Gracias! Recibimos tu confirmación de pago")
    for chat in (twilio, spanish):
        bot = [line for line in chat.lines if line.who == "bot"]
        assert [line.status for line in bot] == ["read"] * len(bot), chat.title
