"""Jobs: read them, force-retry, cancel, and settle `unconfirmed` ones (API.md "Jobs").

Every change is a conditional transition from the state just read; when an executor moved the
job in between, the transition matches nothing and the answer is a 409, never a lost update.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pymongo import ReturnDocument

from scheduler.api import effects
from scheduler.api.checks import content_problems
from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import ApiError, conflict, invalid
from scheduler.api.pagination import page
from scheduler.api.schemas import (
    WHOLE,
    AttemptOut,
    JobApprove,
    JobFilter,
    JobOut,
    JobPage,
    JobQuery,
    JobResolve,
    JobResultOut,
    JobRetry,
    PageQuery,
    PartOut,
)
from scheduler.api.wire import find_or_404, read_body, read_query, respond, runtime
from shared.models import (
    ACTIVE_STATES,
    PUBLISHABLE_CONTENT,
    WAITING_STATES,
    Content,
    ContentState,
    JobState,
    PostStatus,
    Strict,
)
from shared.runtime import Runtime
from shared.store import Doc

#: The states a bulk retry takes jobs from: finished without being published.
BULK_RETRYABLE = (JobState.FAILED, JobState.MISSED, JobState.UNCONFIRMED)
#: The most jobs one bulk retry moves; a larger set is narrowed first.
MAX_BULK = 10_000
#: A `q` search looks at the content of at most this many matching posts.
MAX_SEARCH_POSTS = 5000
_ERROR_CLASS = re.compile(r"^([a-z_]+): ")


class BulkFilter(JobFilter):
    """A filter of jobs to retry: without `state`, every retryable one it matches."""

    state: Literal[JobState.FAILED, JobState.MISSED, JobState.UNCONFIRMED] | None = None


class BulkRetry(Strict):
    """The jobs `filter` matches (failed, missed or unconfirmed ones only), retried when they
    are still the `expected_count` the operator was shown."""

    filter: BulkFilter = Field(default_factory=BulkFilter)
    expected_count: Annotated[int, Field(ge=0, le=MAX_BULK), WHOLE]


class BulkRetried(BaseModel):
    retried: int


def error_class(error: str | None) -> str | None:
    """The class an error message starts with (`permanent: 400 ...` → `permanent`)."""
    found = _ERROR_CLASS.match(error or "")
    return found.group(1) if found else None


def job_out(doc: Doc) -> JobOut:
    state = JobState(doc["state"])
    result = doc.get("result")
    return JobOut(
        id=doc["_id"], post_id=doc["post_id"], account_id=doc["account_id"],
        platform=doc.get("platform", ""), scheduled_for=doc["scheduled_for"],
        due_at=doc["due_at"], state=state, priority=doc.get("priority", "normal"),
        attempts=[
            AttemptOut(n=a.get("n", i + 1), node_id=a.get("node_id"),
                       started_at=a.get("started_at"), finished_at=a.get("finished_at"),
                       outcome=a.get("outcome"), error=a.get("error"))
            for i, a in enumerate(doc.get("attempts") or [])
        ],
        attempt_count=doc.get("attempt_count", 0),
        result=JobResultOut(platform_post_id=result.get("platform_post_id"),
                            url=result.get("url"))
        if state == JobState.SUCCEEDED and result else None,
        next_attempt_at=doc["due_at"] if state == JobState.RETRY_WAIT else None,
        content_override=doc.get("content_override"),
        created_at=doc["created_at"], updated_at=doc["updated_at"],
        error=doc.get("error"), error_class=error_class(doc.get("error")),
        parts=[PartOut(n=p["n"], platform_post_id=p.get("platform_post_id"), url=p.get("url"))
               for p in (doc.get("checkpoints") or {}).get("parts") or []],
        content_state=doc.get("content_state"),
        content=doc.get("content"),
        generation=doc.get("generation"),
    )


async def _job(rt: Runtime, job_id: str) -> Doc:
    return await find_or_404(rt.store.jobs, "job", job_id)


async def _lost_race(rt: Runtime, job_id: str) -> ApiError:
    """The 409 for a transition that matched nothing, naming the state the job moved to."""
    doc = await _job(rt, job_id)
    return conflict(f"the job moved to {doc['state']} meanwhile; read it and try again")


def _literal(text: str) -> str:
    """`text` as a regular expression matching itself (in MongoDB's PCRE as in Java's)."""
    return re.sub(r"([\\^$.|?*+()\[\]{}/-])", r"\\\1", text)


async def job_query(rt: Runtime, f: JobFilter) -> Doc:
    """The MongoDB filter for `f`. A text search looks at the job's own content, its last
    error and the content of its post (the posts that match are found first)."""
    where: Doc = {}
    if f.state is not None:
        where["state"] = str(f.state)
    for key in ("post_id", "account_id", "platform"):
        if getattr(f, key) is not None:
            where[key] = getattr(f, key)
    if f.error_class is not None:
        where["error"] = {"$regex": f"^{f.error_class}: "}
    if f.content_state is not None:
        where["content_state"] = str(f.content_state)
    if f.since is not None or f.until is not None:
        where["scheduled_for"] = {
            **({"$gte": f.since} if f.since is not None else {}),
            **({"$lt": f.until} if f.until is not None else {}),
        }
    if f.q is not None:
        text = {"$regex": _literal(f.q), "$options": "i"}
        posts = await rt.store.posts.find({"content.text": text}, {"_id": 1}).limit(
            MAX_SEARCH_POSTS).to_list()
        where["$or"] = [{"error": text}, {"content_override.text": text}, {"content.text": text},
                        {"post_id": {"$in": [p["_id"] for p in posts]}}]
    return where


async def find_jobs(rt: Runtime, f: JobFilter, paging: PageQuery, *,
                    newest_first: bool = False) -> tuple[list[Doc], str | None]:
    """One page of the jobs `f` matches, and the cursor of the next page."""
    where = await job_query(rt, f)
    if not newest_first:
        return await page(rt.store.jobs, where, paging)
    if paging.after is not None:
        where = {"$and": [where, {"_id": {"$lt": paging.after}}]}
    docs = await rt.store.jobs.find(where).sort("_id", -1).limit(paging.limit + 1).to_list()
    more = len(docs) > paging.limit
    docs = docs[: paging.limit]
    return docs, docs[-1]["_id"] if more else None


async def list_jobs(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, JobQuery)
    docs, cursor = await find_jobs(rt, query, query)
    return respond(JobPage(items=[job_out(d) for d in docs], next=cursor))


async def get_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    return respond(job_out(await _job(rt, request.match_info["id"])))


async def retry(rt: Runtime, job_id: str, body: JobRetry) -> Doc:
    """Run the job again at `run_at` (default now) with a fresh set of attempts, optionally
    with content of its own. A job that succeeded is published again only with `force`."""
    job = await _job(rt, job_id)
    state = JobState(job["state"])
    if state in ACTIVE_STATES:
        raise conflict(f"the job is {state}; retry it when it has finished")
    if state == JobState.SUCCEEDED and not body.force:
        raise conflict('the job succeeded; send "force": true to publish it again')
    post = await rt.store.posts.find_one({"_id": job["post_id"]}, {"status": 1})
    if post is None or post["status"] == PostStatus.CANCELLED:
        raise conflict("the job's post is cancelled or gone")
    if body.content is not None:
        account = await rt.store.accounts.find_one({"_id": job["account_id"]})
        problems = await content_problems(rt, body.content, [account] if account else [])
        if problems:
            raise invalid(problems)
    sets: Doc = {"due_at": body.run_at or rt.clock.now_dt(), "attempt_count": 0,
                 "next_attempt_at": None, "lease": None}
    if body.content is not None:
        sets["content_override"] = body.content.model_dump(mode="json")
    unfrozen = job.get("content_state") not in (None, *PUBLISHABLE_CONTENT)
    if unfrozen and body.content is None:
        # Its content was never made or approved (the generation failed, the approval did
        # not come): it is made again now, and waits for approval again where it must.
        sets.update(content_state=str(ContentState.PENDING), generate_at=rt.clock.now_dt())
    retried = await rt.jobs.transition(
        job["_id"], expect=[state], to=JobState.PENDING,
        reason="force_retry" if body.force else "retry", set_fields=sets,
    )
    if retried is None:
        raise await _lost_race(rt, job["_id"])
    await rt.queue.remove(job["_id"])  # a retry-waiting job may be queued at its old time
    await effects.stage_due(rt, [retried])
    # A finished post has work again.
    await rt.store.posts.update_one(
        {"_id": job["post_id"], "status": {"$in": [str(PostStatus.COMPLETED),
                                                  str(PostStatus.ERROR)]}},
        {"$set": {"status": str(PostStatus.SCHEDULED), "updated_at": rt.clock.now_dt()}},
    )
    return await _job(rt, job["_id"])


async def retry_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, JobRetry, required=False)
    return respond(job_out(await retry(rt, request.match_info["id"], body)), status=202)


def _bulk_query(where: Doc, f: JobFilter) -> Doc:
    """Only retryable jobs: those of the filter's state, which the console may name in a
    plain JobFilter too, or else those of every retryable state."""
    if f.state is not None and f.state not in BULK_RETRYABLE:
        raise invalid([("filter.state", "only failed, missed or unconfirmed jobs are retried "
                                        "in bulk")])
    if f.state is None:
        where = {**where, "state": {"$in": [str(s) for s in BULK_RETRYABLE]}}
    return where


async def count_retryable(rt: Runtime, f: JobFilter) -> int:
    """How many jobs a bulk retry of `f` would retry now."""
    return await rt.store.jobs.count_documents(_bulk_query(await job_query(rt, f), f))


async def retry_matching(rt: Runtime, body: BulkRetry) -> int:
    """Retry every job the filter matches, when they are the count the operator was shown;
    otherwise a 409 naming the current count, and nothing is retried. A job an executor or
    another operator moved in between is skipped, not retried twice."""
    where = _bulk_query(await job_query(rt, body.filter), body.filter)
    jobs = await rt.store.jobs.find(where, {"_id": 1}).limit(MAX_BULK + 1).to_list()
    if len(jobs) != body.expected_count:
        raise ApiError(409, f"the filter matches {len(jobs)} job(s) now, not "
                            f"{body.expected_count}; nothing was retried",
                       [("expected_count", str(len(jobs)))])
    retried = 0
    for job in jobs:
        try:
            await retry(rt, job["_id"], JobRetry())
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
        else:
            retried += 1
    return retried


async def retry_jobs(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, BulkRetry)
    return respond(BulkRetried(retried=await retry_matching(rt, body)), status=202)


async def cancel(rt: Runtime, job_id: str) -> Doc:
    job = await _job(rt, job_id)
    if job["state"] not in effects.CANCELLABLE:
        raise conflict(f"the job is {job['state']}; only waiting or unconfirmed jobs can be "
                       "cancelled")
    if await effects.cancel(rt, job["_id"], "api_cancel") is None:
        raise await _lost_race(rt, job["_id"])
    return await _job(rt, job["_id"])


async def cancel_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    return respond(job_out(await cancel(rt, request.match_info["id"])))


async def resolve(rt: Runtime, job_id: str, body: JobResolve) -> Doc:
    """An operator's decision on a job whose outcome is unknown: it did appear on the platform
    (`succeeded`, optionally with where), or it did not and is to be published now (`retry`)."""
    job = await _job(rt, job_id)
    if job["state"] != JobState.UNCONFIRMED:
        raise conflict(f"the job is {job['state']}; only an unconfirmed job can be resolved")
    if body.outcome == "succeeded":
        found = {"result": {"platform_post_id": body.platform_post_id, "url": body.url}} \
            if body.url or body.platform_post_id else None
        done = await rt.jobs.transition(job["_id"], expect=[JobState.UNCONFIRMED],
                                        to=JobState.SUCCEEDED, reason="resolved_succeeded",
                                        set_fields=found)
    else:
        if body.url or body.platform_post_id:
            raise invalid([("url", "only a job resolved as succeeded has a published post")])
        done = await rt.jobs.transition(
            job["_id"], expect=[JobState.UNCONFIRMED], to=JobState.PENDING,
            reason="resolved_retry",
            set_fields={"due_at": rt.clock.now_dt(), "attempt_count": 0, "lease": None},
        )
        if done is not None:
            await effects.stage_due(rt, [done])
    if done is None:
        raise await _lost_race(rt, job["_id"])
    return await _job(rt, job["_id"])


async def resolve_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, JobResolve)
    return respond(job_out(await resolve(rt, request.match_info["id"], body)))


async def _generated_job(rt: Runtime, job_id: str, states: Iterable[ContentState],
                         verb: str) -> Doc:
    """The job, when it waits (not being generated or published) with content in `states`."""
    job = await _job(rt, job_id)
    content_state = job.get("content_state")
    if content_state is None:
        raise conflict("the job's content is written, not generated; there is nothing to "
                       f"{verb}")
    if content_state not in states:
        raise conflict(f"the job's content is {content_state}; it cannot be {verb}d now")
    if job["state"] not in WAITING_STATES:
        raise conflict(f"the job is {job['state']}; its content cannot be {verb}d now")
    return job


async def _set_content(rt: Runtime, job: Doc, sets: Doc, unset: Iterable[str] = ()) -> Doc:
    """Change the fields of a waiting job whose content is still as read; a 409 when an
    executor or another operator moved it in between."""
    update: Doc = {"$set": {**sets, "updated_at": rt.clock.now_dt()}}
    if unset:
        update["$unset"] = dict.fromkeys(unset, "")
    done = await rt.store.jobs.find_one_and_update(
        {"_id": job["_id"], "state": job["state"], "lease_seq": job["lease_seq"],
         "content_state": job["content_state"]},
        update, return_document=ReturnDocument.AFTER)
    if done is None:
        raise await _lost_race(rt, job["_id"])
    return done


async def approve(rt: Runtime, job_id: str, body: JobApprove) -> Doc:
    """Approve the job's generated content, with `body.text` instead of the generated text
    when given (checked against the platform's limits as any post's text is)."""
    job = await _generated_job(rt, job_id, [ContentState.AWAITING_APPROVAL], "approve")
    content = Content.model_validate(job["content"])
    edited = body.text is not None and body.text != content.text
    if edited:
        content = content.written(body.text or "", [])
        account = await rt.store.accounts.find_one({"_id": job["account_id"]})
        problems = await content_problems(rt, content, [account] if account else [])
        if problems:
            raise invalid([("text" if where == "content.text" else where, message)
                           for where, message in problems])
    done = await _set_content(rt, job, {
        "content_state": str(ContentState.APPROVED),
        "content": content.model_dump(mode="json"),
        "approval": {"at": rt.clock.now_dt(), "edited": edited}})
    await rt.jobs.announce(done, "content approved")
    return done


async def reject(rt: Runtime, job_id: str) -> Doc:
    """Reject the job's generated content: the occurrence is not published."""
    job = await _generated_job(rt, job_id, [ContentState.AWAITING_APPROVAL], "reject")
    done = await rt.jobs.transition(
        job["_id"], expect=[JobState(job["state"])], to=JobState.CANCELLED,
        reason="content rejected",
        extra_filter={"content_state": str(ContentState.AWAITING_APPROVAL),
                      "lease_seq": job["lease_seq"]},
        set_fields={"content_state": str(ContentState.REJECTED)})
    if done is None:
        raise await _lost_race(rt, job["_id"])
    await rt.queue.remove(job["_id"])
    return done


