"""The gateway benchmark's baseline: a bare FastAPI POST endpoint under the same uvicorn
settings as every service (``flowchat_platform.runner``), reading the body and answering
JSON, with no signature check, broker or Redis. Run: ``python bench/bare_app.py PORT``."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/meta")
async def webhook(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"received": len(body)})


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        server_header=False,
    )
