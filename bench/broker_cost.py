"""``python -m bench.broker_cost [--rates 60,600] [--seconds 10] [--repeats 3]``: what
RabbitMQ's CPU costs per message, on a node of its own (a diagnostic, like
:mod:`bench.turn_hops`; not a scenario of ``make bench``; issue #26).

The shared broker on 5672 carries every other test's traffic, so its CPU says nothing
about one workload. Here a RabbitMQ node of this tool's own (``RabbitNode`` of
``tests/faults/faults_kit.py``: own node name, AMQP and distribution ports, data and
logs under a temp dir, the shared node never touched) runs one case at a time, and its
CPU is read from ``/proc`` (its ``beam.smp`` and the VM's children, psutil):

- **idle**: the node's CPU over ``--idle-seconds`` with this tool's two connections open
  and no queue, before each round (the first after ``--settle-seconds``);
- **a case at a rate**: a publisher (aiormq ``basic_publish`` on one channel, persistent,
  ``mandatory``, confirms on unless the case says off; what
  ``flowchat_platform.amqp``'s publish does) to a durable topic exchange bound to one
  durable queue, and a consumer (manual acks, prefetch 64) on a second connection, in
  this process. Messages are offered open loop at the rate (each publish a task of its
  own, its confirm awaited there) for ``--warmup-seconds``, then for ``--seconds``
  measured until the last message is acknowledged. The node's CPU over that window,
  less its idle CPU per second times the window, divided by the messages: **broker CPU
  ms per message net of idle** (one message = one publish, its confirm, one delivery,
  its share of the acks). The consumer's latency is publish call → delivery (one
  clock). The queue is deleted after each run.

Rounds repeat every case and rate (``--repeats``, interleaved, the case order rotated
each round); the table shows medians with min-max. The machine is shared: the load
average is printed beside each round (the node's own CPU is what is measured; its wall
clock figures, latency above all, move with the load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiormq
import psutil

from bench import stats
from bench.common import ROOT, load, parse_list, parse_rates, say
from bench.turn_cost import _cpu_s

PREFETCH = 64
EXCHANGE = "bench.broker_cost"
ROUTING_KEY = "acct.waba"
#: what the platform binds its work queues with (topic exchanges, ``*.*``)
BINDING = "*.*"
_STAMP = struct.Struct("<d")


@dataclass(frozen=True)
class Case:
    """One way of moving messages through the broker."""

    name: str
    queue_type: str = "quorum"  # or "classic" (durable, x-queue-version 2)
    #: ``basic.ack(multiple=True)`` once this many deliveries are unacknowledged
    #: (1: one plain ack per message; 0: no count, only the linger)
    ack_every: int = 1
    #: ... or this long after the first unacknowledged delivery (0: never by time)
    ack_linger_ms: float = 0.0
    confirms: bool = True
    size: int = 500

    def queue_arguments(self) -> dict[str, Any]:
        if self.queue_type == "quorum":
            return {"x-queue-type": "quorum"}
        if self.queue_type == "classic":
            return {"x-queue-type": "classic", "x-queue-version": 2}
        raise ValueError(f"unknown queue type {self.queue_type!r}")


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("quorum"),
        Case("classic", queue_type="classic"),
        Case("quorum-ack-linger-5ms", ack_every=0, ack_linger_ms=5),
        Case("quorum-ack-every-16", ack_every=16, ack_linger_ms=50),
        Case("classic-ack-linger-5ms", queue_type="classic", ack_every=0, ack_linger_ms=5),
        Case("quorum-no-confirms", confirms=False),
        Case("quorum-2kb", size=2048),
    )
}


def net_ms_per_message(cpu_s: float, idle_per_s: float, seconds: float, messages: int) -> float:
    """CPU ms per message of a window of ``seconds``, less the idle CPU over the window."""
    if messages <= 0:
        raise ValueError("no messages")
    return (cpu_s - idle_per_s * seconds) * 1000 / messages


def spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(stats.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def rounds(cases: Sequence[str], repeats: int) -> list[list[str]]:
    """The case order of each round: rotated by one each round (no case always first)."""
    n = len(cases)
    return [[cases[(i + r) % n] for i in range(n)] for r in range(repeats)]


class Acker:
    """The consumer's acknowledgements under a :class:`Case`'s policy: one plain ack per
    delivery, or one ``multiple=True`` ack for the run of deliveries so far once
    ``every`` are waiting or ``linger_s`` after the first of them (whichever first)."""

    def __init__(
        self, every: int, linger_s: float, send: Callable[[int, bool], Coroutine[Any, Any, None]]
    ) -> None:
        if every < 0 or linger_s < 0 or (every == 0 and linger_s == 0):
            raise ValueError("an ack policy needs a count or a linger")
        self.every, self.linger_s, self._send = every, linger_s, send
        self.last_tag = 0  # highest delivery tag seen
        self.acked_tag = 0  # highest tag covered by an ack sent
        self.frames = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def delivered(self, tag: int) -> None:
        self.last_tag = max(self.last_tag, tag)
        if self.every == 1:
            self._spawn(tag, False)
        elif self.every and self.last_tag - self.acked_tag >= self.every:
            self.flush()
        elif self.linger_s and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.last_tag > self.acked_tag:
            self._spawn(self.last_tag, True)

    def _spawn(self, tag: int, multiple: bool) -> None:
        self.acked_tag = max(self.acked_tag, tag)
        self.frames += 1
        task = asyncio.get_running_loop().create_task(self._send(tag, multiple))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        self.flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


# --------------------------------------------------------------------------- the node


def _rabbit_node_class() -> Any:
    """``RabbitNode`` of the fault suite's kit (which imports ``stackkit`` from tests/)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    spec = importlib.util.spec_from_file_location(
        "flowchat_faults_kit", ROOT / "tests/faults/faults_kit.py"
    )
    assert spec is not None
    assert spec.loader is not None
    kit = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = kit
    spec.loader.exec_module(kit)
    return kit.RabbitNode


