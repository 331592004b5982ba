"""``python -m flowchat_conversation campaign …``: campaigns from the terminal, over the HTTP API.

::

    campaign create FILE [--dry-run] [--start]   FILE: the campaign JSON ('-' = stdin)
    campaign start|pause|resume|cancel ID
    campaign watch ID [--interval S]             live progress until it completes

Connection: ``--url`` (``FLOWCHAT_CONVERSATION_URL``, default http://127.0.0.1:8702),
``--tenant`` (``FLOWCHAT_TENANT_ID``), ``--token`` (``FLOWCHAT_API_KEY``, a tenant key with
the ``admin`` scope, else ``FLOWCHAT_SERVICE_TOKEN``). Exit status: 0 done, 1 refused
(the API's error is printed), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
TERMINAL = ("completed", "cancelled")


class ApiRefused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str, tenant: str, token: str) -> None:
        self._session = session
        self._base = f"{url.rstrip('/')}/v1/tenants/{tenant}"
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(
            method, self._base + path, json=body, headers=self._headers
        ) as r:
            data = await r.json(content_type=None)
            if r.status >= 400:
                raise ApiRefused(r.status, data)
            return data


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m flowchat_conversation",
        description="Without arguments: run the conversation service. With them: the CLI.",
    )
    p.add_argument(
        "--url", default=os.environ.get("FLOWCHAT_CONVERSATION_URL", "http://127.0.0.1:8702")
    )
    p.add_argument("--tenant", default=os.environ.get("FLOWCHAT_TENANT_ID"))
    p.add_argument(
        "--token",
        default=os.environ.get("FLOWCHAT_API_KEY") or os.environ.get("FLOWCHAT_SERVICE_TOKEN"),
    )
    top = p.add_subparsers(dest="group", required=True)
    campaign = top.add_parser("campaign", help="create, start, pause and watch campaigns")
    sub = campaign.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a campaign from a JSON file")
    create.add_argument("file")
    create.add_argument("--dry-run", action="store_true", help="check and preview only")
    create.add_argument("--start", action="store_true", help="start it once created")
    for name in ("start", "pause", "resume", "cancel"):
        sub.add_parser(name, help=f"{name} a campaign").add_argument("campaign_id")
    watch = sub.add_parser("watch", help="live progress until the campaign completes")
    watch.add_argument("campaign_id")
    watch.add_argument("--interval", type=float, default=1.0)
    watch.add_argument(
        "--timeout", type=float, default=0, help="give up after S seconds (0: never)"
    )
    return p


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


async def watch(
    client: Client, campaign_id: str, interval: float, give_up_s: float
) -> dict[str, Any]:
    """Show a progress bar (recipients handled / targeted) and the live counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s if give_up_s else None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(campaign_id, total=None, counts="")
        while True:
            m = await client.call("GET", f"/campaigns/{campaign_id}/metrics")
            excluded = sum(m["excluded"].values())
            counts = (
                f"{m['status']} · queued {m['queued']} sent {m['sent']} "
                f"delivered {m['delivered']} read {m['read']} failed {m['failed']} "
                f"replied {m['replied']} excluded {excluded}"
            )
            progress.update(
                task, total=m["targeted"], completed=m["queued"] + excluded, counts=counts
            )
            if m["status"] in TERMINAL:
                return dict(m)
            if deadline is not None and loop.time() > deadline:
                return dict(m)
            await asyncio.sleep(interval)


async def run(args: argparse.Namespace) -> int:
    if not args.tenant or not args.token:
        console.print(
            "--tenant and --token (or FLOWCHAT_TENANT_ID and FLOWCHAT_API_KEY) are needed"
        )
        return 2
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        client = Client(session, args.url, args.tenant, args.token)
        try:
            if args.command == "create":
                text = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115, ASYNC230
                body = json.loads(text)
                if args.dry_run:
                    _print(await client.call("POST", "/campaigns/dry-run", body))
                    return 0
                created = await client.call("POST", "/campaigns", body)
                if args.start:
                    created = await client.call(
                        "POST", f"/campaigns/{created['campaign_id']}/start"
                    )
                _print(created)
            elif args.command == "watch":
                final = await watch(client, args.campaign_id, args.interval, args.timeout)
                _print(final)
                return 0 if final["status"] in TERMINAL else 1
            else:
                _print(await client.call("POST", f"/campaigns/{args.campaign_id}/{args.command}"))
        except ApiRefused as exc:
            console.print(f"[red]refused ({exc.status})[/red]")
            _print(exc.body)
            return 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            console.print(f"[red]cannot reach {args.url}: {exc!r}[/red]")
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(run(args))
