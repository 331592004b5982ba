"""Settings of the sender (env prefix ``FLOWCHAT_SENDER_``).

Unprefixed stack variables: ``AMQP_URL``, ``REDIS_URL``, ``FLOWCHAT_TENANT_URL``,
``FLOWCHAT_GATEWAY_URL`` (Twilio status callbacks point at it) and
``FLOWCHAT_SERVICE_TOKEN`` (bearer of the tenant service's internal API).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from flowchat_contracts import SEND_RESULT_BATCH_MAX
from flowchat_platform.settings import ServiceSettings, check_secret, infra


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWCHAT_SENDER_", extra="ignore", frozen=True)

    http_port: int = 8703
    redis_url: str = infra("REDIS_URL", "redis://127.0.0.1:6379/0")
    tenant_url: str = infra("FLOWCHAT_TENANT_URL", "http://127.0.0.1:8701")
    gateway_url: str = infra("FLOWCHAT_GATEWAY_URL", "http://127.0.0.1:8700")
    service_token: SecretStr | None = infra("FLOWCHAT_SERVICE_TOKEN", None)

    graph_url: str = "https://graph.facebook.com"
    graph_version: str = "v23.0"
    twilio_url: str = "https://api.twilio.com"

    #: Unacknowledged ``whatsapp.outbound`` messages this process holds at once. Most
    #: of them may be sleeping for their rate-limit slot: a slow number's backlog
    #: must cover the shortest retry tier (5 s at 80 mps = 400 slots across replicas)
    #: or the number idles between tier returns (see ``max_waiting_per_account``).
    prefetch: int = 1024
    #: Commands worked on at once (credentials, claim, provider call, result); the rest
    #: of the prefetch waits its turn, and limiter sleepers hold no place. Unbounded
    #: (the whole prefetch at once) a slow machine fell into timeouts: confirms past
    #: their deadline, provider calls with no answer parked as "outcome unknown".
    max_active: int = Field(default=256, ge=1)
    #: Unacknowledged ``whatsapp.outbound.bulk`` (marketing) messages this process holds:
    #: small, so a campaign never crowds out transactional work (0: bulk not consumed).
    bulk_prefetch: int = 64
    #: Bulk commands reserve rate-limit slots at most this far ahead (a transactional
    #: command on the same number waits no longer behind a campaign).
    bulk_max_wait_s: float = 0.25
    #: Bulk commands waiting in-process for one number before the rest are deferred.
    bulk_waiting_per_number: int = 16
    #: The bulk lane pauses while this many transactional commands are being worked on.
    priority_hold_at: int = 1
    #: Acks of finished messages are batched for this long (``basic.ack(multiple)``):
    #: one frame for many at high rate. 0 acks each message on its own.
    ack_linger_s: float = 0.005
    #: Send results in one ``flowchat.status`` message at most (a ``send_result_batch``,
    #: formed only while a publish is out; 1: every result on its own).
    result_batch_max: int = Field(default=256, ge=1, le=SEND_RESULT_BATCH_MAX)
    #: The ``send_result_batch`` version published: 2, one message for the results of
    #: any accounts; 1, one per account (only while a state-manager that reads v1 alone
    #: still runs: docs/queue-contracts.md, "Send result batches").
    result_batch_version: int = Field(default=2, ge=1, le=2)
    #: Redis connections of this process; callers wait for a free one (never fail fast).
    redis_max_connections: int = 64
    #: Upper bound of one provider call (connect + answer).
    http_timeout_s: float = 10.0
    #: Idle provider connections are dropped after this, below the server's own idle
    #: timeout (a connection closed by the server as it is reused loses the answer).
    http_keepalive_s: float = Field(default=3.0, gt=0)
    #: Provider calls (first send + retries) before a message goes to the DLQ.
    max_attempts: int = 5
    #: How long an idempotency key remembers its send (and blocks a second one).
    idempotency_ttl_s: int = 7 * 24 * 3600
    #: Redis failover safety (``FLOWCHAT_SENDER_CLAIM_REPLICAS``): a claim is sent to the
    #: provider only once this many replicas hold it (``WAIT`` after the claim, up to
    #: ``claim_wait_ms``); else it is released and retried later. 0: off (a promoted
    #: replica may lack the last claims, and a redelivery could send again).
    #: docs/architecture.md, "Redis failover".
    claim_replicas: int = Field(default=0, ge=0)
    #: How long a claim waits for ``claim_replicas`` (below the Redis socket timeout).
    claim_wait_ms: int = Field(default=100, ge=1, le=900)
    #: A claim younger than this may still be in flight on another replica.
    claim_grace_s: float = 30.0
    #: How long credentials stay cached (the tenant service's max-age wins when sent).
    credentials_ttl_s: float = 60.0
    #: Credential misses asked for together (``POST /internal/v1/accounts/batch``, one
    #: request out at a time): a sender that meets a thousand accounts at once makes a
    #: handful of tenant requests, not a thousand. Off: one request per account.
    tenant_batch: bool = True

    #: Per-number rate when the account does not say (Meta's standard tier).
    default_throughput_mps: int = 80
    #: How far ahead of its even schedule a number may send (GCRA tolerance): commands
    #: that arrive together go together, not each asleep ~1 ms for its own slot (at
    #: 1,000 mps half of them slept, #6). 10 ms is a burst of 11 at 1,000 mps and none
    #: at 80 mps (one slot is 12.5 ms); the rate over a second stays within 1 %.
    number_burst_s: float = Field(default=0.01, ge=0, le=1)
    #: Pair rate: one message per ``pair_interval_s`` to a recipient, bursts up to ``pair_burst``.
    pair_interval_s: float = 6.0
    pair_burst: int = 45
    #: Limiter waits up to this long sleep in-process (with the slot reserved); longer
    #: ones go to a retry tier. As long as the shortest tier (5 s): a deferred message
    #: then never comes back later than a sleeping one would have been sent.
    max_inline_wait_s: float = 5.0
    #: In-process limiter sleepers per account; past it messages wait in a retry tier,
    #: so one busy account cannot hold every prefetch slot (other accounts keep half).
    max_waiting_per_account: int = 512
    #: After 130429, the number's rate is multiplied by this for ``throttle_s``.
    throttle_factor: float = 0.5
    throttle_s: float = 60.0

    #: The 24 h customer-service window, checked before the provider call from the
    #: gateway's ``flowchat:csw:{<tenant>}:<account>:<wa_id>`` record: ``known`` fails a free-form
    #: message when the record shows the window closed, ``strict`` also when there is
    #: no record (only where the gateway shares this Redis), ``off`` leaves it to Meta.
    window_guard: Literal["off", "known", "strict"] = "known"

    #: Marketing commands to a customer in the tenant's opt-out set (``optout_key``,
    #: kept by the conversation service) fail before any provider call.
    optout_guard: bool = True

    #: Template commands are checked against the WABA's catalog (synced from the Graph
    #: API into Redis for ``template_ttl_s``; kept in memory ``template_local_ttl_s``).
    template_guard: bool = True
    template_ttl_s: int = 24 * 3600
    template_local_ttl_s: float = 30.0
    #: A template missing from (or not approved in) a catalog synced before the command
    #: was made triggers a fresh sync; the command waits for one (in a retry tier, no
    #: attempt used) at most this long after it was made.
    template_recheck_s: float = 300.0
    #: Template misses trigger at most one catalog sync per WABA this often.
    template_miss_sync_s: float = 5.0
    #: After a failed sync, templates go unchecked (Meta decides) this long before the next try.
    template_retry_s: float = 60.0
    #: Templates per page of ``GET /{waba_id}/message_templates`` (every page is read).
    template_page_size: int = 100

    #: Uploaded media ids are reused this long (Meta keeps them 30 days).
    media_cache_ttl_s: int = 29 * 24 * 3600
    #: Upper bound of one media upload or link download.
    media_timeout_s: float = 60.0
    #: The largest file ``GET /internal/v1/media/content`` serves (read into memory
    #: and checked before it is answered): images, audio, video and stickers fit;
    #: documents above it are refused (413).
    media_download_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)

    #: Circuit breaker per account.
    breaker_window_s: float = 60.0
    breaker_min_volume: int = 10
    breaker_failure_ratio: float = 0.5
    breaker_open_s: float = 30.0

    def check_secrets(self) -> None:
        check_secret(self.service_token, "FLOWCHAT_SERVICE_TOKEN")
