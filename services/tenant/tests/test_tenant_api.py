"""Public API against real PostgreSQL and a stand-in Graph API over HTTP."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from structlog.testing import capture_logs


async def test_create_and_read_tenant(api):
    tenant = await api.tenant()
    assert tenant["tenant_id"].startswith("tnt_")
    assert tenant["status"] == "active"
    assert tenant["currency"] == "KES"
    assert tenant["locale"] == "en-KE"
    r = await api.client.get(f"/v1/tenants/{tenant['tenant_id']}", headers=api.operator)
    assert r.status_code == 200
    assert r.json() == tenant
    listed = await api.client.get("/v1/tenants", headers=api.operator)
    assert [t["tenant_id"] for t in listed.json()["items"]] == [tenant["tenant_id"]]
    r = await api.client.patch(
        f"/v1/tenants/{tenant['tenant_id']}",
        json={"timezone": "Europe/Lisbon", "currency": "eur"},
        headers=api.operator,
    )
    assert r.status_code == 200
    assert (r.json()["timezone"], r.json()["currency"]) == ("Europe/Lisbon", "EUR")


async def test_public_api_requires_a_known_key(api):
    no_key: dict[str, str] = {}
    for headers in (no_key, api.bearer("fc_key_0000_" + "0" * 64), api.bearer("nonsense")):
        r = await api.client.get("/v1/tenants", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"


async def test_invalid_tenant_fields_are_422_naming_the_field(api):
    cases = [
        ("timezone", "Mars/Olympus", "invalid_timezone"),
        ("currency", "XYZ", "invalid_currency"),
        ("locale", "zz-QQ", "invalid_locale"),
        ("tax_rate", "1.5", "less_than_equal"),
        ("name", "", "string_too_short"),
    ]
    for field, value, error_type in cases:
        body = {"name": "Acme", field: value}
        r = await api.client.post("/v1/tenants", json=body, headers=api.operator)
        assert r.status_code == 422, field
        error = r.json()["error"]
        assert error["code"] == "invalid_request"
        assert error["details"][0]["loc"] == ["body", field]
        assert error["details"][0]["type"] == error_type
    listed = (await api.client.get("/v1/tenants", headers=api.operator)).json()
    assert listed == {"items": [], "next_cursor": None}


async def test_register_meta_account_validates_with_the_provider(api):
    tenant = await api.tenant()
    body = api.meta_body()
    account = await api.account(tenant["tenant_id"], body)
    assert account["account_id"].startswith("acc_")
    assert account["display_phone_number"] == "+1555010" + body["display_phone_number"][-4:]
    assert account["health"]["quality_rating"] == "GREEN"
    assert account["health"]["messaging_limit_tier"] == "TIER_1K"
    assert account["health"]["throughput_level"] == "STANDARD"
    assert account["health"]["checked_at"] is not None
    assert account["throughput_mps"] == 80
    assert account["version"] == 1
    assert sorted(account["secrets_set"]) == ["access_token", "app_secret", "verify_token"]
    method, path, query = api.graph.state.requests[-1]
    assert (method, path) == ("GET", f"/v23.0/{body['phone_number_id']}")
    assert set(query["fields"].split(",")) >= {
        "display_phone_number",
        "quality_rating",
        "throughput",
        "messaging_limit_tier",
    }


async def test_register_twilio_account(api):
    tenant = await api.tenant()
    body = api.twilio_body(twilio_number="+1 (415) 555-0199")
    account = await api.account(tenant["tenant_id"], body)
    assert account["provider"] == "twilio"
    assert account["twilio_number"] == "+14155550199"
    assert account["twilio_account_sid"] == body["twilio_account_sid"]
    assert account["secrets_set"] == ["twilio_auth_token"]


BAD_ACCOUNTS = [
    ("short_number", 422, "invalid_request", "display_phone_number"),
    ("letters_number", 422, "invalid_request", "display_phone_number"),
    ("unknown_provider", 422, "invalid_request", None),
    ("non_numeric_id", 422, "invalid_request", "phone_number_id"),
    ("refused_token", 422, "invalid_credentials", "access_token"),
    ("unknown_at_provider", 422, "unknown_phone_number", "phone_number_id"),
    ("other_number_at_provider", 422, "phone_number_mismatch", "display_phone_number"),
    ("bad_twilio_sid", 422, "invalid_request", "twilio_account_sid"),
]


async def test_bad_accounts_are_refused_naming_the_field(api):
    for case, status, code, field in BAD_ACCOUNTS:
        await _refused(api, case, status, code, field)


async def _refused(api, case, status, code, field):
    tenant = await api.tenant()
    body = {
        "short_number": lambda: api.meta_body(display_phone_number="12345"),
        "letters_number": lambda: api.meta_body(display_phone_number="+1 call-me"),
        "unknown_provider": lambda: {**api.meta_body(), "provider": "telegram"},
        "non_numeric_id": lambda: api.meta_body(phone_number_id="pn-1"),
        "refused_token": lambda: {**api.meta_body(), "access_token": "EAAG-revoked-token"},
        "unknown_at_provider": lambda: api.meta_body(register_at_provider=False),
        "other_number_at_provider": lambda: {
            **api.meta_body(display_phone_number="+1 555-010-9999"),
            "display_phone_number": "+447911123456",
        },
        "bad_twilio_sid": lambda: api.twilio_body(twilio_account_sid="SK123"),
    }[case]()
    r = await api.client.post(
        f"/v1/tenants/{tenant['tenant_id']}/accounts", json=body, headers=api.operator
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert error["details"][0]["loc"][-1] == field
    assert "EAAG" not in r.text
    listed = await api.client.get(
        f"/v1/tenants/{tenant['tenant_id']}/accounts", headers=api.operator
    )
    assert listed.json()["items"] == []


async def test_duplicate_numbers_conflict(api):
    tenant = await api.tenant()
    body = api.meta_body()
    await api.account(tenant["tenant_id"], body)
    other = await api.tenant(name="Other")
    r = await api.client.post(
        f"/v1/tenants/{other['tenant_id']}/accounts", json=body, headers=api.operator
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert r.json()["error"]["details"][0]["loc"] == ["body", "phone_number_id"]
    twilio = api.twilio_body()
    await api.account(tenant["tenant_id"], twilio)
    again = {**api.twilio_body(), "twilio_number": twilio["twilio_number"]}
    r = await api.client.post(
        f"/v1/tenants/{tenant['tenant_id']}/accounts", json=again, headers=api.operator
    )
    assert r.status_code == 409
    assert r.json()["error"]["details"][0]["loc"] == ["body", "twilio_number"]


async def test_update_and_delete_account(api):
    tenant = await api.tenant()
    body = api.meta_body()
    account = await api.account(tenant["tenant_id"], body)
    url = f"/v1/tenants/{tenant['tenant_id']}/accounts/{account['account_id']}"

    r = await api.client.patch(
        url, json={"tier": "high", "throughput_mps": 250}, headers=api.operator
    )
    assert r.status_code == 200
    assert (r.json()["tier"], r.json()["throughput_mps"], r.json()["version"]) == ("high", 250, 2)

    # A new access token is read at the provider first; a refused one changes nothing.
    r = await api.client.patch(url, json={"access_token": "EAAG-wrong-token"}, headers=api.operator)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_credentials"
    api.graph.state.numbers[body["phone_number_id"]]["token"] = "EAAG-rotated-token-1"
    r = await api.client.patch(
        url, json={"access_token": "EAAG-rotated-token-1"}, headers=api.operator
    )
    assert r.status_code == 200
    assert r.json()["version"] == 3

    r = await api.client.patch(url, json={"twilio_number": "+14155550100"}, headers=api.operator)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "not_applicable"

    assert (await api.client.delete(url, headers=api.operator)).status_code == 204
    assert (await api.client.get(url, headers=api.operator)).status_code == 404
    assert (await api.client.delete(url, headers=api.operator)).status_code == 404


async def test_api_keys_shown_once_hashed_revocable(api, settings):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    created = await api.key(tid, ["send", "read", "send"])
    key = created["key"]
    assert key.startswith(f"fc_{created['key_id']}_")
    assert created["scopes"] == ["read", "send"]
    url = f"/v1/tenants/{tid}/api-keys"
    listed = (await api.client.get(url, headers=api.operator)).json()["items"]
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert "key" not in listed[0]
    assert key not in str(listed)
    assert listed[0]["last_used_at"] is None

    # Verification records the use.
    r = await api.client.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=api.service
    )
    assert r.status_code == 200
    one = await api.client.get(
        f"/v1/tenants/{tid}/api-keys/{created['key_id']}", headers=api.operator
    )
    assert one.json()["last_used_at"] is not None

    # A key without the admin scope cannot manage the tenant.
    r = await api.client.get(f"/v1/tenants/{tid}/accounts", headers=api.bearer(key))
    assert r.status_code == 403

    conn = await asyncpg.connect(settings.database_url)
    try:
        stored = await conn.fetchval("SELECT key_hash FROM tenant.api_keys")
    finally:
        await conn.close()
    assert key not in stored
    assert key.rsplit("_", 1)[1] not in stored

    r = await api.client.delete(
        f"/v1/tenants/{tid}/api-keys/{created['key_id']}", headers=api.operator
    )
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    r = await api.client.post(
        "/internal/v1/api-keys/verify", json={"key": key}, headers=api.service
    )
    assert r.status_code == 404


async def test_admin_key_manages_its_own_tenant_only_and_not_the_operator_things(api):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    admin = (await api.key(tid, ["admin"]))["key"]
    me = api.bearer(admin)
    account = await api.account(tid, api.meta_body(), headers=me)
    assert account["tenant_id"] == tid
    listed = await api.client.get("/v1/tenants", headers=me)
    assert [t["tenant_id"] for t in listed.json()["items"]] == [tid]
    r = await api.client.patch(f"/v1/tenants/{tid}", json={"name": "Acme 2"}, headers=me)
    assert r.status_code == 200
    for method, url, body in [
        ("POST", "/v1/tenants", {"name": "Mine"}),
        ("PATCH", f"/v1/tenants/{tid}", {"status": "active"}),
    ]:
        r = await api.client.request(method, url, json=body, headers=me)
        assert r.status_code == 403, (method, url)
        assert r.json()["error"]["code"] == "forbidden"
    # Its own revoked key is refused at once.
    await api.client.delete(
        f"/v1/tenants/{tid}/api-keys/{admin.split('_')[1]}_{admin.split('_')[2]}", headers=me
    )
    r = await api.client.get(f"/v1/tenants/{tid}", headers=me)
    assert r.status_code == 401


async def test_tenant_a_cannot_touch_tenant_b_anywhere(api):
    a = await api.tenant(name="A")
    b = await api.tenant(name="B")
    a_key = api.bearer((await api.key(a["tenant_id"], ["admin", "read", "send"]))["key"])
    tb = b["tenant_id"]
    b_account = await api.account(tb, api.meta_body())
    b_key = await api.key(tb, ["send"])
    invited = await api.client.post(
        f"/v1/tenants/{tb}/users",
        json={"email": "bob@b.example", "role": "agent"},
        headers=api.operator,
    )
    b_user = invited.json()["user"]["user_id"]
    acc = f"/v1/tenants/{tb}/accounts/{b_account['account_id']}"
    usr = f"/v1/tenants/{tb}/users/{b_user}"
    attempts = [
        ("GET", f"/v1/tenants/{tb}", None),
        ("PATCH", f"/v1/tenants/{tb}", {"name": "pwned"}),
        ("PATCH", f"/v1/tenants/{tb}", {"status": "suspended"}),
        ("GET", f"/v1/tenants/{tb}/accounts", None),
        ("POST", f"/v1/tenants/{tb}/accounts", api.meta_body()),
        ("GET", acc, None),
        ("PATCH", acc, {"tier": "stolen"}),
        ("DELETE", acc, None),
        ("POST", f"{acc}/health/refresh", None),
        ("GET", f"{acc}/business-profile", None),
        ("POST", f"{acc}/business-profile", {"about": "pwned"}),
        ("GET", f"/v1/tenants/{tb}/api-keys", None),
        ("POST", f"/v1/tenants/{tb}/api-keys", {"name": "mine", "scopes": ["admin"]}),
        ("GET", f"/v1/tenants/{tb}/api-keys/{b_key['key_id']}", None),
        ("DELETE", f"/v1/tenants/{tb}/api-keys/{b_key['key_id']}", None),
        ("GET", f"/v1/tenants/{tb}/users", None),
        ("POST", f"/v1/tenants/{tb}/users", {"email": "eve@a.example", "role": "owner"}),
        ("GET", usr, None),
        ("PATCH", usr, {"role": "admin"}),
        ("DELETE", usr, None),
        ("POST", f"{usr}/password-reset", None),
        ("GET", f"/v1/tenants/{tb}/audit", None),
    ]
    # Every public route is in the list.
    paths = api.client._transport.app.openapi()["paths"]
    public = {
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/v1/tenants/{tenant_id}")
        for method in ops
    }
    assert len(public) == 21
    tried = {
        (
            m,
            u.replace(tb, "{tenant_id}")
            .replace(b_account["account_id"], "{account_id}")
            .replace(b_key["key_id"], "{key_id}")
            .replace(b_user, "{user_id}"),
        )
        for m, u, _ in attempts
    }
    assert public == tried, public ^ tried
    for method, url, body in attempts:
        r = await api.client.request(method, url, json=body, headers=a_key)
        assert r.status_code == 404, (method, url, r.status_code)
        assert r.json()["error"]["code"] == "not_found"
    # Nothing of B's changed.
    after = await api.client.get(f"/v1/tenants/{tb}", headers=api.operator)
    assert after.json() == b
    acc_after = await api.client.get(acc, headers=api.operator)
    assert acc_after.json()["version"] == b_account["version"]
    assert acc_after.json()["tier"] == b_account["tier"]
    keys_after = await api.client.get(f"/v1/tenants/{tb}/api-keys", headers=api.operator)
    keys = keys_after.json()["items"]
    assert [(k["key_id"], k["revoked_at"]) for k in keys] == [(b_key["key_id"], None)]
    assert api.graph.state.numbers[b_account["phone_number_id"]]["profile"] == {"about": "Hello"}


async def test_secrets_never_in_public_answers_nor_db_nor_logs(api, settings, caplog):
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        tenant = await api.tenant()
        tid = tenant["tenant_id"]
        meta = api.meta_body()
        twilio = api.twilio_body()
        answers = []
        m = await api.account(tid, meta)
        t = await api.account(tid, twilio)
        answers += [m, t]
        key = await api.key(tid, ["admin"])
        admin = api.bearer(key["key"])
        new_token = "EAAG-second-access-token-plaintext"
        api.graph.state.numbers[meta["phone_number_id"]]["token"] = new_token
        mu = f"/v1/tenants/{tid}/accounts/{m['account_id']}"
        tu = f"/v1/tenants/{tid}/accounts/{t['account_id']}"
        calls = [
            ("GET", f"/v1/tenants/{tid}", None),
            ("GET", "/v1/tenants", None),
            ("PATCH", f"/v1/tenants/{tid}", {"name": "Acme 2"}),
            ("GET", f"/v1/tenants/{tid}/accounts", None),
            ("GET", mu, None),
            ("GET", tu, None),
            ("PATCH", mu, {"access_token": new_token, "app_secret": "app-secret-two-plaintext"}),
            ("PATCH", tu, {"twilio_auth_token": "twilio-auth-token-two-plaintext"}),
            ("POST", f"{mu}/health/refresh", None),
            ("GET", f"{mu}/business-profile", None),
            ("POST", f"{mu}/business-profile", {"about": "We sell things"}),
            ("GET", f"/v1/tenants/{tid}/api-keys", None),
            ("GET", f"/v1/tenants/{tid}/api-keys/{key['key_id']}", None),
        ]
        for method, url, body in calls:
            for headers in (api.operator, admin):
                r = await api.client.request(method, url, json=body, headers=headers)
                assert r.status_code < 300, (method, url, r.text)
                answers.append(r.text)
        answers.append((await api.client.get("/openapi.json")).text)

    plaintexts = [
        meta["app_secret"],
        meta["access_token"],
        meta["verify_token"],
        twilio["twilio_auth_token"],
        new_token,
        "app-secret-two-plaintext",
        "twilio-auth-token-two-plaintext",
    ]
    blob = "\n".join(map(str, answers))
    for secret in plaintexts:
        assert secret not in blob

    logs = "\n".join(map(str, events)) + "\n" + caplog.text
    assert "account registered" in logs  # the capture really saw the service's logs
    for secret in [*plaintexts, key["key"]]:
        assert secret not in logs

    conn = await asyncpg.connect(settings.database_url)
    try:
        dump = []
        for table in ("tenants", "accounts", "api_keys"):
            for row in await conn.fetch(f"SELECT * FROM tenant.{table}"):
                for value in row.values():
                    if isinstance(value, bytes):
                        dump.append(value.decode("latin-1"))
                    dump.append(str(value))
        ciphertexts = await conn.fetch(
            "SELECT app_secret_enc, access_token_enc, twilio_auth_token_enc FROM tenant.accounts"
        )
    finally:
        await conn.close()
    db = "\n".join(dump)
    for secret in [*plaintexts, key["key"]]:
        assert secret not in db
    assert any(r["access_token_enc"] for r in ciphertexts)
    assert all(bytes(v).startswith(b"gAAAAA") for r in ciphertexts for v in r.values() if v)


def test_openapi_account_schema_has_no_secret_fields(app):
    schema = app.openapi()
    names = {"Account", "ApiKey", "Tenant"}
    for name in names:
        props = set(schema["components"]["schemas"][name]["properties"])
        assert not props & {
            "app_secret",
            "access_token",
            "verify_token",
            "twilio_auth_token",
            "key",
        }
    assert "/v1/tenants/{tenant_id}/accounts" in schema["paths"]


async def all_pages(api, url: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, ``limit`` at a time, following ``next_cursor``; and the pages."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    pages = 0
    while True:
        r = await api.client.get(url, params=params, headers=api.operator)
        assert r.status_code == 200, r.text
        assert set(r.json()) == {"items", "next_cursor"}
        items += r.json()["items"]
        pages += 1
        if r.json()["next_cursor"] is None:
            return items, pages
        params["cursor"] = r.json()["next_cursor"]


async def test_lists_are_cursor_pages(api):
    tids = sorted([(await api.tenant())["tenant_id"] for _ in range(3)])
    tenants, pages = await all_pages(api, "/v1/tenants", 2)
    assert [t["tenant_id"] for t in tenants] == tids
    assert pages == 2
    keys = [(await api.key(tids[0]))["key_id"] for _ in range(3)]
    listed, pages = await all_pages(api, f"/v1/tenants/{tids[0]}/api-keys", 2)
    assert [k["key_id"] for k in listed] == keys  # oldest first, none twice
    assert pages == 2
    r = await api.client.get("/v1/tenants", params={"cursor": "bogus"}, headers=api.operator)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_cursor"
