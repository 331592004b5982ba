"""The operator's command line (``python -m flowchat_tenant <group> <command>``).

Runs beside the service, straight through :class:`TenantService` against
``DATABASE_URL`` with ``FLOWCHAT_TENANT_ENCRYPTION_KEYS`` (the operator's powers: no
API key needed, the same validation, encryption and provider check as the API)::

    tenant create --name NAME [--business-name …] [--timezone …] [--locale …]
                  [--currency …] [--tax-rate …]
    tenant list
    tenant suspend TENANT_ID | tenant activate TENANT_ID
    number add --tenant TENANT_ID --provider meta --phone-number-id … --waba-id …
               --display-phone-number … --app-secret … --verify-token … --access-token …
               [--app-id …] [--tier …] [--throughput-mps N]
    number add --tenant TENANT_ID --provider twilio --twilio-account-sid AC…
               --twilio-auth-token … --twilio-number +E164
    number list --tenant TENANT_ID
    apikey create --tenant TENANT_ID --name NAME --scope send [--scope read …]
    apikey list --tenant TENANT_ID
    apikey revoke --tenant TENANT_ID KEY_ID
    keys rotate | keys generate

A secret option takes the value itself, ``env:NAME`` (read from that environment
variable, so it stays out of the shell history and ``ps``), or ``-`` (one line from
standard input); left out, it is asked for without echo. ``--json`` prints
machine-readable output. Exit status: 0 done, 1 refused (unknown tenant, duplicate
number, token refused by the provider, …), 2 bad arguments or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TextIO

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from flowchat_platform.errors import ConfigurationError
from flowchat_platform.logs import configure_logging
from flowchat_tenant import SERVICE
from flowchat_tenant.app import open_database
from flowchat_tenant.errors import TenantError
from flowchat_tenant.models import (
    Account,
    AccountCreate,
    ApiKey,
    ApiKeyCreate,
    Tenant,
    TenantCreate,
    TenantUpdate,
)
from flowchat_tenant.permissions import Principal
from flowchat_tenant.ports import NoProvider, NumberProvider
from flowchat_tenant.provider import GraphProvider
from flowchat_tenant.repository import Repository
from flowchat_tenant.service import TenantService
from flowchat_tenant.settings import Settings

OPERATOR = Principal.the_operator(actor_type="cli")
_ACCOUNT = TypeAdapter(AccountCreate)


class UsageError(Exception):
    """Bad arguments (exit status 2)."""


# --------------------------------------------------------------------- arguments


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m flowchat_tenant",
        description="Manage FlowChat tenants, WhatsApp numbers and API keys.",
    )
    root.add_argument("--json", action="store_true", help="machine-readable output")
    groups = root.add_subparsers(dest="group", required=True, metavar="GROUP")

    tenant = groups.add_parser("tenant", help="tenants").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    create = tenant.add_parser("create", help="create a tenant")
    create.add_argument("--name", required=True)
    create.add_argument("--business-name")
    create.add_argument("--timezone", help="IANA time zone (default UTC)")
    create.add_argument("--locale", help="e.g. en-KE (default en)")
    create.add_argument("--currency", help="ISO 4217 (default USD)")
    create.add_argument("--tax-rate", help="a fraction, e.g. 0.16")
    listing = tenant.add_parser("list", help="list tenants")
    listing.add_argument("--limit", type=int, default=500)
    for name, text in (("suspend", "refuse its sends"), ("activate", "allow its sends again")):
        command = tenant.add_parser(name, help=f"{name} a tenant ({text})")
        command.add_argument("tenant_id")

    number = groups.add_parser(
        "number", help="WhatsApp numbers (business accounts)"
    ).add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = number.add_parser("add", help="register a number (a Meta number is checked first)")
    add.add_argument("--tenant", required=True, dest="tenant_id")
    add.add_argument("--provider", required=True, choices=("meta", "twilio"))
    for option in (
        "--phone-number-id",
        "--waba-id",
        "--display-phone-number",
        "--app-id",
        "--tier",
        "--twilio-account-sid",
        "--twilio-number",
    ):
        add.add_argument(option)
    add.add_argument("--throughput-mps", type=int)
    for option in ("--app-secret", "--verify-token", "--access-token", "--twilio-auth-token"):
        add.add_argument(option, help="value, env:NAME, or - (stdin); asked for when left out")
    numbers = number.add_parser("list", help="a tenant's numbers")
    numbers.add_argument("--tenant", required=True, dest="tenant_id")

    apikey = groups.add_parser("apikey", help="tenant API keys").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    key_create = apikey.add_parser("create", help="create a key (shown once)")
    key_create.add_argument("--tenant", required=True, dest="tenant_id")
    key_create.add_argument("--name", required=True)
    key_create.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        required=True,
        choices=("send", "read", "admin"),
        help="repeat for several scopes",
    )
    key_list = apikey.add_parser("list", help="a tenant's keys (never their values)")
    key_list.add_argument("--tenant", required=True, dest="tenant_id")
    revoke = apikey.add_parser("revoke", help="revoke a key")
    revoke.add_argument("--tenant", required=True, dest="tenant_id")
    revoke.add_argument("key_id")

    keys = groups.add_parser("keys", help="the encryption keyring").add_subparsers(
        dest="command", required=True, metavar="COMMAND"
    )
    keys.add_parser("rotate", help="re-encrypt every secret under the first key")
    keys.add_parser("generate", help="print a new encryption key")
    return root


def read_secret(value: str | None, label: str, stdin: TextIO) -> str | None:
    """A secret option: literal, ``env:NAME``, ``-`` (a stdin line), or asked for."""
    if value is None:
        if not stdin.isatty():
            return None
        return getpass.getpass(f"{label}: ") or None
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise UsageError(f"{label}: environment variable {name} is not set")
        return os.environ[name]
    if value == "-":
        return stdin.readline().rstrip("\r\n") or None
    return value


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------- output


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


class Output:
    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json

    def record(self, title: str, model: BaseModel, fields: Sequence[str]) -> None:
        if self.as_json:
            self.out.write(model.model_dump_json(indent=2) + "\n")
            return
        data = model.model_dump()
        width = max(len(f) for f in fields)
        self.out.write(title + "\n")
        for name in fields:
            value: Any = data
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            self.out.write(f"  {name.ljust(width)}  {_plain(value)}\n")

    def table(self, models: Sequence[BaseModel], columns: Sequence[str]) -> None:
        if self.as_json:
            rows = [m.model_dump(mode="json") for m in models]
            self.out.write(json.dumps(rows, indent=2) + "\n")
            return
        cells = [[_plain(m.model_dump().get(c)) for c in columns] for m in models]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        lines = [columns, *cells]
        for line in lines:
            self.out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))
            self.out.write("\n")
        if not models:
            self.out.write("(none)\n")

    def line(self, text: str) -> None:
        if self.as_json:
            self.out.write(json.dumps({"message": text}) + "\n")
        else:
            self.out.write(text + "\n")


TENANT_FIELDS: tuple[str, ...] = (
    "tenant_id",
    "name",
    "business_name",
    "status",
    "timezone",
    "locale",
    "currency",
    "tax_rate",
)
ACCOUNT_FIELDS: tuple[str, ...] = (
    "account_id",
    "tenant_id",
    "provider",
    "status",
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "twilio_account_sid",
    "twilio_number",
    "tier",
    "throughput_mps",
    "secrets_set",
    "health.quality_rating",
    "health.throughput_level",
    "health.messaging_limit_tier",
)
KEY_FIELDS: tuple[str, ...] = (
    "key_id",
    "tenant_id",
    "name",
    "scopes",
    "created_at",
    "last_used_at",
    "revoked_at",
)


# --------------------------------------------------------------------- commands


async def execute(
    args: argparse.Namespace,
    service: TenantService,
    out: Output,
    *,
    stdin: TextIO,
    rotation_batch_size: int = 200,
) -> None:
    """Run one parsed command against the service (raises TenantError, ValidationError)."""
    command = (args.group, args.command)
    if command == ("tenant", "create"):
        body = TenantCreate.model_validate(
            _given(
                {
                    "name": args.name,
                    "business_name": args.business_name,
                    "timezone": args.timezone,
                    "locale": args.locale,
                    "currency": args.currency,
                    "tax_rate": args.tax_rate,
                }
            )
        )
        tenant = await service.create_tenant(OPERATOR, body)
        out.record(f"tenant {tenant.tenant_id} created", tenant, TENANT_FIELDS)
    elif command == ("tenant", "list"):
        tenants: list[Tenant] = await service.list_tenants(OPERATOR, limit=args.limit)
        out.table(tenants, ("tenant_id", "name", "status", "timezone", "currency"))
    elif command in (("tenant", "suspend"), ("tenant", "activate")):
        status = "suspended" if args.command == "suspend" else "active"
        tenant = await service.update_tenant(OPERATOR, args.tenant_id, TenantUpdate(status=status))
        out.record(f"tenant {tenant.tenant_id} is {tenant.status}", tenant, TENANT_FIELDS)
    elif command == ("number", "add"):
        account = await service.create_account(OPERATOR, args.tenant_id, _account_body(args, stdin))
        out.record(f"number {account.account_id} added", account, ACCOUNT_FIELDS)
    elif command == ("number", "list"):
        accounts: list[Account] = await service.list_accounts(OPERATOR, args.tenant_id)
        out.table(
            accounts,
            ("account_id", "provider", "status", "display_phone_number", "phone_number_id"),
        )
    elif command == ("apikey", "create"):
        created = await service.create_api_key(
            OPERATOR, args.tenant_id, ApiKeyCreate(name=args.name, scopes=args.scopes)
        )
        out.record(f"API key {created.key_id} created", created, (*KEY_FIELDS[:4], "key"))
        if not out.as_json:
            out.line("the key is shown this once: store it now")
    elif command == ("apikey", "list"):
        keys: list[ApiKey] = await service.list_api_keys(OPERATOR, args.tenant_id)
        out.table(keys, ("key_id", "name", "scopes", "last_used_at", "revoked_at"))
    elif command == ("apikey", "revoke"):
        revoked = await service.revoke_api_key(OPERATOR, args.tenant_id, args.key_id)
        out.record(f"API key {revoked.key_id} revoked", revoked, KEY_FIELDS)
    elif command == ("keys", "rotate"):
        accounts_done, secrets = await service.rotate_keys(batch_size=rotation_batch_size)
        out.line(
            f"re-encrypted {secrets} secrets of {accounts_done} accounts under the first key "
            "of FLOWCHAT_TENANT_ENCRYPTION_KEYS; remove the old keys once every replica runs "
            "with the new list"
        )
    else:  # pragma: no cover - argparse allows nothing else
        raise UsageError(f"unknown command {' '.join(command)}")


def _account_body(args: argparse.Namespace, stdin: TextIO) -> Any:
    values: dict[str, Any] = {
        "provider": args.provider,
        "tier": args.tier,
        "throughput_mps": args.throughput_mps,
    }
    if args.provider == "meta":
        values.update(
            phone_number_id=args.phone_number_id,
            waba_id=args.waba_id,
            display_phone_number=args.display_phone_number,
            app_id=args.app_id,
            app_secret=read_secret(args.app_secret, "app secret", stdin),
            verify_token=read_secret(args.verify_token, "webhook verify token", stdin),
            access_token=read_secret(args.access_token, "access token", stdin),
        )
    else:
        values.update(
            twilio_account_sid=args.twilio_account_sid,
            twilio_number=args.twilio_number,
            twilio_auth_token=read_secret(args.twilio_auth_token, "Twilio auth token", stdin),
        )
    return _ACCOUNT.validate_python(_given(values))


def describe(exc: ValidationError) -> list[str]:
    """One line per invalid field, naming it (never echoing a value)."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in ("meta", "twilio")]
        option = "--" + loc[-1].replace("_", "-") if loc else "?"
        lines.append(f"{option}: {err['msg']}")
    return lines


