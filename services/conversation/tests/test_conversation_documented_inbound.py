"""The inbound examples of ``docs/queue-contracts.md`` (its ```` ```jsonc ```` blocks of
``kind: inbound_message``) are what the conversation consumer reads: each validates
against its version's JSON Schema in ``libs/contracts/schemas`` and decodes with the
consumer's own decoder (``tests/ops/test_ops_docs.py`` checks the ```` ```json ````
blocks, the outbound commands)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema

from flowchat_contracts import InboundMessageV2
from flowchat_conversation.commerce.consumer import INBOUND_DECODER

REPO = Path(__file__).resolve().parents[3]


def documented_inbound() -> list[dict[str, Any]]:
    text = (REPO / "docs/queue-contracts.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```jsonc\n(.*?)```", text, re.S)]
    return [b for b in blocks if b.get("kind") == "inbound_message"]


def test_documented_inbound_examples_are_what_the_consumer_reads() -> None:
    examples = documented_inbound()
    assert {e.get("type") for e in examples} >= {"flow_response"}
    for example in examples:
        version = example.get("schema_version", 1)
        schema_path = REPO / f"libs/contracts/schemas/inbound_message.v{version}.json"
        jsonschema.validate(example, json.loads(schema_path.read_text()))
        message = INBOUND_DECODER.validate_json(json.dumps(example))
        assert message.schema_version == version
        assert message.type == example["type"]


def test_the_flow_example_carries_its_parsed_answer() -> None:
    (flow,) = [e for e in documented_inbound() if e["type"] == "flow_response"]
    message = INBOUND_DECODER.validate_json(json.dumps(flow))
    assert isinstance(message, InboundMessageV2)
    assert message.customer_wa_id is None
    assert message.flow is not None
    assert message.flow.response == json.loads(message.flow.response_json or "")
    assert message.flow.flow_token == "order-1234"
