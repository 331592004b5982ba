"""Tenant isolation matrix: every operation of every service's OpenAPI, tried as tenant b
against tenant a.

The operations come from each service's ``/openapi.json``; each must be classified in
``security_kit.ROUTES`` (a new or renamed route fails the test until it is), except the
dev-only sandbox, whose Graph endpoints are tried with b's access token on a's number.

- tenant routes naming a tenant: b's key with a's tenant id and a's real object ids →
  401/403/404; tenant routes implied by the key (messages, stats): b's key with a's ids
  → 404, b's lists never show a's data; no answer to b ever carries a's data;
- service routes: any tenant key → 401/403; operator routes: a tenant key → 401/403;
- the inbox and the relay name no tenant in their paths (the key's tenant): b's key on
  a's thread, hand-off or webhook endpoint → 401/403/404 (never a 2xx); their routes
  about the caller's own tenant only (``own``: retention, stats, the live stream, a new
  endpoint) answer b about b: b's retention set, a's is not;
- controls (so a refusal means isolation, not a broken route): every read route answers
  a's own key (not 401/403), a's objects read back with a's data, unchanged after b's
  writes.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from security_kit import RETENTION_PROBE_DAYS, ROUTES, Route, SecurityEnv, bearer

from flowchat_platform.privacy import BlindIndex

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SERVICES = (
    "gateway",
    "tenant",
    "conversation",
    "sender",
    "state-manager",
    "inbox",
    "relay",
    "sandbox",
)
#: services whose routes name no tenant: an object of another tenant is refused, never 2xx
KEY_SCOPED = ("inbox", "relay")
REFUSED = {401, 403, 404}


def _params(env: SecurityEnv, ids: dict[str, str]) -> dict[str, str]:
    """A value for every path parameter: the victim's real ids where it has the object."""
    return {
        **ids,
        "order_id": "ORD-NOSUCHORDER",  # orders are placed only through the bot
        "campaign_id": "cmp_nosuch",
        "request_id": "era_nosuch",
        "action": "pause",
        "wa_id": ids["phone"].lstrip("+"),
        "customer_id": ids["phone"].lstrip("+"),
        "invoice_id": "INV-NOSUCH",
        "code": "NOSUCHCODE",
        "phone_number_id": env.a.phone_number_id,
        "waba_id": env.a.waba_id,
        "number": env.twilio.number,
        "version": "v23.0",
        "object_id": env.a.phone_number_id,
        "account_sid": env.twilio.sid,
        "message_sid": "SM" + "0" * 32,
        "template_id": "0",
        "user_id": "usr_0000000000000000",
        "conversation_id": "999999999",  # hand-offs open only through the bot
        "delivery_id": "999999999",
        # the relay's export: the keyed digest of a's customer (the stack's privacy key)
        "digest": BlindIndex(env.stack.env["FLOWCHAT_PRIVACY_KEY"].encode()).digest(
            env.a.tenant_id, ids["phone"]
        ),
    }


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


async def _operations(client: httpx.AsyncClient, env: SecurityEnv) -> set[tuple[str, str, str]]:
    ops: set[tuple[str, str, str]] = set()
    for service in SERVICES:
        r = await client.get(f"{env.url(service)}/openapi.json")
        assert r.status_code == 200, (service, r.status_code)
        for path, item in r.json()["paths"].items():
            for method in item:
                if method in {"get", "post", "put", "patch", "delete"}:
                    ops.add((service, method.upper(), path))
    return ops


async def _call(
    client: httpx.AsyncClient,
    env: SecurityEnv,
    key: tuple[str, str, str],
    route: Route,
    headers: dict[str, str],
    ids: dict[str, str],
) -> httpx.Response:
    service, method, path = key
    url = env.url(service) + _fill(path, _params(env, ids))
    kwargs: dict[str, Any] = {"headers": dict(headers)}
    if path.endswith("/import"):
        kwargs["content"] = f"phone,name\n{ids['phone']},Mallory\n".encode()
        kwargs["headers"]["Content-Type"] = "text/csv"
    elif route.body is not None:
        kwargs["json"] = route.body(env, ids)
    if key == ("gateway", "POST", "/v1/messages"):
        kwargs["headers"]["Idempotency-Key"] = "iso-" + ids["message_id"]
    if key == ("conversation", "GET", "/v1/invoices/{invoice_id}.pdf"):
        kwargs["params"] = {"token": "guessed-token"}
    if key == ("inbox", "GET", "/v1/search"):  # a's message text, searched for
        kwargs["params"] = {"q": env.a_marks["message_text"]}
    if route.stream:  # an endless event stream: its status only
        async with client.stream(method, url, **kwargs) as r:
            return httpx.Response(r.status_code)
    return await client.request(method, url, **kwargs)


