"""Per-document calls made as one batch call: by aiodataloader for the calls asked for in the
same turn of the event loop, and by a Rendezvous for a known group of callers that reach the
call at different times. A burst of due jobs then re-reads its posts, completes them and writes
its outcomes in a few round trips instead of one per job; round trips are what an executor's
CPU goes on (bench/results.md). Nothing is cached: every load is a read made no earlier than
the call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from aiodataloader import DataLoader
from pymongo.asynchronous.collection import AsyncCollection

from shared.store import Doc

K = TypeVar("K")
V = TypeVar("V")


async def by_id(collection: AsyncCollection[Doc], ids: list[Any],
                projection: Doc | None = None) -> dict[Any, Doc]:
    """The documents of `ids` that exist, in one read."""
    return {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": ids}},
                                                             projection=projection)}


def reader(collection: AsyncCollection[Doc],
           projection: Doc | None = None) -> DataLoader[Any, Doc | None]:
    """Documents by `_id` (None when absent). Callers loading the same document at once share
    one dict: treat it as read-only."""
    async def read(ids: list[Any]) -> list[Doc | None]:
        found = await by_id(collection, ids, projection)
        return [found.get(doc_id) for doc_id in ids]
    return DataLoader(read, cache=False)


def updater(collection: AsyncCollection[Doc], where: Doc,
            update: Callable[[], Doc]) -> DataLoader[Any, None]:
    """One conditional update (`where` plus the `_id`) applied to every id loaded."""
    async def apply(ids: list[Any]) -> list[None]:
        await collection.update_many({"_id": {"$in": ids}, **where}, update())
        return [None] * len(ids)
    return DataLoader(apply, cache=False)


class Rendezvous(Generic[K, V]):
    """One batch call for a known group of callers that reach it at different times (the jobs
    of one claimed batch, whose platform calls end a few milliseconds apart): sent once every
    seat has asked or left, or `wait` seconds after the first ask, so that a slow caller holds
    the others back no longer than that. What a turn of the event loop coalesces is only the
    callers that finish in the same turn."""

    def __init__(self, batch: Callable[[list[K]], Awaitable[list[V]]], wait: float) -> None:
        self._batch = batch
        self._wait = wait
        self._open = 0
        self._keys: list[K] = []
        self._answers: list[asyncio.Future[V]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def seat(self) -> Seat[K, V]:
        self._open += 1
        return Seat(self)

    def _ask(self, key: K) -> asyncio.Future[V]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[V] = loop.create_future()
        self._keys.append(key)
        self._answers.append(answer)
        if self._timer is None:
            self._timer = loop.call_later(self._wait, self._send)
        self._leave()
        return answer

    def _leave(self) -> None:
        self._open -= 1
        if self._open == 0 and self._keys:
            self._send()

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        keys, answers = self._keys, self._answers
        self._keys, self._answers = [], []
        task = asyncio.create_task(self._call(keys, answers), name="rendezvous")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _call(self, keys: list[K], answers: list[asyncio.Future[V]]) -> None:
        try:
            values = await self._batch(keys)
        except Exception as exc:
            for answer in answers:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for answer, value in zip(answers, values, strict=True):
            if not answer.done():
                answer.set_result(value)


class Seat(Generic[K, V]):
    """One caller's place at a Rendezvous: it asks once, or leaves without asking."""

    def __init__(self, rendezvous: Rendezvous[K, V]) -> None:
        self._rendezvous: Rendezvous[K, V] | None = rendezvous

    def ask(self, key: K) -> asyncio.Future[V]:
        rendezvous = self._rendezvous
        if rendezvous is None:
            raise RuntimeError("this seat has already asked or left")
        self._rendezvous = None
        return rendezvous._ask(key)

    def leave(self) -> None:
        """Give up the seat unless it has asked; the others no longer wait for it."""
        if self._rendezvous is not None:
            self._rendezvous._leave()
            self._rendezvous = None
