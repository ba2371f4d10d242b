"""Coalesced per-document calls against the real store: calls made in the same turn of the
event loop share one command, and every caller gets its own answer (or error)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import OperationFailure

from shared.coalesce import reader, updater
from shared.store import Doc
from tests.conftest import ServerUrls


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def posts(servers: ServerUrls, isolation: str) -> AsyncIterator[tuple[Any, Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(servers.mongodb_uri,
                                                     event_listeners=[commands])
    collection = client[isolation]["posts"]
    await collection.insert_many([{"_id": f"p{i}", "status": "scheduled"} for i in range(20)])
    commands.names.clear()
    yield collection, commands
    await client.drop_database(isolation)
    await client.close()


async def test_reads_in_one_turn_share_one_query(posts: tuple[Any, Commands]) -> None:
    collection, commands = posts
    read = reader(collection)
    wanted = ["p3", "p3", "p7", "absent", *[f"p{i}" for i in range(10, 20)]]
    docs = await asyncio.gather(*(read.load(i) for i in wanted))
    assert commands.names == ["find"]
    assert [d and d["_id"] for d in docs] == [None if i == "absent" else i for i in wanted]


async def test_a_later_read_sees_a_later_write(posts: tuple[Any, Commands]) -> None:
    collection, commands = posts
    read = reader(collection)
    assert (await read.load("p1") or {})["status"] == "scheduled"
    await collection.update_one({"_id": "p1"}, {"$set": {"status": "cancelled"}})
    assert (await read.load("p1") or {})["status"] == "cancelled"
    assert commands.names == ["find", "update", "find"]


async def test_updates_in_one_turn_share_one_command(posts: tuple[Any, Commands]) -> None:
    collection, commands = posts
    await collection.update_one({"_id": "p2"}, {"$set": {"status": "paused"}})
    commands.names.clear()
    complete = updater(collection, {"status": "scheduled"},
                       lambda: {"$set": {"status": "completed"}})
    await asyncio.gather(*(complete.load(f"p{i}") for i in range(5)))
    assert commands.names == ["update"]
    statuses = {d["_id"]: d["status"] async for d in collection.find({"_id": {"$in": [
        "p0", "p1", "p2", "p3", "p4", "p5"]}})}
    assert statuses == {"p0": "completed", "p1": "completed", "p2": "paused",
                        "p3": "completed", "p4": "completed", "p5": "scheduled"}


async def test_every_caller_gets_the_batch_error(posts: tuple[Any, Commands]) -> None:
    collection, _ = posts
    broken = updater(collection, {}, lambda: {"$no_such_operator": {"status": "x"}})
    results = await asyncio.gather(broken.load("p1"), broken.load("p2"), return_exceptions=True)
    assert all(isinstance(r, OperationFailure) for r in results), results
    assert (await collection.find_one({"_id": "p1"}) or {})["status"] == "scheduled"