@contextlib.contextmanager
def own_node() -> Any:
    with tempfile.TemporaryDirectory(prefix="broker-cost-") as base:
        node = _rabbit_node_class()(Path(base))
        try:
            took = node.start(timeout_s=180)
            say(f"own RabbitMQ node {node.name} on port {node.port} up in {took:.1f}s")
            yield node
        finally:
            node.stop()


class NodeCpu:
    """CPU seconds of the node's Erlang VM and its children (erl_child_setup,
    inet_gethost), from /proc."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)

    def read(self) -> float:
        return _cpu_s(self.proc, children=True)


# --------------------------------------------------------------------------- one run


@dataclass
class Flow:
    """Two connections to the node: one to publish, one to consume (as a service has)."""

    pub_conn: Any
    sub_conn: Any
    channels: dict[bool, Any] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str) -> AsyncIterator[Flow]:
        flow = cls(await aiormq.connect(url), await aiormq.connect(url))
        try:
            flow.channels[True] = await flow.pub_conn.channel(publisher_confirms=True)
            flow.channels[False] = await flow.pub_conn.channel(publisher_confirms=False)
            await flow.channels[True].exchange_declare(
                EXCHANGE, exchange_type="topic", durable=True
            )
            yield flow
        finally:
            for conn in (flow.pub_conn, flow.sub_conn):
                with contextlib.suppress(Exception):
                    await conn.close()


class Consumer:
    def __init__(self, case: Case, channel: Any) -> None:
        self.channel = channel
        self.acker = Acker(case.ack_every, case.ack_linger_ms / 1000, self._ack)
        self.latency_ms: list[float] = []
        self.count = 0
        self.wanted = 0
        self.done = asyncio.Event()

    async def _ack(self, tag: int, multiple: bool) -> None:
        await self.channel.basic_ack(tag, multiple=multiple)

    async def on_message(self, message: Any) -> None:
        now = time.perf_counter()
        (sent,) = _STAMP.unpack_from(message.body)
        self.latency_ms.append((now - sent) * 1000)
        self.count += 1
        self.acker.delivered(message.delivery.delivery_tag)
        if self.count >= self.wanted:
            self.done.set()

    def expect(self, total: int) -> None:
        self.wanted = total
        if self.count >= total:
            self.done.set()
        else:
            self.done.clear()


async def offer(channel: Any, case: Case, rate: int, seconds: float) -> tuple[int, float]:
    """Publish at ``rate`` for ``seconds`` (open loop: each publish a task, its confirm
    awaited there); returns the count and the seconds the publishing loop took."""
    pad = b"x" * (case.size - _STAMP.size)
    n = max(1, round(rate * seconds))
    tasks: set[asyncio.Task[Any]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        # a message's own properties (the task serializes them later)
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=2,
            message_id=uuid.uuid4().hex,
            headers={},
            app_id="bench.broker_cost",
        )
        body = _STAMP.pack(time.perf_counter()) + pad
        task = loop.create_task(
            channel.basic_publish(
                body,
                exchange=EXCHANGE,
                routing_key=ROUTING_KEY,
                properties=properties,
                mandatory=True,
            )
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    took = loop.time() - start
    while tasks:
        await asyncio.gather(*list(tasks))
    return n, took


async def run_case(
    flow: Flow,
    cpu: NodeCpu,
    case: Case,
    rate: int,
    *,
    seconds: float,
    warmup_s: float,
    idle_per_s: float,
) -> dict[str, Any]:
    queue = f"broker-cost.{case.name}.{uuid.uuid4().hex[:6]}"
    declare = flow.channels[True]
    await declare.queue_declare(queue, durable=True, arguments=case.queue_arguments())
    await declare.queue_bind(queue, EXCHANGE, routing_key=BINDING)
    sub = await flow.sub_conn.channel()
    await sub.basic_qos(prefetch_count=PREFETCH)
    consumer = Consumer(case, sub)
    await sub.basic_consume(queue, consumer.on_message, no_ack=False)
    channel = flow.channels[case.confirms]
    me = psutil.Process()
    try:
        warm, _ = await offer(channel, case, rate, warmup_s)
        consumer.expect(warm)
        await asyncio.wait_for(consumer.done.wait(), 60)
        await consumer.acker.drain()
        consumer.latency_ms.clear()
        counted, frames = consumer.count, consumer.acker.frames
        cpu0, own0, t0 = cpu.read(), _cpu_s(me), time.perf_counter()
        n, took = await offer(channel, case, rate, seconds)
        consumer.expect(counted + n)
        await asyncio.wait_for(consumer.done.wait(), 120)
        await consumer.acker.drain()
        window = time.perf_counter() - t0
        cpu_s, own_s = cpu.read() - cpu0, _cpu_s(me) - own0
    finally:
        with contextlib.suppress(Exception):
            await sub.close()
        await declare.queue_delete(queue)
    lat = stats.summary(consumer.latency_ms)
    return {
        "case": case.name,
        "rate": rate,
        "messages": n,
        "offered_per_s": round(n / took, 1) if took > 0 else None,
        "window_s": round(window, 3),
        "broker_cpu_ms_per_msg": round(cpu_s * 1000 / n, 4),
        "broker_cpu_ms_per_msg_net": round(net_ms_per_message(cpu_s, idle_per_s, window, n), 4),
        "client_cpu_ms_per_msg": round(own_s * 1000 / n, 4),
        "ack_frames_per_msg": round((consumer.acker.frames - frames) / n, 3),
        "latency_ms": {"p50": lat["p50"], "p95": lat["p95"], "max": lat["max"]},
    }


async def idle(cpu: NodeCpu, seconds: float) -> float:
    """The node's CPU seconds per second over ``seconds`` of nothing to do."""
    c0, t0 = cpu.read(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (cpu.read() - c0) / (time.perf_counter() - t0)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    cases = [CASES[c] for c in args.cases]
    runs: list[dict[str, Any]] = []
    idles: list[dict[str, Any]] = []
    with own_node() as node:
        cpu = NodeCpu(node.beam_pid())
        async with Flow.open(node.url()) as flow:
            await asyncio.sleep(args.settle_seconds)  # the node's start-up work done
            for r, order in enumerate(rounds([c.name for c in cases], args.repeats)):
                idle_per_s = await idle(cpu, args.idle_seconds)
                idles.append({"round": r, "ms_per_s": round(idle_per_s * 1000, 2), "load": load()})
                say(f"round {r + 1}: idle {idle_per_s * 1000:.2f} ms/s, load {load()}")
                for name, rate in itertools.product(order, args.rates):
                    run = await run_case(
                        flow,
                        cpu,
                        CASES[name],
                        rate,
                        seconds=args.seconds,
                        warmup_s=args.warmup_seconds,
                        idle_per_s=idle_per_s,
                    )
                    run["round"] = r
                    run["load"] = load()
                    runs.append(run)
                    say(json.dumps(run))
    return {
        "cases": {c.name: asdict(c) for c in cases},
        "idle": idles,
        "runs": runs,
        "table": table(runs),
    }


def table(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (case, rate), in first-seen order: medians and min-max over the rounds."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["case"], run["rate"]), []).append(run)
    return [
        {
            "case": case,
            "rate": rate,
            "repeats": len(rs),
            "net_ms_per_msg": spread([r["broker_cpu_ms_per_msg_net"] for r in rs]),
            "gross_ms_per_msg": spread([r["broker_cpu_ms_per_msg"] for r in rs]),
            "client_ms_per_msg": spread([r["client_cpu_ms_per_msg"] for r in rs]),
            "p50_ms": spread([r["latency_ms"]["p50"] for r in rs]),
            "p95_ms": spread([r["latency_ms"]["p95"] for r in rs]),
            "ack_frames_per_msg": stats.median([r["ack_frames_per_msg"] for r in rs]),
        }
        for (case, rate), rs in groups.items()
    ]


def _cell(s: dict[str, float], digits: int = 3) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| case | rate/s | broker CPU ms/msg net of idle | gross | client CPU ms/msg"
        " | ack frames/msg | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["table"]:
        lines.append(
            f"| {row['case']} | {row['rate']} | {_cell(row['net_ms_per_msg'])}"
            f" | {_cell(row['gross_ms_per_msg'])} | {_cell(row['client_ms_per_msg'])}"
            f" | {row['ack_frames_per_msg']} | {_cell(row['p50_ms'], 1)}"
            f" | {_cell(row['p95_ms'], 1)} |"
        )
    idle_ms = [i["ms_per_s"] for i in result["idle"]]
    lines.append(
        f"\nnode idle: {_cell(spread(idle_ms), 2)} ms/s (median (min-max) of"
        f" {len(idle_ms)} rounds); load per round: {[i['load'] for i in result['idle']]}"
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.broker_cost", description=__doc__)
    p.add_argument("--rates", type=parse_rates, default=[60, 600], help="messages/s, e.g. 60,600")
    p.add_argument(
        "--cases",
        type=lambda t: parse_list(t, list(CASES)),
        default=list(CASES),
        help=f"comma-separated, of: {', '.join(CASES)}",
    )
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup-seconds", type=float, default=2.0)
    p.add_argument("--idle-seconds", type=float, default=10.0, help="idle measured per round")
    p.add_argument("--settle-seconds", type=float, default=5.0, help="after the node starts")
    p.add_argument("--repeats", type=int, default=3, help="rounds, interleaved")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    result = asyncio.run(measure(args))
    result["args"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
