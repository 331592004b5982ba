"""`make up` on a machine where nothing runs: the stack starts its own servers.

The standard ports are busy here (the shared servers), so the same code path is
exercised on free ports with a run directory of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flowchat_platform.testing import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "stack.py"), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_servers_are_started_when_nothing_answers_and_stopped_by_down():
    # not under pytest's tmp_path: its parents are private, and the servers run as
    # the postgres and rabbitmq users, who must reach their data
    base = Path(tempfile.mkdtemp(prefix="flowchat-stack-"))
    os.chmod(base, 0o755)
    run_dir = base / "run"
    ports = {
        "FLOWCHAT_AMQP_PORT": free_port(),
        "FLOWCHAT_REDIS_PORT": free_port(),
        "FLOWCHAT_PG_PORT": free_port(),
    }
    env = {**os.environ, "FLOWCHAT_RUN_DIR": str(run_dir), **{k: str(v) for k, v in ports.items()}}
    started = stack("servers", env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        for port in ports.values():
            assert answers(port), (port, started.stdout)
        for marker in ("started-rabbitmq", "started-redis", "started-postgres"):
            assert (run_dir / marker).exists()
        again = stack("servers", env)  # idempotent: everything answers now
        assert "answers on" in again.stdout
    finally:
        stopped = stack("down", env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for port in ports.values():
        assert not answers(port)
    shutil.rmtree(base, ignore_errors=True)
