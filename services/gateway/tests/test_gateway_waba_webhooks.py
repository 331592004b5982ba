"""Account-level Meta webhooks (they name only the WABA), attributed through the tenant
service's by-WABA lookup: template status to every number of the WABA, quality updates
to the number they name, an unknown WABA parked, the tenant service down → 503."""

from __future__ import annotations

import pytest
from gateway_testkit import (
    OTHER_APP_SECRET,
    TEMPLATE_APPROVED,
    WABA_ID,
    Gateway,
    meta_body,
    quality_update,
    sign,
)

from flowchat_contracts import topology
from flowchat_gateway.events import BusinessEvent
from flowchat_platform.amqp import HEADER_REASON

pytestmark = pytest.mark.integration


def second_number(gw: Gateway, **overrides: object) -> None:
    gw.tenant.add(
        account_id="acc-meta-2",
        phone_number_id="106540352242933",
        display_phone_number="+1 555-078-3999",
        **overrides,
    )


async def events(gw: Gateway) -> list[tuple[str, BusinessEvent]]:
    assert gw.broker is not None
    return [
        (m.routing_key or "", BusinessEvent.model_validate(d))
        for m, d in await gw.broker.drain(topology.EXCHANGE_EVENTS)
    ]


async def test_template_status_goes_to_every_number_of_the_waba(gateway: Gateway) -> None:
    second_number(gateway)
    r = await gateway.post_meta(meta_body(TEMPLATE_APPROVED))
    assert r.status_code == 200, r.text
    assert r.json()["published"] == 2
    got = await events(gateway)
    assert sorted(key for key, _ in got) == [
        "tenant-a.acc-meta-1.message_template_status_update",
        "tenant-a.acc-meta-2.message_template_status_update",
    ]
    assert {e.event for _, e in got} == {"APPROVED"}
    assert {e.waba_id for _, e in got} == {WABA_ID}
    assert len({e.event_id for _, e in got}) == 2
    # The tenant service was asked by WABA, not by a memory of earlier webhooks.
    assert f"/internal/v1/accounts/by-waba/{WABA_ID}" in gateway.tenant.calls

    again = await gateway.post_meta(meta_body(TEMPLATE_APPROVED))
    assert again.json()["status"] == "duplicate"
    assert await events(gateway) == []


async def test_quality_update_goes_to_the_number_it_names(gateway: Gateway) -> None:
    second_number(gateway)
    body = meta_body(quality_update("15550783999"))
    r = await gateway.post_meta(body)
    assert r.status_code == 200, r.text
    assert [(k, e.event) for k, e in await events(gateway)] == [
        ("tenant-a.acc-meta-2.phone_number_quality_update", "FLAGGED")
    ]


async def test_account_update_is_verified_with_the_waba_accounts_secret(gateway: Gateway) -> None:
    # Only the second number's app secret signed it: the first number's account is skipped.
    second_number(gateway, app_secret=OTHER_APP_SECRET)
    body = meta_body(
        {
            "field": "account_update",
            "value": {"event": "VERIFIED_ACCOUNT", "phone_number": "15550783999"},
        }
    )
    r = await gateway.post_meta(body, signature=sign(body, OTHER_APP_SECRET))
    assert r.status_code == 200, r.text
    assert [k for k, _ in await events(gateway)] == ["tenant-a.acc-meta-2.account_update"]

    forged = await gateway.post_meta(body, signature=sign(body, "some-other-secret-value"))
    assert forged.status_code == 401
    assert await events(gateway) == []


async def test_unknown_waba_is_parked_and_tenant_outage_is_503(gateway: Gateway) -> None:
    assert gateway.broker is not None
    # Learn a secret so the body naming nothing known can be authenticated.
    stray = meta_body(TEMPLATE_APPROVED, waba_id="999000999000")
    assert (await gateway.post_meta(meta_body(TEMPLATE_APPROVED))).status_code == 200
    await events(gateway)
    r = await gateway.post_meta(stray)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "parked"
    ((parked, _),) = await gateway.broker.drain(topology.QUEUE_POISON)
    assert "unknown_account" in str(parked.headers[HEADER_REASON])

    gateway.tenant.down = True
    fresh = meta_body(TEMPLATE_APPROVED, waba_id="888000888000")
    r = await gateway.post_meta(fresh)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
