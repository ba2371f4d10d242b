"""One job from claim to recorded outcome (DESIGN §5-6).

The claim's `lease_seq` is the fencing token: every later write filters on it, and a write that
matches nothing means the lease was lost, so the run stops without touching the job again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import structlog
from aiodataloader import DataLoader
from pymongo.errors import PyMongoError

from executor.lease import LeaseKeeper
from executor.retry import Action, decide
from shared import pause
from shared.coalesce import Rendezvous, Seat, by_id, reader, updater
from shared.credentials import CredentialKeeper, Keyed
from shared.generation.compose import Composed
from shared.generation.errors import GenerationFailed
from shared.jobs import FencedMove
from shared.locks import RenewedLock
from shared.logging import get_logger
from shared.metrics import (
    EXECUTOR_BATCH_SIZE,
    GENERATIONS,
    JOBS,
    LATENESS,
    LEASE_LOSSES,
    PROVIDER_ERRORS,
    PUBLISH_DURATION,
    RATE_LIMIT_DEFERRALS,
)
from shared.models import (
    PUBLISHABLE_CONTENT,
    TERMINAL_STATES,
    Content,
    ContentState,
    JobState,
    PostStatus,
    generates,
)
from shared.notify import Notifier
from shared.providers.base import (
    AuthExpired,
    AuthRevoked,
    OutcomeUnknown,
    Provider,
    ProviderError,
    Published,
    PublishRequest,
    RateLimited,
    Transient,
)
from shared.rate_limit import Rate
from shared.redis_client import REDIS_ERRORS
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)

CLAIMABLE = (JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT)
#: A claim accepts jobs due within the worker's lead plus this much clock rounding. A queue
#: entry popped earlier (left over from an earlier schedule) is not claimed.
CLAIM_ROUNDING = timedelta(milliseconds=50)
#: A job claimed ahead of time has its post re-read and its `publishing` mark written this
#: share of the executor's lead before it is due, so that those two round trips are done by
#: the due time and only the platform call is left: a slow store reply no longer makes it late.
FINAL_CHECKS_SHARE = 0.25
#: A job of an account that is not active waits this long before it looks again; reconnecting
#: or re-enabling the account through the API queues its jobs at once.
ACCOUNT_RECHECK = timedelta(hours=1)
#: A post's fields that no run reads, left out of its reads: PyMongo decodes each time into an
#: aware datetime for about a microsecond, a cost paid per job.
UNREAD_POST_FIELDS = {"created_at": 0, "updated_at": 0, "materialised_until": 0}


class LeaseLost(Exception):
    """A fenced write matched nothing: another node owns the job now."""


class Runner(Protocol):
    """The work done on one claimed job (`Run`, executor.generate's `GenerationRun`)."""

    job: Doc

    async def execute(self) -> None: ...

    async def queue_again(self) -> None:
        """Queue what the run asked for, once the job's lock is released."""


@dataclasses.dataclass(frozen=True)
class BatchReads:
    """What the checks of a claimed batch's jobs read, read once for the whole batch: their
    posts and accounts by id, the cluster-wide pause, and the seconds each account's platform
    hold has left. A Redis error met reading the last two is kept, and raised in each job's
    run at the check that needs it, where it steps the job back as a per-job read would."""

    posts: dict[str, Doc]
    accounts: dict[str, Doc]
    paused: Doc | None
    holds: dict[str, float]
    redis_error: Exception | None = None

    def pause(self) -> Doc | None:
        if self.redis_error is not None:
            raise self.redis_error
        return self.paused

    def hold(self, account_id: str) -> float:
        if self.redis_error is not None:
            raise self.redis_error
        return self.holds[account_id]


class Publisher:
    """Takes a popped batch's locks, claims and reads together, then runs each claimed job on
    its own (one task per job, one platform call per job), while the round trips of jobs that
    reach the same later step together still go out as one (DESIGN §5, "Batches, not round
    trips"): their fenced moves in one `bulk_write` (the batch's outcomes once its platform
    calls have ended), their releases in one pipeline. Batching changes the round trips, never
    the fencing: each job's writes are still filtered on its own `lease_seq`."""

    def __init__(self, rt: Runtime, notifier: Notifier) -> None:
        self.rt = rt
        self.notifier = notifier
        self.posts = reader(rt.store.posts, UNREAD_POST_FIELDS)
        self.keeper = CredentialKeeper(rt, notifier)
        self.leases = LeaseKeeper(rt)
        self.complete_post = updater(rt.store.posts, {"status": str(PostStatus.SCHEDULED)},
                                     lambda: {"$set": {"status": str(PostStatus.COMPLETED),
                                                       "updated_at": rt.clock.now_dt()}})
        self.locking: DataLoader[RenewedLock, bool] = DataLoader(self._lock_batch, cache=False)
        self.claiming: DataLoader[str, Doc | None] = DataLoader(self._claim_batch, cache=False)
        self.moving: DataLoader[FencedMove, bool] = DataLoader(self._move_batch, cache=False)
        self.releasing: DataLoader[RenewedLock, None] = DataLoader(self._release_batch,
                                                                   cache=False)
        self.rates: DataLoader[Rate, float] = DataLoader(rt.budgets.take_many, cache=False)

    def provider(self, platform: str) -> Provider:
        return self.rt.provider(platform)

    async def claim(self, job_ids: list[str]) -> list[tuple[str, Coroutine[Any, Any, None]]]:
        """A popped batch's locks, claims and reads, each once for the batch; returned is the
        run of each job claimed, for the caller to start as a task of its own."""
        held = await self._locked(job_ids, self._claim_or_requeue)
        if not held:
            return []
        try:
            reads = await self.read([job for job, _ in held])
        except BaseException:
            await self.releasing.load_many([lock for _, lock in held])
            raise
        # Written together once all the batch's platform calls have ended, or the outcome wait
        # after the first ended: a slow call holds the others back no longer than that.
        outcomes = Rendezvous(self._move_batch, self.rt.settings.executor_outcome_wait_ms / 1000)
        return [(job["_id"], self._claimed(Run(self, job, lock, reads, outcomes.seat()), lock))
                for job, lock in held]

    async def _locked(self, job_ids: list[str],
                      claim: Callable[[list[str]], Awaitable[list[Doc | None]]],
                      ) -> list[tuple[Doc, RenewedLock]]:
        """The jobs won and their locks: each job's lock taken, then the jobs whose lock was
        won claimed by `claim`. A job whose lock or claim was not won is left to whoever holds
        it, its lock released (every lock, when the claim fails)."""
        rt = self.rt
        locks = {job_id: RenewedLock(rt.redis, rt.keys.job_lock(job_id),
                                     rt.settings.lease_ttl_seconds) for job_id in job_ids}
        taken = await self.locking.load_many(list(locks.values()))
        won = {job_id: lock for (job_id, lock), ok in zip(locks.items(), taken, strict=True) if ok}
        if not won:
            return []
        try:
            claimed = await claim(list(won))
        except BaseException:
            await self.releasing.load_many(list(won.values()))
            raise
        unclaimed = [won[job_id] for job_id, job in zip(won, claimed, strict=True) if job is None]
        if unclaimed:
            await self.releasing.load_many(unclaimed)
        return [(job, won[job["_id"]]) for job in claimed if job is not None]

    async def _claim_or_requeue(self, job_ids: list[str]) -> list[Doc | None]:
        try:
            return await self.claiming.load_many(job_ids)
        except PyMongoError:
            # Not claimed, so still waiting: put them back rather than leave them to the sweep.
            now = self.rt.clock.now_dt()
            await self.rt.queue.stage_many((job_id, now, "high") for job_id in job_ids)
            raise

    async def read(self, jobs: list[Doc]) -> BatchReads:
        """The reads the jobs' checks need (BatchReads), in four round trips for any number."""
        rt = self.rt
        posts = await by_id(rt.store.posts, list({job["post_id"] for job in jobs}),
                            UNREAD_POST_FIELDS)
        accounts = await by_id(rt.store.accounts, list({job["account_id"] for job in jobs}))
        scopes = {job["account_id"]: _hold_scopes(job["account_id"], job["platform"])
                  for job in jobs}
        try:
            paused = await pause.current(rt)
            waits = await rt.budgets.held_for_many(list(scopes.values()))
        except REDIS_ERRORS as exc:
            return BatchReads(posts, accounts, None, {}, exc)
        return BatchReads(posts, accounts, paused, dict(zip(scopes, waits, strict=True)))

    async def leased(self, job_id: str, claim: Callable[[str], Awaitable[Doc | None]],
                     runner: Callable[[Publisher, Doc, RenewedLock], Runner]) -> None:
        """Run one job's work under its lock and its claim's lease: the lock taken, the job
        claimed (`claim`), and the claimed job run (`runner`) as `_claimed` runs it."""
        async def claim_one(job_ids: list[str]) -> list[Doc | None]:
            return [await claim(job_ids[0])]

        for job, lock in await self._locked([job_id], claim_one):
            await self._claimed(runner(self, job, lock), lock)

    async def _claimed(self, run: Runner, lock: RenewedLock) -> None:
        """A claimed job's work: the lease kept while `run` executes, the lock released, and
        then whatever the run queues again."""
        job = run.job
        try:
            with structlog.contextvars.bound_contextvars(job_id=job["_id"]):
                held = self.leases.keep(job, lock)
                try:
                    await run.execute()
                except LeaseLost:
                    LEASE_LOSSES.inc()
                    log.warning("lease_lost", lease_seq=job["lease_seq"])
                finally:
                    self.leases.drop(held)
        finally:
            await self.releasing.load(lock)
        # Queued only once the lock is free: a retry due at once would otherwise be popped by
        # an executor that cannot take the lock, and dropped.
        await run.queue_again()

    async def settle_post(self, post: Doc) -> None:
        """A one-off post whose jobs are all finished is completed."""
        if post.get("recurring"):
            return
        unfinished: Doc | None = None
        # An unedited one-account post has exactly one job, the caller's: skip the look-up.
        if len(post["account_ids"]) > 1 or post.get("version", 1) > 1:
            unfinished = await self.rt.store.jobs.find_one(
                {"post_id": post["_id"], "state": {"$nin": [str(s) for s in TERMINAL_STATES]}},
                projection={"_id": 1},
            )
        if unfinished is None:
            await self.complete_post.load(post["_id"])

    async def _lock_batch(self, locks: list[RenewedLock]) -> list[bool]:
        EXECUTOR_BATCH_SIZE.labels(step="lock").observe(len(locks))
        return await RenewedLock.acquire_all(self.rt.scripts, locks)

    async def _claim_batch(self, job_ids: list[str]) -> list[Doc | None]:
        """Claim what the batch's locks won; a job absent from the answer was not claimable
        (done, cancelled, not yet due) or is another node's."""
        rt = self.rt
        EXECUTOR_BATCH_SIZE.labels(step="claim").observe(len(job_ids))
        now = rt.clock.now_dt()
        won = await rt.jobs.claim_many(
            job_ids, expect=CLAIMABLE,
            lease={"node_id": rt.settings.node_id,
                   "expires_at": now + timedelta(seconds=rt.settings.lease_ttl_seconds)},
            due_before=now + timedelta(milliseconds=rt.settings.executor_lead_ms)
            + CLAIM_ROUNDING)
        return [won.get(job_id) for job_id in job_ids]

    async def _move_batch(self, moves: list[FencedMove]) -> list[bool]:
        EXECUTOR_BATCH_SIZE.labels(step="move").observe(len(moves))
        return await self.rt.jobs.move_many(moves)

    async def _release_batch(self, locks: list[RenewedLock]) -> list[None]:
        EXECUTOR_BATCH_SIZE.labels(step="release").observe(len(locks))
        await RenewedLock.release_all(self.rt.scripts, locks)
        return [None] * len(locks)


class Run:
    """The steps of one claimed job; every write is fenced on the claim's lease_seq."""

    def __init__(self, publisher: Publisher, job: Doc, lock: RenewedLock,
                 reads: BatchReads | None = None,
                 outcome: Seat[FencedMove, bool] | None = None) -> None:
        self.p = publisher
        self.rt = publisher.rt
        self.job = job
        self.lock = lock
        #: Read with the rest of its batch (Publisher.claim), else at the start of `execute`.
        self.reads = reads
        #: Where the outcome after the platform call is written with its batch's.
        self.outcome = outcome
        self.fence: int = job["lease_seq"]
        #: The job's state as this run last wrote it.
        self.state = JobState.RUNNING
        self.started = self.rt.clock.now_dt()
        #: (job id, due time, lane) to queue once the job's lock is released.
        self.requeue: tuple[str, datetime, str] | None = None

    async def queue_again(self) -> None:
        if self.requeue is not None:
            await self.rt.queue.stage(*self.requeue)

    async def move(self, to: JobState, reason: str, expect: JobState = JobState.RUNNING, *,
                   set_fields: dict[str, Any] | None = None, unset: tuple[str, ...] = (),
                   inc: dict[str, int] | None = None,
                   push: dict[str, Any] | None = None) -> None:
        """A fenced transition, written together with the other jobs' that reach a move at
        the same time (the outcome, with the rest of its batch's outcomes); LeaseLost when it
        matched nothing."""
        move = FencedMove(self.job, self.fence, (expect,), to, reason,
                          set_fields=set_fields or {}, unset=unset, inc=inc, push=push)
        if self.state == JobState.PUBLISHING and self.outcome is not None:
            written = await self.outcome.ask(move)
        else:
            written = await self.p.moving.load(move)
        if not written:
            raise LeaseLost(self.job["_id"])
        self.state = to

    def attempt(self, outcome: str, error: str | None = None) -> dict[str, Any]:
        return {"attempts": {
            "n": len(self.job.get("attempts", [])) + 1,
            "node_id": self.rt.settings.node_id,
            "started_at": self.started,
            "finished_at": self.rt.clock.now_dt(),
            "outcome": outcome,
            "error": error,
        }}

    async def execute(self) -> None:
        try:
            try:
                ready = await self._prepare()
            except REDIS_ERRORS as exc:
                if self.state != JobState.RUNNING:
                    raise
                await self._step_back(exc)
                return
            if ready is not None:
                await self._publish(*ready)
        finally:
            if self.outcome is not None:
                self.outcome.leave()

    async def _prepare(
        self,
    ) -> tuple[Doc, Doc, Provider, PublishRequest, Keyed] | None:
        """Everything up to the `publishing` mark: the checks that may settle, park or defer
        the job, then the mark; None when the job was settled here."""
        rt, job = self.rt, self.job
        reads = self.reads or await self.p.read([job])
        post = reads.posts.get(job["post_id"])
        if not await self._post_is_live(post):
            return None
        assert post is not None
        if await self._missed(post):
            return None
        account = reads.accounts.get(job["account_id"])
        if account is None:
            await self._fail(post, "the account was deleted", expect=JobState.RUNNING)
            return None
        status = account.get("status", "active")
        if status != "active":
            await self._wait_for_account(JobState.RUNNING, f"the account is {status}")
            return None
        if reads.pause() is not None:
            # Publishing is paused cluster-wide: wait as for a disabled account, consuming no
            # attempt; `POST /cluster/resume` queues the job again at once.
            await self._reschedule(JobState.RUNNING, JobState.RETRY_WAIT, "publishing is paused",
                                   rt.clock.now_dt() + pause.RECHECK, consumed=False,
                                   extra={"waiting_on": "pause"})
            return None
        if await self._held(account, reads) or await self._over_budget(account):
            return None
        provider = self.p.provider(account["platform"])
        try:
            keyed = await self.p.keeper.current(account, provider)
        except AuthRevoked as exc:
            PROVIDER_ERRORS.labels(platform=job["platform"], error_class=exc.error_class).inc()
            await self._wait_for_account(JobState.RUNNING, f"auth_revoked: {exc}")
            return None
        except ProviderError as exc:
            await self._handle_error(post, exc, expect=JobState.RUNNING)
            return None
        content = await self._content(post, account)
        if content is None:
            return None
        try:
            media = await rt.media.resolve(content)
        except ProviderError as exc:
            await self._handle_error(post, exc, expect=JobState.RUNNING)
            return None
        request = PublishRequest(
            job_id=job["_id"], post_id=job["post_id"], account_id=job["account_id"],
            scheduled_for=job["scheduled_for"], content=content,
            config=account.get("config", {}), credentials=keyed.credentials,
            checkpoints=JobCheckpoints(self), media=media,
        )
        early = (job["due_at"] - rt.clock.now_dt()).total_seconds()
        if early > 0:
            # Claimed ahead of time: shortly before the due time, make sure the post was not
            # cancelled or paused meanwhile (one read, only for jobs claimed early).
            await asyncio.sleep(early - rt.settings.executor_lead_ms * FINAL_CHECKS_SHARE / 1000)
            fresh = await self.p.posts.load(job["post_id"])
            if not await self._post_is_live(fresh):
                return None
        await self.move(JobState.PUBLISHING, "publishing",
                        set_fields={"publishing_at": rt.clock.now_dt()})
        wait = (job["due_at"] - rt.clock.now_dt()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        return post, account, provider, request, keyed

    async def _step_back(self, error: Exception) -> None:
        """Redis failed before the `publishing` mark (an outage, a restart): nothing was sent,
        so the job goes back to waiting at once, for the queue or, while Redis is away, for the
        sweep and the window check to queue again; left `running`, it would wait a lease TTL
        for the sweep."""
        await self.move(JobState.STAGED, "Redis unavailable before publishing; nothing was sent",
                        unset=("lease",))
        self.requeue = (self.job["_id"], self.job["due_at"], self.job.get("priority", "normal"))
        log.warning("job_stepped_back", error=type(error).__name__)

    async def _content(self, post: Doc, account: Doc) -> Content | None:
        """What the job publishes: the operator's retry content, else the content frozen by
        the generation lane, else the post's own. Generated content not frozen yet is made
        now when the post needs no approval; otherwise the job is settled here (missed while
        unapproved, skipped without a feed item, failed when generation fails: the
        occurrence is due, so nothing is retried) and None is returned."""
        job = self.job
        if job.get("content_override"):
            return Content.model_validate(job["content_override"])
        if not generates(post):
            return Content.model_validate(post["content"])
        state = job.get("content_state")
        if state in PUBLISHABLE_CONTENT and job.get("content"):
            return Content.model_validate(job["content"])
        if state == ContentState.REJECTED:
            await self.move(JobState.CANCELLED, "content rejected", unset=("lease",))
            JOBS.labels(outcome="cancelled").inc()
            return None
        if state == ContentState.AWAITING_APPROVAL or Content.model_validate(
                post["content"]).approval_required:
            await self._settle_missed(post, "not approved by its scheduled time")
            return None
        try:
            composed = await self.rt.composer.compose(post, account, job["scheduled_for"])
        except (GenerationFailed, ProviderError) as exc:
            GENERATIONS.labels(outcome="failed").inc()
            await self._fail(post, f"generation: {exc}", expect=JobState.RUNNING)
            return None
        if composed is None:
            await self.skip(post)
            return None
        GENERATIONS.labels(outcome="generated").inc()
        written = await self.rt.store.jobs.update_one(
            {"_id": job["_id"], "lease_seq": self.fence},
            {"$set": frozen(composed, self.rt.clock.now_dt())})
        if written.matched_count == 0:
            raise LeaseLost(job["_id"])
        return composed.content

    async def skip(self, post: Doc) -> None:
        """The post's feed had no new item for this occurrence."""
        await self.move(JobState.SKIPPED, "no new feed item", unset=("lease",),
                        push=self.attempt("skipped"))
        JOBS.labels(outcome="skipped").inc()
        GENERATIONS.labels(outcome="skipped").inc()
        await self.rt.queue.remove(self.job["_id"])
        await self.p.settle_post(post)

    async def _post_is_live(self, post: Doc | None) -> bool:
        """A cancelled post's job is cancelled; a paused post's job waits (out of the queue)."""
        if post is None or post["status"] in (PostStatus.CANCELLED, PostStatus.COMPLETED):
            await self.move(JobState.CANCELLED, "post cancelled", unset=("lease",),
                            push=self.attempt("cancelled"))
            JOBS.labels(outcome="cancelled").inc()
            return False
        if post["status"] == PostStatus.PAUSED:
            await self.move(JobState.PENDING, "post paused", unset=("lease",))
            return False
        return True

    async def _missed(self, post: Doc) -> bool:
        rt, job = self.rt, self.job
        now = rt.clock.now_dt()
        late = (now - job["due_at"]).total_seconds()
        reason = None
        if late > post.get("misfire_grace_seconds", 3600) and not post.get("publish_late"):
            reason = "misfire grace exceeded"
        elif post.get("recurring") and late > 0:
            newer = await rt.store.jobs.find_one(
                {"post_id": job["post_id"], "account_id": job["account_id"],
                 "scheduled_for": {"$gt": job["scheduled_for"], "$lte": now},
                 "state": {"$ne": str(JobState.CANCELLED)}},
                projection={"_id": 1},
            )
            if newer is not None:
                reason = "coalesced"
        if reason is None:
            return False
        await self._settle_missed(post, reason)
        return True

    async def _settle_missed(self, post: Doc, reason: str) -> None:
        await self.move(JobState.MISSED, reason, unset=("lease",),
                        push=self.attempt("missed", reason))
        JOBS.labels(outcome="missed").inc()
        late = (self.rt.clock.now_dt() - self.job["due_at"]).total_seconds()
        log.warning("job_missed", reason=reason, late_seconds=round(late, 3))
        self.rt.spawn(self.p.notifier.notify("job.missed", self._payload(reason)), "notify")
        await self.p.settle_post(post)

    async def _held(self, account: Doc, reads: BatchReads) -> bool:
        """The platform said the account's or the app's allowance is spent (a scoped 429):
        wait for the time it named without calling it."""
        wait = reads.hold(account["_id"])
        if wait <= 0:
            return False
        RATE_LIMIT_DEFERRALS.labels(platform=account["platform"], source="hold").inc()
        await self._reschedule(JobState.RUNNING, JobState.STAGED, "platform limit reached",
                               self.rt.clock.now_dt() + timedelta(seconds=wait), consumed=False)
        return True

    async def _over_budget(self, account: Doc) -> bool:
        """The account's own `rate_limit`, else its platform's documented pace."""
        limits = account.get("rate_limit") or {}
        scope = f"account:{account['_id']}"
        wait = 0.0
        if limits.get("per_day"):
            wait = await self.rt.budgets.take_daily(scope, int(limits["per_day"]))
        if not wait and limits.get("per_minute"):
            wait = await self.p.rates.load(Rate(scope, float(limits["per_minute"])))
        default = self.p.provider(account["platform"]).default_budget
        if not wait and not limits and default is not None:
            wait = await self.p.rates.load(Rate(scope, default.per_minute, default.count))
        if wait <= 0:
            return False
        RATE_LIMIT_DEFERRALS.labels(platform=account["platform"], source="budget").inc()
        await self._reschedule(JobState.RUNNING, JobState.STAGED, "over budget",
                               self.rt.clock.now_dt() + timedelta(seconds=wait), consumed=False)
        return True

    async def _publish(self, post: Doc, account: Doc, provider: Provider,
                       request: PublishRequest, keyed: Keyed) -> None:
        rt, job = self.rt, self.job
        if not self.lock.held:
            await self._hand_back()
            return
        if not job.get("attempts"):
            LATENESS.observe(max(0.0, rt.clock.now() - job["scheduled_for"].timestamp()))
        started = time.monotonic()
        try:
            try:
                result = await provider.publish(request)
            except AuthExpired:
                keyed = await self.p.keeper.refresh(account, provider, keyed.version)
                result = await provider.publish(
                    dataclasses.replace(request, credentials=keyed.credentials))
        except AuthExpired as exc:
            await self._handle_error(post, Transient(f"auth still expired after refresh: {exc}"))
        except OutcomeUnknown as exc:
            if provider.honours_idempotency_key:
                await self._handle_error(post, exc)
            else:
                await self._to_reconciliation(exc)
        except AuthRevoked as exc:
            # Refused before anything was posted: the account needs a person, the job waits.
            PROVIDER_ERRORS.labels(platform=job["platform"], error_class=exc.error_class).inc()
            await self.p.keeper.require_reauth(account, keyed.version, str(exc))
            await self._wait_for_account(JobState.PUBLISHING, f"auth_revoked: {exc}")
        except ProviderError as exc:
            await self._handle_error(post, exc)
        else:
            await self._succeed(post, result)
        finally:
            PUBLISH_DURATION.labels(platform=account["platform"]).observe(
                time.monotonic() - started)

    async def _to_reconciliation(self, error: OutcomeUnknown) -> None:
        """The platform may have made the post and cannot deduplicate a retry: leave the job
        `publishing` with its lease lapsed now, so the next sweep reconciles it as it would a
        dead node's (a lookup where the platform has one, else `unconfirmed`), never a blind
        second post."""
        job = self.job
        PROVIDER_ERRORS.labels(platform=job["platform"], error_class=error.error_class).inc()
        handed = await self.rt.store.jobs.update_one(
            {"_id": job["_id"], "lease_seq": self.fence, "state": str(JobState.PUBLISHING)},
            {"$set": {"lease.expires_at": self.rt.clock.now_dt(), "unknown_reason": str(error),
                      "updated_at": self.rt.clock.now_dt()}},
        )
        if handed.matched_count == 0:
            raise LeaseLost(job["_id"])
        log.warning("outcome_unknown", error=str(error), action="left to reconciliation")

    async def _wait_for_account(self, expect: JobState, reason: str) -> None:
        """Park the job until its account is usable again, consuming no attempt; the API
        queues it again when the account is reconnected, patched or re-enabled."""
        await self._reschedule(expect, JobState.RETRY_WAIT, reason,
                               self.rt.clock.now_dt() + ACCOUNT_RECHECK, consumed=False,
                               extra={"waiting_on": "account"})
        log.warning("job_waits_for_account", reason=reason)

    async def _hand_back(self) -> None:
        """The job's lock lapsed between the `publishing` mark and the call (a pause, or Redis
        lost the key): recovery may be settling the job already, so nothing is sent; while the
        lease is still ours the job goes straight back to the queue, else recovery has it."""
        await self._reschedule(JobState.PUBLISHING, JobState.RETRY_WAIT,
                               "job lock lost before the platform call; nothing was sent",
                               self.rt.clock.now_dt(), consumed=False)
        LEASE_LOSSES.inc()
        log.warning("lock_lost_before_call", action="handed back")

    async def _succeed(self, post: Doc, result: Published) -> None:
        if result.spent is not None:
            await self._hold(result.spent.scope, result.spent.until)
        await self.move(
            JobState.SUCCEEDED, "published", expect=JobState.PUBLISHING, unset=("lease",),
            set_fields={"result": {"platform_post_id": result.platform_post_id,
                                   "url": result.url},
                        "next_attempt_at": None},
            push=self.attempt("succeeded"),
        )
        JOBS.labels(outcome="succeeded").inc()
        log.info("job_published", platform_post_id=result.platform_post_id)
        await self.p.settle_post(post)

    async def _hold(self, scope: Literal["account", "app"], until: datetime) -> None:
        """The platform said this account's (or the app's) allowance is spent until `until`."""
        job, rt = self.job, self.rt
        hold = _hold_scopes(job["account_id"], job["platform"])[0 if scope == "account" else 1]
        await rt.budgets.hold(hold, until, rt.clock.now_dt())

    async def _handle_error(self, post: Doc, error: ProviderError,
                            expect: JobState = JobState.PUBLISHING) -> None:
        rt, job = self.rt, self.job
        platform = job["platform"]
        PROVIDER_ERRORS.labels(platform=platform, error_class=error.error_class).inc()
        if isinstance(error, RateLimited) and error.scope != "request":
            await self._hold(error.scope, error.retry_at)
        decision = decide(
            error,
            failed_tries=job.get("attempt_count", 0),
            max_retries=rt.settings.retry_max_attempts,
            base_seconds=rt.settings.retry_base_seconds,
            now=rt.clock.now_dt(),
        )
        message = f"{error.error_class}: {error}"
        if decision.action == Action.FAIL:
            await self._fail(post, message, expect=expect)
            return
        if decision.action == Action.DEFER:
            RATE_LIMIT_DEFERRALS.labels(platform=platform, source="platform").inc()
        assert decision.run_at is not None
        await self._reschedule(expect, JobState.RETRY_WAIT, message,
                               decision.run_at, consumed=decision.consumes_attempt,
                               outcome=error.error_class)
        JOBS.labels(outcome="deferred" if decision.action == Action.DEFER else "retried").inc()

    async def _reschedule(self, expect: JobState, to: JobState, reason: str, run_at: datetime,
                          *, consumed: bool, outcome: str | None = None,
                          extra: dict[str, Any] | None = None) -> None:
        await self.move(
            to, reason, expect=expect, unset=("lease",),
            set_fields={"due_at": run_at, "next_attempt_at": run_at, "error": reason,
                        **(extra or {})},
            inc={"attempt_count": 1} if consumed else None,
            push=self.attempt(outcome, reason) if outcome else None,
        )
        self.requeue = (self.job["_id"], run_at, self.job.get("priority", "normal"))

    async def _fail(self, post: Doc, message: str, *, expect: JobState) -> None:
        await self.move(JobState.FAILED, message, expect=expect, unset=("lease",),
                        set_fields={"error": message}, push=self.attempt("failed", message))
        JOBS.labels(outcome="failed").inc()
        log.warning("job_failed", error=message)
        await self.rt.store.posts.update_one(
            {"_id": post["_id"], "status": str(PostStatus.SCHEDULED)},
            {"$set": {"status": str(PostStatus.ERROR), "updated_at": self.rt.clock.now_dt()}},
        )
        self.rt.spawn(self.p.notifier.notify("job.failed", self._payload(message)), "notify")

    def _payload(self, error: str) -> dict[str, Any]:
        return failure_payload(self.job, error)


def failure_payload(job: Doc, error: str) -> dict[str, Any]:
    """What a notification about the job says."""
    return {"job_id": job["_id"], "post_id": job["post_id"], "account_id": job["account_id"],
            "platform": job["platform"], "scheduled_for": job["scheduled_for"].isoformat(),
            "error": error}


def frozen(composed: Composed, now: datetime) -> Doc:
    """The fields that freeze generated content on its job."""
    return {"content": composed.content.model_dump(mode="json"),
            "content_state": str(composed.state), "generation": composed.record,
            "updated_at": now}


def _hold_scopes(account_id: str, platform: str) -> list[str]:
    """The budget scopes a platform's hold may cover: [the account's, the app's]."""
    return [f"account:{account_id}", f"app:{platform}"]


class JobCheckpoints:
    """The job's `checkpoints`, each saved fenced on the run's lease before the provider makes
    its next call (DESIGN §8): a run that lost its lease stops instead of recording."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._values: dict[str, Any] = dict(run.job.get("checkpoints") or {})

    def get(self, key: str) -> Any:
        return self._values.get(key)

    async def save(self, key: str, value: Any) -> None:
        if not key.isidentifier():
            raise ValueError(f"checkpoint names are identifiers, not {key!r}")
        run = self._run
        written = await run.rt.store.jobs.update_one(
            {"_id": run.job["_id"], "lease_seq": run.fence},
            {"$set": {f"checkpoints.{key}": value, "updated_at": run.rt.clock.now_dt()}},
        )
        if written.matched_count == 0:
            raise LeaseLost(run.job["_id"])
        self._values[key] = value
