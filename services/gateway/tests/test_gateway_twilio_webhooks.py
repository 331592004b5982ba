"""Twilio webhooks end to end, signed by the ``twilio`` package's RequestValidator."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import pytest
import redis.asyncio as aioredis
from gateway_testkit import TWILIO_TOKEN, Gateway
from twilio.request_validator import RequestValidator

from flowchat_contracts import InboundMessage, StatusUpdate, topology
from flowchat_contracts.shared_state import customer_window_key
from flowchat_gateway import metrics
from flowchat_gateway.normalize import _message_identity, event_id_for

pytestmark = pytest.mark.integration

ACCOUNT_ID = "acc-tw-1"
PATH = f"/webhooks/twilio/{ACCOUNT_ID}"


@pytest.fixture
def twilio_gateway(gateway: Gateway) -> Gateway:
    gateway.tenant.add(
        account_id=ACCOUNT_ID,
        tenant_id="tenant-t",
        provider="twilio",
        phone_number_id=None,
        waba_id=None,
        app_secret=None,
        access_token=None,
        twilio_account_sid="AC0123456789abcdef0123456789abcdef",
        twilio_auth_token=TWILIO_TOKEN,
        twilio_number="+14155550100",
    )
    return gateway


def inbound_form(sid: str = "SM00000000000000000000000000000001", **extra: str) -> dict[str, str]:
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": "Ann",
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": "14155552671",
        "SmsStatus": "received",
        "Body": "Hi, is the blue one in stock?",
        "To": "whatsapp:+14155550100",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "whatsapp:+14155552671",
        "ApiVersion": "2010-04-01",
        **extra,
    }


async def post_twilio(
    gw: Gateway,
    form: dict[str, str],
    *,
    path: str = PATH,
    query: str = "",
    tamper: bool = False,
    token: str = TWILIO_TOKEN,
):
    url = gw.settings.public_url.rstrip("/") + path + (f"?{query}" if query else "")
    signature = RequestValidator(token).compute_signature(url, form)
    sent = dict(form)
    if tamper:
        sent["Body"] = sent.get("Body", "") + "!"
    return await gw.http.post(
        path + (f"?{query}" if query else ""),
        content=urlencode(sent).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def test_signed_inbound_message_is_published_and_answered_with_empty_twiml(
    twilio_gateway: Gateway,
) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    r = await post_twilio(gw, inbound_form())
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/xml")
    assert "<Response/>" in r.text
    ((message, data),) = await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    event = InboundMessage.model_validate(data)
    assert (event.provider, event.provider_message_id) == (
        "twilio",
        "SM00000000000000000000000000000001",
    )
    assert event.customer_wa_id == "14155552671"
    assert (event.type, event.text, event.customer_name) == (
        "text",
        "Hi, is the blue one in stock?",
        "Ann",
    )
    assert (event.tenant_id, event.account_id) == ("tenant-t", ACCOUNT_ID)
    assert message.routing_key == topology.inbound_routing_key("tenant-t", ACCOUNT_ID, "text")
    # The customer's window is keyed by the WhatsApp id, the form the sender reads.
    client = aioredis.Redis.from_url(gw.settings.redis_url)
    try:
        assert await client.exists(customer_window_key("tenant-t", ACCOUNT_ID, "14155552671")) == 1
        assert await client.exists(customer_window_key("tenant-t", ACCOUNT_ID, "+14155552671")) == 0
    finally:
        await client.aclose()


async def test_query_string_is_part_of_the_signed_url(twilio_gateway: Gateway) -> None:
    r = await post_twilio(twilio_gateway, inbound_form(), query="source=wa&x=1")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("case", ["one_byte", "other_token", "missing"])
async def test_invalid_signature_is_401_and_nothing_published(
    twilio_gateway: Gateway, case: str
) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    if case == "missing":
        r = await gw.http.post(
            PATH,
            content=urlencode(inbound_form()).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    elif case == "one_byte":
        r = await post_twilio(gw, inbound_form(), tamper=True)
    else:
        r = await post_twilio(gw, inbound_form(), token="another-auth-token-000000")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_signature"
    assert await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []


async def test_duplicate_inbound_is_published_once(twilio_gateway: Gateway) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    for _ in range(3):
        assert (await post_twilio(gw, inbound_form())).status_code == 200
    assert len(await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)) == 1


async def test_a_copy_while_this_gateway_publishes_the_event_waits_and_is_a_duplicate(
    twilio_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redelivery while a request of the same gateway still publishes the event (its
    claim held, the broker's confirm not in) waits for that publish: nothing is
    published for it, and once the first is confirmed both are 200, the copy a
    duplicate. (A claim held by another gateway is 409: the Meta test of a claim left
    behind.)"""
    gw = twilio_gateway
    assert gw.broker is not None
    service = gw.app.state.webhooks
    publish_all = service.publisher.publish_all
    publishing, confirm = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def held(outgoing: list[Any]) -> list[BaseException | None]:
        calls.append(len(outgoing))
        publishing.set()
        await confirm.wait()
        return await publish_all(outgoing)  # type: ignore[no-any-return]

    monkeypatch.setattr(service.publisher, "publish_all", held)
    sid = "SM00000000000000000000000000000042"
    key = gw.app.state.store.dedupe_key(
        ACCOUNT_ID, event_id_for(ACCOUNT_ID, _message_identity("twilio", sid))
    )
    duplicates = metrics.WEBHOOKS.labels("twilio", "webhook", "duplicate")._value
    in_flight = metrics.WEBHOOKS.labels("twilio", "webhook", "in_flight")._value
    duplicates_before, in_flight_before = duplicates.get(), in_flight.get()
    client = aioredis.Redis.from_url(gw.settings.redis_url, decode_responses=True)
    try:
        first = asyncio.create_task(post_twilio(gw, inbound_form(sid)))
        await asyncio.wait_for(publishing.wait(), timeout=5)
        assert str(await client.get(key)).startswith("p:")  # claimed, not yet done
        again = asyncio.create_task(post_twilio(gw, inbound_form(sid)))
        await asyncio.sleep(0.3)
        assert not again.done()  # waiting for the first's confirm
        assert await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []

        confirm.set()
        assert (await first).status_code == 200
        copy = await again
        assert copy.status_code == 200, copy.text
        assert "<Response/>" in copy.text
        assert calls == [1]  # the copy published nothing
        published = await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
        assert [data["provider_message_id"] for _, data in published] == [sid]
        assert duplicates.get() == duplicates_before + 1
        assert in_flight.get() == in_flight_before
        redelivered = await post_twilio(gw, inbound_form(sid))
        assert redelivered.status_code == 200, redelivered.text
        assert duplicates.get() == duplicates_before + 2
        assert await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND) == []
        assert service._publishing == {}
    finally:
        confirm.set()
        await client.aclose()


