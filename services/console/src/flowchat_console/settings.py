"""Settings of the console (prefix ``FLOWCHAT_CONSOLE_``). The other services' URLs are
the stack's unprefixed ``FLOWCHAT_<SERVICE>_URL`` variables (``.run/stack.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from flowchat_platform.settings import ServiceSettings, infra

#: ``services/console`` in a source checkout: ``make setup`` runs ``npm ci`` there.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_CONSOLE_", extra="ignore", frozen=True)

    http_port: int = 8708
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    inbox_url: str = infra("FLOWCHAT_INBOX_URL", "http://127.0.0.1:8707")
    conversation_url: str = infra("FLOWCHAT_CONVERSATION_URL", "http://127.0.0.1:8702")
    sender_url: str = infra("FLOWCHAT_SENDER_URL", "http://127.0.0.1:8703")
    state_url: str = infra("FLOWCHAT_STATE_URL", "http://127.0.0.1:8704")
    relay_url: str = infra("FLOWCHAT_RELAY_URL", "http://127.0.0.1:8706")
    gateway_url: str = infra("FLOWCHAT_GATEWAY_URL", "http://127.0.0.1:8700")

    #: ``node_modules`` of ``npm ci`` (htmx is served from there by the console itself).
    node_modules: Path = PACKAGE_ROOT / "node_modules"
    #: Session and CSRF cookies ``Secure`` (HTTPS only). None: everywhere but development.
    cookie_secure: bool | None = None
    #: One upstream call's bound (connect + read).
    upstream_timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: Connections kept per upstream service.
    upstream_connections: int = Field(default=50, ge=1, le=1000)
    #: Access tokens kept in memory (one per signed-in session; refreshed when near expiry).
    token_cache_size: int = Field(default=10_000, ge=10)
    #: Refresh an access token this long before it expires.
    token_refresh_margin_s: float = Field(default=60.0, ge=0)
    #: Live pages: how often the console's event stream asks again when an upstream
    #: stream is not available, and the keep-alive comment's interval.
    live_keepalive_s: float = Field(default=15.0, gt=0)

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment != "development"

    def service_urls(self) -> dict[str, str]:
        """Every upstream the console calls, by service name."""
        return {
            "tenant": self.tenant_url,
            "inbox": self.inbox_url,
            "conversation": self.conversation_url,
            "sender": self.sender_url,
            "state-manager": self.state_url,
            "relay": self.relay_url,
            "gateway": self.gateway_url,
        }
