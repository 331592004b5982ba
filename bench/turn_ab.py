"""``python -m bench.turn_ab --rev A --rev B [...] [--rounds 3] [--rates 10,60]``: the
cost of a conversation turn (:mod:`bench.turn_cost`) across git revisions, interleaved.

Each revision is checked out in a scratch git worktree under the system's temporary
folder (detached, removed afterwards) with a venv of its own (``uv sync --frozen``).
Then the rounds alternate the revisions (A, B, C, A, B, C, ...): each run is one fresh
isolated stack of *that* revision's services, driven and measured by *this* checkout's
code (:func:`bench.turn_cost.measure` at the fixed ``--rates``, no knee search), so an
old revision needs none of the bench's newer options. On a shared 2-core machine a
single run is noise; the medians over the rounds, per revision and rate, are the
figures: CPU ms per turn of each process, the total, the services with PostgreSQL
(``own``: without the shared RabbitMQ and Redis), the sandbox's and the load driver's
(not counted), broker messages, PostgreSQL commits and webhooks per turn, and the p95
round trip. ``--json`` writes every run and the medians; the load averages of every run
are in it and printed beside the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import stats
from bench.common import ROOT, load, parse_rates, say
from bench.turn_cost import measure
from flowchat_platform.logs import configure_logging


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(  # noqa: S603 - git with our own arguments
        ["git", *args],  # noqa: S607 - git from PATH, as make does
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@contextmanager
def checkouts(revs: list[str]) -> Iterator[dict[str, Path]]:
    """Each revision (label → worktree), checked out detached with its own venv; every
    worktree removed on the way out."""
    base = Path(tempfile.mkdtemp(prefix="flowchat-turn-ab-"))
    made: list[Path] = []
    try:
        out: dict[str, Path] = {}
        for rev in revs:
            sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
            path = base / f"{len(out)}-{sha[:9]}"
            _git("worktree", "add", "--detach", str(path), sha)
            made.append(path)
            say(f"turn_ab: {rev} ({sha[:9]}) in {path}: uv sync --frozen")
            subprocess.run(
                ["uv", "sync", "--frozen", "--quiet"],  # noqa: S607 - uv from PATH
                cwd=path,
                check=True,
            )
            out[f"{rev} ({sha[:9]})" if rev != sha[: len(rev)] else sha[:9]] = path
        yield out
    finally:
        for path in made:
            subprocess.run(  # noqa: S603 - git with our own arguments
                ["git", "worktree", "remove", "--force", str(path)],  # noqa: S607
                cwd=ROOT,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


def _median(values: list[float]) -> float | None:
    return round(stats.median(values), 2) if values else None


def _per_key(pts: list[dict[str, Any]], field: str, keys: list[str]) -> dict[str, float | None]:
    """The median of each key of ``pt[field]`` over the runs that have it."""
    return {k: _median([pt[field][k] for pt in pts if k in pt.get(field, {})]) for k in keys}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rate: the median over ``runs`` (one revision's) of every per-turn figure."""
    out: dict[str, Any] = {}
    rates = sorted({s["rate_per_s"] for r in runs for s in r["steps"]})
    for rate in rates:
        steps = [s for r in runs for s in r["steps"] if s["rate_per_s"] == rate]
        pts = [s["per_turn"] for s in steps]
        procs = sorted({k for pt in pts for k in pt["cpu_ms"]})
        outside = sorted({k for pt in pts for k in pt.get("cpu_ms_outside", {})})
        out[str(rate)] = {
            "runs": len(steps),
            "cpu_ms": _per_key(pts, "cpu_ms", procs),
            "cpu_ms_outside": _per_key(pts, "cpu_ms_outside", outside),
            **{
                key: _median([pt[key] for pt in pts])
                for key in (
                    "cpu_ms_total",
                    "cpu_ms_own",
                    "broker_published",
                    "broker_consumed",
                    "pg_commits",
                    "webhooks",
                )
            },
            "p95_ms": _median([s["latency_ms"]["p95"] for s in steps if s["latency_ms"]]),
            "no_reply": sum(s["no_reply"] for s in steps),
            "unsettled": sum(not s["settled"] for s in steps),
        }
    return out


def table(result: dict[str, dict[str, Any]]) -> str:
    """A markdown table: one row per revision and rate, the medians."""
    procs = sorted({p for m in result.values() for r in m.values() for p in r["cpu_ms"]})
    head = [
        "rev",
        "rate/s",
        "runs",
        *procs,
        "**total**",
        "services+PG",
        "sandbox",
        "load driver",
        "published",
        "consumed",
        "commits",
        "webhooks",
        "p95 ms",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rev, by_rate in result.items():
        for rate, m in by_rate.items():
            cells = [
                rev,
                rate,
                str(m["runs"]),
                *(_cell(m["cpu_ms"].get(p)) for p in procs),
                f"**{_cell(m['cpu_ms_total'])}**",
                _cell(m["cpu_ms_own"]),
                _cell(m["cpu_ms_outside"].get("sandbox")),
                _cell(m["cpu_ms_outside"].get("load_driver")),
                *(_cell(m[k]) for k in ("broker_published", "broker_consumed", "pg_commits")),
                _cell(m["webhooks"]),
                _cell(m["p95_ms"])
                + (f" ({m['no_reply']} no reply)" if m["no_reply"] else "")
                + (f" ({m['unsettled']} unsettled)" if m["unsettled"] else ""),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(v: float | None) -> str:
    return "—" if v is None else f"{v:.1f}"


async def interleaved(
    trees: dict[str, Path], rounds: int, rates: tuple[int, ...], seconds: float
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {rev: [] for rev in trees}
    order: list[dict[str, Any]] = []
    for n in range(rounds):
        for rev, root in trees.items():
            say(f"turn_ab: round {n + 1}/{rounds}, {rev} (load {load()})")
            got = await measure(rates, seconds, search=False, root=root)
            runs[rev].append(got)
            order.append({"round": n + 1, "rev": rev, "load_avg": got["load_avg"]})
    result = {rev: medians(rs) for rev, rs in runs.items()}
    return {"order": order, "medians": result, "runs": runs}


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.turn_ab", description=__doc__)
    p.add_argument("--rev", action="append", required=True, help="a git revision (repeat)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each revision (default 3)")
    p.add_argument(
        "--rates", type=parse_rates, default="10,60", help="conversations/s, comma-separated"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="seconds offered per rate")
    p.add_argument("--json", type=Path, help="write every run and the medians here")
    a = p.parse_args()
    rates = tuple(a.rates)
    configure_logging("bench", "WARNING")
    started = load()
    with checkouts(a.rev) as trees:
        out = asyncio.run(interleaved(trees, a.rounds, rates, a.seconds))
    out |= {"rates": list(rates), "seconds": a.seconds, "rounds": a.rounds}
    out |= {"load_avg_at_start": started, "load_avg_at_end": load()}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    print(table(out["medians"]))
    loads = "; ".join(f"{o['rev']} #{o['round']}: {o['load_avg']}" for o in out["order"])
    print(
        f"\nmedians of {a.rounds} interleaved runs per revision; load averages at each "
        f"run's end (1/5/15 min): {loads}; at start {started}, at end {out['load_avg_at_end']}"
    )


if __name__ == "__main__":
    main()
