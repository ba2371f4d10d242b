"""The due queue: one Redis sorted set per priority lane, scored by due time in ms, and the
generation lane (DESIGN §10), scored by when a job's content is to be generated. The lanes are
popped together, publishing lanes first; a generation entry carries GENERATE before the job's
id, so a popped id says which work it is."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline

from shared.keys import LANES, Keys
from shared.lua import Scripts
from shared.models import Priority

#: Jobs per `stage_many` script call: far below the arguments Lua's `unpack` takes.
STAGE_CHUNK = 1000
#: What a generation lane entry carries before the job's id.
GENERATE = "generate:"


@dataclass(frozen=True)
class Popped:
    now_ms: int
    #: Due time of the earliest member left in any lane, or None when the queue is empty.
    next_due_ms: int | None
    job_ids: list[str]
    #: Jobs whose content is to be generated now.
    generations: list[str] = field(default_factory=list)


class DueQueue:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts

    async def stage(self, job_id: str, due: datetime, priority: Priority | str,
                    client: Redis | Pipeline | ClusterPipeline | None = None) -> None:
        """Add or move the job's entry; with a pipeline as `client`, only queue the command."""
        score = int(due.timestamp() * 1000)
        await self._scripts.stage(keys=[self._keys.lane(priority), self._keys.wake],
                                  args=[score, job_id], client=client)

    async def stage_many(self, entries: Iterable[tuple[str, datetime, Priority | str]]) -> None:
        """Add or move many jobs' entries (job id, due time, lane), one script call per lane
        and STAGE_CHUNK jobs, instead of one per job."""
        lanes: dict[str, list[str | int]] = defaultdict(list)
        for job_id, due, priority in entries:
            lanes[self._keys.lane(priority)] += [int(due.timestamp() * 1000), job_id]
        for lane, members in lanes.items():
            await self._stage_chunks(lane, members)

    async def stage_generations(self, entries: Iterable[tuple[str, datetime]]) -> None:
        """Queue many jobs' generations (job id, when), as `stage_many` does."""
        members: list[str | int] = []
        for job_id, at in entries:
            members += [int(at.timestamp() * 1000), GENERATE + job_id]
        await self._stage_chunks(self._keys.generate_lane, members)

    async def _stage_chunks(self, key: str, members: list[str | int]) -> None:
        for start in range(0, len(members), 2 * STAGE_CHUNK):
            await self._scripts.stage_many(keys=[key, self._keys.wake],
                                           args=members[start:start + 2 * STAGE_CHUNK])

    async def stage_generation(self, job_id: str, at: datetime,
                               client: Redis | Pipeline | ClusterPipeline | None = None) -> None:
        """Queue the generation of the job's content at `at` (or move it there)."""
        await self._scripts.stage(
            keys=[self._keys.generate_lane, self._keys.wake],
            args=[int(at.timestamp() * 1000), GENERATE + job_id], client=client)

    async def pop(self, limit: int, lead_ms: int = 0) -> Popped:
        """Pop up to `limit` jobs due within `lead_ms` from now, high lane first, then
        generations due by now."""
        raw = await self._scripts.pop_due(keys=[*self._keys.lanes, self._keys.generate_lane],
                                          args=[limit, lead_ms])
        now_ms, next_due = int(raw[0]), int(raw[1])
        ids = [r.decode() if isinstance(r, bytes) else str(r) for r in raw[2:]]
        return Popped(now_ms, None if next_due < 0 else next_due,
                      [i for i in ids if not i.startswith(GENERATE)],
                      [i.removeprefix(GENERATE) for i in ids if i.startswith(GENERATE)])

    async def remove(self, job_id: str) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys.lanes:
                pipe.zrem(key, job_id)
            pipe.zrem(self._keys.generate_lane, GENERATE + job_id)
            await pipe.execute()

    async def generations_queued(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs have their generation queued."""
        if not job_ids:
            return set()
        scores = await self._redis.zmscore(self._keys.generate_lane,
                                           [GENERATE + j for j in job_ids])
        return {j for j, s in zip(job_ids, scores, strict=True) if s is not None}

    async def contains(self, job_ids: list[str]) -> set[str]:
        """Which of these ids are in any lane (one pipelined ZMSCORE per lane)."""
        if not job_ids:
            return set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys.lanes:
                pipe.zmscore(key, job_ids)
            results = await pipe.execute()
        present: set[str] = set()
        for scores in results:
            present.update(j for j, s in zip(job_ids, scores, strict=True) if s is not None)
        return present

    async def depth(self) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys.lanes:
                pipe.zcard(key)
            counts = await pipe.execute()
        return {p.value: int(c) for p, c in zip(LANES, counts, strict=True)}

    async def overdue(self, now_ms: int) -> tuple[int, int | None]:
        """(count of members due before now, due time of the oldest), across lanes."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in self._keys.lanes:
                pipe.zcount(key, "-inf", now_ms)
                pipe.zrange(key, 0, 0, withscores=True)
            results = await pipe.execute()
        count, oldest = 0, None
        for i in range(0, len(results), 2):
            count += int(results[i])
            head = results[i + 1]
            if head and head[0][1] <= now_ms:
                score = int(head[0][1])
                oldest = score if oldest is None else min(oldest, score)
        return count, oldest
