"""Secrets and personal data never in logs: every log file the package's stack wrote
(the services, the suite's own RabbitMQ node and redis-server) is scanned for every
token and secret the package created or was given: Meta access tokens and app secrets,
verify tokens, API keys (also revoked and mistyped ones), the Twilio auth token (also as
the Basic credentials it travels in), the service token, the operator key, the
encryption keys.

This file runs last in the package (its name sorts last), after every other test has
pushed these secrets through the stack; it first does the things most likely to log one
on its own: failed logins with near-miss keys, a refused webhook, a token rotated to one
the provider refuses, a verification with a wrong verify token, sends on both providers.

Personal data too, across the whole fault run (this package runs last in it): every
customer's phone number, BSUID, profile name and message text the run sent (the
package's seeds' contacts, reminders and messages, the sends here, two inbound messages,
from a phone number and from a BSUID; and everything every scenario sent, read from its
requests: ``faults_kit.RUN``) is looked for in every log file of every stack of the run,
in this stack's live ``/metrics`` and in every other stack's ``/metrics`` kept when it
stopped (a label value carrying one is a leak as well). Any BSUID-shaped string is one.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from faults_kit import BSUID, RUN, inbound_webhook, open_windows, sign, wait_for
from security_kit import SecurityEnv, bearer, wait_handled

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _forms(value: str) -> set[str]:
    """How a secret may appear in a log line: as is, JSON-escaped, URL-encoded."""
    return {value, json.dumps(value)[1:-1], quote(value, safe="")}


async def _exercise(client: httpx.AsyncClient, env: SecurityEnv) -> dict[str, str]:
    """Requests that carry secrets into code paths that log; the extra secrets used."""
    a = env.a
    extra: dict[str, str] = {}
    tenant, gateway = env.url("tenant"), env.url("gateway")
    # near-miss and revoked API keys on every service that checks keys
    near_miss = a.api_key[:-4] + ("zzzz" if not a.api_key.endswith("zzzz") else "yyyy")
    extra["near_miss_api_key"] = near_miss
    r = await client.post(
        f"{tenant}/v1/tenants/{a.tenant_id}/api-keys",
        headers=bearer(a.api_key),
        json={"name": "to-revoke", "scopes": ["send"]},
    )
    assert r.status_code == 201, r.text
    revoked, revoked_id = r.json()["key"], r.json()["key_id"]
    extra["revoked_api_key"] = revoked
    r = await client.delete(
        f"{tenant}/v1/tenants/{a.tenant_id}/api-keys/{revoked_id}", headers=bearer(a.api_key)
    )
    assert r.status_code in (200, 204), r.text
    for key in (near_miss, revoked):
        for url in (
            f"{gateway}/v1/messages/{env.a_ids['message_id']}",
            f"{env.url('state-manager')}/v1/messages/{env.a_ids['message_id']}",
            f"{env.url('conversation')}/v1/tenants/{a.tenant_id}/settings",
            f"{tenant}/v1/tenants/{a.tenant_id}",
            f"{env.url('sender')}/internal/v1/dlq",
        ):
            r = await client.get(url, headers=bearer(key))
            assert r.status_code in (401, 403), (url, r.status_code)
    # a token the provider refuses, set on a's number, then the real one back
    refused_token = "EAAG" + secrets.token_urlsafe(32)
    extra["refused_access_token"] = refused_token
    account = f"{tenant}/v1/tenants/{a.tenant_id}/accounts/{a.account_id}"
    r = await client.patch(account, headers=bearer(a.api_key), json={"access_token": refused_token})
    assert r.status_code < 500, r.text
    if r.status_code < 300:
        r = await client.patch(
            account, headers=bearer(a.api_key), json={"access_token": a.access_token}
        )
        assert r.status_code < 300, r.text
    # a refused webhook (its signature is a's) and a verification with a wrong token
    body = inbound_webhook(a, "2348077000001", "hello")
    headers = sign(a.app_secret, body)
    r = await client.post(f"{gateway}/webhooks/meta", content=body + b" ", headers=headers)
    assert r.status_code == 401, r.text
    wrong_verify = secrets.token_urlsafe(16)
    extra["wrong_verify_token"] = wrong_verify
    for token in (a.verify_token, wrong_verify):
        r = await client.get(
            f"{gateway}/webhooks/meta",
            params={"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": "42"},
        )
        assert r.status_code in (200, 403), r.text
    # sends on both providers: the sender puts the access token and the Twilio
    # credentials in its requests
    wa_id = "2348077" + f"{uuid.uuid4().int % 10**6:06d}"
    env.personal["send.meta_to"] = wa_id
    await open_windows(client, env.stack, a, [wa_id])
    r = await client.post(
        f"{gateway}/v1/messages",
        headers={**bearer(a.api_key), "Idempotency-Key": uuid.uuid4().hex},
        json={"account_id": a.account_id, "to": wa_id, "content": {"type": "text", "body": "x"}},
    )
    assert r.status_code == 202, r.text
    message_id = r.json()["message_id"]
    twilio_to = "+1415556" + f"{uuid.uuid4().int % 10**4:04d}"
    env.personal["send.twilio_to"] = twilio_to
    r = await client.post(
        f"{gateway}/v1/messages",
        headers={**bearer(a.api_key), "Idempotency-Key": uuid.uuid4().hex},
        json={
            "account_id": env.twilio.account_id,
            "to": twilio_to,
            "content": {"type": "text", "body": "x"},
        },
    )
    assert r.status_code == 202, r.text

    async def settled() -> bool:
        r = await client.get(f"{gateway}/v1/messages/{message_id}", headers=bearer(a.api_key))
        return r.status_code == 200 and r.json().get("status") not in (None, "queued")

    await wait_for(settled, timeout_s=60, what="the Meta send settled")
    return extra


def _log_files(env: SecurityEnv) -> list[Path]:
    files = list(env.stack.logs.values())
    for folder in env.log_dirs:
        files += [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".log", ".out")]
    return files


async def test_secrets_never_in_logs(security: SecurityEnv, figures) -> None:
    env = security
    async with httpx.AsyncClient(timeout=60) as client:
        extra = await _exercise(client, env)
    found = {**env.secrets(), **extra}
    basic = base64.b64encode(f"{env.twilio.sid}:{env.twilio.token}".encode()).decode()
    found["twilio.basic_credentials"] = basic
    files = _log_files(env)
    assert files, "no log files to scan"
    scanned = 0
    leaks: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        scanned += len(text)
        for name, value in found.items():
            if len(value) < 8:
                continue
            if any(form in text for form in _forms(value)):
                leaks.append(f"{name} in {path.name}")
    figures.sent = len(found)
    figures.processed = len(files)
    figures.notes = f"secrets={len(found)} files={len(files)} bytes={scanned} leaks={len(leaks)}"
    # control: the scan finds what the logs do carry (ids are logged, secrets are not)
    everything = "\n".join(p.read_text(errors="replace") for p in files)
    assert env.a.tenant_id in everything, "the scan sees no tenant id: wrong files?"
    assert not leaks, "secrets in logs:\n" + "\n".join(leaks)


#: A BSUID in a log line or a label (``US.13491208655302741918``, ``NG.ENT.1234…``).
BSUID_IN_TEXT = BSUID
#: A run of digits (a phone number is one, with no digit either side).
DIGITS = re.compile(r"[0-9]{8,}")


def _inbound_from(env: SecurityEnv, sender: str, name: str, text: str) -> tuple[bytes, str]:
    """A signed-able ``messages`` webhook of tenant a: one text from ``sender`` (a phone
    number or a BSUID) with profile ``name``; the body and its wamid."""
    wamid = f"wamid.PRIVACY{uuid.uuid4().hex}"
    payload = json.loads(inbound_webhook(env.a, "2348000000000", text, wamid))
    value = payload["entry"][0]["changes"][0]["value"]
    (contact,), (message,) = value["contacts"], value["messages"]
    contact["profile"]["name"] = name
    if "." in sender:  # a BSUID: Meta sends no phone number at all
        del contact["wa_id"], message["from"]
        contact["user_id"] = message["from_user_id"] = sender
    else:
        contact["wa_id"] = message["from"] = sender
    return json.dumps(payload).encode(), wamid


def _personal_forms(value: str) -> set[str]:
    forms = _forms(value)
    if value.startswith("+"):
        forms |= _forms(value[1:])
    return forms


async def test_personal_data_never_in_logs_or_metrics(security: SecurityEnv, figures) -> None:
    env = security
    mark = uuid.uuid4().hex[:10]
    phone = "2348066" + f"{uuid.uuid4().int % 10**6:06d}"
    bsuid = "US." + str(uuid.uuid4().int)[:20]
    inbound = {
        "inbound.phone": phone,
        "inbound.bsuid": bsuid,
        "inbound.phone_name": f"Ada-{mark}",
        "inbound.phone_text": f"Privacy-{mark}-phone",
        "inbound.bsuid_name": f"Bola-{mark}",
        "inbound.bsuid_text": f"Privacy-{mark}-bsuid",
        "inbound.refused_phone": "2348077000001",
    }
    env.personal.update(inbound)
    wamids: list[str] = []
    async with httpx.AsyncClient(timeout=60) as client:
        for who in ("phone", "bsuid"):
            body, wamid = _inbound_from(
                env,
                inbound[f"inbound.{who}"],
                inbound[f"inbound.{who}_name"],
                inbound[f"inbound.{who}_text"],
            )
            r = await client.post(
                f"{env.url('gateway')}/webhooks/meta",
                content=body,
                headers=sign(env.a.app_secret, body),
            )
            assert r.status_code == 200, r.text
            wamids.append(wamid)
        await wait_handled(env, wamids)
        metrics = {
            service: (await client.get(f"{url}/metrics")) for service, url in env.stack.urls.items()
        }
    texts: dict[str, str] = {}
    for path in {*_log_files(env), *RUN.log_files, *RUN.metrics_files}:
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    for service, r in metrics.items():
        assert r.status_code == 200, (service, r.status_code)
        texts[f"{service} /metrics"] = r.text
    values = {**env.personal, **{f"{w}: {v[:40]!r}": v for v, w in RUN.texts.items()}}
    phones = RUN.customer_phones()
    leaks: list[str] = []
    for where, text in texts.items():
        for name, value in values.items():
            if any(form in text for form in _personal_forms(value)):
                leaks.append(f"{name} in {where}")
        for digits in set(DIGITS.findall(text)) & phones.keys():
            leaks.append(f"phone number {digits} ({phones[digits]}) in {where}")
        leaks += [f"a BSUID ({m}) in {where}" for m in sorted(set(BSUID_IN_TEXT.findall(text)))]
    figures.sent = len(values) + len(phones) + len(RUN.bsuids)
    figures.processed = len(texts)
    figures.notes = (
        f"values={len(values)} phones={len(phones)} bsuids={len(RUN.bsuids)} "
        f"sources={len(texts)} leaks={len(leaks)}"
    )
    # controls: the scan sees the inbound messages' ids (logged), so it reads the right
    # logs; the run's traffic was read (this package's own sends and inbound messages)
    assert any(wamids[0] in t for t in texts.values()), "the scan sees no wamid: wrong files?"
    assert phone in phones, "the run's requests were not read"
    assert bsuid in RUN.bsuids, "the run's requests were not read"
    assert inbound["inbound.phone_text"] in RUN.texts, "the run's texts were not read"
    assert not leaks, "personal data in logs or metrics:\n" + "\n".join(sorted(set(leaks)))
