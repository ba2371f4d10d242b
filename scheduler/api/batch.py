"""Writing a batch's accepted posts (`POST /posts/batch`), and how a post is answered when a
fault, not its content, kept it from being created.

The posts go in with one `insert_many`, their feeds' items are counted seen, their first jobs
go in with another `insert_many`, and the due ones are queued. Should MongoDB fail during the
inserts, each post is answered as not created, naming the post that may be stored in part, so
that a client can cancel it before sending the post again. Should Redis fail once the jobs
are in the record, the posts are created all the same: the window check and the sweeps queue
jobs from the record. So the answer stays a 207 whatever fails after the checks, and a client
sends again exactly the posts not created, none twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from scheduler.api import effects
from scheduler.api.errors import UNAVAILABLE
from scheduler.api.schemas import BatchResult, ErrorInfo
from scheduler.planning import insert_new, plan_new
from shared.generation.feeds import Fetched
from shared.logging import get_logger
from shared.models import PostStatus
from shared.runtime import Runtime
from shared.store import Doc

log = get_logger(__name__)


@dataclass
class Accepted:
    """The posts of a batch that passed their checks, with their accounts and their feeds."""

    posts: list[tuple[int, Doc, list[Doc]]] = field(default_factory=list)
    feeds: list[tuple[Doc, Fetched]] = field(default_factory=list)


async def write(rt: Runtime, accepted: Accepted) -> tuple[list[Doc], BaseException | None]:
    """The accepted posts' first jobs, or the fault that kept the posts from being created."""
    live = [(post, accounts) for _, post, accounts in accepted.posts
            if post["status"] == PostStatus.SCHEDULED]
    jobs, markers = plan_new(rt, live, effects.horizon(rt))
    try:
        await rt.store.posts.insert_many([post for _, post, _ in accepted.posts], ordered=False)
        for post, feed in accepted.feeds:
            await effects.seed_feed(rt, post, feed)
        await insert_new(rt, jobs, markers)
    except Exception as exc:  # each post is answered as not created, naming what may be left
        log.exception("batch_not_written", posts=len(accepted.posts))
        return [], exc
    try:
        await effects.stage_new(rt, jobs)
    except Exception:  # the jobs are in the record: the window check and the sweeps queue them
        log.exception("batch_queueing_left_to_the_sweeps", jobs=len(jobs))
    return jobs, None


def not_created(index: int, post_id: str, exc: BaseException) -> BatchResult:
    """A post whose writes failed: 503 when MongoDB or Redis was unreachable, else 500."""
    status: Literal[500, 503]
    if isinstance(exc, UNAVAILABLE):
        status, code, why = 503, "unavailable", "MongoDB or Redis is unreachable"
    else:
        status, code, why = 500, "internal_error", "internal error; see the server log"
    message = (f"not created: {why}; it may be stored in part as post {post_id}: cancel that "
               f"(POST /posts/{post_id}/cancel) before sending it again")
    return BatchResult(index=index, status=status, error=ErrorInfo(code=code, message=message))
