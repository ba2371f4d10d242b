"""A batch's accepted posts written in chunks while the next posts are checked
(`POST /posts/batch`).

The store's work overlaps the node's: every `CHUNK` accepted posts go out on a task of their
own (the posts, their feeds' items seen, their first jobs, then the due ones queued), one chunk
after the other, while the request goes on checking. A chunk is in the record whole, or its
posts are answered as not created, saying what may be left of them; so a client sends again
exactly the posts that were not created, and none twice. A chunk once started is never
cancelled: a request that ends early still lets the chunks it started finish.
"""

from __future__ import annotations

import asyncio
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

#: Accepted posts per chunk: large enough that a chunk is a few milliseconds of the store's
#: work, small enough that most of a batch's writes overlap its checks (bench/results.md).
CHUNK = 250

#: Chunks being written; held here so that a request's end does not drop them.
_WRITING: set[asyncio.Task[None]] = set()


@dataclass(eq=False)
class Chunk:
    """Accepted posts written together; `failure` is set when they are not in the record."""

    posts: list[tuple[int, Doc, list[Doc]]] = field(default_factory=list)
    feeds: list[tuple[Doc, Fetched]] = field(default_factory=list)
    jobs: list[Doc] = field(default_factory=list)
    failure: BaseException | None = None
    #: Whether a write of the chunk may have reached the store before it failed.
    partial: bool = False


class ChunkedWrites:
    """The chunks of one batch, written in order, one at a time; after a chunk failed, the
    later ones are not tried (their posts are answered as not created, nothing stored)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._filling = Chunk()
        self._chunks: list[Chunk] = []
        self._last: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None

    def add(self, index: int, post: Doc, accounts: list[Doc], feed: Fetched | None) -> None:
        self._filling.posts.append((index, post, accounts))
        if feed is not None:
            self._filling.feeds.append((post, feed))
        if len(self._filling.posts) >= CHUNK:
            self._start()

    async def finish(self) -> list[Chunk]:
        """Every chunk, once all are written or have failed."""
        if self._filling.posts:
            self._start()
        if self._last is not None:
            await asyncio.shield(self._last)
        return self._chunks

    def _start(self) -> None:
        chunk, self._filling = self._filling, Chunk()
        self._chunks.append(chunk)
        task = asyncio.create_task(self._write(chunk, self._last))
        _WRITING.add(task)
        task.add_done_callback(_WRITING.discard)
        self._last = task

    async def _write(self, chunk: Chunk, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        if self._failed is not None:  # the store just failed: no chunk waits for it again
            chunk.failure = self._failed
            return
        rt = self._rt
        try:
            live = [(post, accounts) for _, post, accounts in chunk.posts
                    if post["status"] == PostStatus.SCHEDULED]
            jobs, markers = plan_new(rt, live, effects.horizon(rt))
            chunk.partial = True
            await rt.store.posts.insert_many([post for _, post, _ in chunk.posts],
                                             ordered=False)
            for post, feed in chunk.feeds:
                await effects.seed_feed(rt, post, feed)
            await insert_new(rt, jobs, markers)
        except Exception as exc:  # the chunk's posts are answered as not created
            chunk.failure = self._failed = exc
            log.exception("batch_chunk_not_written", posts=len(chunk.posts),
                          partial=chunk.partial)
            return
        chunk.jobs = jobs
        try:
            await effects.stage_new(rt, jobs)
        except Exception:  # the jobs are in the record: the window check and the sweeps queue them
            log.exception("batch_chunk_queueing_left_to_the_sweeps", jobs=len(jobs))


def not_created(index: int, exc: BaseException, post_id: str | None = None) -> BatchResult:
    """A post that a fault, not its content, kept from being created; `post_id` names what may
    be stored of it."""
    status: Literal[500, 503] = 503 if isinstance(exc, UNAVAILABLE) else 500
    code, why = ("unavailable", "MongoDB or Redis is unreachable") if status == 503 \
        else ("internal_error", "internal error; see the server log")
    if post_id is None:
        message = f"not created: {why}; nothing of it was stored, so send it again"
    else:
        message = (f"not created: {why}; it may be stored in part as post {post_id}: cancel "
                   f"that (POST /posts/{post_id}/cancel) before sending it again")
    return BatchResult(index=index, status=status,
                       error=ErrorInfo(code=code, message=message))
