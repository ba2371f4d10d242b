"""The console's changes. Each calls the same service as its API operation, is recorded in the
audit log under that operation's name, and redirects to the page that shows its effect (or
shows, in an error page, why nothing changed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import ValidationError

from scheduler.api import accounts, audit, cluster, jobs, oauth
from scheduler.api.errors import from_validation, invalid
from scheduler.api.schemas import AccountConnect, AccountPatch, JobApprove, JobResolve, JobRetry
from scheduler.api.wire import find_or_404, runtime
from scheduler.console.frame import BASE, SESSION
from scheduler.console.pages import utc_input
from shared.runtime import Runtime


@dataclass
class Done:
    """What an action changed (for the audit log) and where the browser goes next."""

    target: str | None
    location: str
    details: dict[str, Any] = field(default_factory=dict)


Perform = Callable[[Runtime, web.Request, dict[str, str]], Awaitable[Done]]


def action(name: str) -> Callable[[Perform], Callable[[web.Request], Awaitable[web.Response]]]:
    """An aiohttp handler for `perform`, recorded in the audit log as `name` (the API's name
    for the same operation) once it succeeded."""

    def wrap(perform: Perform) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            rt = runtime(request)
            form = {k: v for k, v in (await request.post()).items()
                    if isinstance(v, str) and k != "csrf"}
            done = await perform(rt, request, form)
            await audit.record(rt, f"console:{request[SESSION].role}", name, done.target,
                               done.details)
            raise web.HTTPSeeOther(done.location)

        handler.__name__ = perform.__name__
        return handler

    return wrap


def _validated(model: type[Any], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _job_url(job_id: str, done: str) -> str:
    return f"{BASE}/jobs/{job_id}?{urlencode({'done': done})}"


@action("POST /jobs/{id}/retry")
async def retry_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Retry now or at a time, with the text as edited (the job's other content kept)."""
    job_id = request.match_info["id"]
    job = await find_or_404(rt.store.jobs, "job", job_id)
    body: dict[str, Any] = {"force": form.get("force") == "yes"}
    if form.get("run_at", "").strip():
        body["run_at"] = utc_input(form["run_at"].strip())
    text = form.get("text")
    if text is not None:
        post = await rt.store.posts.find_one({"_id": job["post_id"]}, {"content": 1})
        current = job.get("content_override") or (post or {}).get("content") or {}
        if text.replace("\r\n", "\n") != current.get("text", ""):
            body["content"] = {**current, "text": text.replace("\r\n", "\n")}
    retry = _validated(JobRetry, body)
    await jobs.retry(rt, job_id, retry)
    return Done(job_id, _job_url(job_id, "retried"), retry.model_dump(mode="json",
                                                                      exclude_none=True))


@action("POST /jobs/{id}/cancel")
async def cancel_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    job_id = request.match_info["id"]
    await jobs.cancel(rt, job_id)
    return Done(job_id, _job_url(job_id, "cancelled"))


@action("POST /jobs/{id}/resolve")
async def resolve_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Mark published (with where it was found), or publish again, which the operator must
    confirm: the post may be on the platform already."""
    job_id = request.match_info["id"]
    body: dict[str, Any] = {"outcome": form.get("outcome", "")}
    if form.get("url", "").strip():
        body["url"] = form["url"].strip()
    if body["outcome"] == "retry" and form.get("confirm") != "yes":
        raise invalid([("confirm", "confirm that you checked the platform and the post is not "
                                   "there: publishing again may post it twice")])
    resolve = _validated(JobResolve, body)
    await jobs.resolve(rt, job_id, resolve)
    return Done(job_id, _job_url(job_id, f"resolved_{resolve.outcome}"),
                resolve.model_dump(mode="json", exclude_none=True))


def _after_review(job_id: str, form: dict[str, str], done: str) -> str:
    """Back to the approval queue when the action came from it, else to the job."""
    if form.get("back") == "approvals":
        return f"{BASE}/approvals?{urlencode({'done': done})}"
    return _job_url(job_id, done)


@action("POST /jobs/{id}/approve")
async def approve_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Approve the generated content, as it is or with the text as edited."""
    job_id = request.match_info["id"]
    job = await find_or_404(rt.store.jobs, "job", job_id)
    text = form.get("text")
    body: dict[str, Any] = {}
    if text is not None:
        text = text.replace("\r\n", "\n")
        if text != (job.get("content") or {}).get("text", ""):
            body["text"] = text
    approve = _validated(JobApprove, body)
    await jobs.approve(rt, job_id, approve)
    return Done(job_id, _after_review(job_id, form, "approved"),
                approve.model_dump(mode="json", exclude_none=True))


@action("POST /jobs/{id}/reject")
async def reject_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    job_id = request.match_info["id"]
    await jobs.reject(rt, job_id)
    return Done(job_id, _after_review(job_id, form, "rejected"))


@action("POST /jobs/{id}/regenerate")
async def regenerate_job(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Generate the content again now; it comes back to the queue when approval is needed."""
    job_id = request.match_info["id"]
    await jobs.regenerate(rt, job_id)
    return Done(job_id, _after_review(job_id, form, "regenerating"))


@action("POST /jobs/retry")
async def retry_jobs(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Retry a filtered set, when it is still the count the page showed."""
    expected = form.pop("expected_count", "")
    filters = {k: v for k, v in form.items() if v.strip()}
    body = _validated(jobs.BulkRetry, {"filter": filters, "expected_count": expected})
    retried = await jobs.retry_matching(rt, body)
    query = urlencode({**filters, "done": f"retried {retried}"})
    return Done(None, f"{BASE}/jobs?{query}", {**body.model_dump(mode="json",
                                                                  exclude_none=True),
                                                "retried": retried})


@action("POST /cluster/pause")
async def pause_cluster(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    body = _validated(cluster.PauseRequest, {"reason": form.get("reason", "").strip()})
    await cluster.pause_publishing(rt, body.reason, f"console:{request[SESSION].role}")
    return Done(None, f"{BASE}/?done=paused", {"reason": body.reason})


@action("POST /cluster/resume")
async def resume_cluster(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    resumed = (await cluster.resume_publishing(rt)).resumed
    return Done(None, f"{BASE}/?done=resumed", {"resumed": resumed})


@action("PATCH /accounts/{id}")
async def account_status(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Pause (disable) or resume (re-enable) one account: its jobs wait meanwhile."""
    account_id = request.match_info["id"]
    body = _validated(AccountPatch, {"status": form.get("status", "")})
    await accounts.change(rt, account_id, body)
    return Done(account_id, f"{BASE}/accounts?done={body.status}", {"status": body.status})


@action("POST /accounts/connect")
async def reconnect_account(rt: Runtime, request: web.Request, form: dict[str, str]) -> Done:
    """Reconnect through OAuth: the browser goes to the platform, which sends it back to this
    node's callback."""
    account_id = request.match_info["id"]
    account = await find_or_404(rt.store.accounts, "account", account_id)
    redirect_uri = str(request.url.with_path("/api/v1/oauth/callback").with_query(None))
    body = _validated(AccountConnect, {"platform": account["platform"],
                                       "account_id": account_id, "redirect_uri": redirect_uri})
    started = await oauth.connect(rt, body)
    return Done(account_id, started.authorize_url, {"platform": account["platform"]})