async def regenerate(rt: Runtime, job_id: str) -> Doc:
    """Make the job's content again now, from its post as it is (the same feed item: the
    occurrence keeps the one it took)."""
    job = await _generated_job(rt, job_id, list(ContentState), "regenerate")
    if job["content_state"] == ContentState.REJECTED:
        raise conflict("the job's content was rejected and the job cancelled; retry the job "
                       "to publish this occurrence")
    done = await _set_content(
        rt, job, {"content_state": str(ContentState.PENDING), "generate_at": rt.clock.now_dt()},
        unset=("content", "generation", "generation_error", "generation_tries"))
    await rt.queue.stage_generation(done["_id"], done["generate_at"])
    await rt.jobs.announce(done, "content regenerating")
    return done


async def approve_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    body = await read_body(request, JobApprove, required=False)
    return respond(job_out(await approve(rt, request.match_info["id"], body)))


async def reject_job(request: web.Request) -> web.Response:
    return respond(job_out(await reject(runtime(request), request.match_info["id"])))


async def regenerate_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    return respond(job_out(await regenerate(rt, request.match_info["id"])), status=202)


ENDPOINTS = [
    Endpoint("GET", "/jobs", list_jobs, "List jobs", JobPage, query=JobQuery, errors=(422,)),
    Endpoint("POST", "/jobs/retry", retry_jobs,
             "Retry every failed, missed or unconfirmed job a filter matches, if they are "
             "still the count expected", BulkRetried, status=202, body=BulkRetry,
             errors=(400, 409, 422)),
    Endpoint("GET", "/jobs/{id}", get_job, "Get a job with its attempts", JobOut, errors=(404,)),
    Endpoint("POST", "/jobs/{id}/retry", retry_job,
             "Force-retry a job, optionally at another time or with other content", JobOut,
             status=202, body=JobRetry, body_required=False, errors=(400, 404, 409, 422)),
    Endpoint("POST", "/jobs/{id}/cancel", cancel_job, "Cancel a waiting or unconfirmed job",
             JobOut, errors=(404, 409)),
    Endpoint("POST", "/jobs/{id}/resolve", resolve_job, "Settle an unconfirmed job", JobOut,
             body=JobResolve, errors=(400, 404, 409, 422)),
    Endpoint("POST", "/jobs/{id}/approve", approve_job,
             "Approve a job's generated content, optionally with edited text", JobOut,
             body=JobApprove, body_required=False, errors=(400, 404, 409, 422)),
    Endpoint("POST", "/jobs/{id}/reject", reject_job,
             "Reject a job's generated content (the job is cancelled)", JobOut,
             errors=(404, 409)),
    Endpoint("POST", "/jobs/{id}/regenerate", regenerate_job,
             "Make a waiting job's content again now", JobOut, status=202, errors=(404, 409)),
]
