"""Twilio's Messages API, status callbacks and inbound webhooks, checked with the
``twilio`` package's own RequestValidator."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets

import pytest
from twilio.request_validator import RequestValidator

from flowchat_platform.testing import eventually
from flowchat_sandbox.settings import Settings

WA = "2348010000005"


@pytest.fixture
async def account(client, receiver):
    data = {
        "account_sid": "AC" + secrets.token_hex(16),
        "auth_token": secrets.token_hex(16),
        "number": "+14155550100",
        "webhook_url": f"{receiver.url}/webhooks/twilio",
    }
    r = await client.post("/sandbox/twilio/accounts", json=data)
    assert r.status_code == 201, r.text
    assert "auth_token" not in r.json()
    return data


def path(account) -> str:
    return f"/2010-04-01/Accounts/{account['account_sid']}/Messages.json"


def auth(account) -> tuple[str, str]:
    return (account["account_sid"], account["auth_token"])


def signed_ok(account, received, url: str) -> bool:
    validator = RequestValidator(account["auth_token"])
    return bool(validator.validate(url, received.form(), received.headers["x-twilio-signature"]))


async def customer_writes(client, wa=WA, **content):
    r = await client.post(
        f"/sandbox/customers/{wa}/messages",
        json={"twilio_number": "+14155550100", "name": "Ada", **(content or {"text": "hi"})},
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def send_text(client, account, body: str, callback: str):
    """A text from the account's number to :data:`WA`, with a status callback."""
    return await client.post(
        path(account),
        auth=auth(account),
        data={
            "To": f"whatsapp:+{WA}",
            "From": "whatsapp:+14155550100",
            "Body": body,
            "StatusCallback": callback,
        },
    )


async def test_inbound_form_webhook_signed_like_twilio(client, account, receiver):
    sid = await customer_writes(client, text="Hello shop")
    received = receiver.requests[0]
    assert received.path == "/webhooks/twilio"
    assert received.headers["content-type"] == "application/x-www-form-urlencoded"
    url = f"{receiver.url}/webhooks/twilio"
    assert signed_ok(account, received, url)
    assert not RequestValidator("wrong-token").validate(
        url, received.form(), received.headers["x-twilio-signature"]
    )
    form = received.form()
    assert form["MessageSid"] == sid
    assert sid.startswith("SM")
    assert form["AccountSid"] == account["account_sid"]
    assert form["From"] == f"whatsapp:+{WA}"
    assert form["To"] == "whatsapp:+14155550100"
    assert form["Body"] == "Hello shop"
    assert form["WaId"] == WA
    assert form["ProfileName"] == "Ada"
    assert form["NumMedia"] == "0"


async def test_inbound_button_reply_fields(client, account, receiver):
    await customer_writes(client, button_reply={"id": "yes", "title": "Yes"})
    form = receiver.requests[0].form()
    assert form["MessageType"] == "button"
    assert form["ButtonPayload"] == "yes"
    assert form["ButtonText"] == "Yes"


async def test_send_returns_message_resource_and_signed_callbacks(client, account, receiver):
    await customer_writes(client)
    callback = f"{receiver.url}/twilio/status?tenant=7"
    r = await send_text(client, account, "Your order shipped", callback)
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["sid"].startswith("SM")
    assert len(message["sid"]) == 34
    assert message["status"] == "queued"
    assert message["account_sid"] == account["account_sid"]
    assert message["to"] == f"whatsapp:+{WA}"
    assert message["from"] == "whatsapp:+14155550100"
    assert message["body"] == "Your order shipped"
    assert message["direction"] == "outbound-api"

    def callbacks():
        return [q for q in receiver.requests if q.path == "/twilio/status"]

    await eventually(lambda: len(callbacks()) == 3, timeout_s=5)
    forms = [q.form() for q in callbacks()]
    assert [f["MessageStatus"] for f in forms] == ["sent", "delivered", "read"]
    assert all(f["MessageSid"] == message["sid"] for f in forms)
    assert all(signed_ok(account, q, callback) for q in callbacks())
    fetched = await client.get(
        f"/2010-04-01/Accounts/{account['account_sid']}/Messages/{message['sid']}.json",
        auth=auth(account),
    )
    assert fetched.json()["status"] == "read"
    ledger = (await client.get("/sandbox/messages", params={"to": WA})).json()
    assert ledger[0]["sid"] == message["sid"]
    assert ledger[0]["body"]["Body"] == "Your order shipped"


