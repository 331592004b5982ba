"""Injection, oversized and deeply nested input: stored or echoed verbatim, or refused
with a clear 4xx; never a 5xx, never executed.

- every text of an inbound webhook (Meta text and profile name, Twilio ``Body`` and
  ``ProfileName``) with each of ``TEXT_ATTACKS``: 200, and the conversation service
  handles every one (none kills or parks its consumer);
- every text field of the tenant APIs (``ROUTES[...].text_fields``) and a few search
  parameters with each attack: < 500; a 2xx answer that echoes the field echoes it
  verbatim; the database keeps every table (no SQL ran);
- at every JSON endpoint of every service: a body one byte over the service's limit →
  413 (declared and chunked), one just under → not 413; nesting 100,000 deep → 4xx.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from faults_kit import inbound_webhook, sign
from security_kit import (
    ROUTES,
    TEXT_ATTACKS,
    SecurityEnv,
    bearer,
    handled,
    wait_handled,
)
from twilio.request_validator import RequestValidator

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MIB = 1024 * 1024
#: Each service's JSON body limit (flowchat_platform.http.build_app's max_json_bytes).
LIMITS = {
    "gateway": 3 * MIB,
    "sandbox": 9 * MIB,
    "tenant": MIB,
    "conversation": MIB,
    "sender": MIB,
    "state-manager": MIB,
}
#: Tenant API routes whose 2xx answer carries the text fields back.
ECHOES = {
    ("tenant", "POST", "/v1/tenants"),
    ("tenant", "PATCH", "/v1/tenants/{tenant_id}"),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/api-keys"),
    ("conversation", "PUT", "/v1/tenants/{tenant_id}/settings"),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/products"),
    ("conversation", "PATCH", "/v1/tenants/{tenant_id}/contacts/{contact_id}"),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/reminders"),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/campaigns"),
}
SEARCHES = [
    ("conversation", "/v1/tenants/{tenant_id}/contacts", "q"),
    ("conversation", "/v1/tenants/{tenant_id}/products", "category"),
    ("conversation", "/v1/tenants/{tenant_id}/orders", "customer"),
    ("state-manager", "/v1/messages", "recipient"),
]


def _set(doc: Any, dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    if isinstance(doc, list):
        doc[int(last)] = value
    else:
        doc[last] = value


def _strings(doc: Any) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in _strings(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return []


async def _tables(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                "('pg_catalog', 'information_schema')"
            )
        )
    finally:
        await conn.close()


async def test_injection_in_inbound_webhooks(security: SecurityEnv, figures) -> None:
    env, a = security, security.a
    gw = env.url("gateway")
    public = env.stack.env["FLOWCHAT_GATEWAY_PUBLIC_URL"].rstrip("/")
    twilio_path = f"/webhooks/twilio/{env.twilio.account_id}"
    answers: dict[str, int] = {}
    ids: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for n, (name, attack) in enumerate(TEXT_ATTACKS.items()):
            wa_id = f"23480{n:02d}{uuid.uuid4().int % 10**6:06d}"
            wamid = f"wamid.INJ{uuid.uuid4().hex}"
            doc = json.loads(inbound_webhook(a, wa_id, attack, wamid=wamid))
            doc["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = attack
            body = json.dumps(doc).encode()
            r = await client.post(
                f"{gw}/webhooks/meta", content=body, headers=sign(a.app_secret, body)
            )
            answers[f"meta.{name}"] = r.status_code
            ids[wamid] = f"meta.{name}"
            sid = "SM" + uuid.uuid4().hex
            customer = f"+1415555{n:04d}"
            form = {
                "MessageSid": sid,
                "SmsMessageSid": sid,
                "AccountSid": env.twilio.sid,
                "From": f"whatsapp:{customer}",
                "To": f"whatsapp:{env.twilio.number}",
                "WaId": customer.lstrip("+"),
                "ProfileName": attack,
                "Body": attack,
                "NumMedia": "0",
                "MessageType": "text",
            }
            signature = RequestValidator(env.twilio.token).compute_signature(
                public + twilio_path, form
            )
            r = await client.post(
                gw + twilio_path,
                content=urlencode(form).encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": signature,
                },
            )
            answers[f"twilio.{name}"] = r.status_code
            ids[sid] = f"twilio.{name}"
    bad = {k: v for k, v in answers.items() if v != 200}
    assert not bad, f"webhooks with hostile text not accepted: {bad}"
    # every hostile message reaches the conversation service and is handled once: none
    # kills its consumer or is retried for ever
    try:
        counts = await wait_handled(env, list(ids), timeout_s=120)
    except AssertionError:
        counts = handled(env)
    missing = [ids[i] for i in ids if not counts[i]]
    twice = [ids[i] for i in ids if counts[i] > 1]
    figures.sent = len(answers)
    figures.processed = len(ids) - len(missing)
    figures.lost = len(missing)
    figures.duplicated = len(twice)
    figures.notes = f"webhooks: attacks={len(answers)} handled={figures.processed}"
    assert not missing, f"hostile messages never handled: {missing}"
    assert not twice, f"hostile messages handled more than once: {twice}"


async def test_injection_in_tenant_api_text_fields(security: SecurityEnv, figures) -> None:
    env, b = security, security.b
    ids = env.b_ids
    dsn = env.stack.env["DATABASE_URL"]
    tables_before = await _tables(dsn)
    tried = refused = echoed = 0
    errors: list[str] = []
    not_verbatim: list[str] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for key, route in sorted(ROUTES.items()):
            if not route.text_fields or route.body is None:
                continue
            service, method, path = key
            headers = env.operator_headers() if route.guard == "operator" else bearer(b.api_key)
            values = {
                **ids,
                "version": "v23.0",
                "phone_number_id": b.phone_number_id,
                "waba_id": b.waba_id,
            }
            url = env.url(service) + re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)
            for field in route.text_fields:
                for name, attack in TEXT_ATTACKS.items():
                    body = route.body(env, ids)
                    _set(body, field, attack)
                    extra = {"Idempotency-Key": uuid.uuid4().hex} if service == "gateway" else {}
                    r = await client.request(method, url, headers={**headers, **extra}, json=body)
                    tried += 1
                    where = f"{method} {service}{path} {field}={name}"
                    if r.status_code >= 500:
                        errors.append(f"{where}: {r.status_code} {r.text[:200]}")
                    elif r.status_code >= 400:
                        refused += 1
                        if "error" not in r.json():
                            errors.append(f"{where}: {r.status_code} without an error body")
                    elif key in ECHOES:
                        if any(attack in s for s in _strings(r.json())):
                            echoed += 1
                        else:
                            not_verbatim.append(f"{where}: {r.text[:200]!r}")
        for service, path, param in SEARCHES:
            url = env.url(service) + path.replace("{tenant_id}", b.tenant_id)
            for name, attack in TEXT_ATTACKS.items():
                # a URL is at most ~64 KiB for httpx: the long text cut to 8 KiB there
                value = attack[:8192]
                r = await client.get(url, headers=bearer(b.api_key), params={param: value})
                tried += 1
                if r.status_code >= 500:
                    errors.append(f"GET {service}{path}?{param}={name}: {r.status_code}")
                elif r.status_code >= 400:
                    refused += 1
    tables_after = await _tables(dsn)
    figures.sent = tried
    figures.processed = tried - len(errors)
    figures.notes = (
        f"api: requests={tried} refused4xx={refused} echoed_verbatim={echoed} "
        f"5xx={len(errors)} altered={len(not_verbatim)} tables={tables_before}->{tables_after}"
    )
    assert not errors, "hostile text answered 5xx:\n" + "\n".join(errors)
    assert not not_verbatim, "accepted but not echoed verbatim:\n" + "\n".join(not_verbatim)
    assert tables_after == tables_before, "tables dropped"


async def _json_operations(
    client: httpx.AsyncClient, env: SecurityEnv
) -> list[tuple[str, str, str]]:
    ops = []
    for service in LIMITS:
        r = await client.get(f"{env.url(service)}/openapi.json")
        for path, item in r.json()["paths"].items():
            for method, op in item.items():
                content = op.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    ops.append((service, method.upper(), path))
    return ops


def _concrete(env: SecurityEnv, path: str) -> str:
    values = {**env.b_ids, "version": "v23.0", "phone_number_id": env.b.phone_number_id}
    return re.sub(r"\{([^}]+)\}", lambda m: values.get(m.group(1), "x"), path)


async def _chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_oversized_and_deeply_nested_json(security: SecurityEnv, figures) -> None:
    env, b = security, security.b
    wrong: list[str] = []
    tried = 0
    deep = ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()
    deep_list = ("[" * 100_000 + "]" * 100_000).encode()
    async with httpx.AsyncClient(timeout=120) as client:
        ops = await _json_operations(client, env)
        for service, method, path in ops:
            url = env.url(service) + _concrete(env, path)
            headers = {
                **bearer(b.api_key),
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            limit = LIMITS[service]
            over = b'{"pad": "' + b"x" * (limit - 10) + b'"}'
            assert len(over) == limit + 1
            under = b'{"pad": "' + b"x" * (limit - 1000) + b'"}'
            cases: dict[str, tuple[bytes | AsyncIterator[bytes], set[int] | None]] = {
                "over_declared": (over, {413}),
                "over_chunked": (_chunks(over), {413}),
                "deep_object": (deep, None),
                "deep_array": (deep_list, None),
                "under_limit": (under, None),
            }
            for case, (content, expected) in cases.items():
                try:
                    r = await client.request(method, url, headers=headers, content=content)
                except httpx.TransportError as exc:
                    wrong.append(f"{case} {method} {service}{path}: {exc!r}")
                    continue
                tried += 1
                status = r.status_code
                if case == "under_limit":
                    ok = status != 413 and status < 500
                elif expected is not None:
                    ok = status in expected
                else:
                    ok = 400 <= status < 500
                if not ok:
                    wrong.append(f"{case} {method} {service}{path}: {status} {r.text[:120]}")
        # a deep body with a's valid signature reaches the webhook's own JSON parsing
        for name, raw in (("deep_object", deep), ("deep_array", deep_list)):
            r = await client.post(
                env.url("gateway") + "/webhooks/meta",
                content=raw,
                headers=sign(env.a.app_secret, raw),
            )
            tried += 1
            # refused, or taken and parked for inspection (Meta must not retry it)
            parked = r.status_code == 200 and r.json().get("parked") == 1
            if not (400 <= r.status_code < 500 or parked) or r.json().get("published"):
                wrong.append(f"signed {name} meta webhook: {r.status_code} {r.text[:120]}")
    figures.sent = tried
    figures.processed = tried - len(wrong)
    figures.notes = f"json endpoints={len(ops)} requests={tried} wrong={len(wrong)}"
    assert not wrong, "oversized/nested bodies answered wrongly:\n" + "\n".join(wrong)


async def test_template_placeholders_in_contact_data_are_never_rendered(
    security: SecurityEnv, figures
) -> None:
    """A campaign fills template parameters from contact data (``{{first_name|friend}}``,
    ``{{city}}``); placeholders, SQL and markup inside that data come out verbatim, once."""
    env, b = security, security.b
    conv = f"{env.url('conversation')}/v1/tenants/{b.tenant_id}"
    name = f"sec_promo_{uuid.uuid4().hex[:8]}"
    tag = f"inj{uuid.uuid4().hex[:6]}"
    city = "{{city}} {{1}}'; DROP TABLE contacts; -- <b>x</b>"
    first = "{{1}}{{name}}{{7*7}}"
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(
            f"{env.url('sandbox')}/sandbox/templates",
            json={
                "waba_id": b.waba_id,
                "name": name,
                "language": "en",
                "status": "APPROVED",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Hi {{1}}, {{2}} in {{3}}!"}],
            },
        )
        assert r.status_code == 201, r.text
        r = await client.post(
            f"{conv}/contacts",
            headers=bearer(b.api_key),
            json={
                "phone": f"+4478{uuid.uuid4().int % 10**8:08d}",
                "name": f"{first} Smith",
                "tags": [tag],
                "attributes": {"city": city},
                "marketing_opt_in": True,
            },
        )
        assert r.status_code in (200, 201), r.text
        r = await client.post(
            f"{conv}/campaigns/dry-run",
            headers=bearer(b.api_key),
            json={
                "name": "{{name}} campaign",
                "account_id": b.account_id,
                "template": {"name": name, "language": "en"},
                "parameters": {"body": ["{{first_name|friend}}", "{{2}} sale", "{{city}}"]},
                "segment": {"tags_all": [tag]},
                "previews": 1,
            },
        )
    figures.sent = 1
    assert r.status_code == 200, r.text
    (preview,) = r.json()["previews"]
    expected = f"Hi {first}, {{{{2}}}} sale in {city}!"
    figures.processed = int(preview["text"] == expected)
    figures.notes = f"campaign preview verbatim={preview['text'] == expected}"
    assert preview["text"] == expected
