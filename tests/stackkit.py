"""The whole platform as processes, for every suite that starts it: one environment, one
process stack.

``tests/conftest.py``'s ``platform_stack``, the ops suite (``tests/ops``) and the fault
suite (``tests/faults/faults_kit.py``'s ``FaultStack``) all start the platform through
:class:`ProcessStack`: every service and the sandbox as ``python -m flowchat_<name> serve`` on
free ports, with the environment of :func:`stack_env` (``scripts/stack.py``'s services,
wiring and fresh secrets, ``FLOWCHAT_ENV=test``), each ready when its ``/readyz`` answers
200, stopped with SIGTERM.

Imported by its bare name (``from stackkit import ...``): pytest puts ``tests/`` on
``sys.path`` (``pythonpath`` in pyproject.toml), as the fault suite's conftest does for
``faults_kit``.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Self

from flowchat_platform import testing

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the stack manager, the demo) as a module, once."""
    module_name = f"flowchat_script_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


stack_script = load_script("stack")


def stack_env(
    ports: dict[str, int],
    *,
    amqp_url: str,
    database_url: str,
    redis_url: str,
    log_level: str = "INFO",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every process of a test stack: the servers' URLs, fresh secrets
    and how the processes find each other on ``ports`` (service name → HTTP port)."""
    return testing.service_env(
        amqp_url=amqp_url,
        database_url=database_url,
        redis_url=redis_url,
        secrets=stack_script.new_secrets(),
        log_level=log_level,
        extra={**stack_script.LOCAL_SETTINGS, **stack_script.wiring_env(ports), **(extra or {})},
    )


def ready(url: str) -> bool:
    """Whether the service at ``url`` answers ``/readyz`` with 200."""
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@dataclass
class ProcessStack:
    """Every service as a process on a free port, plus per-service environment overrides
    (``service_env``); logs in ``tmp/<name>.log``."""

    tmp: Path
    env: dict[str, str]
    urls: dict[str, str]
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        tmp: Path,
        *,
        amqp_url: str,
        database_url: str,
        redis_url: str,
        service_env: dict[str, dict[str, str]] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Self:
        """A stack on fresh free ports (not started: :meth:`start`)."""
        ports = {name: cls.free_port() for name, *_ in stack_script.SERVICES}
        env = stack_env(
            ports,
            amqp_url=amqp_url,
            database_url=database_url,
            redis_url=redis_url,
            extra=extra_env,
        )
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        return cls(tmp=tmp, env=env, urls=urls, service_env=service_env or {})

    @staticmethod
    def free_port() -> int:
        """A free local port for one service."""
        return testing.free_port()

    @property
    def names(self) -> list[str]:
        return [name for name, *_ in stack_script.SERVICES]

    def module(self, name: str) -> str:
        return str(next(m for n, m, _, _ in stack_script.SERVICES if n == name))

    def child_env(self, name: str) -> dict[str, str]:
        """The environment ``name`` starts with."""
        return {**self.env, **self.service_env.get(name, {})}

    def spawn(self, name: str) -> None:
        path = self.tmp / f"{name}.log"
        self.logs[name] = path
        with open(path, "ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", self.module(name), "serve"],
                cwd=ROOT,
                env=self.child_env(name),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start(self, timeout_s: float = 120) -> None:
        """Start every service and wait until each is ready; on failure stop them all."""
        try:
            for name in self.names:
                self.spawn(name)
            self.wait_ready(self.names, timeout_s)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, names: list[str], timeout_s: float = 60) -> float:
        """Seconds until every one of ``names`` is ready; fails when one exits or times out."""
        started = time.monotonic()
        pending = list(names)
        while pending:
            for name in list(pending):
                if self.procs[name].poll() is not None:
                    raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
                if ready(self.urls[name]):
                    pending.remove(name)
            if pending and time.monotonic() - started > timeout_s:
                logs = "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in pending)
                raise AssertionError(f"not ready in {timeout_s:.0f} s: {pending}\n{logs}")
            time.sleep(0.1)
        return time.monotonic() - started

    def terminate(self, name: str, timeout_s: float = 40) -> tuple[int | None, float]:
        """SIGTERM one service; its exit code (None: killed after ``timeout_s``) and how long
        it took to exit."""
        proc = self.procs[name]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            code = None
        return code, time.monotonic() - started

    def restart(self, name: str) -> float:
        """Start ``name`` again (its log goes on in the same file); seconds until ready."""
        self.spawn(name)
        return self.wait_ready([name])

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs.values())

    def stop(self, timeout_s: float = 40) -> dict[str, int | None]:
        """SIGTERM every process; each one's exit code (None: killed after ``timeout_s``)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                codes[name] = None
        return codes
