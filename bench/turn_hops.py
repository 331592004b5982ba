"""``python -m bench.turn_hops [--rates 10,60] [--seconds 10]``: where a conversation
turn waits, hop by hop (an investigation tool, not a target of ``make bench``).

One isolated stack as :mod:`bench.turn_cost` runs it; for each rate, customers write
"Hi" on schedule (open loop) and each turn's reply is timed between these points (one
machine, one wall clock):

- ``inbound``: the sandbox records the customer's message (then posts the webhook);
- ``published``: the inbound message reaches a tap queue bound to ``flowchat.inbound``
  (the gateway took the webhook and its publish was routed; the arrival is this
  driver's clock, so a busy driver adds to it);
- ``command``: the reply's ``OutboundCommand.created_at`` (the conversation service's
  clock, as it built the reply);
- ``routed``: the command reaches a tap queue bound to ``flowchat.outbound``;
- ``reply``: the sandbox records the send in the transcript (the round trip's end);
- ``answered``: the send result's ``occurred_at`` (the sender's clock, when it had the
  sandbox's answer; from a tap on ``flowchat.status``): after the round trip.

Printed per rate: p50/p95/max of each hop and of the whole, and the CPU per turn of
each process (the sandbox and this driver included) from :class:`bench.turn_cost.CpuMeter`.
The taps add three queues' deliveries to the broker's work: the figures are a
diagnosis, not the budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import datetime
from typing import Any

import aio_pika
import orjson

from bench import stats
from bench.common import load, parse_rates, say, scrape
from bench.stats import metric_sum
from bench.turn_cost import Run, running
from flowchat_contracts import topology
from flowchat_platform.logs import configure_logging

HANDLE = "flowchat_conversation_handle_seconds"
HOPS = (
    ("webhook → published", "inbound", "published"),
    ("published → command built", "published", "command"),
    ("command built → routed", "command", "routed"),
    ("routed → reply recorded", "routed", "reply"),
    ("round trip", "inbound", "reply"),
    ("(after the round trip) reply recorded → send answered", "reply", "answered"),
)


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


class Taps:
    """Exclusive queues bound to the inbound, outbound and status exchanges: when each
    customer's message was published, each reply command built and routed, each send
    answered."""

    def __init__(self) -> None:
        self.published: dict[str, float] = {}
        self.command: dict[str, float] = {}
        self.routed: dict[str, float] = {}
        self.to_of: dict[str, str] = {}
        self.answered: dict[str, float] = {}

    async def bind(self, conn: aio_pika.abc.AbstractConnection) -> None:
        channel = await conn.channel()
        for exchange, handler in (
            (topology.EXCHANGE_INBOUND, self._inbound),
            (topology.EXCHANGE_OUTBOUND, self._outbound),
            (topology.EXCHANGE_STATUS, self._status),
        ):
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await queue.bind(exchange, "#")
            await queue.consume(handler, no_ack=True)

    async def _inbound(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.time()
        body = orjson.loads(message.body)
        wa = body.get("customer_wa_id")
        if wa and wa not in self.published:
            self.published[wa] = now

    async def _outbound(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        now = time.time()
        body = orjson.loads(message.body)
        wa = body.get("to")
        if wa and wa not in self.routed:  # the first reply: the round trip's end
            self.routed[wa] = now
            self.command[wa] = _ts(body["created_at"])
            self.to_of[body["message_id"]] = wa

    async def _status(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = orjson.loads(message.body)
        kind = body.get("kind")
        if kind not in ("send_result", "send_result_batch"):
            return  # the gateway's status updates share the exchange
        results = body["results"] if kind == "send_result_batch" else [body]
        for r in results:
            wa = self.to_of.get(r.get("message_id", ""))
            if wa and wa not in self.answered:
                self.answered[wa] = _ts(r["occurred_at"])


async def _transcript(run: Run, wa: str) -> tuple[float, float] | None:
    async with run.http.get(f"{run.stack.url('sandbox')}/sandbox/conversations/{wa}") as r:
        items = await r.json()
    inbound = next((i for i in items if i["direction"] == "inbound"), None)
    reply = next((i for i in items if i["direction"] == "outbound"), None)
    if inbound is None or reply is None:
        return None
    return _ts(inbound["time"]), _ts(reply["time"])


async def hop_step(run: Run, taps: Taps, rate: int, seconds: float) -> dict[str, Any]:
    n = max(1, round(rate * seconds))
    customers = [f"2349{rate:03d}{i:06d}" for i in range(n)]
    conversation = run.stack.url("conversation")
    before = await scrape(run.http, conversation)
    replies = await run.replies()
    await run.meter.start()
    _, failures = await run._offer(customers, rate)
    _, missing, _ = await run._settle(customers, replies + n - failures)
    cpu = await run.meter.read()
    after = await scrape(run.http, conversation)
    handled = {
        k: metric_sum(after, f"{HANDLE}_{k}") - metric_sum(before, f"{HANDLE}_{k}")
        for k in ("sum", "count")
    }
    points: dict[str, dict[str, float]] = {}
    for wa in customers:
        got = await _transcript(run, wa)
        if got is None:
            continue
        points[wa] = {
            "inbound": got[0],
            "reply": got[1],
            **{
                name: d[wa]
                for name, d in (
                    ("published", taps.published),
                    ("command", taps.command),
                    ("routed", taps.routed),
                    ("answered", taps.answered),
                )
                if wa in d
            },
        }
    hops: dict[str, Any] = {}
    for label, a, b in HOPS:
        ms = [(p[b] - p[a]) * 1000 for p in points.values() if a in p and b in p]
        hops[label] = stats.summary(ms) if ms else {}
    out = {
        "rate_per_s": rate,
        "turns": n,
        "no_reply": len(missing),
        "hops_ms": hops,
        # the conversation's own clock around handle_inbound (lock, state machine,
        # publish, commit): the rest of "published → command built" is queue wait
        "conversation_handle_mean_ms": round(handled["sum"] * 1000 / handled["count"], 1)
        if handled["count"]
        else None,
        "cpu_ms_per_turn": {k: round(v * 1000 / n, 2) for k, v in sorted(cpu.items())},
        "load_avg": load(),
    }
    say(f"turn hops at {rate}/s: {json.dumps(out)}")
    return out


async def hops(rates: tuple[int, ...], seconds: float) -> list[dict[str, Any]]:
    async with running() as run:
        taps = Taps()
        await taps.bind(run.queues.conn)
        return [await hop_step(run, taps, rate, seconds) for rate in rates]


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.turn_hops", description=__doc__)
    p.add_argument(
        "--rates", type=parse_rates, default="10,60", help="conversations/s, comma-separated"
    )
    p.add_argument("--seconds", type=float, default=10.0, help="seconds offered per rate")
    a = p.parse_args()
    configure_logging("bench", "WARNING")
    steps = asyncio.run(hops(tuple(a.rates), a.seconds))
    for s in steps:
        print(f"\n{s['rate_per_s']}/s, {s['turns']} turns, load {s['load_avg']}")
        print("| hop | p50 ms | p95 ms | max ms |\n|---|---|---|---|")
        for label, h in s["hops_ms"].items():
            print(f"| {label} | {h.get('p50')} | {h.get('p95')} | {h.get('max')} |")
        print(f"conversation's mean handle time: {s['conversation_handle_mean_ms']} ms")
        print(f"CPU ms per turn: {s['cpu_ms_per_turn']}")


if __name__ == "__main__":
    main()
