"""Settings of the state-manager (prefix ``FLOWCHAT_STATE_MANAGER_``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_contracts import topology
from flowchat_platform.settings import ServiceSettings, check_secret, infra


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLOWCHAT_STATE_MANAGER_", extra="ignore", frozen=True
    )

    http_port: int = 8704
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr = infra("FLOWCHAT_SERVICE_TOKEN", SecretStr(""))
    #: Where the relay keeps the tenants' subscriptions (``flowchat_platform.subscriptions``).
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")

    #: Status events (``flowchat.events``) are published only where some reader wants
    #: them (``flowchat_state_manager.audience``): the conversation service's, every
    #: status while one of ``status_reader_queues`` exists (the inbox's), and a tenant's
    #: while its relay endpoints take ``message.status``. True: every status change, as
    #: before routing keys v2 — for subscribers of your own bound to ``flowchat.events``
    #: (or name your queue in ``status_reader_queues``, a JSON list).
    status_events_for_all: bool = False
    status_reader_queues: tuple[str, ...] = (topology.QUEUE_INBOX_HISTORY,)
    #: How long the relay's subscriptions, once read, are trusted.
    subscriptions_ttl_s: float = Field(default=5.0, gt=0)

    #: Messages (with their history) older than this are purged, unless the tenant chose
    #: its own days (``PUT /v1/retention``): a week partition is dropped once its whole
    #: week is past every tenant's retention (so up to a week later); the records of
    #: tenants that keep fewer days are deleted from it before.
    retention_days: int = Field(default=90, ge=1)
    #: Partitions (weeks) created to cover this many days ahead of today (every
    #: retention pass, the first at start).
    partition_days_ahead: int = Field(default=7, ge=1, le=366)
    purge_batch_size: int = Field(default=1000, ge=1, le=100_000)
    purge_interval_s: float = Field(default=3600.0, gt=0)
    #: Unacked status messages in flight at once (each one is one DB transaction).
    prefetch: int = Field(default=256, ge=1, le=10_000)
    db_pool_size: int = Field(default=10, ge=1, le=200)
    #: Writers applying status batches in parallel (each one transaction at a time).
    batch_workers: int = Field(default=4, ge=1, le=64)
    #: Most events one write transaction takes.
    max_batch: int = Field(default=100, ge=1, le=10_000)
    #: Under load (a writer's last batch took more than one event), how long a writer
    #: waits for more events before its transaction; 0: never (an idle writer never does).
    batch_linger_ms: float = Field(default=0.0, ge=0, le=100)
    #: Acknowledgements of status messages are sent within this long, each run of them
    #: in one ``basic.ack(multiple=True)`` (never before the commit; flushed at stop). On
    #: a quorum queue every ack frame is a log entry of its own: a turn's four status
    #: messages arrive within a few ms and share one. 0: one ack per message.
    ack_linger_ms: float = Field(default=50.0, ge=0, le=1000)
    #: Messages this replica wrote last, kept with the row's version, so the next status
    #: for one of them is one statement with no read before it; 0 keeps none. Each is
    #: kept this long at most (a customer's ids stay no longer in this memory).
    written_rows: int = Field(default=4096, ge=0, le=1_000_000)
    written_ttl_s: float = Field(default=60.0, gt=0, le=3600)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Fallback poll of the outbox; commits that write events wake the relay at once.
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    gauge_interval_s: float = Field(default=15.0, gt=0)
    #: Fernet keys (``new,old``) the recipients' ids are encrypted under at rest; unset:
    #: one key derived from the service token (set keys of your own in production).
    #: With an old key still listed, a background pass re-encrypts every row under the
    #: new one (then drop the old key).
    encryption_keys: SecretStr | None = None
    #: Rows sealed or re-encrypted per transaction of that pass, and its pause between them.
    seal_batch_size: int = Field(default=500, ge=1, le=10_000)
    seal_pause_s: float = Field(default=0.05, ge=0)

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
