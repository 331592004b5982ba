"""Every service as a real process: health endpoints, bad configuration, broker down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flowchat_platform.testing import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def test_every_service_answers_health_readiness_and_metrics(platform_stack):
    for name, url in platform_stack.urls.items():
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200, name
        ready = httpx.get(url + "/readyz", timeout=5)
        assert ready.status_code == 200, (name, ready.text)
        metrics = httpx.get(url + "/metrics", timeout=5)
        assert metrics.status_code == 200, name
        assert "flowchat_http_requests_total" in metrics.text, name
    # stopping with SIGTERM and a clean exit is checked by the fixture's teardown


@pytest.mark.parametrize(
    ("module", "env", "variable"),
    [
        ("flowchat_tenant", {"FLOWCHAT_SERVICE_TOKEN": "changeme"}, "FLOWCHAT_SERVICE_TOKEN"),
        ("flowchat_gateway", {}, "FLOWCHAT_SERVICE_TOKEN"),
        ("flowchat_sender", {"FLOWCHAT_SERVICE_TOKEN": "<token>"}, "FLOWCHAT_SERVICE_TOKEN"),
    ],
)
def test_missing_or_placeholder_secret_exits_at_once_naming_it(module, env, variable):
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "FLOWCHAT_ENV": "test",
        "FLOWCHAT_OPERATOR_KEY": "o" * 24,
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS": "bXlfdGVzdF9rZXlfb2ZfMzJfYnl0ZXNfbG9uZ19vaw==",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, "serve"],
        env={**base, **env},
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert variable in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_broker_down_at_start_reports_not_ready_without_crashing(tmp_path):
    port = free_port()
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin"),
        "FLOWCHAT_ENV": "test",
        "AMQP_URL": dead_broker,
        "FLOWCHAT_SERVICE_TOKEN": "s" * 24,
        "FLOWCHAT_GATEWAY_HTTP_PORT": str(port),
    }
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowchat_gateway", "serve"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(url + "/healthz", timeout=2).status_code == 200
        time.sleep(2)  # a few reconnect attempts
        ready = httpx.get(url + "/readyz", timeout=2)
        assert ready.status_code == 503
        assert proc.poll() is None, "the service must keep running and retrying"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    text = log.read_text()
    assert "broker unavailable, retrying" in text
    assert "Traceback" not in text
    assert code == 0


def test_stack_script_lists_every_service_once(stack_script):
    names = [name for name, *_ in stack_script.SERVICES]
    assert sorted(names) == sorted(
        [
            "gateway",
            "conversation",
            "sender",
            "tenant",
            "state-manager",
            "sandbox",
            "inbox",
            "relay",
            "console",
        ]
    )
    assert len({port for _, _, port, _ in stack_script.SERVICES}) == len(names)


def test_local_stacks_let_the_relay_deliver_to_loopback(stack_script, platform_stack):
    """make up and the test stacks: webhook receivers run on loopback beside the relay."""
    assert stack_script.LOCAL_SETTINGS == {"FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS": "true"}
    assert platform_stack.env["FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS"] == "true"
    assert platform_stack.env["FLOWCHAT_RELAY_URL"] == platform_stack.urls["relay"]
