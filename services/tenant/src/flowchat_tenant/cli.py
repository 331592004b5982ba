"""Commands run beside the service (``python -m flowchat_tenant <command>``)."""

from __future__ import annotations

import asyncio
import sys

from flowchat_platform.logs import configure_logging
from flowchat_platform.settings import load_settings

from flowchat_tenant import SERVICE
from flowchat_tenant.app import open_database
from flowchat_tenant.provider import NoProvider
from flowchat_tenant.repository import Repository
from flowchat_tenant.service import TenantService
from flowchat_tenant.settings import Settings


async def rotate_keys(settings: Settings) -> tuple[int, int]:
    """Re-encrypt every secret under the keyring's first key; returns (accounts, secrets)."""
    pool = await open_database(settings)
    try:
        service = TenantService(Repository(pool), settings.secret_box(), NoProvider())
        return await service.rotate_keys(batch_size=settings.rotation_batch_size)
    finally:
        await pool.close()


def rotate_keys_command() -> int:
    settings = load_settings(Settings)
    configure_logging(SERVICE, settings.log_level)
    accounts, secrets = asyncio.run(rotate_keys(settings))
    sys.stdout.write(
        f"re-encrypted {secrets} secrets of {accounts} accounts under the first key of "
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS; remove the old keys once every replica runs "
        "with the new list\n"
    )
    return 0
