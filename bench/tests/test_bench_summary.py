"""What a run keeps in bench/results/summary.json and shows in README.md: the state-manager
at an opt-in size beside make bench's 10 M, and a run's note. No I/O, no servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import report
from bench.__main__ import _saved, merge_partial, result_name


def _partitions(stored: int, sample: int) -> dict[str, Any]:
    return {
        "messages_stored": stored,
        "database": {"partitions": 18},
        "by_id_ms": {"p50": 15.0, "p95": 27.8},
        "by_tenant_hour_ms": {"p50": 29.3, "p95": 55.0},
        "ingest": {"events_per_s": 235},
        "retention": {
            "sample_messages": sample,
            "drop_partition": {"seconds": 0.07},
            "delete": {"seconds": 14.94},
            "delete_vs_drop": 213.4,
        },
    }


def _summary(results: dict[str, Any], **extra: Any) -> dict[str, Any]:
    machine = {"cpus": 2, "memory_gb": 23.5, "python": "3.11.7", "load_avg_at_start": [1, 1, 1]}
    return {
        "command": "make bench",
        "date": "2026-12-07 10:00 UTC",
        "seconds": 10.0,
        "machine": {**machine, "load_avg_at_end": [1, 1, 1]},
        "failed": {},
        "notes": [],
        "results": results,
        **extra,
    }


def test_an_opt_in_size_is_kept_beside_the_10_m_figures(tmp_path: Path) -> None:
    assert result_name("state_partitions", {"messages_stored": 10_000_000}) == "state_partitions"
    assert result_name("state_partitions", {"messages_stored": 1_000_000}) == "state_partitions_1m"
    assert result_name("state_partitions", {"messages_stored": 50_000_000}) == (
        "state_partitions_50m"
    )
    assert result_name("gateway", {"messages_stored": 50_000_000}) == "gateway"
    for name, stored in (("state_partitions", 10_000_000), ("state_partitions_50m", 50_000_000)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_partitions(stored, 20_000)))
    assert set(_saved(tmp_path)) == {"state_partitions", "state_partitions_50m"}

    rows = report.table_rows(
        {
            "state_partitions": _partitions(10_000_000, 100_000),
            "state_partitions_50m": _partitions(50_000_000, 20_000),
        }
    )
    labels = [r[0] for r in rows]
    assert "state-manager retention of 100,000 messages, 10 M stored" in labels
    assert "state-manager retention of 20,000 messages, 50 M stored" in labels
    assert labels.index("state-manager GET /v1/messages/{id}, 10 M stored, 18 partitions") < (
        labels.index("state-manager GET /v1/messages/{id}, 50 M stored, 18 partitions")
    )


def test_a_runs_note_is_kept_and_shown_after_its_date() -> None:
    full = _summary({"gateway": {}}, note="The full run's conditions.")
    partial = _summary({"turn_cost": {}}, note="Beside a make test run.")
    partial["command"] = "make bench ARGS='--only turn_cost'"
    merged = merge_partial(full, partial, ["turn_cost"])
    assert merged["note"] == "The full run's conditions."
    assert merged["partial_runs"][-1]["note"] == "Beside a make test run."
    again = merge_partial(merged, {**partial, "note": ""}, ["turn_cost"])
    assert "note" not in again["partial_runs"][-1]  # a re-run without a note drops the old one

    text = report.readme_section(merged, [])
    latest = next(line for line in text.splitlines() if line.startswith("Latest run:"))
    assert latest.endswith("The full run's conditions.")
    remeasured = next(line for line in text.splitlines() if line.startswith("Re-measured"))
    assert remeasured.endswith("turn_cost. Beside a make test run.")