def _leaks(env: SecurityEnv, text: str, asked: dict[str, str]) -> list[str]:
    """a's data in an answer to b (ids b itself put in the request do not count)."""
    secret_marks = dict(env.a_marks)
    for name in (
        "tenant_id",
        "account_id",
        "contact_id",
        "reminder_id",
        "message_id",
        "wamid",
        "key_id",
    ):
        value = env.a_ids[name]
        if value not in asked.values():
            secret_marks[name] = value
    secret_marks.update(
        {
            "a.access_token": env.a.access_token,
            "a.app_secret": env.a.app_secret,
            "a.api_key": env.a.api_key,
        }
    )
    return [name for name, value in secret_marks.items() if len(value) >= 6 and value in text]


async def test_tenant_isolation_matrix(security: SecurityEnv, figures) -> None:
    env, a, b = security, security.a, security.b
    async with httpx.AsyncClient(timeout=30) as client:
        ops = await _operations(client, env)
        unclassified = sorted(k for k in ops if k[0] != "sandbox" and k not in ROUTES)
        stale = sorted(k for k in ROUTES if k not in ops)
        assert not unclassified, f"routes missing from the isolation matrix: {unclassified}"
        assert not stale, f"matrix routes no longer in any OpenAPI: {stale}"

        failures: list[str] = []
        leaks: list[str] = []
        tried = refused = controls = 0
        b_key = bearer(b.api_key)
        # attack with a's ids; writes first, so the controls afterwards see their effect
        order = sorted(ROUTES.items(), key=lambda kv: (not kv[1].mutates, kv[0]))
        for key, route in order:
            service, method, path = key
            if route.guard in ("signed",):
                continue  # test_security_forgery: other tenants' secrets and tokens
            attempts: list[tuple[str, dict[str, str]]] = []
            if route.guard == "tenant":
                attempts.append(("b_key", b_key))
                if service == "state-manager":
                    attempts.append(("b_service_header", env.service_headers(b.tenant_id)))
            elif route.guard in ("service", "operator"):
                attempts += [("a_key", bearer(a.api_key)), ("b_key", b_key), ("none", {})]
            elif route.guard in ("capability", "user"):
                attempts.append(("b_key", b_key))
            for who, headers in attempts:
                try:
                    r = await _call(client, env, key, route, headers, env.a_ids)
                except httpx.TransportError as exc:
                    failures.append(f"{method} {service}{path} as {who}: {exc!r}")
                    continue
                tried += 1
                names_tenant = "{tenant_id}" in path
                asked = {**_params(env, env.a_ids)}
                found = _leaks(env, r.text, asked)
                if found:
                    leaks.append(f"{method} {service}{path} as {who}: {found}")
                if r.status_code in REFUSED:
                    refused += 1
                elif route.own and r.status_code < 300:
                    pass  # about b's own tenant (checked below: a's is untouched)
                elif service in KEY_SCOPED and "{" in path:
                    failures.append(f"{method} {service}{path} as {who}: {r.status_code}")
                elif route.guard == "tenant" and not names_tenant and r.status_code == 200:
                    pass  # a list of b's own data; checked for a's data above
                else:
                    failures.append(f"{method} {service}{path} as {who}: {r.status_code}")
        # the sandbox's Graph API: b's access token on a's number and WABA
        for method, path in (
            ("POST", "/v23.0/{phone_number_id}/messages"),
            ("GET", "/v23.0/{waba_id}/message_templates"),
            ("GET", "/v23.0/{phone_number_id}/whatsapp_business_profile"),
        ):
            url = env.url("sandbox") + _fill(path, _params(env, env.a_ids))
            body = {
                "messaging_product": "whatsapp",
                "to": env.a_ids["phone"].lstrip("+"),
                "type": "text",
                "text": {"body": "x"},
            }
            r = await client.request(
                method, url, headers=bearer(b.access_token), json=body if method == "POST" else None
            )
            tried += 1
            if r.status_code in (400, 401, 403, 404):
                refused += 1
            else:
                failures.append(f"{method} sandbox{path} with b's token: {r.status_code}")

        # controls: a's own key reads every read route, and a's objects are unchanged
        a_key = bearer(a.api_key)
        for key, route in sorted(ROUTES.items()):
            if route.guard != "tenant" or route.mutates:
                continue
            try:
                r = await _call(client, env, key, route, a_key, env.a_ids)
            except httpx.TransportError as exc:
                failures.append(f"control {key} with a's key: {exc!r}")
                continue
            controls += 1
            if r.status_code in (401, 403) or r.status_code >= 500:
                failures.append(f"control {key} with a's key: {r.status_code} {r.text[:120]}")
        conv, ten = env.url("conversation"), env.url("tenant")
        ids = env.a_ids
        checks = {
            "contact": (
                f"{conv}/v1/tenants/{a.tenant_id}/contacts/{ids['contact_id']}",
                env.a_marks["contact_name"],
            ),
            "reminder": (
                f"{conv}/v1/tenants/{a.tenant_id}/reminders/{ids['reminder_id']}",
                env.a_marks["reminder_text"],
            ),
            "account": (
                f"{ten}/v1/tenants/{a.tenant_id}/accounts/{a.account_id}",
                a.phone_number_id,
            ),
            "api_key": (
                f"{ten}/v1/tenants/{a.tenant_id}/api-keys/{ids['key_id']}",
                env.a_marks["key_name"],
            ),
            "message": (f"{env.url('gateway')}/v1/messages/{ids['message_id']}", ids["wamid"]),
        }
        for name, (url, mark) in checks.items():
            r = await client.get(url, headers=a_key)
            controls += 1
            if r.status_code != 200 or mark not in r.text:
                failures.append(f"a's {name} not intact: {r.status_code} {r.text[:200]}")
        r = await client.get(f"{ten}/v1/tenants/{a.tenant_id}", headers=a_key)
        if "pwned" in r.text or r.status_code != 200:
            failures.append(f"a's tenant changed by b: {r.status_code} {r.text[:200]}")
        r = await client.get(f"{conv}/v1/tenants/{a.tenant_id}/settings", headers=a_key)
        if "Mallory" in r.text:
            failures.append(f"a's bot settings changed by b: {r.text[:200]}")
        # the inbox's and the relay's: a's thread and endpoint intact, b's retention is b's
        inbox, relay = env.url("inbox"), env.url("relay")
        r = await client.get(f"{inbox}/v1/threads/{ids['thread_id']}", headers=a_key)
        controls += 1
        if r.status_code != 200 or ids["phone"].lstrip("+") not in r.text:
            failures.append(f"a's inbox thread not intact: {r.status_code} {r.text[:200]}")
        r = await client.get(f"{relay}/v1/endpoints/{ids['endpoint_id']}", headers=a_key)
        controls += 1
        if r.status_code != 200 or "pwned" in r.text or r.json().get("enabled") is not False:
            failures.append(f"a's relay endpoint changed by b: {r.status_code} {r.text[:200]}")
        state = env.url("state-manager")
        for service, url in (("inbox", inbox), ("relay", relay), ("state-manager", state)):
            mine = await client.get(f"{url}/v1/retention", headers=a_key)
            theirs = await client.get(f"{url}/v1/retention", headers=b_key)
            controls += 2
            if theirs.status_code != 200 or theirs.json().get("days") != RETENTION_PROBE_DAYS:
                failures.append(f"control: b's own {service} retention not set: {theirs.text}")
            if mine.status_code != 200 or mine.json().get("own") is not False:
                failures.append(f"a's {service} retention changed by b: {mine.text}")
        r = await client.get(f"{env.url('sender')}/internal/v1/dlq", headers=env.service_headers())
        if r.status_code != 200:
            failures.append(f"control: the service token reads the DLQ: {r.status_code}")

    figures.sent = tried
    figures.processed = refused
    figures.notes = (
        f"routes={len(ROUTES)} + sandbox graph=3; requests as b={tried} refused={refused} "
        f"controls={controls} leaks={len(leaks)} failures={len(failures)}"
    )
    assert not leaks, "a's data in answers to b:\n" + "\n".join(leaks)
    assert not failures, "isolation failures:\n" + "\n".join(failures)
