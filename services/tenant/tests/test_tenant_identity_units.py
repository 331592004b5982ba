"""Pure parts of identity: the permission table, access tokens, argon2id (no server)."""

from __future__ import annotations

import time

import pytest

from flowchat_tenant.errors import Forbidden, NotFound
from flowchat_tenant.permissions import ACTIONS, PERMISSIONS, Principal, authorize
from flowchat_tenant.tokens import AccessTokens, Passwords

KEY = b"k" * 32


def test_the_table_orders_roles_by_power():
    assert PERMISSIONS["viewer"] < PERMISSIONS["agent"] < PERMISSIONS["admin"]
    assert PERMISSIONS["admin"] < PERMISSIONS["owner"]
    assert PERMISSIONS["owner"] == ACTIONS
    assert "conversations.reply" not in PERMISSIONS["viewer"]
    assert "audit.read" not in PERMISSIONS["agent"]
    assert PERMISSIONS["owner"] - PERMISSIONS["admin"] == {"users.owners"}


def test_authorize_other_tenant_is_404_before_the_role():
    viewer = Principal(operator=False, tenant_id="tnt_a", user_id="usr_1", role="viewer")
    authorize(viewer, "tnt_a", "tenant.read")
    with pytest.raises(Forbidden):
        authorize(viewer, "tnt_a", "tenant.update")
    with pytest.raises(NotFound):
        authorize(viewer, "tnt_b", "tenant.read")
    staff = Principal(operator=True, user_id="usr_2", role="operator", actor_type="user")
    authorize(staff, "tnt_b", "users.owners")
    with pytest.raises(ValueError, match="unknown action"):
        authorize(staff, "tnt_b", "tenant.destroy")
    key = Principal(operator=False, tenant_id="tnt_a", key_id="key_1", scopes=("admin",))
    assert key.effective_role == "admin"
    assert key.may("keys.write")
    assert not key.may("users.owners")


def test_access_tokens_sign_expire_and_refuse_other_keys():
    tokens = AccessTokens(KEY, ttl_s=60)
    token, expires_at = tokens.issue(
        user_id="usr_1", tenant_id="tnt_a", role="agent", session_id="ses_1", version=3
    )
    claims = tokens.check(token)
    assert claims is not None
    assert (claims.user_id, claims.tenant_id, claims.role) == ("usr_1", "tnt_a", "agent")
    assert (claims.session_id, claims.token_version) == ("ses_1", 3)
    assert expires_at - time.time() == pytest.approx(60, abs=2)
    assert AccessTokens(b"o" * 32, ttl_s=60).check(token) is None
    expired, _ = AccessTokens(KEY, ttl_s=-1).issue(
        user_id="usr_1", tenant_id=None, role="operator", session_id="ses_1", version=1
    )
    assert tokens.check(expired) is None
    assert tokens.check(token + "x") is None
    assert tokens.check("fc_key_1_" + "a" * 40) is None
    with pytest.raises(ValueError, match="32 bytes"):
        AccessTokens(b"short", ttl_s=60)


async def test_passwords_are_argon2id():
    passwords = Passwords(time_cost=1, memory_kib=8192)
    stored = await passwords.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert await passwords.verify(stored, "correct horse battery staple")
    assert not await passwords.verify(stored, "Correct horse battery staple")
    assert not await passwords.verify(None, "anything at all")
    assert not await passwords.verify("not a hash", "anything at all")
