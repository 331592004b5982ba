"""Tools of the fault suite: servers of its own to break, a TCP proxy, the platform as
processes, seeding, signed webhooks, and the figures every scenario reports.

Nothing here touches the shared RabbitMQ, Redis or PostgreSQL on their standard ports
(other suites run on them): the suite starts its own RabbitMQ node and Redis server on
free ports, with data under a temp dir, and kills, pauses or alarms only those. The
PostgreSQL it uses is the shared one, but only a database of its own, whose backends
alone it terminates.

::

    test ──▶ TcpProxy (optional, per service) ──▶ RabbitNode  (own node, own port)
      │                                            RedisNode   (own redis-server)
      └──▶ FaultStack: sandbox, tenant, state-manager, sender, conversation, gateway
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import asyncpg
import httpx

from flowchat_platform import testing
from stackkit import ProcessStack

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
#: Ports the RabbitMQ CLI tools take for their own distribution (25672 + 10000 ...).
_CLI_DIST_PORTS = range(35672, 35700)


def free_port() -> int:
    """The platform's (never the same port twice), outside the CLI tools' ports."""
    while True:
        port = testing.free_port()
        if port not in _CLI_DIST_PORTS and port + 1 not in _CLI_DIST_PORTS:
            return port


def port_answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.3):
        return True
    return False


# --------------------------------------------------------------------------- RabbitMQ


class RabbitNode:
    """A RabbitMQ node of the suite's own: own name, ports, cookie, data and logs."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"flowchat-faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        home = base / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text("FAULTS" + secrets.token_hex(16))
        cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(base / "beam.pid"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, vhost: str = "/") -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def start(self, timeout_s: float = 60) -> float:
        """Start (or restart on the same data) and wait until it accepts AMQP; seconds taken."""
        started = time.monotonic()
        log = open(self.base / "server.out", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [str(RABBIT_BIN / "rabbitmq-server")],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base,
        )
        log.close()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"rabbitmq node exited: {(self.base / 'server.out').read_text()[-2000:]}"
                )
            if port_answers(self.port):
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError("own rabbitmq node did not start")

    def beam_pid(self) -> int:
        return int((self.base / "beam.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, not a shutdown."""
        os.kill(self.beam_pid(), signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        out = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, "-q", *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return out.stdout

    def add_vhost(self) -> str:
        vhost = f"faults-{uuid.uuid4().hex[:8]}"
        self.ctl("add_vhost", vhost)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost

    def consumers(self, vhost: str) -> dict[str, int]:
        """Queue name → consumer count."""
        return self._per_queue(vhost, "consumers")

    def messages(self, vhost: str) -> dict[str, int]:
        """Queue name → messages in it."""
        return self._per_queue(vhost, "messages")

    def _per_queue(self, vhost: str, column: str) -> dict[str, int]:
        out = self.ctl("list_queues", "-p", vhost, "name", column, "--no-table-headers")
        counts: dict[str, int] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
        return counts

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.ctl("stop", timeout=30)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError, ValueError):
                os.kill(self.beam_pid(), signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- Redis


class RedisNode:
    """A redis-server of the suite's own (no persistence), to pause and stop."""

    def __init__(self, base: Path) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        with open(self.base / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    exe,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.base),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not port_answers(self.port):
            assert time.monotonic() < deadline, "own redis-server did not start"
            time.sleep(0.05)

    def command(self, *args: str) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=5)
        try:
            client.execute_command(*args)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A TCP proxy on its own thread and event loop, whose links a test can break.

    Modes: ``pass``; ``stall`` (bytes from clients whose connection matches
    ``match`` are held, nothing is closed: a silent network); ``cut`` (every
    connection is closed and new ones are refused until ``pass``).
    ``match`` selects connections by bytes seen in their first client packets (AMQP
    clients name their connections there, e.g. ``b"sender-publish"``).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode = "pass"
        self.match: bytes | None = None
        self._loop = asyncio.new_event_loop()
        self._links: set[_Link] = set()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="faults-proxy")
        self._server: asyncio.AbstractServer | None = None

    def url(self, vhost: str) -> str:
        from urllib.parse import quote

        return f"amqp://guest:guest@127.0.0.1:{self.port}/{quote(vhost, safe='')}"

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def set(self, mode: str, match: bytes | None = None) -> None:
        def apply() -> None:
            self.mode, self.match = mode, match
            for link in list(self._links):
                link.update(self)

        self._loop.call_soon_threadsafe(apply)
        time.sleep(0.05)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        link = _Link(reader, writer, up_r, up_w)
        self._links.add(link)
        link.update(self)
        try:
            await link.run()
        finally:
            self._links.discard(link)


class _Link:
    def __init__(
        self,
        c_r: asyncio.StreamReader,
        c_w: asyncio.StreamWriter,
        u_r: asyncio.StreamReader,
        u_w: asyncio.StreamWriter,
    ) -> None:
        self.c_r, self.c_w, self.u_r, self.u_w = c_r, c_w, u_r, u_w
        self.head = b""
        self.flowing = asyncio.Event()
        self.flowing.set()

    def matches(self, match: bytes | None) -> bool:
        return match is None or match in self.head

    def update(self, proxy: TcpProxy) -> None:
        if proxy.mode == "cut" and self.matches(proxy.match):
            self.close()
        elif proxy.mode == "stall" and self.matches(proxy.match):
            self.flowing.clear()
        else:
            self.flowing.set()

    def close(self) -> None:
        for w in (self.c_w, self.u_w):
            with contextlib.suppress(Exception):
                w.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, up: bool) -> None:
        try:
            while data := await r.read(65536):
                if up and len(self.head) < 4096:
                    self.head += data[: 4096 - len(self.head)]
                await self.flowing.wait()
                w.write(data)
                await w.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.close()

    async def run(self) -> None:
        await asyncio.gather(
            self._pipe(self.c_r, self.u_w, True), self._pipe(self.u_r, self.c_w, False)
        )


