"""The MongoDB record: collections, idempotent indexes, and the conditional updates that carry
the job state machine. Only single-document atomic operations are used (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.uri_parser import parse_uri

from shared.models import JobState, can_transition

Doc = dict[str, Any]
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


#: The bound on one network read, unless the URI sets its own `socketTimeoutMS`: pymongo waits
#: forever by default, so a frozen server or a dead connection without a reset would hold a
#: call (and the job lock its caller renews) for good. Every Herald operation is one short
#: round trip or one cursor batch.
SOCKET_TIMEOUT_MS = 20_000
#: Indexes of earlier versions that an index of this one serves: each costs every job write an
#: index update for nothing. `account_state` is a prefix of `list_by_account_state`.
RETIRED_JOB_INDEXES = ("account_state",)
#: The indexes of `jobs` and `posts`; tools/mongo-dev-server/write_probe.py builds the same.
JOB_INDEXES = [
    IndexModel([("post_id", ASCENDING), ("account_id", ASCENDING), ("scheduled_for", ASCENDING)],
               unique=True, name="one_job_per_occurrence"),
    IndexModel([("state", ASCENDING), ("due_at", ASCENDING)], name="state_due"),
    # GET /jobs' and the console's filters: platform, time, error class, outcomes.
    IndexModel([("platform", ASCENDING), ("state", ASCENDING)], name="platform_state"),
    IndexModel([("state", ASCENDING), ("scheduled_for", ASCENDING)], name="state_scheduled"),
    IndexModel([("scheduled_for", ASCENDING)], name="scheduled"),
    IndexModel([("error", ASCENDING)], name="error"),
    IndexModel([("state", ASCENDING), ("updated_at", ASCENDING)], name="state_updated"),
    # GET /jobs?state=&account_id=: each filter, then `_id`, the order pages follow.
    IndexModel([("state", ASCENDING), ("_id", ASCENDING)], name="list_by_state"),
    IndexModel([("account_id", ASCENDING), ("_id", ASCENDING)], name="list_by_account"),
    IndexModel([("account_id", ASCENDING), ("state", ASCENDING), ("_id", ASCENDING)],
               name="list_by_account_state"),
    # The generation lane's staging (shared.staging.stage_generations) and
    # GET /jobs?content_state=.
    IndexModel([("content_state", ASCENDING), ("generate_at", ASCENDING)],
               name="content_generate"),
]
POST_INDEXES = [
    IndexModel([("status", ASCENDING), ("recurring", ASCENDING)], name="status_kind"),
    # GET /posts?status=&account_id=, in `_id` order (bench/scale measures them).
    IndexModel([("status", ASCENDING), ("_id", ASCENDING)], name="list_by_status"),
    IndexModel([("account_ids", ASCENDING), ("_id", ASCENDING)], name="list_by_account"),
]
#: MongoDB's codes for a `dropIndexes` of an index or a collection that is not there.
INDEX_NOT_FOUND = 27
NAMESPACE_NOT_FOUND = 26


def database_name(uri: str, default: str) -> str:
    """The URI's path names the database; HERALD_MONGODB_DB applies when it names none."""
    return parse_uri(uri).get("database") or default


