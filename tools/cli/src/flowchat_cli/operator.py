"""Operator tasks on the tenant service: tenants, numbers, API keys, users."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import click

from flowchat_cli.app import Group, out, read_secret, state, tenant_option, the_tenant
from flowchat_cli.client import OPERATOR
from flowchat_cli.errors import ConfigError

TENANT_FIELDS = (
    "tenant_id",
    "name",
    "business_name",
    "status",
    "timezone",
    "locale",
    "currency",
    "tax_rate",
)
NUMBER_FIELDS = (
    "account_id",
    "tenant_id",
    "provider",
    "status",
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "twilio_number",
    "throughput_mps",
    "secrets_set",
)


def given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def tax_rate(value: str | None) -> str | None:
    """``tax_rate`` is a fraction: 16 % is 0.16 (a percentage is refused here, clearly)."""
    if value is None:
        return None
    try:
        rate = Decimal(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except InvalidOperation:
        raise ConfigError(f"--tax-rate {value!r}: a fraction such as 0.16 (16 %)") from None
    if not 0 <= rate < 1:
        raise ConfigError(
            f"--tax-rate {value}: tax_rate is a fraction between 0 and 1; "
            f"for {value} % write {rate / 100} (or {value}%)"
        )
    return str(rate)


# ------------------------------------------------------------------ tenants


@click.group(cls=Group)
def tenants() -> None:
    """Tenants (the businesses hosted): create, list, show, suspend, activate."""


@tenants.command("create")
@click.option("--name", required=True, help="A short unique name (e.g. acme).")
@click.option("--business-name", help="The name customers see.")
@click.option("--timezone", help="IANA time zone (default UTC).")
@click.option("--locale", help="e.g. en-KE (default en).")
@click.option("--currency", help="ISO 4217 (default USD).")
@click.option("--tax-rate", help="A FRACTION: 0.16 for 16 % (16% is accepted too).")
def tenant_create(**opts: Any) -> None:
    """Create a tenant (prints its id)."""
    body = given(**{**opts, "tax_rate": tax_rate(opts["tax_rate"])})
    data = state().api.call("tenant", "POST", "/v1/tenants", auth=OPERATOR, json=body)
    out().record(data, TENANT_FIELDS, f"tenant {data.get('tenant_id')} created")


@tenants.command("list")
@click.option("--limit", type=int, default=500, show_default=True, help="At most this many.")
def tenant_list(limit: int) -> None:
    """Every tenant (page by page)."""
    rows = state().api.pages(
        "tenant", "/v1/tenants", auth=OPERATOR, params={"limit": min(limit, 200)}, limit=limit
    )
    out().table(rows, ("tenant_id", "name", "status", "timezone", "currency", "tax_rate"))


@tenants.command("show")
@click.argument("tenant_id")
def tenant_show(tenant_id: str) -> None:
    """One tenant."""
    data = state().api.call("tenant", "GET", f"/v1/tenants/{tenant_id}", auth=OPERATOR)
    out().record(data, TENANT_FIELDS)


def _set_status(tenant_id: str, status: str) -> None:
    data = state().api.call(
        "tenant", "PATCH", f"/v1/tenants/{tenant_id}", auth=OPERATOR, json={"status": status}
    )
    out().record(data, TENANT_FIELDS, f"tenant {tenant_id} is {data.get('status')}")


@tenants.command("suspend")
@click.argument("tenant_id")
def tenant_suspend(tenant_id: str) -> None:
    """Suspend a tenant: its sends are refused."""
    _set_status(tenant_id, "suspended")


@tenants.command("activate")
@click.argument("tenant_id")
def tenant_activate(tenant_id: str) -> None:
    """Activate a suspended tenant."""
    _set_status(tenant_id, "active")


# ------------------------------------------------------------------ numbers


@click.group(cls=Group)
def numbers() -> None:
    """WhatsApp numbers (business accounts) of a tenant: add, list, show, remove, health.

    \b
    A Meta number is checked with Meta (the sandbox locally) before it is stored: in the
    sandbox register it first (`flowchat sandbox number`), else the check fails with 190.
    """


SECRET_HELP = "The value, env:NAME (from that variable) or - (a line of standard input)."  # noqa: S105 - help text


@numbers.command("add")
@tenant_option
@click.option(
    "--provider", type=click.Choice(["meta", "twilio"]), default="meta", show_default=True
)
@click.option("--phone-number-id", help="Meta: the phone number id.")
@click.option("--waba-id", help="Meta: the WhatsApp business account id.")
@click.option("--display-phone-number", help="Meta: the number as shown (+E164).")
@click.option("--app-id", help="Meta: the app id.")
@click.option("--app-secret", help="Meta: the app secret. " + SECRET_HELP)
@click.option("--verify-token", help="Meta: the webhook verify token. " + SECRET_HELP)
@click.option("--access-token", help="Meta: the access token. " + SECRET_HELP)
@click.option("--twilio-account-sid", help="Twilio: the account SID (AC…).")
@click.option("--twilio-auth-token", help="Twilio: the auth token. " + SECRET_HELP)
@click.option("--twilio-number", help="Twilio: the sender number (+E164).")
@click.option("--throughput-mps", type=int, help="Messages a second (default: Meta's tier).")
def number_add(tenant: str | None, **opts: Any) -> None:
    """Register a number for a tenant (Meta numbers are checked with Meta first)."""
    for name in ("app_secret", "verify_token", "access_token", "twilio_auth_token"):
        opts[name] = read_secret(opts[name], "--" + name.replace("_", "-"))
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant", "POST", f"/v1/tenants/{tenant_id}/accounts", auth=OPERATOR, json=given(**opts)
    )
    out().record(data, NUMBER_FIELDS, f"number {data.get('account_id')} added")


@numbers.command("list")
@tenant_option
def number_list(tenant: str | None) -> None:
    """A tenant's numbers."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages("tenant", f"/v1/tenants/{tenant_id}/accounts", auth=OPERATOR)
    out().table(
        rows, ("account_id", "provider", "status", "display_phone_number", "phone_number_id")
    )


