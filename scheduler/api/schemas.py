"""Request and response shapes of the admin API (API.md), built on the domain models.

Requests forbid unknown fields and are validated strictly from JSON, so a typo or a wrongly
typed value is a 422 naming the field instead of a silent coercion. Responses render every time
in UTC with a `Z`. The OpenAPI document is generated from these same classes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.models import (
    AtSchedule,
    Content,
    CronSchedule,
    JobState,
    OnUnknown,
    PlatformName,
    PostStatus,
    Priority,
    Strict,
)

#: Ids are ObjectId hex strings (shared.models.new_id); a cursor must look like one.
ID_PATTERN = r"^[0-9a-f]{24}$"
MAX_PAGE = 500
AccountStatus = Literal["active", "disabled"]

#: Tags of the schedule union. Pydantic puts a tag into an error's location; it is not a field
#: the client sent, so `errors.field_path` leaves these out.
AT_TAG, CRON_TAG = "@at", "@cron"
UNION_TAGS = frozenset({AT_TAG, CRON_TAG})


def iso_z(value: datetime) -> str:
    """Millisecond precision, as MongoDB stores times: `2026-11-23T08:00:00.000Z`."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcTime = Annotated[
    datetime,
    PlainSerializer(iso_z, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


def _schedule_kind(value: Any) -> str | None:
    """`at` makes a one-off post and `cron` a recurring one; both or neither is an error."""
    if isinstance(value, AtSchedule):
        return AT_TAG
    if isinstance(value, CronSchedule):
        return CRON_TAG
    if isinstance(value, dict) and ("at" in value) != ("cron" in value):
        return AT_TAG if "at" in value else CRON_TAG
    return None


ScheduleIn = Annotated[
    Annotated[AtSchedule, Tag(AT_TAG)] | Annotated[CronSchedule, Tag(CRON_TAG)],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="must be an object with exactly one of 'at' (one-off) or 'cron' "
        "(recurring)",
    ),
]
Ident = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
GraceSeconds = Annotated[int, Field(gt=0, le=30 * 86400)]


def _not_null(value: object) -> object:
    """PATCH fields are optional but may not be sent as null (only `rate_limit` may)."""
    if value is None:
        raise ValueError("may not be null")
    return value


# --- requests -----------------------------------------------------------------------------


class RateLimit(Strict):
    """A per-account publish budget: `per_minute` paces, `per_day` caps (UTC days)."""

    per_minute: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    per_day: Annotated[int, Field(gt=0, le=100_000_000)] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if self.per_minute is None and self.per_day is None:
            raise ValueError("give per_minute, per_day or both")
        return self


class AccountCreate(Strict):
    platform: PlatformName
    name: Name
    config: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, Any] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    on_unknown: OnUnknown = OnUnknown.RETRY


class AccountPatch(Strict):
    """`config` and `credentials` are merged key by key into the stored ones; a key sent as
    null is removed. `rate_limit: null` removes the limit."""

    name: Name | None = None
    config: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    rate_limit: RateLimit | None = None
    on_unknown: OnUnknown | None = None
    status: AccountStatus | None = None

    _no_nulls = field_validator("name", "config", "credentials", "on_unknown", "status")(
        _not_null
    )


class AccountConnect(Strict):
    """Starts an OAuth connect; the account is created by the callback."""

    platform: PlatformName
    name: Name
    redirect_uri: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s#]*$", max_length=2000,
                                       description="where the platform sends the browser "
                                                   "back: this API's /api/v1/oauth/callback")]
    config: dict[str, Any] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    on_unknown: OnUnknown = OnUnknown.RETRY


class ConnectCallback(BaseModel):
    """What the platform appends to the redirect URI; other parameters are ignored."""

    state: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(max_length=4000)] | None = None
    error: Annotated[str, Field(max_length=200)] | None = None
    error_description: Annotated[str, Field(max_length=2000)] | None = None


class PostCreate(Strict):
    account_ids: Annotated[list[Ident], Field(min_length=1, max_length=100)]
    content: Content
    schedule: ScheduleIn
    priority: Priority = Priority.NORMAL
    draft: bool = False
    misfire_grace_seconds: GraceSeconds = 3600
    publish_late: bool = False


class PostPatch(Strict):
    """`draft: false` schedules a draft; a scheduled post cannot go back to draft."""

    content: Content | None = None
    schedule: ScheduleIn | None = None
    priority: Priority | None = None
    misfire_grace_seconds: GraceSeconds | None = None
    publish_late: bool | None = None
    draft: bool | None = None

    _no_nulls = field_validator(
        "content", "schedule", "priority", "misfire_grace_seconds", "publish_late", "draft"
    )(_not_null)


