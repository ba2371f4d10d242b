"""Posts: create, read, edit, pause, resume, cancel (API.md "Posts").

Every check runs before the first write, so a rejected request changes nothing. The post is
written first (it is the record the executor re-reads before publishing), then its jobs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from aiohttp import web
from croniter import CroniterError
from pydantic import Field, ValidationError

from scheduler.api import effects
from scheduler.api.batch import Accepted, not_created, write
from scheduler.api.checks import (
    account_problems,
    content_problems,
    feed_now,
    find_accounts,
    schedule_problems,
)
from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import ApiError, conflict, from_validation, invalid
from scheduler.api.pagination import page
from scheduler.api.schemas import (
    MAX_BATCH,
    BatchOut,
    BatchResult,
    ErrorDetail,
    ErrorInfo,
    PostBatch,
    PostCreate,
    PostJob,
    PostOut,
    PostPage,
    PostPatch,
    PostQuery,
    PostSummary,
    PreviewAccount,
    PreviewOut,
)
from scheduler.api.wire import find_or_404, read_body, read_query, respond, runtime
from scheduler.cron import next_occurrence
from shared.generation.errors import GenerationFailed
from shared.generation.feeds import Fetched
from shared.models import (
    WAITING_STATES,
    AtSchedule,
    Content,
    CronSchedule,
    PostStatus,
    Schedule,
    Strict,
    new_id,
    schedule_from_doc,
)
from shared.providers.base import ProviderError
from shared.runtime import Runtime
from shared.store import Doc

FINAL = (PostStatus.CANCELLED, PostStatus.COMPLETED)


def schedule_fields(schedule: Schedule, now: datetime, *, live: bool) -> tuple[Doc, Doc]:
    """($set, $unset) for a post's (new) schedule. A one-off post materialises its occurrence
    afresh. A live recurring post continues from now, so earlier occurrences of the expression
    are not created and coalesced as if they had been missed."""
    sets: Doc = {"schedule": schedule.model_dump(),
                 "recurring": isinstance(schedule, CronSchedule)}
    if isinstance(schedule, CronSchedule) and live:
        return {**sets, "materialised_until": now}, {}
    return sets, {"materialised_until": ""}


# --- rendering ----------------------------------------------------------------------------


def next_run_at(post: Doc, waiting: list[Doc], now: datetime) -> datetime | None:
    """The earliest waiting job, else the next occurrence of a live recurring post."""
    if waiting:
        earliest: datetime = min(job["scheduled_for"] for job in waiting)
        return earliest
    if not post["recurring"] or post["status"] in FINAL:
        return None
    schedule = post["schedule"]
    try:
        return next_occurrence(schedule["cron"], schedule.get("timezone", "UTC"), now,
                               start_at=schedule.get("start_at"), end_at=schedule.get("end_at"))
    except CroniterError:
        return None


def _summary_fields(post: Doc, waiting: list[Doc], now: datetime) -> Doc:
    return {
        "id": post["_id"], "status": post["status"], "next_run_at": next_run_at(post, waiting, now),
        "version": post["version"], "account_ids": post["account_ids"],
        "content": post["content"], "schedule": post["schedule"], "recurring": post["recurring"],
        "priority": post["priority"], "misfire_grace_seconds": post["misfire_grace_seconds"],
        "publish_late": post["publish_late"], "created_at": post["created_at"],
        "updated_at": post["updated_at"],
        "generate_ahead_seconds": post.get("generate_ahead_seconds", 3600),
    }


async def post_out(rt: Runtime, post_id: str) -> PostOut:
    post = await _post(rt, post_id)
    jobs = await rt.store.jobs.find({"post_id": post_id}).sort(
        [("scheduled_for", 1), ("_id", 1)]
    ).to_list()
    return post_view(rt, post, jobs)


def post_view(rt: Runtime, post: Doc, jobs: list[Doc]) -> PostOut:
    """The response for a post and its jobs (sorted by occurrence, then id)."""
    waiting = [j for j in jobs if j["state"] in WAITING_STATES]
    return PostOut(
        **_summary_fields(post, waiting, rt.clock.now_dt()),
        jobs=[PostJob(id=j["_id"], account_id=j["account_id"], scheduled_for=j["scheduled_for"],
                      state=j["state"]) for j in jobs],
    )


async def _post(rt: Runtime, post_id: str) -> Doc:
    return await find_or_404(rt.store.posts, "post", post_id)


# --- handlers -----------------------------------------------------------------------------


async def _checked(rt: Runtime, body: PostCreate, now: datetime,
                   found: dict[str, Doc] | None = None,
                   media: dict[str, Doc] | None = None) -> tuple[list[Doc], Fetched | None]:
    """The post's accounts and its feed as it is now, once every check that needs the store,
    a platform or the feed passed."""
    accounts, problems = await account_problems(rt, body.account_ids, found)
    problems += await content_problems(rt, body.content, accounts, media)
    problems += schedule_problems(body.schedule, body.misfire_grace_seconds, now)
    feed: Fetched | None = None
    if not problems:
        feed, problems = await feed_now(rt, body.content)
    if problems:
        raise invalid(problems)
    return accounts, feed


def _new_post(body: PostCreate, now: datetime) -> Doc:
    return {
        "_id": new_id(),
        "account_ids": body.account_ids,
        "content": body.content.model_dump(mode="json"),
        "schedule": body.schedule.model_dump(),
        "recurring": isinstance(body.schedule, CronSchedule),
        "priority": str(body.priority),
        "status": str(PostStatus.DRAFT if body.draft else PostStatus.SCHEDULED),
        "version": 1,
        "misfire_grace_seconds": body.misfire_grace_seconds,
        "publish_late": body.publish_late,
        "generate_ahead_seconds": body.generate_ahead_seconds,
        "created_at": now,
        "updated_at": now,
    }


async def create_post(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, PostCreate)
    now = rt.clock.now_dt()
    accounts, feed = await _checked(rt, body, now)
    post = _new_post(body, now)
    await rt.store.posts.insert_one(post)
    await effects.seed_feed(rt, post, feed)
    # A new post's jobs are exactly those planned now: answer from them, without reading back.
    jobs = [] if body.draft else await effects.plan(rt, post, accounts)
    jobs.sort(key=lambda j: (j["scheduled_for"], j["_id"]))
    return respond(post_view(rt, post, jobs), status=201)


async def create_posts(request: web.Request) -> web.Response:
    """Many posts in one request: each validated and checked on its own (a refused one
    changes nothing of the others), the accounts and media read in one query each, then the
    accepted posts written together (`batch`)."""
    rt = runtime(request)
    now = rt.clock.now_dt()
    results: dict[int, BatchResult] = {}
    bodies: dict[int, PostCreate] = {}
    try:
        # Mostly every post is valid: then one pass over the body validates them all.
        bodies = dict(enumerate(ValidBatch.model_validate_json(await request.read(),
                                                               strict=True).posts))
    except ValidationError:
        sent = await read_body(request, PostBatch)
        for index, item in enumerate(sent.posts):
            try:
                bodies[index] = PostCreate.model_validate_json(json.dumps(item), strict=True)
            except ValidationError as exc:
                results[index] = _refused(index, from_validation(exc))
    found = await find_accounts(rt, (a for b in bodies.values() for a in b.account_ids))
    media = await rt.media.known(b.content for b in bodies.values())
    accepted = Accepted()
    for index, body in bodies.items():
        try:
            accounts, feed = await _checked(rt, body, now, found, media)
        except ApiError as exc:
            results[index] = _refused(index, exc)
            continue
        post = _new_post(body, now)
        accepted.posts.append((index, post, accounts))
        if feed is not None:
            accepted.feeds.append((post, feed))
    jobs, failure = await write(rt, accepted) if accepted.posts else ([], None)
    by_post: dict[str, list[Doc]] = {}
    for job in sorted(jobs, key=lambda j: (j["scheduled_for"], j["_id"])):
        by_post.setdefault(job["post_id"], []).append(job)
    for index, post, _ in accepted.posts:
        if failure is not None:
            results[index] = not_created(index, post["_id"], failure)
            continue
        results[index] = BatchResult(index=index, status=201,
                                     post=post_view(rt, post, by_post.get(post["_id"], [])))
    return respond(BatchOut(results=[results[i] for i in sorted(results)]), status=207)


async def preview_post(request: web.Request) -> web.Response:
    """The text each account would get for the post's next occurrence; nothing is stored, no
    feed item is taken and no picture is asked for."""
    rt = runtime(request)
    body = await read_body(request, PostCreate)
    now = rt.clock.now_dt()
    accounts, problems = await account_problems(rt, body.account_ids)
    problems += await content_problems(rt, body.content, accounts)
    problems += schedule_problems(body.schedule, body.misfire_grace_seconds, now)
    if problems:
        raise invalid(problems)
    post = _new_post(body, now)
    occurrence = body.schedule.at if isinstance(body.schedule, AtSchedule) \
        else next_run_at(post, [], now)
    return respond(PreviewOut(occurrence=occurrence, accounts=[
        await _preview(rt, post, account, occurrence) for account in accounts]))


async def _preview(rt: Runtime, post: Doc, account: Doc,
                   occurrence: datetime | None) -> PreviewAccount:
    content = Content.model_validate(post["content"])
    shown: Doc = {"account_id": account["_id"], "platform": account["platform"], "text": None}
    if not content.generated:
        shown.update(text=content.text, media=post["content"]["media"])
    elif occurrence is not None:
        try:
            composed = await rt.composer.compose(post, account, occurrence, preview=True)
        except (GenerationFailed, ProviderError) as exc:
            shown["problems"] = [{"field": "content", "message": str(exc)}]
        else:
            if composed is None:
                shown["skipped"] = True
            else:
                made = composed.content.model_dump(mode="json")
                shown.update(text=made["text"], media=made["media"],
                             item=composed.record["item"],
                             image_prompt=composed.record.get("image_prompt"),
                             problems=[{"field": f, "message": m} for f, m in composed.problems])
    return PreviewAccount.model_validate(shown)


def _feed(content: Doc) -> str | None:
    source: Doc | None = content.get("source")
    return None if source is None else str(source["feed"])


class ValidBatch(Strict):
    """A batch whose every post is valid, within PostBatch's bounds."""

    posts: Annotated[list[PostCreate], Field(min_length=1, max_length=MAX_BATCH)]


