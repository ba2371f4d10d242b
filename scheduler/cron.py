"""Cron occurrences in an IANA time zone, with Herald's DST policy (DESIGN §3).

croniter is run over naive wall-clock times, and each wall time is then placed on the UTC
timeline by us, because croniter's own DST handling is not the policy we promise:
- a wall time that occurs twice (fall-back) fires once, at its first occurrence;
- a wall time that does not exist (spring-forward) fires at the first instant after the gap,
  and several such times in one gap fire once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

# Wall-clock offsets change by at most a few hours; starting this far back never misses one.
_LOOKBACK = timedelta(hours=3)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    aware = wall.replace(tzinfo=zone)
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def _after_gap(wall: datetime, zone: ZoneInfo) -> datetime:
    """First UTC instant whose local time is not before `wall`, for a wall time in a gap."""
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """Place a naive wall time of `zone` on the UTC timeline under the DST policy."""
    if _exists(wall, zone):
        return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return _after_gap(wall, zone)


def occurrences(
    expression: str,
    timezone: str,
    after: datetime,
    until: datetime,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Iterator[datetime]:
    """UTC fire times t with after < t <= until (and start_at <= t <= end_at), ascending."""
    zone = ZoneInfo(timezone)
    lower = max(after, start_at - timedelta(microseconds=1)) if start_at else after
    upper = min(until, end_at) if end_at else until
    if upper <= lower:
        return
    wall_start = lower.astimezone(zone).replace(tzinfo=None) - _LOOKBACK
    walls = croniter(expression, wall_start)
    last: datetime | None = None
    while True:
        wall: datetime = walls.get_next(datetime)
        fire = to_utc(wall, zone)
        if fire > upper:
            return
        if fire > lower and fire != last:
            last = fire
            yield fire


def next_occurrence(
    expression: str, timezone: str, after: datetime, *, start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> datetime | None:
    """The first fire time after `after`, looking at most a little over a year ahead."""
    horizon = after + timedelta(days=400)
    return next(
        occurrences(expression, timezone, after, horizon, start_at=start_at, end_at=end_at), None
    )
