"""The conversation service's memory: right after start, and under a load of whole
orders with their invoice PDFs.

Customers (through the sandbox, signed webhooks, the gateway, the sender: the whole
platform) each say "Hi", type an order ("Product 1 x 2"), tap Confirm and download the
invoice PDF from the link the bot sent. The service's own RSS is sampled throughout,
and apart from it the PDF worker process it starts on demand
(``commerce/pdf_process.py``: the service never imports the PDF library).
Target: the service ≤ 150 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import psutil

from bench.common import _call, isolated, say, seed_accounts
from bench.roundtrip import SERVICES, _seed_shop

LIMIT_MB = 150


class Sampler:
    """Peak RSS (MB) of one process and, apart, of its child processes (summed)."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0.0
        self.children_peak = 0.0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> float:
        with contextlib.suppress(psutil.Error):
            mb = self.proc.memory_info().rss / 2**20
            self.peak = max(self.peak, mb)
            kids = 0.0
            for child in self.proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    kids += child.memory_info().rss / 2**20
            self.children_peak = max(self.children_peak, kids)
            return mb
        return 0.0

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        if self._task is not None:
            self._task.cancel()


async def _outbound(http: aiohttp.ClientSession, sandbox: str, wa: str) -> list[dict[str, Any]]:
    async with http.get(f"{sandbox}/sandbox/conversations/{wa}") as r:
        items = await r.json()
    return [i for i in items if i["direction"] == "outbound"]


async def _until(
    http: aiohttp.ClientSession, sandbox: str, wa: str, count: int, timeout_s: float = 60
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await _outbound(http, sandbox, wa)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


async def memory(quick: bool) -> dict[str, Any]:
    customers = 10 if quick else 60
    rate = 5  # new customers a second
    async with isolated("conversation-memory") as stack:
        for name in SERVICES:
            await stack.start(name)
        sandbox, gateway = stack.url("sandbox"), stack.url("gateway")
        (account,) = await seed_accounts(
            stack, 1, throughput_mps=1000, webhook_url=f"{gateway}/webhooks/meta"
        )
        conversation = stack.get("conversation")
        sampler = Sampler(conversation.pid)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            await _seed_shop(http, stack, account.tenant_id)
            await asyncio.sleep(1.0)
            after_start = round(sampler.sample(), 1)
            outcomes = {"orders": 0, "pdfs": 0, "failed": 0}

            async def say_(wa: str, payload: dict[str, Any]) -> None:
                await _call(
                    http,
                    "POST",
                    f"{sandbox}/sandbox/customers/{wa}/messages",
                    json={"phone_number_id": account.phone_number_id, **payload},
                )

            async def shop(wa: str) -> None:
                try:
                    await say_(wa, {"text": "Hi"})
                    await _until(http, sandbox, wa, 1)  # the greeting leads the categories
                    await say_(wa, {"text": "Product 1 x 2"})
                    await _until(http, sandbox, wa, 3)
                    confirm = {"id": "review:confirm", "title": "Confirm"}
                    await say_(wa, {"button_reply": confirm})
                    got = await _until(http, sandbox, wa, 5)
                    docs = [m for m in got if m["message"].get("type") == "document"]
                    if not docs:
                        outcomes["failed"] += 1
                        return
                    outcomes["orders"] += 1
                    async with http.get(docs[0]["message"]["document"]["link"]) as r:
                        body = await r.read()
                    if r.status == 200 and body.startswith(b"%PDF-"):
                        outcomes["pdfs"] += 1
                    else:
                        outcomes["failed"] += 1
                except (aiohttp.ClientError, RuntimeError, TimeoutError):
                    outcomes["failed"] += 1

            started = time.perf_counter()
            with sampler:
                tasks = []
                for i in range(customers):
                    delay = started + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(shop(f"2349{i:09d}")))
                await asyncio.gather(*tasks)
            seconds = round(time.perf_counter() - started, 1)
    out = {
        "customers": customers,
        **outcomes,
        "seconds": seconds,
        "rss_after_start_mb": after_start,
        "rss_peak_mb": round(sampler.peak, 1),
        "pdf_worker_rss_peak_mb": round(sampler.children_peak, 1),
        "limit_mb": LIMIT_MB,
        "pass": sampler.peak <= LIMIT_MB and outcomes["failed"] == 0,
    }
    say(
        f"conversation memory: {after_start} MB after start, peak {out['rss_peak_mb']} MB "
        f"under {outcomes['orders']} orders and {outcomes['pdfs']} PDFs "
        f"(PDF worker {out['pdf_worker_rss_peak_mb']} MB, apart); {outcomes['failed']} failed"
    )
    return out
