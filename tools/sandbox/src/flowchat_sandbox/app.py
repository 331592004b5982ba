"""The sandbox's FastAPI app: one aiohttp session for every webhook it posts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache

import aiohttp
from fastapi import FastAPI

from flowchat_platform.http import Readiness, build_app, include_lean
from flowchat_platform.logs import get_logger
from flowchat_sandbox.payments import PaymentEmulator
from flowchat_sandbox.routes import control, graph, hot, payments, twilio
from flowchat_sandbox.service import Sandbox
from flowchat_sandbox.settings import SERVICE, Settings
from flowchat_sandbox.spec import SendValidator, load_spec

log = get_logger(__name__)


@lru_cache(maxsize=1)
def send_validator() -> SendValidator:
    """Meta's spec, loaded and resolved once per process."""
    return SendValidator(load_spec())


class AiohttpTransport:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> int:
        timeout = self._timeouts.get(timeout_s)
        if timeout is None:  # one per setting (a frozen value), not one per webhook
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as r:
            await r.read()
            return r.status


def create_app(settings: Settings) -> FastAPI:
    readiness = Readiness()
    validator = send_validator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            sandbox = Sandbox(settings, validator, AiohttpTransport(session))
            app.state.sandbox = sandbox
            app.state.payments = PaymentEmulator(
                AiohttpTransport(session),
                webhook_url=settings.payments_webhook_url,
                webhook_secret=(
                    settings.payments_webhook_secret.get_secret_value()
                    if settings.payments_webhook_secret
                    else None
                ),
            )
            log.info("sandbox ready", spec_types=sorted(validator.types))
            try:
                yield
            finally:
                await sandbox.close()

    readiness.add("spec", lambda: bool(validator.types))
    # A customer's image comes as base64 in JSON (up to 8 MiB of it): room for that.
    app = build_app(
        SERVICE,
        lifespan=lifespan,
        readiness=readiness,
        title="FlowChat sandbox",
        max_json_bytes=hot.MAX_JSON_BYTES,
        nul_allowed=("/",),  # an emulator of Meta and Twilio, with no database of text
    )
    # Order matters: the hot send route first (nothing else has its shape), then the
    # control and Twilio routes before the Graph catch-alls.
    app.include_router(graph.send_router)
    app.include_router(control.router)
    app.include_router(twilio.router)
    app.include_router(payments.router)
    app.include_router(graph.router)
    control.install_error_handlers(app)
    payments.install_error_handlers(app)
    # A turn's two routes (the send, a customer's message) served by the lean lane,
    # before the router; the routes above stay for the OpenAPI docs.
    include_lean(app, hot.lean)
    return app
