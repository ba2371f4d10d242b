"""Request and response shapes of the admin API (API.md), built on the domain models.

Requests forbid unknown fields and are validated strictly from JSON, so a typo or a wrongly
typed value is a 422 naming the field instead of a silent coercion; only a whole number written
as `1.0` is taken for an integer, because JSON Schema counts it as one and the document says
`integer`. Responses render every time in UTC with a `Z`. The OpenAPI document is generated from
these same classes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from shared.models import (
    ALT_MAX,
    AtSchedule,
    Content,
    ContentState,
    CronSchedule,
    JobState,
    OnUnknown,
    PlatformName,
    PostStatus,
    Priority,
    Strict,
    UtcDatetime,
)
from shared.providers.registry import PROVIDERS

#: Ids are ObjectId hex strings (shared.models.new_id); a cursor must look like one.
ID_PATTERN = r"^[0-9a-f]{24}$"
MAX_PAGE = 500
AccountStatus = Literal["active", "disabled"]

#: Tags of the schedule union. Pydantic puts a tag into an error's location; it is not a field
#: the client sent, so `errors.field_path` leaves these out.
AT_TAG, CRON_TAG = "@at", "@cron"
UNION_TAGS = frozenset({AT_TAG, CRON_TAG})


@functools.lru_cache(maxsize=4096)
def iso_z(value: datetime) -> str:
    """Millisecond precision, as MongoDB stores times: `2026-11-23T08:00:00.000Z`. Cached: an
    answer repeats its times (a post's schedule, next run and jobs; a batch's creation time),
    and formatting was a third of rendering a batch's answer. Equal aware times are the same
    instant, so they share one text."""
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


class Documented:
    """A JSON Schema for a rule a model's validators check in code, joined to the model's own
    (`allOf`, which tools read where they ignore keywords beside a `$ref`), so that the
    document does not offer what the server refuses."""

    def __init__(self, rule: JsonSchemaValue) -> None:
        self.rule = rule

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"allOf": [handler(schema), self.rule]}


def _publishable() -> JsonSchemaValue:
    """Media and threads are refused for every account while no platform of this build
    publishes them (`Provider.check_content`), so the document offers none until one does."""
    none: JsonSchemaValue = {"maxItems": 0}
    properties: JsonSchemaValue = {}
    if not any(p.supports_media for p in PROVIDERS.values()):
        properties = {"media": none, "thread": {"items": {"properties": {"media": none}}}}
    if not any(p.supports_threads for p in PROVIDERS.values()):
        properties["thread"] = none
    return properties


#: The characters `str.strip()` removes, as a JSON Schema (ECMA-262) character class body.
_BLANK = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Content whose text is blank needs media (`Content._not_empty`). Said with `not`: generators
#: take seconds to meet a positive pattern within the text's 100,000 characters.
def _given(name: str, kind: str, **rule: Any) -> JsonSchemaValue:
    """`name` is there and not null (the model reads a null as absent)."""
    return {"required": [name], "properties": {name: {"type": kind, **rule}}}


_WORDS = _given("text", "string", **{"not": {"pattern": f"^[{_BLANK}]*$"}})
_TEMPLATE = _given("template", "string")
_PROMPT = _given("generate", "object", **_given("prompt", "string"))
#: `Content._not_empty`'s rules: something to publish, text or a template (not both), text or
#: a prompt that makes it unless a template places it, and a feed used by one of the two.
ContentIn = Annotated[Content, Documented({"properties": _publishable(), "allOf": [
    {"anyOf": [_WORDS, _given("media", "array", minItems=1), _TEMPLATE,
               _given("generate", "object")]},
    {"not": {"allOf": [_WORDS, _TEMPLATE]}},
    {"not": {"allOf": [_WORDS, _PROMPT, {"not": _TEMPLATE}]}},
    {"anyOf": [{"not": _given("source", "object")}, _TEMPLATE, _PROMPT]},
]})]
#: What CronSchedule's validators take (croniter's expressions, zoneinfo's zones) has no
#: JSON Schema, so the document names it as formats.
CronScheduleIn = Annotated[CronSchedule, Documented({"properties": {
    "cron": {"format": "cron",
             "description": "a 5-field cron expression, e.g. '0 9 * * 1-5'"},
    "timezone": {"format": "time-zone",
                 "description": "an IANA time zone such as 'Europe/Berlin'"},
}})]

ScheduleIn = Annotated[
    Annotated[AtSchedule, Tag(AT_TAG)] | Annotated[CronScheduleIn, Tag(CRON_TAG)],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="must be an object with exactly one of 'at' (one-off) or 'cron' "
        "(recurring)",
    ),
]


def _whole_number(value: object) -> object:
    """`1.0` is the integer 1 in JSON Schema, so it is one here too; `1.5` and `true` are not,
    nor a float past 2**53, which no longer spells one integer (`1e300`)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _whole_numbers(value: Any) -> Any:
    """`_whole_number` throughout an account's config or credentials, for the integer fields of
    the platforms' models (Telegram's `chat_id`), which validate them afterwards."""
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return _whole_number(value)


