import asyncio
import gc
import os
import signal

import httpx
import uvicorn
from fastapi import FastAPI

from flowchat_platform.runner import GC_THRESHOLDS, Server, tune_gc
from flowchat_platform.testing import free_port


def test_tune_gc_freezes_start_up_objects_and_collects_less_often() -> None:
    before = gc.get_threshold()
    start_up: object = object.__new__(type("StartUp", (), {}))  # something built at start-up
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert not any(o is start_up for o in gc.get_objects())  # out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_server_sleeps_between_ticks_yet_stops_at_once_on_a_signal() -> None:
    """The service server checks its exit flag once a tick (a second), not ten times, and a
    stop signal wakes it: with a tick far longer than the wait below, only the wake-up can
    stop it in time. Responses still carry the date header uvicorn refreshes each tick."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    port = free_port()
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    server.tick_s = 600.0
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda sig, _frame: received.append(sig))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/ping")
        assert response.status_code == 200
        assert "date" in response.headers
        # a real SIGTERM: uvicorn's handler, then (once stopped) the one that was there
        # before it, as run_service's clean exit
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, timeout=10)
        assert received == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
        if not task.done():
            task.cancel()
