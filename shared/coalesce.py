"""Per-document MongoDB calls, coalesced by aiodataloader: the calls asked for in the same turn
of the event loop go out as one batch call. A burst of due jobs then reads its posts and
accounts, and completes its posts, in a few round trips instead of one per job; round trips are
what an executor's CPU goes on (bench/results.md). Nothing is cached: every load is a read made
no earlier than the call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiodataloader import DataLoader
from pymongo.asynchronous.collection import AsyncCollection

from shared.store import Doc


def reader(collection: AsyncCollection[Doc]) -> DataLoader[Any, Doc | None]:
    """Documents by `_id` (None when absent). Callers loading the same document at once share
    one dict: treat it as read-only."""
    async def read(ids: list[Any]) -> list[Doc | None]:
        found = {doc["_id"]: doc async for doc in collection.find({"_id": {"$in": ids}})}
        return [found.get(doc_id) for doc_id in ids]
    return DataLoader(read, cache=False)


def updater(collection: AsyncCollection[Doc], where: Doc,
            update: Callable[[], Doc]) -> DataLoader[Any, None]:
    """One conditional update (`where` plus the `_id`) applied to every id loaded."""
    async def apply(ids: list[Any]) -> list[None]:
        await collection.update_many({"_id": {"$in": ids}, **where}, update())
        return [None] * len(ids)
    return DataLoader(apply, cache=False)