#: Last in an integer's Annotated, so the constraints before it see the converted value.
WHOLE = BeforeValidator(_whole_number)

Ident = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
GraceSeconds = Annotated[int, Field(gt=0, le=30 * 86400), WHOLE]
#: How long before each occurrence generated content is made (API.md "Generated content").
AheadSeconds = Annotated[int, Field(ge=60, le=7 * 86400), WHOLE]


def _present(value: dict[str, Any]) -> dict[str, Any]:
    """A key sent as null is absent, when an account is made as when it is patched."""
    return {k: v for k, v in value.items() if v is not None}


#: An account's `config` or `credentials` as the body carries them; the platform's provider
#: checks them against its own models (the document shows those, per platform).
AccountObject = Annotated[dict[str, Any], AfterValidator(_whole_numbers)]
NewAccountObject = Annotated[AccountObject, AfterValidator(_present)]


def _not_null(value: object) -> object:
    if value is None:
        raise ValueError("may not be null")
    return value


def _without_null(schema: JsonSchemaValue) -> None:
    """The field's own type, not `anyOf [type, null]` with `default: null`."""
    schema.pop("default", None)
    kept = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    schema.update(kept[0] if len(kept) == 1 else {"anyOf": kept})


T = TypeVar("T")
#: A PATCH field: left out, the stored value stays; it may not be sent as null (only
#: `rate_limit` may, to remove the limit), and the document does not offer null.
NotNull = Annotated[T | None, AfterValidator(_not_null), Field(json_schema_extra=_without_null)]


# --- requests -----------------------------------------------------------------------------


