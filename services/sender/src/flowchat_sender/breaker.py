"""A circuit breaker per business account (per process), asyncio-friendly and tiny.

::

    CLOSED ──(≥ ratio failures over window, ≥ min_volume calls)──▶ OPEN
      ▲                                                            │ open_s
      └──── probe succeeds ◀── HALF_OPEN (exactly one probe) ◀─────┘
                                   └── probe fails ──▶ OPEN again

Only provider-health failures count (5xx, network, Meta's "retry" codes); a
permanent refusal of one message says nothing about the account's health. A probe
that ends without an outcome (the limiter deferred it) is cancelled, and the next
caller probes instead.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class _Circuit:
    state: State = State.CLOSED
    events: deque[tuple[float, bool]] = field(default_factory=deque)
    opened_at: float = 0.0
    probing: bool = False


class Ticket:
    """Permission for one call; report how it went exactly once."""

    def __init__(self, breaker: CircuitBreaker, key: str, *, probe: bool) -> None:
        self._breaker = breaker
        self.key = key
        self.probe = probe
        self._done = False

    def success(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self, ok=True)

    def failure(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(self, ok=False)

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._breaker._cancel(self)


class CircuitBreaker:
    def __init__(
        self,
        *,
        window_s: float = 60.0,
        min_volume: int = 10,
        failure_ratio: float = 0.5,
        open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_state: Callable[[str, State], None] | None = None,
    ) -> None:
        self.window_s = window_s
        self.min_volume = min_volume
        self.failure_ratio = failure_ratio
        self.open_s = open_s
        self._clock = clock
        self._on_state = on_state
        self._circuits: dict[str, _Circuit] = {}

    def state(self, key: str) -> State:
        circuit = self._circuits.get(key)
        if circuit is None:
            return State.CLOSED
        if circuit.state is State.OPEN and self._clock() - circuit.opened_at >= self.open_s:
            self._set(key, circuit, State.HALF_OPEN)
        return circuit.state

    def acquire(self, key: str) -> Ticket | None:
        """A ticket to call, or None while the circuit is open (or its one probe is out)."""
        state = self.state(key)
        circuit = self._circuits.setdefault(key, _Circuit())
        if state is State.CLOSED:
            return Ticket(self, key, probe=False)
        if state is State.HALF_OPEN and not circuit.probing:
            circuit.probing = True
            return Ticket(self, key, probe=True)
        return None

    def retry_in(self, key: str) -> float:
        """Seconds until the open circuit lets a probe through (at least 1)."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.state is State.CLOSED:
            return 0.0
        return max(1.0, self.open_s - (self._clock() - circuit.opened_at))

    def _record(self, ticket: Ticket, *, ok: bool) -> None:
        circuit = self._circuits.setdefault(ticket.key, _Circuit())
        now = self._clock()
        if ticket.probe:
            circuit.probing = False
            if ok:
                circuit.events.clear()
                self._set(ticket.key, circuit, State.CLOSED)
            else:
                circuit.opened_at = now
                self._set(ticket.key, circuit, State.OPEN)
            return
        if circuit.state is not State.CLOSED:
            return  # a late answer from before the circuit opened
        circuit.events.append((now, ok))
        while circuit.events and circuit.events[0][0] < now - self.window_s:
            circuit.events.popleft()
        if ok:
            return
        total = len(circuit.events)
        failures = sum(1 for _, good in circuit.events if not good)
        if total >= self.min_volume and failures / total >= self.failure_ratio:
            circuit.opened_at = now
            circuit.events.clear()
            self._set(ticket.key, circuit, State.OPEN)

    def _cancel(self, ticket: Ticket) -> None:
        if ticket.probe:
            circuit = self._circuits.get(ticket.key)
            if circuit is not None:
                circuit.probing = False

    def _set(self, key: str, circuit: _Circuit, state: State) -> None:
        if circuit.state is not state:
            circuit.state = state
            if self._on_state is not None:
                self._on_state(key, state)
