"""The sandbox's settings (``FLOWCHAT_SANDBOX_…``). It holds no secrets of its own."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_platform.settings import ServiceSettings

SERVICE = "sandbox"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_SANDBOX_", extra="ignore", frozen=True)

    http_port: int = 8705
    #: Delay before ``sent``, then between ``sent`` → ``delivered`` → ``read``.
    status_delay_s: float = 0.05
    #: False: sends are answered and recorded in the ledger, and no status webhook is
    #: played for them (Cloud API and Twilio). For benchmarks of the sending side, where
    #: statuses would be work for nobody; pending statuses held for a long delay instead
    #: piled up as sleeping tasks (hundreds of thousands over a growth run) and slowed
    #: the sandbox as the run went on.
    status_webhooks: bool = True
    #: Meta's defaults, overridable per number at registration.
    default_throughput_mps: int = 80
    pair_rate_period_s: float = 6.0
    pair_rate_burst: int = 45
    #: The customer-service window.
    window_s: float = 24 * 3600
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 5
    webhook_retry_base_s: float = 0.5
    webhook_retry_max_s: float = 30.0
    #: How long an injected ``timeout`` fault holds a request before answering 504.
    fault_timeout_s: float = 30.0
    #: The payment-provider emulator's webhook: where it posts ``payment.succeeded``
    #: (FlowChat's ``POST /v1/payments/webhook``) and the secret it signs with (shared
    #: with the conversation service; the stack generates it).
    payments_webhook_url: str | None = None
    payments_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "FLOWCHAT_SANDBOX_PAYMENTS_WEBHOOK_SECRET", "FLOWCHAT_PAYMENTS_WEBHOOK_SECRET"
        ),
    )
    #: Ledger entries kept (oldest dropped first).
    ledger_size: int = 200_000