class RateLimit(Strict):
    """A per-account publish budget: `per_minute` paces, `per_day` caps (UTC days)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [key], "properties": {key: {"type": "integer"}}}
        for key in ("per_minute", "per_day")
    ]})

    per_minute: Annotated[int, Field(gt=0, le=1_000_000), WHOLE] | None = None
    per_day: Annotated[int, Field(gt=0, le=100_000_000), WHOLE] | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if self.per_minute is None and self.per_day is None:
            raise ValueError("give per_minute, per_day or both")
        return self


class AccountCreate(Strict):
    """`config` and `credentials` are checked by the platform's provider once the shape is
    valid; the document shows them per platform (scheduler.api.openapi)."""

    platform: PlatformName
    name: Name
    config: NewAccountObject = Field(default_factory=dict)
    credentials: NewAccountObject = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    on_unknown: OnUnknown = OnUnknown.RETRY


class AccountPatch(Strict):
    """`config` and `credentials` are merged key by key into the stored ones; a key sent as
    null is removed. `rate_limit: null` removes the limit."""

    name: NotNull[Name] = None
    config: NotNull[AccountObject] = None
    credentials: NotNull[AccountObject] = None
    rate_limit: RateLimit | None = None
    on_unknown: NotNull[OnUnknown] = None
    status: NotNull[AccountStatus] = None


class AccountConnect(Strict):
    """Starts an OAuth connect; the callback creates the account, or, with `account_id`,
    gives that account its new credentials (reconnecting one that is `reauth_required`)."""

    platform: PlatformName
    #: Required for a new account; a reconnected account keeps its name unless one is given.
    name: Name | None = None
    account_id: Annotated[str, Field(pattern=ID_PATTERN, description="the account to "
                                     "reconnect, instead of creating a new one")] | None = None
    redirect_uri: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s#]*$", max_length=2000,
                                       description="where the platform sends the browser "
                                                   "back: this API's /api/v1/oauth/callback")]
    config: NewAccountObject = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    on_unknown: OnUnknown = OnUnknown.RETRY


class ConnectCallback(BaseModel):
    """What the platform appends to the redirect URI; other parameters are ignored."""

    state: Annotated[str, Field(min_length=1, max_length=200)]
    code: Annotated[str, Field(max_length=4000)] | None = None
    error: Annotated[str, Field(max_length=200)] | None = None
    error_description: Annotated[str, Field(max_length=2000)] | None = None


class PostCreate(Strict):
    #: An account listed twice is refused (scheduler.api.checks), so the document says so.
    account_ids: Annotated[list[Ident], Field(min_length=1, max_length=100,
                                              json_schema_extra={"uniqueItems": True})]
    content: ContentIn
    schedule: ScheduleIn
    priority: Priority = Priority.NORMAL
    draft: bool = False
    misfire_grace_seconds: GraceSeconds = 3600
    publish_late: bool = False
    generate_ahead_seconds: AheadSeconds = 3600


#: The most posts one `POST /posts/batch` takes (API.md).
MAX_BATCH = 1000


class PostBatch(Strict):
    """Each post is validated on its own, so the list is taken as raw JSON values here and the
    document names their shape."""

    posts: Annotated[list[Any], Field(
        min_length=1, max_length=MAX_BATCH,
        json_schema_extra={"items": {"$ref": "#/components/schemas/PostCreate"}})]


class PostPatch(Strict):
    """`draft: false` schedules a draft; a scheduled post cannot go back to draft."""

    content: NotNull[ContentIn] = None
    schedule: NotNull[ScheduleIn] = None
    priority: NotNull[Priority] = None
    misfire_grace_seconds: NotNull[GraceSeconds] = None
    publish_late: NotNull[bool] = None
    draft: NotNull[bool] = None
    generate_ahead_seconds: NotNull[AheadSeconds] = None


class JobRetry(Strict):
    run_at: UtcDatetime | None = None
    content: ContentIn | None = None
    force: bool = False


class JobApprove(Strict):
    """`text`: the approved text, edited; left out, the generated text is approved as is."""

    text: Annotated[str, Field(min_length=1, max_length=100_000)] | None = None


class JobResolve(Strict):
    outcome: Literal["succeeded", "retry"]
    #: Where the operator found the post, for `succeeded`: kept as the job's result.
    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=2000)] | None = None
    platform_post_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None


# --- query strings ------------------------------------------------------------------------


class PageQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    after: Annotated[str, Field(pattern=ID_PATTERN)] | None = None


class PostQuery(PageQuery):
    status: PostStatus | None = None
    account_id: Ident | None = None


#: The kinds of error a job's last error starts with (`<class>: <message>`): the providers'
#: taxonomy (shared.providers.base) and content generation.
ErrorClass = Literal["rate_limited", "transient", "outcome_unknown", "auth_expired", "permanent",
                     "auth_revoked", "error", "generation"]


class JobFilter(Strict):
    """Which jobs: every given condition holds. `q` is a case-insensitive substring of the
    job's content (its own, else its post's) or of its last error; `since`/`until` bound the
    scheduled time (inclusive, exclusive)."""

    state: JobState | None = None
    post_id: Ident | None = None
    account_id: Ident | None = None
    platform: PlatformName | None = None
    error_class: ErrorClass | None = None
    content_state: ContentState | None = None
    q: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None


class JobQuery(PageQuery, JobFilter):
    pass


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
    generate_ahead_seconds: int = 3600


class PostOut(PostSummary):
    """One post with its jobs (for a recurring post, the occurrences materialised so far)."""

    jobs: list[PostJob]


class PreviewAccount(BaseModel):
    """What one account would get: `skipped` when its feed holds no item; `problems` what
    would fail the generation (the platform's limits)."""

    account_id: str
    platform: str
    text: str | None
    media: list[dict[str, Any]] = []
    item: GenerationItem | None = None
    skipped: bool = False
    problems: list[ErrorDetail] = []
    #: The picture's prompt: a preview asks for no picture.
    image_prompt: str | None = None


class PreviewOut(BaseModel):
    """`occurrence`: the next one, null when the schedule does not fire again. A feed post's
    preview uses the feed's newest item: the items present at creation count as seen, so the
    first occurrence takes the next new one."""

    occurrence: UtcTime | None
    accounts: list[PreviewAccount]


class BatchResult(BaseModel):
    """One post of a batch: created (`status` 201, `post`), refused (`status` 422, `error` as
    the API's error body would carry it), or not created for a fault (500, or 503 when MongoDB
    or Redis was unreachable; `error.message` says what may be stored of it)."""

    index: int
    status: Literal[201, 422, 500, 503]
    post: PostOut | None = None
    error: ErrorInfo | None = None


class BatchOut(BaseModel):
    results: list[BatchResult]


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


class PartOut(BaseModel):
    """One published part of a post with a thread: `n` 0 is the post itself, n the thread's nth
    reply. Recorded as each part is published, so a retry resumes after the last one."""

    n: int
    platform_post_id: str | None
    url: str | None


class GenerationItem(BaseModel):
    title: str
    link: str


class GenerationOut(BaseModel):
    """How a job's content was made: the model, the prompt it was sent (feed text delimited),
    its token usage, the feed item, and the picture's prompt and media id."""

    at: UtcTime
    model: str | None = None
    prompt: str | None = None
    usage: dict[str, int] = {}
    item: GenerationItem | None = None
    image_prompt: str | None = None
    image_media_id: str | None = None


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
    #: The last error recorded, and its class (the part before the first colon).
    error: str | None = None
    error_class: str | None = None
    parts: list[PartOut] = []
    #: Generated content (API.md "Generated content"): where it is, what will be or was
    #: published, and how it was made. None for a post whose content is written once.
    content_state: ContentState | None = None
    content: Content | None = None
    generation: GenerationOut | None = None


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


class PausedOut(BaseModel):
    reason: str
    since: UtcTime
    by: str


class ClusterOut(BaseModel):
    leader: LeaderOut | None
    nodes: list[NodeOut]
    queue: QueueOut
    #: Set while all publishing is paused (`POST /cluster/pause`).
    paused: PausedOut | None = None


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


# --- media --------------------------------------------------------------------------------


class MediaUpload(Strict):
    """The parts of `POST /media`'s `multipart/form-data` body (read part by part, never
    parsed whole; this model describes them for the document)."""

    file: Annotated[bytes, WithJsonSchema({
        "type": "string", "format": "binary", "contentMediaType": "application/octet-stream",
        "description": "the file; its type is taken from its bytes: JPEG, PNG, GIF, WebP, "
                       "MP4, QuickTime or WebM"})]
    alt: Annotated[str, Field(max_length=ALT_MAX, description="the default alt text where a "
                                                               "post gives none")] = ""


class MediaOut(BaseModel):
    id: str
    content_type: str
    size: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    alt: str = ""
    created_at: UtcTime
