"""The console's pages: overview, upcoming, jobs, approvals, one job, accounts, audit log. Each
reads through the same services as the API (scheduler.api) and renders server-side."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from aiohttp import web
from pydantic import ValidationError

from scheduler.api import audit, cluster, effects, jobs
from scheduler.api.errors import from_validation, invalid
from scheduler.api.schemas import ErrorClass, JobQuery
from scheduler.api.wire import find_or_404, runtime
from scheduler.console.frame import AWAITING_APPROVAL, render
from shared.models import WAITING_STATES, Content, ContentState, JobState
from shared.providers.registry import available_platforms
from shared.runtime import Runtime
from shared.store import Doc

#: The outcomes the overview charts, in stacking order.
OUTCOMES = ("succeeded", "failed", "missed", "unconfirmed")
#: Bounds on what a page reads at once.
CHART_JOBS = 100_000
GROUP_JOBS = 10_000
WEEK_JOBS = 2_000
#: A `datetime-local` input sends a time without an offset: the console's times are UTC.
_NAIVE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$")
ERROR_CLASSES: tuple[str, ...] = get_args(ErrorClass)
CHART_HEIGHT = 120
#: What each class of error usually asks of the operator, shown beside a job's last error.
HINTS = {
    "permanent": "The platform refused this post for good (its answer is below): fix the text "
                 "or the account, then retry.",
    "transient": "The platform or the network failed on every try: retrying now is usually "
                 "enough; check the platform's status if it fails again.",
    "rate_limited": "The platform's limit was reached: the job is retried when it frees, or "
                    "retry it later.",
    "auth_revoked": "The platform refused the account's credentials: reconnect the account "
                    "(Accounts); its waiting jobs go out by themselves once it is back.",
    "auth_expired": "The account's token expired and could not be refreshed: reconnect the "
                    "account (Accounts), then retry.",
    "outcome_unknown": "The platform may have published it: check there before retrying.",
    "generation": "Generating the content failed: edit the text and retry.",
}


def utc_input(value: str) -> str:
    return value + "Z" if _NAIVE_TIME.match(value) else value


def job_query(request: web.Request, **fixed: str) -> JobQuery:
    """The jobs filter in the page's query string (with `fixed` conditions): blank fields are
    absent, times without an offset are UTC; invalid values are a 422 page naming the field.
    `done`, an action's note to the layout, is no condition."""
    params = {**{k: v.strip() for k, v in request.query.items()
                 if v.strip() and k != "done"}, **fixed}
    for key in ("since", "until"):
        if key in params:
            params[key] = utc_input(params[key])
    try:
        return JobQuery.model_validate(params)
    except ValidationError as exc:
        raise from_validation(exc) from None


async def _accounts(rt: Runtime) -> dict[str, Doc]:
    docs = await rt.store.accounts.find({}, {"credentials_enc": 0}).sort("name", 1).limit(
        1000).to_list()
    return {d["_id"]: d for d in docs}


def _own(job: Doc) -> Doc | None:
    """The content a job publishes instead of its post's: as an operator edited it, else as
    it was generated for it."""
    found: Doc | None = job.get("content_override") or job.get("content")
    return found


async def _texts(rt: Runtime, docs: list[Doc]) -> dict[str, str]:
    """Each job's text: its own content if it has one, else its post's."""
    post_ids = list({d["post_id"] for d in docs if not _own(d)})
    posts = {p["_id"]: p for p in await rt.store.posts.find(
        {"_id": {"$in": post_ids}}, {"content.text": 1}).to_list()} if post_ids else {}
    texts: dict[str, str] = {}
    for d in docs:
        content = _own(d) or posts.get(d["post_id"], {}).get("content") or {}
        texts[d["_id"]] = content.get("text", "")
    return texts