def _refused(index: int, error: ApiError) -> BatchResult:
    return BatchResult(index=index, status=422, error=ErrorInfo(
        code=error.code, message=error.message,
        details=[ErrorDetail(field=f, message=m) for f, m in error.details]))


async def list_posts(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, PostQuery)
    where: Doc = {}
    if query.status is not None:
        where["status"] = str(query.status)
    if query.account_id is not None:
        where["account_ids"] = query.account_id
    posts, cursor = await page(rt.store.posts, where, query)
    waiting = await rt.store.jobs.find(
        {"post_id": {"$in": [p["_id"] for p in posts]},
         "state": {"$in": [str(s) for s in WAITING_STATES]}},
        {"post_id": 1, "scheduled_for": 1},
    ).to_list()
    now = rt.clock.now_dt()
    items = [
        PostSummary(**_summary_fields(p, [j for j in waiting if j["post_id"] == p["_id"]], now))
        for p in posts
    ]
    return respond(PostPage(items=items, next=cursor))


async def get_post(request: web.Request) -> web.Response:
    return respond(await post_out(runtime(request), request.match_info["id"]))


async def patch_post(request: web.Request) -> web.Response:
    """Edit content, schedule, priority, misfire policy, or schedule a draft (`draft: false`).

    Jobs that have started publishing are not touched; content needs nothing on the jobs at
    all, because the executor publishes the post's latest content.
    """
    rt = runtime(request)
    body = await read_body(request, PostPatch)
    post = await _post(rt, request.match_info["id"])
    status = PostStatus(post["status"])
    if status in FINAL:
        raise conflict(f"the post is {status}; it can no longer be changed")
    if body.draft is True and status != PostStatus.DRAFT:
        raise conflict(f"the post is {status}; only a draft can stay a draft")
    becomes_scheduled = body.draft is False and status == PostStatus.DRAFT
    new_status = status
    if becomes_scheduled or (body.schedule is not None and status == PostStatus.ERROR):
        new_status = PostStatus.SCHEDULED

    now = rt.clock.now_dt()
    schedule = body.schedule or schedule_from_doc(post["schedule"])
    grace = body.misfire_grace_seconds or post["misfire_grace_seconds"]
    accounts, account_issues = await account_problems(rt, post["account_ids"])
    problems = account_issues if becomes_scheduled else []
    if body.content is not None:
        problems += await content_problems(rt, body.content, accounts)
    if body.schedule is not None or becomes_scheduled:
        problems += schedule_problems(schedule, grace, now)
    feed: Fetched | None = None
    if not problems and body.content is not None and _feed(body.content.model_dump(
            mode="json")) != _feed(post["content"]):
        feed, problems = await feed_now(rt, body.content)
    if problems:
        raise invalid(problems)
    if not body.model_fields_set - {"draft"} and new_status == status:
        return respond(await post_out(rt, post["_id"]))

    sets: Doc = {"status": str(new_status), "updated_at": now}
    unset: Doc = {}
    if body.content is not None:
        sets["content"] = body.content.model_dump(mode="json")
    if body.priority is not None:
        sets["priority"] = str(body.priority)
    if body.misfire_grace_seconds is not None:
        sets["misfire_grace_seconds"] = body.misfire_grace_seconds
    if body.publish_late is not None:
        sets["publish_late"] = body.publish_late
    if body.generate_ahead_seconds is not None:
        sets["generate_ahead_seconds"] = body.generate_ahead_seconds
    rescheduled = body.schedule is not None or becomes_scheduled
    if rescheduled:
        schedule_sets, unset = schedule_fields(schedule, now,
                                               live=new_status != PostStatus.DRAFT)
        sets.update(schedule_sets)
    update: Doc = {"$set": sets, "$inc": {"version": 1}}
    if unset:
        update["$unset"] = unset
    # Conditional on the version read: two concurrent edits cannot both apply half-way.
    written = await rt.store.posts.update_one(
        {"_id": post["_id"], "version": post["version"], "status": post["status"]}, update
    )
    if written.matched_count == 0:
        raise conflict("the post changed while this edit was applied; read it and try again")

    edited = await _post(rt, post["_id"])
    await effects.seed_feed(rt, edited, feed)
    if body.content is not None or body.generate_ahead_seconds is not None:
        await effects.renew_generation(rt, edited)
    if body.schedule is not None:
        await effects.drop_unstarted(rt, post["_id"])
    if body.priority is not None and body.priority != post["priority"]:
        await effects.reprioritise(rt, post["_id"], body.priority)
    if rescheduled and new_status == PostStatus.SCHEDULED:
        await effects.plan(rt, await _post(rt, post["_id"]))
    return respond(await post_out(rt, post["_id"]))


