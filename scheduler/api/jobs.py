"""Jobs: read them, force-retry, cancel, and settle `unconfirmed` ones (API.md "Jobs").

Every change is a conditional transition from the state just read; when an executor moved the
job in between, the transition matches nothing and the answer is a 409, never a lost update.
"""

from __future__ import annotations

from aiohttp import web

from scheduler.api import effects
from scheduler.api.checks import content_problems
from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import ApiError, conflict, invalid
from scheduler.api.pagination import page
from scheduler.api.schemas import (
    AttemptOut,
    JobOut,
    JobPage,
    JobQuery,
    JobResolve,
    JobResultOut,
    JobRetry,
)
from scheduler.api.wire import find_or_404, read_body, read_query, respond, runtime
from shared.models import ACTIVE_STATES, JobState, PostStatus
from shared.runtime import Runtime
from shared.store import Doc


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
    )


async def _job(rt: Runtime, job_id: str) -> Doc:
    return await find_or_404(rt.store.jobs, "job", job_id)


async def _lost_race(rt: Runtime, job_id: str) -> ApiError:
    """The 409 for a transition that matched nothing, naming the state the job moved to."""
    doc = await _job(rt, job_id)
    return conflict(f"the job moved to {doc['state']} meanwhile; read it and try again")


async def list_jobs(request: web.Request) -> web.Response:
    rt = runtime(request)
    query = read_query(request, JobQuery)
    where: Doc = {}
    if query.state is not None:
        where["state"] = str(query.state)
    if query.post_id is not None:
        where["post_id"] = query.post_id
    if query.account_id is not None:
        where["account_id"] = query.account_id
    docs, cursor = await page(rt.store.jobs, where, query)
    return respond(JobPage(items=[job_out(d) for d in docs], next=cursor))


async def get_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    return respond(job_out(await _job(rt, request.match_info["id"])))


async def retry_job(request: web.Request) -> web.Response:
    """Run the job again at `run_at` (default now) with a fresh set of attempts, optionally
    with content of its own. A job that succeeded is published again only with `force`."""
    rt = runtime(request)
    body = await read_body(request, JobRetry, required=False)
    job = await _job(rt, request.match_info["id"])
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
    return respond(job_out(await _job(rt, job["_id"])), status=202)


async def cancel_job(request: web.Request) -> web.Response:
    rt = runtime(request)
    job = await _job(rt, request.match_info["id"])
    if job["state"] not in effects.CANCELLABLE:
        raise conflict(f"the job is {job['state']}; only waiting or unconfirmed jobs can be "
                       "cancelled")
    if await effects.cancel(rt, job["_id"], "api_cancel") is None:
        raise await _lost_race(rt, job["_id"])
    return respond(job_out(await _job(rt, job["_id"])))


async def resolve_job(request: web.Request) -> web.Response:
    """An operator's decision on a job whose outcome is unknown: it did appear on the platform
    (`succeeded`), or it did not and is to be published now (`retry`)."""
    rt = runtime(request)
    body = await read_body(request, JobResolve)
    job = await _job(rt, request.match_info["id"])
    if job["state"] != JobState.UNCONFIRMED:
        raise conflict(f"the job is {job['state']}; only an unconfirmed job can be resolved")
    if body.outcome == "succeeded":
        done = await rt.jobs.transition(job["_id"], expect=[JobState.UNCONFIRMED],
                                        to=JobState.SUCCEEDED, reason="resolved_succeeded")
    else:
        done = await rt.jobs.transition(
            job["_id"], expect=[JobState.UNCONFIRMED], to=JobState.PENDING,
            reason="resolved_retry",
            set_fields={"due_at": rt.clock.now_dt(), "attempt_count": 0, "lease": None},
        )
        if done is not None:
            await effects.stage_due(rt, [done])
    if done is None:
        raise await _lost_race(rt, job["_id"])
    return respond(job_out(await _job(rt, job["_id"])))


ENDPOINTS = [
    Endpoint("GET", "/jobs", list_jobs, "List jobs", JobPage, query=JobQuery, errors=(422,)),
    Endpoint("GET", "/jobs/{id}", get_job, "Get a job with its attempts", JobOut, errors=(404,)),
    Endpoint("POST", "/jobs/{id}/retry", retry_job,
             "Force-retry a job, optionally at another time or with other content", JobOut,
             status=202, body=JobRetry, body_required=False, errors=(400, 404, 409, 422)),
    Endpoint("POST", "/jobs/{id}/cancel", cancel_job, "Cancel a waiting or unconfirmed job",
             JobOut, errors=(404, 409)),
    Endpoint("POST", "/jobs/{id}/resolve", resolve_job, "Settle an unconfirmed job", JobOut,
             body=JobResolve, errors=(400, 404, 409, 422)),
]
