"""The turn cost's per-turn arithmetic, its README rows and the interleaved A/B table:
no I/O, no servers."""

from __future__ import annotations

import asyncio
from typing import Any

from bench import report, turn_ab, turn_cost


def _step(rate: int, p95: float, total: float, *, sandbox: float = 4.0) -> dict[str, Any]:
    return {
        "rate_per_s": rate,
        "turns": rate * 10,
        "settled": True,
        "no_reply": 0,
        "latency_ms": {"p95": p95},
        "within_target": p95 <= 50,
        "per_turn": {
            "cpu_ms": {"gateway": total / 2, "rabbitmq": total / 2},
            "cpu_ms_total": total,
            "cpu_ms_own": total / 2,
            "cpu_ms_outside": {"sandbox": sandbox, "load_driver": 9.0},
            "broker_published": 5.0,
            "broker_consumed": 5.0,
            "pg_commits": 2.0,
            "webhooks": 4.0,
        },
    }


def test_per_turn_shows_the_sandbox_and_the_driver_without_counting_them() -> None:
    cpu = {"gateway": 0.2, "rabbitmq": 0.3, "sandbox": 0.5, "load_driver": 0.4}
    pt = turn_cost._per_turn(cpu, {"webhooks": 40.0}, 10, idle_per_s={}, seconds=1.0)
    assert pt["cpu_ms"] == {"gateway": 20.0, "rabbitmq": 30.0}
    assert pt["cpu_ms_total"] == 50.0
    assert pt["cpu_ms_own"] == 20.0
    assert pt["cpu_ms_outside"] == {"sandbox": 50.0, "load_driver": 40.0}
    assert "sandbox" not in pt["cpu_ms_net_of_idle"]
    assert pt["webhooks"] == 4.0


def test_knee_row_states_the_p95_at_100_per_s_after_the_search() -> None:
    steps = [_step(10, 20.0, 30.0), _step(40, 22.0, 28.0), _step(60, 83.0, 27.0)]
    at_100 = _step(100, 240.0, 26.0)
    tc = {
        "steps": steps,
        "after_search": [at_100],
        "at_100_per_s": at_100,
        "knee_per_s": turn_cost.knee(steps),
        "at_10_per_s": steps[0],
        "at_knee": steps[1],
        "shared_servers": ["rabbitmq", "redis"],
        "targets": {"p95_ms": 50, "cpu_ms_per_turn": 25, "knee_per_s": 60},
    }
    cpu10, cpu_knee, knee = report.table_rows({"turn_cost": tc})
    assert tc["knee_per_s"] == 40  # the 100/s step does not move the knee
    assert knee[1] == "40 conv/s; p95 at 100/s: 240 ms"
    assert knee[2].endswith("60/s p95 83.0 ms; 100/s p95 240 ms")
    assert "not counted: sandbox 4.0, load driver 9.0 CPU ms" in cpu10[1]
    assert "**total 30.0**" in cpu10[1]
    assert cpu_knee[0].startswith("CPU ms per turn at the knee (40/s")


def test_ab_medians_per_revision_and_rate() -> None:
    runs = [
        {"steps": [_step(10, p95, total, sandbox=sb)]}
        for p95, total, sb in ((20.0, 30.0, 4.0), (40.0, 50.0, 6.0), (30.0, 20.0, 5.0))
    ]
    m = turn_ab.medians(runs)["10"]
    assert m["runs"] == 3
    assert m["cpu_ms_total"] == 30.0
    assert m["p95_ms"] == 30.0
    assert m["cpu_ms_outside"]["sandbox"] == 5.0
    assert m["cpu_ms"]["gateway"] == 15.0
    text = turn_ab.table({"old": {"10": m}, "new": {"10": {**m, "cpu_ms_total": 12.0}}})
    lines = text.splitlines()
    assert lines[0].startswith("| rev | rate/s | runs | gateway | rabbitmq | **total**")
    assert lines[2].startswith("| old | 10 | 3 | 15.0 | 15.0 | **30.0** | 15.0 | 5.0 | 9.0 |")
    assert lines[3].startswith("| new | 10 | 3 | 15.0 | 15.0 | **12.0** |")


async def test_settle_reads_transcripts_only_once_every_reply_is_due(monkeypatch) -> None:
    """While the sandbox has accepted fewer sends than the step's turns, no transcript is
    read (each read costs the sandbox CPU on the cores the turns run on)."""
    sends = [0.0, 1.0, 2.0]  # the sandbox's accepted sends, one reading a poll
    counted: list[float] = []
    reads: list[tuple[str, int]] = []

    async def first_reply_ms(_http: object, _sandbox: str, wa: str) -> float:
        reads.append((wa, len(counted)))
        return 12.5

    async def counters(*_args: object) -> dict[str, float]:
        return {"replies": 2.0, "broker_published": 1.0}

    async def nothing() -> None:
        return None

    async def empty() -> int:
        return 0

    class Stack:
        def url(self, _name: str) -> str:
            return "http://sandbox"

    run = turn_cost.Run(
        http=None,  # type: ignore[arg-type]
        stack=Stack(),  # type: ignore[arg-type]
        meter=type("M", (), {"sample": staticmethod(nothing)})(),
        queues=type("Q", (), {"depth": staticmethod(empty)})(),
        pg=None,  # type: ignore[arg-type]
        phone_number_id="1",
    )

    async def replies() -> float:
        counted.append(sends[len(counted)])
        return counted[-1]

    monkeypatch.setattr(run, "replies", replies)
    monkeypatch.setattr(turn_cost, "_first_reply_ms", first_reply_ms)
    monkeypatch.setattr(turn_cost, "_counters", counters)
    monkeypatch.setattr(asyncio, "sleep", lambda _s: nothing())
    latencies, missing, settled = await run._settle(["a", "b"], replies_due=2.0)
    # once each, after the third poll's count reached the 2 replies due
    assert reads == [("a", 3), ("b", 3)]
    assert latencies == [12.5, 12.5]
    assert missing == []
    assert settled
