"""Prometheus metrics of the tenant service (labels from fixed sets or tenant and account ids,
never secrets or phone numbers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROVIDER_CALLS = Counter(
    "flowchat_tenant_provider_calls_total",
    "Calls to the provider to validate a number, by outcome",
    ["operation", "outcome"],
)
HEALTH_CHECKS = Counter(
    "flowchat_tenant_health_checks_total",
    "Number health readings (quality rating, throughput, messaging limit), by outcome",
    ["outcome"],
)
API_KEY_CHECKS = Counter(
    "flowchat_tenant_api_key_checks_total",
    "API key verifications, by outcome (valid, unknown, revoked)",
    ["outcome"],
)
INTERNAL_LOOKUPS = Counter(
    "flowchat_tenant_internal_lookups_total",
    "Internal account lookups, by kind and outcome (found, not_modified, not_found)",
    ["kind", "outcome"],
)
SECRETS_ROTATED = Counter(
    "flowchat_tenant_secrets_rotated_total", "Secrets re-encrypted under the newest key"
)

#: Meta's quality rating as a number: 3 GREEN, 2 YELLOW, 1 RED, 0 unknown.
QUALITY_SCORE = {"GREEN": 3, "YELLOW": 2, "RED": 1}
NUMBER_QUALITY = Gauge(
    "flowchat_tenant_number_quality",
    "Quality rating of a number at its last health reading: 3 green, 2 yellow, 1 red, 0 unknown",
    ["tenant", "account"],
)
NUMBER_TOKEN_VALID = Gauge(
    "flowchat_tenant_number_token_valid",
    "1 when the number's access token worked at its last health reading, 0 when refused",
    ["tenant", "account"],
)
LOGINS = Counter(
    "flowchat_tenant_logins_total",
    "User logins, by outcome (ok, failed, locked, refused)",
    ["outcome"],
)
