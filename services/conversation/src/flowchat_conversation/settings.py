"""Settings of the conversation service (env prefix ``FLOWCHAT_CONVERSATION_``)."""

from __future__ import annotations

from flowchat_platform.settings import ServiceSettings, check_secret, infra
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLOWCHAT_CONVERSATION_", extra="ignore", frozen=True
    )

    http_port: int = 8702
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr | None = infra("FLOWCHAT_SERVICE_TOKEN", None)
    #: A session idle this long expires; the next message starts again at GREETING.
    session_ttl_s: int = Field(default=1800, ge=60)
    #: The cart outlives the session this long (abandoned-cart reminders).
    cart_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    #: Inbound messages handled concurrently (different conversations) per process.
    prefetch: int = Field(default=32, ge=1, le=1000)
    db_pool_size: int = Field(default=10, ge=2)

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
