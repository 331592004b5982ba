"""``TenantClient.user``: a verified user token is held briefly (bounded LRU, by digest), so
a service asks the tenant service at most once per token per ``user_ttl_s``."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp

from flowchat_platform.tenant_client import TenantClient, UserInfo

ALICE = {"user_id": "usr_a", "tenant_id": "tnt_a", "role": "agent", "session_id": "ses_a"}


class FakeTenant(TenantClient):
    """The tenant service's ``/users/resolve`` in memory (no HTTP): ``live`` tokens resolve."""

    def __init__(self, *, max_age: float = float("inf"), **kw: Any) -> None:
        super().__init__(
            "http://tenant.invalid", "s" * 24, session=cast(aiohttp.ClientSession, None), **kw
        )
        self.live: dict[str, dict[str, str]] = {}
        self.asked: list[str] = []
        self.max_age = max_age

    async def _post_aged(
        self, path: str, payload: dict[str, Any], *, expect: int = 200
    ) -> tuple[dict[str, Any] | None, float]:
        assert path == "/users/resolve"
        self.asked.append(payload["token"])
        found = self.live.get(payload["token"])
        return (dict(found), self.max_age) if found else (None, float("inf"))


async def test_a_verified_token_is_held_until_its_ttl_then_asked_again():
    tenant = FakeTenant(user_ttl_s=0.2)
    tenant.live["fca.alice"] = ALICE
    first = await tenant.user("fca.alice")
    assert first == UserInfo.model_validate(ALICE)
    assert await tenant.user("fca.alice") == first  # a hit: not asked again
    assert tenant.asked == ["fca.alice"]
    assert "fca.alice" not in repr(tenant._users)  # held by digest, never the token
    await asyncio.sleep(0.25)
    assert await tenant.user("fca.alice") == first  # expired: asked again
    assert tenant.asked == ["fca.alice", "fca.alice"]


async def test_a_revoked_token_is_trusted_at_most_the_ttl():
    tenant = FakeTenant(user_ttl_s=0.2)
    tenant.live["fca.alice"] = ALICE
    assert await tenant.user("fca.alice") is not None
    del tenant.live["fca.alice"]  # signed out / user deleted at the tenant service
    assert await tenant.user("fca.alice") is not None  # within the TTL: still trusted
    await asyncio.sleep(0.25)
    assert await tenant.user("fca.alice") is None  # after it: refused


async def test_the_tenants_max_age_caps_the_ttl_and_zero_asks_every_time():
    capped = FakeTenant(user_ttl_s=5.0, max_age=0)
    capped.live["fca.alice"] = ALICE
    await capped.user("fca.alice")
    await capped.user("fca.alice")
    assert len(capped.asked) == 2
    off = FakeTenant(user_ttl_s=0)
    off.live["fca.alice"] = ALICE
    await off.user("fca.alice")
    await off.user("fca.alice")
    assert len(off.asked) == 2


async def test_the_cache_is_bounded_least_recently_used_first_out():
    tenant = FakeTenant(user_ttl_s=60, user_cache_size=2)
    for name in ("a", "b", "c"):
        tenant.live[f"fca.{name}"] = {**ALICE, "user_id": f"usr_{name}"}
    await tenant.user("fca.a")
    await tenant.user("fca.b")
    await tenant.user("fca.a")  # a hit: a is now the most recent
    await tenant.user("fca.c")  # drops b
    assert len(tenant._users) == 2
    tenant.asked.clear()
    await tenant.user("fca.a")
    await tenant.user("fca.c")
    assert tenant.asked == []
    await tenant.user("fca.b")
    assert tenant.asked == ["fca.b"]
