"""Alert rules name Meta's codes as the one vocabulary does (flowchat_contracts.meta_codes)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from flowchat_contracts import meta_codes

RULES = Path(__file__).resolve().parents[2] / "deploy/prometheus/rules/flowchat.rules.yml"


def alert_codes(alert: str) -> set[int]:
    """The error codes an alert's ``code=~"…"`` matcher selects."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rule = next(r for g in groups for r in g["rules"] if r.get("alert") == alert)
    pattern = re.search(r'code=~"([^"]+)"', rule["expr"])
    assert pattern, f"{alert} has no code matcher"
    return {int(c) for c in pattern.group(1).split("|")}


def test_token_alert_fires_on_every_token_code() -> None:
    assert set(meta_codes.TOKEN) <= alert_codes("FlowchatTokenFailing")
