"""``GET /v1/accounts/{account_id}/customers/{customer_id}/window``: the 24 h
customer-service window from the gateway's own record (real Redis), for the caller's
tenant's numbers only."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
import redis.asyncio as aioredis
from gateway_testkit import Gateway

from flowchat_contracts.shared_state import customer_window_key

pytestmark = pytest.mark.integration

KEY_READ = "fc_tenant_a_window_0123456789abcd"
KEY_ADMIN = "fc_tenant_a_wadmin_0123456789abcd"
KEY_B = "fc_tenant_b_window_0123456789abcd"
TENANT = "tenant-a"
ACCOUNT = "acc-meta-1"  # tenant-a's number in the kit's tenant stub


async def window(gateway: Gateway, customer: str, key: str, account: str = ACCOUNT):
    return await gateway.http.get(
        f"/v1/accounts/{account}/customers/{customer}/window",
        headers={"Authorization": f"Bearer {key}"},
    )


async def test_the_window_is_read_from_the_record_the_sender_checks(gateway: Gateway) -> None:
    gateway.tenant.api_keys.update(
        {
            KEY_READ: {"key_id": "k-w", "tenant_id": "tenant-a", "scopes": ["read"]},
            KEY_ADMIN: {"key_id": "k-wa", "tenant_id": "tenant-a", "scopes": ["admin"]},
            KEY_B: {"key_id": "k-wb", "tenant_id": "tenant-b", "scopes": ["read"]},
        }
    )
    wrote, old = 4915112300000 + int(time.time()) % 100_000, 4915112400000
    redis = aioredis.from_url(gateway.settings.redis_url)
    now = int(time.time())
    try:
        await redis.set(customer_window_key(TENANT, ACCOUNT, str(wrote)), now - 3600, ex=600)
        await redis.set(customer_window_key(TENANT, ACCOUNT, str(old)), now - 25 * 3600, ex=600)

        r = await window(gateway, f"+{wrote}", KEY_READ)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["open"] is True
        assert 23 * 3600 - 5 <= body["seconds_left"] <= 23 * 3600
        assert datetime.fromisoformat(body["last_inbound_at"]).timestamp() == now - 3600
        assert datetime.fromisoformat(body["closes_at"]).timestamp() == now - 3600 + 24 * 3600
        assert r.headers["cache-control"] == "private, max-age=60"
        assert (await window(gateway, str(wrote), KEY_READ)).json()["open"] is True

        closed = (await window(gateway, str(old), KEY_READ)).json()
        assert (closed["open"], closed["seconds_left"]) == (False, 0)
        never = (await window(gateway, "NG.13491208655302741918", KEY_READ)).json()
        assert (never["open"], never["last_inbound_at"], never["closes_at"]) == (
            False,
            None,
            None,
        )
    finally:
        await redis.delete(
            customer_window_key(TENANT, ACCOUNT, str(wrote)),
            customer_window_key(TENANT, ACCOUNT, str(old)),
        )
        await redis.aclose()

    for key, account, status in (
        (KEY_B, ACCOUNT, 404),  # another tenant's number
        (KEY_READ, "acc-nope", 404),
        (KEY_ADMIN, ACCOUNT, 403),
        ("fc_unknown_key_0000000000000000", ACCOUNT, 401),
    ):
        r = await window(gateway, str(wrote), key, account)
        assert r.status_code == status, (key, account, r.text)
