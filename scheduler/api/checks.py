"""Checks a request needs the database or the providers for, beyond its schema: the accounts
a post goes to, the content against each platform's limits (at scheduling time, not at
publish time, DESIGN §8), and whether a schedule can still fire."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from croniter import CroniterError

from scheduler.api.errors import Problem
from scheduler.cron import next_occurrence
from shared.generation import template
from shared.generation.errors import GenerationFailed
from shared.generation.feeds import Fetched
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
    problems += generation_problems(rt, content)
    # Generated text is checked when it is made; here its sample stands in for it, so that
    # the platforms check what they can now (media, thread, title).
    checked = content.written(_sample_text(content), []) if content.generated else content
    for account in accounts:
        if account["platform"] not in available_platforms():
            continue
        provider = rt.provider(account["platform"])
        for problem in await provider.check_content(checked, account.get("config", {}), infos):
            if problem not in problems:
                problems.append(problem)
    return problems


def _variables(content: Content, *, prompt: bool) -> list[str]:
    """What a template of `content` may name: `item` with a feed, `generated` in the post's
    template when a prompt makes it."""
    names = ["occurrence", "account"]
    if content.source is not None:
        names.append("item")
    if not prompt and content.generate is not None and content.generate.prompt is not None:
        names.append("generated")
    return names


def generation_problems(rt: Runtime, content: Content) -> list[Problem]:
    """The template and the prompts rendered against sample data, and a language model
    configured for `generate` (API.md "Generated content")."""
    problems: list[Problem] = []
    if content.template is not None:
        problems += template.check(content.template,
                                   available=_variables(content, prompt=False))
    if content.generate is not None:
        for name in ("prompt", "image"):
            text = getattr(content.generate, name)
            if text is not None:
                problems += template.check(text, field=f"content.generate.{name}",
                                           available=_variables(content, prompt=True))
        if rt.composer.model is None:
            problems.append(("content.generate", "no language model is configured: set "
                                                 "HERALD_LLM_BASE_URL and HERALD_LLM_MODEL"))
    return problems


def _sample_text(content: Content) -> str:
    if content.template is None:
        return str(template.SAMPLE["generated"])
    try:
        return template.render(content.template, template.SAMPLE)
    except template.TemplateProblem:  # reported by generation_problems
        return str(template.SAMPLE["generated"])


async def feed_now(rt: Runtime, content: Content) -> tuple[Fetched | None, list[Problem]]:
    """The post's feed as it is now, whose items count as seen once the post is created; a
    feed that cannot be fetched or read refuses the post."""
    if content.source is None:
        return None, []
    try:
        return await rt.composer.fetch_feed(str(content.source.feed)), []
    except GenerationFailed as exc:
        return None, [("content.source.feed", f"cannot be read: {exc}")]


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
