"""A tenant's tasks: messages, contacts, campaigns, templates, webhook endpoints."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flowchat_cli.app import Group, out, state, tenant_option, the_tenant
from flowchat_cli.client import API_KEY, OPERATOR, TENANT
from flowchat_cli.errors import ApiError, ConfigError, Failed, TimedOut
from flowchat_cli.operator import given

GRAPH_VERSION = "v23.0"
#: Where a message stands: a later status implies the earlier ones.
PROGRESS = {"queued": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "played": 4}
FINAL_FAILURES = ("failed", "parked", "rejected")


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=out().err,
    )


def read_text(file: str) -> str:
    """A file's text, or standard input's for ``-``."""
    return sys.stdin.read() if file == "-" else Path(file).read_text()


def base(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}"


# ------------------------------------------------------------------ messages


@click.group(cls=Group)
def messages() -> None:
    """Send messages and follow their fate: send, status (with --wait-for), list, events."""


@messages.command("send")
@click.option(
    "--number",
    "account_id",
    metavar="ACCOUNT_ID",
    help="The tenant's number (account id) to send from (default: FLOWCHAT_ACCOUNT_ID).",
)
@click.option("--to", required=True, help="The customer's WhatsApp id (digits, or +E164).")
@click.option("--text", help="A text message (only inside the customer's 24 h window).")
@click.option("--template", help="A template's name (outside the window too).")
@click.option("--language", default="en", show_default=True, help="The template's language.")
@click.option("--param", "params", multiple=True, help="A template body parameter (repeat).")
@click.option(
    "--category",
    type=click.Choice(["marketing", "utility", "authentication"]),
    help="The template's category.",
)
@click.option(
    "--idempotency-key",
    help="Sending again with the same key never sends twice (default: a new key, printed).",
)
def message_send(
    account_id: str | None,
    to: str,
    text: str | None,
    template: str | None,
    language: str,
    params: tuple[str, ...],
    category: str | None,
    idempotency_key: str | None,
) -> None:
    """Send a text or a template through the gateway (needs FLOWCHAT_API_KEY, scope send).

    \b
    A text reaches a customer only inside the 24 h window the customer opens by writing
    first; otherwise it fails with 131047: send a template instead.
    """
    if (text is None) == (template is None):
        raise ConfigError("give --text or --template (one of them)")
    config = state().config
    account = account_id or config.values.get("FLOWCHAT_ACCOUNT_ID")
    if not account:
        raise ConfigError("a number is needed: --number ACCOUNT_ID or FLOWCHAT_ACCOUNT_ID")
    if text is not None:
        content: dict[str, Any] = {"type": "text", "body": text}
    else:
        content = {"type": "template", "name": template, "language": language}
        if params:
            content["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
            ]
    key = idempotency_key or str(uuid.uuid4())
    data = state().api.call(
        "gateway",
        "POST",
        "/v1/messages",
        auth=API_KEY,
        json=given(account_id=account, to=to, content=content, category=category),
        headers={"Idempotency-Key": key},
    )
    out().record({**data, "idempotency_key": key}, ("message_id", "status", "idempotency_key"))


def _message(tenant_id: str, message_id: str) -> dict[str, Any]:
    data = state().api.call(
        "state-manager", "GET", f"/v1/messages/{message_id}", auth=TENANT, tenant=tenant_id
    )
    return dict(data)


def reached(status: str, wanted: str) -> bool:
    if status == wanted:
        return True
    return wanted in PROGRESS and PROGRESS.get(status, -1) >= PROGRESS[wanted]


@messages.command("status")
@tenant_option
@click.argument("message_id")
@click.option(
    "--wait-for",
    type=click.Choice([*PROGRESS, *FINAL_FAILURES]),
    help="Wait until the message is at least this far (exit 1 if it fails instead).",
)
@click.option("--timeout", type=float, default=60, show_default=True, help="Seconds to wait.")
def message_status(
    tenant: str | None, message_id: str, wait_for: str | None, timeout: float
) -> None:
    """A message's status, error and ids (from the state-manager)."""
    tenant_id = the_tenant(tenant)
    deadline = time.monotonic() + timeout
    data: dict[str, Any] | None = None
    while True:
        try:
            data = _message(tenant_id, message_id)
        except ApiError as exc:
            if not (wait_for and exc.status == 404):
                raise
        if wait_for is None or (data and reached(data["status"], wait_for)):
            break
        if data and data["status"] in FINAL_FAILURES and wait_for not in FINAL_FAILURES:
            out().record(data, ("id", "status", "error.code", "error.title", "recipient"))
            raise Failed(f"message {message_id} is {data['status']}, not {wait_for}")
        if time.monotonic() > deadline:
            raise TimedOut(
                f"message {message_id} is {data['status'] if data else 'not recorded'} "
                f"after {timeout:.0f} s, not {wait_for}"
            )
        time.sleep(0.3)
    out().record(
        data,
        (
            "id",
            "status",
            "error.code",
            "error.title",
            "recipient",
            "category",
            "provider_message_id",
            "idempotency_key",
            "updated_at",
        ),
    )


