"""The Cloud-API-compatible routes, held to a real client: pywa (PyPI), used unchanged.

pywa addresses ``https://graph.facebook.com/v{version}``; only its transport is pointed
at the gateway (as ``tools/sandbox/tests/test_sandbox_pywa.py`` points it at the
sandbox), and its token is a FlowChat API key. The gateway runs over real HTTP against
real RabbitMQ and Redis, the sandbox as Meta's Graph API (mark-as-read, templates) and
a recording stand-in of the sender's media API. Every message pywa sends must come back
with an id that names FlowChat's queued command (``meta_ids.wamid_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from gateway_testkit import (
    PHONE_NUMBER_ID,
    SERVICE_TOKEN,
    Broker,
    TenantStub,
    customer_writes,
    gateway_settings,
    pywa_client,
    register_number,
    running_gateway,
    sandbox_number,
)
from pywa.errors import WhatsAppError
from pywa.types.callback import Button, Section, SectionList, SectionRow
from pywa.types.others import Contact
from pywa.types.templates import BodyText, TemplateLanguage

from flowchat_contracts import OutboundCommand, topology
from flowchat_contracts.meta_ids import message_id_of, wamid_of
from flowchat_gateway.app import create_app
from flowchat_platform.testing import serve
from flowchat_sandbox.app import create_app as create_sandbox
from flowchat_sandbox.settings import Settings as SandboxSettings

pytestmark = pytest.mark.integration

KEY = "fc_live_tenant_a_send_0123456789"
KEY_READ_ONLY = "fc_live_tenant_a_none_0123456789"
KEY_B = "fc_live_tenant_b_send_0123456789"
CUSTOMER = "4915112345678"
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64
T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


class ServicesStub:
    """The sender's ``POST /internal/v1/media`` (recording what it was given) and the
    state-manager's ``GET /v1/messages/{id}`` (the messages in ``sent``: FlowChat's id →
    the provider's WAMID)."""

    def __init__(self) -> None:
        self.uploads: list[dict[str, Any]] = []
        self.sent: dict[str, str] = {}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/messages/{message_id}")
        async def message(message_id: str, request: Request) -> JSONResponse:
            if request.headers.get("x-tenant-id") != "tenant-a" or message_id not in self.sent:
                return JSONResponse({"error": {"code": "not_found"}}, status_code=404)
            return JSONResponse({"id": message_id, "provider_message_id": self.sent[message_id]})

        @app.post("/internal/v1/media")
        async def upload(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {SERVICE_TOKEN}":
                return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
            body = await request.body()
            if request.headers.get("content-type") == "video/x-refused":
                error = {"code": "provider_refused", "message": "Meta refused the file"}
                return JSONResponse({"error": error}, status_code=422)
            if request.headers.get("content-type") == "text/x-unknown":
                error = {"code": "unsupported_media_type", "message": "not a WhatsApp type"}
                return JSONResponse({"error": error}, status_code=415)
            self.uploads.append(
                {
                    "params": dict(request.query_params),
                    "mime": request.headers.get("content-type"),
                    "body": body,
                }
            )
            return JSONResponse({"media_id": "5550001", "mime_type": "image/png"})

        return app


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


@pytest.fixture
async def world(module_amqp_url: str, redis_url: str, tenant_stub: TenantStub):
    """Sandbox (as Graph) with one number, a template and an inbound message; the gateway
    over HTTP; tenant-a owns the number, tenant-b owns another."""
    media = ServicesStub()
    async with contextlib.AsyncExitStack() as stack:
        sandbox = await stack.enter_async_context(
            running(create_sandbox(SandboxSettings(status_delay_s=0.01, webhook_max_attempts=1)))
        )
        sender = await stack.enter_async_context(running(media.app()))
        number = sandbox_number("99", "15550001111", "http://127.0.0.1:9/webhooks/meta")
        async with httpx.AsyncClient(base_url=sandbox, timeout=10) as sb:
            await register_number(sb, number)
            r = await sb.post(
                "/sandbox/templates",
                json={
                    "waba_id": number["waba_id"],
                    "name": "order_update",
                    "language": "en_US",
                    "status": "APPROVED",
                    "category": "UTILITY",
                    "components": [
                        {
                            "type": "BODY",
                            "text": "Hi {{1}}, order {{2}} is on its way",
                            "example": {"body_text": [["Ada", "A-17"]]},
                        }
                    ],
                },
            )
            assert r.status_code == 201, r.text
            inbound = await customer_writes(sb, number, CUSTOMER)
        tenant_stub.reset()
        tenant_stub.accounts.clear()
        tenant_stub.add(
            account_id="acc-a",
            tenant_id="tenant-a",
            phone_number_id=number["phone_number_id"],
            waba_id=number["waba_id"],
            access_token=number["access_token"],
            app_secret=number["app_secret"],
        )
        tenant_stub.add(
            account_id="acc-b", tenant_id="tenant-b", phone_number_id="222333444", waba_id="999"
        )
        tenant_stub.api_keys.update(
            {
                KEY: {"key_id": "key-a", "tenant_id": "tenant-a", "scopes": ["send"]},
                KEY_READ_ONLY: {"key_id": "key-r", "tenant_id": "tenant-a", "scopes": ["none"]},
                KEY_B: {"key_id": "key-b", "tenant_id": "tenant-b", "scopes": ["send"]},
            }
        )
        settings = gateway_settings(
            module_amqp_url,
            redis_url,
            tenant_stub.url,
            graph_url=sandbox,
            FLOWCHAT_SENDER_URL=sender,
            FLOWCHAT_STATE_URL=sender,
        )
        app = create_app(settings)
        gateway = await stack.enter_async_context(running(app))
        async with httpx.AsyncClient(base_url=gateway, timeout=10) as http:
            for _ in range(500):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.01)
        broker = Broker(module_amqp_url)
        await broker.open()
        stack.push_async_callback(broker.close)
        wa = pywa_client(stack, gateway, number, KEY, waba_id=number["waba_id"])
        yield {
            "wa": wa,
            "gateway": gateway,
            "number": number,
            "inbound": inbound,
            "broker": broker,
            "media": media,
        }


