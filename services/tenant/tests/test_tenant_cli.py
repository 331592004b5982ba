"""The operator's CLI (``python -m flowchat_tenant tenant|number|apikey|keys …``) against
a real database; what it creates is what the API then serves."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys

import asyncpg

from flowchat_tenant.cli import run
from flowchat_tenant.settings import Settings

PNID = "106540352249901"
TOKEN = "EAAG-cli-access-token-plaintext"


class Io:
    def __init__(self, stdin: str = "") -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.stdin = io.StringIO(stdin)


async def cli(settings: Settings, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    streams = Io(stdin)
    code = await run(argv, settings=settings, out=streams.out, err=streams.err, stdin=streams.stdin)
    return code, streams.out.getvalue(), streams.err.getvalue()


async def test_tenant_number_and_key_lifecycle(settings, api, monkeypatch):
    code, out, err = await cli(
        settings, "--json", "tenant", "create", "--name", "Acme", "--currency", "KES",
        "--timezone", "Africa/Nairobi", "--tax-rate", "0.16",
    )  # fmt: skip
    assert code == 0, err
    tenant = json.loads(out)
    tid = tenant["tenant_id"]
    assert (tenant["currency"], tenant["timezone"], tenant["status"]) == (
        "KES",
        "Africa/Nairobi",
        "active",
    )

    code, out, _ = await cli(settings, "tenant", "list")
    assert code == 0
    assert tid in out
    assert "Acme" in out
    assert out.startswith("tenant_id")
    code, out, _ = await cli(settings, "tenant", "list", "--json")  # --json anywhere
    assert code == 0
    assert tid in [t["tenant_id"] for t in json.loads(out)]

    api.at_provider(PNID, TOKEN, "+1 555-010-9901")
    monkeypatch.setenv("CLI_TEST_APP_SECRET", "cli-app-secret-plaintext")
    code, out, err = await cli(
        settings, "number", "add", "--tenant", tid, "--provider", "meta",
        "--phone-number-id", PNID, "--waba-id", "102290129340398",
        "--display-phone-number", "+1 555-010-9901",
        "--app-secret", "env:CLI_TEST_APP_SECRET",
        "--verify-token", "-",
        "--access-token", TOKEN,
        stdin="cli-verify-token-plaintext\n",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("number acc_")
    assert "GREEN" in out  # the health read from the provider at registration
    for secret in ("cli-app-secret-plaintext", "cli-verify-token-plaintext", TOKEN):
        assert secret not in out + err

    r = await api.client.get(f"/v1/tenants/{tid}/accounts", headers=api.operator)
    (account,) = r.json()["items"]
    assert account["phone_number_id"] == PNID
    r = await api.client.get(f"/internal/v1/accounts/{account['account_id']}", headers=api.service)
    assert r.json()["app_secret"] == "cli-app-secret-plaintext"
    ok = await api.client.post(
        "/internal/v1/verify-tokens/check",
        json={"token": "cli-verify-token-plaintext"},
        headers=api.service,
    )
    assert ok.json() == {"valid": True}

    code, out, err = await cli(
        settings, "--json", "apikey", "create", "--tenant", tid, "--name", "shop",
        "--scope", "send", "--scope", "read",
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["scopes"] == ["read", "send"]
    verify = "/internal/v1/api-keys/verify"
    r = await api.client.post(verify, json={"key": created["key"]}, headers=api.service)
    assert r.status_code == 200
    assert r.json()["tenant_id"] == tid

    code, out, _ = await cli(settings, "apikey", "list", "--tenant", tid)
    assert created["key_id"] in out
    assert created["key"] not in out

    code, out, _ = await cli(settings, "apikey", "revoke", "--tenant", tid, created["key_id"])
    assert code == 0
    assert f"API key {created['key_id']} revoked" in out
    r = await api.client.post(verify, json={"key": created["key"]}, headers=api.service)
    assert r.status_code == 404

    code, out, _ = await cli(settings, "tenant", "suspend", tid)
    assert code == 0
    assert "is suspended" in out


async def test_refusals_name_the_field_and_exit_non_zero(settings, api):
    code, out, err = await cli(settings, "tenant", "create", "--name", "X", "--currency", "ZZZ")
    assert code == 2
    assert "--currency" in err
    assert out == ""

    tid = (await api.tenant())["tenant_id"]
    api.at_provider(PNID, TOKEN, "+1 555-010-9901")
    base = [
        "number", "add", "--tenant", tid, "--provider", "meta", "--phone-number-id", PNID,
        "--waba-id", "102290129340398", "--display-phone-number", "+1 555-010-9901",
        "--app-secret", "cli-app-secret-plaintext", "--verify-token", "cli-verify-token-1",
    ]  # fmt: skip
    code, _, err = await cli(settings, *base, "--access-token", "EAAG-wrong-token-value")
    assert code == 1
    assert "invalid_credentials" in err
    assert "--access-token" in err
    assert "EAAG-wrong-token-value" not in err

    code, _, err = await cli(settings, *base, "--access-token", TOKEN)
    assert code == 0, err
    code, _, err = await cli(settings, *base, "--access-token", TOKEN)
    assert code == 1
    assert "conflict" in err
    assert "--phone-number-id" in err

    code, _, err = await cli(
        settings, "number", "add", "--tenant", tid, "--provider", "twilio",
        "--twilio-account-sid", "AC" + "0" * 32, "--twilio-number", "not-a-number",
        "--twilio-auth-token", "twilio-auth-token-plaintext",
    )  # fmt: skip
    assert code == 2
    assert "--twilio-number" in err

    code, _, err = await cli(settings, "apikey", "revoke", "--tenant", "tnt_0000", "key_00")
    assert code == 1
    assert "not_found" in err
    code, _, err = await cli(settings, "apikey", "create", "--tenant", tid, "--name", "x")
    assert code == 2  # argparse: --scope is required
    # A secret asked for from a non-terminal with nothing given is a missing field.
    code, _, err = await cli(
        settings, "number", "add", "--tenant", tid, "--provider", "twilio",
        "--twilio-account-sid", "AC" + "1" * 32, "--twilio-number", "+14155550199",
    )  # fmt: skip
    assert code == 2
    assert "--twilio-auth-token" in err


async def test_no_plaintext_secret_in_the_database(settings, api):
    api.at_provider(PNID, TOKEN, "+1 555-010-9901")
    code, out, err = await cli(settings, "--json", "tenant", "create", "--name", "Z")
    tid = json.loads(out)["tenant_id"]
    code, _, err = await cli(
        settings, "number", "add", "--tenant", tid, "--provider", "meta",
        "--phone-number-id", PNID, "--waba-id", "102290129340398",
        "--display-phone-number", "+1 555-010-9901", "--app-secret", "cli-app-secret-plaintext",
        "--verify-token", "cli-verify-token-plaintext", "--access-token", TOKEN,
    )  # fmt: skip
    assert code == 0, err
    conn = await asyncpg.connect(settings.database_url)
    try:
        dump = str([dict(r) for r in await conn.fetch("SELECT * FROM tenant.accounts")])
    finally:
        await conn.close()
    for secret in ("cli-app-secret-plaintext", "cli-verify-token-plaintext", TOKEN):
        assert secret not in dump


async def test_module_entry_point_runs_the_cli(settings, tenant_env):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowchat_tenant", "tenant", "create", "--name", "FromShell",
        env=dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    first = out.decode().splitlines()[0]
    assert first.startswith("tenant tnt_")
    assert first.endswith(" created")
    assert "FromShell" in out.decode()
