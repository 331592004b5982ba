"""Meta's rules with their codes, on the service with a fake clock and transport (no I/O)."""

from __future__ import annotations

import asyncio
import json

import pytest

from flowchat_platform.testing import eventually
from flowchat_sandbox.app import send_validator
from flowchat_sandbox.errors import ControlError, GraphError
from flowchat_sandbox.service import Sandbox
from flowchat_sandbox.settings import Settings

PNID = "1000001"
WABA = "2000001"
TOKEN = "EAAG-test-token"
WA = "2348010000003"


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


class Transport:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []  # type: ignore[type-arg]

    async def post(self, url, body, headers, timeout_s):
        self.posts.append((url, json.loads(body)))
        return 200

    def statuses(self):
        return [
            s
            for _, p in self.posts
            for e in p["entry"]
            for c in e["changes"]
            for s in c["value"].get("statuses", [])
        ]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def transport():
    return Transport()


@pytest.fixture
async def sandbox(clock, transport):
    settings = Settings(status_delay_s=0)
    sandbox = Sandbox(settings, send_validator(), transport, clock=clock)
    sandbox.register_number(
        {
            "phone_number_id": PNID,
            "waba_id": WABA,
            "display_phone_number": "15550001111",
            "access_token": TOKEN,
            "app_secret": "s" * 32,
            "webhook_url": "http://receiver/webhooks/meta",
            "throughput_mps": 80,
        }
    )
    yield sandbox
    await sandbox.close()


def text(to=WA, body="hi"):
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


def template(name="order_update", lang="en_US", components=None, to=WA):
    body = {"name": name, "language": {"code": lang}}
    if components is not None:
        body["components"] = components
    return {"messaging_product": "whatsapp", "to": to, "type": "template", "template": body}


def body_params(*values, names=None):
    params = [{"type": "text", "text": v} for v in values]
    if names:
        for p, n in zip(params, names, strict=True):
            p["parameter_name"] = n
    return [{"type": "body", "parameters": params}]


async def code_of(sandbox, body, token=TOKEN) -> int:
    with pytest.raises(GraphError) as info:
        await sandbox.cloud.send_message(PNID, token, body)
    return info.value.code


async def customer_writes(sandbox, wa=WA):
    await sandbox.customer_writes(wa, {"phone_number_id": PNID, "text": "hello"})


async def test_throughput_over_the_number_rate_is_130429(sandbox, clock):
    # 80 mps: a burst of 80 passes at one instant, the 81st is refused
    for i in range(80):
        wa = f"23480100{i:05d}"
        await customer_writes(sandbox, wa)
    clock.now += 1  # the customers' 80 messages used the quota; a second restores it
    for i in range(80):
        await sandbox.cloud.send_message(PNID, TOKEN, text(f"23480100{i:05d}"))
    assert await code_of(sandbox, text("2348010000000")) == 130429
    clock.now += 1 / 80
    await sandbox.cloud.send_message(PNID, TOKEN, text("2348010000000"))


async def test_throughput_is_configurable_per_number(sandbox, clock):
    number = sandbox.numbers[PNID]
    sandbox.register_number({**number.__dict__, "profile": None, "throughput_mps": 2})
    await customer_writes(sandbox)
    await customer_writes(sandbox, "2348010000009")
    # the two inbound messages took this second's quota: a send must wait
    assert await code_of(sandbox, text()) == 130429
    clock.now += 1
    await sandbox.cloud.send_message(PNID, TOKEN, text())
    await sandbox.cloud.send_message(PNID, TOKEN, text("2348010000009"))
    assert await code_of(sandbox, text()) == 130429


async def test_pair_rate_burst_45_then_one_per_6s_is_131056(sandbox, clock):
    await customer_writes(sandbox)
    for _ in range(45):
        await sandbox.cloud.send_message(PNID, TOKEN, text())
        clock.now += 0.02  # keep under the number's throughput
    assert await code_of(sandbox, text()) == 131056
    # another recipient is not affected
    await customer_writes(sandbox, "2348010000009")
    await sandbox.cloud.send_message(PNID, TOKEN, text("2348010000009"))
    clock.now += 6
    await sandbox.cloud.send_message(PNID, TOKEN, text())
    assert await code_of(sandbox, text()) == 131056