async def _outcomes(rt: Runtime, now: datetime) -> dict[str, Any]:
    """Jobs that finished in each of the last 24 hours, by outcome, as stacked SVG bars."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    buckets = [Counter[str]() for _ in range(24)]
    cursor = rt.store.jobs.find(
        {"state": {"$in": list(OUTCOMES)}, "updated_at": {"$gte": start}},
        {"state": 1, "updated_at": 1}).limit(CHART_JOBS)
    async for doc in cursor:
        hour = int((doc["updated_at"] - start).total_seconds() // 3600)
        if 0 <= hour < 24:
            buckets[hour][doc["state"]] += 1
    peak = max([sum(b.values()) for b in buckets] + [1])
    bars = []
    for i, counts in enumerate(buckets):
        y = float(CHART_HEIGHT)
        segments = []
        for outcome in OUTCOMES:
            height = counts[outcome] / peak * CHART_HEIGHT
            y -= height
            if counts[outcome]:
                segments.append({"outcome": outcome, "y": round(y, 1),
                                 "height": round(height, 1)})
        label = (start + timedelta(hours=i)).strftime("%H:00")
        summary = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if counts[o]) or "nothing"
        bars.append({"x": i * 20 + 2, "segments": segments, "title": f"{label} UTC: {summary}",
                     "label": label if i % 6 == 0 else ""})
    totals = Counter[str]()
    for counts in buckets:
        totals.update(counts)
    return {"bars": bars, "totals": {o: totals[o] for o in OUTCOMES}, "height": CHART_HEIGHT}


async def overview(request: web.Request) -> web.Response:
    rt = runtime(request)
    now = rt.clock.now_dt()
    sweeps = await rt.store.sweeps.find({}).sort("_id", -1).limit(1).to_list()
    window = await rt.store.cluster.find_one({"_id": "window"})
    return await render(request, "overview.html", {
        "cluster": await cluster.status(rt),
        "services": await rt.readiness(),
        "sweep": sweeps[0] if sweeps else None,
        "window": window,
        "chart": await _outcomes(rt, now),
        "unconfirmed": await rt.store.jobs.count_documents({"state": "unconfirmed"}),
        "failed": await rt.store.jobs.count_documents({"state": "failed"}),
    })


def _week_start(request: web.Request, today: date) -> date:
    raw = request.query.get("start", "").strip()
    try:
        return date.fromisoformat(raw) if raw else today - timedelta(days=today.weekday())
    except ValueError:
        raise invalid([("start", "must be a date, YYYY-MM-DD")]) from None


async def upcoming(request: web.Request) -> web.Response:
    """A week of scheduled jobs as a calendar (UTC days), and the same jobs per account."""
    rt = runtime(request)
    start = _week_start(request, rt.clock.now_dt().date())
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    where: Doc = {"state": {"$in": [str(s) for s in WAITING_STATES]},
                  "scheduled_for": {"$gte": begin, "$lt": begin + timedelta(days=7)}}
    account_id = request.query.get("account_id", "").strip()
    if account_id:
        where["account_id"] = account_id
    docs = await rt.store.jobs.find(where).sort("scheduled_for", 1).limit(WEEK_JOBS).to_list()
    texts = await _texts(rt, docs)
    days: list[dict[str, Any]] = [{"date": start + timedelta(days=i), "jobs": []}
                                  for i in range(7)]
    per_account: dict[str, list[Doc]] = {}
    for d in docs:
        days[(d["scheduled_for"].date() - start).days]["jobs"].append(d)
        per_account.setdefault(d["account_id"], []).append(d)
    return await render(request, "upcoming.html", {
        "start": start, "days": days, "per_account": per_account, "texts": texts,
        "accounts": await _accounts(rt), "account_id": account_id,
        "previous": start - timedelta(days=7), "next": start + timedelta(days=7),
        "truncated": len(docs) == WEEK_JOBS,
    })


async def _groups(rt: Runtime, query: JobQuery) -> list[dict[str, Any]]:
    """The failed or unconfirmed jobs a filter matches, counted by account and error class."""
    where = await jobs.job_query(rt, query)
    counts: Counter[tuple[str, str | None]] = Counter()
    async for doc in rt.store.jobs.find(where, {"account_id": 1, "error": 1}).limit(GROUP_JOBS):
        counts[(doc["account_id"], jobs.error_class(doc.get("error")))] += 1
    return [{"account_id": a, "error_class": c, "count": n}
            for (a, c), n in counts.most_common()]


async def job_list(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = job_query(request)
    docs, cursor = await jobs.find_jobs(rt, query, query, newest_first=True)
    grouped = query.state in (JobState.FAILED, JobState.UNCONFIRMED)
    retryable = query.state in (None, *jobs.BULK_RETRYABLE)
    filters = query.model_dump(mode="json", exclude_none=True,
                               exclude={"limit", "after"})
    groups = await _groups(rt, query) if grouped else None
    for group in groups or []:
        # Each group links to its own view: this filter narrowed to its account and class.
        group["filters"] = {**filters, "account_id": group["account_id"],
                            **({"error_class": group["error_class"]}
                               if group["error_class"] else {})}
    post = await rt.store.posts.find_one({"_id": query.post_id}) if query.post_id else None
    return await render(request, "jobs.html", {
        "query": query, "filters": filters, "jobs": docs, "next": cursor, "post": post,
        "texts": await _texts(rt, docs), "accounts": await _accounts(rt),
        "groups": groups,
        "retry_count": await jobs.count_retryable(rt, query) if retryable else None,
        "states": [str(s) for s in JobState], "platforms": available_platforms(),
        "content_states": [str(s) for s in ContentState],
        "error_classes": ERROR_CLASSES, "error_class": jobs.error_class,
        "since_input": _local_input(query.since), "until_input": _local_input(query.until),
    })


async def _soonest_first(rt: Runtime, where: Doc, query: JobQuery
                         ) -> tuple[list[Doc], str | None]:
    """One page of the jobs `where` matches, soonest scheduled first (the first to become
    `missed`); `query.after` continues past that job's (scheduled time, id)."""
    if query.after is not None:
        last = await rt.store.jobs.find_one({"_id": query.after}, {"scheduled_for": 1})
        if last is None:
            raise invalid([("after", "no such job")])
        at = last["scheduled_for"]
        where = {"$and": [where, {"$or": [{"scheduled_for": {"$gt": at}},
                                          {"scheduled_for": at, "_id": {"$gt": query.after}}]}]}
    docs = await rt.store.jobs.find(where).sort([("scheduled_for", 1), ("_id", 1)]).limit(
        query.limit + 1).to_list()
    more = len(docs) > query.limit
    docs = docs[: query.limit]
    return docs, docs[-1]["_id"] if more else None


