"""The values of an idempotency claim: what a claim checks and what it answers.

Pure (no Redis): :mod:`flowchat_sender.service` works with these, and the Redis
store (:mod:`flowchat_sender.idempotency`) reads and writes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from flowchat_contracts import OutboundCommand, SendResult, optout_key
from flowchat_contracts.shared_state import customer_window_key
from flowchat_sender.limits import Admission


@dataclass(frozen=True)
class WindowCheck:
    """Check the 24 h customer-service window in the claim: ``strict`` also refuses
    when no inbound message is recorded; ``known`` only when the record is too old."""

    tenant_id: str
    account_id: str
    customer_wa_id: str
    strict: bool = False
    window_s: int = 24 * 3600

    @property
    def key(self) -> str:
        """The gateway's record of the customer's last inbound message (unix seconds)."""
        return customer_window_key(self.tenant_id, self.account_id, self.customer_wa_id.lstrip("+"))


@dataclass(frozen=True)
class OptOutCheck:
    """Refuse in the claim when ``wa_id`` is in the tenant's opt-out set (marketing only)."""

    tenant_id: str
    wa_id: str
    #: The recipient's suppression member (``h:<keyed digest>``: an erased customer), if
    #: the sender knows the platform's privacy key.
    suppressed: str | None = None

    @property
    def key(self) -> str:
        return optout_key(self.tenant_id)

    @property
    def member(self) -> str:
        return self.wa_id.lstrip("+")

    @property
    def members(self) -> tuple[str, ...]:
        """Every member that refuses the send: the id, and its suppression member."""
        return (self.member, self.suppressed) if self.suppressed else (self.member,)


def fingerprint(command: OutboundCommand) -> str:
    """What makes two commands "the same message": account, recipient, content, reply."""
    payload = {
        "account_id": command.account_id,
        "to": command.to.lstrip("+"),
        "reply_to": command.reply_to,
        "content": command.content.model_dump(mode="json", exclude_none=True),
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Record:
    fingerprint: str
    owner: str
    claimed_at: float
    result: SendResult | None

    @classmethod
    def decode(cls, raw: bytes) -> Record:
        data = orjson.loads(raw)
        result = data.get("result")
        return cls(
            fingerprint=str(data.get("fp", "")),
            owner=str(data.get("owner", "")),
            claimed_at=float(data.get("at", 0)),
            result=SendResult.model_validate(result) if result else None,
        )


@dataclass(frozen=True)
class Claim:
    """``record``: someone else's record (nothing claimed). Else the key is ours when
    ``admission`` is None or admitted; a refused admission claimed nothing.
    ``window_closed``: claimed, but the customer-service window is closed (the last
    inbound time, -1 when none is recorded): the caller stores a failure.
    ``opted_out``: claimed, but the customer opted out of marketing: likewise."""

    record: Record | None
    admission: Admission | None = None
    window_closed: float | None = None
    opted_out: bool = False

    @property
    def claimed(self) -> bool:
        return self.record is None and (self.admission is None or self.admission.admitted)