# --------------------------------------------------------------------------- the platform


def _override(name: str) -> dict[str, str]:
    """``FLOWCHAT_FAULTS_PYTHONPATH_<SERVICE>`` puts code ahead of the installed packages
    of one service: how the suite is shown to fail against a deliberately broken build."""
    path = os.environ.get("FLOWCHAT_FAULTS_PYTHONPATH_" + name.upper().replace("-", "_"))
    return {"PYTHONPATH": path} if path else {}


@dataclass
class FaultStack(ProcessStack):
    """The platform as processes (``stackkit.ProcessStack``, as every suite starts it) on
    ports clear of the RabbitMQ CLI tools', plus stop/kill/restart of one service and a
    per-service code override (``FLOWCHAT_FAULTS_PYTHONPATH_<SERVICE>``)."""

    exit_codes: dict[str, list[int | None]] = field(default_factory=dict)
    restarts: int = 0

    @staticmethod
    def free_port() -> int:
        return free_port()

    def secrets(self) -> list[str]:
        return [
            self.env[k]
            for k in (
                "FLOWCHAT_SERVICE_TOKEN",
                "FLOWCHAT_OPERATOR_KEY",
                "FLOWCHAT_TENANT_ENCRYPTION_KEYS",
            )
        ]

    def child_env(self, name: str) -> dict[str, str]:
        return {**super().child_env(name), **_override(name)}

    def spawn(self, name: str) -> None:
        super().spawn(name)
        RUN.log_files.add(self.logs[name])

    def stop(self, timeout_s: float = 40) -> dict[str, int | None]:
        """Keep every live service's ``/metrics`` (``<name>.metrics``: scanned for
        personal data at the end of the run), then stop them all."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(f"{self.urls[name]}/metrics", timeout=5)
                if r.status_code == 200:
                    path = self.tmp / f"{name}.metrics"
                    path.write_text(r.text)
                    RUN.metrics_files.add(path)
        return super().stop(timeout_s)

    def terminate(self, name: str, timeout_s: float = 40) -> tuple[int | None, float]:
        code, took = super().terminate(name, timeout_s)
        self.exit_codes.setdefault(name, []).append(code)
        return code, took

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.kill()
        proc.wait(10)
        self.exit_codes.setdefault(name, []).append(-9)

    def restart(self, name: str, env: dict[str, str] | None = None) -> float:
        if env is not None:
            self.service_env[name] = env
        self.restarts += 1
        return super().restart(name)


# --------------------------------------------------------------------------- personal data


#: A BSUID (``US.13491208655302741918``, ``NG.ENT.1234…``).
BSUID = re.compile(r"\b[A-Z]{2}\.(?:ENT\.)?[0-9]{10,}\b")
#: Names and texts shorter than this are words any log has ("Hi", "Load").
MIN_TEXT = 8
#: Phone numbers have at least this many digits (shorter ids are not scanned).
MIN_PHONE_DIGITS = 8


@dataclass
class PersonalData:
    """Every customer's phone number, BSUID, profile name and message text the fault
    run sent (read from the requests themselves: the gateway's send API and webhooks,
    the sandbox's customer messages), every service log file and every ``/metrics``
    snapshot of the run: what the last test of the run scans (test_security_secrets)."""

    #: digits of each customer's phone number → where it was seen first
    phones: dict[str, str] = field(default_factory=dict)
    bsuids: dict[str, str] = field(default_factory=dict)
    #: names and message texts (``MIN_TEXT`` characters or more)
    texts: dict[str, str] = field(default_factory=dict)
    #: the tenants' own numbers (not customers': they may be logged)
    business: set[str] = field(default_factory=set)
    log_files: set[Path] = field(default_factory=set)
    metrics_files: set[Path] = field(default_factory=set)

    def customer(self, value: object, where: str) -> None:
        """A customer's id: a phone number (``+``, ``whatsapp:`` dropped) or a BSUID."""
        if not isinstance(value, str) or not value:
            return
        value = value.removeprefix("whatsapp:")
        if BSUID.fullmatch(value):
            self.bsuids.setdefault(value, where)
            return
        digits = value.lstrip("+")
        if digits.isdigit() and len(digits) >= MIN_PHONE_DIGITS:
            self.phones.setdefault(digits, where)

    def text(self, value: object, where: str) -> None:
        if isinstance(value, str) and len(value.strip()) >= MIN_TEXT:
            self.texts.setdefault(value, where)

    def observe(self, method: str, path: str, body: bytes) -> None:
        """Record the personal data of one request the suite makes."""
        if method != "POST":
            return
        if path.startswith("/sandbox/customers/"):
            self.customer(unquote(path.split("/")[3]), "sandbox customer")
            self.text(_json(body).get("text"), "sandbox customer text")
        elif path == "/v1/messages":
            doc = _json(body)
            self.customer(doc.get("to"), "send API to")
            content = doc.get("content")
            if isinstance(content, dict):
                self.text(content.get("body"), "send API text")
        elif path == "/webhooks/meta":
            self._meta(_json(body))
        elif path.startswith("/webhooks/twilio"):
            form = parse_qs(body.decode(errors="replace"))
            for value in form.get("From", []):
                self.customer(value, "Twilio webhook From")
            for value in form.get("ProfileName", []):
                self.text(value, "Twilio webhook name")
            for value in form.get("Body", []):
                self.text(value, "Twilio webhook text")

    def _meta(self, doc: dict[str, Any]) -> None:
        for entry in doc.get("entry") or []:
            for change in (entry or {}).get("changes") or []:
                value = (change or {}).get("value") or {}
                for c in value.get("contacts") or []:
                    self.customer(c.get("wa_id"), "webhook contact")
                    self.customer(c.get("user_id"), "webhook contact")
                    self.text((c.get("profile") or {}).get("name"), "webhook profile name")
                for m in value.get("messages") or []:
                    self.customer(m.get("from"), "webhook message")
                    self.customer(m.get("from_user_id"), "webhook message")
                    self.text((m.get("text") or {}).get("body"), "webhook text")
                for s in value.get("statuses") or []:
                    self.customer(s.get("recipient_id"), "webhook status")
                    self.customer(s.get("recipient_user_id"), "webhook status")

    def customer_phones(self) -> dict[str, str]:
        return {p: w for p, w in self.phones.items() if p not in self.business}


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


#: The run's personal data, log files and metrics (filled as the suite goes).
RUN = PersonalData()


def observe_request(request: httpx.Request) -> None:
    """Record a request's personal data in :data:`RUN` (a body not read is skipped)."""
    try:
        body = request.content
    except httpx.RequestNotRead:
        return
    with contextlib.suppress(Exception):  # never fail a scenario over its bookkeeping
        RUN.observe(request.method, request.url.path, body)


# --------------------------------------------------------------------------- seeding


@dataclass
class Tenant:
    tenant_id: str
    account_id: str
    phone_number_id: str
    waba_id: str
    display: str
    access_token: str
    app_secret: str
    verify_token: str
    api_key: str

    def secrets(self) -> list[str]:
        return [self.access_token, self.app_secret, self.verify_token, self.api_key]


async def seed_tenant(
    client: httpx.AsyncClient, stack: FaultStack, *, throughput_mps: int | None = None
) -> Tenant:
    """A tenant with one Meta number registered at the sandbox, an API key, a catalog."""
    suffix = f"{secrets.randbelow(10**6):06d}"
    phone_number_id = f"1099{suffix}{secrets.randbelow(100):02d}"
    waba_id = f"2099{suffix}"
    display = f"+1555{suffix}0"
    RUN.business.add(display.lstrip("+"))
    access_token = "EAAG" + secrets.token_urlsafe(32)
    app_secret = secrets.token_hex(16)
    verify_token = secrets.token_urlsafe(16)
    number: dict[str, Any] = {
        "phone_number_id": phone_number_id,
        "waba_id": waba_id,
        "display_phone_number": display,
        "verified_name": "Faults Hardware",
        "access_token": access_token,
        "app_secret": app_secret,
        "webhook_url": f"{stack.urls['gateway']}/webhooks/meta",
    }
    if throughput_mps:
        number["throughput_mps"] = throughput_mps
    r = await client.post(f"{stack.urls['sandbox']}/sandbox/numbers", json=number)
    assert r.status_code in (200, 201), r.text
    operator = {"Authorization": f"Bearer {stack.env['FLOWCHAT_OPERATOR_KEY']}"}
    r = await client.post(
        f"{stack.urls['tenant']}/v1/tenants",
        headers=operator,
        json={
            "name": f"faults-{suffix}",
            "business_name": "Faults Hardware",
            "timezone": "UTC",
            "locale": "en",
            "currency": "USD",
            "tax_rate": "0.1",
        },
    )
    assert r.status_code in (200, 201), r.text
    tenant_id = r.json()["tenant_id"]
    r = await client.post(
        f"{stack.urls['tenant']}/v1/tenants/{tenant_id}/accounts",
        headers=operator,
        json={
            "provider": "meta",
            "phone_number_id": phone_number_id,
            "waba_id": waba_id,
            "display_phone_number": display,
            "app_id": f"3099{suffix}",
            "app_secret": app_secret,
            "verify_token": verify_token,
            "access_token": access_token,
            **({"throughput_mps": throughput_mps} if throughput_mps else {}),
        },
    )
    assert r.status_code in (200, 201), r.text
    account_id = r.json()["account_id"]
    r = await client.post(
        f"{stack.urls['tenant']}/v1/tenants/{tenant_id}/api-keys",
        headers=operator,
        json={"name": "faults", "scopes": ["send", "read", "admin"]},
    )
    assert r.status_code in (200, 201), r.text
    api_key = r.json()["key"]
    admin = {"Authorization": f"Bearer {api_key}"}
    r = await client.put(
        f"{stack.urls['conversation']}/v1/tenants/{tenant_id}/settings",
        headers=admin,
        json={"business_name": "Faults Hardware", "currency": "USD", "tax_rate": "0.1"},
    )
    assert r.status_code in (200, 201), r.text
    r = await client.post(
        f"{stack.urls['conversation']}/v1/tenants/{tenant_id}/products",
        headers=admin,
        json=[
            {
                "sku": "CEM-50",
                "name": "Cement 50kg",
                "description": "Portland cement, 50 kg bag",
                "price": "9.50",
                "currency": "USD",
                "category": "Building",
                "stock": 500,
            }
        ],
    )
    assert r.status_code in (200, 201), r.text
    return Tenant(
        tenant_id,
        account_id,
        phone_number_id,
        waba_id,
        display,
        access_token,
        app_secret,
        verify_token,
        api_key,
    )


async def open_windows(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, customers: list[str]
) -> None:
    """Make the sandbox (Meta) see each customer write once, so WhatsApp's 24 h service
    window is open for replies, without its webhook reaching the gateway: the tests
    post their own webhooks to the gateway, to see every answer it gives."""
    sandbox = stack.urls["sandbox"]
    faults = f"{sandbox}/sandbox/numbers/{tenant.phone_number_id}/faults"
    r = await client.put(faults, json={"drop_webhooks": -1})
    assert r.status_code in (200, 204), r.text
    try:
        for wa_id in customers:
            r = await client.post(
                f"{sandbox}/sandbox/customers/{wa_id}/messages",
                json={"phone_number_id": tenant.phone_number_id, "text": "(window)"},
            )
            assert r.status_code in (200, 201), r.text
    finally:
        await client.delete(faults)


def inbound_webhook(tenant: Tenant, wa_id: str, text: str, wamid: str | None = None) -> bytes:
    """A Meta ``messages`` webhook body: one text from customer ``wa_id``."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": tenant.display.lstrip("+"),
            "phone_number_id": tenant.phone_number_id,
        },
        "contacts": [{"profile": {"name": "Load"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid or f"wamid.FAULTS{uuid.uuid4().hex}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": tenant.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
    ).encode()


def status_webhook(tenant: Tenant, wamid: str, status: str, recipient: str, ts: int) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": tenant.display.lstrip("+"),
            "phone_number_id": tenant.phone_number_id,
        },
        "statuses": [
            {"id": wamid, "status": status, "timestamp": str(ts), "recipient_id": recipient}
        ],
    }
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": tenant.waba_id, "changes": [{"value": value, "field": "messages"}]}],
        }
    ).encode()


def sign(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


async def ledger(client: httpx.AsyncClient, stack: FaultStack, **params: str) -> list[Any]:
    r = await client.get(f"{stack.urls['sandbox']}/sandbox/messages", params=params)
    r.raise_for_status()
    data = r.json()
    return list(data.get("messages", data) if isinstance(data, dict) else data)


def duplicates(entries: list[dict[str, Any]]) -> int:
    """Sends beyond the first for one internal message id (biz_opaque_callback_data)."""
    seen: dict[str, int] = {}
    for e in entries:
        key = e.get("biz_opaque_callback_data")
        if key:
            seen[key] = seen.get(key, 0) + 1
    return sum(n - 1 for n in seen.values() if n > 1)


async def terminate_backends(database_url: str) -> int:
    """``pg_terminate_backend`` for every backend of this test's own database only."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    assert name.startswith("flowchat_test_"), name
    admin = await asyncpg.connect(urlunsplit((*parts[:2], "/postgres", "", "")))
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
    finally:
        await admin.close()
    return len(rows)


async def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.2, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(interval_s)


# --------------------------------------------------------------------------- clients


@dataclass
class Attempt:
    """One webhook POST of a scenario: who, when, and the gateway's answer (0: no answer)."""

    wa_id: str
    started: float
    ended: float
    status: int


async def post_webhook(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, body: bytes
) -> int:
    """POST a signed Meta webhook to the gateway; its status code (0 when it did not answer)."""
    try:
        r = await client.post(
            f"{stack.urls['gateway']}/webhooks/meta",
            content=body,
            headers=sign(tenant.app_secret, body),
        )
    except httpx.TransportError:
        return 0
    return r.status_code


async def deliver_until_accepted(
    client: httpx.AsyncClient,
    stack: FaultStack,
    tenant: Tenant,
    body: bytes,
    wa_id: str,
    attempts: list[Attempt],
    *,
    deadline_s: float = 90,
) -> bool:
    """Post one webhook like Meta does: the same body again and again until a 200."""
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        started = time.monotonic()
        status = await post_webhook(client, stack, tenant, body)
        attempts.append(Attempt(wa_id, started, time.monotonic(), status))
        if status == 200:
            return True
        await asyncio.sleep(0.3)
    return False


async def sends_per_recipient(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant
) -> dict[str, int]:
    """Ledger rows of the tenant's number, by recipient."""
    counts: dict[str, int] = {}
    for entry in await ledger(client, stack, phone_number_id=tenant.phone_number_id):
        counts[entry["to"]] = counts.get(entry["to"], 0) + 1
    return counts


async def baseline_replies(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, wa_id: str = "15550000001"
) -> int:
    """How many messages the bot sends to a new customer's "Hi" (nothing broken)."""
    await open_windows(client, stack, tenant, [wa_id])
    body = inbound_webhook(tenant, wa_id, "Hi")
    assert await deliver_until_accepted(client, stack, tenant, body, wa_id, [], deadline_s=20)

    async def replied() -> int:
        return (await sends_per_recipient(client, stack, tenant)).get(wa_id, 0)

    await wait_for(replied, timeout_s=30, what="baseline reply")
    await asyncio.sleep(1.5)  # a reply may come in several messages
    return await replied()


async def api_send(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, to: str, text: str
) -> str:
    """A text through the gateway's send API (202); the message id."""
    r = await client.post(
        f"{stack.urls['gateway']}/v1/messages",
        headers={"Authorization": f"Bearer {tenant.api_key}", "Idempotency-Key": uuid.uuid4().hex},
        json={"account_id": tenant.account_id, "to": to, "content": {"type": "text", "body": text}},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["message_id"])


async def message_state(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, message_id: str, what: str = ""
) -> Any:
    """The state-manager's record of a message (``what="/events"``: its history); None if
    it has none."""
    r = await client.get(
        f"{stack.urls['state-manager']}/v1/messages/{message_id}{what}",
        headers={
            "Authorization": f"Bearer {stack.env['FLOWCHAT_SERVICE_TOKEN']}",
            "X-Tenant-ID": tenant.tenant_id,
        },
    )
    return r.json() if r.status_code == 200 else None


async def set_faults(
    client: httpx.AsyncClient, stack: FaultStack, tenant: Tenant, **faults: Any
) -> None:
    """The sandbox's faults for the tenant's number (none given: cleared)."""
    url = f"{stack.urls['sandbox']}/sandbox/numbers/{tenant.phone_number_id}/faults"
    r = await (client.put(url, json=faults) if faults else client.delete(url))
    assert r.status_code in (200, 204), r.text


async def scrape(client: httpx.AsyncClient, stack: FaultStack, service: str) -> str:
    r = await client.get(f"{stack.urls[service]}/metrics")
    r.raise_for_status()
    return r.text


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus sample family's values whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What one scenario reports: the suite prints them and the summary table."""

    scenario: str
    sent: int = 0
    processed: int = 0
    lost: int = 0
    duplicated: int = 0
    recover_s: float | None = None
    notes: str = ""
    outcome: str = "?"

    def line(self) -> str:
        rec = "-" if self.recover_s is None else f"{self.recover_s:.1f}s"
        return (
            f"[faults] {self.scenario}: sent={self.sent} processed={self.processed} "
            f"lost={self.lost} duplicated={self.duplicated} recover={rec} {self.notes}"
        )


@dataclass
class Collector:
    figures: list[Figures] = field(default_factory=list)

    def new(self, scenario: str) -> Figures:
        fig = Figures(scenario)
        self.figures.append(fig)
        return fig

    def table(self) -> Iterator[str]:
        header = (
            f"{'scenario':<44} {'sent':>6} {'proc':>6} {'lost':>5} {'dup':>4} "
            f"{'recover':>8}  outcome"
        )
        yield header
        yield "-" * len(header)
        for f in self.figures:
            rec = "-" if f.recover_s is None else f"{f.recover_s:.1f}s"
            yield (
                f"{f.scenario[:44]:<44} {f.sent:>6} {f.processed:>6} {f.lost:>5} "
                f"{f.duplicated:>4} {rec:>8}  {f.outcome}"
            )
            if f.notes:
                yield f"    {f.notes}"
