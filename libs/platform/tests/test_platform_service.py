import subprocess
import sys

import httpx
import pytest
from pydantic import SecretStr

from flowchat_platform.errors import ConfigurationError
from flowchat_platform.http import ApiError, Readiness, build_app
from flowchat_platform.settings import check_secret


@pytest.mark.parametrize("value", ["", "changeme", "secret", "<your token>", "short"])
def test_placeholder_secrets_are_refused(value):
    with pytest.raises(ConfigurationError) as info:
        check_secret(SecretStr(value), "FLOWCHAT_SERVICE_TOKEN")
    assert info.value.variable == "FLOWCHAT_SERVICE_TOKEN"


def test_real_secret_passes():
    check_secret(SecretStr("a7f3c9e1b2d4f6a8c0e2"), "X")


def test_settings_failure_exits_naming_the_variable():
    code = (
        "from pydantic import SecretStr\n"
        "from flowchat_platform.settings import ServiceSettings, check_secret, load_settings\n"
        "class S(ServiceSettings):\n"
        "    model_config = {'env_prefix': 'FLOWCHAT_DEMO_'}\n"
        "    token: SecretStr\n"
        "load_settings(S)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin"},
    )
    assert proc.returncode == 2
    assert "FLOWCHAT_DEMO_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_health_readiness_metrics_and_error_shape():
    state = {"broker": False}
    readiness = Readiness()
    readiness.add("broker", lambda: state["broker"])
    app = build_app("demo", readiness=readiness)

    @app.get("/boom")
    async def boom() -> None:
        raise ApiError(409, "conflict", "already there", details=[{"id": "1"}])

    @app.get("/items/{n}")
    async def item(n: int) -> dict[str, int]:
        return {"n": n}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/healthz")).status_code == 200
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"broker": False}
        state["broker"] = True
        assert (await client.get("/readyz")).status_code == 200
        conflict = await client.get("/boom", headers={"X-Correlation-ID": "c-1"})
        assert conflict.status_code == 409
        assert conflict.json() == {
            "error": {"code": "conflict", "message": "already there", "details": [{"id": "1"}]}
        }
        assert conflict.headers["X-Correlation-ID"] == "c-1"
        invalid = await client.get("/items/abc")
        assert invalid.status_code == 422
        assert invalid.json()["error"]["code"] == "invalid_request"
        missing = await client.get("/nope")
        assert missing.json()["error"]["code"] == "not_found"
        text = (await client.get("/metrics")).text
        assert (
            'flowchat_http_requests_total{method="GET",route="/boom",service="demo",status="409"}'
            in text
        )


@pytest.mark.parametrize(
    "error",
    [
        "asyncpg.exceptions.AdminShutdownError",
        "asyncpg.exceptions.ConnectionDoesNotExistError",
        "asyncpg.InternalClientError",
        "redis.exceptions.ConnectionError",
        "redis.exceptions.TimeoutError",
    ],
)
async def test_a_dependency_down_answers_503_not_500(error):
    """PostgreSQL terminated the pool's connection, Redis did not answer: 503, retryable."""
    import importlib

    module, name = error.rsplit(".", 1)
    exc_type = getattr(importlib.import_module(module), name)
    app = build_app("demo")

    @app.get("/down")
    async def down() -> None:
        raise exc_type("terminating connection due to administrator command")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        r = await client.get("/down")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "dependency_unavailable"
