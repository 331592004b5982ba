# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
# (the pyproject relaxes "*.tests.*" for tests; "state-manager" is no package name, so
# mypy names these modules bare and the override misses them: the same settings here)
"""The query API over real HTTP: tenant scoping, auth, lookups, pagination, stats."""

import pytest

pytestmark = pytest.mark.integration

KEY_A = {"Authorization": "Bearer fc_key_tenant_a_read"}
KEY_B = {"Authorization": "Bearer fc_key_tenant_b_read"}


async def seed(harness):
    """Tenant A: 5 messages (3 in campaign cmp_1); tenant B: 2. Returns ids by tenant."""
    a: list[tuple[str, str]] = []
    b: list[tuple[str, str]] = []
    plan = [
        ("tnt_a", "cmp_1", "15550000001", ["sent", "delivered", "read"]),
        ("tnt_a", "cmp_1", "15550000002", ["sent", "delivered"]),
        ("tnt_a", "cmp_1", "15550000001", ["sent", "failed"]),
        ("tnt_a", None, "15550000003", ["sent"]),
        ("tnt_a", None, "15550000001", []),
        ("tnt_b", "cmp_1", "15550000001", ["sent", "read"]),
        ("tnt_b", None, "15550000009", []),
    ]
    for tenant, campaign, to, statuses in plan:
        mid, wamid = harness.new_ids()
        account = "acc_" + tenant
        await harness.publish(
            harness.send_result(
                mid, wamid, tenant=tenant, account=account, to=to, campaign_id=campaign
            )
        )
        for s in statuses:
            await harness.publish(harness.status_update(wamid, s, tenant=tenant, account=account))
        (a if tenant == "tnt_a" else b).append((mid, wamid))
    return a, b


async def test_lookups_auth_and_tenant_isolation(harness):
    a, b = await seed(harness)
    http = harness.http
    mid_a, wamid_a = a[0]
    mid_b, wamid_b = b[0]

    # authentication and authorization
    r = await http.get(f"/v1/messages/{mid_a}")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = await http.get(f"/v1/messages/{mid_a}", headers={"Authorization": "Bearer fc_unknown"})
    assert r.status_code == 401
    r = await http.get(
        f"/v1/messages/{mid_a}", headers={"Authorization": "Bearer fc_key_tenant_a_send"}
    )
    assert r.status_code == 403
    r = await http.get(
        f"/v1/messages/{mid_a}", headers={"Authorization": "Bearer svc-token-0123456789abcdef"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "tenant_required"

    # the tenant's own message, by id, WAMID and idempotency key
    r = await http.get(f"/v1/messages/{mid_a}", headers=KEY_A)
    assert r.status_code == 200
    body = r.json()
    assert (body["id"], body["tenant_id"], body["status"]) == (mid_a, "tnt_a", "read")
    r = await http.get(f"/v1/messages/by-wamid/{wamid_a}", headers=KEY_A)
    assert r.status_code == 200
    assert r.json()["id"] == mid_a
    r = await http.get(f"/v1/messages/by-idempotency-key/idem-{mid_a}", headers=KEY_A)
    assert r.status_code == 200
    assert r.json()["id"] == mid_a
    r = await http.get(f"/v1/messages/{mid_a}/events", headers=KEY_A)
    assert [e["status"] for e in r.json()["items"]] == ["accepted", "sent", "delivered", "read"]

    # another tenant's message is not found, whichever way it is asked for
    for path in (
        f"/v1/messages/{mid_b}",
        f"/v1/messages/by-wamid/{wamid_b}",
        f"/v1/messages/by-idempotency-key/idem-{mid_b}",
        f"/v1/messages/{mid_b}/events",
    ):
        r = await http.get(path, headers=KEY_A)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    # also for internal callers naming a tenant, and for a key naming another tenant
    r = await http.get(f"/v1/messages/{mid_b}", headers=harness.auth("tnt_a"))
    assert r.status_code == 404
    r = await http.get(f"/v1/messages/{mid_b}", headers={**KEY_A, "X-Tenant-ID": "tnt_b"})
    assert r.status_code == 403
    r = await http.get(f"/v1/messages/{mid_b}", headers=KEY_B)
    assert r.status_code == 200
    assert r.json()["tenant_id"] == "tnt_b"

    # lists and stats never count another tenant's messages
    r = await http.get("/v1/messages", headers=KEY_B)
    assert {m["id"] for m in r.json()["items"]} == {m for m, _ in b}
    r = await http.get("/v1/stats", params={"campaign_id": "cmp_1"}, headers=KEY_B)
    assert r.json()["total"] == 1


async def test_list_pagination_filters_and_stats(harness):
    a, _ = await seed(harness)
    http = harness.http
    ids_a = [m for m, _ in a]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await http.get("/v1/messages", params=params, headers=KEY_A)
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(m["id"] for m in seen) == sorted(ids_a)
    keys = [(m["created_at"], m["id"]) for m in seen]
    assert keys == sorted(keys, reverse=True)  # newest first, no repeats

    async def listed(**params):
        r = await http.get("/v1/messages", params=params, headers=KEY_A)
        assert r.status_code == 200, r.text
        return {m["id"] for m in r.json()["items"]}

    assert await listed(status="read") == {ids_a[0]}
    assert await listed(status="failed") == {ids_a[2]}
    assert await listed(recipient="15550000001") == {ids_a[0], ids_a[2], ids_a[4]}
    assert await listed(campaign_id="cmp_1") == set(ids_a[:3])
    assert await listed(campaign_id="cmp_1", recipient="15550000001") == {ids_a[0], ids_a[2]}
    middle = seen[2]["created_at"]
    assert await listed(since=middle) == {m["id"] for m in seen[:3]}
    assert await listed(until=middle) == {m["id"] for m in seen[3:]}

    r = await http.get("/v1/messages", params={"cursor": "garbage!"}, headers=KEY_A)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_cursor"
    r = await http.get("/v1/messages", params={"status": "lost"}, headers=KEY_A)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"

    r = await http.get("/v1/stats", params={"campaign_id": "cmp_1"}, headers=KEY_A)
    stats = r.json()
    assert stats["total"] == 3
    assert stats["counts"]["read"] == 1
    assert stats["counts"]["delivered"] == 1
    assert stats["counts"]["failed"] == 1
    assert stats["reached"]["delivered"] == 2  # read implies delivered
    r = await http.get("/v1/stats", headers=KEY_A)
    assert r.json()["total"] == 5
    assert r.json()["counts"]["accepted"] == 1

    spec = (await http.get("/openapi.json")).json()
    for path in (
        "/v1/messages",
        "/v1/messages/{message_id}",
        "/v1/messages/{message_id}/events",
        "/v1/messages/by-wamid/{wamid}",
        "/v1/messages/by-idempotency-key/{key}",
        "/v1/stats",
    ):
        assert path in spec["paths"], path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
