"""The tenant events of issue 22: one model per event type, each with its JSON Schema
and the common envelope (stable id, tenant, account, timestamp, sequence)."""

from __future__ import annotations

import json
import typing

from pydantic import TypeAdapter

from flowchat_contracts.schemas import DEFAULT_DIR
from flowchat_contracts.tenant_events import (
    ALL_EVENT_TYPES,
    CAMPAIGN_EVENT_TYPES,
    ORDER_EVENT_TYPES,
    TENANT_EVENT_SCHEMAS,
    AnyTenantEvent,
)

ENVELOPE = {"id", "tenant_id", "account_id", "timestamp", "sequence", "type", "data"}


def _models() -> list[typing.Any]:
    union = typing.get_args(AnyTenantEvent)[0]
    return list(typing.get_args(union))


def test_every_event_type_has_exactly_one_model_with_the_envelope() -> None:
    models = _models()
    types = [m.model_fields["type"].default for m in models]
    assert sorted(types) == sorted(ALL_EVENT_TYPES)
    assert len(set(types)) == len(types)
    for model in models:
        assert set(model.model_fields) >= ENVELOPE, model


def test_every_event_type_has_a_versioned_schema_on_disk() -> None:
    for model in _models():
        kind = model.model_fields["type"].default
        path = DEFAULT_DIR / f"webhook.{kind}.v1.json"
        schema = json.loads(path.read_text())
        assert schema["properties"]["type"]["const"] == kind
        assert {"id", "tenant_id", "account_id", "timestamp", "data"} <= set(schema["required"])
    assert set(ORDER_EVENT_TYPES.values()) | set(CAMPAIGN_EVENT_TYPES.values()) <= set(
        ALL_EVENT_TYPES
    )
    assert "order_changed.v1" in TENANT_EVENT_SCHEMAS


def test_an_event_is_parsed_by_its_type_and_unknown_fields_are_ignored() -> None:
    adapter: TypeAdapter[typing.Any] = TypeAdapter(AnyTenantEvent)
    event = adapter.validate_python(
        {
            "id": "evt_1",
            "type": "campaign.paused",
            "tenant_id": "t",
            "account_id": "a",
            "timestamp": "2026-12-01T12:00:00Z",
            "future": 1,
            "data": {"campaign_id": "cmp_1", "status": "paused", "reason": "operator"},
        }
    )
    assert type(event).__name__ == "CampaignPaused"
    assert event.data.reason == "operator"
    assert event.sequence is None
