"""Gateway settings: defaults from docs/interfaces.md, secrets checked, limits enforced."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from flowchat_gateway.settings import SEVEN_DAYS_S, Settings
from flowchat_platform.errors import ConfigurationError


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLOWCHAT_TENANT_URL", "FLOWCHAT_GATEWAY_HTTP_PORT", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(FLOWCHAT_SERVICE_TOKEN="a-real-service-token-123")
    assert settings.http_port == 8700
    assert settings.tenant_url == "http://127.0.0.1:8701"
    assert settings.max_body_bytes == 3 * 1024 * 1024
    assert settings.dedupe_window_s == SEVEN_DAYS_S
    assert settings.public_url == "http://127.0.0.1:8700"
    settings.check_secrets()


def test_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWCHAT_GATEWAY_PUBLIC_URL", "https://gw.example.com")
    monkeypatch.setenv("FLOWCHAT_TENANT_URL", "http://tenant:8701")
    monkeypatch.setenv("FLOWCHAT_SERVICE_TOKEN", "a-real-service-token-123")
    settings = Settings()
    assert settings.public_url == "https://gw.example.com"
    assert settings.tenant_url == "http://tenant:8701"
    assert settings.service_token is not None
    assert "a-real" not in repr(settings)


@pytest.mark.parametrize("token", [None, "changeme", "short"])
def test_service_token_is_checked(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.delenv("FLOWCHAT_SERVICE_TOKEN", raising=False)
    settings = Settings() if token is None else Settings(FLOWCHAT_SERVICE_TOKEN=token)
    with pytest.raises(ConfigurationError, match="FLOWCHAT_SERVICE_TOKEN"):
        settings.check_secrets()


def test_dedupe_window_cannot_be_shorter_than_metas_retries() -> None:
    with pytest.raises(ValidationError):
        Settings(dedupe_window_s=24 * 3600)
