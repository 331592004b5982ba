"""The state-manager's ``purge`` command (``python -m flowchat_state_manager purge``; the
entry, ``serve`` and ``--help`` are :mod:`flowchat_state_manager.__main__`'s).

- ``purge [--retention-days N] [--batch-size N]`` — one retention purge, then exit.

``purge`` uses the service's settings (``DATABASE_URL``, ``FLOWCHAT_STATE_MANAGER_RETENTION_DAYS``,
``FLOWCHAT_STATE_MANAGER_PURGE_BATCH_SIZE``); flags override them. Prints the counts
as one JSON line. Needs no service token (it serves nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from pydantic import ValidationError

from flowchat_platform.db import create_pool, migrate_with_retry
from flowchat_platform.logs import configure_logging
from flowchat_state_manager import SCHEMA, SERVICE
from flowchat_state_manager.app import MIGRATIONS
from flowchat_state_manager.models import PurgeResult
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.service import StateService
from flowchat_state_manager.settings import Settings


async def purge(
    database_url: str, *, retention_days: int, batch_size: int, days_ahead: int = 7
) -> PurgeResult:
    await migrate_with_retry(database_url, MIGRATIONS, SCHEMA)
    pool = await create_pool(database_url, schema=SCHEMA, max_size=2, reset=False)
    try:
        service = StateService(Repository(pool))
        return await service.purge(
            retention_days=retention_days,
            batch_size=batch_size,
            now=datetime.now(UTC),
            days_ahead=days_ahead,
        )
    finally:
        await pool.close()


def purge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowchat_state_manager purge",
        description="Delete message records older than the retention, in short batches.",
    )
    parser.add_argument(
        "--retention-days",
        type=int,
        default=None,
        metavar="N",
        help="delete records older than N days (default FLOWCHAT_STATE_MANAGER_RETENTION_DAYS)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="rows deleted per transaction (default FLOWCHAT_STATE_MANAGER_PURGE_BATCH_SIZE)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
    configure_logging(SERVICE, settings.log_level)
    retention = args.retention_days or settings.retention_days
    batch = args.batch_size or settings.purge_batch_size
    if retention < 1 or batch < 1:
        sys.stderr.write("retention days and batch size must be positive\n")
        return 2
    result = asyncio.run(
        purge(
            settings.database_url,
            retention_days=retention,
            batch_size=batch,
            days_ahead=settings.partition_days_ahead,
        )
    )
    sys.stdout.write(
        json.dumps(
            {
                "purged_messages": result.messages,
                "purged_pending": result.pending,
                "dropped_partitions": result.partitions,
                "dropped_partition_rows": result.partition_rows,
                "retention_days": retention,
            }
        )
        + "\n"
    )
    return 0
