"""The tenant service's FastAPI app and its lifespan.

Start-up answers ``/healthz`` at once; a background task opens the database pool
(retrying), applies the migrations and only then builds the service, so
``/readyz`` and every API route answer 503 until the database is there. A second
task re-reads every Meta number's health each ``health_refresh_interval_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.http import Readiness, build_app, error_body
from flowchat_platform.logs import get_logger
from flowchat_platform.runner import Background
from flowchat_tenant import SERVICE
from flowchat_tenant.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ProviderError,
    SecretUnavailable,
    TenantError,
)
from flowchat_tenant.ports import NumberProvider
from flowchat_tenant.provider import GraphProvider
from flowchat_tenant.repository import Repository
from flowchat_tenant.routes import internal, public
from flowchat_tenant.service import TenantService
from flowchat_tenant.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "tenant"
log = get_logger(__name__)


@dataclass
class Resources:
    pool: asyncpg.Pool | None = None
    repository: Repository | None = None
    service: TenantService | None = None

    async def database_ready(self) -> bool:
        return self.repository is not None and await self.repository.ping()


async def open_database(settings: Settings) -> asyncpg.Pool:
    """Pool first, then the migrations: both wait (with backoff) while PostgreSQL is down."""
    pool = await create_pool(
        settings.database_url, schema=SCHEMA, max_size=settings.db_pool_max_size
    )
    try:
        await migrate_with_retry(settings.database_url, MIGRATIONS, SCHEMA)
    except BaseException:
        await pool.close()
        raise
    return pool


def error_response(exc: TenantError) -> JSONResponse:
    status = 400
    details: list[dict[str, object]] = []
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Conflict):
        status = 409
        details = [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.code}]
    elif isinstance(exc, InvalidInput):
        status = 422
        details = [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.code}]
    elif isinstance(exc, Forbidden):
        status = 403
    elif isinstance(exc, SecretUnavailable):
        status = 500
    elif isinstance(exc, ProviderError):
        status = 502
        details = [{"provider_status": exc.status, "provider_code": exc.provider_code}]
    return JSONResponse(error_body(exc.code, exc.message, details), status_code=status)


def create_app(settings: Settings, *, provider: NumberProvider | None = None) -> FastAPI:
    """Build the app; ``provider`` replaces the Graph API client (tests pass their own)."""
    box = settings.secret_box()
    resources = Resources()
    readiness = Readiness()
    readiness.add("database", resources.database_ready)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        number_provider = provider or GraphProvider(
            session,
            base_url=settings.graph_url,
            version=settings.graph_version,
            timeout_s=settings.graph_timeout_s,
        )
        background = Background()

        async def refresh_health(service: TenantService) -> None:
            while True:
                await asyncio.sleep(settings.health_refresh_interval_s)
                try:
                    count = await service.refresh_all_health()
                    log.info("number health refreshed", numbers=count)
                except Exception:  # keep refreshing after a bad round (logged)
                    log.exception("number health refresh failed")

        async def connect() -> None:
            resources.pool = await open_database(settings)
            resources.repository = Repository(resources.pool)
            service = TenantService(
                resources.repository,
                box,
                number_provider,
                validate_numbers=settings.validate_numbers,
            )
            resources.service = service
            log.info("database ready")
            background.start("health-refresh", refresh_health(service))

        background.start("connect", connect())
        try:
            yield
        finally:
            await background.stop()
            resources.service = resources.repository = None
            if resources.pool is not None:
                await resources.pool.close()
            await session.close()

    app = build_app(SERVICE, lifespan=lifespan, readiness=readiness, title="FlowChat tenant")
    app.state.resources = resources
    app.state.operator_key = (
        settings.operator_key.get_secret_value() if settings.operator_key else ""
    )
    app.state.service_token = (
        settings.service_token.get_secret_value() if settings.service_token else ""
    )
    app.state.cache_max_age_s = settings.internal_cache_max_age_s

    @app.exception_handler(TenantError)
    async def tenant_error(_: Request, exc: TenantError) -> JSONResponse:
        return error_response(exc)

    app.include_router(public.router)
    app.include_router(internal.router)
    return app
