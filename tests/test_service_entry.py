"""Every service starts only through ``python -m flowchat_<name> serve``: ``--help``, no
command or a mistyped one answers at once, connects to nothing and migrates nothing.

Each run gets its broker, database and Redis URLs pointed at one listening socket of the
test's own: had a run tried to start (connect, migrate), the socket would hold its
connection."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "flowchat_gateway",
    "flowchat_conversation",
    "flowchat_sender",
    "flowchat_state_manager",
    "flowchat_tenant",
    "flowchat_inbox",
    "flowchat_relay",
    "flowchat_sandbox",
]


@pytest.mark.parametrize("module", MODULES)
def test_help_and_mistakes_start_nothing(module: str) -> None:
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(16)
        trap.setblocking(False)
        port = trap.getsockname()[1]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin"),
            "FLOWCHAT_ENV": "test",
            "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/",
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "FLOWCHAT_SERVICE_TOKEN": "s" * 32,
            "FLOWCHAT_OPERATOR_KEY": "o" * 32,
        }
        runs = {
            args: subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in (("--help",), ("serve", "--help"), ("dlqq",), ())
        }
        done = {args: (p.wait(timeout=30), *p.communicate()) for args, p in runs.items()}
        with pytest.raises(BlockingIOError):
            trap.accept()  # nobody connected

    code, out, _ = done[("--help",)]
    assert code == 0
    assert f"python -m {module}" in out
    assert "serve" in out
    code, out, _ = done[("serve", "--help")]
    assert code == 0
    assert "run the service" in out
    code, _, err = done[("dlqq",)]
    assert code == 2
    assert "unknown command 'dlqq'" in err
    code, _, err = done[()]
    assert code == 2
    assert "a command is needed" in err
    for code, out, err in done.values():
        assert "Traceback" not in out + err
        assert "starting" not in out + err