async def queued(broker: Broker) -> list[OutboundCommand]:
    out = []
    for queue in (topology.QUEUE_OUTBOUND, topology.QUEUE_OUTBOUND_BULK):
        for _, data in await broker.drain(queue):
            out.append(OutboundCommand.model_validate(data))
    return out


async def test_pywa_sends_every_type_through_the_gateway(world) -> None:
    wa, inbound = world["wa"], world["inbound"]
    sent = [
        await call(wa.send_message, to=CUSTOMER, text="hello", reply_to_message_id=inbound),
        await call(wa.send_image, to=CUSTOMER, image="https://example.com/a.jpg", caption="c"),
    ]
    media = await call(wa.upload_media, media=PNG, mime_type="image/png", filename="a.png")
    assert media.id == "5550001"
    (upload,) = world["media"].uploads
    assert upload["params"] == {
        "tenant_id": "tenant-a",
        "account_id": "acc-a",
        "filename": "a.png",
    }
    assert upload["mime"] == "image/png"
    assert upload["body"] == PNG
    sent += [
        await call(wa.send_image, to=CUSTOMER, image=media),
        await call(wa.send_audio, to=CUSTOMER, audio="https://example.com/a.ogg"),
        await call(wa.send_video, to=CUSTOMER, video="https://example.com/a.mp4"),
        await call(
            wa.send_document, to=CUSTOMER, document="https://example.com/a.pdf", filename="a.pdf"
        ),
        await call(wa.send_sticker, to=CUSTOMER, sticker="https://example.com/a.webp"),
        await call(
            wa.send_template,
            to=CUSTOMER,
            name="order_update",
            language=TemplateLanguage.ENGLISH_US,
            params=[BodyText.params("Ada", "A-17")],  # type: ignore[arg-type]
        ),
        await call(
            wa.send_message,
            to=CUSTOMER,
            text="pick one",
            buttons=[Button(title="Yes", callback_data="y"), Button(title="No", callback_data="n")],
        ),
        await call(
            wa.send_message,
            to=CUSTOMER,
            text="pick one",
            buttons=SectionList(
                button_title="Menu",
                sections=[Section(title="S", rows=[SectionRow(title="R1", callback_data="r1")])],
            ),
        ),
        await call(wa.send_reaction, to=CUSTOMER, emoji="👍", message_id=inbound),
        await call(wa.send_location, to=CUSTOMER, latitude=52.5, longitude=13.4, name="Shop"),
        await call(
            wa.send_contact,
            to=CUSTOMER,
            contact=Contact(
                name=Contact.Name(formatted_name="Support", first_name="Support"),
                phones=[Contact.Phone(phone="+4930123456", type="WORK")],
            ),
        ),
        await call(wa.send_message, to="US.13491208655302741918", text="to a BSUID"),
    ]
    assert all(s.id.startswith("wamid.") for s in sent)
    assert [s.to for s in sent[:-1]] == [CUSTOMER] * (len(sent) - 1)
    assert sent[-1].to == "US.13491208655302741918"  # pywa reads contacts[0].user_id
    assert (await call(wa.mark_message_as_read, message_id=inbound)).success

    commands = await queued(world["broker"])
    by_id = {c.message_id: c for c in commands}
    assert len(by_id) == len(sent)
    kinds = []
    for s in sent:
        command = by_id[message_id_of(s.id) or ""]
        assert wamid_of(command.message_id) == s.id
        assert (command.tenant_id, command.account_id) == ("tenant-a", "acc-a")
        kinds.append(command.content.type)
    assert kinds == [
        "text", "image", "image", "audio", "video", "document", "sticker", "template",
        "interactive_buttons", "interactive_list", "reaction", "location", "contacts", "text",
    ]  # fmt: skip
    first = by_id[message_id_of(sent[0].id) or ""]
    assert first.to == CUSTOMER
    assert first.reply_to == inbound
    assert by_id[message_id_of(sent[-1].id) or ""].to == "US.13491208655302741918"
    template = by_id[message_id_of(sent[7].id) or ""]
    assert template.category == "utility"  # the template's own category, from Graph
    assert template.content.type == "template"
    assert [p.text for p in template.content.components[0].parameters] == ["Ada", "A-17"]
    assert by_id[message_id_of(sent[2].id) or ""].content.media_id == "5550001"  # type: ignore[union-attr]