@messages.command("list")
@tenant_option
@click.option("--to", "recipient", help="Only to this customer.")
@click.option("--status", help="Only with this status.")
@click.option("--campaign", "campaign_id", help="Only of this campaign.")
@click.option("--limit", type=int, default=50, show_default=True)
def message_list(
    tenant: str | None,
    recipient: str | None,
    status: str | None,
    campaign_id: str | None,
    limit: int,
) -> None:
    """A tenant's messages, newest first."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages(
        "state-manager",
        "/v1/messages",
        auth=TENANT,
        tenant=tenant_id,
        params={
            "recipient": recipient,
            "status": status,
            "campaign_id": campaign_id,
            "limit": min(limit, 200),
        },
        limit=limit,
    )
    out().table(rows, ("id", "recipient", "status", "error.code", "category", "created_at"))


@messages.command("events")
@tenant_option
@click.argument("message_id")
def message_events(tenant: str | None, message_id: str) -> None:
    """A message's status history."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages(
        "state-manager", f"/v1/messages/{message_id}/events", auth=TENANT, tenant=tenant_id
    )
    out().table(rows, ("status", "occurred_at", "error.code"))


# ------------------------------------------------------------------ contacts


@click.group(cls=Group)
def contacts() -> None:
    """A tenant's contacts: list, add, import a CSV (with progress), opt out."""


