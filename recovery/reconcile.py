"""Settling a job left in `publishing` by a node that died mid-call (DESIGN §7).

The outcome is unknown, so it is never re-posted blindly: a platform that can look the post up
is asked; a platform that honours idempotency keys gets a retry under the same key (a no-op if
the first call landed), unless the account asks for review; anything else becomes `unconfirmed`
for a person to resolve.
"""

from __future__ import annotations

from typing import Any

from executor.publish import Publisher
from shared.logging import get_logger
from shared.metrics import JOBS
from shared.models import Content, JobState, OnUnknown
from shared.providers.base import MemoryCheckpoints, ProviderError, PublishRequest
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)


async def reconcile(rt: Runtime, publisher: Publisher, job: Doc) -> str:
    """Settle one `publishing` job whose lease expired; returns the repair reason."""
    fence = {"fence": job["lease_seq"], "expect": [JobState.PUBLISHING]}
    account = await rt.store.accounts.find_one({"_id": job["account_id"]}) or {}
    provider = publisher.provider(job["platform"])
    if provider.supports_lookup and account:
        post = await rt.store.posts.find_one({"_id": job["post_id"]}) or {}
        request = PublishRequest(
            job_id=job["_id"], post_id=job["post_id"], account_id=job["account_id"],
            scheduled_for=job["scheduled_for"],
            content=Content.model_validate(job.get("content_override") or post["content"]),
            config=account.get("config", {}),
            credentials=rt.box.open(account["credentials_enc"]),
            # What the interrupted run recorded (a thread's parts, an upload session, a publish
            # id): the lookup starts from it. Read-only here; a retry resumes from the same.
            checkpoints=MemoryCheckpoints(job.get("checkpoints")),
        )
        try:
            found = await provider.lookup(
                request, since=job.get("publishing_at") or job.get("claimed_at") or job["due_at"])
        except ProviderError as exc:
            log.warning("lookup_failed", job_id=job["_id"], error=str(exc))
        else:
            if found is not None:
                await rt.jobs.transition(
                    job["_id"], to=JobState.SUCCEEDED, reason="reconciled: found on platform",
                    unset=["lease", "unknown_reason"], **fence,
                    set_fields={"result": {"platform_post_id": found.platform_post_id,
                                           "url": found.url}},
                    push=_attempt(rt, job, "succeeded", "found by lookup"),
                )
                JOBS.labels(outcome="succeeded").inc()
                return "publishing_found"
            return await _retry(rt, job, fence, "publishing_not_found")
    review = account.get("on_unknown") == OnUnknown.REVIEW
    if provider.honours_idempotency_key and not review:
        return await _retry(rt, job, fence, "publishing_retried")
    doc = await rt.jobs.transition(
        job["_id"], to=JobState.UNCONFIRMED, reason="outcome unknown after lease expiry",
        unset=["lease", "unknown_reason"], push=_attempt(rt, job, "unknown", _why(job)), **fence,
    )
    if doc is not None:
        JOBS.labels(outcome="unconfirmed").inc()
        await publisher.notifier.notify("job.unconfirmed", {
            "job_id": job["_id"], "post_id": job["post_id"], "account_id": job["account_id"],
            "platform": job["platform"], "error": "outcome unknown; resolve it in the API",
        })
    return "publishing_unconfirmed"


async def _retry(rt: Runtime, job: Doc, fence: dict[str, Any], reason: str) -> str:
    now = rt.clock.now_dt()
    doc = await rt.jobs.transition(
        job["_id"], to=JobState.RETRY_WAIT, reason=reason, unset=["lease", "unknown_reason"],
        set_fields={"due_at": now, "next_attempt_at": now},
        push=_attempt(rt, job, "unknown", _why(job)), **fence,
    )
    if doc is not None:
        await rt.queue.stage(doc["_id"], now, doc.get("priority", "normal"))
    return reason


def _why(job: Doc) -> str:
    """What left the outcome unknown: the executor's own report, or its silence."""
    reason = job.get("unknown_reason")
    return f"no answer from the platform: {reason}" if reason else (
        "lease expired while publishing")


def _attempt(rt: Runtime, job: Doc, outcome: str, error: str) -> dict[str, Any]:
    return {"attempts": {
        "n": len(job.get("attempts", [])) + 1,
        "node_id": (job.get("lease") or {}).get("node_id", "unknown"),
        "started_at": job.get("claimed_at") or job["updated_at"],
        "finished_at": rt.clock.now_dt(),
        "outcome": outcome,
        "error": error,
    }}
