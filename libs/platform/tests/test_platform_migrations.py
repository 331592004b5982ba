"""Migrations run in a child process (real PostgreSQL): the schema is there afterwards,
Alembic and SQLAlchemy never load into the calling process (about 34 MB resident in a
service otherwise), and a failing migration raises with its error."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from flowchat_platform.db import MigrationFailed, migrate

pytestmark = pytest.mark.integration

ENV = "from flowchat_platform.db import run_alembic_env\n\nrun_alembic_env()\n"
VERSION = '''"""A table."""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute("{sql}")
'''


def migrations(folder: Path, sql: str) -> Path:
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    (folder / "versions" / "0001_first.py").write_text(VERSION.format(sql=sql))
    return folder


async def test_migrations_apply_in_a_child_process(database_url: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "m", "CREATE TABLE things (id int)")
    await migrate(database_url, folder, "probe")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT version_num FROM probe.alembic_version") == "0001"
        assert await conn.fetchval("SELECT to_regclass('probe.things')::text") == "probe.things"
    finally:
        await conn.close()
    assert "alembic" not in sys.modules
    assert "sqlalchemy" not in sys.modules


async def test_a_failing_migration_raises_its_error(database_url: str, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "m", "SELECT * FROM no_such_table")
    with pytest.raises(MigrationFailed, match="no_such_table"):
        await migrate(database_url, folder, "probe")
