"""Operator tasks on the pipeline: the sender's DLQ; and the local sandbox's controls."""

from __future__ import annotations

import secrets
import time
from typing import Any

import click

from flowchat_cli.app import Group, out, state
from flowchat_cli.client import NONE, SERVICE
from flowchat_cli.errors import ApiError, Failed, TimedOut
from flowchat_cli.operator import given
from flowchat_cli.tenant import progress_bar

DLQ = "/internal/v1/dlq"
#: The most messages one DLQ page returns (every list's limit: flowchat_platform.http.PageLimit).
DLQ_PAGE = 200


def dlq_filters(f: Any) -> Any:
    for option in reversed(
        [
            click.option("--tenant", "tenant_id", help="Only this tenant's messages."),
            click.option(
                "--number",
                "account_id",
                metavar="ACCOUNT_ID",
                help="Only messages from this number (account id).",
            ),
            click.option("--error-code", type=int, help="Only parked with this error code."),
            click.option("--reason", help="Only messages whose parking reason contains this."),
            click.option(
                "--id",
                "message_ids",
                multiple=True,
                metavar="MESSAGE_ID",
                help="Only this message (repeat).",
            ),
            click.option(
                "--limit",
                type=click.IntRange(1, 10_000),
                default=100,
                show_default=True,
                help="At most this many.",
            ),
        ]
    ):
        f = option(f)
    return f


