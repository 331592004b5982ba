"""Cross-service fixtures: the whole platform as real processes, isolated per module.

``platform_stack`` starts every service and the sandbox with ``python -m flowchat_<name>``
on free ports, against a RabbitMQ vhost, a PostgreSQL database and a Redis database of
their own, waits for every ``/readyz``, and stops them with SIGTERM afterwards (each
must exit cleanly).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flowchat_platform.testing import create_database, drop_database, free_port

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):  # type: ignore[no-untyped-def]
    """Import ``scripts/<name>.py`` (the stack manager, the demo) as a module."""
    spec = importlib.util.spec_from_file_location(
        f"flowchat_script_{name}", ROOT / "scripts" / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack_script = load_script("stack")


@pytest.fixture(name="load_script")
def load_script_fixture():  # type: ignore[no-untyped-def]
    return load_script


@pytest.fixture(name="stack_script")
def stack_script_fixture():  # type: ignore[no-untyped-def]
    return stack_script


@dataclass
class Stack:
    env: dict[str, str]
    urls: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start_stack(tmp: Path, amqp_url: str, database_url: str, redis_url: str) -> Stack:
    ports = {name: free_port() for name, *_ in stack_script.SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "FLOWCHAT_ENV": "test",
        "LOG_LEVEL": "INFO",
        "AMQP_URL": amqp_url,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **stack_script.new_secrets(),
        **stack_script.wiring_env(ports),
    }
    stack = Stack(env=env, urls=urls)
    for name, module, _, _ in stack_script.SERVICES:
        path = tmp / f"{name}.log"
        stack.logs[name] = path
        with open(path, "wb") as log:
            stack.procs[name] = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    deadline = time.monotonic() + 60
    pending = dict(urls)
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            if stack.procs[name].poll() is not None:
                stop_stack(stack)
                raise AssertionError(f"{name} exited at start:\n{stack.log(name)[-3000:]}")
            if _ready(url):
                del pending[name]
        time.sleep(0.2)
    if pending:
        logs = "\n".join(f"--- {n}\n{stack.log(n)[-2000:]}" for n in pending)
        stop_stack(stack)
        raise AssertionError(f"not ready in 60 s: {list(pending)}\n{logs}")
    return stack


def stop_stack(stack: Stack) -> dict[str, int | None]:
    for proc in stack.procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes: dict[str, int | None] = {}
    for name, proc in stack.procs.items():
        try:
            codes[name] = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = None
    return codes


@pytest.fixture
def platform_stack(tmp_path: Path, amqp_url: str, redis_url: str) -> Iterator[Stack]:
    database_url = asyncio.run(create_database())
    try:
        stack = start_stack(tmp_path, amqp_url, database_url, redis_url)
        try:
            yield stack
        finally:
            codes = stop_stack(stack)
            bad = {n: c for n, c in codes.items() if c != 0}
            assert not bad, f"services did not stop cleanly on SIGTERM: {bad}"
    finally:
        asyncio.run(drop_database(database_url))
