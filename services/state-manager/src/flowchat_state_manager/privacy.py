"""Customers' privacy in the state-manager: recipients' ids encrypted at rest, and the
service's part of an erasure (``flowchat_contracts.privacy``).

``messages.recipient`` / ``recipient_alias`` hold keyed digests of the ids (lookups and
their indexes keep working), ``recipient_enc`` / ``recipient_alias_enc`` Fernet tokens
(:class:`~flowchat_platform.privacy.IdentitySealer`). :func:`seal_loop` seals the rows
stored in clear before, once at start, and re-encrypts every token under the newest key
while an old one is still configured. An erasure keeps the customer's messages (status
history, pricing) under a pseudonym, with no id and no token.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from flowchat_contracts.privacy import ErasureRequested
from flowchat_platform import sealing
from flowchat_platform.amqp import Amqp
from flowchat_platform.erasure import ErasureAgent
from flowchat_platform.privacy import IdentitySealer, identity_box, normalise_id, privacy_index
from flowchat_platform.runner import Background
from flowchat_state_manager import SERVICE, metrics
from flowchat_state_manager.repository import Repository
from flowchat_state_manager.settings import Settings


def identity_sealer(settings: Settings) -> IdentitySealer:
    box = identity_box(
        settings.encryption_keys, settings.service_token, "FLOWCHAT_STATE_MANAGER_ENCRYPTION_KEYS"
    )
    return IdentitySealer(box, privacy_index(settings.privacy_key, settings.service_token))


async def start_privacy(
    bg: Background,
    amqp: Amqp,
    repository: Repository,
    sealer: IdentitySealer,
    settings: Settings,
) -> None:
    """The background sealing pass, and ``state-manager.privacy`` consumed."""
    bg.start(
        "seal",
        seal_loop(
            repository,
            rotate=sealer.box.key_count > 1,
            batch=settings.seal_batch_size,
            pause_s=settings.seal_pause_s,
        ),
    )

    async def erase(request: ErasureRequested) -> dict[str, int]:
        ids = sorted({normalise_id(i) for i in request.identities})
        pseudonym = sealer.index.pseudonym(request.tenant_id, sorted(request.identities)[0])
        return await repository.erase_recipient(request.tenant_id, ids, pseudonym)

    await ErasureAgent(amqp, SERVICE, erase).start()


def seal_loop(
    repository: Repository, *, rotate: bool, batch: int, pause_s: float
) -> Coroutine[Any, Any, None]:
    """One pass over the messages, in short transactions: ids stored in clear before
    encryption are sealed; with an old key still configured (``rotate``), every token is
    re-encrypted under the newest (:func:`flowchat_platform.sealing.seal_loop`)."""
    action = "rotated" if rotate else "sealed"

    async def step(after: str, size: int) -> tuple[int, str | None]:
        return await repository.seal_batch(after, size, rotate=rotate)

    return sealing.seal_loop(
        {"messages": step},
        action=action,
        batch=batch,
        pause_s=pause_s,
        counted=lambda _: metrics.SEALED.labels(action).inc,
    )