class TestStatusCallbacksOff:
    """``status_webhooks=False``: a send is answered and recorded, no callback follows."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(status_delay_s=0.01, status_webhooks=False)

    async def test_send_answered_without_callbacks(self, client, account, receiver):
        await customer_writes(client)
        callback = f"{receiver.url}/twilio/status"
        r = await send_text(client, account, "Your order shipped", callback)
        assert r.status_code == 201, r.text
        await asyncio.sleep(0.2)  # 20 status delays: every callback was due
        assert [q.path for q in receiver.requests] == ["/webhooks/twilio"]  # the inbound
        ledger = (await client.get("/sandbox/messages", params={"to": WA})).json()
        assert ledger[0]["sid"] == r.json()["sid"]


async def test_content_template_outside_window_and_plain_body_fails_63016(
    client, account, receiver
):
    callback = f"{receiver.url}/twilio/status"
    base = {"To": f"whatsapp:+{WA}", "From": "whatsapp:+14155550100", "StatusCallback": callback}
    r = await client.post(
        path(account),
        auth=auth(account),
        data={**base, "ContentSid": "HX" + "0" * 32, "ContentVariables": json.dumps({"1": "Ada"})},
    )
    assert r.status_code == 201
    template_sid = r.json()["sid"]
    r = await client.post(path(account), auth=auth(account), data={**base, "Body": "hi"})
    assert r.status_code == 201
    body_sid = r.json()["sid"]

    def statuses(sid):
        return [q.form() for q in receiver.requests if q.form().get("MessageSid") == sid]

    await eventually(lambda: statuses(body_sid) and len(statuses(template_sid)) == 3)
    failed = statuses(body_sid)
    assert [f["MessageStatus"] for f in failed] == ["failed"]
    assert failed[0]["ErrorCode"] == "63016"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"From": "whatsapp:+14155550100", "Body": "x"}, 21604),
        ({"To": "whatsapp:+2348010000005", "Body": "x"}, 21603),
        ({"To": "+2348010000005", "From": "whatsapp:+14155550100", "Body": "x"}, 21211),
        ({"To": "whatsapp:+2348010000005", "From": "whatsapp:+14155550100"}, 21619),
        ({"To": "whatsapp:+2348010000005", "From": "whatsapp:+19999999999", "Body": "x"}, 63007),
        (
            {"To": "whatsapp:+2348010000005", "From": "whatsapp:+14155550100", "Body": "x" * 1601},
            21617,
        ),
        (
            {
                "To": "whatsapp:+2348010000005",
                "From": "whatsapp:+14155550100",
                "ContentSid": "HX1",
                "ContentVariables": "{not json",
            },
            21656,
        ),
    ],
)
async def test_send_validation_errors_in_twilio_shape(client, account, data, code):
    r = await client.post(path(account), auth=auth(account), data=data)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == code
    assert body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert body["message"]


async def test_bad_credentials_are_20003(client, account):
    data = {"To": f"whatsapp:+{WA}", "From": "whatsapp:+14155550100", "Body": "x"}
    for credentials in [None, (account["account_sid"], "wrong"), ("ACother", "x")]:
        r = await client.post(path(account), auth=credentials, data=data)
        assert r.status_code == 401
        assert r.json()["code"] == 20003


async def test_undeliverable_twilio_recipient(client, account, receiver):
    await client.put(f"/sandbox/customers/{WA}", json={"undeliverable": True})
    await customer_writes(client)
    r = await send_text(client, account, "hi", f"{receiver.url}/twilio/status")
    sid = r.json()["sid"]
    await eventually(lambda: [q for q in receiver.requests if q.form().get("MessageSid") == sid])
    form = next(q.form() for q in receiver.requests if q.form().get("MessageSid") == sid)
    assert form["MessageStatus"] == "failed"
    assert form["ErrorCode"] == "63024"


async def test_customer_image_is_a_media_resource_behind_basic_auth(client, account, receiver):
    """Twilio's MediaUrl: basic auth → 307 to a short-lived CDN URL (no credentials);
    without the account's credentials 401, another message's media 404."""
    picture = b"\x89PNG\r\n\x1a\n" + b"twilio-photo" * 10
    sid = await customer_writes(
        client,
        image={
            "mime_type": "image/png",
            "caption": "this one",
            "data_base64": base64.b64encode(picture).decode(),
        },
    )
    form = receiver.requests[-1].form()
    assert form["NumMedia"] == "1"
    assert form["MediaContentType0"] == "image/png"
    assert form["Body"] == "this one"
    url = form["MediaUrl0"]
    prefix = (
        f"{client.base_url}/2010-04-01/Accounts/{account['account_sid']}/Messages/{sid}/Media/ME"
    )
    assert url.startswith(prefix), url

    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, auth=(account["account_sid"], "wrong"))).status_code == 401
    moved = await client.get(url, auth=auth(account))
    assert moved.status_code == 307
    cdn = moved.headers["location"]
    got = await client.get(cdn)  # the CDN takes no credentials
    assert got.status_code == 200
    assert got.content == picture
    assert got.headers["content-type"] == "image/png"
    assert (await client.get(cdn.replace("hash=", "hash=0"))).status_code == 403
    other = url.replace(sid, "SM" + "0" * 32)
    assert (await client.get(other, auth=auth(account))).status_code == 404

    await client.post("/sandbox/clock", json={"advance_s": 301})
    assert (await client.get(cdn)).status_code == 403  # the CDN URL lived 5 minutes
    assert (await client.get(url, auth=auth(account), follow_redirects=True)).content == picture
