"""Tools of the security part of the fault suite: one stack for the whole package, the
tenants it attacks, every secret it created, and the route matrix.

::

    SecurityEnv ── stack (FaultStack: every service a process, sandbox included)
        ├── a, b      two Meta tenants (b attacks a); objects of a: contact, reminder,
        │             message, api key, Twilio account — ids in ``a_ids``
        ├── fuzz      a Meta tenant schemathesis may trash
        ├── twilio    a Twilio number of tenant a (its auth token signs webhooks)
        └── secrets() every token, key and secret created, by name (scanned in the logs)

``ROUTES`` names every operation of every service's OpenAPI with how it is guarded;
the isolation test fails on any operation missing from it, so a new route must be
classified (and so attacked) before the suite passes again. The sandbox (dev only, no
tenants) is the one service left out of it; its Graph routes are attacked separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from faults_kit import (
    RUN,
    FaultStack,
    RabbitNode,
    Tenant,
    free_port,
    open_windows,
    seed_tenant,
    wait_for,
)

# --------------------------------------------------------------------------- attacks

#: Text every free-text field is tried with: stored or echoed verbatim, or refused 4xx.
TEXT_ATTACKS: dict[str, str] = {
    "sql": "'; DROP TABLE contacts; DROP TABLE tenants; --",
    "sql_or": "x' OR '1'='1' --",
    "template_positional": "{{1}} {{2}}",
    "template_named": "{{name}} {{first_name|friend}}",
    "template_expr": "{{7*7}} ${7*7} {% if 1 %}49{% endif %}",
    "control": "a\x01\x07\x1b[31mred\x1b[0m\r\nX-Injected: 1\tb",
    "nul": "a\x00b",
    "rtl_zero_width": "\u202egnp.exe\u202c z\u200bw\u200cj\u200d\ufeff\u2066x\u2069",
    "astral": "\U0001f6d2\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001d518",
    "long": "L" * 100_000,
}


# --------------------------------------------------------------------------- the env


@dataclass
class TwilioNumber:
    tenant_id: str
    account_id: str
    sid: str
    token: str
    number: str


@dataclass
class SecurityEnv:
    stack: FaultStack
    a: Tenant
    b: Tenant
    fuzz: Tenant
    twilio: TwilioNumber
    a_ids: dict[str, str] = field(default_factory=dict)
    b_ids: dict[str, str] = field(default_factory=dict)
    #: data of tenant a that b must never see (names, texts), by what it is
    a_marks: dict[str, str] = field(default_factory=dict)
    extra_secrets: dict[str, str] = field(default_factory=dict)
    #: every customer's data the package sent through the stack (phone numbers, BSUIDs,
    #: names, message texts), by what it is: scanned in the logs and the metrics
    personal: dict[str, str] = field(default_factory=dict)
    rabbit: RabbitNode | None = None
    vhost: str = ""
    #: folders of other logs the stack caused (the suite's RabbitMQ node and Redis)
    log_dirs: list[Path] = field(default_factory=list)

    def url(self, service: str) -> str:
        return self.stack.urls[service]

    def service_headers(self, tenant_id: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.stack.env['FLOWCHAT_SERVICE_TOKEN']}"}
        if tenant_id:
            h["X-Tenant-ID"] = tenant_id
        return h

    def operator_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.stack.env['FLOWCHAT_OPERATOR_KEY']}"}

    def secrets(self) -> dict[str, str]:
        """Every secret the suite created or was given, by a name for the report."""
        out: dict[str, str] = {
            "service_token": self.stack.env["FLOWCHAT_SERVICE_TOKEN"],
            "operator_key": self.stack.env["FLOWCHAT_OPERATOR_KEY"],
        }
        for i, key in enumerate(self.stack.env["FLOWCHAT_TENANT_ENCRYPTION_KEYS"].split(",")):
            out[f"encryption_key_{i}"] = key
        for name, t in (("a", self.a), ("b", self.b), ("fuzz", self.fuzz)):
            out[f"{name}.access_token"] = t.access_token
            out[f"{name}.app_secret"] = t.app_secret
            out[f"{name}.verify_token"] = t.verify_token
            out[f"{name}.api_key"] = t.api_key
        out["twilio.auth_token"] = self.twilio.token
        out.update(self.extra_secrets)
        return out


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def add_twilio(
    client: httpx.AsyncClient, env_stack: FaultStack, tenant: Tenant
) -> TwilioNumber:
    sid = "AC" + secrets.token_hex(16)
    token = secrets.token_hex(16)
    number = f"+1415{secrets.randbelow(10**7):07d}"
    RUN.business.add(number.lstrip("+"))
    r = await client.post(
        f"{env_stack.urls['sandbox']}/sandbox/twilio/accounts",
        json={
            "account_sid": sid,
            "auth_token": token,
            "number": f"whatsapp:{number}",
            "webhook_url": f"{env_stack.urls['gateway']}/webhooks/twilio/pending",
        },
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        f"{env_stack.urls['tenant']}/v1/tenants/{tenant.tenant_id}/accounts",
        headers=bearer(env_stack.env["FLOWCHAT_OPERATOR_KEY"]),
        json={
            "provider": "twilio",
            "twilio_account_sid": sid,
            "twilio_auth_token": token,
            "twilio_number": number,
        },
    )
    assert r.status_code in (200, 201), r.text
    return TwilioNumber(tenant.tenant_id, r.json()["account_id"], sid, token, number)


async def seed_objects(
    client: httpx.AsyncClient, env: SecurityEnv, tenant: Tenant
) -> tuple[dict[str, str], dict[str, str]]:
    """A contact, a reminder, a sent message and a second API key of ``tenant``: real ids
    another tenant then asks for. Returns (ids, marks)."""
    conv = env.url("conversation")
    head = bearer(tenant.api_key)
    mark = uuid.uuid4().hex[:10]
    marks = {
        "contact_name": f"Contact-{mark}",
        "reminder_text": f"Reminder-{mark}",
        "message_text": f"Message-{mark}",
        "key_name": f"key-{mark}",
    }
    phone = f"+4477{secrets.randbelow(10**8):08d}"
    await open_windows(client, env.stack, tenant, [phone.lstrip("+")])
    r = await client.post(
        f"{conv}/v1/tenants/{tenant.tenant_id}/contacts",
        headers=head,
        json={"phone": phone, "name": marks["contact_name"], "tags": ["vip"]},
    )
    assert r.status_code in (200, 201), r.text
    r = await client.get(
        f"{conv}/v1/tenants/{tenant.tenant_id}/contacts", headers=head, params={"q": phone}
    )
    assert r.status_code == 200, r.text
    (contact,) = r.json()["items"]
    contact_id = str(contact["contact_id"])
    r = await client.post(
        f"{conv}/v1/tenants/{tenant.tenant_id}/reminders",
        headers=head,
        json={
            "account_id": tenant.account_id,
            "phone": phone,
            "kind": "custom",
            "delay_s": 7 * 86400,
            "text": marks["reminder_text"],
        },
    )
    assert r.status_code in (200, 201), r.text
    reminder_id = str(r.json()["reminder_id"])
    idem = f"idem-{mark}"
    r = await client.post(
        f"{env.url('gateway')}/v1/messages",
        headers={**head, "Idempotency-Key": idem},
        json={
            "account_id": tenant.account_id,
            "to": phone,
            "content": {"type": "text", "body": marks["message_text"]},
        },
    )
    assert r.status_code == 202, r.text
    message_id = str(r.json()["message_id"])
    r = await client.post(
        f"{env.url('tenant')}/v1/tenants/{tenant.tenant_id}/api-keys",
        headers=head,
        json={"name": marks["key_name"], "scopes": ["read"]},
    )
    assert r.status_code in (200, 201), r.text
    key_id = str(r.json()["key_id"])
    env.extra_secrets[f"{tenant.tenant_id}.read_key"] = r.json()["key"]

    async def recorded() -> str | None:
        r = await client.get(
            f"{env.url('state-manager')}/v1/messages/{message_id}",
            headers=env.service_headers(tenant.tenant_id),
        )
        if r.status_code != 200:
            return None
        wamid = r.json().get("provider_message_id")
        return str(wamid) if wamid else None

    wamid = await wait_for(recorded, timeout_s=60, what="message recorded with its wamid")

    async def thread() -> str | None:
        r = await client.get(
            f"{env.url('inbox')}/v1/threads", headers=head, params={"customer": phone}
        )
        items = r.json().get("items") if r.status_code == 200 else None
        return str(items[0]["id"]) if items else None

    thread_id = await wait_for(thread, timeout_s=60, what="the send's thread in the inbox")
    # a webhook endpoint at the relay (disabled: nothing is delivered to it)
    r = await client.post(
        f"{env.url('relay')}/v1/endpoints",
        headers=head,
        json={
            "url": f"http://127.0.0.1:{free_port()}/hook",
            "event_types": ["message.received", "message.status"],
            "enabled": False,
        },
    )
    assert r.status_code == 201, r.text
    endpoint_id = str(r.json()["id"])
    env.extra_secrets[f"{tenant.tenant_id}.endpoint_secret"] = r.json()["secret"]
    ids = {
        "tenant_id": tenant.tenant_id,
        "account_id": tenant.account_id,
        "contact_id": contact_id,
        "reminder_id": reminder_id,
        "message_id": message_id,
        "wamid": wamid,
        "key": idem,
        "key_id": key_id,
        "phone": phone,
        "thread_id": thread_id,
        "endpoint_id": endpoint_id,
    }
    return ids, marks


def build_env(stack: FaultStack, rabbit: RabbitNode, vhost: str) -> SecurityEnv:
    async def go() -> SecurityEnv:
        async with httpx.AsyncClient(timeout=60) as client:
            a = await seed_tenant(client, stack)
            b = await seed_tenant(client, stack)
            fuzz = await seed_tenant(client, stack)
            twilio = await add_twilio(client, stack, a)
            env = SecurityEnv(stack, a, b, fuzz, twilio, rabbit=rabbit, vhost=vhost)
            env.a_ids, env.a_marks = await seed_objects(client, env, a)
            env.b_ids, b_marks = await seed_objects(client, env, b)
            for who, ids, marks in (("a", env.a_ids, env.a_marks), ("b", env.b_ids, b_marks)):
                env.personal[f"{who}.phone"] = ids["phone"]
                for what in ("contact_name", "reminder_text", "message_text"):
                    env.personal[f"{who}.{what}"] = marks[what]
            return env

    return asyncio.run(go())


# --------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Route:
    """How one operation is guarded, and a valid body to attack it with.

    ``guard``: ``tenant`` (a tenant's API key, the tenant named in the path or implied
    by the key), ``service`` (the internal service token only), ``operator`` (the
    operator key only), ``signed`` (a provider's webhook signature), ``capability``
    (an unguessable token in the URL), ``user`` (a person's own credentials: password,
    one-time token, session or access token; a tenant's API key opens none),
    ``sandbox`` (the dev-only emulator: no tenants; its Graph endpoints take a number's
    access token).
    """

    guard: str
    body: Callable[[SecurityEnv, dict[str, str]], Any] | None = None
    #: where the request body's text fields are (for the injection test)
    text_fields: tuple[str, ...] = ()
    #: a request that changes data (not repeated with the owner's key as a control)
    mutates: bool = False
    #: names nothing of another tenant (the tenant is the key's): another tenant's key
    #: acts on its own data, so a 2xx is an answer about the caller's own tenant
    own: bool = False
    #: a server-sent event stream: only the status is read
    stream: bool = False


def _contact(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return {"phone": f"+4479{secrets.randbelow(10**8):08d}", "name": "Mallory", "tags": ["t"]}


def _reminder(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return {
        "account_id": ids["account_id"],
        "phone": ids["phone"],
        "kind": "custom",
        "delay_s": 86400,
        "text": "hello",
    }


def _campaign(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return {
        "name": "spring",
        "account_id": ids["account_id"],
        "template": {"name": "hello_world", "language": "en_US"},
        "segment": {"tags_any": ["vip"]},
    }


def _message(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return {
        "account_id": ids["account_id"],
        "to": ids["phone"],
        "content": {"type": "text", "body": "hi"},
    }


def _cloud_message(_: SecurityEnv, ids: dict[str, str]) -> Any:
    """Meta's own send body (the gateway's Cloud-API-compatible endpoint)."""
    return {
        "messaging_product": "whatsapp",
        "to": ids["phone"].lstrip("+"),
        "type": "text",
        "text": {"body": "hi"},
    }


def _product(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return [
        {
            "sku": "SEC-1",
            "name": "Probe",
            "description": "probe",
            "price": "1.00",
            "currency": "USD",
            "category": "Tools",
            "stock": 1,
        }
    ]


def _settings(_: SecurityEnv, ids: dict[str, str]) -> Any:
    return {"business_name": "Mallory Ltd", "currency": "USD", "tax_rate": "0.1"}


def _const(value: Any) -> Callable[[SecurityEnv, dict[str, str]], Any]:
    """A fixed body, a fresh copy each time (callers change fields in place)."""
    return lambda _env, _ids: copy.deepcopy(value)


T, S, OP, SIG, CAP = "tenant", "service", "operator", "signed", "capability"
#: the retention another tenant sets for itself (the victim's must not become it)
RETENTION_PROBE_DAYS = 3
#: a person's own credentials (password, one-time token, session, access token)
USER = "user"

ROUTES: dict[tuple[str, str, str], Route] = {
    # gateway
    ("gateway", "GET", "/webhooks/meta"): Route(SIG),
    ("gateway", "POST", "/webhooks/meta"): Route(SIG),
    ("gateway", "POST", "/webhooks/twilio/{account_id}"): Route(SIG),
    ("gateway", "POST", "/v1/messages"): Route(
        T, _message, text_fields=("content.body", "to", "account_id"), mutates=True
    ),
    ("gateway", "GET", "/v1/messages/{message_id}"): Route(T),
    ("gateway", "GET", "/v1/accounts/{account_id}/customers/{customer_id}/window"): Route(T),
    # the Cloud-API-compatible routes: a's number or WABA with b's key is Meta's 403 / 10
    ("gateway", "POST", "/{version}/{phone_number_id}/messages"): Route(
        T, _cloud_message, text_fields=("text.body", "to"), mutates=True
    ),
    ("gateway", "POST", "/{version}/{phone_number_id}/media"): Route(T, mutates=True),
    ("gateway", "GET", "/{version}/{waba_id}/message_templates"): Route(T),
    # state-manager
    ("state-manager", "GET", "/v1/messages/by-wamid/{wamid}"): Route(T),
    ("state-manager", "GET", "/v1/messages/by-idempotency-key/{key}"): Route(T),
    ("state-manager", "GET", "/v1/messages"): Route(T),
    ("state-manager", "GET", "/v1/messages/{message_id}"): Route(T),
    ("state-manager", "GET", "/v1/messages/{message_id}/events"): Route(T),
    ("state-manager", "GET", "/v1/stats"): Route(T),
    ("state-manager", "GET", "/v1/retention"): Route(T, own=True),
    ("state-manager", "PUT", "/v1/retention"): Route(
        T, _const({"days": RETENTION_PROBE_DAYS}), mutates=True, own=True
    ),
    # tenant: public
    ("tenant", "POST", "/v1/tenants"): Route(
        OP,
        _const({"name": "x", "business_name": "x", "timezone": "UTC"}),
        text_fields=("name", "business_name"),
        mutates=True,
    ),
    ("tenant", "GET", "/v1/tenants"): Route(T),  # a tenant key lists its own tenant only
    ("tenant", "GET", "/v1/tenants/{tenant_id}"): Route(T),
    ("tenant", "PATCH", "/v1/tenants/{tenant_id}"): Route(
        T, _const({"business_name": "pwned"}), text_fields=("business_name", "name"), mutates=True
    ),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/accounts"): Route(
        T,
        _const(
            {
                "provider": "twilio",
                "twilio_account_sid": "AC" + "0" * 32,
                "twilio_auth_token": "0" * 32,
                "twilio_number": "+14155550199",
            }
        ),
        mutates=True,
    ),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/accounts"): Route(T),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/accounts/{account_id}"): Route(T),
    ("tenant", "PATCH", "/v1/tenants/{tenant_id}/accounts/{account_id}"): Route(
        T, _const({"display_phone_number": "+15550000000"}), mutates=True
    ),
    ("tenant", "DELETE", "/v1/tenants/{tenant_id}/accounts/{account_id}"): Route(T, mutates=True),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/health/refresh"): Route(
        T, mutates=True
    ),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/accounts/{account_id}/business-profile"): Route(T),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/accounts/{account_id}/business-profile"): Route(
        T, _const({"about": "pwned"}), text_fields=("about", "address", "description"), mutates=True
    ),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/api-keys"): Route(
        T, _const({"name": "k", "scopes": ["admin"]}), text_fields=("name",), mutates=True
    ),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/api-keys"): Route(T),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/api-keys/{key_id}"): Route(T),
    ("tenant", "DELETE", "/v1/tenants/{tenant_id}/api-keys/{key_id}"): Route(T, mutates=True),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/users"): Route(
        T, _const({"email": "mallory@x.example", "role": "owner"}), mutates=True
    ),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/users"): Route(T),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/users/{user_id}"): Route(T),
    ("tenant", "PATCH", "/v1/tenants/{tenant_id}/users/{user_id}"): Route(
        T, _const({"role": "owner"}), mutates=True
    ),
    ("tenant", "DELETE", "/v1/tenants/{tenant_id}/users/{user_id}"): Route(T, mutates=True),
    ("tenant", "POST", "/v1/tenants/{tenant_id}/users/{user_id}/password-reset"): Route(
        T, mutates=True
    ),
    ("tenant", "GET", "/v1/tenants/{tenant_id}/audit"): Route(T),
    ("tenant", "POST", "/v1/operator/users"): Route(
        OP, _const({"email": "mallory@x.example"}), mutates=True
    ),
    ("tenant", "GET", "/v1/operator/users"): Route(OP),
    ("tenant", "GET", "/v1/operator/users/{user_id}"): Route(OP),
    ("tenant", "PATCH", "/v1/operator/users/{user_id}"): Route(
        OP, _const({"status": "disabled"}), mutates=True
    ),
    ("tenant", "DELETE", "/v1/operator/users/{user_id}"): Route(OP, mutates=True),
    ("tenant", "POST", "/v1/operator/users/{user_id}/password-reset"): Route(OP, mutates=True),
    ("tenant", "GET", "/v1/operator/audit"): Route(OP),
    ("tenant", "POST", "/v1/auth/login"): Route(
        USER, _const({"email": "mallory@x.example", "password": "x" * 12}), mutates=True
    ),
    ("tenant", "POST", "/v1/auth/refresh"): Route(USER, mutates=True),
    ("tenant", "POST", "/v1/auth/logout"): Route(USER, mutates=True),
    ("tenant", "POST", "/v1/auth/invitations/accept"): Route(
        USER, _const({"token": "fcu_" + "0" * 43, "password": "x" * 12}), mutates=True
    ),
    ("tenant", "POST", "/v1/auth/password-reset"): Route(
        USER, _const({"token": "fcu_" + "0" * 43, "password": "x" * 12}), mutates=True
    ),
    ("tenant", "GET", "/v1/me"): Route(USER),
    ("tenant", "PATCH", "/v1/me"): Route(USER, _const({"name": "pwned"}), mutates=True),
    ("tenant", "POST", "/v1/me/password"): Route(
        USER, _const({"current_password": "x" * 12, "new_password": "y" * 12}), mutates=True
    ),
    # tenant: internal
    ("tenant", "GET", "/internal/v1/accounts/{account_id}"): Route(S),
    ("tenant", "GET", "/internal/v1/accounts/by-phone-number/{phone_number_id}"): Route(S),
    ("tenant", "GET", "/internal/v1/accounts/by-waba/{waba_id}"): Route(S),
    ("tenant", "POST", "/internal/v1/accounts/batch"): Route(S, _const({"account_ids": ["acc_0"]})),
    ("tenant", "GET", "/internal/v1/accounts/by-twilio-number/{number}"): Route(S),
    ("tenant", "POST", "/internal/v1/verify-tokens/check"): Route(S, _const({"token": "x"})),
    ("tenant", "POST", "/internal/v1/api-keys/verify"): Route(S, _const({"key": "fc_x"})),
    ("tenant", "GET", "/internal/v1/tenants/{tenant_id}"): Route(S),
    ("tenant", "POST", "/internal/v1/users/resolve"): Route(S, _const({"token": "fca.x.y"})),
    ("tenant", "GET", "/internal/v1/dev/outbox"): Route(S),
    ("tenant", "POST", "/internal/v1/audit"): Route(
        S, _const({"actor_type": "service", "action": "x.y", "target_type": "t"}), mutates=True
    ),
    # sender
    ("sender", "GET", "/internal/v1/dlq"): Route(S),
    ("sender", "POST", "/internal/v1/dlq/replay"): Route(S, _const({"limit": 1}), mutates=True),
    ("sender", "POST", "/internal/v1/dlq/discard"): Route(
        S, _const({"limit": 1, "reason": "isolation probe"}), mutates=True
    ),
    ("sender", "GET", "/internal/v1/dlq/audit"): Route(S),
    ("sender", "POST", "/internal/v1/media"): Route(S, mutates=True),
    ("sender", "GET", "/internal/v1/media/content"): Route(S),
    ("sender", "POST", "/internal/v1/media/link"): Route(
        S,
        lambda _env, ids: {
            "tenant_id": ids["tenant_id"],
            "account_id": ids["account_id"],
            "link": "https://example.com/x.jpg",
        },
        mutates=True,
    ),
    # conversation
    ("conversation", "GET", "/v1/tenants/{tenant_id}/settings"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/accounts/{account_id}/templates"): Route(T),
    ("conversation", "PUT", "/v1/tenants/{tenant_id}/settings"): Route(
        T,
        _settings,
        text_fields=("business_name", "welcome_text", "payment_instructions"),
        mutates=True,
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/products"): Route(
        T, _product, text_fields=("0.name", "0.description", "0.category", "0.sku"), mutates=True
    ),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/products"): Route(T),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/products/import"): Route(T, mutates=True),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/orders"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/orders/{order_id}"): Route(T),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/orders/{order_id}/status"): Route(
        T, _const({"status": "cancelled", "reason": "x"}), mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/orders/{order_id}/payments"): Route(
        T, _const({"reference": "r", "amount": "1.00"}), mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/conversations/{wa_id}/release"): Route(
        T, _const({}), mutates=True
    ),
    ("conversation", "GET", "/v1/invoices/{invoice_id}.pdf"): Route(CAP),
    # invoices, discount codes, payment links, native commerce (issue 25)
    ("conversation", "GET", "/v1/tenants/{tenant_id}/invoices"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/invoices/{invoice_id}"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/invoices/{invoice_id}/pdf"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/discount-codes"): Route(T),
    ("conversation", "PUT", "/v1/tenants/{tenant_id}/discount-codes/{code}"): Route(
        T, _const({"rate": "0.5", "max_uses": 1000}), mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/orders/{order_id}/discount-code"): Route(
        T, _const({"code": "NOSUCHCODE"}), mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/orders/{order_id}/payment-link"): Route(
        T, mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/orders/{order_id}/address-flow"): Route(
        T, mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/conversations/{wa_id}/products"): Route(
        T,
        lambda _env, ids: {"account_id": ids["account_id"], "skus": [], "body": "x"},
        mutates=True,
    ),
    # the payment provider's webhook: HMAC-signed with the provider's secret
    ("conversation", "POST", "/v1/payments/webhook"): Route(SIG),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/contacts"): Route(
        T, _contact, text_fields=("name", "tags.0"), mutates=True
    ),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/contacts"): Route(T),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/contacts/search"): Route(
        T, _const({"q": "a"}), text_fields=("q",)
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/contacts/count"): Route(
        T, _const({"q": "a"}), text_fields=("q",)
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/contacts/import"): Route(T, mutates=True),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/contacts/{contact_id}"): Route(T),
    ("conversation", "PATCH", "/v1/tenants/{tenant_id}/contacts/{contact_id}"): Route(
        T, _const({"name": "pwned"}), text_fields=("name",), mutates=True
    ),
    ("conversation", "PUT", "/v1/tenants/{tenant_id}/contacts/{contact_id}/marketing"): Route(
        T, _const({"opt_in": False}), mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/campaigns/dry-run"): Route(
        T, _campaign, text_fields=("name",)
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/campaigns"): Route(
        T, _campaign, text_fields=("name",), mutates=True
    ),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/campaigns"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/campaigns/{campaign_id}"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/campaigns/{campaign_id}/metrics"): Route(T),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/campaigns/{campaign_id}/{action}"): Route(
        T, mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/reminders"): Route(
        T, _reminder, text_fields=("text",), mutates=True
    ),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/reminders"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/reminders/{reminder_id}"): Route(T),
    ("conversation", "DELETE", "/v1/tenants/{tenant_id}/reminders/{reminder_id}"): Route(
        T, mutates=True
    ),
    ("conversation", "POST", "/v1/tenants/{tenant_id}/erasures"): Route(
        T, _const({"customer_id": "+15550001111"}), text_fields=("requested_by",), mutates=True
    ),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/erasures/{request_id}"): Route(T),
    ("conversation", "GET", "/v1/tenants/{tenant_id}/customers/{customer_id}/export"): Route(T),
    # inbox (history, hand-offs, live events, retention): the tenant is the key's
    ("inbox", "GET", "/v1/threads"): Route(T),
    ("inbox", "GET", "/v1/threads/{thread_id}"): Route(T),
    ("inbox", "GET", "/v1/threads/{thread_id}/messages"): Route(T),
    ("inbox", "POST", "/v1/threads/{thread_id}/takeover"): Route(T, mutates=True),
    ("inbox", "GET", "/v1/search"): Route(T),
    ("inbox", "GET", "/v1/conversations"): Route(T),
    ("inbox", "GET", "/v1/conversations/stats"): Route(T, own=True),
    ("inbox", "GET", "/v1/conversations/{conversation_id}"): Route(T),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/tags"): Route(
        T, _const({"add": ["mallory"]}), mutates=True
    ),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/claim"): Route(T, mutates=True),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/assign"): Route(
        T, _const({"agent_id": "mallory"}), mutates=True
    ),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/messages"): Route(
        T, _const({"content": {"type": "text", "body": "hi"}}), mutates=True
    ),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/notes"): Route(
        T, _const({"text": "pwned"}), mutates=True
    ),
    ("inbox", "POST", "/v1/conversations/{conversation_id}/resolve"): Route(T, mutates=True),
    ("inbox", "GET", "/v1/stream"): Route(T, own=True, stream=True),
    ("inbox", "GET", "/v1/retention"): Route(T, own=True),
    ("inbox", "PUT", "/v1/retention"): Route(
        T, _const({"days": RETENTION_PROBE_DAYS}), mutates=True, own=True
    ),
    # relay (webhook endpoints, delivery log, retention): the tenant is the key's
    ("relay", "GET", "/v1/event-types"): Route(T, own=True),
    ("relay", "POST", "/v1/endpoints"): Route(
        T,
        lambda _env, _ids: {
            "url": f"http://127.0.0.1:{free_port()}/hook",
            "event_types": ["message.received"],
            "enabled": False,
        },
        mutates=True,
        own=True,
    ),
    ("relay", "GET", "/v1/endpoints"): Route(T),
    ("relay", "GET", "/v1/endpoints/{endpoint_id}"): Route(T),
    ("relay", "PATCH", "/v1/endpoints/{endpoint_id}"): Route(
        T, _const({"description": "pwned", "enabled": True}), mutates=True
    ),
    ("relay", "DELETE", "/v1/endpoints/{endpoint_id}"): Route(T, mutates=True),
    ("relay", "POST", "/v1/endpoints/{endpoint_id}/rotate-secret"): Route(
        T, _const({}), mutates=True
    ),
    ("relay", "GET", "/v1/endpoints/{endpoint_id}/deliveries"): Route(T),
    ("relay", "POST", "/v1/endpoints/{endpoint_id}/deliveries/{delivery_id}/replay"): Route(
        T, mutates=True
    ),
    ("relay", "POST", "/v1/endpoints/{endpoint_id}/replay"): Route(
        T, _const({"since": "2020-01-01T00:00:00Z"}), mutates=True
    ),
    ("relay", "POST", "/v1/endpoints/{endpoint_id}/ping"): Route(T, mutates=True),
    ("relay", "GET", "/v1/retention"): Route(T, own=True),
    # the events naming a customer (the digest of a's customer): b's key reads b's own
    ("relay", "GET", "/v1/customers/{digest}/events"): Route(T, own=True),
    ("relay", "PUT", "/v1/retention"): Route(
        T, _const({"days": RETENTION_PROBE_DAYS}), mutates=True, own=True
    ),
}


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus counter's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def metrics_of(client: httpx.AsyncClient, env: SecurityEnv, service: str) -> str:
    r = await client.get(f"{env.url(service)}/metrics")
    r.raise_for_status()
    return r.text


def handled(env: SecurityEnv) -> Counter[str]:
    """How many times the conversation service handled each provider message id (its
    ``inbound handled`` log lines)."""
    counts: Counter[str] = Counter()
    for line in env.stack.log("conversation").splitlines():
        if '"inbound handled"' not in line:
            continue
        with contextlib.suppress(ValueError):
            pid = json.loads(line).get("provider_message_id")
            if pid:
                counts[str(pid)] += 1
    return counts


async def wait_handled(env: SecurityEnv, ids: list[str], timeout_s: float = 90) -> Counter[str]:
    """Wait until every one of ``ids`` was handled; the counts (missing ones name the
    failure)."""

    def done() -> Counter[str] | None:
        counts = handled(env)
        return counts if all(counts[i] for i in ids) else None

    try:
        return Counter(await wait_for(done, timeout_s=timeout_s, interval_s=0.3))
    except AssertionError:
        counts = handled(env)
        missing = [i for i in ids if not counts[i]]
        raise AssertionError(f"not handled within {timeout_s}s: {missing}") from None
