"""The broker cost diagnostic's arithmetic, arguments and ack policies: no node started."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from bench import broker_cost
from bench.broker_cost import Acker
from bench.common import parse_list, parse_rates


def test_net_of_idle_takes_the_idle_cpu_of_the_window_off_before_dividing() -> None:
    # 1.2 s of node CPU over 10 s with 20 ms/s idle, for 1,000 messages
    assert broker_cost.net_ms_per_message(1.2, 0.02, 10.0, 1000) == pytest.approx(1.0)
    # a quiet window (less than idle) is negative: shown, not hidden
    assert broker_cost.net_ms_per_message(0.1, 0.02, 10.0, 100) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="no messages"):
        broker_cost.net_ms_per_message(1.0, 0.0, 1.0, 0)


def test_arguments_parse_rates_and_known_cases() -> None:
    args = broker_cost.parser().parse_args(["--rates", "60, 600,", "--cases", "quorum,classic"])
    assert args.rates == [60, 600]
    assert args.cases == ["quorum", "classic"]
    defaults = broker_cost.parser().parse_args([])
    assert defaults.cases == list(broker_cost.CASES)
    assert defaults.repeats >= 3
    for bad in ("0", "sixty", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rates(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown: lazy"):
        parse_list("quorum,lazy", list(broker_cost.CASES))


def test_queue_arguments_per_type() -> None:
    assert broker_cost.CASES["quorum"].queue_arguments() == {"x-queue-type": "quorum"}
    assert broker_cost.CASES["classic"].queue_arguments() == {
        "x-queue-type": "classic",
        "x-queue-version": 2,
    }
    with pytest.raises(ValueError, match="stream"):
        broker_cost.Case("s", queue_type="stream").queue_arguments()


def test_rounds_rotate_the_case_order_and_keep_every_case() -> None:
    order = broker_cost.rounds(["a", "b", "c"], 3)
    assert order == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]


def test_table_gives_median_and_spread_per_case_and_rate() -> None:
    def run(case: str, rate: int, net: float, p95: float) -> dict[str, object]:
        return {
            "case": case,
            "rate": rate,
            "broker_cpu_ms_per_msg_net": net,
            "broker_cpu_ms_per_msg": net + 0.1,
            "client_cpu_ms_per_msg": 0.5,
            "ack_frames_per_msg": 1.0,
            "latency_ms": {"p50": 1.0, "p95": p95},
        }

    runs = [run("q", 60, n, p) for n, p in ((0.3, 9.0), (0.5, 5.0), (0.4, 7.0))]
    runs.append(run("q", 600, 0.2, 3.0))
    rows = broker_cost.table(runs)
    assert [(r["case"], r["rate"], r["repeats"]) for r in rows] == [("q", 60, 3), ("q", 600, 1)]
    assert rows[0]["net_ms_per_msg"] == {"median": 0.4, "min": 0.3, "max": 0.5}
    assert rows[0]["p95_ms"] == {"median": 7.0, "min": 5.0, "max": 9.0}
    text = broker_cost.markdown({"table": rows, "idle": [{"ms_per_s": 12.0, "load": [1.0]}]})
    assert "| q | 60 | 0.400 (0.300-0.500) |" in text
    assert "node idle: 12.00" in text


class _Sent:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bool]] = []

    async def __call__(self, tag: int, multiple: bool) -> None:
        self.frames.append((tag, multiple))


async def test_ack_each_sends_one_plain_ack_per_delivery() -> None:
    sent = _Sent()
    acker = Acker(1, 0.0, sent)
    for tag in (1, 2, 3):
        acker.delivered(tag)
    await acker.drain()
    assert sent.frames == [(1, False), (2, False), (3, False)]


async def test_ack_every_n_covers_runs_with_multiple_and_drain_acks_the_rest() -> None:
    sent = _Sent()
    acker = Acker(4, 10.0, sent)  # the linger never fires within the test
    for tag in range(1, 11):
        acker.delivered(tag)
    await asyncio.sleep(0)
    assert sent.frames == [(4, True), (8, True)]
    await acker.drain()
    assert sent.frames == [(4, True), (8, True), (10, True)]
    assert acker.frames == 3


async def test_ack_linger_sends_one_multiple_ack_after_the_linger() -> None:
    sent = _Sent()
    acker = Acker(0, 0.02, sent)
    for tag in (1, 2, 3):
        acker.delivered(tag)
    await asyncio.sleep(0.005)
    assert sent.frames == []
    await asyncio.sleep(0.05)
    assert sent.frames == [(3, True)]
    acker.delivered(4)
    await acker.drain()
    assert sent.frames == [(3, True), (4, True)]


def test_an_ack_policy_needs_a_count_or_a_linger() -> None:
    with pytest.raises(ValueError, match="count or a linger"):
        Acker(0, 0.0, _Sent())