class Store:
    def __init__(
        self,
        uri: str,
        database: str,
        *,
        now: Clock = _wall_clock,
        server_selection_timeout_ms: int = 5000,
        socket_timeout_ms: int = SOCKET_TIMEOUT_MS,
    ) -> None:
        given = {k.lower() for k in parse_uri(uri)["options"]}
        options: Doc = {}
        if "serverselectiontimeoutms" not in given:
            options["serverSelectionTimeoutMS"] = server_selection_timeout_ms
        if "sockettimeoutms" not in given:
            options["socketTimeoutMS"] = socket_timeout_ms
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            uri, tz_aware=True, tzinfo=UTC, connect=False, **options)
        self.db: AsyncDatabase[Doc] = self.client[database]
        self.accounts: AsyncCollection[Doc] = self.db["accounts"]
        self.posts: AsyncCollection[Doc] = self.db["posts"]
        self.jobs: AsyncCollection[Doc] = self.db["jobs"]
        self.cluster: AsyncCollection[Doc] = self.db["cluster"]
        self.nodes: AsyncCollection[Doc] = self.db["nodes"]
        self.sweeps: AsyncCollection[Doc] = self.db["sweeps"]
        #: Every change made through the API or the console (scheduler.api.audit).
        self.audit: AsyncCollection[Doc] = self.db["audit"]
        #: OAuth clients Herald registered itself (one per Mastodon instance), secrets sealed.
        self.oauth_apps: AsyncCollection[Doc] = self.db["oauth_apps"]
        #: Pending OAuth connect requests, keyed by their single-use `state`.
        self.oauth_states: AsyncCollection[Doc] = self.db["oauth_states"]
        self.now = now

    async def ensure_indexes(self) -> None:
        """Create every index and drop the retired ones; both are no-ops when done already, so
        every node may run it."""
        for name in RETIRED_JOB_INDEXES:
            try:
                await self.jobs.drop_index(name)
            except OperationFailure as exc:
                if exc.code not in (INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND):
                    raise
        await self.jobs.create_indexes(JOB_INDEXES)
        await self.posts.create_indexes(POST_INDEXES)
        await self.sweeps.create_indexes([IndexModel([("started_at", ASCENDING)], name="started")])
        await self.audit.create_indexes([IndexModel([("target", ASCENDING)], name="target")])
        await self.oauth_apps.create_indexes([IndexModel(
            [("platform", ASCENDING), ("api_base", ASCENDING), ("redirect_uri", ASCENDING)],
            unique=True, name="one_app_per_instance_and_redirect")])

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def close(self) -> None:
        await self.client.close()

    async def insert_job(self, job: Doc) -> bool:
        """Insert one occurrence; False when it already exists (materialising twice is harmless)."""
        try:
            await self.jobs.insert_one(job)
        except DuplicateKeyError:
            return False
        return True

    async def transition(
        self,
        job_id: str,
        *,
        expect: Iterable[JobState],
        to: JobState,
        node_id: str,
        reason: str,
        fence: int | None = None,
        extra_filter: Mapping[str, Any] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        unset: Iterable[str] = (),
        inc: Mapping[str, int] | None = None,
        push: Mapping[str, Any] | None = None,
    ) -> Doc | None:
        """Move a job from one of `expect` to `to`, fenced by `lease_seq` when given.

        Returns the updated document, or None when the job was not in an expected state (or the
        fence no longer matches): the caller lost the race and must not touch the job.
        """
        query, update = self.transition_ops(
            job_id, expect=expect, to=to, node_id=node_id, reason=reason, fence=fence,
            extra_filter=extra_filter, set_fields=set_fields, unset=unset, inc=inc, push=push)
        return await self.jobs.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )

    def transition_ops(
        self,
        job_id: str | Mapping[str, Any],
        *,
        expect: Iterable[JobState],
        to: JobState,
        node_id: str,
        reason: str,
        fence: int | None = None,
        extra_filter: Mapping[str, Any] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        unset: Iterable[str] = (),
        inc: Mapping[str, int] | None = None,
        push: Mapping[str, Any] | None = None,
    ) -> tuple[Doc, Doc]:
        """The filter and update of a transition, for one job or (with an `_id` condition such
        as `{"$in": [...]}`) for a batch written by `update_many` or `bulk_write`."""
        expect = list(expect)
        illegal = [s for s in expect if not can_transition(s, to)]
        if illegal:
            raise ValueError(f"no transition from {illegal} to {to} in the job state machine")
        now = self.now()
        query: Doc = {"_id": job_id, "state": {"$in": [str(s) for s in expect]}}
        if fence is not None:
            query["lease_seq"] = fence
        if extra_filter:
            query.update(extra_filter)
        update: Doc = {
            "$set": {"state": str(to), "updated_at": now, **(set_fields or {})},
            "$push": {
                "transitions": {"state": str(to), "at": now, "node": node_id, "reason": reason},
                **(push or {}),
            },
        }
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        if inc:
            update["$inc"] = dict(inc)
        return query, update
