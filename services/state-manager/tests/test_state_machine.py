# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False
# (the pyproject relaxes "*.tests.*" for tests; "state-manager" is no package name, so
# mypy names these modules bare and the override misses them: the same settings here)
"""The forward-only state machine, pure: every transition, and order-independence."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowchat_state_manager.query_service import summarize
from flowchat_state_manager.state import (
    RANK,
    MessageState,
    Outcome,
    Status,
    final_status,
    fold,
    reached,
    transition,
)

S = Status
FORWARD = [S.QUEUED, S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.PLAYED]
PROVIDER_STATUSES = [S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.PLAYED, S.FAILED]


@pytest.mark.parametrize(
    ("current", "incoming", "outcome", "status"),
    [
        (None, S.ACCEPTED, Outcome.APPLIED, S.ACCEPTED),
        (None, S.READ, Outcome.APPLIED, S.READ),
        (None, S.FAILED, Outcome.APPLIED, S.FAILED),
        (S.QUEUED, S.ACCEPTED, Outcome.APPLIED, S.ACCEPTED),
        (S.ACCEPTED, S.SENT, Outcome.APPLIED, S.SENT),
        (S.SENT, S.DELIVERED, Outcome.APPLIED, S.DELIVERED),
        (S.DELIVERED, S.READ, Outcome.APPLIED, S.READ),
        (S.READ, S.PLAYED, Outcome.APPLIED, S.PLAYED),
        # skipping steps: read implies delivered
        (S.SENT, S.READ, Outcome.APPLIED, S.READ),
        (S.ACCEPTED, S.DELIVERED, Outcome.APPLIED, S.DELIVERED),
        # never backwards
        (S.READ, S.DELIVERED, Outcome.OUT_OF_ORDER, S.READ),
        (S.READ, S.SENT, Outcome.OUT_OF_ORDER, S.READ),
        (S.DELIVERED, S.ACCEPTED, Outcome.OUT_OF_ORDER, S.DELIVERED),
        (S.PLAYED, S.READ, Outcome.OUT_OF_ORDER, S.PLAYED),
        # failed: terminal, and wins whenever it comes
        (S.SENT, S.FAILED, Outcome.APPLIED, S.FAILED),
        (S.ACCEPTED, S.FAILED, Outcome.APPLIED, S.FAILED),
        (S.READ, S.FAILED, Outcome.APPLIED, S.FAILED),
        (S.FAILED, S.DELIVERED, Outcome.OUT_OF_ORDER, S.FAILED),
        (S.FAILED, S.READ, Outcome.OUT_OF_ORDER, S.FAILED),
        (S.FAILED, S.ACCEPTED, Outcome.OUT_OF_ORDER, S.FAILED),
        # the same status again
        (S.SENT, S.SENT, Outcome.DUPLICATE, S.SENT),
        (S.FAILED, S.FAILED, Outcome.DUPLICATE, S.FAILED),
    ],
)
def test_transition_table(current, incoming, outcome, status):
    t = transition(current, incoming, seen_before=False)
    assert (t.outcome, t.status, t.previous) == (outcome, status, current)
    assert t.changed is (outcome is Outcome.APPLIED)
    assert t.recorded is (outcome is not Outcome.DUPLICATE)


@pytest.mark.parametrize("current", [None, *Status])
@pytest.mark.parametrize("incoming", list(Status))
def test_a_status_seen_before_is_always_a_duplicate(current, incoming):
    t = transition(current, incoming, seen_before=True)
    assert t.outcome is Outcome.DUPLICATE
    assert not t.changed
    assert not t.recorded


@pytest.mark.parametrize("current", [S.QUEUED, S.ACCEPTED, S.SENT, S.DELIVERED, S.READ, S.PLAYED])
@pytest.mark.parametrize("incoming", list(Status))
def test_every_pair_moves_forward_or_stays(current, incoming):
    t = transition(current, incoming, seen_before=False)
    assert RANK[t.status] >= RANK[current]
    if incoming is S.FAILED:
        assert t.status is S.FAILED
    elif incoming is S.PARKED:  # only a message with no outcome yet is parked
        assert t.status is (S.PARKED if current is S.QUEUED else current)
    elif RANK[incoming] > RANK[current]:
        assert t.status is incoming
    else:
        assert t.status is current


def test_read_before_delivered_keeps_read_and_records_delivered():
    state = fold([S.ACCEPTED, S.SENT, S.READ])
    state, t = state.apply(S.DELIVERED)
    assert t.outcome is Outcome.OUT_OF_ORDER
    assert state.status is S.READ
    assert S.DELIVERED in state.history


def test_failed_after_sent_is_failed_and_keeps_history():
    state = fold([S.ACCEPTED, S.SENT, S.FAILED, S.DELIVERED])
    assert state.status is S.FAILED
    assert state.history == {S.ACCEPTED, S.SENT, S.FAILED, S.DELIVERED}


def test_duplicates_leave_state_unchanged():
    state = fold([S.ACCEPTED, S.SENT])
    again, t = state.apply(S.SENT)
    assert t.outcome is Outcome.DUPLICATE
    assert again == state
    # a duplicate of an older status (already in the history) too
    state = fold([S.ACCEPTED, S.SENT, S.READ, S.DELIVERED])
    again, t = state.apply(S.DELIVERED)
    assert t.outcome is Outcome.DUPLICATE
    assert again == state


def test_reached_read_implies_delivered():
    assert reached(S.READ, S.DELIVERED)
    assert reached(S.PLAYED, S.READ)
    assert not reached(S.SENT, S.DELIVERED)
    assert not reached(S.FAILED, S.SENT)
    assert reached(S.FAILED, S.FAILED)


# ------------------------------------------------------------------ properties

events = st.lists(st.sampled_from(PROVIDER_STATUSES), min_size=1, max_size=12)


@given(events, st.randoms(use_true_random=False))
def test_any_order_and_duplication_ends_in_the_same_state(seq, rnd):
    shuffled = list(seq)
    rnd.shuffle(shuffled)
    duplicated = shuffled + [rnd.choice(seq) for _ in range(rnd.randint(0, 5))]
    rnd.shuffle(duplicated)
    a, b, c = fold(seq), fold(shuffled), fold(duplicated)
    assert a == b == c
    assert a.status is final_status(seq)
    assert a.history == frozenset(seq)


@given(events)
def test_status_never_moves_backwards(seq):
    state = MessageState()
    for incoming in seq:
        before = state.status
        state, t = state.apply(incoming)
        if before is not None:
            assert state.status is not None
            assert RANK[state.status] >= RANK[before]
            if before is S.FAILED:
                assert state.status is S.FAILED
        # a change is published exactly when the status moved
        assert t.changed == (state.status is not before)


@given(events)
def test_one_change_per_status_at_most(seq):
    changes = []
    state = MessageState()
    for incoming in seq:
        state, t = state.apply(incoming)
        if t.changed:
            changes.append(t.status)
    assert len(changes) == len(set(changes))
    assert changes[-1] is state.status


# ------------------------------------------------------------------ query helpers


def test_summarize_counts_every_status_and_the_funnel():
    stats = summarize({S.ACCEPTED: 1, S.SENT: 2, S.DELIVERED: 3, S.READ: 4, S.FAILED: 5})
    assert stats.total == 15
    assert stats.counts == {
        "queued": 0,
        "accepted": 1,
        "sent": 2,
        "delivered": 3,
        "read": 4,
        "played": 0,
        "failed": 5,
        "parked": 0,
    }
    assert stats.reached == {"accepted": 10, "sent": 9, "delivered": 7, "read": 4, "played": 0}


def test_parked_applies_only_before_an_outcome_and_any_outcome_moves_it_on():
    assert transition(Status.QUEUED, Status.PARKED, seen_before=False).outcome is Outcome.APPLIED
    for outcome in (Status.ACCEPTED, Status.SENT, Status.READ, Status.FAILED):
        assert transition(Status.PARKED, outcome, seen_before=False).outcome is Outcome.APPLIED
        assert transition(outcome, Status.PARKED, seen_before=False).outcome is (
            Outcome.OUT_OF_ORDER
        )
    assert final_status([Status.QUEUED, Status.PARKED]) is Status.PARKED
    assert final_status([Status.PARKED, Status.ACCEPTED]) is Status.ACCEPTED
    assert fold([Status.QUEUED, Status.PARKED, Status.SENT]).status is Status.SENT
