"""The benchmarks' arithmetic and reporting: no I/O, no servers, no plotting."""

from __future__ import annotations

import math

import pytest

from bench import report, stats


def test_median_and_percentiles() -> None:
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == pytest.approx(50.5)
    assert stats.percentile(values, 95) == pytest.approx(95.05)
    assert stats.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="nothing"):
        stats.median([])


def test_ratio_guards_a_zero_baseline() -> None:
    assert stats.ratio(800, 1000) == 0.8
    assert stats.ratio(1, 0) is None


def test_steady_rate_ignores_the_start_and_the_tail() -> None:
    # 1,000 events at 100/s, with a slow start and a straggler at the end.
    times = [i / 100 for i in range(1000)]
    times[0] = -30.0
    times[-1] = 60.0
    assert stats.steady_rate(times) == pytest.approx(100, rel=0.01)


def test_bursts_and_buckets() -> None:
    times = [0.0, 0.01, 0.02, 0.5, 1.2, 1.21]
    assert stats.max_in_window(times, 0.1) == 3
    assert stats.max_in_window(times, 1.0) == 4
    assert stats.per_bucket(times, 0.5) == [3, 1, 2]


def test_rate_while_active_leaves_pauses_out() -> None:
    # 80/s for 1 s, a 4 s pause, 80/s for 1 s: sustained ≈ 27/s, while sending 80/s.
    times = [i / 80 for i in range(80)] + [5 + i / 80 for i in range(80)]
    assert len(stats.spans(times, 0.5)) == 2
    assert stats.rate_while_active(times) == pytest.approx(80, rel=0.01)
    assert stats.steady_rate(times, trim=0) < 40


def test_summary_and_extrapolation() -> None:
    s = stats.summary([float(x) for x in range(1, 101)])
    assert (s["n"], s["max"]) == (100, 100.0)
    assert s["p50"] == pytest.approx(50.5)
    value, slope, intercept = stats.extrapolate_linear([(10, 2.0), (100, 20.0)], 1000)
    assert value == pytest.approx(200.0)
    assert slope == pytest.approx(0.2)
    assert math.isclose(intercept, 0.0, abs_tol=1e-9)


def test_metric_sum_filters_by_labels() -> None:
    text = "\n".join(
        [
            "# HELP flowchat_sandbox_sends_total Send requests",
            'flowchat_sandbox_sends_total{provider="meta",outcome="accepted"} 120.0',
            'flowchat_sandbox_sends_total{provider="meta",outcome="130429"} 3.0',
            'flowchat_sandbox_sends_total{provider="twilio",outcome="130429"} 2.0',
            'flowchat_sandbox_sends_created{provider="meta",outcome="130429"} 1.7e9',
        ]
    )
    assert stats.metric_sum(text, "flowchat_sandbox_sends_total", outcome="130429") == 5.0
    assert stats.metric_sum(text, "flowchat_sandbox_sends_total") == 125.0
    assert stats.metric_sum(text, "missing_total") == 0.0


RESULTS = {
    "throughput": {
        "sender_msgs_per_s": 900,
        "bare_msgs_per_s": 1500,
        "ratio": 0.6,
        "pass": False,
    },
    "memory": {
        "peak_mb": {"sandbox": 190.0, "sender": 80.0, "gateway": 160.0},
        "limit_mb": 150,
        "pass": False,
    },
}


def test_table_quotes_value_baseline_ratio_and_verdict() -> None:
    rows = report.table_rows(RESULTS)
    sender = rows[0]
    assert sender[1] == "900 msg/s"
    assert sender[2].startswith("1,500 msg/s")
    assert sender[3] == "0.60x"
    assert sender[5] == "**no**"
    memory = rows[1]
    assert "gateway 160" in memory[1]
    assert memory[5] == "**no** (gateway)"  # the sandbox is shown, not judged


def test_readme_section_replaces_only_its_own_section(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nIntro.\n\n## Tests\n\nRun them.\n")
    summary = {
        "command": "make bench",
        "date": "2026-01-01 00:00 UTC",
        "seconds": 600,
        "machine": {"cpus": 2, "memory_gb": 8, "python": "3.11", "load_avg_at_start": [1, 2, 3]},
        "results": RESULTS,
        "notes": ["a note"],
    }
    section = report.readme_section(summary, ["/x/bench/results/throughput.png"])
    report.update_readme(readme, section)
    report.update_readme(readme, section)  # a second run rewrites, never appends
    text = readme.read_text()
    assert text.startswith("# Project\n\nIntro.\n\n## Tests\n\nRun them.\n\n## Benchmarks\n")
    assert text.count("## Benchmarks") == 1
    assert "| sender, 1 process → sandbox | 900 msg/s |" in text
    assert "![throughput](bench/results/throughput.png)" in text
    assert "- a note" in text


def test_load_range_walks_every_recorded_load_average() -> None:
    results = {
        "a": {"load_avg": [[1.5, 1, 1], [4.0, 2, 2]]},
        "b": {"cases": {"80": {"load_avg": [9.25, 5, 5]}}},
        "c": {"load_avg_at_start": [0.5, 1, 1]},
    }
    assert report.load_range(results) == (0.5, 9.25)
    assert report.load_range({"x": 1}) is None