@contacts.command("list")
@tenant_option
@click.option("--search", "q", help="Phone or name contains.")
@click.option("--limit", type=int, default=100, show_default=True)
def contact_list(tenant: str | None, q: str | None, limit: int) -> None:
    """Contacts, page by page."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages(
        "conversation",
        base(tenant_id) + "/contacts",
        auth=TENANT,
        tenant=tenant_id,
        params={"q": q, "limit": min(limit, 200)},
        limit=limit,
    )
    out().table(rows, ("contact_id", "phone", "name", "status", "tags", "marketing_opt_in"))


@contacts.command("add")
@tenant_option
@click.option("--phone", required=True)
@click.option("--name")
@click.option("--tag", "tags", multiple=True, help="Repeat for several.")
@click.option("--opt-in/--no-opt-in", "opt_in", default=None, help="Marketing consent.")
def contact_add(
    tenant: str | None,
    phone: str,
    name: str | None,
    tags: tuple[str, ...],
    opt_in: bool | None,
) -> None:
    """Create or update one contact (matched by phone)."""
    tenant_id = the_tenant(tenant)
    body = given(phone=phone, name=name, tags=list(tags) or None, marketing_opt_in=opt_in)
    data = state().api.call(
        "conversation",
        "POST",
        base(tenant_id) + "/contacts",
        auth=TENANT,
        tenant=tenant_id,
        json=body,
    )
    out().record(data)


def csv_chunks(text: str, rows_per_chunk: int) -> list[str]:
    """The CSV cut into files of at most ``rows_per_chunk`` rows, each with the header."""
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return []
    header, rows = lines[0], [r for r in lines[1:] if any(c.strip() for c in r)]
    chunks = []
    for start in range(0, len(rows), rows_per_chunk):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows[start : start + rows_per_chunk])
        chunks.append(buffer.getvalue())
    return chunks


@contacts.command("import")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option(
    "--chunk-rows",
    type=click.IntRange(1, 50_000),
    default=1000,
    show_default=True,
    help="Rows per request (the progress bar moves per chunk).",
)
def contact_import(tenant: str | None, file: str, chunk_rows: int) -> None:
    """Import contacts from a CSV: phone required; name, tags, groups, marketing_opt_in;
    other columns become attributes. Rejected rows are listed with their line numbers."""
    tenant_id = the_tenant(tenant)
    text = read_text(file)
    chunks = csv_chunks(text, chunk_rows)
    total = {"received": 0, "imported": 0, "created": 0, "updated": 0, "opt_out_kept": 0}
    rejected: list[dict[str, Any]] = []
    with progress_bar() as bar:
        rows = sum(c.count("\n") - 1 for c in chunks)
        task = bar.add_task("import", total=rows, detail="")
        for index, chunk in enumerate(chunks):
            report = state().api.call(
                "conversation",
                "POST",
                base(tenant_id) + "/contacts/import",
                auth=TENANT,
                tenant=tenant_id,
                content=chunk.encode(),
                headers={"Content-Type": "text/csv"},
            )
            for key in total:
                total[key] += int(report.get(key, 0) or 0)
            for row in report.get("rejected", []):
                line = row.get("line")
                if isinstance(line, int):  # the chunk's line → the file's line
                    line += index * chunk_rows
                rejected.append({**row, "line": line})
            bar.update(
                task,
                advance=chunk.count("\n") - 1,
                detail=f"created {total['created']} updated {total['updated']} "
                f"rejected {len(rejected)}",
            )
    result = {**total, "rejected": rejected}
    o = out()
    if o.as_json or o.field:
        o.record(result)
        return
    o.record(total, title=f"imported {total['imported']} of {total['received']} rows")
    if rejected:
        o.note(f"{len(rejected)} rows rejected:")
        o.table(rejected, ("line", "phone", "errors"))


@contacts.command("opt-out")
@tenant_option
@click.argument("contact_id")
def contact_opt_out(tenant: str | None, contact_id: str) -> None:
    """Withdraw a contact's marketing consent."""
    tenant_id = the_tenant(tenant)
    data = state().api.call(
        "conversation",
        "PUT",
        base(tenant_id) + f"/contacts/{contact_id}/marketing",
        auth=TENANT,
        tenant=tenant_id,
        json={"opt_in": False},
    )
    out().record(data)


# ------------------------------------------------------------------ campaigns

TERMINAL = ("completed", "cancelled")


@click.group(cls=Group)
def campaigns() -> None:
    """Campaigns (a template to a segment of contacts): create, list, show, start, pause,
    resume, cancel, watch."""


@campaigns.command("create")
@tenant_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Only check it and count who it reaches.")
@click.option("--start", is_flag=True, help="Start it once created.")
def campaign_create(tenant: str | None, file: str, dry_run: bool, start: bool) -> None:
    """Create a campaign from a JSON file (name, account_id, template, parameters,
    segment, rate_mps; '-' reads standard input)."""
    tenant_id = the_tenant(tenant)
    text = read_text(file)
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not JSON ({exc})") from None
    api = state().api
    path = base(tenant_id) + "/campaigns"
    if dry_run:
        data = api.call(
            "conversation", "POST", path + "/dry-run", auth=TENANT, tenant=tenant_id, json=body
        )
        out().record(
            data, ("targeted", "eligible", "excluded", "estimated_duration_s", "template.status")
        )
        return
    data = api.call("conversation", "POST", path, auth=TENANT, tenant=tenant_id, json=body)
    if start:
        data = api.call(
            "conversation",
            "POST",
            f"{path}/{data['campaign_id']}/start",
            auth=TENANT,
            tenant=tenant_id,
        )
    out().record(data, ("campaign_id", "name", "status", "account_id", "rate_mps"))


