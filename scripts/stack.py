#!/usr/bin/env python3
"""FlowChat's local stack: servers (RabbitMQ, Redis, PostgreSQL), services, sandbox.

    python scripts/stack.py servers   # make sure the three servers answer (start/install them)
    python scripts/stack.py up        # servers + every service as a process, wait until ready
    python scripts/stack.py down      # stop the services (and servers this script started)
    python scripts/stack.py status    # what runs, what answers
    python scripts/stack.py logs      # tail the logs

Servers already answering on their standard local ports are used as they are.
Otherwise they are started as local processes with their data under ``.run/``,
after installing the Debian packages when missing. Everything this script writes
lives in ``.run/``: ``stack.env`` (URLs and secrets to ``source``), ``logs/``, ``pids/``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
RUN = Path(os.environ.get("FLOWCHAT_RUN_DIR", ROOT / ".run"))
LOGS, PIDS = RUN / "logs", RUN / "pids"
PY = sys.executable

# name, module, port, env prefix
SERVICES = [
    ("sandbox", "flowchat_sandbox", 8705, "FLOWCHAT_SANDBOX_"),
    ("tenant", "flowchat_tenant", 8701, "FLOWCHAT_TENANT_"),
    ("state-manager", "flowchat_state_manager", 8704, "FLOWCHAT_STATE_MANAGER_"),
    # before the services it copies history from: history begins when it first runs
    ("inbox", "flowchat_inbox", 8707, "FLOWCHAT_INBOX_"),
    # likewise: it declares (and binds) its own queues, so events exist for it from then on
    ("relay", "flowchat_relay", 8706, "FLOWCHAT_RELAY_"),
    ("sender", "flowchat_sender", 8703, "FLOWCHAT_SENDER_"),
    ("conversation", "flowchat_conversation", 8702, "FLOWCHAT_CONVERSATION_"),
    ("gateway", "flowchat_gateway", 8700, "FLOWCHAT_GATEWAY_"),
    # the web app: only HTTP calls to the services above
    ("console", "flowchat_console", 8708, "FLOWCHAT_CONSOLE_"),
]
DB_NAME = "flowchat"
# The standard ports; overridable so the start-from-nothing path can be exercised
# beside servers that already run (tests/test_e2e_stack_servers.py does).
AMQP_PORT = int(os.environ.get("FLOWCHAT_AMQP_PORT", "5672"))
REDIS_PORT = int(os.environ.get("FLOWCHAT_REDIS_PORT", "6379"))
PG_PORT = int(os.environ.get("FLOWCHAT_PG_PORT", "5432"))
RABBIT_NODE = "rabbit" if AMQP_PORT == 5672 else f"flowchat{AMQP_PORT}"


def say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def answers(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _beside(port: int, offset: int) -> int:
    """A port ``offset`` away from ``port``, kept inside the port range."""
    return port + offset if port + offset < 65536 else port - offset


def wait_port(port: int, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(port):
            return
        time.sleep(0.3)
    raise SystemExit(f"[stack] {what} did not answer on port {port} within {timeout:.0f}s")


def run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, **kw)  # type: ignore[call-overload]  # noqa: S603


def apt_install(*packages: str) -> None:
    if shutil.which("apt-get") is None:
        raise SystemExit(
            f"[stack] missing {' '.join(packages)} and there is no apt-get here: install "
            f"RabbitMQ, Redis and PostgreSQL with your package manager (or run them on "
            f"their standard ports) and try again"
        )
    say(f"installing Debian packages: {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    run([*sudo, "apt-get", "update", "-q"], env=env)
    run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)


def ensure_rabbitmq() -> None:
    if answers(AMQP_PORT):
        say(f"RabbitMQ answers on {AMQP_PORT}")
        return
    if shutil.which("rabbitmq-server") is None and not Path("/usr/sbin/rabbitmq-server").exists():
        apt_install("rabbitmq-server")
    data = RUN / "rabbitmq"
    (data / "log").mkdir(parents=True, exist_ok=True)
    # Our own config files: the system's may pin the listener or the node name.
    # Its own Prometheus port too: a system broker with rabbitmq_prometheus already holds
    # 15692 (the plugin's default), and a listener that cannot bind stops the node.
    prometheus_port = 15692 if AMQP_PORT == 5672 else _beside(AMQP_PORT, 10000)
    (data / "rabbitmq.conf").write_text(
        f"listeners.tcp.local = 127.0.0.1:{AMQP_PORT}\n"
        f"prometheus.tcp.port = {prometheus_port}\n"
        "prometheus.tcp.ip = 127.0.0.1\n"
    )
    (data / "rabbitmq-env.conf").write_text("")
    (data / "enabled_plugins").write_text("[rabbitmq_prometheus].\n")
    home = Path("/var/lib/rabbitmq")  # the Erlang cookie rabbitmqctl uses too
    env = {
        **os.environ,
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data / "log"),
        "RABBITMQ_CONFIG_FILE": str(data / "rabbitmq.conf"),
        "RABBITMQ_CONF_ENV_FILE": str(data / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(PIDS / "rabbitmq.pid"),
        "RABBITMQ_NODENAME": f"{RABBIT_NODE}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(AMQP_PORT),
        # RabbitMQ's own rule (AMQP port + 20000), kept inside the port range
        "RABBITMQ_DIST_PORT": str(_beside(AMQP_PORT, 20000)),
        **({"HOME": str(home)} if home.is_dir() else {}),
    }
    # The server script itself, not Debian's wrapper (which switches user and ignores
    # where we want the data): it runs in the background as this user.
    direct = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
    say("starting RabbitMQ (data in .run/rabbitmq)")
    with open(data / "log" / "server.out", "ab") as out:
        subprocess.Popen(  # noqa: S603
            [str(direct) if direct.exists() else "rabbitmq-server"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (RUN / "started-rabbitmq").touch()
    wait_port(AMQP_PORT, "RabbitMQ", timeout=90)


def ensure_redis() -> None:
    if answers(REDIS_PORT):
        say(f"Redis answers on {REDIS_PORT}")
        return
    if shutil.which("redis-server") is None:
        apt_install("redis-server")
    data = RUN / "redis"
    data.mkdir(parents=True, exist_ok=True)
    say("starting Redis (data in .run/redis)")
    run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--pidfile",
            str(PIDS / "redis.pid"),
            "--logfile",
            str(LOGS / "redis.log"),
        ]
    )
    (RUN / "started-redis").touch()
    wait_port(REDIS_PORT, "Redis")


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def ensure_postgres() -> None:
    if answers(PG_PORT):
        say(f"PostgreSQL answers on {PG_PORT}")
        return
    if _pg_bin() is None:
        apt_install("postgresql")
    bindir = _pg_bin()
    assert bindir is not None
    data = RUN / "postgres"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if as_user:
            shutil.chown(data, "postgres")
            os.chmod(RUN, 0o755)  # noqa: S103 - the postgres user must reach its data dir
        say("initialising PostgreSQL in .run/postgres (trust auth on 127.0.0.1)")
        run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        )
    say("starting PostgreSQL (data in .run/postgres)")
    logfile = data / "server.log"
    run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(logfile),
            "-w",
            "-o",
            f"-p {PG_PORT} -c listen_addresses=127.0.0.1 -k {data}",
            "start",
        ]
    )
    (RUN / "started-postgres").touch()
    wait_port(PG_PORT, "PostgreSQL")


def ensure_database(dsn_base: str) -> None:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(dsn_base + "postgres")
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", DB_NAME)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
                say(f"created database {DB_NAME}")
        finally:
            await conn.close()

    asyncio.run(create())


#: The least-privilege publisher ``make up`` creates (docs/broker-access.md): it may
#: publish to ``flowchat.outbound`` and nothing else — declare nothing, read nothing,
#: write to no other exchange or queue. (configure, write, read) regexes of RabbitMQ's
#: ``set_permissions``.
PUBLISHER_USER = "flowchat-publisher"
PUBLISHER_PERMISSIONS = ("^$", r"^flowchat\.outbound$", "^$")


def rabbitmqctl(*args: str) -> None:
    """``rabbitmqctl`` against the broker this stack uses (its own node when it started one)."""
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    node = ["-n", f"{RABBIT_NODE}@localhost"] if (RUN / "started-rabbitmq").exists() else []
    subprocess.run([exe, *node, "-q", *args], check=True, capture_output=True, timeout=60)  # noqa: S603


def ensure_publisher_user(
    vhost: str = "/", user: str = PUBLISHER_USER, password: str | None = None
) -> str:
    """Create (or reset) the least-privilege publisher on ``vhost``; its AMQP URL.

    The password is generated once per checkout and kept in ``.run/publisher.secret``
    unless one is given."""
    if password is None:
        path = RUN / "publisher.secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        password = path.read_text().strip()
    try:
        rabbitmqctl("add_user", user, password)
    except subprocess.CalledProcessError:  # there already: same name, the password again
        rabbitmqctl("change_password", user, password)
    rabbitmqctl("set_permissions", "-p", vhost, user, *PUBLISHER_PERMISSIONS)
    return f"amqp://{user}:{quote(password, safe='')}@127.0.0.1:{AMQP_PORT}/{quote(vhost, safe='')}"


#: The Debian browser the console's browser tests drive (Playwright with
#: executable_path): installed like the servers, never downloaded by a test.
CHROMIUM = Path("/usr/bin/chromium")


def ensure_browser() -> None:
    """The Debian ``chromium`` package (``make test``: the console's browser tests)."""
    if CHROMIUM.exists() or shutil.which("chromium"):
        return
    apt_install("chromium", "fonts-dejavu-core")


def servers() -> None:
    for d in (RUN, LOGS, PIDS):
        d.mkdir(parents=True, exist_ok=True)
    ensure_rabbitmq()
    ensure_redis()
    ensure_postgres()


def new_secrets() -> dict[str, str]:
    """Fresh service token, operator key and encryption keys (Fernet keys: the tenant's
    credentials, the relay's endpoint secrets)."""
    return {
        "FLOWCHAT_SERVICE_TOKEN": secrets.token_urlsafe(32),
        "FLOWCHAT_OPERATOR_KEY": secrets.token_urlsafe(32),
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "FLOWCHAT_RELAY_ENCRYPTION_KEYS": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        # the payment provider's webhook signatures (the sandbox's emulator locally)
        "FLOWCHAT_PAYMENTS_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        # the keyed blind index of customers' ids (erased customers' suppression entries)
        "FLOWCHAT_PRIVACY_KEY": secrets.token_urlsafe(32),
    }


def _secrets() -> dict[str, str]:
    """Generated once per checkout and kept: the database holds data encrypted with them."""
    path = RUN / "secrets.env"
    if not path.exists():
        path.write_text("".join(f"{k}={v}\n" for k, v in new_secrets().items()))
        path.chmod(0o600)
    kept = dict(line.split("=", 1) for line in path.read_text().split())
    missing = {k: v for k, v in new_secrets().items() if k not in kept}
    if missing:  # a secret added since this checkout's were generated (never a changed one)
        with path.open("a") as out:
            out.write("".join(f"{k}={v}\n" for k, v in missing.items()))
        kept.update(missing)
    return kept


def wiring_env(ports: dict[str, int]) -> dict[str, str]:
    """How the processes find each other: every service URL, the provider URLs pointed at
    the sandbox, and each service's HTTP port. Shared by ``make up`` and the test stacks."""
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        "FLOWCHAT_GATEWAY_URL": url["gateway"],
        "FLOWCHAT_GATEWAY_PUBLIC_URL": url["gateway"],
        "FLOWCHAT_SANDBOX_URL": url["sandbox"],
        "FLOWCHAT_TENANT_URL": url["tenant"],
        "FLOWCHAT_STATE_URL": url["state-manager"],
        "FLOWCHAT_CONVERSATION_URL": url["conversation"],
        "FLOWCHAT_SENDER_URL": url["sender"],
        "FLOWCHAT_INBOX_URL": url["inbox"],
        "FLOWCHAT_RELAY_URL": url["relay"],
        "FLOWCHAT_CONSOLE_URL": url["console"],
        "FLOWCHAT_SENDER_GRAPH_URL": url["sandbox"],
        "FLOWCHAT_SENDER_TWILIO_URL": url["sandbox"],
        "FLOWCHAT_TENANT_GRAPH_URL": url["sandbox"],
        "FLOWCHAT_CONVERSATION_GRAPH_URL": url["sandbox"],
        "FLOWCHAT_GATEWAY_GRAPH_URL": url["sandbox"],
        # the sandbox's payment-provider emulator and its webhook back to FlowChat
        "FLOWCHAT_CONVERSATION_PAYMENT_PROVIDER_URL": url["sandbox"] + "/payments",
        "FLOWCHAT_CONVERSATION_PAYMENT_PROVIDER_KEY": "sandbox-payments",
        "FLOWCHAT_SANDBOX_PAYMENTS_WEBHOOK_URL": url["conversation"] + "/v1/payments/webhook",
    }
    for name, _, _, prefix in SERVICES:
        env[f"{prefix}HTTP_PORT"] = str(ports[name])
    return env


