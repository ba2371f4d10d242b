"""The next fire time at any distance, "never fires" decided from the calendar, and the ends
of datetime's calendar (years 1 to 9999 in UTC) reached without an overflow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from croniter import CroniterBadDateError

from scheduler.api.checks import schedule_problems
from scheduler.cron import next_occurrence, occurrences
from shared.models import CronSchedule

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
FIRST = datetime.min.replace(tzinfo=UTC)
LAST = datetime.max.replace(tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_start_years_ahead_fires_there() -> None:
    start, end = utc("2028-06-01T00:00"), utc("2028-12-31T00:00")
    assert next_occurrence("0 9 * * *", "UTC", NOW, start_at=start, end_at=end) == utc(
        "2028-06-01T09:00")
    assert next_occurrence("0 9 * * *", "UTC", NOW, start_at=utc("2400-01-01T10:00")) == utc(
        "2400-01-02T09:00")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 9 29 2 *", "2026-05-01T12:00", "2028-02-29T09:00"),
        # 2100 is no leap year: eight years between leap days.
        ("0 9 29 2 *", "2096-03-01T00:00", "2104-02-29T09:00"),
        # A fifth Friday of February needs a leap year starting on a Friday: 40 years apart.
        ("0 9 * 2 5#5", "2188-03-01T00:00", "2228-02-29T09:00"),
    ],
)
def test_rare_expressions_fire_wherever_their_next_match_falls(expression: str, after: str,
                                                               expected: str) -> None:
    assert next_occurrence(expression, "UTC", utc(after)) == utc(expected)


@pytest.mark.parametrize("expression", ["0 9 30 2 *", "0 9 31 4,6,9,11 *", "0 9 30 2 5#5"])
def test_an_expression_matching_no_date_never_fires(expression: str) -> None:
    with pytest.raises(CroniterBadDateError):
        next_occurrence(expression, "UTC", NOW)
    with pytest.raises(CroniterBadDateError):
        next_occurrence(expression, "UTC", NOW, end_at=utc("2026-06-01T00:00"))


def test_end_at_before_the_first_occurrence_never_fires() -> None:
    assert next_occurrence("0 9 * * *", "UTC", NOW, start_at=utc("2030-01-01T10:00"),
                           end_at=utc("2030-01-02T08:00")) is None
    assert next_occurrence("0 9 29 2 *", "UTC", NOW, end_at=utc("2028-02-28T00:00")) is None


@pytest.mark.parametrize(
    ("expression", "zone", "start", "expected"),
    [
        ("0 * * * *", "UTC", "9999-12-31T23:00", "9999-12-31T23:00"),
        ("30 6 1 * *", "UTC", "9999-12-31T23:59:59", None),
        ("59 23 31 12 *", "UTC", "9999-01-01T00:00", "9999-12-31T23:59"),
        # +14:00: the start is already in year 10000 there.
        ("0 * * * *", "Pacific/Kiritimati", "9999-12-31T10:00", None),
        # -12:00: 23:00 of the last day there is 11:00 of a day UTC does not have.
        ("0 23 * * *", "Etc/GMT+12", "9999-12-31T00:00", "9999-12-31T11:00"),
        ("0 23 * * *", "Etc/GMT+12", "9999-12-31T12:00", None),
    ],
)
def test_the_end_of_the_calendar_ends_a_schedule(expression: str, zone: str, start: str,
                                                 expected: str | None) -> None:
    fire = next_occurrence(expression, zone, NOW, start_at=utc(start))
    assert fire == (utc(expected) if expected else None)


def test_the_calendar_ends_are_valid_bounds() -> None:
    expected = utc("2026-05-02T09:00")
    assert next_occurrence("0 9 * * *", "UTC", NOW, start_at=FIRST, end_at=LAST) == expected
    assert next_occurrence("0 9 * * *", "Pacific/Kiritimati", NOW, start_at=FIRST,
                           end_at=LAST) == utc("2026-05-01T19:00")
    assert list(occurrences("0 9 * * *", "UTC", NOW, LAST, start_at=FIRST,
                            end_at=utc("2026-05-04T09:00"))) == [
        utc("2026-05-02T09:00"), utc("2026-05-03T09:00"), utc("2026-05-04T09:00")]


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        ({"cron": "0 9 * * *", "start_at": "2028-06-01T00:00:00Z",
          "end_at": "2028-12-31T00:00:00Z"}, None),
        ({"cron": "0 9 29 2 *", "start_at": "2096-03-01T00:00:00Z",
          "end_at": "2104-03-01T00:00:00Z"}, None),
        ({"cron": "0 9 29 2 *"}, None),
        ({"cron": "0 9 30 2 *"}, "schedule.cron"),
        ({"cron": "0 9 30 2 *", "end_at": "2026-06-01T00:00:00Z"}, "schedule.cron"),
        ({"cron": "0 9 29 2 *", "end_at": "2028-02-28T00:00:00Z"}, "schedule"),
        ({"cron": "0 9 * * *", "start_at": "9999-12-31T12:00:00Z"}, "schedule.start_at"),
        ({"cron": "0 9 * * *", "timezone": "Pacific/Kiritimati",
          "start_at": "9999-12-31T12:00:00Z"}, "schedule.start_at"),
    ],
)
def test_schedule_problems_decide_never_fires(schedule: dict[str, str],
                                              field: str | None) -> None:
    problems = schedule_problems(CronSchedule.model_validate(schedule), 3600, NOW)
    assert [f for f, _ in problems] == ([field] if field else [])
