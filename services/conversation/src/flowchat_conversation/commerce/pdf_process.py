"""Invoice PDFs rendered in a child process, started on demand (the
:class:`~flowchat_conversation.commerce.ports.InvoiceRenderer` adapter).

fpdf2 (with fontTools and Pillow) costs about 40 MB of resident memory once imported,
and only an invoice download needs it. The service itself never imports it: the first
download starts one worker process (``spawn``: a fresh interpreter, nothing of the
service's memory copied) that imports :mod:`~flowchat_conversation.commerce.invoice_pdf`
and renders; later downloads reuse it, and it exits after ``idle_s`` without work, so
the memory is spent only while invoices are being fetched. A worker that dies is
replaced at the next download.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial

from flowchat_conversation.commerce.orders import Invoice, Order
from flowchat_platform.logs import get_logger

log = get_logger(__name__)

#: The module the worker imports; never imported by the service process.
PDF_MODULE = "flowchat_conversation.commerce.invoice_pdf"


def _render(order: Order, invoice: Invoice, business_name: str) -> bytes:
    """In the worker: import the PDF code (once per worker) and render."""
    from flowchat_conversation.commerce.invoice_pdf import render_invoice_pdf

    return render_invoice_pdf(order, invoice, business_name=business_name)


def _preload() -> None:
    """In the worker: import the PDF code ahead of the first download."""
    import flowchat_conversation.commerce.invoice_pdf  # noqa: F401


class ProcessInvoiceRenderer:
    def __init__(self, *, idle_s: float = 60.0, workers: int = 1) -> None:
        self.idle_s = idle_s
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._busy = 0
        self._last_used = 0.0
        self._reaper: asyncio.TimerHandle | None = None
        #: Worker pools started so far (one per idle period; for tests and metrics).
        self.started = 0

    def running(self) -> bool:
        """Whether a worker pool is up (it exits after ``idle_s`` without work)."""
        return self._pool is not None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
            self.started += 1
        return self._pool

    async def render(self, order: Order, invoice: Invoice, *, business_name: str) -> bytes:
        loop = asyncio.get_running_loop()
        job = partial(_render, order, invoice, business_name)
        self._busy += 1
        try:
            try:
                return await loop.run_in_executor(self._get_pool(), job)
            except BrokenProcessPool:
                log.warning("invoice renderer died; starting a new one")
                self._drop()
                return await loop.run_in_executor(self._get_pool(), job)
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()
            if self._reaper is None:
                self._reaper = loop.call_later(self.idle_s, self._reap)

    def warm(self) -> None:
        """Start the worker now (an invoice was just issued: its download follows in
        seconds), so the download does not wait for the worker's start; it exits after
        ``idle_s`` like any worker."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._get_pool(), _preload)
        except BrokenProcessPool:
            self._drop()
            return
        future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        self._last_used = time.monotonic()
        if self._reaper is None:
            self._reaper = loop.call_later(self.idle_s, self._reap)

    def _reap(self) -> None:
        """Stop the worker once it has been idle ``idle_s``; else look again later."""
        self._reaper = None
        if self._pool is None:
            return
        idle = time.monotonic() - self._last_used
        if self._busy == 0 and idle >= self.idle_s:
            self._drop()
            return
        wait = max(self.idle_s - idle, 0.05) if self._busy == 0 else self.idle_s
        self._reaper = asyncio.get_running_loop().call_later(wait, self._reap)

    def _drop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