async def _move(rt: Runtime, post_id: str, sources: list[PostStatus], target: PostStatus,
                verb: str) -> None:
    """Change the post's status if it is in one of `sources`; 404 or 409 otherwise."""
    written = await rt.store.posts.update_one(
        {"_id": post_id, "status": {"$in": [str(s) for s in sources]}},
        {"$set": {"status": str(target), "updated_at": rt.clock.now_dt()}},
    )
    if written.matched_count == 0:
        post = await _post(rt, post_id)
        raise conflict(f"the post is {post['status']}; it cannot be {verb}")


async def pause_post(request: web.Request) -> web.Response:
    """Waiting jobs stay where they are; the executor re-reads the post and will not publish
    them while it is paused."""
    rt = runtime(request)
    post_id = request.match_info["id"]
    await _move(rt, post_id, [PostStatus.SCHEDULED], PostStatus.PAUSED, "paused")
    return respond(await post_out(rt, post_id))


async def resume_post(request: web.Request) -> web.Response:
    rt = runtime(request)
    post_id = request.match_info["id"]
    await _move(rt, post_id, [PostStatus.PAUSED], PostStatus.SCHEDULED, "resumed")
    await effects.plan(rt, await _post(rt, post_id))
    await effects.restage(rt, post_id)
    return respond(await post_out(rt, post_id))


