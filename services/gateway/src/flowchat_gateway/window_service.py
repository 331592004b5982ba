"""A customer's 24 h customer-service window, as the tenant's API asks it
(``GET /v1/accounts/{account_id}/customers/{customer_id}/window``).

The gateway owns the window: it records the customer's last inbound message under
every id of the customer (``flowchat:csw:<account>:<id>``, :mod:`flowchat_gateway.store`),
and the sender refuses free-form messages from the same record. The answer is read
from that record (one Redis ``GET``, no database, no call to Meta) and may be cached by
the caller until it could change: ``cache_s`` seconds, never past the moment an open
window closes. Nothing here knows HTTP or Redis (:mod:`flowchat_gateway.ports`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flowchat_gateway.errors import SendRejected, Unavailable
from flowchat_gateway.ports import Accounts, ApiKey, WindowStore
from flowchat_platform.errors import StoreUnavailable, UpstreamError

#: Meta's customer-service window.
WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class WindowState:
    account_id: str
    customer_id: str
    #: A free-form (non-template) message may be sent now.
    open: bool
    #: The customer's last inbound message (None: none recorded in the last 72 h).
    last_inbound_at: datetime | None
    #: When the window closes (closed: when it closed; None: never opened).
    closes_at: datetime | None
    #: Seconds until it closes (0 when closed).
    seconds_left: int
    #: How long the caller may cache this answer.
    cache_s: int


class WindowService:
    def __init__(
        self, *, tenants: Accounts, store: WindowStore, window_s: int = WINDOW_S, cache_s: int = 60
    ) -> None:
        self.tenants = tenants
        self.store = store
        self.window_s = window_s
        self.cache_s = cache_s

    async def state(
        self, caller: ApiKey, account_id: str, customer_id: str, *, now: float | None = None
    ) -> WindowState:
        try:
            account = await self.tenants.account(account_id)
        except UpstreamError as exc:
            raise Unavailable(str(exc), dependency="tenant") from exc
        if account is None or account.tenant_id != caller.tenant_id:
            raise SendRejected("account_not_found", "no such account", field="account_id")
        try:
            last = await self.store.customer_window(account.tenant_id, account_id, customer_id)
        except StoreUnavailable as exc:
            raise Unavailable(str(exc), dependency="redis") from exc
        now = time.time() if now is None else now
        if last is None:
            return WindowState(account_id, customer_id, False, None, None, 0, self.cache_s)
        closes = last + self.window_s
        left = max(0, int(closes - now))
        return WindowState(
            account_id=account_id,
            customer_id=customer_id,
            open=left > 0,
            last_inbound_at=datetime.fromtimestamp(last, UTC),
            closes_at=datetime.fromtimestamp(closes, UTC),
            seconds_left=left,
            cache_s=min(self.cache_s, left) if left > 0 else self.cache_s,
        )


__all__ = ["WINDOW_S", "WindowService", "WindowState"]
