"""The job state machine of DESIGN §2."""

from __future__ import annotations

import itertools

from shared.models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    WAITING_STATES,
    JobState,
    can_transition,
)


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(JobState)


def test_happy_path() -> None:
    path = [JobState.PENDING, JobState.STAGED, JobState.RUNNING, JobState.PUBLISHING,
            JobState.SUCCEEDED]
    for source, target in itertools.pairwise(path):
        assert can_transition(source, target)


def test_publishing_never_goes_back_to_waiting_without_a_decision() -> None:
    # A job that may have been sent cannot silently return to pending: it succeeds, fails,
    # waits for a retry (same idempotency key) or needs a person (unconfirmed).
    assert not can_transition(JobState.PUBLISHING, JobState.PENDING)
    assert not can_transition(JobState.PUBLISHING, JobState.RUNNING)
    assert can_transition(JobState.PUBLISHING, JobState.UNCONFIRMED)


def test_only_forced_retries_leave_terminal_states() -> None:
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] <= {JobState.STAGED, JobState.PENDING}


def test_state_groups_are_disjoint() -> None:
    assert not (WAITING_STATES & ACTIVE_STATES)
    assert not (TERMINAL_STATES & (WAITING_STATES | ACTIVE_STATES))
