"""Users, sessions and lockout against real PostgreSQL (the app in-process, over ASGI).

invite → accept → login → refresh → logout; one-time tokens; lockout with backoff
per e-mail and per address; forced reset; disabled and deleted users' sessions and
tokens die at once; profile and preferences; the internal resolve endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

PASSWORD = "correct horse battery staple"  # the people fixture's


async def _outbox(api, to: str) -> list[dict[str, Any]]:
    r = await api.client.get("/internal/v1/dev/outbox", params={"to": to}, headers=api.service)
    assert r.status_code == 200
    return list(r.json())


async def test_invite_accept_login_refresh_logout(api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    invited = await people.invite(tid, "owner")
    user, invitation = invited["user"], invited["invitation"]
    assert (user["status"], user["role"], user["tenant_id"]) == ("invited", "owner", tid)
    assert invitation["token"].startswith("fcu_")
    assert invitation["kind"] == "invitation"
    # The e-mail went to the local sink with the same token.
    mails = await _outbox(api, user["email"])
    assert [m["data"]["token"] for m in mails] == [invitation["token"]]
    assert invitation["token"] in mails[0]["body"]
    # Not active yet: no password, no login.
    r = await people.login(user["email"])
    assert r.status_code == 401
    # A short password is refused naming the field; the token stays usable.
    r = await api.client.post(
        "/v1/auth/invitations/accept", json={"token": invitation["token"], "password": "short"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "password_too_short"
    assert r.json()["error"]["details"][0]["loc"] == ["body", "password"]
    # The invitation token is not a reset token.
    r = await api.client.post(
        "/v1/auth/password-reset", json={"token": invitation["token"], "password": PASSWORD}
    )
    assert r.status_code == 401
    r = await api.client.post(
        "/v1/auth/invitations/accept",
        json={"token": invitation["token"], "password": PASSWORD, "name": "Ann"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["name"]) == ("active", "Ann")
    # One time only.
    r = await api.client.post(
        "/v1/auth/invitations/accept", json={"token": invitation["token"], "password": PASSWORD}
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_invitation_token"

    r = await people.login(user["email"], "wrong password!!")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_login"
    r = await people.login(user["email"].upper())  # e-mail addresses are case-insensitive
    assert r.status_code == 200, r.text
    login = r.json()
    assert login["session_token"].startswith("fcs_")
    assert login["access_token"].startswith("fca.")
    assert login["expires_in"] == 900
    assert login["user"]["user_id"] == user["user_id"]
    cookie = r.headers["set-cookie"]
    assert "fc_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" in cookie
    assert "Path=/v1/auth" in cookie
    assert r.headers["cache-control"] == "no-store"
    bearer = api.bearer(login["access_token"])
    me = await api.client.get("/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["last_login_at"] is not None
    # The owner manages its tenant with the access token.
    assert (await api.client.get(f"/v1/tenants/{tid}", headers=bearer)).status_code == 200
    # Refresh by the cookie (the console) or by the session as bearer: a new access token.
    api.client.cookies.set("fc_session", login["session_token"])
    r = await api.client.post("/v1/auth/refresh")
    assert r.status_code == 200, r.text
    refreshed = r.json()["access_token"]
    assert refreshed.startswith("fca.")
    assert (await api.client.get("/v1/me", headers=api.bearer(refreshed))).status_code == 200
    api.client.cookies.clear()
    r = await api.client.post("/v1/auth/refresh", headers=api.bearer(login["session_token"]))
    assert r.status_code == 200
    # An access token is not a session.
    r = await api.client.post("/v1/auth/refresh", headers=bearer)
    assert r.status_code == 401
    # Logout ends the session: its refresh and every access token it issued die at once.
    r = await api.client.post("/v1/auth/logout", headers=api.bearer(login["session_token"]))
    assert r.status_code == 204
    for token in (login["access_token"], refreshed):
        assert (await api.client.get("/v1/me", headers=api.bearer(token))).status_code == 401
    r = await api.client.post("/v1/auth/refresh", headers=api.bearer(login["session_token"]))
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "session_ended"
    # Another login still works (logout ended one session, not the account).
    assert (await people.login(user["email"])).status_code == 200


async def test_tampered_or_forged_access_tokens_are_refused(api, people):
    tenant = await api.tenant()
    someone = await people.user(tenant["tenant_id"], "viewer")
    token = someone["access_token"]
    prefix, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "viewer"
    assert claims["sub"] == someone["user_id"]
    claims["role"] = "owner"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (
        f"{prefix}.{forged_payload}.{signature}",
        f"{prefix}.{payload}.{signature[:-2]}AA",
        f"{prefix}.{payload}",
        "fca.x.y",
    ):
        r = await api.client.get("/v1/me", headers=api.bearer(bad))
        assert r.status_code == 401, bad
        r = await api.client.post(
            "/internal/v1/users/resolve", json={"token": bad}, headers=api.service
        )
        assert r.status_code == 404
    r = await api.client.get("/v1/me", headers=api.bearer(token))
    assert r.json()["role"] == "viewer"


async def test_resolve_for_other_services(api, people):
    tenant = await api.tenant()
    agent = await people.user(tenant["tenant_id"], "agent")
    staff = await people.user(None)
    r = await api.client.post(
        "/internal/v1/users/resolve", json={"token": agent["access_token"]}, headers=api.service
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, max-age=5"
    body = r.json()
    assert body["user_id"] == agent["user_id"]
    assert (body["tenant_id"], body["role"]) == (tenant["tenant_id"], "agent")
    assert body["session_id"].startswith("ses_")
    r = await api.client.post(
        "/internal/v1/users/resolve", json={"token": staff["access_token"]}, headers=api.service
    )
    assert (r.json()["tenant_id"], r.json()["role"]) == (None, "operator")
    # A session token is not an access token.
    r = await api.client.post(
        "/internal/v1/users/resolve", json={"token": agent["session_token"]}, headers=api.service
    )
    assert r.status_code == 404


async def test_lockout_with_backoff_per_user(monkeypatch, another_service, people_on):
    monkeypatch.setenv("FLOWCHAT_TENANT_LOCKOUT_USER_THRESHOLD", "3")
    monkeypatch.setenv("FLOWCHAT_TENANT_LOCKOUT_BASE_S", "1")
    async with another_service() as client:
        people = people_on(client)
        tenant = await people.api.tenant()
        someone = await people.user(tenant["tenant_id"])
        email = someone["email"]
        for _ in range(3):
            assert (await people.login(email, "wrong password!!")).status_code == 401
        # Locked: even the right password gets 429 and a Retry-After.
        r = await people.login(email)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "too_many_attempts"
        assert r.headers["retry-after"] == "1"
        # Another user is not locked by it.
        other = await people.user(tenant["tenant_id"])
        assert (await people.login(other["email"])).status_code == 200
        await asyncio.sleep(1.1)
        # The next failure locks twice as long (backoff).
        assert (await people.login(email, "wrong password!!")).status_code == 401
        r = await people.login(email)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert 1.0 < r.json()["error"]["details"][0]["retry_after_s"] <= 2.0
        await asyncio.sleep(2.1)
        assert (await people.login(email)).status_code == 200
        # A success clears the count: one failure locks nothing now.
        assert (await people.login(email, "wrong password!!")).status_code == 401
        assert (await people.login(email)).status_code == 200
        # Unknown e-mails are throttled too (no way to tell them apart).
        for _ in range(3):
            r = await people.login("nobody@example.com", "wrong password!!")
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "invalid_login"
        assert (await people.login("nobody@example.com", "x" * 12)).status_code == 429


async def test_lockout_per_address(monkeypatch, another_service, people_on):
    monkeypatch.setenv("FLOWCHAT_TENANT_LOCKOUT_IP_THRESHOLD", "4")
    async with another_service() as client:
        people = people_on(client)
        tenant = await people.api.tenant()
        victim = await people.user(tenant["tenant_id"])
        attacker = {"X-Forwarded-For": "203.0.113.9"}
        # Four different e-mails from one address (each under the per-user threshold).
        for n in range(4):
            r = await people.login(f"guess{n}@example.com", "wrong password!!", headers=attacker)
            assert r.status_code == 401
        r = await people.login(victim["email"], headers=attacker)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 29
        # From another address the user signs in.
        r = await people.login(victim["email"], headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200


async def test_forced_reset_ends_sessions_and_sends_a_reset_token(api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    admin = await people.user(tid, "admin")
    agent = await people.user(tid, "agent")
    r = await api.client.post(
        f"/v1/tenants/{tid}/users/{agent['user_id']}/password-reset", headers=admin["headers"]
    )
    assert r.status_code == 200, r.text
    reset = r.json()["reset"]
    assert reset["kind"] == "reset"
    assert reset["token"].startswith("fcu_")
    mails = await _outbox(api, agent["email"])
    assert mails[-1]["data"] == {
        "kind": "reset",
        "token": reset["token"],
        "url": reset["url"],
        "user_id": agent["user_id"],
    }
    # At once: the access token, the session and the old password stop working.
    assert (await api.client.get("/v1/me", headers=agent["headers"])).status_code == 401
    r = await api.client.post("/v1/auth/refresh", headers=api.bearer(agent["session_token"]))
    assert r.status_code == 401
    assert (await people.login(agent["email"])).status_code == 401
    # The reset token is not an invitation token.
    r = await api.client.post(
        "/v1/auth/invitations/accept", json={"token": reset["token"], "password": PASSWORD}
    )
    assert r.status_code == 401
    new_password = "a brand new passphrase"
    r = await api.client.post(
        "/v1/auth/password-reset", json={"token": reset["token"], "password": new_password}
    )
    assert r.status_code == 200
    assert (await people.login(agent["email"])).status_code == 401
    assert (await people.login(agent["email"], new_password)).status_code == 200
    # The admin's own session was untouched.
    assert (await api.client.get("/v1/me", headers=admin["headers"])).status_code == 200


async def test_deleted_or_disabled_users_sessions_and_tokens_die_at_once(api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    owner = await people.user(tid, "owner")
    agent = await people.user(tid, "agent")
    doomed = await people.user(tid, "agent")

    async def alive(person) -> tuple[int, int, int]:
        me = await api.client.get("/v1/me", headers=person["headers"])
        resolved = await api.client.post(
            "/internal/v1/users/resolve",
            json={"token": person["access_token"]},
            headers=api.service,
        )
        refreshed = await api.client.post(
            "/v1/auth/refresh", headers=api.bearer(person["session_token"])
        )
        return me.status_code, resolved.status_code, refreshed.status_code

    assert await alive(agent) == (200, 200, 200)
    r = await api.client.patch(
        f"/v1/tenants/{tid}/users/{agent['user_id']}",
        json={"status": "disabled"},
        headers=owner["headers"],
    )
    assert r.status_code == 200
    assert r.json()["status"] == "disabled"
    assert await alive(agent) == (401, 404, 401)
    assert (await people.login(agent["email"])).status_code == 401
    r = await api.client.patch(
        f"/v1/tenants/{tid}/users/{agent['user_id']}",
        json={"status": "active"},
        headers=owner["headers"],
    )
    assert r.status_code == 200
    assert await alive(agent) == (401, 404, 401)  # the old session stays dead
    assert (await people.login(agent["email"])).status_code == 200

    assert await alive(doomed) == (200, 200, 200)
    r = await api.client.delete(
        f"/v1/tenants/{tid}/users/{doomed['user_id']}", headers=owner["headers"]
    )
    assert r.status_code == 204
    assert await alive(doomed) == (401, 404, 401)
    assert (await people.login(doomed["email"])).status_code == 401
    r = await api.client.get(
        f"/v1/tenants/{tid}/users/{doomed['user_id']}", headers=owner["headers"]
    )
    assert r.status_code == 404
    listed = await api.client.get(f"/v1/tenants/{tid}/users", headers=owner["headers"])
    assert doomed["user_id"] not in {u["user_id"] for u in listed.json()["items"]}
    # The address is free again: the same person can be invited anew.
    r = await api.client.post(
        f"/v1/tenants/{tid}/users", json={"email": doomed["email"]}, headers=owner["headers"]
    )
    assert r.status_code == 201
    # A suspended tenant's users stop too.
    r = await api.client.patch(
        f"/v1/tenants/{tid}", json={"status": "suspended"}, headers=api.operator
    )
    assert r.status_code == 200
    assert (await api.client.get("/v1/me", headers=owner["headers"])).status_code == 401
    assert (await people.login(owner["email"])).status_code == 401


async def test_profile_and_preferences(api, people):
    tenant = await api.tenant()
    someone = await people.user(tenant["tenant_id"], "viewer")
    me = (await api.client.get("/v1/me", headers=someone["headers"])).json()
    assert me["preferences"] == {
        "language": "en",
        "timezone": "UTC",
        "notifications": {
            "email": True,
            "new_conversation": True,
            "assigned_to_me": True,
            "sound": True,
        },
    }
    change = {
        "name": "Wanjiru Kamau",
        "display_name": "Wanjiru",
        "avatar_url": "https://cdn.example.com/a.png",
        "preferences": {
            "language": "sw-KE",
            "timezone": "Africa/Nairobi",
            "notifications": {"email": False, "sound": False},
        },
    }
    r = await api.client.patch("/v1/me", json=change, headers=someone["headers"])
    assert r.status_code == 200, r.text
    again = (await api.client.get("/v1/me", headers=someone["headers"])).json()
    assert (again["name"], again["display_name"]) == ("Wanjiru Kamau", "Wanjiru")
    assert again["avatar_url"] == "https://cdn.example.com/a.png"
    assert again["preferences"]["timezone"] == "Africa/Nairobi"
    assert again["preferences"]["language"] == "sw-KE"
    assert again["preferences"]["notifications"]["email"] is False
    assert again["preferences"]["notifications"]["assigned_to_me"] is True
    bad = [
        ({"avatar_url": "http://plain.example.com/a.png"}, ["body", "avatar_url"]),
        ({"preferences": {"timezone": "Mars/Olympus"}}, ["body", "preferences", "timezone"]),
        ({"preferences": {"language": "zz-QQ"}}, ["body", "preferences", "language"]),
        ({"display_name": "x" * 101}, ["body", "display_name"]),
        ({"role": "owner"}, ["body", "role"]),  # not one's own to change
    ]
    for body, loc in bad:
        r = await api.client.patch("/v1/me", json=body, headers=someone["headers"])
        assert r.status_code == 422, body
        assert r.json()["error"]["details"][0]["loc"] == loc
    # The password: the current one is required; other sessions end.
    r = await api.client.post(
        "/v1/me/password",
        json={"current_password": "not it at all", "new_password": "another long passphrase"},
        headers=someone["headers"],
    )
    assert r.status_code == 401
    r = await api.client.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
        headers=someone["headers"],
    )
    assert r.status_code == 204
    assert (await api.client.get("/v1/me", headers=someone["headers"])).status_code == 401
    assert (await people.login(someone["email"], "another long passphrase")).status_code == 200


async def test_invitations_refuse_taken_addresses_and_unknown_tenants(api, people):
    tenant = await api.tenant()
    tid = tenant["tenant_id"]
    first = await people.invite(tid)
    email = first["user"]["email"]
    for url in (f"/v1/tenants/{tid}/users", "/v1/operator/users"):
        r = await api.client.post(url, json={"email": email.upper()}, headers=api.operator)
        assert r.status_code == 409
        assert r.json()["error"]["details"][0]["loc"] == ["body", "email"]
    r = await api.client.post(
        "/v1/tenants/tnt_0000000000000000/users",
        json={"email": "x@example.com"},
        headers=api.operator,
    )
    assert r.status_code == 404
    r = await api.client.post(
        f"/v1/tenants/{tid}/users",
        json={"email": "not-an-address", "role": "agent"},
        headers=api.operator,
    )
    assert r.status_code == 422
    r = await api.client.post(
        f"/v1/tenants/{tid}/users",
        json={"email": "a@b.example", "role": "operator"},
        headers=api.operator,
    )
    assert r.status_code == 422
    # A second invitation replaces the first token.
    again = await api.client.post(
        f"/v1/tenants/{tid}/users/{first['user']['user_id']}/password-reset",
        headers=api.operator,
    )
    assert again.status_code == 200
    r = await api.client.post(
        "/v1/auth/invitations/accept",
        json={"token": first["invitation"]["token"], "password": PASSWORD},
    )
    assert r.status_code == 200  # an invited user's reset keeps its invitation usable
