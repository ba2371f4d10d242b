"""The domain vocabulary: states, post content and schedules, and the stored shapes of
accounts, posts and jobs. API request and response schemas build on these."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bson import ObjectId
from croniter import croniter
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    WithJsonSchema,
    field_validator,
    model_validator,
)


def new_id() -> str:
    """Time-ordered string ids, so `?after=<id>` pagination follows creation order."""
    return str(ObjectId())


#: Why a time is refused whose offset carries it past datetime's years 1 to 9999 in UTC.
OUT_OF_RANGE = "is out of range: in UTC it falls outside the years 1 to 9999"


def utc(value: datetime) -> datetime:
    """`value` on the UTC timeline. An offset can carry a time of the calendar's first or last
    day past its ends (`9999-12-31T23:59:59-14:00`); datetime's OverflowError is no validation
    error to pydantic (it would be a 500), so it is a ValueError here: a 422 naming the field."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(OUT_OF_RANGE) from exc


#: Every time a request carries: with an offset, kept in UTC. The document states the range
#: in words: JSON Schema has no keyword for it (`date-time` compares no instants).
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(utc),
    WithJsonSchema({"type": "string", "format": "date-time",
                    "description": "an RFC 3339 time with an offset, which in UTC falls within "
                                   "the years 1 to 9999"}),
]


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    PENDING = "pending"
    STAGED = "staged"
    RUNNING = "running"
    PUBLISHING = "publishing"
    SUCCEEDED = "succeeded"
    RETRY_WAIT = "retry_wait"
    FAILED = "failed"
    CANCELLED = "cancelled"
    MISSED = "missed"
    UNCONFIRMED = "unconfirmed"
    #: A feed-driven occurrence whose feed had no new item (API.md "Generated content").
    SKIPPED = "skipped"


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.MISSED, JobState.SKIPPED}
)
WAITING_STATES = frozenset({JobState.PENDING, JobState.STAGED, JobState.RETRY_WAIT})
ACTIVE_STATES = frozenset({JobState.RUNNING, JobState.PUBLISHING})
UNFINISHED_STATES = WAITING_STATES | ACTIVE_STATES | {JobState.UNCONFIRMED}

#: The state machine of DESIGN §2: every transition leaves one of these states for another.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.PENDING, JobState.STAGED, JobState.RUNNING,
                                 JobState.CANCELLED, JobState.MISSED}),
    JobState.STAGED: frozenset({JobState.PENDING, JobState.RUNNING, JobState.CANCELLED,
                                JobState.MISSED}),
    JobState.RUNNING: frozenset({JobState.PUBLISHING, JobState.PENDING, JobState.STAGED,
                                 JobState.RETRY_WAIT, JobState.FAILED, JobState.CANCELLED,
                                 JobState.MISSED, JobState.SKIPPED}),
    JobState.PUBLISHING: frozenset({JobState.SUCCEEDED, JobState.RETRY_WAIT, JobState.FAILED,
                                    JobState.UNCONFIRMED, JobState.STAGED}),
    JobState.RETRY_WAIT: frozenset({JobState.STAGED, JobState.RUNNING, JobState.CANCELLED,
                                    JobState.PENDING}),
    JobState.UNCONFIRMED: frozenset({JobState.SUCCEEDED, JobState.STAGED, JobState.PENDING,
                                     JobState.CANCELLED}),
    JobState.FAILED: frozenset({JobState.STAGED, JobState.PENDING}),
    JobState.MISSED: frozenset({JobState.STAGED, JobState.PENDING}),
    JobState.CANCELLED: frozenset({JobState.STAGED, JobState.PENDING}),
    JobState.SUCCEEDED: frozenset({JobState.STAGED, JobState.PENDING}),
    JobState.SKIPPED: frozenset({JobState.STAGED, JobState.PENDING}),
}


class ContentState(StrEnum):
    """Where a job's generated content is (API.md "Generated content"); a job whose post's
    content is written once has none."""

    PENDING = "pending"
    GENERATED = "generated"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"


#: The content states whose frozen content may be published.
PUBLISHABLE_CONTENT = frozenset({ContentState.GENERATED, ContentState.APPROVED})


