"""Settings of the relay (prefix ``FLOWCHAT_RELAY_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_platform.crypto import SecretBox, secret_box
from flowchat_platform.errors import ConfigurationError
from flowchat_platform.settings import ServiceSettings, check_secret, infra

ENCRYPTION_KEYS_VAR = "FLOWCHAT_RELAY_ENCRYPTION_KEYS"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_RELAY_", extra="ignore", frozen=True)

    http_port: int = 8706
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr = infra("FLOWCHAT_SERVICE_TOKEN", SecretStr(""))
    #: Where the relay keeps the tenants' subscriptions for producers
    #: (``flowchat_platform.subscriptions``).
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")
    #: Every tenant's subscription set is rewritten this often (disabled endpoints drop
    #: out; a set not rewritten expires after 15 minutes).
    subscriptions_sync_s: float = Field(default=60.0, gt=0)
    #: Comma-separated Fernet keys encrypting the endpoints' signing secrets at rest:
    #: the first encrypts, every one decrypts (``FLOWCHAT_RELAY_ENCRYPTION_KEYS``).
    encryption_keys: SecretStr | None = None

    #: Endpoints on loopback, private, link-local… addresses are refused unless this is
    #: set: development and tests only (refused at start-up in production).
    allow_private_targets: bool = False
    #: A delivery is retried for this long after its event was stored, then failed.
    retry_for_s: float = Field(default=24 * 3600.0, gt=0)
    #: First retry delay; doubles each attempt (with full jitter) up to ``max_backoff_s``.
    backoff_base_s: float = Field(default=5.0, gt=0)
    max_backoff_s: float = Field(default=3600.0, gt=0)
    #: An endpoint that failed every delivery for this long is disabled.
    disable_after_s: float = Field(default=3 * 24 * 3600.0, gt=0)
    #: Deliveries in flight to one endpoint at once.
    endpoint_concurrency: int = Field(default=4, ge=1, le=256)
    #: Due deliveries of one endpoint leased by one query (an endpoint that just failed
    #: leases only ``endpoint_concurrency`` at a time).
    lease_batch: int = Field(default=64, ge=1, le=1000)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    #: One delivery's whole exchange (connect, send, read the answer).
    total_timeout_s: float = Field(default=15.0, gt=0)
    #: Bytes of an endpoint's answer read (and kept, truncated, in the delivery log).
    response_limit: int = Field(default=1024, ge=0, le=65536)
    #: How long the previous secret still signs after a rotation, unless the call says.
    secret_overlap_s: float = Field(default=24 * 3600.0, ge=0)
    #: Fallback poll for due deliveries; new events wake the dispatcher at once.
    poll_interval_s: float = Field(default=1.0, gt=0)
    prefetch: int = Field(default=64, ge=1, le=10_000)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    gauge_interval_s: float = Field(default=15.0, gt=0)
    #: Delivered events and the delivery log (attempts, endpoints' answers) older than
    #: this are deleted; an event still pending at one endpoint is kept.
    retention_days: int = Field(default=30, ge=1)
    #: Rows one retention transaction deletes (short transactions, no long locks).
    purge_batch_size: int = Field(default=1000, ge=1, le=100_000)
    #: How often the retention pass runs.
    purge_interval_s: float = Field(default=3600.0, gt=0)
    #: Rows one transaction of the background encryption pass seals or re-encrypts.
    seal_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Pause between two of its transactions (the pass yields to the traffic).
    seal_pause_s: float = Field(default=0.05, ge=0)

    @property
    def allow_http(self) -> bool:
        """Plain-http endpoints: in development, or wherever private targets are allowed."""
        return self.environment == "development" or self.allow_private_targets

    def secret_box(self) -> SecretBox:
        return secret_box(self.encryption_keys, ENCRYPTION_KEYS_VAR)

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
        self.secret_box()
        if self.environment == "production" and self.allow_private_targets:
            raise ConfigurationError(
                "FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS is for development and tests only",
                variable="FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS",
            )