@campaigns.command("list")
@tenant_option
@click.option("--limit", type=int, default=100, show_default=True)
def campaign_list(tenant: str | None, limit: int) -> None:
    """A tenant's campaigns."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages(
        "conversation",
        base(tenant_id) + "/campaigns",
        auth=TENANT,
        tenant=tenant_id,
        params={"limit": min(limit, 200)},
        limit=limit,
    )
    out().table(rows, ("campaign_id", "name", "status", "created_at"))


@campaigns.command("show")
@tenant_option
@click.argument("campaign_id")
def campaign_show(tenant: str | None, campaign_id: str) -> None:
    """One campaign and its live counts."""
    tenant_id = the_tenant(tenant)
    api = state().api
    data = api.call(
        "conversation",
        "GET",
        base(tenant_id) + f"/campaigns/{campaign_id}",
        auth=TENANT,
        tenant=tenant_id,
    )
    out().record(data)


def _action(name: str) -> None:
    @campaigns.command(name)
    @tenant_option
    @click.argument("campaign_id")
    def run(tenant: str | None, campaign_id: str) -> None:
        tenant_id = the_tenant(tenant)
        data = state().api.call(
            "conversation",
            "POST",
            base(tenant_id) + f"/campaigns/{campaign_id}/{name}",
            auth=TENANT,
            tenant=tenant_id,
        )
        out().record(data, ("campaign_id", "name", "status"))

    run.__doc__ = f"{name.capitalize()} a campaign."


for _name in ("start", "pause", "resume", "cancel"):
    _action(_name)


def metrics_line(m: dict[str, Any]) -> str:
    excluded = sum((m.get("excluded") or {}).values())
    return (
        f"{m['status']} · queued {m.get('queued', 0)} sent {m.get('sent', 0)} "
        f"delivered {m.get('delivered', 0)} read {m.get('read', 0)} "
        f"failed {m.get('failed', 0)} excluded {excluded}"
    )


@campaigns.command("watch")
@tenant_option
@click.argument("campaign_id")
@click.option("--interval", type=float, default=1.0, show_default=True)
@click.option("--timeout", type=float, default=0, help="Give up after S seconds (0: never).")
def campaign_watch(tenant: str | None, campaign_id: str, interval: float, timeout: float) -> None:
    """A progress bar until the campaign completes (exit 4 on --timeout)."""
    tenant_id = the_tenant(tenant)
    path = base(tenant_id) + f"/campaigns/{campaign_id}/metrics"
    deadline = time.monotonic() + timeout if timeout else None
    with progress_bar() as bar:
        task = bar.add_task(campaign_id, total=None, detail="")
        while True:
            m = dict(state().api.call("conversation", "GET", path, auth=TENANT, tenant=tenant_id))
            excluded = sum((m.get("excluded") or {}).values())
            bar.update(
                task,
                total=m.get("targeted"),
                completed=m.get("queued", 0) + excluded,
                detail=metrics_line(m),
            )
            if m["status"] in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                out().record(m)
                raise TimedOut(f"campaign {campaign_id} is still {m['status']}")
            time.sleep(interval)
    out().record(
        m,
        (
            "campaign_id",
            "status",
            "targeted",
            "queued",
            "sent",
            "delivered",
            "read",
            "failed",
            "replied",
            "excluded",
        ),
    )


# ------------------------------------------------------------------ templates


@click.group(cls=Group)
def templates() -> None:
    """Message templates of a number's business account (as Meta has them).

    \b
    Templates are created and approved at Meta (in the sandbox: `flowchat sandbox
    template` and `flowchat sandbox approve`); only APPROVED ones can be sent.
    """


@templates.command("list")
@tenant_option
@click.option(
    "--number",
    "account_id",
    metavar="ACCOUNT_ID",
    help="The number whose business account to read (default FLOWCHAT_ACCOUNT_ID).",
)
def template_list(tenant: str | None, account_id: str | None) -> None:
    """Templates with their status (through the gateway's Cloud API; needs FLOWCHAT_API_KEY)."""
    tenant_id = the_tenant(tenant)
    api = state().api
    account = account_id or api.config.values.get("FLOWCHAT_ACCOUNT_ID")
    if not account:
        raise ConfigError("a number is needed: --number ACCOUNT_ID or FLOWCHAT_ACCOUNT_ID")
    number = api.call("tenant", "GET", base(tenant_id) + f"/accounts/{account}", auth=OPERATOR)
    if not number.get("waba_id"):
        raise Failed(f"number {account} has no WhatsApp business account (Twilio?)")
    rows = api.pages(
        "gateway", f"/{GRAPH_VERSION}/{number['waba_id']}/message_templates", auth=API_KEY
    )
    out().table(rows, ("id", "name", "language", "status", "category"))


# ------------------------------------------------------------------ endpoints (relay)


@click.group(cls=Group)
def endpoints() -> None:
    """A tenant's webhook endpoints (the relay): create, list, show, delete, ping, rotate."""


@endpoints.command("create")
@tenant_option
@click.option("--url", required=True, help="Where events are POSTed (https).")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    help="An event type (repeat; `flowchat endpoints event-types` lists them).",
)
@click.option(
    "--format",
    "body_format",
    type=click.Choice(["flowchat", "meta"]),
    help="FlowChat events signed per Standard Webhooks (default) or Meta's bodies.",
)
@click.option("--description")
def endpoint_create(
    tenant: str | None,
    url: str,
    events: tuple[str, ...],
    body_format: str | None,
    description: str | None,
) -> None:
    """Create an endpoint; its signing secret is shown this once."""
    tenant_id = the_tenant(tenant)
    body = given(url=url, event_types=list(events), format=body_format, description=description)
    data = state().api.call(
        "relay", "POST", "/v1/endpoints", auth=TENANT, tenant=tenant_id, json=body
    )
    out().record(data)