#: Settings of a stack on one machine (``make up`` and the test stacks), not of a
#: deployment: webhook receivers run on loopback beside the relay (the demo's, the
#: tests'), so the relay may deliver to private addresses (refused in production).
LOCAL_SETTINGS = {"FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS": "true"}


def stack_env() -> dict[str, str]:
    return {
        "FLOWCHAT_ENV": "development",
        **LOCAL_SETTINGS,
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{PG_PORT}/{DB_NAME}",
        **wiring_env({name: port for name, _, port, _ in SERVICES}),
        **_secrets(),
    }


def write_env(env: dict[str, str]) -> Path:
    path = RUN / "stack.env"
    path.write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))
    path.chmod(0o600)
    return path


def pid_of(name: str) -> int | None:
    path = PIDS / f"{name}.pid"
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        return None
    return pid


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def up() -> None:
    servers()
    env = stack_env()
    ensure_database(f"postgresql://postgres@127.0.0.1:{PG_PORT}/")
    try:
        env["FLOWCHAT_PUBLISHER_AMQP_URL"] = ensure_publisher_user()
        say(f"publisher user {PUBLISHER_USER}: may publish to flowchat.outbound only")
    except (OSError, subprocess.SubprocessError) as exc:
        say(f"publisher user not created (rabbitmqctl: {exc!r}); see docs/broker-access.md")
    path = write_env(env)
    for name, module, port, _ in SERVICES:
        if pid_of(name):
            say(f"{name} already running (pid {pid_of(name)})")
            continue
        if answers(port):
            raise SystemExit(f"[stack] port {port} for {name} is taken by another process")
        log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(  # noqa: S603
            [PY, "-m", module, "serve"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (PIDS / f"{name}.pid").write_text(str(proc.pid))
        say(f"started {name} (pid {proc.pid}, port {port}, log .run/logs/{name}.log)")
    deadline = time.monotonic() + 90
    pending = {name: port for name, _, port, _ in SERVICES}
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            if ready(port):
                del pending[name]
            elif pid_of(name) is None:
                tail = (LOGS / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"[stack] {name} exited during start-up:\n{tail}")
        time.sleep(0.3)
    if pending:
        raise SystemExit(f"[stack] not ready after 90 s: {', '.join(pending)} (see .run/logs)")
    say(f"all services ready; environment in {path.relative_to(ROOT)}")


def down() -> None:
    for name, *_ in reversed(SERVICES):
        pid = pid_of(name)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            for _ in range(100):
                if pid_of(name) is None:
                    break
                time.sleep(0.2)
            else:
                os.killpg(pid, signal.SIGKILL)
            say(f"stopped {name}")
        (PIDS / f"{name}.pid").unlink(missing_ok=True)
    if (RUN / "started-redis").exists():
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"])
        (RUN / "started-redis").unlink()
        say("stopped Redis")
    if (RUN / "started-rabbitmq").exists():
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            run(["rabbitmqctl", "-n", f"{RABBIT_NODE}@localhost", "stop"])
        (RUN / "started-rabbitmq").unlink()
        say("stopped RabbitMQ")
    if (RUN / "started-postgres").exists():
        bindir = _pg_bin()
        as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if bindir:
            with contextlib.suppress(subprocess.CalledProcessError):
                run(
                    [
                        *as_user,
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(RUN / "postgres"),
                        "-m",
                        "fast",
                        "stop",
                    ]
                )
        (RUN / "started-postgres").unlink()
        say("stopped PostgreSQL")


def status() -> None:
    for what, port in (("RabbitMQ", AMQP_PORT), ("Redis", REDIS_PORT), ("PostgreSQL", PG_PORT)):
        print(f"{what:14} port {port:5}  {'up' if answers(port) else 'DOWN'}")
    for name, _, port, _ in SERVICES:
        pid = pid_of(name)
        state = "ready" if ready(port) else ("starting/not ready" if pid else "stopped")
        print(f"{name:14} port {port:5}  pid {pid or '-':>7}  {state}")


def logs() -> None:
    files = [str(LOGS / f"{name}.log") for name, *_ in SERVICES if (LOGS / f"{name}.log").exists()]
    if not files:
        say("no logs yet: run make up")
        return
    follow = [] if os.environ.get("CI") else ["-f"]
    os.execvp("tail", ["tail", "-n", "50", *follow, *files])  # noqa: S606, S607


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "command", choices=["servers", "browser", "up", "down", "status", "logs", "env"]
    )
    args = parser.parse_args()
    if args.command == "env":
        RUN.mkdir(parents=True, exist_ok=True)
        print(write_env(stack_env()))
        return
    {
        "servers": servers,
        "browser": ensure_browser,
        "up": up,
        "down": down,
        "status": status,
        "logs": logs,
    }[args.command]()


if __name__ == "__main__":
    main()
