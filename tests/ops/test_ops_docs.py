"""The operations docs: every relative link resolves, and the JSON examples of the
queue contracts are valid commands (schema file and the Python model agree)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from flowchat_contracts import OutboundCommand

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "docker" / "README.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc):
    for target, _ in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_queue_contract_examples_are_valid_outbound_commands():
    text = (ROOT / "docs" / "queue-contracts.md").read_text()
    schema = json.loads((ROOT / "libs/contracts/schemas/outbound_command.v1.json").read_text())
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    for block in blocks:
        data = json.loads(block)
        jsonschema.validate(data, schema)
        assert OutboundCommand.model_validate(data).idempotency_key == data["idempotency_key"]


def test_the_documented_docs_exist():
    names = {p.name for p in DOCS}
    assert {"architecture.md", "operations.md", "api.md", "queue-contracts.md"} <= names
