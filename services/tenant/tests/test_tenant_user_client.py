"""Other services authorise users through this API: ``flowchat_platform.auth.authenticate_user``
with ``TenantClient.user`` (cached briefly), over real HTTP against this service."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from flowchat_platform.auth import UserCaller, authenticate_user
from flowchat_platform.http import ApiError
from flowchat_platform.tenant_client import TenantClient
from flowchat_platform.testing import eventually, serve
from flowchat_tenant.app import create_app


async def test_other_services_resolve_user_tokens(settings, api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    agent = await people.user(tid, "agent")
    staff = await people.user(None)
    app = create_app(settings)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        await eventually(lambda: app.state.resources.identity is not None)
        client = TenantClient(url, api.service_token, session=session, user_ttl_s=0.5)
        who = await authenticate_user(f"Bearer {agent['access_token']}", users=client)
        assert who == UserCaller(
            user_id=agent["user_id"],
            tenant_id=tid,
            role="agent",
            session_id=who.session_id,
        )
        who.require_role("agent", "admin", tenant_id=tid)
        with pytest.raises(ApiError) as other_tenant:
            who.require_role("agent", tenant_id="tnt_other")
        assert other_tenant.value.status == 404
        with pytest.raises(ApiError) as wrong_role:
            who.require_role("admin", "owner", tenant_id=tid)
        assert wrong_role.value.status == 403
        operator = await authenticate_user(f"Bearer {staff['access_token']}", users=client)
        assert operator.is_operator
        assert operator.tenant_id is None
        operator.require_role("admin", tenant_id="tnt_any")  # operators pass
        for header in (None, "Bearer", f"Basic {agent['access_token']}", "Bearer fc_key_x_y"):
            with pytest.raises(ApiError) as refused:
                await authenticate_user(header, users=client)
            assert refused.value.status == 401
        # The agent is deleted: the cache trusts the token at most user_ttl_s longer.
        r = await api.client.delete(
            f"/v1/tenants/{tid}/users/{agent['user_id']}", headers=api.operator
        )
        assert r.status_code == 204
        await asyncio.sleep(0.6)
        with pytest.raises(ApiError) as dead:
            await authenticate_user(f"Bearer {agent['access_token']}", users=client)
        assert dead.value.status == 401
        # Other services write their admin actions to the same log.
        await client.record_audit(
            tenant_id=tid,
            actor_type="user",
            actor_id=staff["user_id"],
            action="settings.update",
            target_type="settings",
            details={"fields": ["welcome_text"]},
            ip="192.0.2.1",
            user_agent="console/1",
        )
        r = await api.client.get(
            f"/v1/tenants/{tid}/audit", params={"action": "settings.update"}, headers=api.operator
        )
        [entry] = r.json()["items"]
        assert (entry["actor_type"], entry["actor_id"]) == ("user", staff["user_id"])
        assert (entry["details"], entry["ip"]) == ({"fields": ["welcome_text"]}, "192.0.2.1")
        bad = [
            {"actor_type": "cli", "action": "a.b", "target_type": "t"},
            {"actor_type": "service", "action": "drop table", "target_type": "t"},
            {"actor_type": "service", "action": "a.b", "target_type": "t", "tenant_id": "x"},
        ]
        for body in bad:
            r = await api.client.post("/internal/v1/audit", json=body, headers=api.service)
            assert r.status_code == 422, body
        r = await api.client.post(
            "/internal/v1/audit",
            json={
                "actor_type": "service",
                "action": "a.b",
                "target_type": "t",
                "details": {"x": "y" * 9000},
            },
            headers=api.service,
        )
        assert r.status_code == 413
    # The tenant service unreachable: 503, not 401.
    async with aiohttp.ClientSession() as session:
        gone = TenantClient(url, api.service_token, session=session, timeout_s=0.5)
        with pytest.raises(ApiError) as unavailable:
            await authenticate_user(f"Bearer {staff['access_token']}", users=gone)
        assert unavailable.value.status == 503
