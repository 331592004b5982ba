"""The permission matrix: role x route x other tenant, against real PostgreSQL.

Every public route of the tenant service is tried by an owner, an admin, an agent, a
viewer (access tokens from a real login), an operator user and two API keys (admin
scope, send scope): on their own tenant (fresh objects per caller) the answer is 2xx
where the role may act and 403 where it may not; on another tenant, with that
tenant's real ids, it is 404 for everyone but the operator, and nothing there changes.
A route missing from the matrix fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ALL = {"owner", "admin", "agent", "viewer", "key_admin"}
ADMINS = {"owner", "admin", "key_admin"}
T = "/v1/tenants/{tenant_id}"
ACC = T + "/accounts/{account_id}"
USR = T + "/users/{user_id}"

Body = Callable[[Any], Any] | None
#: (method, path, body, who may) - in an order where deletions come last
MATRIX: list[tuple[str, str, Body, set[str]]] = [
    ("GET", T, None, ALL),
    ("PATCH", T, lambda api: {"business_name": "Renamed"}, ADMINS),
    ("GET", T + "/accounts", None, ALL),
    ("POST", T + "/accounts", lambda api: api.meta_body(), ADMINS),
    ("GET", ACC, None, ALL),
    ("PATCH", ACC, lambda api: {"tier": "gold"}, ADMINS),
    ("POST", ACC + "/health/refresh", None, ADMINS),
    ("GET", ACC + "/business-profile", None, ALL),
    ("POST", ACC + "/business-profile", lambda api: {"about": "Changed"}, ADMINS),
    ("GET", T + "/api-keys", None, ADMINS),
    ("POST", T + "/api-keys", lambda api: {"name": "k", "scopes": ["send"]}, ADMINS),
    ("GET", T + "/api-keys/{key_id}", None, ADMINS),
    ("GET", T + "/users", None, ALL),
    ("POST", T + "/users", lambda api: {"email": f"n{api.unique()}@x.example"}, ADMINS),
    ("GET", USR, None, ALL),
    ("PATCH", USR, lambda api: {"role": "viewer"}, ADMINS),
    ("POST", USR + "/password-reset", None, ADMINS),
    ("GET", T + "/audit", None, ADMINS),
    ("DELETE", USR, None, ADMINS),
    ("DELETE", T + "/api-keys/{key_id}", None, ADMINS),
    ("DELETE", ACC, None, ADMINS),
]
#: Routes that are not a tenant's: the operator's own, and the caller's own.
OPERATOR_ONLY: list[tuple[str, str, dict[str, str] | None]] = [
    ("POST", "/v1/tenants", {"name": "Mine"}),
    ("GET", "/v1/operator/users", None),
    ("POST", "/v1/operator/users", {"email": "evil@x.example"}),
    ("GET", "/v1/operator/users/{operator_id}", None),
    ("PATCH", "/v1/operator/users/{operator_id}", {"status": "disabled"}),
    ("POST", "/v1/operator/users/{operator_id}/password-reset", None),
    ("GET", "/v1/operator/audit", None),
    ("DELETE", "/v1/operator/users/{operator_id}", None),
]
OWN = {("GET", "/v1/tenants"), ("GET", "/v1/me"), ("PATCH", "/v1/me"), ("POST", "/v1/me/password")}
AUTH = {
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("POST", "/v1/auth/invitations/accept"),
    ("POST", "/v1/auth/password-reset"),
}


async def _objects(api, people, tid: str) -> dict[str, str]:
    """Fresh objects of a tenant, for one caller to act on."""
    account = await api.account(tid, api.meta_body())
    key = await api.key(tid, ["send"])
    target = await people.invite(tid, "agent")
    return {
        "tenant_id": tid,
        "account_id": account["account_id"],
        "key_id": key["key_id"],
        "user_id": target["user"]["user_id"],
    }


async def _callers(api, people, tid: str) -> dict[str, dict[str, str]]:
    callers = {role: (await people.user(tid, role))["headers"] for role in ALL - {"key_admin"}}
    callers["key_admin"] = api.bearer((await api.key(tid, ["admin"]))["key"])
    callers["key_send"] = api.bearer((await api.key(tid, ["send", "read"]))["key"])
    return callers


async def test_every_public_route_is_in_the_matrix(api):
    paths = api.client._transport.app.openapi()["paths"]
    public = {
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/v1/")
        for method in ops
    }
    listed = {(m, p) for m, p, _, _ in MATRIX}
    listed |= {(m, p.replace("{operator_id}", "{user_id}")) for m, p, _ in OPERATOR_ONLY}
    assert public == listed | OWN | AUTH, public ^ (listed | OWN | AUTH)


async def test_role_matrix_on_own_tenant(api, people):
    a = (await api.tenant(name="A"))["tenant_id"]
    await people.user(a, "owner")  # so no caller is the last owner
    callers = await _callers(api, people, a)
    for who, headers in callers.items():
        ids = await _objects(api, people, a)
        for method, path, body, allowed in MATRIX:
            url = path.format(**ids)
            r = await api.client.request(
                method, url, json=body(api) if body else None, headers=headers
            )
            if who in allowed:
                assert 200 <= r.status_code < 300, (who, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 403, (who, method, path, r.status_code)
                assert r.json()["error"]["code"] == "forbidden"


async def test_role_matrix_on_another_tenant_is_404(api, people):
    a = (await api.tenant(name="A"))["tenant_id"]
    b = (await api.tenant(name="B"))["tenant_id"]
    callers = await _callers(api, people, a)
    b_ids = await _objects(api, people, b)
    before = {
        path: (await api.client.get(path.format(**b_ids), headers=api.operator)).json()
        for path in (T, ACC, USR, T + "/api-keys/{key_id}")
    }
    for who, headers in callers.items():
        for method, path, body, _ in MATRIX:
            r = await api.client.request(
                method, path.format(**b_ids), json=body(api) if body else None, headers=headers
            )
            assert r.status_code == 404, (who, method, path, r.status_code)
            assert r.json()["error"]["code"] == "not_found"
    after = {
        path: (await api.client.get(path.format(**b_ids), headers=api.operator)).json()
        for path in before
    }
    assert after == before
    audit = await api.client.get(f"/v1/operator/audit?tenant_id={b}", headers=api.operator)
    assert {e["actor_type"] for e in audit.json()["items"]} == {"operator_key"}


async def test_operator_users_reach_every_tenant_and_tenant_roles_reach_no_operator_route(
    api, people
):
    a = (await api.tenant(name="A"))["tenant_id"]
    staff = await people.user(None)
    other_staff = {"user": (await people.user(None))["user"]}
    ids = await _objects(api, people, a)
    for method, path, body, _ in MATRIX:
        r = await api.client.request(
            method, path.format(**ids), json=body(api) if body else None, headers=staff["headers"]
        )
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)
    callers = await _callers(api, people, a)
    for who, headers in callers.items():
        for method, path, payload in OPERATOR_ONLY:
            url = path.format(operator_id=other_staff["user"]["user_id"])
            r = await api.client.request(method, url, json=payload, headers=headers)
            assert r.status_code == 403, (who, method, path, r.status_code)
    # The operator user manages its peers.
    for method, path, payload in OPERATOR_ONLY:
        url = path.format(operator_id=other_staff["user"]["user_id"])
        r = await api.client.request(method, url, json=payload, headers=staff["headers"])
        assert 200 <= r.status_code < 300, (method, path, r.status_code, r.text)


async def test_owners_are_managed_by_owners_and_the_last_owner_stays(api, people):
    t = (await api.tenant())["tenant_id"]
    owner = await people.user(t, "owner")
    admin = await people.user(t, "admin")
    users = f"/v1/tenants/{t}/users"
    # An admin may not create, change or remove an owner.
    r = await api.client.post(
        users, json={"email": "boss@x.example", "role": "owner"}, headers=admin["headers"]
    )
    assert r.status_code == 403
    for method, url, body in (
        ("PATCH", f"{users}/{owner['user_id']}", {"role": "agent"}),
        ("PATCH", f"{users}/{owner['user_id']}", {"status": "disabled"}),
        ("DELETE", f"{users}/{owner['user_id']}", None),
        ("POST", f"{users}/{owner['user_id']}/password-reset", None),
        ("PATCH", f"{users}/{admin['user_id']}", {"role": "owner"}),
    ):
        r = await api.client.request(method, url, json=body, headers=admin["headers"])
        assert r.status_code == 403, (method, url, body)
    # The only owner cannot step down, be disabled or deleted.
    for method, body in (("PATCH", {"role": "admin"}), ("PATCH", {"status": "disabled"})):
        r = await api.client.request(
            method, f"{users}/{owner['user_id']}", json=body, headers=owner["headers"]
        )
        assert r.status_code == 409, body
    r = await api.client.delete(f"{users}/{owner['user_id']}", headers=api.operator)
    assert r.status_code == 409
    # With a second owner, the first may step down; its old token dies (the role changed).
    r = await api.client.patch(
        f"{users}/{admin['user_id']}", json={"role": "owner"}, headers=owner["headers"]
    )
    assert r.status_code == 200
    r = await api.client.patch(
        f"{users}/{owner['user_id']}", json={"role": "agent"}, headers=owner["headers"]
    )
    assert r.status_code == 200
    assert (await api.client.get("/v1/me", headers=owner["headers"])).status_code == 401
    relogged = (await people.login(owner["email"])).json()
    assert relogged["user"]["role"] == "agent"
    r = await api.client.get(f"/v1/tenants/{t}/audit", headers=api.bearer(relogged["access_token"]))
    assert r.status_code == 403