@numbers.command("show")
@tenant_option
@click.argument("account_id")
def number_show(tenant: str | None, account_id: str) -> None:
    """One number, with its health."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant", "GET", f"/v1/tenants/{tenant_id}/accounts/{account_id}", auth=OPERATOR
    )
    out().record(data, (*NUMBER_FIELDS, "health.quality_rating", "health.messaging_limit_tier"))


@numbers.command("remove")
@tenant_option
@click.argument("account_id")
def number_remove(tenant: str | None, account_id: str) -> None:
    """Remove a number (its secrets are deleted)."""
    tenant_id = the_tenant(tenant)
    state().api.call(
        "tenant", "DELETE", f"/v1/tenants/{tenant_id}/accounts/{account_id}", auth=OPERATOR
    )
    out().record({"account_id": account_id, "removed": True})


@numbers.command("health")
@tenant_option
@click.argument("account_id")
def number_health(tenant: str | None, account_id: str) -> None:
    """Refresh a number's quality rating, throughput and messaging limit from Meta."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant",
        "POST",
        f"/v1/tenants/{tenant_id}/accounts/{account_id}/health/refresh",
        auth=OPERATOR,
    )
    out().record(data)


# ------------------------------------------------------------------ API keys


@click.group(cls=Group)
def keys() -> None:
    """A tenant's API keys: create (shown once), list, revoke."""


@keys.command("create")
@tenant_option
@click.option("--name", required=True)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["send", "read", "admin"]),
    help="Repeat for several: send (messages), read (statuses), admin (contacts, campaigns…).",
)
def key_create(tenant: str | None, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; its value is shown this once."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant",
        "POST",
        f"/v1/tenants/{tenant_id}/api-keys",
        auth=OPERATOR,
        json={"name": name, "scopes": list(scopes)},
    )
    out().record(data, ("key_id", "tenant_id", "name", "scopes", "key"), "API key created")
    if not (out().as_json or out().field):
        out().note("the key is shown this once: store it now (export FLOWCHAT_API_KEY=…)")


@keys.command("list")
@tenant_option
def key_list(tenant: str | None) -> None:
    """A tenant's keys (never their values)."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages("tenant", f"/v1/tenants/{tenant_id}/api-keys", auth=OPERATOR)
    out().table(rows, ("key_id", "name", "scopes", "last_used_at", "revoked_at"))


@keys.command("revoke")
@tenant_option
@click.argument("key_id")
def key_revoke(tenant: str | None, key_id: str) -> None:
    """Revoke a key at once."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant", "DELETE", f"/v1/tenants/{tenant_id}/api-keys/{key_id}", auth=OPERATOR
    )
    out().record(data or {"key_id": key_id, "revoked": True})


# ------------------------------------------------------------------ users


@click.group(cls=Group)
def users() -> None:
    """People of a tenant (console and inbox users): invite, list, remove."""


@users.command("invite")
@tenant_option
@click.option("--email", required=True)
@click.option(
    "--role",
    type=click.Choice(["owner", "admin", "agent", "viewer"]),
    default="agent",
    show_default=True,
)
@click.option("--name")
def user_invite(tenant: str | None, email: str, role: str, name: str | None) -> None:
    """Invite a person by e-mail (the one-time token is in the answer and the e-mail)."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "tenant",
        "POST",
        f"/v1/tenants/{tenant_id}/users",
        auth=OPERATOR,
        json=given(email=email, role=role, name=name),
    )
    out().record(data, ("user.user_id", "user.email", "user.role", "invitation.expires_at"))


@users.command("list")
@tenant_option
def user_list(tenant: str | None) -> None:
    """A tenant's users."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages("tenant", f"/v1/tenants/{tenant_id}/users", auth=OPERATOR)
    out().table(rows, ("user_id", "email", "role", "status"))


@users.command("remove")
@tenant_option
@click.argument("user_id")
def user_remove(tenant: str | None, user_id: str) -> None:
    """Remove a user."""
    tenant_id = the_tenant(tenant)
    state().api.call("tenant", "DELETE", f"/v1/tenants/{tenant_id}/users/{user_id}", auth=OPERATOR)
    out().record({"user_id": user_id, "removed": True})
