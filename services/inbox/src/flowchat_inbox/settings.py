"""Settings of the inbox (prefix ``FLOWCHAT_INBOX_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_platform.settings import ServiceSettings, check_secret, infra


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_INBOX_", extra="ignore", frozen=True)

    http_port: int = 8707
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr = infra("FLOWCHAT_SERVICE_TOKEN", SecretStr(""))

    #: Unacked history messages in flight at once (batched into few transactions).
    prefetch: int = Field(default=512, ge=1, le=10_000)
    #: Acks of finished deliveries are batched within this long (one frame for many).
    ack_linger_s: float = Field(default=0.005, ge=0, le=1)
    db_pool_size: int = Field(default=10, ge=2, le=200)
    #: Writers applying batches in parallel; one number's messages always go to one.
    batch_workers: int = Field(default=4, ge=1, le=64)
    #: Most queue messages one write transaction takes.
    max_batch: int = Field(default=200, ge=1, le=10_000)
    #: Largest JSON request body (a note, a reply); larger → 413.
    max_json_bytes: int = Field(default=32 * 1024, ge=1024)
    #: The customer-service window: free-form replies only this long after the
    #: customer's last message (WhatsApp's rule: 24 h).
    window_s: float = Field(default=24 * 3600.0, gt=0)
    gauge_interval_s: float = Field(default=15.0, gt=0)
    #: Message content (and the latest statuses) older than this is deleted: customers'
    #: texts are personal data, kept no longer than the inbox needs them.
    retention_days: int = Field(default=90, ge=1)
    #: Rows one retention transaction deletes (short transactions, no long locks).
    purge_batch_size: int = Field(default=1000, ge=1, le=100_000)
    #: How often the retention pass runs.
    purge_interval_s: float = Field(default=3600.0, gt=0)
    #: Tenants in the per-tenant wait gauges (those waiting longest): bounds the labels.
    gauge_top_tenants: int = Field(default=20, ge=1, le=500)
    #: A customer waiting longer than this for an agent's first reply fires
    #: FlowchatCustomerWaitingTooLong (exported as flowchat_inbox_wait_alert_seconds).
    wait_alert_s: float = Field(default=900.0, gt=0)
    #: Keep-alive comment on idle live streams.
    stream_keepalive_s: float = Field(default=15.0, gt=0)

    #: Fernet keys customers' ids, names and message text are encrypted under
    #: (``new,old``: the first encrypts, all decrypt; with an old one the background pass
    #: re-encrypts every token). Unset: a key derived from the service token.
    encryption_keys: SecretStr | None = None
    #: Rows sealed or re-encrypted per transaction of the background pass, and its pause.
    seal_batch_size: int = Field(default=500, ge=1, le=10_000)
    seal_pause_s: float = Field(default=0.05, ge=0)

    #: How long a user's token is trusted without asking the tenant service again (at most
    #: the tenant's ``max-age``, FLOWCHAT_TENANT_USER_CACHE_MAX_AGE_S, 5 s by default): a
    #: deleted or disabled user, or an ended session, is refused within this long. 0:
    #: every request asks (refused at once, one more HTTP hop per request).
    user_cache_s: float = Field(default=5.0, ge=0, le=60)
    #: An open live stream checks its caller again this often (a deleted user's stream
    #: ends within this long).
    stream_reauth_s: float = Field(default=5.0, gt=0)

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
