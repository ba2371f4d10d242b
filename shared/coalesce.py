"""Per-document MongoDB calls, coalesced: the calls asked for in the same turn of the event loop
go out as one batch call. A burst of due jobs then reads its posts and accounts, and completes
its posts, in a few round trips instead of one per job; round trips are what an executor's CPU
goes on (bench/results.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from pymongo.asynchronous.collection import AsyncCollection

from shared.store import Doc

T = TypeVar("T")
Batch = Callable[[list[Any]], Awaitable[Mapping[Any, T]]]


class Coalescer(Generic[T]):
    def __init__(self, batch: Batch[T]) -> None:
        self._batch = batch
        self._waiting: dict[Any, list[asyncio.Future[T | None]]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, key: Any) -> T | None:
        """The batch call's result for `key` (None when it has none), from a call made no
        earlier than this one."""
        loop = asyncio.get_running_loop()
        if not self._waiting:
            loop.call_soon(self._flush)
        future: asyncio.Future[T | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._run(waiting))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, waiting: dict[Any, list[asyncio.Future[T | None]]]) -> None:
        futures = [f for fs in waiting.values() for f in fs]
        try:
            results = await self._batch(list(waiting))
        except Exception as exc:  # each caller sees the error its own call would have raised
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, keyed in waiting.items():
            for future in keyed:
                if not future.done():
                    future.set_result(results.get(key))


def reader(collection: AsyncCollection[Doc]) -> Coalescer[Doc]:
    """Documents by `_id`. Callers asking for the same document at once share one dict: treat
    it as read-only."""
    async def read(ids: list[Any]) -> Mapping[Any, Doc]:
        return {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": ids}})}
    return Coalescer(read)


def updater(collection: AsyncCollection[Doc], where: Doc,
            update: Callable[[], Doc]) -> Coalescer[None]:
    """One conditional update (`where` plus the `_id`) applied to every id asked for."""
    async def apply(ids: list[Any]) -> Mapping[Any, None]:
        await collection.update_many({"_id": {"$in": ids}, **where}, update())
        return {}
    return Coalescer(apply)
