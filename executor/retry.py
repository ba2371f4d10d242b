"""Retry policy (DESIGN §6): what each provider error means for the job.

HERALD_RETRY_MAX_ATTEMPTS counts retries after the first try: with the defaults a job is tried
once and retried after waits drawn from [0, 1], [0, 2] and [0, 4] minutes (full jitter), and
fails after the fourth failed try.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.providers.base import AuthExpired, Permanent, ProviderError, RateLimited, Transient


class Action(StrEnum):
    RETRY = "retry"
    DEFER = "defer"
    REFRESH = "refresh"
    FAIL = "fail"


@dataclass(frozen=True)
class Decision:
    action: Action
    #: When to run again (RETRY, DEFER).
    run_at: datetime | None = None
    #: Whether the try counts against the retry budget.
    consumes_attempt: bool = True


def backoff_seconds(retry: int, base: float, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, base * 2^(retry-1)] for the retry-th retry (1-based)."""
    cap = base * 2 ** (retry - 1)
    return (rng or random).uniform(0, cap)


def decide(
    error: ProviderError,
    *,
    failed_tries: int,
    max_retries: int,
    base_seconds: float,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """`failed_tries` counts earlier failed tries that consumed an attempt, not this one."""
    if isinstance(error, RateLimited):
        return Decision(Action.DEFER, run_at=max(error.retry_at, now), consumes_attempt=False)
    if isinstance(error, AuthExpired):
        return Decision(Action.REFRESH, consumes_attempt=False)
    if isinstance(error, Permanent):
        return Decision(Action.FAIL)
    if isinstance(error, Transient):
        retry = failed_tries + 1
        if retry > max_retries:
            return Decision(Action.FAIL)
        delay = backoff_seconds(retry, base_seconds, rng)
        return Decision(Action.RETRY, run_at=now + timedelta(seconds=delay))
    return Decision(Action.FAIL)
