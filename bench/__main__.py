"""``python -m bench [--quick] [--only a,b]``: run the benchmarks, write
``bench/results/<name>.json`` and PNG plots, and (full runs) the README's table.

Scenarios, in order: throughput, rate_limit, priority, gateway, roundtrip, turn_cost,
state_manager,
relay, growth, inbox, state_partitions, conversation, console, privacy; ``memory`` is gathered
from the peaks the others sampled. ``--quick`` runs small sizes and one round each (a CI
smoke) into ``bench/results/quick/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    console,
    conversation,
    gateway,
    inbox,
    privacy,
    relay,
    report,
    roundtrip,
    sender,
    state,
    state_partitions,
    turn_cost,
)
from bench.common import RESULTS, ROOT, load, machine, say
from flowchat_platform.logs import configure_logging

SCENARIOS: dict[str, Callable[[bool], Awaitable[dict[str, Any]]]] = {
    "throughput": sender.throughput,
    "rate_limit": sender.rate_accuracy,
    "priority": sender.priority,
    "gateway": gateway.ingest,
    "roundtrip": roundtrip.roundtrip,
    "turn_cost": turn_cost.turn_cost,
    "state_manager": state.ingest,
    "state_cost": state.cost,
    "relay": relay.throughput,
    "growth": sender.growth,
    "inbox": inbox.inbox,
    "state_partitions": state_partitions.partitions,
    "conversation": conversation.memory,
    "console": console.console,
    "privacy": privacy.encryption_cost,
}
MEMORY_LIMIT_MB = 150


def memory(results: dict[str, Any]) -> dict[str, Any] | None:
    """Peak RSS per service across every scenario that sampled it."""
    peaks: dict[str, float] = {}
    sources: dict[str, str] = {}

    def take(name: str, mb: float | None, where: str) -> None:
        if mb and mb > peaks.get(name, 0):
            peaks[name], sources[name] = mb, where

    rt = results.get("roundtrip") or {}
    for name, mb in (rt.get("rss_peak_mb") or {}).items():
        take(name, mb, "roundtrip")
    take("sender", (results.get("throughput") or {}).get("sender_rss_peak_mb"), "throughput")
    take("gateway", (results.get("gateway") or {}).get("gateway_rss_peak_mb"), "gateway")
    take("state-manager", (results.get("state_manager") or {}).get("rss_peak_mb"), "state")
    take(
        "inbox",
        ((results.get("inbox") or {}).get("ingest") or {}).get("inbox_rss_peak_mb"),
        "inbox",
    )
    take("relay", (results.get("relay") or {}).get("relay_rss_peak_mb"), "relay")
    take(
        "conversation",
        (results.get("conversation") or {}).get("rss_peak_mb"),
        "conversation (orders + invoice PDFs)",
    )
    for d in (results.get("growth") or {}).get("by_depth", []):
        take("sender", d.get("sender_rss_peak_mb"), f"growth {d['queued']:,} queued")
    if not peaks:
        return None
    services = {k: v for k, v in peaks.items() if k != "sandbox"}
    return {
        "peak_mb": peaks,
        "measured_in": sources,
        "limit_mb": MEMORY_LIMIT_MB,
        "note": "the sandbox is a test tool, not a service; shown, not judged",
        "pass": all(v <= MEMORY_LIMIT_MB for v in services.values()),
    }


def _saved(folder: Path) -> dict[str, Any]:
    """Every scenario's results as its JSON file holds them (the state-manager's opt-in
    sizes too: ``state_partitions_50m.json``)."""
    sizes = sorted(p.stem for p in folder.glob("state_partitions_*m.json"))
    return {
        name: json.loads((folder / f"{name}.json").read_text())
        for name in [*SCENARIOS, *sizes, "memory"]
        if (folder / f"{name}.json").exists()
    }


def result_name(name: str, result: dict[str, Any]) -> str:
    """Where a scenario's results are kept: its name, or for the state-manager's stored
    messages at another size than ``make bench``'s 10 M, ``state_partitions_<n>m`` (so a
    ``make bench-state-50m`` run keeps the 10 M figures beside its own)."""
    stored = result.get("messages_stored") if name == "state_partitions" else None
    if stored and stored != 10_000_000 and stored % 1_000_000 == 0:
        return f"{name}_{stored // 1_000_000}m"
    return name


def redraw(quick: bool, readme: bool) -> int:
    """Plots, summary table and README again from the JSON of the last run."""
    folder = RESULTS / "quick" if quick else RESULTS
    summary = json.loads((folder / "summary.json").read_text())
    results = _saved(folder)
    plots = report.plot_all(results, folder)
    summary["table"] = report.table_rows(results)
    summary["notes"] = NOTES
    summary["results"] = {k: _light(v) for k, v in results.items()}
    report.write_json(folder, "summary", summary)
    print(report.markdown_table(summary["table"]))
    if readme and not quick:
        report.update_readme(ROOT / "README.md", report.readme_section(summary, plots))
        say("README.md's Benchmarks section redrawn from bench/results/*.json")
    return 0


async def main(quick: bool, only: list[str], readme: bool, note: str = "") -> int:
    configure_logging("bench", "WARNING")
    report.load_plotting()
    folder = RESULTS / "quick" if quick else RESULTS
    started = time.perf_counter()
    info = machine()
    command = "make bench-quick" if quick else "make bench"
    if only:
        command += f" ARGS='--only {','.join(only)}'"
    results: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, run in SCENARIOS.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        say(f"{name}: starting (load {load()})")
        try:
            result = await run(quick)
        except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the rest
            failed[name] = repr(exc)
            say(f"{name}: FAILED {exc!r}")
            continue
        result["seconds"] = round(time.perf_counter() - t0, 1)
        kept = result_name(name, result)
        results[kept] = result
        if only and kept != name:
            only = [kept if x == name else x for x in only]
        report.write_json(folder, kept, result)
        say(f"{kept}: done in {result['seconds']} s")
    summary: dict[str, Any] = {
        "command": command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
        "machine": {**info, "load_avg_at_end": load()},
        "failed": failed,
        "notes": NOTES,
        "results": {k: _light(v) for k, v in results.items()},
        **({"note": note} if note else {}),
    }
    if only and (folder / "summary.json").exists():
        # --only re-measures some scenarios: the last run's other figures stay
        summary = merge_partial(json.loads((folder / "summary.json").read_text()), summary, only)
    mem = memory(summary["results"])
    if mem:
        summary["results"]["memory"] = mem
        report.write_json(folder, "memory", mem)
    # --only: every scenario's own JSON (this run's and the last full run's)
    plots = report.plot_all(_saved(folder) if only else results, folder)
    summary["table"] = table = report.table_rows(summary["results"])
    report.write_json(folder, "summary", summary)
    print(report.markdown_table(table))
    if readme and not quick:
        report.update_readme(ROOT / "README.md", report.readme_section(summary, plots))
        say("README.md's Benchmarks section updated")
    say(f"all done in {summary['seconds']:.0f} s; results in {folder.relative_to(ROOT)}")
    return 1 if failed else 0


NOTES = [
    "1 M messages queued is extrapolated from 10 k and 100 k, not run: about 1 GB of "
    "quorum-queue data could trip the shared broker's memory alarm and block every "
    "other publisher on the machine.",
    "Deep queues above 25 k messages: the drain is timed over the first 25 k with the "
    "whole backlog queued behind them and the full drain time extrapolated (said in the "
    "row when it applies).",
    "The inbox's 10 M messages are generated in SQL (bench/inbox_data.py) into "
    "flowchat_bench_inbox_10000000, kept between runs while its generator and migrations "
    "match; its reads are timed one request at a time through the inbox's HTTP API.",
    "The state-manager's stored messages are generated in SQL (bench/state_partitions.py) "
    "into flowchat_bench_state_10000000, kept between runs while its generator and "
    "migrations match; 50 M is opt-in (make bench-state-50m: about 54 GB of disk).",
    "State-manager cost per event (state_cost): events published at a steady rate; CPU "
    "of the service and of its PostgreSQL backends from /proc/<pid>/stat, transactions "
    "from pg_stat_database; 'one transaction per event' is the same service with "
    "FLOWCHAT_STATE_MANAGER_MAX_BATCH=1 (as before batching); interleaved rounds, medians.",
    "Rate-limit accuracy is the sandbox's own count of accepted sends (the provider's "
    "view), between the 10th and 90th percentile of their times.",
    "The relay rows may come from a run of their own (make bench ARGS='--only relay'): "
    "their date and load average are in bench/results/relay.json. Before batching, the "
    "same scenario measured 527 deliveries/s (end to end 422/s) at a like load.",
    "CPU per turn (bench/turn_cost.py): /proc/<pid>/stat of every process but the sandbox "
    "and the load driver, read once the step's queues drained and its counters stood "
    "still, divided by the step's turns (idle time while settling included; "
    "bench/results/turn_cost.json also has each figure net of the processes' idle CPU). "
    "RabbitMQ (beam.smp) and redis-server are the machine's shared servers: their share "
    "includes every other run on the machine meanwhile, so the total is an upper bound; "
    "the services and the run database's PostgreSQL backends are this run's alone. The "
    "sandbox's and the load driver's CPU per turn are shown beside it, not counted. After "
    "the knee search, the 100/s step runs too (its p95 is in the knee row).",
]


def merge_partial(last: dict[str, Any], run: dict[str, Any], only: list[str]) -> dict[str, Any]:
    """The last summary with ``run``'s scenarios (an ``--only`` run) in place of its
    own, the partial run recorded in ``partial_runs`` (the full run's date, command and
    machine stay: they describe the other figures)."""
    merged = {**last, "notes": run["notes"]}
    merged["results"] = {**last.get("results", {}), **run["results"]}
    merged["failed"] = {
        **{k: v for k, v in last.get("failed", {}).items() if k not in only},
        **run["failed"],
    }
    partial = {k: run[k] for k in ("command", "date", "seconds", "machine")}
    if run.get("note"):
        partial["note"] = run["note"]
    earlier = [p for p in last.get("partial_runs", []) if set(p["scenarios"]) - set(only)]
    merged["partial_runs"] = [*earlier, {**partial, "scenarios": only}]
    return merged


def _light(data: dict[str, Any]) -> dict[str, Any]:
    """The summary keeps the figures, not the raw curves and histograms."""
    heavy = {"runs", "curve", "per_100ms", "histogram_ms"}
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in heavy:
            continue
        out[k] = _light(v) if isinstance(v, dict) else v
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, one round (CI smoke)")
    p.add_argument("--only", default="", help=f"comma-separated: {', '.join(SCENARIOS)}")
    p.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    p.add_argument("--report", action="store_true", help="only redraw plots, table, README")
    p.add_argument(
        "--note",
        default="",
        help="what to know about this run (the conditions, the code measured): kept with "
        "the run in summary.json and shown after its date in README.md",
    )
    a = p.parse_args()
    if a.report:
        sys.exit(redraw(a.quick, not a.no_readme))
    only = [x for x in a.only.split(",") if x]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    sys.exit(asyncio.run(main(a.quick, only, not a.no_readme, a.note)))
