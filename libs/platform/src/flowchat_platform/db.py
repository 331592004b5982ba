"""PostgreSQL: asyncpg pools with retry, and Alembic migrations per service schema.

Each service owns one schema (``tenant``, ``state_manager``, ``conversation``);
its pool's ``search_path`` points there and its migrations create tables there,
with Alembic's version table in the same schema. Migrations take an advisory
lock, so replicas starting together migrate once. They run in a child process
(``python -m flowchat_platform.db``): Alembic, SQLAlchemy and Mako, about 34 MB resident
once imported, never load into the service itself.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from flowchat_platform.errors import FlowchatError
from flowchat_platform.logs import get_logger

log = get_logger(__name__)


async def _keep_session(_: asyncpg.Connection) -> None:
    return None


async def create_pool(
    dsn: str,
    *,
    schema: str,
    min_size: int = 1,
    max_size: int = 10,
    settings: dict[str, str] | None = None,
    reset: bool = True,
) -> asyncpg.Pool:
    """Open a pool (retrying with backoff while the database is down).

    ``settings``: more session settings (``{"synchronous_commit": "off"}`` for writes
    that may be lost in a crash). ``reset=False`` skips the reset query asyncpg sends at
    every release (a round trip each), for code that leaves no session state behind (no
    advisory locks, LISTEN, cursors or plain ``SET``)."""
    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(multiplier=0.5, max=10),
        retry=retry_if_exception_type((OSError, asyncpg.PostgresError, TimeoutError)),
        before_sleep=lambda rs: log.warning(
            "database unavailable, retrying",
            attempt=rs.attempt_number,
            error=repr(rs.outcome.exception()) if rs.outcome else None,
        ),
    ):
        with attempt:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=5,
                command_timeout=30,
                server_settings={
                    "search_path": schema,
                    "application_name": f"flowchat-{schema}",
                    **(settings or {}),
                },
                reset=None if reset else _keep_session,
            )
    assert pool is not None
    return pool


def _sqlalchemy_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


def _upgrade(dsn: str, migrations: Path, schema: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["dsn"] = dsn
    cfg.attributes["schema"] = schema
    command.upgrade(cfg, revision)


#: The environment variable that hands the DSN to the migrating child (not its argv:
#: the command line of a process is visible to every user of the machine).
_DSN_ENV = "FLOWCHAT_MIGRATE_DSN"


class MigrationFailed(FlowchatError):
    """The migrating child process failed; the message is its error (the traceback's
    lines after the last frame)."""


def _error_of(lines: list[str]) -> str:
    tail: list[str] = []
    for line in reversed(lines):
        if line.startswith((" ", "\t")):
            break
        tail.append(line)
    return " ".join(reversed(tail))


async def migrate(dsn: str, migrations: Path, schema: str, revision: str = "heads") -> None:
    """Apply a service's Alembic migrations in a child process (Alembic is synchronous,
    and what it imports would stay resident in the service)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowchat_platform.db",
        str(migrations),
        schema,
        revision,
        env={**os.environ, _DSN_ENV: dsn},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await proc.communicate()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        log.warning("migrations failed", schema=schema, stderr="\n".join(lines[-30:]))
        raise MigrationFailed(_error_of(lines) or f"exit status {proc.returncode}")
    log.info("migrations applied", schema=schema, revision=revision)


async def migrate_with_retry(
    dsn: str,
    migrations: Path,
    schema: str,
    *,
    revision: str = "heads",
    max_delay_s: float = 10.0,
) -> None:
    """Apply the migrations, waiting (with backoff) while the database is unreachable.

    Connection failures come from the child as a :class:`MigrationFailed` whose last
    line names the connection (asyncpg's, OS errors, or SQLAlchemy's wrapping them);
    anything else is a bug in a migration and raises.
    """
    delay = 0.5
    while True:
        try:
            await migrate(dsn, migrations, schema=schema, revision=revision)
            return
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("migrations failed; retrying", error=repr(exc), delay_s=delay)
        except Exception as exc:
            if "connect" not in repr(exc).lower():
                raise
            log.warning("database unavailable; retrying", error=repr(exc), delay_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay_s)


def run_alembic_env() -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    cfg = context.config
    dsn: str = cfg.attributes["dsn"]
    schema: str = cfg.attributes["schema"]

    def do_run(connection: Any) -> None:
        context.configure(
            connection=connection, version_table_schema=schema, transactional_ddl=True
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(_sqlalchemy_url(dsn), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_advisory_lock(hashtext(:s))"), {"s": schema})
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                await conn.execute(text(f'SET search_path TO "{schema}"'))
                await conn.commit()
                await conn.run_sync(do_run)
                await conn.commit()
                await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:s))"), {"s": schema})
                await conn.commit()
        finally:
            await engine.dispose()

    asyncio.run(run())


if __name__ == "__main__":  # the child :func:`migrate` starts
    _upgrade(os.environ[_DSN_ENV], Path(sys.argv[1]), sys.argv[2], sys.argv[3])
