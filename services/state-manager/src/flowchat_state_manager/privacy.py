"""Customers' privacy in the state-manager: recipients' ids encrypted at rest, and the
service's part of an erasure (``flowchat_contracts.privacy``).

``messages.recipient`` / ``recipient_alias`` hold keyed digests of the ids (lookups and
their indexes keep working), ``recipient_enc`` / ``recipient_alias_enc`` Fernet tokens
(:class:`~flowchat_platform.privacy.IdentitySealer`). :func:`seal_loop` seals the rows
stored in clear before, once at start, and re-encrypts every token under the newest key
while an old one is still configured (once per newest key: migration 0008). An erasure
keeps the customer's messages (status history, pricing) under a pseudonym, with no id
and no token.
"""

from __future__ import annotations

from collections.abc import Callable

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
    forget_rows: Callable[[], None],
) -> None:
    """The background sealing pass, and ``state-manager.privacy`` consumed (an erasure
    also calls ``forget_rows``: no erased id stays in the rows kept in memory)."""
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
        erased = await repository.erase_recipient(request.tenant_id, ids, pseudonym)
        forget_rows()
        return erased

    await ErasureAgent(amqp, SERVICE, erase).start()


async def seal_loop(repository: Repository, *, rotate: bool, batch: int, pause_s: float) -> None:
    """One pass over the messages, in short transactions: ids stored in clear before
    encryption are sealed (found through the partial index of the rows in clear: a start
    with none costs a probe); with an old key still configured (``rotate``), every token
    is re-encrypted under the newest (:func:`flowchat_platform.sealing.seal_loop`), once:
    the finished rotation is recorded under the newest key's fingerprint, and a later start
    with the same newest key only seals."""
    action = "rotated" if rotate else "sealed"
    rotating = rotate

    async def step(after: str, size: int) -> tuple[int, str | None]:
        nonlocal rotating
        if after == "":  # a pass starts (again, after a failure)
            rotating = rotate and not await repository.rotation_recorded()
        n, last = await repository.seal_batch(after, size, rotate=rotating)
        if last is None and rotating:
            await repository.record_rotation()
        return n, last

    await sealing.seal_loop(
        {"messages": step},
        action=action,
        batch=batch,
        pause_s=pause_s,
        counted=lambda _: metrics.SEALED.labels(action).inc,
    )