def matches(item: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Whether a parked message passes every filter given (checked here too, so the
    filters hold whichever of them the sender's API applies itself)."""
    if filters.get("tenant_id") and item.get("tenant_id") != filters["tenant_id"]:
        return False
    if filters.get("account_id") and item.get("account_id") != filters["account_id"]:
        return False
    code = filters.get("error_code")
    if code is not None and item.get("error_code") != code:
        return False
    reason = filters.get("reason")
    if reason and reason.lower() not in str(item.get("reason", "")).lower():
        return False
    ids = filters.get("message_ids")
    return not ids or item.get("message_id") in ids


def parked(filters: dict[str, Any]) -> list[dict[str, Any]]:
    params = {
        "limit": DLQ_PAGE,
        "reason": filters.get("reason"),
        "message_id": list(filters.get("message_ids") or []),
        "tenant_id": filters.get("tenant_id"),
        "account_id": filters.get("account_id"),
        "error_code": filters.get("error_code"),
    }
    found = []
    for item in state().api.pages("sender", DLQ, auth=SERVICE, params=params):
        if matches(item, filters):
            found.append(item)
            if len(found) >= filters["limit"]:
                break
    return found


@click.group(cls=Group)
def dlq() -> None:
    """The sender's parking lot (whatsapp.outbound.dlq): list, replay, discard.

    \b
    Parked: commands whose send outcome is unknown (the provider may have taken them:
    replay needs --force) and commands that ran out of retries. Permanent refusals
    (bad number, 131047 outside the window, …) are not parked: they are recorded as
    failed, with their error, in the state-manager. Needs FLOWCHAT_SERVICE_TOKEN.
    """


COLUMNS = (
    "message_id",
    "tenant_id",
    "account_id",
    "to",
    "error_code",
    "attempts",
    "reason",
    "parked_at",
)


@dlq.command("list")
@dlq_filters
@click.option(
    "--wait",
    type=float,
    default=0,
    metavar="S",
    help="Wait up to S seconds for at least one match (exit 4 if none).",
)
def dlq_list(wait: float, **filters: Any) -> None:
    """Parked messages, with their error code and reason (left in the queue)."""
    deadline = time.monotonic() + wait
    while True:
        items = parked(filters)
        if items or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if wait and not items:
        out().table(items, COLUMNS)
        raise TimedOut(f"nothing parked matches after {wait:.0f} s")
    out().table(items, COLUMNS)


def _in_batches(action: str, ids: list[str], send: Any, detail: Any) -> list[dict[str, Any]]:
    reports = []
    with progress_bar() as bar:
        task = bar.add_task(action, total=len(ids), detail="")
        for start in range(0, len(ids), 100):
            batch = ids[start : start + 100]
            reports.append(send(batch))
            bar.update(task, advance=len(batch), detail=detail(reports))
    return reports


@dlq.command("replay")
@dlq_filters
@click.option(
    "--force",
    is_flag=True,
    help="Also re-send messages whose outcome is unknown (they may have been sent).",
)
def dlq_replay(force: bool, **filters: Any) -> None:
    """Put matching parked messages back on their queue (never sent twice: a message whose
    key already holds a result is answered from it)."""
    ids = [i["message_id"] for i in parked(filters) if i.get("message_id")]
    api = state().api

    def send(batch: list[str]) -> dict[str, Any]:
        return dict(
            api.call(
                "sender",
                "POST",
                DLQ + "/replay",
                auth=SERVICE,
                json={"message_ids": batch, "limit": len(batch), "force": force},
            )
        )

    reports = _in_batches(
        "replay", ids, send, lambda rs: f"replayed {sum(r.get('replayed', 0) for r in rs)}"
    )
    result = {
        "matched": len(ids),
        "replayed": sum(int(r.get("replayed", 0)) for r in reports),
        "message_ids": [m for r in reports for m in r.get("message_ids", [])],
        "skipped": [s for r in reports for s in r.get("skipped", [])],
    }
    out().record(result, ("matched", "replayed", "message_ids", "skipped"))
    if result["skipped"] and not force and not out().as_json:
        out().note("skipped messages with an unknown outcome: check the provider, then --force")


@dlq.command("discard")
@dlq_filters
@click.option("--why", "why", required=True, help="Why they are dropped (kept in the audit).")
def dlq_discard(why: str, **filters: Any) -> None:
    """Drop matching parked messages for good, with a reason (audited by the sender)."""
    ids = [i["message_id"] for i in parked(filters) if i.get("message_id")]
    api = state().api

    def send(batch: list[str]) -> dict[str, Any]:
        try:
            return dict(
                api.call(
                    "sender",
                    "POST",
                    DLQ + "/discard",
                    auth=SERVICE,
                    json={"message_ids": batch, "reason": why},
                )
            )
        except ApiError as exc:
            if exc.status in (404, 405):
                raise Failed(
                    "this sender has no discard API (POST /internal/v1/dlq/discard)"
                ) from exc
            raise

    reports = _in_batches(
        "discard", ids, send, lambda rs: f"discarded {sum(r.get('discarded', 0) for r in rs)}"
    )
    out().record(
        {"matched": len(ids), "discarded": sum(int(r.get("discarded", 0)) for r in reports)}
    )


# ------------------------------------------------------------------ sandbox


@click.group(cls=Group)
def sandbox() -> None:
    """The local sandbox (Meta's Cloud API and its customers, for development):
    register a number, let a customer write, add and approve templates, inject faults."""


@sandbox.command("number")
@click.option("--phone-number-id", help="Default: a new random one.")
@click.option("--waba-id", help="Default: a new random one.")
@click.option("--display-phone-number", help="Default: +1555 and random digits.")
@click.option("--access-token", help="The token Meta issues for it (default: a new one).")
@click.option("--app-secret", help="The app secret that signs its webhooks (default: a new one).")
@click.option("--name", "verified_name", default="Acme", show_default=True)
@click.option("--throughput-mps", type=int)
def sandbox_number(**opts: Any) -> None:
    """Register a number in the sandbox (as Meta would have it) and print the values to
    give `flowchat numbers add` (access token, app secret…)."""
    suffix = f"{secrets.randbelow(10**6):06d}"
    body = {
        "phone_number_id": opts["phone_number_id"] or f"1099{suffix}",
        "waba_id": opts["waba_id"] or f"2099{suffix}",
        "display_phone_number": opts["display_phone_number"] or f"+1555{suffix}0"[:12],
        "access_token": opts["access_token"] or "EAAG" + secrets.token_urlsafe(32),
        "app_secret": opts["app_secret"] or secrets.token_hex(16),
        "verified_name": opts["verified_name"],
        "webhook_url": state().config.url("gateway") + "/webhooks/meta",
        **given(throughput_mps=opts["throughput_mps"]),
    }
    state().api.call("sandbox", "POST", "/sandbox/numbers", auth=NONE, json=body)
    out().record({**body, "app_id": f"3099{suffix}", "verify_token": secrets.token_urlsafe(16)})


@sandbox.command("say")
@click.option("--from", "wa_id", required=True, help="The customer's WhatsApp id (digits).")
@click.option("--to", "phone_number_id", required=True, help="The number's phone number id.")
@click.option("--name", help="The customer's profile name.")
@click.argument("text")
def sandbox_say(wa_id: str, phone_number_id: str, name: str | None, text: str) -> None:
    """A customer writes to a number (this opens the customer's 24 h window)."""
    data = state().api.call(
        "sandbox",
        "POST",
        f"/sandbox/customers/{wa_id.lstrip('+')}/messages",
        auth=NONE,
        json=given(phone_number_id=phone_number_id, text=text, name=name),
    )
    out().record(data)


@sandbox.command("template")
@click.option("--waba-id", required=True)
@click.option("--name", required=True)
@click.option("--language", default="en", show_default=True)
@click.option(
    "--category",
    type=click.Choice(["MARKETING", "UTILITY", "AUTHENTICATION"]),
    default="UTILITY",
    show_default=True,
)
@click.option("--body", "text", required=True, help="The body, {{1}} {{2}} for parameters.")
def sandbox_template(waba_id: str, name: str, language: str, category: str, text: str) -> None:
    """Submit a template (PENDING, as at Meta, until `flowchat sandbox approve`)."""
    data = state().api.call(
        "sandbox",
        "POST",
        "/sandbox/templates",
        auth=NONE,
        json={
            "waba_id": waba_id,
            "name": name,
            "language": language,
            "category": category,
            "status": "PENDING",
            "components": [{"type": "BODY", "text": text}],
        },
    )
    out().record(data, ("id", "name", "language", "status", "category"))


@sandbox.command("approve")
@click.argument("template_id")
@click.option("--reject", "reason", help="Reject it with this reason instead.")
def sandbox_approve(template_id: str, reason: str | None) -> None:
    """Approve a template (Meta's review), or reject it."""
    body = {"status": "REJECTED", "reason": reason} if reason else {"status": "APPROVED"}
    data = state().api.call(
        "sandbox", "PATCH", f"/sandbox/templates/{template_id}", auth=NONE, json=body
    )
    out().record(data, ("id", "name", "language", "status"))


@sandbox.command("faults")
@click.argument("phone_number_id")
@click.option("--timeout-rate", type=float, help="Share of sends held until they time out.")
@click.option("--error-rate", type=float, help="Share of sends answered with HTTP 500.")
@click.option("--error-code", type=int, help="Sends fail with this Meta error code.")
@click.option("--error-count", type=int, help="How many (-1: all) fail with --error-code.")
@click.option("--clear", is_flag=True, help="Remove every fault of the number.")
def sandbox_faults(phone_number_id: str, clear: bool, **faults: Any) -> None:
    """Inject (or --clear) failures on a number's sends."""
    path = f"/sandbox/numbers/{phone_number_id}/faults"
    if clear:
        state().api.call("sandbox", "DELETE", path, auth=NONE)
        out().record({"phone_number_id": phone_number_id, "faults": "cleared"})
        return
    data = state().api.call("sandbox", "PUT", path, auth=NONE, json=given(**faults))
    out().record(data)


@sandbox.command("messages")
@click.option("--to", help="Only to this customer.")
@click.option("--number", "phone_number_id", help="Only from this phone number id.")
def sandbox_messages(to: str | None, phone_number_id: str | None) -> None:
    """What the sandbox (as Meta) was asked to send."""
    rows = state().api.pages(
        "sandbox",
        "/sandbox/messages",
        auth=NONE,
        params={"to": to, "phone_number_id": phone_number_id},
    )
    out().table(rows, ("id", "to", "type", "status", "template"))
