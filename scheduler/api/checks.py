"""Checks a request needs the database or the providers for, beyond its schema: the accounts
a post goes to, the content against each platform's limits (at scheduling time, not at
publish time, DESIGN §8), and whether a schedule can still fire."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from croniter import CroniterError

from scheduler.api.errors import Problem
from scheduler.cron import next_occurrence
from shared.models import AtSchedule, Content, Schedule
from shared.providers.registry import available_platforms
from shared.runtime import Runtime
from shared.store import Doc


async def find_accounts(rt: Runtime, account_ids: Iterable[str]) -> dict[str, Doc]:
    """The accounts that exist among `account_ids`, by id, in one query."""
    wanted = list(dict.fromkeys(account_ids))
    return {doc["_id"]: doc
            for doc in await rt.store.accounts.find({"_id": {"$in": wanted}}).to_list()}


async def account_problems(rt: Runtime, account_ids: list[str],
                           found: dict[str, Doc] | None = None
                           ) -> tuple[list[Doc], list[Problem]]:
    """The accounts, each of which must exist, not be disabled, and appear once. An account
    waiting to be reconnected takes posts: its jobs wait for it. `found` is what
    `find_accounts` already read (a batch reads them all at once)."""
    if found is None:
        found = await find_accounts(rt, account_ids)
    problems: list[Problem] = []
    seen: set[str] = set()
    for n, account_id in enumerate(account_ids):
        doc = found.get(account_id)
        if account_id in seen:
            problems.append((f"account_ids.{n}", "is listed twice"))
        elif doc is None:
            problems.append((f"account_ids.{n}", "no such account"))
        elif doc["status"] == "disabled":
            problems.append((f"account_ids.{n}", f"the account is {doc['status']}"))
        seen.add(account_id)
    return [found[a] for a in dict.fromkeys(account_ids) if a in found], problems


async def content_problems(rt: Runtime, content: Content, accounts: Iterable[Doc],
                           media: dict[str, Doc] | None = None) -> list[Problem]:
    """The content's media ids, each of which must name a stored item, then the content
    against the limits of every account it goes to, each in its platform's units (an instance
    may set its own limit, so the account's config is part of the check) and with what the
    media store knows of each part's media (`describe`); the same problem found for two
    accounts is reported once. `media` is what `rt.media.known` already read (a batch reads
    the media of all its posts at once)."""
    infos, problems = await rt.media.describe(content, media)
    for account in accounts:
        if account["platform"] not in available_platforms():
            continue
        provider = rt.provider(account["platform"])
        for problem in await provider.check_content(content, account.get("config", {}), infos):
            if problem not in problems:
                problems.append(problem)
    return problems


def schedule_problems(schedule: Schedule, grace_seconds: int, now: datetime) -> list[Problem]:
    """A one-off time must not be already missed; a recurring schedule must fire again, at
    whatever distance (scheduler.cron.next_occurrence)."""
    if isinstance(schedule, AtSchedule):
        if schedule.at < now - timedelta(seconds=grace_seconds):
            return [("schedule.at", f"is more than misfire_grace_seconds ({grace_seconds}) "
                                    "in the past")]
        return []
    if schedule.end_at is not None and schedule.end_at <= now:
        return [("schedule.end_at", "is in the past")]
    try:
        upcoming = next_occurrence(schedule.cron, schedule.timezone, now,
                                   start_at=schedule.start_at, end_at=schedule.end_at)
    except CroniterError:
        return [("schedule.cron", "never fires")]
    if upcoming is None and schedule.end_at is not None:
        return [("schedule", "the cron expression does not fire before end_at")]
    if upcoming is None:  # with no end_at, only a start_at at the end of time
        return [("schedule.start_at", "the cron expression never fires after start_at")]
    return []