async def run(
    argv: Sequence[str],
    *,
    settings: Settings | None = None,
    provider: NumberProvider | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Parse ``argv`` and run it; returns the exit status."""
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    words = list(argv)
    if "--json" in words:  # anywhere on the line, as in flowchat
        words = ["--json", *(w for w in words if w != "--json")]
    try:
        args = parser().parse_args(words)
    except SystemExit as exc:  # argparse already printed the usage
        return int(exc.code or 0)
    printer = Output(out, as_json=args.json)
    if (args.group, args.command) == ("keys", "generate"):
        from flowchat_tenant.crypto import SecretBox

        out.write(SecretBox.generate_key() + "\n")
        return 0
    try:
        settings = settings or Settings()
        box = settings.secret_box()
    except (ValidationError, ConfigurationError) as exc:
        err.write(f"configuration error: {exc}\n")
        return 2
    pool = await open_database(settings)
    try:
        async with aiohttp.ClientSession() as session:
            number_provider = provider or (
                GraphProvider(
                    session,
                    base_url=settings.graph_url,
                    version=settings.graph_version,
                    timeout_s=settings.graph_timeout_s,
                )
                if args.group == "number"
                else NoProvider()
            )
            repository = Repository(pool)
            service = TenantService(
                repository,
                box,
                number_provider,
                validate_numbers=settings.validate_numbers,
                audit=repository,
            )
            await execute(
                args,
                service,
                printer,
                stdin=stdin,
                rotation_batch_size=settings.rotation_batch_size,
            )
    except ValidationError as exc:
        for line in describe(exc):
            err.write(f"invalid: {line}\n")
        return 2
    except UsageError as exc:
        err.write(f"error: {exc}\n")
        return 2
    except TenantError as exc:
        field = getattr(exc, "field", None)
        where = f" ({'--' + field.replace('_', '-')})" if field else ""
        err.write(f"refused: {exc.code}{where}: {exc.message}\n")
        return 1
    finally:
        await pool.close()
    return 0


async def rotate_keys(settings: Settings) -> tuple[int, int]:
    """Re-encrypt every secret under the keyring's first key; returns (accounts, secrets)."""
    pool = await open_database(settings)
    try:
        service = TenantService(Repository(pool), settings.secret_box(), NoProvider())
        return await service.rotate_keys(batch_size=settings.rotation_batch_size)
    finally:
        await pool.close()


def main(argv: Sequence[str]) -> int:
    """The console entry: logs only warnings (to stdout, like the service), then runs."""
    configure_logging(SERVICE, "WARNING")
    return asyncio.run(run(argv))
