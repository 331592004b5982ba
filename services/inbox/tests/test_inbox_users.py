"""People on the inbox (issue 23): tenant users' access tokens, resolved through the real
tenant service's internal API, as the matrix role x route x other tenant. Owner and
admin manage, agents act, viewers read; another tenant's conversation or thread is 404
for everyone; a deleted user's token, and its open live stream, stop working at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from inbox_testkit import (
    Kit,
    Staff,
    running,
    service_headers,
    settings_for,
    tenant_settings,
)

from flowchat_platform.testing import eventually, serve, temporary_database, temporary_vhost

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ROLES = ("owner", "admin", "agent", "viewer")
ACTS = {"owner": True, "admin": True, "agent": True, "viewer": False}
MANAGES = {"owner": True, "admin": True, "agent": False, "viewer": False}


class People:
    def __init__(self, kit: Kit, staff: Staff) -> None:
        self.kit = kit
        self.staff = staff

    async def conversation(self, tenant: str) -> tuple[int, int]:
        """A customer who wrote and asked for an agent: ``(conversation id, thread id)``."""
        kit, wa = self.kit, self.kit.phone()
        await kit.publish(kit.inbound(tenant, wa_id=wa, text="agent"))
        await kit.publish(kit.handoff(tenant, wa_id=wa))

        async def found() -> list[dict[str, Any]]:
            # ``publish`` counts every handled message (a late copy of an earlier reply
            # too): wait for this customer's conversation itself
            r = await kit.http.get(
                "/v1/conversations", params={"limit": 100}, headers=service_headers(tenant)
            )
            assert r.status_code == 200, r.text
            mine = []
            for c in r.json()["items"]:
                t = await kit.http.get(
                    f"/v1/threads/{c['thread_id']}", headers=service_headers(tenant)
                )
                if t.json()["wa_id"] == wa:
                    mine.append(c)
            return mine

        (c,) = await eventually(found, timeout_s=10)
        return int(c["id"]), int(c["thread_id"])

    async def bot_thread(self, tenant: str) -> int:
        """A thread the bot is handling (no conversation)."""
        kit, wa = self.kit, self.kit.phone()
        await kit.publish(kit.inbound(tenant, wa_id=wa, text="is the blue one in stock?"))

        async def found() -> list[int]:
            r = await kit.http.get(
                "/v1/threads", params={"limit": 100}, headers=service_headers(tenant)
            )
            return [int(t["id"]) for t in r.json()["items"] if t["wa_id"] == wa]

        (thread,) = await eventually(found, timeout_s=10)
        return int(thread)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def people() -> AsyncIterator[People]:
    """The inbox against the real tenant service (its own databases and vhost)."""
    from flowchat_tenant.app import create_app as tenant_app

    with temporary_vhost() as amqp_url:
        async with (
            temporary_database() as tenant_db,
            temporary_database() as inbox_db,
        ):
            app = tenant_app(tenant_settings(tenant_db))
            async with serve(app) as tenant_url:
                await eventually(lambda: app.state.resources.identity is not None, timeout_s=30)
                async with (
                    httpx.AsyncClient(base_url=tenant_url, timeout=15) as tenant,
                    running(settings_for(amqp_url, inbox_db, tenant_url)) as kit,
                ):
                    yield People(kit, Staff(tenant))


def reads(cid: int, thread: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/v1/conversations/{cid}"),
        ("GET", f"/v1/threads/{thread}"),
        ("GET", f"/v1/threads/{thread}/messages"),
    ]


def acts(cid: int, thread: int, assignee: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("POST", f"/v1/conversations/{cid}/claim", None),
        ("POST", f"/v1/conversations/{cid}/messages", {"content": {"type": "text", "body": "hi"}}),
        ("POST", f"/v1/conversations/{cid}/notes", {"text": "a note"}),
        ("POST", f"/v1/conversations/{cid}/assign", {"agent_id": assignee}),
        ("POST", f"/v1/conversations/{cid}/resolve", None),
        ("POST", f"/v1/threads/{thread}/takeover", None),
    ]


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix_on_the_own_tenant(people: People, role: str) -> None:
    kit, staff = people.kit, people.staff
    a = await staff.new_tenant()
    user = await staff.user(a, role)
    me, uid = user["headers"], user["user_id"]
    cid, thread = await people.conversation(a)
    for method, path in [
        *reads(cid, thread),
        ("GET", "/v1/threads"),
        ("GET", "/v1/conversations"),
        ("GET", "/v1/conversations/stats"),
        ("GET", "/v1/search?q=agent"),
    ]:
        r = await kit.http.request(method, path, headers=me)
        assert r.status_code == 200, (role, path, r.text)
    if not ACTS[role]:
        for method, path, body in acts(cid, await people.bot_thread(a), "someone"):
            r = await kit.http.request(method, path, headers=me, json=body)
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), (role, path)
        c = (await kit.http.get(f"/v1/conversations/{cid}", headers=me)).json()
        assert (c["status"], c["assignee"]) == ("waiting", None)
        return
    # act: claim (as the user), reply, note, resolve, take over
    url = f"/v1/conversations/{cid}"
    r = await kit.http.post(f"{url}/claim", headers=me)
    assert (r.status_code, r.json()["assignee"]) == (200, uid)
    body = {"content": {"type": "text", "body": f"{role} here"}}
    r = await kit.http.post(f"{url}/messages", headers=me, json=body)
    assert r.status_code == 202, r.text
    r = await kit.http.post(f"{url}/notes", headers=me, json={"text": "noted"})
    assert r.status_code == 201, r.text
    msgs = (await kit.http.get(f"/v1/threads/{thread}/messages", headers=me)).json()["items"]
    assert {m["agent_id"] for m in msgs if m["author"] == "agent"} == {uid}
    r = await kit.http.post(f"{url}/resolve", headers=me)
    assert (r.status_code, r.json()["resolved_by"]) == (200, uid)
    r = await kit.http.post(f"/v1/threads/{await people.bot_thread(a)}/takeover", headers=me)
    assert (r.status_code, r.json()["assignee"]) == (201, uid)
    # manage: another agent's conversation
    held, _ = await people.conversation(a)
    other = {**service_headers(a), "X-Agent-ID": "someone-else"}
    assert (await kit.http.post(f"/v1/conversations/{held}/claim", headers=other)).is_success
    r = await kit.http.post(f"/v1/conversations/{held}/assign", headers=me, json={"agent_id": uid})
    assert r.status_code == (200 if MANAGES[role] else 403), (role, r.text)
    if not MANAGES[role]:
        r = await kit.http.post(f"/v1/conversations/{held}/resolve", headers=me)
        assert (r.status_code, r.json()["error"]["code"]) == (409, "not_holder")
        r = await kit.http.post(f"/v1/conversations/{held}/claim", headers=me)
        assert (r.status_code, r.json()["error"]["details"][0]["holder"]) == (409, "someone-else")
    else:
        r = await kit.http.post(f"/v1/conversations/{held}/resolve", headers=me)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("role", ROLES)
async def test_role_matrix_on_another_tenants_conversation(people: People, role: str) -> None:
    kit, staff = people.kit, people.staff
    a, b = await staff.new_tenant(), await staff.new_tenant()
    me = (await staff.user(a, role))["headers"]
    cid, thread = await people.conversation(b)
    for method, path in reads(cid, thread):
        r = await kit.http.request(method, path, headers=me)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), (role, path)
    for method, path, body in acts(cid, thread, "x"):
        r = await kit.http.request(method, path, headers=me, json=body)
        expected = 404 if ACTS[role] else 403
        assert r.status_code == expected, (role, path, r.text)
    for path in ("/v1/conversations", "/v1/threads", "/v1/search?q=agent"):
        r = await kit.http.get(path, headers=me)
        assert (r.status_code, r.json()["items"]) == (200, []), (role, path)
    r = await kit.http.get("/v1/conversations", headers={**me, "X-Tenant-ID": b})
    assert r.status_code == 403
    c = (await kit.http.get(f"/v1/conversations/{cid}", headers=service_headers(b))).json()
    assert (c["status"], c["assignee"]) == ("waiting", None)


async def test_a_user_acts_as_themself_and_bad_tokens_are_refused(people: People) -> None:
    kit, staff = people.kit, people.staff
    a = await staff.new_tenant()
    user = await staff.user(a, "admin")
    cid, _ = await people.conversation(a)
    r = await kit.http.post(
        f"/v1/conversations/{cid}/claim", headers={**user["headers"], "X-Agent-ID": "someone"}
    )
    assert r.status_code == 403
    r = await kit.http.post(
        f"/v1/conversations/{cid}/claim",
        headers={**user["headers"], "X-Agent-ID": user["user_id"]},
    )
    assert r.status_code == 200
    for token in ("fca.not-a-token", user["access_token"][:-2] + "xx"):
        r = await kit.http.get("/v1/conversations", headers={"Authorization": f"Bearer {token}"})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")


@contextlib.asynccontextmanager
async def sse(kit: Kit, headers: dict[str, str]) -> AsyncIterator[list[str]]:
    lines: list[str] = []
    connected = asyncio.Event()

    async def read() -> None:
        async with (
            httpx.AsyncClient(base_url=kit.base_url, timeout=None) as client,
            client.stream("GET", "/v1/stream", headers=headers) as r,
        ):
            assert r.status_code == 200
            async for line in r.aiter_lines():
                lines.append(line)
                connected.set()
        lines.append("<closed>")

    task = asyncio.create_task(read())
    try:
        await asyncio.wait_for(connected.wait(), 10)
        yield lines
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def test_a_deleted_users_token_and_stream_stop_at_once(people: People) -> None:
    kit, staff = people.kit, people.staff
    a = await staff.new_tenant()
    gone = await staff.user(a, "agent")
    stays = await staff.user(a, "agent")
    cid, _ = await people.conversation(a)
    async with sse(kit, gone["headers"]) as lines, sse(kit, stays["headers"]) as other:
        assert (await kit.http.get("/v1/conversations", headers=gone["headers"])).is_success
        await staff.delete(a, gone["user_id"])
        # the very next request: no cache trusts the token any longer
        r = await kit.http.post(f"/v1/conversations/{cid}/claim", headers=gone["headers"])
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
        r = await kit.http.get("/v1/conversations", headers=gone["headers"])
        assert r.status_code == 401
        # the open stream ends (checked again within stream_reauth_s)
        await eventually(lambda: "<closed>" in lines, timeout_s=10)
        assert "event: revoked" in lines
        assert "<closed>" not in other
    r = await kit.http.post(f"/v1/conversations/{cid}/claim", headers=stays["headers"])
    assert r.status_code == 200


async def test_operator_users_act_for_the_tenant_they_name(people: People) -> None:
    kit, staff = people.kit, people.staff
    a = await staff.new_tenant()
    staff_user = await staff.user(None)
    cid, _ = await people.conversation(a)
    r = await kit.http.get("/v1/conversations", headers=staff_user["headers"])
    assert (r.status_code, r.json()["error"]["code"]) == (400, "tenant_required")
    as_a = {**staff_user["headers"], "X-Tenant-ID": a}
    r = await kit.http.post(f"/v1/conversations/{cid}/assign", headers=as_a, json={"agent_id": "x"})
    assert (r.status_code, r.json()["assignee"]) == (200, "x")  # operators manage
    r = await kit.http.post(f"/v1/conversations/{cid}/resolve", headers=as_a)
    assert (r.status_code, r.json()["resolved_by"]) == (200, staff_user["user_id"])
