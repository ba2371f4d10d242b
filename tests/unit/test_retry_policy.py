"""Backoff with full jitter and the error-to-decision mapping of DESIGN §6."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from executor.retry import Action, backoff_seconds, decide
from shared.providers.base import AuthExpired, Permanent, RateLimited, Transient

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_full_jitter_stays_within_doubling_caps() -> None:
    rng = random.Random(7)
    for retry, cap in ((1, 60), (2, 120), (3, 240)):
        samples = [backoff_seconds(retry, 60, rng) for _ in range(2000)]
        assert min(samples) >= 0 and max(samples) <= cap
        # Full jitter spreads over the whole range, not just near the cap.
        assert min(samples) < cap * 0.05 and max(samples) > cap * 0.95


def test_transient_retries_then_fails_after_max() -> None:
    rng = random.Random(1)
    for tries in range(3):
        decision = decide(Transient("503"), failed_tries=tries, max_retries=3, base_seconds=60,
                          now=NOW, rng=rng)
        assert decision.action == Action.RETRY and decision.consumes_attempt
        assert decision.run_at is not None
        assert NOW <= decision.run_at <= NOW + timedelta(seconds=60 * 2**tries)
    final = decide(Transient("503"), failed_tries=3, max_retries=3, base_seconds=60, now=NOW)
    assert final.action == Action.FAIL


def test_rate_limited_defers_without_consuming_an_attempt() -> None:
    later = NOW + timedelta(seconds=30)
    decision = decide(RateLimited("429", later), failed_tries=3, max_retries=3, base_seconds=60,
                      now=NOW)
    assert decision == decision.__class__(Action.DEFER, run_at=later, consumes_attempt=False)


def test_rate_limit_in_the_past_runs_now() -> None:
    decision = decide(RateLimited("429", NOW - timedelta(seconds=5)), failed_tries=0,
                      max_retries=3, base_seconds=60, now=NOW)
    assert decision.run_at == NOW


@pytest.mark.parametrize(("error", "action"), [(Permanent("400"), Action.FAIL),
                                               (AuthExpired("401"), Action.REFRESH)])
def test_permanent_and_auth(error: Exception, action: Action) -> None:
    decision = decide(error, failed_tries=0, max_retries=3, base_seconds=60, now=NOW)  # type: ignore[arg-type]
    assert decision.action == action