async def test_pywa_lists_templates_through_the_gateway(world) -> None:
    result = await call(world["wa"].get_templates)
    assert [t.name for t in result] == ["order_update"]


async def post(world, path: str, body: Any, key: str = KEY, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=world["gateway"], timeout=10) as http:
        return await http.post(
            path, content=json.dumps(body), headers={"Authorization": f"Bearer {key}", **headers}
        )


def text_body(**extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": "hi"},
        **extra,
    }


def assert_meta_error(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["fbtrace_id"]
    return error


async def test_refusals_in_metas_shape_and_nothing_queued(world) -> None:
    pnid = world["number"]["phone_number_id"]
    path = f"/v23.0/{pnid}/messages"
    # another tenant's number, an unknown one: Meta's permission error
    assert_meta_error(await post(world, "/v23.0/222333444/messages", text_body()), 403, 10)
    assert_meta_error(await post(world, "/v23.0/777/messages", text_body()), 403, 10)
    assert_meta_error(await post(world, path, text_body(), key=KEY_B), 403, 10)
    # a bad key; a key without the send scope
    assert_meta_error(await post(world, path, text_body(), key="fc_nope"), 401, 190)
    assert_meta_error(await post(world, path, text_body(), key=KEY_READ_ONLY), 403, 200)
    # bad bodies
    error = assert_meta_error(await post(world, path, {**text_body(), "text": {}}), 400, 100)
    assert "text.body" in error["error_data"]["details"]
    assert_meta_error(await post(world, path, text_body(bogus=1)), 400, 100)
    assert_meta_error(await post(world, path, text_body(to="12")), 400, 100)
    assert_meta_error(await post(world, path, text_body(type="poll")), 400, 131051)
    async with httpx.AsyncClient(base_url=world["gateway"], timeout=10) as http:
        r = await http.post(path, content=b"{not json", headers={"Authorization": f"Bearer {KEY}"})
    assert_meta_error(r, 400, 100)
    assert await queued(world["broker"]) == []


async def test_idempotency_key_replays_and_conflicts(world) -> None:
    path = f"/v23.0/{world['number']['phone_number_id']}/messages"
    first = await post(world, path, text_body(), **{"Idempotency-Key": "k-1"})
    again = await post(world, path, text_body(), **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert first.json()["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
    conflict = await post(
        world, path, text_body(text={"body": "other"}), **{"Idempotency-Key": "k-1"}
    )
    assert_meta_error(conflict, 409, 100)
    # without a key every request is a new message
    a = await post(world, path, text_body(biz_opaque_callback_data="mine"))
    b = await post(world, path, text_body(biz_opaque_callback_data="mine"))
    assert a.json()["messages"][0]["id"] != b.json()["messages"][0]["id"]
    commands = await queued(world["broker"])
    assert len(commands) == 3
    assert [c.callback_data for c in commands] == [None, "mine", "mine"]
    assert commands[0].idempotency_key == "k-1"


async def test_mark_read_passes_metas_refusal_through(world) -> None:
    path = f"/v23.0/{world['number']['phone_number_id']}/messages"
    r = await post(
        world, path, {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == 100  # the sandbox's (Meta's) own answer
    with pytest.raises(WhatsAppError):
        await call(world["wa"].mark_message_as_read, message_id="wamid.nope")


async def test_a_reply_or_reaction_to_a_flowchat_id_goes_to_the_providers_id(world) -> None:
    wa = world["wa"]
    path = f"/v23.0/{world['number']['phone_number_id']}/messages"
    first = await call(wa.send_message, to=CUSTOMER, text="your order")
    # not sent yet: the provider knows no id for it
    r = await post(
        world,
        path,
        text_body(type="reaction", text=None, reaction={"message_id": first.id, "emoji": "👍"}),
    )
    assert_meta_error(r, 400, 131009)
    world["media"].sent[message_id_of(first.id)] = "wamid.PROVIDER1"
    reply = await call(
        wa.send_message, to=CUSTOMER, text="it shipped", reply_to_message_id=first.id
    )
    reaction = await call(wa.send_reaction, to=CUSTOMER, emoji="👍", message_id=first.id)
    by_id = {c.message_id: c for c in await queued(world["broker"])}
    assert by_id[message_id_of(reply.id) or ""].reply_to == "wamid.PROVIDER1"
    content = by_id[message_id_of(reaction.id) or ""].content
    assert content.type == "reaction"
    assert content.message_id == "wamid.PROVIDER1"
    assert len(by_id) == 3  # the refused reaction was not queued


async def test_tenant_service_down_is_metas_temporary_error(world, tenant_stub) -> None:
    tenant_stub.down = True
    r = await post(
        world,
        f"/v23.0/{world['number']['phone_number_id']}/messages",
        text_body(),
        key="fc_uncached_key_000000",
    )
    error = assert_meta_error(r, 503, 2)
    assert "tenant" in error["error_data"]["details"]
    assert r.headers["retry-after"] == "2"
    assert await queued(world["broker"]) == []


async def test_rate_limit_and_a_twilio_number_in_metas_shape(
    module_amqp_url: str, redis_url: str, tenant_stub: TenantStub
) -> None:
    async with running_gateway(
        module_amqp_url, redis_url, tenant_stub, send_rate_per_minute=2
    ) as gw:
        tenant_stub.api_keys[KEY] = {
            "key_id": "key-rl",
            "tenant_id": "tenant-a",
            "scopes": ["send"],
        }
        tenant_stub.add(
            account_id="acc-tw",
            provider="twilio",
            phone_number_id="14155238886",
            twilio_number="+14155238886",
        )
        auth = {"Authorization": f"Bearer {KEY}"}
        read = {"messaging_product": "whatsapp", "status": "read", "message_id": "SM1"}
        r = await gw.http.post("/v23.0/14155238886/messages", json=read, headers=auth)
        error = assert_meta_error(r, 400, 100)
        assert "provider" in error["error_data"]["details"]
        r = await gw.http.post(f"/v23.0/{PHONE_NUMBER_ID}/messages", json=text_body(), headers=auth)
        assert r.status_code == 200, r.text
        r = await gw.http.post(f"/v23.0/{PHONE_NUMBER_ID}/messages", json=text_body(), headers=auth)
        assert_meta_error(r, 429, 4)
        assert int(r.headers["retry-after"]) >= 1
        assert gw.broker is not None
        assert len(await queued(gw.broker)) == 1


async def test_media_refusals_and_templates_paging(world) -> None:
    pnid = world["number"]["phone_number_id"]
    async with httpx.AsyncClient(base_url=world["gateway"], timeout=10) as http:
        auth = {"Authorization": f"Bearer {KEY}"}

        def upload(mime: str, **data: str) -> Any:
            return http.post(
                f"/v23.0/{pnid}/media",
                files={"file": ("a.bin", b"\x00\x01", mime)},
                data={"messaging_product": "whatsapp", "type": mime, **data},
                headers=auth,
            )

        assert_meta_error(await upload("video/x-refused"), 400, 131053)
        error = assert_meta_error(await upload("text/x-unknown"), 400, 100)
        assert "not a WhatsApp type" in error["error_data"]["details"]
        r = await http.post(
            f"/v23.0/{pnid}/media",
            files={"file": ("a.png", PNG, "image/png")},
            data={"type": "image/png"},
            headers=auth,
        )
        assert_meta_error(r, 400, 100)  # no messaging_product
        r = await http.post(f"/v23.0/{pnid}/media", json={"file": "x"}, headers=auth)
        assert_meta_error(r, 400, 100)  # not multipart
        r = await http.post("/v23.0/222333444/media", files={"file": ("a", b"x")}, headers=auth)
        assert_meta_error(r, 403, 10)  # another tenant's number
        assert world["media"].uploads == []
        # another tenant's WABA; the caller's own, one per page
        r = await http.get("/v23.0/999/message_templates", headers=auth)
        assert_meta_error(r, 403, 10)
        r = await http.get(
            f"/v23.0/{world['number']['waba_id']}/message_templates",
            params={"limit": "1", "fields": "name,category"},
            headers=auth,
        )
    assert r.status_code == 200, r.text
    page = r.json()
    assert [t["name"] for t in page["data"]] == ["order_update"]
    assert world["number"]["access_token"] not in r.text