@endpoints.command("list")
@tenant_option
def endpoint_list(tenant: str | None) -> None:
    """A tenant's endpoints."""
    tenant_id = the_tenant(tenant)
    rows = state().api.pages("relay", "/v1/endpoints", auth=TENANT, tenant=tenant_id)
    out().table(rows, ("id", "url", "enabled", "format", "event_types"))


@endpoints.command("event-types")
@tenant_option
def endpoint_event_types(tenant: str | None) -> None:
    """The event types an endpoint can subscribe to."""
    tenant_id = the_tenant(tenant)
    data = state().api.call("relay", "GET", "/v1/event-types", auth=TENANT, tenant=tenant_id)
    rows: list[Any] = list(data.get("items") or []) if isinstance(data, dict) else list(data or [])
    out().table(
        [r if isinstance(r, dict) else {"event_type": r} for r in rows],
        ("event_type", "description"),
    )


@endpoints.command("show")
@tenant_option
@click.argument("endpoint_id")
def endpoint_show(tenant: str | None, endpoint_id: str) -> None:
    """One endpoint."""
    tenant_id = the_tenant(tenant)
    out().record(
        state().api.call(
            "relay", "GET", f"/v1/endpoints/{endpoint_id}", auth=TENANT, tenant=tenant_id
        )
    )


@endpoints.command("delete")
@tenant_option
@click.argument("endpoint_id")
def endpoint_delete(tenant: str | None, endpoint_id: str) -> None:
    """Delete an endpoint."""
    tenant_id = the_tenant(tenant)
    state().api.call(
        "relay", "DELETE", f"/v1/endpoints/{endpoint_id}", auth=TENANT, tenant=tenant_id
    )
    out().record({"endpoint_id": endpoint_id, "deleted": True})


@endpoints.command("ping")
@tenant_option
@click.argument("endpoint_id")
def endpoint_ping(tenant: str | None, endpoint_id: str) -> None:
    """Send a test event now and show the answer."""
    tenant_id = the_tenant(tenant)
    out().record(
        state().api.call(
            "relay", "POST", f"/v1/endpoints/{endpoint_id}/ping", auth=TENANT, tenant=tenant_id
        )
    )


@endpoints.command("rotate-secret")
@tenant_option
@click.argument("endpoint_id")
def endpoint_rotate(tenant: str | None, endpoint_id: str) -> None:
    """A new signing secret (the old one keeps working for a while)."""
    tenant_id = the_tenant(tenant)
    out().record(
        state().api.call(
            "relay",
            "POST",
            f"/v1/endpoints/{endpoint_id}/rotate-secret",
            auth=TENANT,
            tenant=tenant_id,
        )
    )


@endpoints.command("replay")
@tenant_option
@click.argument("endpoint_id")
def endpoint_replay(tenant: str | None, endpoint_id: str) -> None:
    """Deliver an endpoint's failed events again."""
    tenant_id = the_tenant(tenant)
    out().record(
        state().api.call(
            "relay", "POST", f"/v1/endpoints/{endpoint_id}/replay", auth=TENANT, tenant=tenant_id
        )
    )
