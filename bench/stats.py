"""Pure arithmetic of the benchmarks: medians, percentiles, steady rates, bursts, ratios.

No I/O here, so ``bench/tests`` checks it in milliseconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile, ``p`` in [0, 100]."""
    if not values:
        raise ValueError("percentile of nothing")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(value: float, baseline: float) -> float | None:
    return round(value / baseline, 3) if baseline > 0 else None


def steady_rate(times: Sequence[float], *, trim: float = 0.1) -> float:
    """Events per second between the ``trim`` and ``1 - trim`` quantiles of the event
    times, so start-up and the tail do not count (the middle of the run is the steady state)."""
    if len(times) < 3:
        raise ValueError("need at least three events for a rate")
    ordered = sorted(times)
    first = int((len(ordered) - 1) * trim)
    last = int((len(ordered) - 1) * (1 - trim))
    if last <= first or ordered[last] <= ordered[first]:
        raise ValueError("events too close together to time")
    return (last - first) / (ordered[last] - ordered[first])


def per_bucket(times: Sequence[float], bucket_s: float) -> list[int]:
    """How many events fell in each ``bucket_s`` from the first event on."""
    if not times:
        return []
    start = min(times)
    counts = [0] * (int((max(times) - start) / bucket_s) + 1)
    for t in times:
        counts[int((t - start) / bucket_s)] += 1
    return counts


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """The most events in any sliding window of ``window_s`` (the worst burst)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max / mean of latencies (same unit as given)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


def extrapolate_linear(
    points: Sequence[tuple[float, float]], x: float
) -> tuple[float, float, float]:
    """Least-squares line through ``points``; returns (value at x, slope, intercept)."""
    if len(points) < 2:
        raise ValueError("need two points to draw a line")
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        raise ValueError("points share one x")
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    intercept = my - slope * mx
    return slope * x + intercept, slope, intercept


def spans(times: Sequence[float], gap_s: float) -> list[list[float]]:
    """Split sorted event times wherever nothing happened for ``gap_s`` or more."""
    ordered = sorted(times)
    out: list[list[float]] = []
    for t in ordered:
        if out and t - out[-1][-1] < gap_s:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def rate_while_active(times: Sequence[float], gap_s: float = 0.5, min_events: int = 10) -> float:
    """Events per second inside the stretches of activity (pauses of ``gap_s`` or more
    left out): how fast a limiter lets messages through while it is sending at all."""
    events, seconds = 0, 0.0
    for span in spans(times, gap_s):
        if len(span) >= min_events and span[-1] > span[0]:
            events += len(span) - 1
            seconds += span[-1] - span[0]
    if seconds == 0:
        raise ValueError("no stretch of activity long enough to time")
    return events / seconds


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in Prometheus text whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total