async def test_a_copy_of_an_event_this_gateway_failed_to_publish_is_409(
    twilio_gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request's publish is not confirmed (503, its claim released): the copy
    that waited for it is 409, and the provider's next retry publishes the event."""
    gw = twilio_gateway
    assert gw.broker is not None
    service = gw.app.state.webhooks
    publish_all = service.publisher.publish_all
    publishing, fail = asyncio.Event(), asyncio.Event()

    async def refused(outgoing: list[Any]) -> list[BaseException | None]:
        publishing.set()
        await fail.wait()
        return [ConnectionError("nacked")] * len(outgoing)

    monkeypatch.setattr(service.publisher, "publish_all", refused)
    sid = "SM00000000000000000000000000000043"
    first = asyncio.create_task(post_twilio(gw, inbound_form(sid)))
    await asyncio.wait_for(publishing.wait(), timeout=5)
    again = asyncio.create_task(post_twilio(gw, inbound_form(sid)))
    await asyncio.sleep(0.3)
    assert not again.done()
    fail.set()
    assert (await first).status_code == 503
    copy = await again
    assert copy.status_code == 409, copy.text
    assert copy.json()["error"]["code"] == "in_flight"
    assert int(copy.headers["retry-after"]) > 0
    monkeypatch.setattr(service.publisher, "publish_all", publish_all)
    retried = await post_twilio(gw, inbound_form(sid))
    assert retried.status_code == 200, retried.text
    published = await gw.broker.drain(topology.QUEUE_CONVERSATION_INBOUND)
    assert [data["provider_message_id"] for _, data in published] == [sid]
    text = (await gw.http.get("/metrics")).text
    assert (
        'flowchat_gateway_webhooks_total{kind="webhook",outcome="in_flight",provider="twilio"}'
        in text
    )


def status_form(state: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": "SM00000000000000000000000000000099",
        "SmsSid": "SM00000000000000000000000000000099",
        "MessageStatus": state,
        "SmsStatus": state,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "whatsapp:+14155550100",
        "To": "whatsapp:+14155552671",
        "ApiVersion": "2010-04-01",
        **extra,
    }


async def test_status_callbacks(twilio_gateway: Gateway) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    for form in (
        status_form("queued"),
        status_form("sent"),
        status_form("delivered"),
        status_form("delivered"),  # a repeat
        status_form("read"),
    ):
        r = await post_twilio(gw, form)
        assert r.status_code == 200, r.text
        assert "<Response/>" in r.text
    statuses = await gw.broker.drain(topology.QUEUE_STATE_STATUS)
    events = [StatusUpdate.model_validate(d) for _, d in statuses]
    # the repeat is published again under the same event id: the state-manager applies it once
    assert [e.status for e in events] == ["sent", "delivered", "delivered", "read"]
    assert events[1].event_id == events[2].event_id
    assert {e.provider for e in events} == {"twilio"}
    assert events[0].recipient_id == "14155552671"
    assert {m.routing_key for m, _ in statuses} == {
        topology.status_routing_key("tenant-t", ACCOUNT_ID, "status_update")
    }


async def test_undelivered_is_failed_with_the_error_code(twilio_gateway: Gateway) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    r = await post_twilio(gw, status_form("undelivered", ErrorCode="63016"))
    assert r.status_code == 200
    ((_, data),) = await gw.broker.drain(topology.QUEUE_STATE_STATUS)
    event = StatusUpdate.model_validate(data)
    assert event.status == "failed"
    assert [e.code for e in event.errors] == [63016]
    # The reason is kept: the code's title when Twilio sends no text (issue 21, defect 5).
    assert "24-hour window" in event.errors[0].title
    assert event.errors[0].details == event.errors[0].title


async def test_failed_callback_keeps_twilios_error_text(twilio_gateway: Gateway) -> None:
    gw = twilio_gateway
    assert gw.broker is not None
    form = status_form(
        "failed", ErrorCode="63024", ChannelStatusMessage="Invalid recipient (131026)"
    )
    assert (await post_twilio(gw, form)).status_code == 200
    ((_, data),) = await gw.broker.drain(topology.QUEUE_STATE_STATUS)
    (error,) = StatusUpdate.model_validate(data).errors
    assert (error.code, error.title) == (63024, "Invalid message recipient")
    assert error.details == "Invalid recipient (131026)"


async def test_unknown_or_non_twilio_account_is_404(twilio_gateway: Gateway) -> None:
    gw = twilio_gateway
    r = await post_twilio(gw, inbound_form(), path="/webhooks/twilio/no-such-account")
    assert r.status_code == 404
    r = await post_twilio(gw, inbound_form(), path="/webhooks/twilio/acc-meta-1")
    assert r.status_code == 404


async def test_wrong_content_type_is_415(twilio_gateway: Gateway) -> None:
    r = await twilio_gateway.http.post(PATH, json=inbound_form())
    assert r.status_code == 415