async def test_24h_window_opens_with_the_customer_and_closes_after_24h(sandbox, clock):
    assert await code_of(sandbox, text()) == 131047
    await customer_writes(sandbox)
    clock.now += 24 * 3600 - 1
    await sandbox.cloud.send_message(PNID, TOKEN, text())
    clock.now += 2
    assert await code_of(sandbox, text()) == 131047
    await customer_writes(sandbox)  # writing again refreshes it
    await sandbox.cloud.send_message(PNID, TOKEN, text())


async def test_templates_go_outside_the_window(sandbox):
    sandbox.create_template(
        {
            "waba_id": WABA,
            "name": "order_update",
            "language": "en_US",
            "components": [{"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"}],
        }
    )
    out = await sandbox.cloud.send_message(
        PNID, TOKEN, template(components=body_params("Ada", "42"))
    )
    assert out["messages"][0]["message_status"] == "accepted"


@pytest.mark.parametrize(
    ("status", "code"),
    [("PENDING", 132001), ("REJECTED", 132001), ("PAUSED", 132015), ("DISABLED", 132016)],
)
async def test_template_status_codes(sandbox, status, code):
    sandbox.create_template(
        {"waba_id": WABA, "name": "promo", "language": "en_US", "status": status}
    )
    assert await code_of(sandbox, template("promo")) == code


async def test_template_missing_or_other_language_or_waba_is_132001(sandbox):
    sandbox.create_template({"waba_id": WABA, "name": "promo", "language": "en_US"})
    sandbox.create_template({"waba_id": "other-waba", "name": "elsewhere", "language": "en_US"})
    assert await code_of(sandbox, template("nope")) == 132001
    assert await code_of(sandbox, template("promo", lang="fr")) == 132001
    assert await code_of(sandbox, template("elsewhere")) == 132001
    await sandbox.cloud.send_message(PNID, TOKEN, template("promo"))


async def test_template_lookup_by_waba_name_language_follows_replacement(sandbox):
    for i in range(200):  # other WABAs' templates of the same name and language
        sandbox.create_template({"waba_id": f"waba-{i}", "name": "promo", "language": "en_US"})
    first = sandbox.create_template(
        {"waba_id": WABA, "name": "promo", "language": "en_US", "status": "PAUSED"}
    )
    assert sandbox.find_template(WABA, "promo", "en_US") is first
    assert sandbox.find_template("waba-7", "promo", "en_US").waba_id == "waba-7"
    with pytest.raises(ControlError) as taken:
        sandbox.create_template({"waba_id": WABA, "name": "promo", "language": "en_US"})
    assert taken.value.status == 409
    assert await code_of(sandbox, template("promo")) == 132015  # the PAUSED one
    # the same id again under another name: the old name is free, the new one found
    sandbox.create_template({"id": first.id, "waba_id": WABA, "name": "sale", "language": "en_US"})
    assert sandbox.find_template(WABA, "promo", "en_US") is None
    assert await code_of(sandbox, template("promo")) == 132001
    await sandbox.cloud.send_message(PNID, TOKEN, template("sale"))


async def test_template_parameter_count_is_132000(sandbox):
    sandbox.create_template(
        {
            "waba_id": WABA,
            "name": "order_update",
            "language": "en_US",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
                {"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped"},
            ],
        }
    )
    header = {"type": "header", "parameters": [{"type": "text", "text": "42"}]}
    assert await code_of(sandbox, template(components=body_params("Ada", "42"))) == 132000
    assert await code_of(sandbox, template(components=[header, *body_params("Ada")])) == 132000
    assert await code_of(sandbox, template(components=[header])) == 132000
    await sandbox.cloud.send_message(
        PNID, TOKEN, template(components=[header, *body_params("Ada", "42")])
    )


