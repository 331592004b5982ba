"""Prometheus metrics of the tenant service (labels from fixed sets, never tenant data)."""

from __future__ import annotations

from prometheus_client import Counter

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