async def cancel_post(request: web.Request) -> web.Response:
    rt = runtime(request)
    post_id = request.match_info["id"]
    live = [s for s in PostStatus if s not in FINAL]
    await _move(rt, post_id, live, PostStatus.CANCELLED, "cancelled")
    await effects.cancel_all(rt, {"post_id": post_id}, "post_cancelled")
    return respond(await post_out(rt, post_id))


ENDPOINTS = [
    Endpoint("POST", "/posts", create_post, "Create a post (and its first jobs)", PostOut,
             status=201, body=PostCreate, errors=(400, 422)),
    Endpoint("POST", "/posts/batch", create_posts,
             "Create up to 1,000 posts, each validated on its own (207 with one result each)",
             BatchOut, status=207, body=PostBatch, errors=(400, 422)),
    Endpoint("POST", "/posts/preview", preview_post,
             "The text each account would get for the next occurrence, changing nothing",
             PreviewOut, body=PostCreate, errors=(400, 422), changes=False),
    Endpoint("GET", "/posts", list_posts, "List posts", PostPage, query=PostQuery,
             errors=(422,)),
    Endpoint("GET", "/posts/{id}", get_post, "Get a post with its jobs", PostOut, errors=(404,)),
    Endpoint("PATCH", "/posts/{id}", patch_post,
             "Change content, schedule or priority (bumps version)", PostOut, body=PostPatch,
             errors=(400, 404, 409, 422)),
    Endpoint("POST", "/posts/{id}/pause", pause_post, "Pause a scheduled post", PostOut,
             errors=(404, 409)),
    Endpoint("POST", "/posts/{id}/resume", resume_post, "Resume a paused post", PostOut,
             errors=(404, 409)),
    Endpoint("POST", "/posts/{id}/cancel", cancel_post, "Cancel a post and its waiting jobs",
             PostOut, errors=(404, 409)),
]
