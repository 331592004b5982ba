"""Key rotation: ``python -m flowchat_tenant rotate-keys`` re-encrypts under the new key."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest
from cryptography.fernet import Fernet, InvalidToken

from flowchat_tenant.cli import rotate_keys
from flowchat_tenant.settings import Settings


async def _ciphertexts(dsn: str) -> dict[str, tuple[bytes | None, ...]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, app_secret_enc, access_token_enc, verify_token_enc, twilio_auth_token_enc "
            "FROM tenant.accounts"
        )
    finally:
        await conn.close()
    return {r["id"]: tuple(r[c] for c in list(r.keys())[1:]) for r in rows}


async def _registered(api, count: int):
    tenant = await api.tenant()
    bodies = [api.meta_body() for _ in range(count)] + [api.twilio_body()]
    accounts = [await api.account(tenant["tenant_id"], b) for b in bodies]
    return list(zip(accounts, bodies, strict=True))


async def test_rotate_keys_command_re_encrypts_everything(
    api, settings, keys, monkeypatch, another_service
):
    old, new = keys
    registered = await _registered(api, 3)
    before = await _ciphertexts(settings.database_url)

    env = {
        **os.environ,
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS": f"{new},{old}",
        "FLOWCHAT_TENANT_ROTATION_BATCH_SIZE": "2",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowchat_tenant",
        "rotate-keys",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "re-encrypted 10 secrets of 4 accounts" in out.decode()
    for _, body in registered:
        for secret in ("access_token", "app_secret", "twilio_auth_token"):
            if secret in body:
                assert body[secret] not in out.decode() + err.decode()

    after = await _ciphertexts(settings.database_url)
    only_new = Fernet(new.encode())
    only_old = Fernet(old.encode())
    for account_id, values in after.items():
        for before_value, value in zip(before[account_id], values, strict=True):
            if value is None:
                assert before_value is None
                continue
            assert value != before_value
            only_new.decrypt(value)
            with pytest.raises(InvalidToken):
                only_old.decrypt(value)

    # A service that knows only the new key serves every secret.
    monkeypatch.setenv("FLOWCHAT_TENANT_ENCRYPTION_KEYS", new)
    async with another_service() as client:
        for account, body in registered:
            r = await client.get(
                f"/internal/v1/accounts/{account['account_id']}", headers=api.service
            )
            assert r.status_code == 200
            creds = r.json()
            if body["provider"] == "meta":
                assert creds["access_token"] == body["access_token"]
                assert creds["app_secret"] == body["app_secret"]
            else:
                assert creds["twilio_auth_token"] == body["twilio_auth_token"]
            assert creds["version"] == account["version"]  # plaintext unchanged: caches stay valid
        r = await client.post(
            "/internal/v1/verify-tokens/check",
            json={"token": registered[0][1]["verify_token"]},
            headers=api.service,
        )
        assert r.json() == {"valid": True}


async def test_rotation_in_small_batches_is_idempotent(api, settings, keys, monkeypatch):
    old, new = keys
    registered = await _registered(api, 2)
    monkeypatch.setenv("FLOWCHAT_TENANT_ENCRYPTION_KEYS", f"{new},{old}")
    both = Settings()
    # One account per transaction, then again: the second run re-encrypts the same secrets.
    first = await rotate_keys(both.model_copy(update={"rotation_batch_size": 1}))
    assert first == (3, 7)
    again = await rotate_keys(both)
    assert again == (3, 7)
    box = both.secret_box()
    for account_id, values in (await _ciphertexts(settings.database_url)).items():
        plain = [box.decrypt(v) for v in values]
        _account, body = next((a, b) for a, b in registered if a["account_id"] == account_id)
        expected = body.get("access_token") or body["twilio_auth_token"]
        assert expected in plain
