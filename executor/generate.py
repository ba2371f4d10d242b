"""The generation lane (DESIGN §10): a job whose content is made per occurrence is claimed at
`due - generate_ahead` like a publish (its lock, a fenced lease), its content is made
(shared.generation.compose) and frozen on it, and it goes back to waiting for its publish.

A transient failure is retried with backoff while the occurrence is not due yet; after that
the publish run makes one last attempt (executor.publish `Run._content`). A permanent failure
fails the job with `error_class: generation`; nothing is published.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from executor.publish import LeaseLost, Publisher, failure_payload, frozen
from shared.generation.errors import GenerationFailed
from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.metrics import GENERATIONS, JOBS
from shared.models import ContentState, JobState, PostStatus, generates
from shared.providers.base import Permanent, ProviderError
from shared.store import Doc

log = get_logger(__name__)

WAITING = (JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT)
#: The longest wait between two tries; the first is HERALD_RETRY_BASE_SECONDS, doubled per try.
RETRY_MAX = timedelta(minutes=10)


class Generator:
    """Claims popped generation entries through the publisher's lock and lease machinery."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self._rt = publisher.rt

    async def run(self, job_id: str) -> None:
        await self.publisher.leased(job_id, self._claim, GenerationRun)

    async def _claim(self, job_id: str) -> Doc | None:
        """The job, if it still waits for its content; `lease_seq` is bumped as by a publish
        claim, so a generation and a publish never both hold a valid lease."""
        rt = self._rt
        now = rt.clock.now_dt()
        return await rt.jobs.transition(
            job_id, expect=WAITING, to=JobState.RUNNING, reason="generating",
            extra_filter={"content_state": str(ContentState.PENDING)},
            set_fields={"lease": {"node_id": rt.settings.node_id, "purpose": "generate",
                                  "expires_at": now + timedelta(
                                      seconds=rt.settings.lease_ttl_seconds)},
                        "claimed_at": now},
            inc={"lease_seq": 1})


class GenerationRun:
    """One claimed generation; every write is fenced on the claim's `lease_seq`."""

    def __init__(self, publisher: Publisher, job: Doc, lock: RenewedLock) -> None:
        self.p = publisher
        self.rt = publisher.rt
        self.job = job
        self.fence: int = job["lease_seq"]
        #: The waiting state the claim took the job from, which it goes back to.
        self.back_to = _previous_state(job)
        self._due_again = False
        self._generate_at: datetime | None = None

    async def queue_again(self) -> None:
        """The job back in the due queue (staged first when it came from `pending` and is due
        within the horizon: the window check may have passed it while it was generating),
        and its next try queued."""
        rt, job = self.rt, self.job
        horizon = rt.clock.now_dt() + timedelta(seconds=rt.settings.horizon_seconds)
        if self._due_again and self.back_to == JobState.PENDING and job["due_at"] <= horizon:
            waiting = {**job, "state": str(JobState.PENDING)}
            await rt.jobs.stage(waiting, source="generation")
        elif self._due_again and self.back_to != JobState.PENDING:
            await rt.queue.stage(job["_id"], job["due_at"], job.get("priority", "normal"))
        if self._generate_at is not None:
            await rt.queue.stage_generation(job["_id"], self._generate_at)

    async def move(self, to: JobState, reason: str, *, set_fields: Doc | None = None,
                   unset: tuple[str, ...] = ("lease",), push: Doc | None = None) -> None:
        done = await self.rt.jobs.transition(
            self.job["_id"], expect=[JobState.RUNNING], to=to, reason=reason, fence=self.fence,
            set_fields=set_fields, unset=unset, push=push)
        if done is None:
            raise LeaseLost(self.job["_id"])

    async def execute(self) -> None:
        rt, job = self.rt, self.job
        post = await rt.store.posts.find_one({"_id": job["post_id"]})
        if post is None or post["status"] in (PostStatus.CANCELLED, PostStatus.COMPLETED):
            await self.move(JobState.CANCELLED, "post cancelled")
            JOBS.labels(outcome="cancelled").inc()
            return
        account = await rt.store.accounts.find_one({"_id": job["account_id"]})
        if post["status"] == PostStatus.PAUSED or account is None or not generates(post):
            # Left to the publish run, which settles each of these at the job's time; the
            # content of a post that no longer generates is its own.
            unset = ("lease",) if generates(post) else ("lease", "content_state")
            await self.move(self.back_to, "not generated", unset=unset)
            self._due_again = True
            return
        try:
            composed = await rt.composer.compose(post, account, job["scheduled_for"])
        except (GenerationFailed, ProviderError) as exc:
            await self._failed(post, exc)
            return
        if composed is None:
            await self.move(JobState.SKIPPED, "no new feed item", push=self._attempt("skipped"))
            JOBS.labels(outcome="skipped").inc()
            GENERATIONS.labels(outcome="skipped").inc()
            await rt.queue.remove(job["_id"])
            await self.p.settle_post(post)
            return
        await self.move(self.back_to, f"content {composed.state}",
                        set_fields=frozen(composed, rt.clock.now_dt()),
                        unset=("lease", "generation_error"))
        GENERATIONS.labels(outcome="generated").inc()
        log.info("content_generated", content_state=str(composed.state))
        self._due_again = True

    async def _failed(self, post: Doc, error: GenerationFailed | ProviderError) -> None:
        rt, job = self.rt, self.job
        message = f"generation: {error}"
        # A ProviderError here is the media store's (the picture could not be stored).
        permanent = error.permanent if isinstance(error, GenerationFailed) \
            else isinstance(error, Permanent)
        if permanent:
            GENERATIONS.labels(outcome="failed").inc()
            await self.move(JobState.FAILED, message, set_fields={"error": message},
                            push=self._attempt("failed", message))
            JOBS.labels(outcome="failed").inc()
            log.warning("generation_failed", error=message)
            await rt.queue.remove(job["_id"])
            await rt.store.posts.update_one(
                {"_id": post["_id"], "status": str(PostStatus.SCHEDULED)},
                {"$set": {"status": str(PostStatus.ERROR), "updated_at": rt.clock.now_dt()}})
            rt.spawn(self.p.notifier.notify("job.failed", failure_payload(job, message)),
                     "notify")
            return
        tries = job.get("generation_tries", 0) + 1
        wait = min(timedelta(seconds=rt.settings.retry_base_seconds) * 2 ** (tries - 1),
                   RETRY_MAX)
        if isinstance(error, GenerationFailed) and error.retry_after:
            wait = max(wait, timedelta(seconds=error.retry_after))
        retry_at = rt.clock.now_dt() + wait
        GENERATIONS.labels(outcome="retried").inc()
        await self.move(self.back_to, message,
                        set_fields={"generation_error": message, "generation_tries": tries})
        self._due_again = True
        if retry_at < job["due_at"]:
            self._generate_at = retry_at
        log.warning("generation_retried", error=message, tries=tries,
                    retry_at=retry_at.isoformat() if self._generate_at else None)

    def _attempt(self, outcome: str, error: str | None = None) -> dict[str, Any]:
        now = self.rt.clock.now_dt()
        return {"attempts": {"n": len(self.job.get("attempts", [])) + 1,
                             "node_id": self.rt.settings.node_id, "started_at": now,
                             "finished_at": now, "outcome": outcome, "error": error}}


def _previous_state(job: Doc) -> JobState:
    """The waiting state the job was in before this claim (its transitions' last but one)."""
    transitions = job.get("transitions") or []
    if len(transitions) >= 2 and transitions[-2]["state"] in WAITING:
        return JobState(transitions[-2]["state"])
    return JobState.STAGED