async def approvals(request: web.Request) -> web.Response:
    """The approval queue: generated content waiting for an operator, each job with the text
    it would publish, where it came from, and how long is left before it is `missed`."""
    rt = runtime(request)
    query = job_query(request, content_state=str(ContentState.AWAITING_APPROVAL))
    where = {**await jobs.job_query(rt, query), **AWAITING_APPROVAL}
    docs, cursor = await _soonest_first(rt, where, query)
    filters = query.model_dump(mode="json", exclude_none=True,
                               exclude={"limit", "after", "content_state"})
    now = rt.clock.now_dt()
    return await render(request, "approvals.html", {
        "query": query, "filters": filters, "jobs": docs, "next": cursor,
        "accounts": await _accounts(rt), "platforms": available_platforms(),
        "left": {d["_id"]: (d["scheduled_for"] - now).total_seconds() for d in docs},
    })


def _local_input(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if value else ""


async def job_page(request: web.Request) -> web.Response:
    rt = runtime(request)
    job = await find_or_404(rt.store.jobs, "job", request.match_info["id"])
    post = await rt.store.posts.find_one({"_id": job["post_id"]})
    account = await rt.store.accounts.find_one({"_id": job["account_id"]},
                                               {"credentials_enc": 0})
    raw = _own(job) or (post or {}).get("content") or {"text": ""}
    state = JobState(job["state"])
    content_state = job.get("content_state")
    return await render(request, "job.html", {
        "job": job, "post": post, "account": account, "content": raw,
        "own_content": bool(job.get("content_override")),
        "frozen": bool(job.get("content")) and not job.get("content_override"),
        "content_state": content_state, "generation": job.get("generation"),
        "awaiting": content_state == ContentState.AWAITING_APPROVAL and state in WAITING_STATES,
        "regenerable": content_state is not None and state in WAITING_STATES,
        "error_class": jobs.error_class(job.get("error")),
        "hint": HINTS.get(jobs.error_class(job.get("error")) or ""),
        "retryable": state not in (JobState.RUNNING, JobState.PUBLISHING)
        and content_state != ContentState.AWAITING_APPROVAL,
        "cancellable": state in effects.CANCELLABLE,
        "unconfirmed": state == JobState.UNCONFIRMED,
        "succeeded": state == JobState.SUCCEEDED,
        "result": job.get("result") if state == JobState.SUCCEEDED else None,
        "text": Content.model_validate(raw).text if raw.get("text") is not None else "",
        "audit": (await audit.find(rt, audit.AuditQuery(target=job["_id"], limit=20)))[0],
    })


async def job_state(request: web.Request) -> web.Response:
    """The job's state now, for the page's script: a change made between the page's render and
    its subscription to the events stream is not missed."""
    rt = runtime(request)
    job = await find_or_404(rt.store.jobs, "job", request.match_info["id"])
    return web.json_response({"state": job["state"]})


async def accounts_page(request: web.Request) -> web.Response:
    rt = runtime(request)
    accounts = await _accounts(rt)
    waiting: Counter[str] = Counter()
    async for doc in rt.store.jobs.find(
            {"state": {"$in": [str(s) for s in WAITING_STATES]}}, {"account_id": 1}).limit(
            GROUP_JOBS):
        waiting[doc["account_id"]] += 1
    failed: Counter[str] = Counter()
    async for doc in rt.store.jobs.find({"state": "failed"}, {"account_id": 1}).limit(
            GROUP_JOBS):
        failed[doc["account_id"]] += 1
    return await render(request, "accounts.html", {
        "accounts": list(accounts.values()), "waiting": waiting, "failed": failed,
        "oauth": set(rt.settings.oauth_clients) | {"mastodon"},
    })


async def audit_page(request: web.Request) -> web.Response:
    rt = runtime(request)
    params = {k: v.strip() for k, v in request.query.items() if v.strip()}
    try:
        query = audit.AuditQuery.model_validate(params)
    except ValidationError as exc:
        raise from_validation(exc) from None
    docs, cursor = await audit.find(rt, query)
    older = {**query.model_dump(exclude_none=True, exclude={"limit"}), "after": cursor}
    return await render(request, "audit.html", {"entries": docs, "next": cursor,
                                                "query": query, "older": older})
