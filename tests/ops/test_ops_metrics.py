"""Every service's /metrics, scraped from a running stack after real traffic, passes
``promtool check metrics`` and FlowChat's own naming and cardinality rules."""

from __future__ import annotations

import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

#: Families every service gets from libs/platform.
PLATFORM_PREFIXES = ("flowchat_amqp_", "flowchat_http_", "flowchat_ready")
#: Label names that would mean unbounded cardinality (one series per message or customer).
FORBIDDEN_LABELS = {"to", "wa_id", "customer", "phone", "message_id", "wamid", "correlation_id"}


@pytest.fixture(scope="module")
def scraped(ops_stack):
    return ops_stack.metrics()


@pytest.mark.parametrize(
    "service",
    ["gateway", "tenant", "conversation", "sender", "state-manager", "relay", "inbox", "sandbox"],
)
def test_promtool_check_metrics_is_clean(service, scraped, promtool):
    text = scraped[service]
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    problems = (result.stdout + result.stderr).decode().strip()
    assert result.returncode == 0, problems
    assert problems == ""


@pytest.mark.parametrize(
    "service",
    ["gateway", "tenant", "conversation", "sender", "state-manager", "relay", "inbox", "sandbox"],
)
def test_names_carry_the_service_prefix_and_labels_are_bounded(service, scraped):
    own = "flowchat_" + service.replace("-", "_") + "_"
    families = list(text_string_to_metric_families(scraped[service]))
    names = {f.name for f in families if f.name.startswith("flowchat_")}
    assert any(n.startswith(own) for n in names), f"{service} exports no {own}* metric"
    for name in names:
        assert name.startswith((own, *PLATFORM_PREFIXES)), f"{name} is not {own}* nor shared"
    for family in families:
        for sample in family.samples:
            bad = FORBIDDEN_LABELS & set(sample.labels)
            assert not bad, f"{sample.name} has unbounded labels {bad}"


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_queue_depth_is_exported_for_consumed_and_parking_queues(scraped):
    expected = {
        "sender": ["whatsapp.outbound", "whatsapp.outbound.dlq"],
        "conversation": ["conversation.inbound", "flowchat.poison"],
        "state-manager": ["state-manager.status", "flowchat.poison"],
    }
    for service, queues in expected.items():
        for queue in queues:
            depth = sample(scraped[service], "flowchat_amqp_queue_messages", queue=queue)
            assert depth is not None, f"{service} exports no depth of {queue}"
        consumers = sample(scraped[service], "flowchat_amqp_queue_consumers", queue=queues[0])
        assert consumers is not None
        assert consumers >= 1


def test_per_tenant_and_number_metrics_after_traffic(scraped, ops_stack):
    tenant, account = ops_stack.seeded["tenant_id"], ops_stack.seeded["account_id"]
    labels = {"tenant": tenant, "account": account}
    assert sample(scraped["tenant"], "flowchat_tenant_number_quality", **labels) == 3  # GREEN
    assert sample(scraped["tenant"], "flowchat_tenant_number_token_valid", **labels) == 1
    accepted = sample(
        scraped["sender"], "flowchat_sender_sends_total", outcome="accepted", **labels
    )
    assert accepted is not None
    assert accepted >= 1
    campaign = sample(scraped["sender"], "flowchat_sender_campaign_sends_total", tenant=tenant)
    assert campaign == 1
    assert sample(scraped["gateway"], "flowchat_gateway_signature_failures_total") == 1


@pytest.mark.parametrize(
    "service",
    ["gateway", "tenant", "conversation", "sender", "state-manager", "relay", "inbox", "sandbox"],
)
def test_no_created_series(service, scraped):
    created = {
        s.name
        for family in text_string_to_metric_families(scraped[service])
        for s in family.samples
        if s.name.endswith("_created")
    }
    assert not created


def test_throttling_is_counted_per_tenant_and_account(scraped, ops_stack):
    tenant, account = ops_stack.seeded["tenant_id"], ops_stack.seeded["account_id"]
    waits = sample(
        scraped["sender"], "flowchat_sender_limiter_waits_total", tenant=tenant, account=account
    )
    assert waits is not None
    assert waits >= 1


def test_an_unknown_account_makes_no_series_of_its_own(scraped, ops_stack):
    unknown = ops_stack.seeded["unknown_account"]
    for service, text in scraped.items():
        assert unknown not in text, f"{service} exports a series for an unregistered account"
    refused = sample(
        scraped["sender"],
        "flowchat_sender_sends_total",
        tenant="unknown",
        account="unknown",
        outcome="failed",
        code="-10",
    )
    assert refused == 1
