"""The sandbox held to a real client: pywa (PyPI, maintained), used unchanged.

pywa addresses ``https://graph.facebook.com/v{version}`` and lets no one change that, so
only its transport is pointed at the sandbox: ``session=httpx.Client(transport=...)``
(pywa's documented way to configure its HTTP client) with a transport that rewrites the
scheme, host and port of every request. Whatever pywa sends, the sandbox must accept,
as Meta does; whatever the sandbox posts as webhooks, pywa's own signature check and
parser must read. pywa is synchronous, so its calls run in a thread beside the sandbox's
event loop. pywa logs (and swallows) an update it cannot parse, so every webhook test
asserts that the handler ran and saw the right fields.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from pywa import utils
from pywa.client import WhatsApp
from pywa.errors import WhatsAppError
from pywa.handlers import (
    MessageHandler,
    MessageStatusHandler,
    PhoneNumberChangeHandler,
    UserMarketingPreferencesHandler,
)
from pywa.types.callback import Button, Section, SectionList, SectionRow
from pywa.types.templates import (
    BodyText,
    HeaderImage,
    QuickReplyButton,
    TemplateLanguage,
    URLButton,
)

from flowchat_platform.testing import eventually
from flowchat_sandbox.settings import Settings

PHONE = "15551230001"  # writes with a visible phone number
HIDDEN = "15551230002"  # a username, the phone hidden: known to the business by BSUID only
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64
BSUID = re.compile(r"^[A-Z]{2}\.\d+$")  # what pywa recognises as a BSUID

T = TypeVar("T")


class ToSandbox(httpx.BaseTransport):
    """Sends every request pywa addresses to graph.facebook.com to the sandbox instead."""

    def __init__(self, base: str) -> None:
        self._base = httpx.URL(base)
        self._inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        base = self._base
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
        request.headers["host"] = f"{base.host}:{base.port}"
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking pywa call, off the event loop the sandbox runs on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


ORDER_UPDATE = {
    "name": "order_update",
    "language": "en_US",
    "status": "APPROVED",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://e.x/h.jpg"]}},
        {
            "type": "BODY",
            "text": "Hi {{1}}, order {{2}} is on its way",
            "example": {"body_text": [["Ada", "A-17"]]},
        },
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Track"},
                {
                    "type": "URL",
                    "text": "Open",
                    "url": "https://example.com/o/{{1}}",
                    "example": ["https://example.com/o/A-17"],
                },
            ],
        },
    ],
}


@pytest.fixture
async def world(client, number, h) -> dict[str, Any]:
    """A number with a template; a customer who wrote by phone, one who wrote by username."""
    r = await client.post("/sandbox/templates", json={"waba_id": number.waba_id, **ORDER_UPDATE})
    assert r.status_code == 201, r.text
    inbound = await h.open_window(client, number, PHONE)
    r = await client.post(
        f"/sandbox/customers/{HIDDEN}/messages",
        json={
            "phone_number_id": number.phone_number_id,
            "name": "Sheena",
            "username": "sheena.n",
            "phone_hidden": True,
            "text": "hi, it's Sheena",
        },
    )
    assert r.status_code == 200, r.text
    phone = (await client.get(f"/sandbox/customers/{PHONE}")).json()
    hidden = (await client.get(f"/sandbox/customers/{HIDDEN}")).json()
    return {"inbound": inbound, "phone": phone, "hidden": hidden}


@pytest.fixture
def wa(servers, number):
    session = httpx.Client(transport=ToSandbox(servers[0]), timeout=10)
    client = WhatsApp(
        phone_id=number.phone_number_id,
        token=number.access_token,
        waba_id=number.waba_id,
        app_secret=number.app_secret,
        session=session,
        skip_duplicate_updates=False,
    )
    yield client
    session.close()


async def test_pywa_sends_what_meta_accepts(wa, world, client, number):
    sent = [
        await call(wa.send_message, to=PHONE, text="hello"),
        await call(wa.send_image, to=PHONE, image="https://example.com/a.jpg", caption="c"),
    ]
    media = await call(wa.upload_media, media=PNG, mime_type="image/png", filename="a.png")
    assert media.id.isdigit()
    sent.append(await call(wa.send_image, to=PHONE, image=media))
    sent.append(
        await call(
            wa.send_template,
            to=PHONE,
            name="order_update",
            language=TemplateLanguage.ENGLISH_US,
            params=[
                HeaderImage.params(image="https://example.com/a.jpg"),
                # pywa declares it without `self` (called on the class): mypy misreads it
                BodyText.params("Ada", "A-17"),  # type: ignore[arg-type]
                QuickReplyButton.params(callback_data="track", index=0),
                URLButton.params(url_variable="A-17", index=1),
            ],
        )
    )
    sent.append(
        await call(
            wa.send_message,
            to=PHONE,
            text="pick one",
            buttons=[Button(title="Yes", callback_data="y"), Button(title="No", callback_data="n")],
        )
    )
    sent.append(
        await call(
            wa.send_message,
            to=PHONE,
            text="pick one",
            buttons=SectionList(
                button_title="Menu",
                sections=[Section(title="S", rows=[SectionRow(title="R1", callback_data="r1")])],
            ),
        )
    )
    sent.append(await call(wa.send_reaction, to=PHONE, emoji="👍", message_id=world["inbound"]))
    assert all(s.id.startswith("wamid.") for s in sent)
    assert all(s.to == PHONE for s in sent)
    assert (await call(wa.mark_message_as_read, message_id=world["inbound"])).success

    ledger = (await client.get("/sandbox/messages", params={"to": PHONE})).json()
    assert [e["type"] for e in ledger] == [
        "text", "image", "image", "template", "interactive", "interactive", "reaction",
    ]  # fmt: skip
    # pywa writes component types in upper case, as Meta's live API takes them
    template = ledger[3]["body"]["template"]
    assert [c["type"] for c in template["components"]] == ["HEADER", "BODY", "button", "button"]
    assert ledger[2]["body"]["image"] == {"id": media.id}


async def test_pywa_reads_the_phone_number(wa, number, client):
    phone = await call(wa.get_business_phone_number)
    assert phone.id == number.phone_number_id
    assert phone.display_phone_number == number.display_phone_number
    assert phone.quality_rating == "GREEN"
    assert phone.platform_type == "CLOUD_API"
    assert phone.code_verification_status == "VERIFIED"
    assert phone.status == "CONNECTED"
    assert phone.conversational_automation is not None
    assert phone.throughput == {"level": "STANDARD"}
    assert phone.whatsapp_business_manager_messaging_limit == "TIER_1K"
    assert phone.country_code == "US"
    assert phone.country_dial_code == "1"
    assert phone.health_status is not None
    assert phone.health_status["can_send_message"] == "AVAILABLE"
    assert phone.webhook_configuration == {"application": number.webhook_url}
    # only a field Meta does not have is refused, with Meta's error
    r = await client.get(
        f"/v23.0/{number.phone_number_id}",
        params={"fields": "verified_name,no_such_field"},
        headers=number.auth,
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == 100
    assert "nonexisting field (no_such_field)" in error["error_data"]["details"]


async def test_pywa_lists_templates_with_the_summary(wa, world):
    result = await call(wa.get_templates)
    assert [t.name for t in result] == ["order_update"]
    assert result.total_count == 1
    assert result.message_template_count == 1
    assert result.message_template_limit == 250
    assert result.are_translations_complete is True
    assert result[0].status.value == "APPROVED"


async def test_pywa_sends_to_a_bsuid(wa, world, client, receiver, h):
    bsuid = world["hidden"]["user_id"]
    assert BSUID.match(bsuid)
    sent = await call(wa.send_message, to=bsuid, text="hello Sheena")
    assert sent.id.startswith("wamid.")
    assert sent.to == bsuid  # pywa reads contacts[0].user_id of Meta's answer
    (entry,) = (await client.get("/sandbox/messages", params={"to": bsuid})).json()
    assert entry["recipient"] == bsuid
    assert "to" not in entry["body"]
    assert entry["body"]["recipient_type"] == "individual"
    statuses = await h.wait_statuses(receiver, sent.id, 3)
    assert statuses == ["sent", "delivered", "read"]
    for status in receiver.statuses(sent.id):
        assert "recipient_id" not in status  # sent to a BSUID: no phone
        assert status["recipient_user_id"] == bsuid
    # a BSUID the business was never given reaches no one
    with pytest.raises(WhatsAppError) as refused:
        await call(wa.send_message, to="US.13491208655302741918", text="who?")
    assert refused.value.code == 100


async def test_pywa_parses_the_sandbox_webhooks(wa, world, client, number, receiver):
    seen: list[tuple[str, Any]] = []
    wa.add_handlers(
        MessageHandler(lambda _, m: seen.append(("message", m))),
        MessageStatusHandler(lambda _, s: seen.append(("status", s))),
        UserMarketingPreferencesHandler(lambda _, p: seen.append(("preferences", p))),
        PhoneNumberChangeHandler(lambda _, c: seen.append(("user_id_change", c))),
    )
    phone, hidden = world["phone"], world["hidden"]
    by_phone = await call(wa.send_message, to=PHONE, text="to the phone")
    by_bsuid = await call(wa.send_message, to=hidden["user_id"], text="to the BSUID")
    r = await client.post(
        f"/sandbox/customers/{hidden['user_id']}/preferences",
        json={"phone_number_id": number.phone_number_id, "value": "stop"},
    )
    assert r.status_code == 200, r.text
    await eventually(lambda: len(receiver.statuses()) >= 6, timeout_s=5)
    r = await client.post(
        f"/sandbox/customers/{PHONE}/user-id-change",
        json={"phone_number_id": number.phone_number_id},
    )
    assert r.status_code == 200, r.text
    new_user_id = r.json()["customer"]["user_id"]

    for received in receiver.requests:
        signature = received.headers["x-hub-signature-256"]
        assert utils.webhook_updates_validator(number.app_secret, received.body, signature)
        assert wa.webhook_update_validator(received.body, signature) is None
        assert await call(wa.webhook_update_handler, received.body) == ("ok", 200)

    messages = [m for kind, m in seen if kind == "message"]
    assert [(m.from_user.wa_id, m.from_user.bsuid, m.text) for m in messages] == [
        (PHONE, phone["user_id"], "hello"),
        (None, hidden["user_id"], "hi, it's Sheena"),
    ]
    assert messages[1].from_user.username == "sheena.n"
    assert messages[1].from_user.name == "Sheena"

    statuses = {(s.id, s.status.value): s for kind, s in seen if kind == "status"}
    assert {key[1] for key in statuses if key[0] == by_phone.id} == {"sent", "delivered", "read"}
    delivered = statuses[(by_phone.id, "delivered")]
    assert (delivered.from_user.wa_id, delivered.from_user.bsuid) == (PHONE, phone["user_id"])
    assert delivered.pricing is not None
    assert delivered.pricing.type is not None
    assert delivered.pricing.type.value == "free_customer_service"
    assert delivered.pricing.category.value == "service"
    read = statuses[(by_bsuid.id, "read")]
    assert (read.from_user.wa_id, read.from_user.bsuid) == (None, hidden["user_id"])
    assert read.from_user.username == "sheena.n"
    assert statuses[(by_bsuid.id, "sent")].from_user.username is None  # not on `sent`

    (preference,) = [p for kind, p in seen if kind == "preferences"]
    assert preference.value.value == "stop"
    assert preference.category.value == "marketing_messages"
    assert preference.from_user.bsuid == hidden["user_id"]
    assert preference.from_user.wa_id is None

    (change,) = [c for kind, c in seen if kind == "user_id_change"]
    assert change.sys_type.value == "user_changed_user_id"
    assert change.new_user_id == new_user_id != phone["user_id"]
    assert (
        change.raw["entry"][0]["changes"][0]["value"]["messages"][0]["system"]["previous_user_id"]
        == phone["user_id"]
    )


class TestOnePersonWhicheverId:
    """The 24 h window and the pair rate are the person's, by phone or by BSUID."""

    @pytest.fixture
    def settings(self) -> Settings:
        return Settings(status_delay_s=0.01, webhook_max_attempts=1, pair_rate_burst=3)

    async def test_window_and_pair_rate_hold_per_person(self, wa, client, number, h):
        r = await client.put(
            f"/sandbox/customers/{HIDDEN}", json={"username": "sheena.n", "phone_hidden": True}
        )
        bsuid = r.json()["user_id"]
        # no window yet, whichever id is used
        for to in (HIDDEN, bsuid):
            with pytest.raises(WhatsAppError) as closed:
                await call(wa.send_message, to=to, text="hi")
            assert closed.value.code == 131047
        # the customer writes (as their BSUID): the window opens for the person
        r = await client.post(
            f"/sandbox/customers/{bsuid}/messages",
            json={"phone_number_id": number.phone_number_id, "text": "hello"},
        )
        assert r.status_code == 200, r.text
        await call(wa.send_message, to=HIDDEN, text="1")
        await call(wa.send_message, to=bsuid, text="2")
        await call(wa.send_message, to=HIDDEN, text="3")
        with pytest.raises(WhatsAppError) as paced:
            await call(wa.send_message, to=bsuid, text="4")
        assert paced.value.code == 131056
