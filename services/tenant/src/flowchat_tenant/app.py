"""The tenant service's FastAPI app and its lifespan.

Start-up answers ``/healthz`` at once; a background task opens the database pool
(retrying), applies the migrations and only then builds the service, so
``/readyz`` and every API route answer 503 until the database is there. A second
task re-reads every Meta number's health each ``health_refresh_interval_s``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
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
    TooManyAttempts,
    Unauthenticated,
)
from flowchat_tenant.identity_service import IdentityPolicy, IdentityService
from flowchat_tenant.mail import Outbox
from flowchat_tenant.ports import Mailer, NumberProvider
from flowchat_tenant.provider import GraphProvider
from flowchat_tenant.repository import Repository
from flowchat_tenant.routes import auth, internal, public, users
from flowchat_tenant.service import TenantService
from flowchat_tenant.settings import Settings
from flowchat_tenant.tokens import AccessTokens, Passwords

MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA = "tenant"
log = get_logger(__name__)


@dataclass
class Resources:
    pool: asyncpg.Pool | None = None
    repository: Repository | None = None
    service: TenantService | None = None
    identity: IdentityService | None = None

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
    headers: dict[str, str] = {}
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
    elif isinstance(exc, Unauthenticated):
        status = 401
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, TooManyAttempts):
        status = 429
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        details = [{"retry_after_s": round(exc.retry_after_s, 3)}]
    elif isinstance(exc, SecretUnavailable):
        status = 500
    elif isinstance(exc, ProviderError):
        status = 502
        details = [{"provider_status": exc.status, "provider_code": exc.provider_code}]
    return JSONResponse(
        error_body(exc.code, exc.message, details), status_code=status, headers=headers
    )


async def repeat(interval_s: float, what: str, job: Callable[[], Awaitable[object]]) -> None:
    """Run ``job`` every ``interval_s``; a failed round is logged and the next one runs."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception:  # keep going after a bad round (logged)
            log.exception(f"{what} failed")


def refresh(service: TenantService) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        count = await service.refresh_all_health()
        log.info("number health refreshed", numbers=count)

    return run


def identity_policy(settings: Settings) -> IdentityPolicy:
    return IdentityPolicy(
        password_min_length=settings.password_min_length,
        invitation_ttl_s=settings.invitation_ttl_s,
        reset_ttl_s=settings.reset_ttl_s,
        session_ttl_s=settings.session_ttl_s,
        lockout_user_threshold=settings.lockout_user_threshold,
        lockout_ip_threshold=settings.lockout_ip_threshold,
        lockout_base_s=settings.lockout_base_s,
        lockout_max_s=settings.lockout_max_s,
        lockout_window_s=settings.lockout_window_s,
        console_url=settings.console_url,
    )


def identity_state(app: FastAPI, settings: Settings, outbox: Outbox | None) -> None:
    """What the identity routes read: cache age, proxy trust, cookie flag, the dev outbox."""
    app.state.user_cache_max_age_s = settings.user_cache_max_age_s
    app.state.trust_forwarded_for = settings.trust_forwarded_for
    app.state.session_cookie_secure = settings.session_cookie_secure
    app.state.outbox = outbox if settings.environment != "production" else None


def create_app(
    settings: Settings,
    *,
    provider: NumberProvider | None = None,
    mailer: Mailer | None = None,
) -> FastAPI:
    """Build the app; ``provider`` replaces the Graph API client (tests pass their own);
    ``mailer`` the e-mail seam (default: the development outbox, memory and
    ``mail_outbox_path``, readable at ``/internal/v1/dev/outbox`` outside production)."""
    box = settings.secret_box()
    outbox = Outbox(Path(settings.mail_outbox_path) if settings.mail_outbox_path else None)
    passwords = Passwords(
        time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
    )
    access_tokens = AccessTokens(settings.access_token_key(), ttl_s=settings.access_token_ttl_s)
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

        async def connect() -> None:
            resources.pool = await open_database(settings)
            resources.repository = Repository(resources.pool)
            service = TenantService(
                resources.repository,
                box,
                number_provider,
                validate_numbers=settings.validate_numbers,
                audit=resources.repository,
            )
            resources.service = service
            resources.identity = IdentityService(
                resources.repository,
                mailer or outbox,
                passwords,
                access_tokens,
                identity_policy(settings),
            )
            log.info("database ready")
            background.start(
                "health-refresh",
                repeat(
                    settings.health_refresh_interval_s, "number health refresh", refresh(service)
                ),
            )
            background.start(
                "identity-purge",
                repeat(
                    settings.identity_purge_interval_s,
                    "identity purge",
                    resources.identity.purge,
                ),
            )

        background.start("connect", connect())
        try:
            yield
        finally:
            await background.stop()
            resources.service = resources.repository = resources.identity = None
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
    identity_state(app, settings, outbox if mailer is None else None)

    @app.exception_handler(TenantError)
    async def tenant_error(_: Request, exc: TenantError) -> JSONResponse:
        return error_response(exc)

    app.include_router(public.router)
    app.include_router(users.router)
    app.include_router(auth.router)
    app.include_router(internal.router)
    return app
