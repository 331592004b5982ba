"""Sends to a BSUID (issue 21): a customer who hides the phone number behind a username.

- Meta's Cloud API addresses a BSUID with ``recipient`` (``to`` absent,
  ``recipient_type: "individual"``); phone numbers keep ``to``.
- Twilio cannot address a BSUID: such a command fails with FlowChat's own code, before
  any provider call.
- The 24 h window, the opt-out set and the pair rate limit are keyed by the id the
  command names, a BSUID as well as a phone number (the gateway records the window,
  and the opt-out set holds, every id of the person).
- Against the sandbox: a customer with a hidden phone gets a message sent to their
  BSUID, and its status webhook comes back naming them by BSUID.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from sender_testkit import Number, World, own_redis_url, world

from flowchat_contracts import OutboundCommand, TemplateContent, TextContent, optout_key
from flowchat_contracts.shared_state import customer_window_key
from flowchat_platform.testing import eventually, serve
from flowchat_sender import fates
from flowchat_sender.app import create_app
from flowchat_sender.claims import OptOutCheck, WindowCheck
from flowchat_sender.cloud_api import build_message
from flowchat_sender.ratelimit import RateLimiter
from flowchat_sender.twilio import TwilioAdapter

BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
TOKEN = "bsuid-test-service-token-01234"


def command(to: str, **kw: Any) -> OutboundCommand:
    base: dict[str, Any] = {
        "tenant_id": "t1",
        "account_id": "acc-1",
        "idempotency_key": "k1",
        "message_id": "m1",
        "to": to,
        "content": TextContent(body="hello"),
    }
    return OutboundCommand(**{**base, **kw})


# --------------------------------------------------------------------- units


@pytest.mark.parametrize("bsuid", [BSUID, PARENT])
def test_a_bsuid_goes_in_recipient_not_to(bsuid: str) -> None:
    body = build_message(command(bsuid))
    assert body["recipient"] == bsuid
    assert body["recipient_type"] == "individual"
    assert "to" not in body


def test_a_phone_number_keeps_to() -> None:
    body = build_message(command("+16505551234"))
    assert body["to"] == "16505551234"
    assert body["recipient_type"] == "individual"
    assert "recipient" not in body


def test_twilio_cannot_address_a_bsuid() -> None:
    twilio = TwilioAdapter.__new__(TwilioAdapter)
    assert not twilio.addresses(BSUID)
    assert twilio.addresses("+16505551234")
    assert fates.rule_for("flowchat", fates.RECIPIENT_UNSUPPORTED).fate is fates.Fate.FAIL


def test_window_opt_out_and_pair_keys_take_a_bsuid_as_it_is() -> None:
    assert WindowCheck("t1", "acc-1", BSUID).key == f"flowchat:csw:{{t1}}:acc-1:{BSUID}"
    assert WindowCheck("t1", "acc-1", "+16505551234").key == "flowchat:csw:{t1}:acc-1:16505551234"
    assert OptOutCheck("t1", BSUID).member == BSUID
    request = RateLimiter.__new__(RateLimiter)._keys("t1", "pn-1", BSUID)
    assert f"pn-1:{BSUID}" in " ".join(request)


# --------------------------------------------------------------------- against the sandbox


@pytest.fixture
async def w(amqp_url: str, redis_url: str) -> AsyncIterator[World]:
    number = Number.fresh("tb", "acc-b", pnid_prefix="10690")
    async with world(
        amqp_url,
        own_redis_url(redis_url),
        number,
        token=TOKEN,
        forget=[f"*{number.tenant_id}*", "flowchat:csw:*acc-b:*"],
        status_delay_s=0.05,
    ) as kit:
        yield kit


async def hidden_customer(w: World, wa_id: str, username: str) -> str:
    """A customer with a username and a hidden phone who wrote once; their BSUID."""
    r = await w.sandbox.put(
        f"/sandbox/customers/{wa_id}", json={"username": username, "phone_hidden": True}
    )
    assert r.status_code == 200, r.text
    bsuid = str(r.json()["user_id"])
    r = await w.sandbox.post(
        f"/sandbox/customers/{bsuid}/messages", json={"phone_number_id": w.pnid, "text": "hi"}
    )
    assert r.status_code == 200, r.text
    return bsuid


@pytest.mark.integration
async def test_a_hidden_phone_customer_gets_a_message_by_bsuid(w: World) -> None:
    bsuid = await hidden_customer(w, "16508880101", "ada.o")
    cmd = w.command(1, TextContent(body="Your order shipped"), to=bsuid)
    async with serve(create_app(w.settings())):
        await w.publish([cmd])
        result = (await w.results(1))[cmd.message_id]
        assert result.status == "accepted", result.error
        assert result.to == bsuid

        async def status_posted() -> list[dict[str, Any]]:
            r = await w.sandbox.get("/sandbox/webhooks")
            return [
                s
                for d in r.json()
                if d["state"] == "delivered"
                for e in d["payload"].get("entry", [])
                for c in e.get("changes", [])
                for s in c["value"].get("statuses", [])
                if s["id"] == result.provider_message_id
            ]

        statuses = await eventually(status_posted, timeout_s=10)
    assert statuses[0]["recipient_user_id"] == bsuid
    assert "recipient_id" not in statuses[0]
    [sent] = await w.ledger()
    assert sent["recipient"] == bsuid  # the sandbox's record: addressed by ``recipient``


@pytest.mark.integration
async def test_window_and_opt_out_hold_for_a_bsuid(w: World) -> None:
    closed = await hidden_customer(w, "16508880102", "bo.k")
    opted = await hidden_customer(w, "16508880103", "cy.l")
    await w.template("promo_plain", category="MARKETING")
    redis = aioredis.Redis.from_url(w.redis_url)
    # the gateway's record of the last inbound message, under the BSUID
    await redis.set(
        customer_window_key(w.tenant, w.number.account_id, closed), str(time.time() - 30 * 3600)
    )
    await redis.sadd(optout_key(w.tenant), opted)
    await redis.aclose()
    promo = TemplateContent(name="promo_plain", language="en_US")
    commands = [
        w.command(1, TextContent(body="late"), to=closed),
        w.command(2, promo, to=opted, category="marketing"),
        w.command(3, promo, to=closed, category="marketing"),
    ]
    async with serve(create_app(w.settings())):
        await w.publish(commands)
        results = await w.results(3)
    late, stopped, promo_ok = (results[c.message_id] for c in commands)
    assert late.status == "failed"
    assert late.error is not None
    assert late.error.code == fates.META_WINDOW
    assert stopped.status == "failed"
    assert stopped.error is not None
    assert stopped.error.code == fates.OPTED_OUT
    assert promo_ok.status == "accepted", promo_ok.error
    assert await w.ledger_ids() == [commands[2].message_id]
