"""Cron occurrences in an IANA time zone, with Herald's DST policy (DESIGN §3).

croniter is run over naive wall-clock times, and each wall time is then placed on the UTC
timeline by us, because croniter's own DST handling is not the policy we promise:
- a wall time that occurs twice (fall-back) fires once, at its first occurrence;
- a wall time that does not exist (spring-forward) fires at the first instant after the gap,
  and several such times in one gap fire once.

Time ends where datetime's does, 9999-12-31 in UTC: a fire time past it never comes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

# Wall-clock offsets change by at most a few hours; starting this far back never misses one.
_LOOKBACK = timedelta(hours=3)
_TICK = timedelta(microseconds=1)
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
#: The Gregorian calendar, weekdays included, repeats every 400 years (146,097 days, a whole
#: number of weeks): an expression croniter finds no match for in that span matches no date.
CALENDAR_CYCLE_YEARS = 400


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


def _walls(expression: str, start: datetime) -> Iterator[datetime]:
    """croniter's matches after the naive `start`, ascending, until the calendar ends;
    CroniterBadDateError when the expression matches no date at all."""
    walls = croniter(expression, start, max_years_between_matches=CALENDAR_CYCLE_YEARS)
    while True:
        try:
            wall: datetime = walls.get_next(datetime)
        except CroniterError:
            raise
        except (OverflowError, ValueError):  # the next match would fall after 9999-12-31
            return
        yield wall


def occurrences(
    expression: str,
    timezone: str,
    after: datetime,
    until: datetime,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> Iterator[datetime]:
    """UTC fire times t with after < t <= until (and start_at <= t <= end_at), ascending, none
    after 9999-12-31; CroniterBadDateError when the expression matches no date at all."""
    zone = ZoneInfo(timezone)
    lower = start_at - _TICK if start_at and start_at > after else after
    upper = min(until, end_at) if end_at else until
    if upper <= lower:
        return
    try:
        wall_start = lower.astimezone(zone).replace(tzinfo=None) - _LOOKBACK
    except OverflowError:  # lower is past the last wall time of `zone` (9999-12-31)
        return
    last: datetime | None = None
    for wall in _walls(expression, wall_start):
        try:
            fire = to_utc(wall, zone)
        except OverflowError:  # a wall time of the last day, after the last instant in UTC
            return
        if fire > upper:
            return
        if fire > lower and fire != last:
            last = fire
            yield fire


def next_occurrence(
    expression: str, timezone: str, after: datetime, *, start_at: datetime | None = None,
    end_at: datetime | None = None,
) -> datetime | None:
    """The first fire time after `after`, or None when the schedule never fires again: end_at,
    or the end of time (9999-12-31), comes first.

    No look-ahead cap: the search starts at max(after, start_at), so a start years ahead costs
    nothing, and croniter looks up to CALENDAR_CYCLE_YEARS on from there. That finds the next
    match of every expression that has one, however far (leap days are 8 years apart across
    2100, which is no leap year; fifth Fridays of February up to 40), and proves that one such
    as `0 9 30 2 *` matches no date: CroniterBadDateError, after a few milliseconds.
    """
    return next(occurrences(expression, timezone, after, end_at or _END_OF_TIME,
                            start_at=start_at, end_at=end_at), None)
