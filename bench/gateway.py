"""Gateway ingest with wrk: signed Meta webhooks, one event per POST and batches of
ten, beside the same hop done by a bare loop (``bench/bare_app.py``: FastAPI, the HMAC
check and one confirmed publish per event) under the same uvicorn settings, in the
same run, alternating, median of rounds.

Every body is distinct (the gateway deduplicates by provider message id, so a
repeated body would measure the duplicate path) and pre-signed with the account's
app secret; ``bench/wrk_post.lua`` reads them from a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench import stats
from bench.common import (
    ROOT,
    Account,
    Proc,
    RssSampler,
    Stack,
    cpu_seconds,
    isolated,
    load,
    say,
    seed_accounts,
    wait_ready,
)
from flowchat_platform.testing import free_port

LUA = ROOT / "bench" / "wrk_post.lua"
THREADS, CONNECTIONS = 2, 32
BATCH = 10
#: Issue #26: the gateway at least 0.8x the bare hop, single and batched bodies.
TARGET_RATIO = 0.8


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    say("wrk is missing: installing the Debian package")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], check=True, env=env)  # noqa: S603
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed (Debian package `wrk`)")
    return found


def _envelope(a: Account, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": a.waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": a.display.lstrip("+"),
                                "phone_number_id": a.phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def single_body(a: Account, i: int, tag: str) -> dict[str, Any]:
    wa = f"2348{i % 10**8:08d}"
    return _envelope(
        a,
        {
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": wa}],
            "messages": [
                {
                    "from": wa,
                    "id": f"wamid.bench{tag}{i:09d}",
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": "Hi"},
                }
            ],
        },
    )


def batch_body(a: Account, i: int, tag: str) -> dict[str, Any]:
    now = str(int(time.time()))
    return _envelope(
        a,
        {
            "statuses": [
                {
                    "id": f"wamid.bench{tag}{i:09d}x{k}",
                    "status": "delivered",
                    "timestamp": now,
                    "recipient_id": f"2348{(i * BATCH + k) % 10**8:08d}",
                }
                for k in range(BATCH)
            ]
        },
    )


def write_bodies(path: Path, a: Account, count: int, *, batched: bool, tag: str) -> None:
    make = batch_body if batched else single_body
    secret = a.app_secret.encode()
    with open(path, "wb") as out:
        for i in range(count):
            raw = orjson.dumps(make(a, i, tag))
            sig = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
            out.write(sig.encode() + b"\t" + raw + b"\n")


def run_wrk(wrk: str, url: str, bodies: Path, seconds: int) -> dict[str, Any]:
    env = {**os.environ, "BENCH_BODIES": str(bodies), "BENCH_THREADS": str(THREADS)}
    cmd = [
        wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url + "/webhooks/meta",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)  # noqa: S603
    m = re.search(r"^BENCH_JSON (\{.*\})$", done.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(m.group(1))
    secs = raw["duration_us"] / 1e6
    return {
        "req_per_s": round(raw["requests"] / secs, 1),
        "requests": raw["requests"],
        "non2xx": raw["non2xx"],
        "socket_errors": raw["errors_connect"] + raw["errors_read"] + raw["errors_timeout"],
        "wraps": raw["wraps"],
        "latency_ms": {
            "p50": raw["p50_us"] / 1000,
            "p95": raw["p95_us"] / 1000,
            "p99": raw["p99_us"] / 1000,
            "max": raw["max_us"] / 1000,
        },
    }


async def start_bare(stack: Stack, app_secret: str, *, redis: bool = False) -> Proc:
    """The bare loop; ``redis``: the variant that makes the gateway's one allowed Redis
    round trip for bodies with messages (``bench/bare_app.py``)."""
    port = free_port()
    name = "bare-fastapi-redis" if redis else "bare-fastapi"
    log = stack.tmp / f"{name}.log"
    with open(log, "wb") as out:  # noqa: ASYNC230 - once, at start-up
        popen = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter and script
            [
                sys.executable,
                str(ROOT / "bench" / "bare_app.py"),
                str(port),
                stack.env["AMQP_URL"],
                app_secret,
                *([stack.env["REDIS_URL"]] if redis else []),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    proc = Proc(name, f"http://127.0.0.1:{port}", popen, log)
    stack.procs.append(proc)
    await wait_ready(proc)
    return proc


def _with_redis(gateway_rate: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The bare loop with the one Redis round trip, shown beside the target's baseline."""
    if not runs:
        return {}
    rate = stats.median([x["req_per_s"] for x in runs])
    return {
        "bare_redis_req_per_s": round(rate),
        "bare_redis_cpu_ms_per_req": stats.median([x["cpu_ms_per_req"] for x in runs]),
        "ratio_to_bare_redis": stats.ratio(gateway_rate, rate),
        "bare_redis_runs": runs,
    }


