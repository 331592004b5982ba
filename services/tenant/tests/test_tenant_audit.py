"""The audit log and migration 0003, against real PostgreSQL.

Every admin action (users, keys, numbers, settings) leaves an entry naming who, what,
when and from where; tenant admins read their tenant's, operators every tenant's, in
pages of ``{items, next_cursor}``. Migration 0003 applies to a database already in
use at 0002, keeping its tenants and keys working.
"""

from __future__ import annotations

import asyncpg

from flowchat_platform.db import migrate
from flowchat_tenant.app import MIGRATIONS, SCHEMA
from flowchat_tenant.crypto import digest

AGENT = {"User-Agent": "audit-test/1.0", "X-Forwarded-For": "192.0.2.44"}


async def test_every_admin_action_is_audited_with_who_and_where(api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    owner = await people.user(tid, "owner")
    me = {**owner["headers"], **AGENT}
    t = f"/v1/tenants/{tid}"
    account = await api.account(tid, api.meta_body(), headers=me)
    steps = [
        ("PATCH", t, {"business_name": "Acme Two"}),
        ("PATCH", f"{t}/accounts/{account['account_id']}", {"tier": "gold"}),
        ("POST", f"{t}/accounts/{account['account_id']}/business-profile", {"about": "Hi"}),
        ("POST", f"{t}/api-keys", {"name": "ci", "scopes": ["send"]}),
        ("POST", f"{t}/users", {"email": "new@agent.example", "role": "agent"}),
    ]
    answers = []
    for method, url, body in steps:
        r = await api.client.request(method, url, json=body, headers=me)
        assert 200 <= r.status_code < 300, r.text
        answers.append(r.json())
    key_id = answers[3]["key_id"]
    user_id = answers[4]["user"]["user_id"]
    for method, url, body in [
        ("PATCH", f"{t}/users/{user_id}", {"role": "viewer"}),
        ("POST", f"{t}/users/{user_id}/password-reset", None),
        ("DELETE", f"{t}/users/{user_id}", None),
        ("DELETE", f"{t}/api-keys/{key_id}", None),
        ("DELETE", f"{t}/accounts/{account['account_id']}", None),
    ]:
        r = await api.client.request(method, url, json=body, headers=me)
        assert 200 <= r.status_code < 300, (url, r.text)

    r = await api.client.get(f"{t}/audit", params={"limit": 100}, headers=owner["headers"])
    assert r.status_code == 200
    page = r.json()
    assert page["next_cursor"] is None
    mine = [e for e in page["items"] if e["actor_id"] == owner["user_id"]]
    assert [e["action"] for e in reversed(mine)] == [
        "user.invitation_accept",
        "number.create",
        "tenant.update",
        "number.update",
        "number.business_profile.update",
        "api_key.create",
        "user.invite",
        "user.update",
        "user.password_reset",
        "user.delete",
        "api_key.revoke",
        "number.delete",
    ]
    for entry in mine[:-1]:  # (the acceptance came without these headers)
        assert entry["actor_type"] == "user"
        assert entry["tenant_id"] == tid
        assert (entry["ip"], entry["user_agent"]) == ("192.0.2.44", "audit-test/1.0")
        assert entry["at"]
    by_action = {e["action"]: e for e in mine}
    assert by_action["tenant.update"]["details"] == {"fields": ["business_name"]}
    assert by_action["user.update"]["details"] == {"role": "viewer"}
    assert by_action["user.update"]["target_id"] == user_id
    assert by_action["api_key.revoke"]["target_id"] == key_id
    # No secret reaches the log: neither the invitation token nor the key.
    text = r.text
    assert answers[3]["key"] not in text
    assert answers[4]["invitation"]["token"] not in text
    # The operator key's actions are there too (the owner's invitation), and the invitee's
    # own acceptance.
    everyone = {(e["actor_type"], e["action"]) for e in page["items"]}
    assert ("operator_key", "user.invite") in everyone
    assert ("user", "user.invitation_accept") in everyone


async def test_audit_pages_filters_and_who_may_read(api, people):
    a = (await api.tenant(name="A"))["tenant_id"]
    b = (await api.tenant(name="B"))["tenant_id"]
    for n in range(7):
        await api.client.patch(f"/v1/tenants/{a}", json={"name": f"A{n}"}, headers=api.operator)
    await api.client.patch(f"/v1/tenants/{b}", json={"name": "B1"}, headers=api.operator)
    admin = await people.user(a, "admin")
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, "action": "tenant.update"}
        if cursor:
            params["cursor"] = cursor
        r = await api.client.get(f"/v1/tenants/{a}/audit", params=params, headers=admin["headers"])
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 3
        seen += [e["id"] for e in page["items"]]
        assert {e["tenant_id"] for e in page["items"]} == {a}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7
    assert seen == sorted(seen, reverse=True)  # newest first, no repeats
    # Another tenant's log: 404; agents and viewers: 403; a bad cursor: 400.
    assert (
        await api.client.get(f"/v1/tenants/{b}/audit", headers=admin["headers"])
    ).status_code == 404
    for role in ("agent", "viewer"):
        someone = await people.user(a, role)
        r = await api.client.get(f"/v1/tenants/{a}/audit", headers=someone["headers"])
        assert r.status_code == 403
    r = await api.client.get(
        f"/v1/tenants/{a}/audit", params={"cursor": "drop table"}, headers=admin["headers"]
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_cursor"
    # The operator reads every tenant's, or one's.
    r = await api.client.get("/v1/operator/audit", params={"limit": 200}, headers=api.operator)
    assert {a, b} <= {e["tenant_id"] for e in r.json()["items"]}
    r = await api.client.get("/v1/operator/audit", params={"tenant_id": b}, headers=api.operator)
    assert {e["tenant_id"] for e in r.json()["items"]} == {b}
    assert (await api.client.get("/v1/operator/audit", headers=admin["headers"])).status_code == 403


async def test_migration_0003_applies_on_a_database_in_use(database_url, another_service):
    await migrate(database_url, MIGRATIONS, schema=SCHEMA, revision="0002")
    key = "fc_key_00aa11bb22cc33dd_" + "ab" * 32
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")
        assert not await conn.fetchval("SELECT to_regclass('users') IS NOT NULL")
        await conn.execute(
            "INSERT INTO tenants (id, name, business_name) VALUES ('tnt_0a0b', 'Old', 'Old Ltd')"
        )
        await conn.execute(
            "INSERT INTO api_keys (id, tenant_id, name, scopes, key_hash) "
            "VALUES ('key_00aa11bb22cc33dd', 'tnt_0a0b', 'old', ARRAY['admin'], $1)",
            digest(key),
        )
    finally:
        await conn.close()
    async with another_service() as client:  # starts the service: migrates to head
        old = {"Authorization": f"Bearer {key}"}
        r = await client.get("/v1/tenants/tnt_0a0b", headers=old)
        assert r.status_code == 200
        assert r.json()["name"] == "Old"
        r = await client.post(
            "/v1/tenants/tnt_0a0b/users",
            json={"email": "first@old.example", "role": "admin"},
            headers=old,
        )
        assert r.status_code == 201
        r = await client.get("/v1/tenants/tnt_0a0b/audit", headers=old)
        assert [(e["actor_type"], e["actor_id"], e["action"]) for e in r.json()["items"]] == [
            ("api_key", "key_00aa11bb22cc33dd", "user.invite")
        ]
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval(f"SELECT version_num FROM {SCHEMA}.alembic_version")
    finally:
        await conn.close()
    assert version == "0003"


async def test_purge_forgets_quiet_counters_and_ended_sessions(app, api, people, database_url):
    tenant = await api.tenant()
    someone = await people.user(tenant["tenant_id"])
    await people.login("nobody@example.com", "wrong password!!")
    r = await api.client.post("/v1/auth/logout", headers=api.bearer(someone["session_token"]))
    assert r.status_code == 204
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"SET search_path TO {SCHEMA}")

        async def counts() -> tuple[int, int, int]:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM login_throttle) AS t, "
                "(SELECT count(*) FROM sessions) AS s, (SELECT count(*) FROM user_tokens) AS u"
            )
            assert row is not None
            return row["t"], row["s"], row["u"]

        assert await counts() == (2, 1, 1)  # the e-mail's and the address's counters
        identity = app.state.resources.identity
        assert await identity.purge() == 0  # all of it recent
        await conn.execute("UPDATE login_throttle SET last_failure_at = now() - interval '1 day'")
        await conn.execute("UPDATE sessions SET revoked_at = now() - interval '8 days'")
        await conn.execute("UPDATE user_tokens SET used_at = now() - interval '8 days'")
        assert await identity.purge() == 4
        assert await counts() == (0, 0, 0)
    finally:
        await conn.close()
