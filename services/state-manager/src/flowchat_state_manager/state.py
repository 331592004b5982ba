"""The forward-only status machine of one outbound message (pure: no I/O).

::

    queued(0) ─▶ accepted(1) ─▶ sent(2) ─▶ delivered(3) ─▶ read(4) ─▶ played(5)
        │             │            │            │             │           │
        └─────────────┴────────────┴─ failed ───┴─────────────┴───────────┘  (terminal)
        │
        └─▶ parked(0) ─▶ accepted, sent, …, failed   (the command waits in the DLQ; a
                                                    replay that sends it moves it on)

Rules (WhatsApp statuses come late, duplicated and out of order, see the shared
reference §4):

- a status already in the message's history is a **duplicate**: ignored, not recorded;
- a status ranked above the current one moves the message forward (**applied**),
  skipping steps is fine (``read`` implies ``delivered``);
- a status ranked at or below the current one is **out of order**: kept in the
  history, the current status does not move backwards;
- ``failed`` is terminal and wins over every other status, whenever it arrives
  (a ``failed`` after ``sent`` is recorded as failed; anything after ``failed`` is
  history only);
- ``parked`` (the sender parked the command in ``whatsapp.outbound.dlq``) applies only
  to a message with no outcome yet (``queued``); it ranks with ``queued``, so any
  provider status moves a parked message on, and a ``parked`` after one is history only.

So the final status depends only on the *set* of statuses seen: ``failed`` when it
is in the set, else the highest-ranked one. That is what makes any order and any
duplication of the same events end in the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    ACCEPTED = "accepted"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    PARKED = "parked"


#: Position on the happy path; ``failed`` sits above all of them (terminal).
RANK: dict[Status, int] = {
    Status.QUEUED: 0,
    Status.ACCEPTED: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
    Status.PLAYED: 5,
    Status.FAILED: 100,
    Status.PARKED: 0,
}

#: Statuses a message can be listed by on the happy path, in order.
FORWARD: tuple[Status, ...] = tuple(s for s in Status if s not in (Status.FAILED, Status.PARKED))


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True, slots=True)
class Transition:
    outcome: Outcome
    previous: Status | None
    status: Status

    @property
    def changed(self) -> bool:
        """True when the message's current status moves (a change to publish)."""
        return self.outcome is Outcome.APPLIED

    @property
    def recorded(self) -> bool:
        """True when the incoming status belongs in the history."""
        return self.outcome is not Outcome.DUPLICATE


def rank(status: Status) -> int:
    return RANK[status]


def transition(current: Status | None, incoming: Status, *, seen_before: bool) -> Transition:
    """Decide what ``incoming`` does to a message whose status is ``current``.

    ``seen_before`` tells whether ``incoming`` is already in the message's history
    (the caller knows: an in-memory set, or a unique index that refused the insert).
    ``current`` is None for a message with no status yet.
    """
    if seen_before or incoming is current:
        return Transition(Outcome.DUPLICATE, current, current or incoming)
    if current is None:
        return Transition(Outcome.APPLIED, None, incoming)
    if current is Status.FAILED:
        return Transition(Outcome.OUT_OF_ORDER, current, current)
    if incoming is Status.PARKED:
        if current is Status.QUEUED:
            return Transition(Outcome.APPLIED, current, incoming)
        return Transition(Outcome.OUT_OF_ORDER, current, current)
    if incoming is Status.FAILED or RANK[incoming] > RANK[current]:
        return Transition(Outcome.APPLIED, current, incoming)
    return Transition(Outcome.OUT_OF_ORDER, current, current)


@dataclass(frozen=True, slots=True)
class MessageState:
    """A message's status and the set of statuses in its history."""

    status: Status | None = None
    history: frozenset[Status] = field(default_factory=frozenset)

    def apply(self, incoming: Status) -> tuple[MessageState, Transition]:
        t = transition(self.status, incoming, seen_before=incoming in self.history)
        if not t.recorded:
            return self, t
        return MessageState(t.status, self.history | {incoming}), t


def fold(statuses: Iterable[Status], start: MessageState | None = None) -> MessageState:
    """Apply ``statuses`` in order; the state a message ends in."""
    state = start or MessageState()
    for status in statuses:
        state, _ = state.apply(status)
    return state


def final_status(statuses: Iterable[Status]) -> Status | None:
    """The closed form of :func:`fold`'s status: failed if seen, else the highest rank."""
    seen = set(statuses)
    if not seen:
        return None
    if Status.FAILED in seen:
        return Status.FAILED
    return max(seen, key=lambda s: (RANK[s], s is Status.PARKED))


def reached(status: Status, target: Status) -> bool:
    """True when a message now in ``status`` has passed ``target`` on the happy path.

    ``read`` implies ``delivered`` (Meta may skip the ``delivered`` webhook); a failed
    message has reached nothing as far as funnels go.
    """
    if status is Status.FAILED or target is Status.FAILED:
        return status is target
    return RANK[status] >= RANK[target]
