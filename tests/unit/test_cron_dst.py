"""The DST policy of DESIGN §3 on both kinds of transition, in two zones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.cron import next_occurrence, occurrences


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expr: str, zone: str, after: str, until: str) -> list[str]:
    return [t.strftime("%Y-%m-%dT%H:%M") for t in occurrences(expr, zone, utc(after), utc(until))]


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist and
        # fires at 03:00 CEST, the first instant after the gap (01:00 UTC).
        ("Europe/Berlin", "2026-03-29", ["2026-03-28T01:30", "2026-03-29T01:00",
                                         "2026-03-30T00:30"]),
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT: 03:00 EDT = 07:00 UTC.
        ("America/New_York", "2026-03-08", ["2026-03-07T07:30", "2026-03-08T07:00",
                                            "2026-03-09T06:30"]),
    ],
)
def test_spring_forward_fires_after_the_gap(zone: str, day: str, expected: list[str]) -> None:
    after = f"{day[:8]}{int(day[8:]) - 1:02d}T00:00"
    until = f"{day[:8]}{int(day[8:]) + 1:02d}T23:59"
    assert fires("30 2 * * *", zone, after, until) == expected


def test_several_times_inside_the_gap_fire_once() -> None:
    assert fires("*/15 2 * * *", "Europe/Berlin", "2026-03-29T00:00", "2026-03-29T03:00") == [
        "2026-03-29T01:00"
    ]


@pytest.mark.parametrize(
    ("zone", "expr", "after", "until", "expected"),
    [
        # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice and fires
        # only at the first, 02:30 CEST = 00:30 UTC.
        ("Europe/Berlin", "30 2 * * *", "2026-10-24T12:00", "2026-10-26T12:00",
         ["2026-10-25T00:30", "2026-10-26T01:30"]),
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 EDT = 05:30 UTC only.
        ("America/New_York", "30 1 * * *", "2026-10-31T12:00", "2026-11-02T12:00",
         ["2026-11-01T05:30", "2026-11-02T06:30"]),
        # An hourly schedule skips the repeated hour instead of firing twice in it.
        ("Europe/Berlin", "0 * * * *", "2026-10-24T23:30", "2026-10-25T03:30",
         ["2026-10-25T00:00", "2026-10-25T02:00", "2026-10-25T03:00"]),
    ],
)
def test_fall_back_fires_once_at_first_occurrence(
    zone: str, expr: str, after: str, until: str, expected: list[str]
) -> None:
    assert fires(expr, zone, after, until) == expected


def test_bounds_are_respected() -> None:
    times = list(occurrences("0 9 * * *", "UTC", utc("2026-01-01T00:00"), utc("2026-01-10T00:00"),
                             start_at=utc("2026-01-03T09:00"), end_at=utc("2026-01-05T09:00")))
    assert [t.day for t in times] == [3, 4, 5]


def test_next_occurrence_in_zone() -> None:
    nxt = next_occurrence("0 9 * * 1-5", "Europe/Berlin", utc("2026-11-21T12:00"))  # a Saturday
    assert nxt == utc("2026-11-23T08:00")