def can_transition(source: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[source]


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


class OnUnknown(StrEnum):
    RETRY = "retry"
    REVIEW = "review"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


#: A media id as `POST /media` makes it (`new_id`).
MEDIA_ID = r"^[0-9a-f]{24}$"
#: The longest alt text (Mastodon's `description` takes 1,500 characters).
ALT_MAX = 1500


def _absent(value: object) -> bool:
    return value is None


class Media(Strict):
    """One item of a post's media: uploaded (`id`, from `POST /media`) or fetched by Herald at
    publish time (`url`); exactly one of the two. The one not given is left out of a dump, so
    a stored post keeps the form it was sent in."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [key], "properties": {key: {"type": "string"}}} for key in ("id", "url")]})

    id: Annotated[str, Field(pattern=MEDIA_ID)] | None = Field(default=None, exclude_if=_absent)
    url: HttpUrl | None = Field(default=None, exclude_if=_absent)
    alt: Annotated[str, Field(max_length=ALT_MAX)] = ""
    mime_type: Annotated[str, Field(pattern=r"^[a-z]+/[A-Za-z0-9.+-]+$")] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Media:
        if (self.id is None) == (self.url is None):
            raise ValueError("give exactly one of id (uploaded media) or url")
        return self


class ThreadItem(Strict):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    media: Annotated[list[Media], Field(max_length=20)] = Field(default_factory=list)


class FeedSource(Strict):
    feed: HttpUrl


class Generate(Strict):
    """What the language model is asked for: the post's text (`prompt`), a picture (`image`),
    or both; each is a template rendered like `content.template`."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [key], "properties": {key: {"type": "string"}}}
        for key in ("prompt", "image")]})

    prompt: Annotated[str, Field(min_length=1, max_length=10_000)] | None = Field(
        default=None, exclude_if=_absent)
    image: Annotated[str, Field(min_length=1, max_length=4000)] | None = Field(
        default=None, exclude_if=_absent)

    @model_validator(mode="after")
    def _something(self) -> Generate:
        if self.prompt is None and self.image is None:
            raise ValueError("give prompt, image or both")
        return self


Approval = Literal["auto", "required"]


class Content(Strict):
    """A post's content: written once (`text`, `media`), or made per occurrence from a
    `template`, a feed (`source`) and a model (`generate`). The generator fields are left out
    of a dump when unset, so written content keeps its form."""

    text: Annotated[str, Field(max_length=100_000)] = ""
    #: The title YouTube requires and TikTok photo posts use; each platform checks its length.
    #: Left out of a dump when unset, as content without one always was.
    title: Annotated[str, Field(min_length=1, max_length=1000)] | None = Field(
        default=None, exclude_if=_absent)
    media: Annotated[list[Media], Field(max_length=20)] = Field(default_factory=list)
    thread: Annotated[list[ThreadItem], Field(max_length=50)] = Field(default_factory=list)
    template: Annotated[str, Field(min_length=1, max_length=10_000)] | None = Field(
        default=None, exclude_if=_absent)
    source: FeedSource | None = Field(default=None, exclude_if=_absent)
    generate: Generate | None = Field(default=None, exclude_if=_absent)
    #: Default: `required` with `generate`, else `auto`.
    approval: Approval | None = Field(default=None, exclude_if=_absent)

    @model_validator(mode="after")
    def _not_empty(self) -> Content:
        prompt = self.generate is not None and self.generate.prompt is not None
        if self.template is not None and self.text.strip():
            raise ValueError("give text or template, not both")
        if prompt and self.template is None and self.text.strip():
            raise ValueError("generate.prompt makes the text: leave text out, or give a "
                             "template that places {{ generated }}")
        if self.source is not None and self.template is None and not prompt:
            raise ValueError("a feed's items reach the post only through template or "
                             "generate.prompt")
        if not self.generated and not self.text.strip() and not self.media:
            raise ValueError("text or media is required")
        return self

    @property
    def generated(self) -> bool:
        """Made per occurrence, by the generation lane (DESIGN §10)."""
        return self.template is not None or self.generate is not None

    @property
    def approval_required(self) -> bool:
        if self.approval is not None:
            return self.approval == "required"
        return self.generate is not None

    def written(self, text: str, media: list[Media]) -> Content:
        """The content to publish: `text`, the written media then `media`, no generator."""
        return Content(text=text, title=self.title, media=[*self.media, *media],
                       thread=self.thread)


def generates(post: Mapping[str, Any]) -> bool:
    """Whether the post's content is made per occurrence (`Content.generated`)."""
    content: Mapping[str, Any] = post["content"]
    return "template" in content or "generate" in content


def generate_ahead(post: Mapping[str, Any]) -> timedelta:
    """How long before each occurrence its content is generated; none for written content."""
    return timedelta(seconds=post.get("generate_ahead_seconds", 0)) if generates(post) \
        else timedelta(0)


class AtSchedule(Strict):
    at: UtcDatetime


class CronSchedule(Strict):
    cron: str
    timezone: str = "UTC"
    start_at: UtcDatetime | None = None
    end_at: UtcDatetime | None = None

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("must be a 5-field cron expression, e.g. '0 9 * * 1-5'")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as 'Europe/Berlin'") from exc
        return value

    @model_validator(mode="after")
    def _ordered(self) -> CronSchedule:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


Schedule = AtSchedule | CronSchedule


PlatformName = Literal[
    "webhook", "mastodon", "bluesky", "x", "linkedin", "facebook", "instagram", "telegram",
    "discord", "slack", "tiktok", "youtube",
]


def schedule_from_doc(doc: dict[str, Any]) -> Schedule:
    if "at" in doc:
        return AtSchedule.model_validate(doc)
    return CronSchedule.model_validate(doc)