async def ingest(quick: bool) -> dict[str, Any]:
    wrk = ensure_wrk()
    seconds = 2 if quick else 8
    rounds = 1 if quick else 3
    # Enough distinct bodies for the run at well above the bare endpoint's rate.
    count = {False: 4500 * seconds, True: 1500 * seconds}
    out: dict[str, Any] = {
        "wrk": {"threads": THREADS, "connections": CONNECTIONS, "seconds": seconds},
        "batch_events": BATCH,
        "rounds": rounds,
        "load_avg": [],
    }
    results: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "gateway_single",
            "bare_single",
            "bare_redis_single",
            "gateway_batch",
            "bare_batch",
        )
    }
    async with isolated("gateway") as stack:
        await stack.start("sandbox")
        await stack.start("tenant")
        (account,) = await seed_accounts(stack, 1, throughput_mps=80)
        gateway = await stack.start("gateway")
        bare = await start_bare(stack, account.app_secret)
        bare_redis = await start_bare(stack, account.app_secret, redis=True)
        peak_rss = 0.0
        for r in range(rounds):
            for batched in (False, True):
                kind = "batch" if batched else "single"
                tag = f"{r}{kind[0]}{secrets.token_hex(3)}"
                bodies = stack.tmp / f"bodies-{tag}.txt"
                write_bodies(bodies, account, count[batched], batched=batched, tag=tag)
                cpu_before = cpu_seconds(gateway)
                with RssSampler([gateway]) as rss:
                    g = await asyncio.to_thread(run_wrk, wrk, gateway.url, bodies, seconds)
                # CPU per request: what the gateway itself costs, steadier than its rate
                # on a shared machine, where the broker's confirms set the pace.
                g["cpu_ms_per_req"] = round(
                    1000 * (cpu_seconds(gateway) - cpu_before) / max(1, g["requests"]), 3
                )
                peak_rss = max(peak_rss, rss.peak["gateway"])
                bare_before = cpu_seconds(bare)
                b = await asyncio.to_thread(run_wrk, wrk, bare.url, bodies, seconds)
                b["cpu_ms_per_req"] = round(
                    1000 * (cpu_seconds(bare) - bare_before) / max(1, b["requests"]), 3
                )
                results[f"gateway_{kind}"].append(g)
                results[f"bare_{kind}"].append(b)
                also = ""
                if not batched:  # status-only bodies make no Redis round trip: same loop
                    before = cpu_seconds(bare_redis)
                    br = await asyncio.to_thread(run_wrk, wrk, bare_redis.url, bodies, seconds)
                    br["cpu_ms_per_req"] = round(
                        1000 * (cpu_seconds(bare_redis) - before) / max(1, br["requests"]), 3
                    )
                    results["bare_redis_single"].append(br)
                    also = (
                        f", bare + Redis {br['req_per_s']:,.0f} req/s, "
                        f"{br['cpu_ms_per_req']} CPU ms/req"
                    )
                say(
                    f"gateway ingest round {r + 1}/{rounds} {kind}: gateway "
                    f"{g['req_per_s']:,.0f} req/s, {g['cpu_ms_per_req']} CPU ms/req "
                    f"(non-2xx {g['non2xx']}), bare "
                    f"{b['req_per_s']:,.0f} req/s, {b['cpu_ms_per_req']} CPU ms/req{also}"
                )
                bodies.unlink()
            out["load_avg"].append(load())
    for kind in ("single", "batch"):
        gw = stats.median([x["req_per_s"] for x in results[f"gateway_{kind}"]])
        bare_rate = stats.median([x["req_per_s"] for x in results[f"bare_{kind}"]])
        per = BATCH if kind == "batch" else 1
        out[kind] = {
            "gateway_req_per_s": round(gw),
            "gateway_events_per_s": round(gw * per),
            "bare_req_per_s": round(bare_rate),
            "ratio": stats.ratio(gw, bare_rate),
            "gateway_cpu_ms_per_req": stats.median(
                [x["cpu_ms_per_req"] for x in results[f"gateway_{kind}"]]
            ),
            "bare_cpu_ms_per_req": stats.median(
                [x["cpu_ms_per_req"] for x in results[f"bare_{kind}"]]
            ),
            "gateway_non2xx": sum(x["non2xx"] for x in results[f"gateway_{kind}"]),
            **_with_redis(gw, results[f"bare_redis_{kind}"] if kind == "single" else []),
            "gateway_latency_ms": results[f"gateway_{kind}"][-1]["latency_ms"],
            "runs": {
                "gateway": results[f"gateway_{kind}"],
                "bare": results[f"bare_{kind}"],
            },
        }
    out["gateway_rss_peak_mb"] = peak_rss
    out["targets"] = {"ratio": TARGET_RATIO}
    out["pass"] = all(
        (out[kind]["ratio"] or 0) >= TARGET_RATIO and out[kind]["gateway_non2xx"] == 0
        for kind in ("single", "batch")
    )
    return out
