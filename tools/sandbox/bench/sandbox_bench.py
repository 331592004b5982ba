"""Send throughput of one sandbox process, measured with ``wrk``.

Starts the sandbox (``python -m flowchat_sandbox``) on a free port with a number of
10,000 mps and the pair-rate limit lifted, opens the 24 h window of ``--customers``
customers, a tiny aiohttp receiver takes the status webhooks, then ``wrk`` posts
text sends round-robin over those customers. Reports requests/s and the CPU time
the sandbox process spent per request (``/proc/<pid>/stat``), which is what one
core could serve if the machine were otherwise idle::

    uv run python tools/sandbox/bench/sandbox_bench.py --seconds 10 --connections 64
    uv run python tools/sandbox/bench/sandbox_bench.py --statuses none   # send path only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parents[3]
PNID = "109900000001"
TOKEN = "bench-token-0123456789"  # noqa: S105 - the benchmark number's token
LUA = """
local counter = 0
local n = %(customers)d
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  counter = counter + 1
  local to = string.format("2348%%09d", counter %% n)
  local body = '{"messaging_product":"whatsapp","recipient_type":"individual","to":"' .. to
    .. '","type":"text","text":{"body":"benchmark message"}}'
  return wrk.format(nil, "/v23.0/%(pnid)s/messages", nil, body)
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def receiver(port: int) -> web.AppRunner:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def setup(base: str, webhook_url: str, customers: int, statuses: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(600):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("the sandbox did not become ready")
        number = {
            "phone_number_id": PNID,
            "waba_id": "209900000001",
            "display_phone_number": "15550001111",
            "access_token": TOKEN,
            "app_secret": "bench-app-secret",
            "webhook_url": webhook_url,
            "throughput_mps": 10_000,
        }
        (await client.post("/sandbox/numbers", json=number)).raise_for_status()
        for i in range(customers):
            wa_id = f"2348{i:09d}"
            config = {"delivers": statuses == "all", "reads": statuses == "all"}
            (await client.put(f"/sandbox/customers/{wa_id}", json=config)).raise_for_status()
            r = await client.post(
                f"/sandbox/customers/{wa_id}/messages", json={"phone_number_id": PNID, "text": "hi"}
            )
            r.raise_for_status()


def sends_by_outcome(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = re.findall(
        r'flowchat_sandbox_sends_total\{outcome="([^"]+)",provider="meta"\} ([0-9.e+]+)', text
    )
    return {outcome: float(value) for outcome, value in found}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument(
        "--statuses",
        choices=("all", "sent", "none"),
        default="all",
        help="webhooks per send: sent+delivered+read, sent only, or none during the run",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    port, hook_port = free_port(), free_port()
    hooks = await receiver(hook_port)
    env = {
        **os.environ,
        "FLOWCHAT_SANDBOX_HTTP_PORT": str(port),
        "FLOWCHAT_SANDBOX_PAIR_RATE_BURST": "1000000000",
        "FLOWCHAT_SANDBOX_STATUS_WEBHOOKS": "false" if args.statuses == "none" else "true",
        "LOG_LEVEL": "WARNING",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowchat_sandbox", "serve", env=env, cwd=ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        hook_url = f"http://127.0.0.1:{hook_port}/webhooks/meta"
        await setup(base, hook_url, args.customers, args.statuses)
        before = sends_by_outcome(base)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA % {"customers": args.customers, "token": TOKEN, "pnid": PNID})
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        result = await asyncio.to_thread(
            subprocess.run,
            [
                wrk,
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.seconds}s",
                "--latency",
                "-s",
                script.name,
                base,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
        os.unlink(script.name)
        after = sends_by_outcome(base)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), timeout=30)
        await hooks.cleanup()
    outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    total = sum(outcomes.values())
    print(result.stdout)
    print(f"statuses per send: {args.statuses}; outcomes: {outcomes}")
    print(
        f"sends: {total} in {wall:.1f} s = {total / wall:.0f} req/s; sandbox CPU {cpu:.2f} s "
        f"({100 * cpu / wall:.0f}% of one core) = {1000 * cpu / max(total, 1):.3f} ms/send "
        f"→ {total / cpu if cpu else 0:.0f} sends/s per fully used core"
    )
    print(f"load average: {os.getloadavg()}, cores: {os.cpu_count()}")


if __name__ == "__main__":
    asyncio.run(main())
