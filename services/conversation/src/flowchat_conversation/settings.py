"""Settings of the conversation service (env prefix ``FLOWCHAT_CONVERSATION_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_conversation.outreach.reminder_kinds import ReminderKind, ReminderTemplate
from flowchat_platform.settings import ServiceSettings, check_secret, infra


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLOWCHAT_CONVERSATION_", extra="ignore", frozen=True
    )

    http_port: int = 8702
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")
    #: How long the relay's subscription sets are trusted before they are read again
    #: (``flowchat_platform.subscriptions``: order and campaign facts are published only
    #: for tenants with an endpoint that wants them).
    subscriptions_ttl_s: float = 5.0
    database_url: str = infra("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/flowchat")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    service_token: SecretStr | None = infra("FLOWCHAT_SERVICE_TOKEN", None)
    #: A session idle this long expires; the next message starts again at GREETING.
    session_ttl_s: int = Field(default=1800, ge=60)
    #: The cart outlives the session this long (abandoned-cart reminders).
    cart_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    #: Inbound messages handled concurrently (different conversations) per process.
    prefetch: int = Field(default=32, ge=1, le=1000)
    #: Inbound messages handled concurrently per conversation partition this replica
    #: holds (``conversation.inbound.<n>``; different conversations of one partition).
    partition_prefetch: int = Field(default=16, ge=1, le=1000)
    #: How often a replica renews its membership of the partition group and follows it.
    partition_interval_s: float = Field(default=1.0, gt=0, le=30)
    #: A replica that stops renewing (killed) loses its partitions this long after its
    #: last renewal; > ``partition_interval_s``.
    partition_ttl_s: float = Field(default=3.0, gt=0, le=300)
    db_pool_size: int = Field(default=10, ge=2)
    # ---- commerce (orders, invoices) ----
    #: The invoice PDF worker process exits after this long without a download.
    pdf_worker_idle_s: float = Field(default=60.0, gt=0)
    #: This service as the customers' phones reach it (invoice PDF links).
    public_url: str = Field(
        default="http://127.0.0.1:8702",
        validation_alias=AliasChoices(
            "FLOWCHAT_CONVERSATION_PUBLIC_URL", "FLOWCHAT_CONVERSATION_URL"
        ),
    )
    #: Signs invoice links (defaults to the service token; rotating it breaks old links).
    link_secret: SecretStr | None = None
    #: The payment provider's API (payment links per invoice; the sandbox's payment
    #: emulator locally, e.g. ``http://127.0.0.1:8790/payments``); unset: no provider,
    #: customers pay and send their confirmation number as before.
    payment_provider_url: str | None = None
    payment_provider_key: SecretStr | None = None
    #: The secret the provider signs its webhooks (``POST /v1/payments/webhook``) with.
    payment_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "FLOWCHAT_CONVERSATION_PAYMENT_WEBHOOK_SECRET", "FLOWCHAT_PAYMENTS_WEBHOOK_SECRET"
        ),
    )
    #: Dedupe rows of handled inbound messages are kept this long, then purged in batches.
    handled_retention_h: int = Field(default=72, ge=1)
    handled_purge_interval_s: float = Field(default=600, gt=0)
    handled_purge_batch: int = Field(default=5000, ge=1, le=100_000)
    # ---- outreach (contacts, campaigns, reminders) ----
    #: Meta's Graph API (template lookups); the sandbox locally.
    graph_url: str = "https://graph.facebook.com"
    graph_version: str = "v23.0"
    #: How often the campaign runner and the reminder scheduler look for work.
    campaign_tick_s: float = Field(default=0.2, gt=0, le=10)
    #: With no campaign running the runner waits for work, or this long at most.
    campaign_idle_s: float = Field(default=5.0, gt=0, le=60)
    #: The reminder scheduler sleeps until the next due reminder (this long when that time
    #: has passed), or ``reminder_idle_s`` at most: reminders scheduled through another
    #: replica, or by the bot, are found by that tick.
    reminder_tick_s: float = Field(default=1.0, gt=0, le=60)
    reminder_idle_s: float = Field(default=5.0, gt=0, le=60)
    #: Campaign messages queued but not yet sent/failed before a campaign waits (0 = off).
    campaign_max_inflight: int = Field(default=5000, ge=0)
    #: A queued message counts as in flight this long at most (its status may never come).
    campaign_inflight_window_s: float = Field(default=120, gt=0)
    #: Reminders fired per scheduler transaction.
    reminder_batch: int = Field(default=100, ge=1, le=1000)
    #: Run the outreach workers (runner, scheduler, events consumer) in this process.
    outreach_workers: bool = True
    # ---- reminders the commerce bot schedules (a delay of 0 turns one off) ----
    #: ``payment_due``: this long before an order's invoice is due.
    payment_due_reminder_before_s: int = Field(default=12 * 3600, ge=0)
    #: ``abandoned_cart``: this long after the customer's last message, cart not empty.
    abandoned_cart_after_s: int = Field(default=3600, ge=0)
    #: ``order_follow_up``: this long after the order is delivered.
    order_follow_up_after_s: int = Field(default=3 * 86400, ge=0)
    #: ``restock``: offer a message when a product the customer asked for is back.
    restock_alerts: bool = True
    #: Templates for reminders outside the 24 h window, by kind (JSON), e.g.
    #: ``{"payment_due": {"name": "payment_reminder", "language": "en",
    #: "parameters": {"body": ["{{name|there}}"]}}}``; without one such a reminder is skipped.
    reminder_templates: dict[ReminderKind, ReminderTemplate] = Field(default_factory=dict)
    #: How often confirmed orders unpaid past their due time are cancelled (stock back).
    overdue_check_interval_s: float = Field(default=60, gt=0)

    # ---- privacy (erasure, export) ----
    #: The services an export reads (their HTTP APIs, the service token).
    inbox_url: str = infra("FLOWCHAT_INBOX_URL", "http://127.0.0.1:8707")
    state_url: str = infra("FLOWCHAT_STATE_URL", "http://127.0.0.1:8704")
    relay_url: str = infra("FLOWCHAT_RELAY_URL", "http://127.0.0.1:8706")
    #: Fernet keys customers' ids and names are encrypted under at rest (``new,old``:
    #: the first encrypts, all decrypt; an old key still listed makes the background
    #: pass re-encrypt every token). Unset: one key derived from the service token.
    encryption_keys: SecretStr | None = None
    #: The background pass that seals rows stored in clear before (and re-encrypts on
    #: rotation): customers per batch, pause between batches.
    seal_batch_size: int = Field(default=200, ge=1, le=10_000)
    seal_pause_s: float = Field(default=0.05, ge=0)
    #: The services that answer an erasure request (a request is complete once each did).
    erasure_services: tuple[str, ...] = (
        "conversation",
        "inbox",
        "relay",
        "sender",
        "state-manager",
    )

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
        if self.privacy_key is not None:
            check_secret(self.privacy_key, "FLOWCHAT_PRIVACY_KEY")