class JobRetry(Strict):
    run_at: AwareDatetime | None = None
    content: Content | None = None
    force: bool = False


class JobResolve(Strict):
    outcome: Literal["succeeded", "retry"]


# --- query strings ------------------------------------------------------------------------


class PageQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    after: Annotated[str, Field(pattern=ID_PATTERN)] | None = None


class PostQuery(PageQuery):
    status: PostStatus | None = None
    account_id: Ident | None = None


class JobQuery(PageQuery):
    state: JobState | None = None
    post_id: Ident | None = None
    account_id: Ident | None = None


class AccountDeleteQuery(Strict):
    cancel_jobs: bool = False


# --- responses ----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorBody(BaseModel):
    error: ErrorInfo


class AccountOut(BaseModel):
    id: str
    platform: str
    name: str
    config: dict[str, Any]
    status: Literal["active", "disabled", "reauth_required"]
    #: Why the account is `reauth_required` (the platform's answer to the refresh).
    status_reason: str | None = None
    rate_limit: dict[str, int] | None
    on_unknown: OnUnknown
    created_at: UtcTime
    updated_at: UtcTime


class AtScheduleOut(BaseModel):
    at: UtcTime


class CronScheduleOut(BaseModel):
    cron: str
    timezone: str
    start_at: UtcTime | None = None
    end_at: UtcTime | None = None


class PostJob(BaseModel):
    id: str
    account_id: str
    scheduled_for: UtcTime
    state: JobState


class PostSummary(BaseModel):
    id: str
    status: PostStatus
    next_run_at: UtcTime | None
    version: int
    account_ids: list[str]
    content: Content
    schedule: AtScheduleOut | CronScheduleOut
    recurring: bool
    priority: Priority
    misfire_grace_seconds: int
    publish_late: bool
    created_at: UtcTime
    updated_at: UtcTime


class PostOut(PostSummary):
    """One post with its jobs (for a recurring post, the occurrences materialised so far)."""

    jobs: list[PostJob]


class AttemptOut(BaseModel):
    n: int
    node_id: str | None
    started_at: UtcTime | None
    finished_at: UtcTime | None
    outcome: str | None
    error: str | None


class JobResultOut(BaseModel):
    platform_post_id: str | None
    url: str | None


class JobOut(BaseModel):
    id: str
    post_id: str
    account_id: str
    platform: str
    scheduled_for: UtcTime
    due_at: UtcTime
    state: JobState
    priority: Priority
    attempts: list[AttemptOut]
    attempt_count: int
    result: JobResultOut | None
    next_attempt_at: UtcTime | None
    content_override: Content | None
    created_at: UtcTime
    updated_at: UtcTime


class ConnectStarted(BaseModel):
    authorize_url: str
    state: str
    expires_at: UtcTime


class ConnectedOut(BaseModel):
    account: AccountOut


class AccountPage(BaseModel):
    items: list[AccountOut]
    next: str | None


class PostPage(BaseModel):
    """List items are posts without their jobs; `GET /jobs?post_id=` pages through those."""

    items: list[PostSummary]
    next: str | None


class JobPage(BaseModel):
    items: list[JobOut]
    next: str | None


class LeaderOut(BaseModel):
    node_id: str
    epoch: int | None
    since: UtcTime | None


class NodeOut(BaseModel):
    node_id: str
    roles: list[str]
    last_seen: UtcTime
    version: str | None


class QueueOut(BaseModel):
    staged: int
    overdue: int
    oldest_overdue_seconds: float
    lanes: dict[str, int]


class ClusterOut(BaseModel):
    leader: LeaderOut | None
    nodes: list[NodeOut]
    queue: QueueOut


class SweepRequest(Strict):
    kind: Literal["light", "full"]


class SweepAccepted(BaseModel):
    id: str


class SweepQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 20
    #: Reports are listed newest first; `after` continues with those older than this id.
    after: Annotated[str, Field(pattern=ID_PATTERN)] | None = None


class SweepOut(BaseModel):
    id: str
    kind: str
    status: Literal["requested", "claimed", "running", "succeeded", "failed"]
    node_id: str | None = None
    requested_at: UtcTime | None = None
    started_at: UtcTime | None = None
    finished_at: UtcTime | None = None
    duration_seconds: float | None = None
    repairs: dict[str, int] = {}
    stuck_jobs: list[str] = []
    error: str | None = None


class SweepPage(BaseModel):
    items: list[SweepOut]
    next: str | None