async def test_template_parameter_format_is_132012(sandbox):
    sandbox.create_template(
        {
            "waba_id": WABA,
            "name": "named",
            "language": "en_US",
            "parameter_format": "NAMED",
            "components": [{"type": "BODY", "text": "Hi {{first_name}}, total {{total}}"}],
        }
    )
    sandbox.create_template(
        {
            "waba_id": WABA,
            "name": "positional",
            "language": "en_US",
            "components": [
                {"type": "HEADER", "format": "IMAGE"},
                {"type": "BODY", "text": "Hi {{1}}"},
            ],
        }
    )
    assert await code_of(sandbox, template("named", components=body_params("a", "b"))) == 132012
    wrong = body_params("a", "b", names=["first_name", "surname"])
    assert await code_of(sandbox, template("named", components=wrong)) == 132012
    right = body_params("a", "b", names=["total", "first_name"])
    await sandbox.cloud.send_message(PNID, TOKEN, template("named", components=right))

    image = {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x"}}]}
    named = body_params("a", names=["first"])
    assert await code_of(sandbox, template("positional", components=[image, *named])) == 132012
    video = {"type": "header", "parameters": [{"type": "video", "video": {"id": "1"}}]}
    plain = body_params("a")
    assert await code_of(sandbox, template("positional", components=[video, *plain])) == 132012
    assert await code_of(sandbox, template("positional", components=plain)) == 132000
    await sandbox.cloud.send_message(
        PNID, TOKEN, template("positional", components=[image, *plain])
    )


async def test_marketing_to_opted_out_customer_fails_131050(sandbox, transport):
    sandbox.create_template(
        {"waba_id": WABA, "name": "sale", "language": "en_US", "category": "MARKETING"}
    )
    sandbox.create_template({"waba_id": WABA, "name": "receipt", "language": "en_US"})
    sandbox.configure_customer(WA, {"opted_out_marketing": True})
    out = await sandbox.cloud.send_message(PNID, TOKEN, template("sale"))
    wamid = out["messages"][0]["id"]
    await eventually(lambda: any(s["id"] == wamid for s in transport.statuses()))
    failed = [s for s in transport.statuses() if s["id"] == wamid]
    assert [s["status"] for s in failed] == ["failed"]
    assert failed[0]["errors"][0]["code"] == 131050
    # utility templates still reach the customer
    out = await sandbox.cloud.send_message(PNID, TOKEN, template("receipt"))
    receipt = out["messages"][0]["id"]
    await eventually(lambda: len([s for s in transport.statuses() if s["id"] == receipt]) == 3)
    pricing = next(s["pricing"] for s in transport.statuses() if s["id"] == receipt)
    assert pricing == {
        "billable": True,
        "pricing_model": "PMP",
        "category": "utility",
        "type": "regular",
    }


async def test_template_status_change_emits_webhook(sandbox, transport):
    created = sandbox.create_template({"waba_id": WABA, "name": "promo", "language": "en_US"})
    await sandbox.set_template_status(created.id, "PAUSED", "LOW_QUALITY")
    _, payload = transport.posts[-1]
    change = payload["entry"][0]["changes"][0]
    assert change["field"] == "message_template_status_update"
    assert change["value"]["event"] == "PAUSED"
    assert change["value"]["message_template_name"] == "promo"
    assert change["value"]["message_template_language"] == "en_US"
    assert change["value"]["reason"] == "LOW_QUALITY"
    assert await code_of(sandbox, template("promo")) == 132015


async def test_injected_error_code_for_the_next_n_sends(sandbox):
    await customer_writes(sandbox)
    sandbox.set_faults(PNID, {"error_code": 131000, "error_count": 2})
    assert await code_of(sandbox, text()) == 131000
    assert await code_of(sandbox, text()) == 131000
    await sandbox.cloud.send_message(PNID, TOKEN, text())


async def test_reset_cancels_pending_statuses(sandbox, transport):
    sandbox.settings = Settings(status_delay_s=5)
    await customer_writes(sandbox)
    await sandbox.cloud.send_message(PNID, TOKEN, text())
    await sandbox.reset()
    await asyncio.sleep(0)
    assert transport.statuses() == []
    assert sandbox.ledger == {}
