"""Gateway settings: ``FLOWCHAT_GATEWAY_*`` plus the shared stack variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from flowchat_platform.settings import ServiceSettings, check_secret, infra

#: Meta retries an unanswered webhook for up to 7 days: dedupe at least that long.
SEVEN_DAYS_S = 7 * 24 * 3600


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_GATEWAY_", extra="ignore", frozen=True)

    http_port: int = 8700
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr | None = infra("FLOWCHAT_SERVICE_TOKEN", None)
    #: The state-manager's query API, behind ``GET /v1/messages/{id}``.
    state_url: str = infra("FLOWCHAT_STATE_URL", "http://127.0.0.1:8704")
    #: Bound of one state-manager read.
    state_timeout_s: float = Field(default=3.0, gt=0)
    #: The URL Twilio is configured to call (its signature covers the full URL).
    public_url: str = "http://127.0.0.1:8700"
    #: How long a provider message id (or wamid + status) is remembered.
    dedupe_window_s: int = Field(default=SEVEN_DAYS_S, ge=SEVEN_DAYS_S)
    #: How long a webhook's claim on its events holds while it publishes them (a retry
    #: meanwhile gets 409); past it a claim left by a gateway that died is free again.
    #: Longer than a publish and the Redis calls around it.
    dedupe_claim_s: int = Field(default=30, ge=2)
    #: How long an ``Idempotency-Key`` of the send API is remembered.
    idempotency_window_s: int = Field(default=24 * 3600, ge=60)
    #: Meta's payloads are up to 3 MB.
    max_body_bytes: int = Field(default=3 * 1024 * 1024, ge=1024)
    #: How long account lookups are cached when the tenant service sends no max-age.
    tenant_cache_ttl_s: float = Field(default=60.0, gt=0)
    #: Bound of every Redis call; past it the gateway degrades (webhooks) or answers 503.
    redis_timeout_s: float = Field(default=0.5, gt=0)
    #: Send API requests per API key per minute (0 disables the limit).
    send_rate_per_minute: int = Field(default=600, ge=0)

    #: Meta's Graph API, for the Cloud-API-compatible routes' mark-as-read and templates.
    graph_url: str = "https://graph.facebook.com"
    #: Bound of one Graph call.
    graph_timeout_s: float = Field(default=10.0, gt=0)
    #: The sender's internal media API, behind ``POST /{version}/{phone_number_id}/media``.
    sender_url: str = infra("FLOWCHAT_SENDER_URL", "http://127.0.0.1:8703")
    #: Bound of one media upload through the sender.
    media_timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _claim_outlives_a_publish(self) -> Settings:
        if self.dedupe_claim_s <= self.publish_timeout_s + 2 * self.redis_timeout_s:
            raise ValueError(
                "dedupe_claim_s must be longer than publish_timeout_s + 2 x redis_timeout_s"
            )
        return self

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
