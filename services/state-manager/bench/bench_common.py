"""Event generation shared by the benchmarks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flowchat_contracts import SendResult, StatusUpdate

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def events_for(i: int) -> list[SendResult | StatusUpdate]:
    mid, wamid = f"m{i}-{uuid.uuid4().hex[:8]}", f"wamid.{uuid.uuid4().hex}"
    base = {"tenant_id": "tnt_bench", "account_id": "acc_1"}
    out: list[SendResult | StatusUpdate] = [
        SendResult(
            **base,
            message_id=mid,
            idempotency_key=mid,
            to="15551230000",
            message_type="text",
            status="accepted",
            provider="meta",
            provider_message_id=wamid,
        )
    ]
    for n, status in enumerate(("sent", "delivered", "read"), 1):
        out.append(
            StatusUpdate(
                **base,
                provider="meta",
                provider_message_id=wamid,
                status=status,  # type: ignore[arg-type]
                timestamp=T0 + timedelta(seconds=n),
            )
        )
    return out


def make_events(messages: int, *, waves: bool = True) -> list[SendResult | StatusUpdate]:
    """``messages`` x (send result, sent, delivered, read). ``waves``: as a campaign
    (every send result, then every sent, …); else one message's events back to back."""
    per_message = [events_for(i) for i in range(messages)]
    if waves:
        return [m[k] for k in range(4) for m in per_message]
    return [ev for m in per_message for ev in m]
