"""The MongoDB-compatible dev server is a sound stand-in for what Herald relies on
(or, with MONGODB_URI set, real MongoDB passes the same checks)."""

from __future__ import annotations

import asyncio
import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient, MongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from shared.runtime import Runtime
from shared.store import Doc

JOBS = 2000
PROCESSES = 2
TASKS = 4


async def test_crud(runtime: Runtime) -> None:
    jobs = runtime.store.jobs
    await jobs.insert_one({"_id": "a", "state": "pending", "n": 1})
    assert (await jobs.find_one({"_id": "a"}) or {})["n"] == 1
    await jobs.update_one({"_id": "a"}, {"$set": {"state": "staged"}, "$inc": {"n": 2},
                                         "$push": {"log": "x"}})
    doc = await jobs.find_one({"_id": "a"})
    assert doc == {"_id": "a", "state": "staged", "n": 3, "log": ["x"]}
    assert (await jobs.delete_one({"_id": "a"})).deleted_count == 1
    assert await jobs.find_one({"_id": "a"}) is None


async def test_in_filters_on_ids_with_more_conditions(runtime: Runtime) -> None:
    """The shape staging uses (`{_id: {$in: [...]}, state: ...}`): the dev server serves it
    through the _id index, which must match exactly what a scan would."""
    jobs = runtime.store.db["in_filters"]
    await jobs.insert_many([{"_id": f"j{i}", "state": "pending" if i % 2 else "staged", "n": i}
                            for i in range(10)])
    wanted = ["j1", "j2", "j3", "j3", "j9", "absent", 7]
    found = await jobs.find({"_id": {"$in": wanted}, "state": "pending"}, sort=[("n", -1)]
                            ).to_list()
    assert [d["_id"] for d in found] == ["j9", "j3", "j1"]
    moved = await jobs.update_many({"_id": {"$in": wanted}, "state": "pending"},
                                   {"$set": {"state": "staged"}})
    assert moved.modified_count == 3
    assert await jobs.count_documents({"state": "pending"}) == 2
    assert await jobs.count_documents({"_id": {"$in": []}}) == 0
    # An operator other than a lone $in is left to the library's own matching.
    assert await jobs.count_documents({"_id": {"$in": ["j1", "j2"], "$ne": "j1"}}) == 1


async def test_unique_occurrence_index_rejects_duplicates(runtime: Runtime) -> None:
    when = datetime(2026, 11, 23, 8, tzinfo=UTC)
    job = {"post_id": "p", "account_id": "a", "scheduled_for": when}
    await runtime.store.jobs.insert_one({"_id": "1", **job})
    with pytest.raises(DuplicateKeyError):
        await runtime.store.jobs.insert_one({"_id": "2", **job})
    assert not await runtime.store.insert_job({"_id": "3", **job})
    assert await runtime.store.insert_job({"_id": "4", **job, "account_id": "b"})


async def test_datetimes_round_trip_as_utc(runtime: Runtime) -> None:
    when = datetime(2026, 11, 23, 8, 0, 0, 123000, tzinfo=UTC)
    await runtime.store.jobs.insert_one({"_id": "t", "due_at": when})
    assert (await runtime.store.jobs.find_one({"_id": "t"}) or {})["due_at"] == when


async def test_find_one_and_update_with_sort(runtime: Runtime) -> None:
    base = datetime(2026, 11, 23, tzinfo=UTC)
    scratch = runtime.store.db["scratch"]
    await scratch.insert_many(
        [{"_id": str(i), "state": "staged", "due_at": base + timedelta(minutes=10 - i)}
         for i in range(5)]
    )
    first = await scratch.find_one_and_update(
        {"state": "staged"}, {"$set": {"state": "running"}}, sort=[("due_at", 1)],
        return_document=ReturnDocument.AFTER,
    )
    assert first is not None and first["_id"] == "4" and first["state"] == "running"


async def test_sessions_are_supported(runtime: Runtime) -> None:
    """Drivers open sessions only when the handshake advertises them (APScheduler's MongoDB
    data store opens one per operation, bench/peers); commands carrying one work as before."""
    scratch = runtime.store.db["sessions"]
    async with runtime.store.client.start_session() as session:
        await scratch.insert_one({"_id": "s", "n": 1}, session=session)
        await scratch.update_one({"_id": "s"}, {"$inc": {"n": 1}}, session=session)
        assert (await scratch.find_one({"_id": "s"}, session=session) or {})["n"] == 2


async def test_fenced_update_rejects_a_stale_lease(runtime: Runtime) -> None:
    jobs = runtime.store.jobs
    await jobs.insert_one({"_id": "f", "state": "running", "lease_seq": 2})
    stale = await jobs.update_one({"_id": "f", "lease_seq": 1}, {"$set": {"state": "succeeded"}})
    assert stale.matched_count == 0
    fresh = await jobs.update_one({"_id": "f", "lease_seq": 2}, {"$set": {"state": "succeeded"}})
    assert fresh.matched_count == 1


def _claimer(
    uri: str, database: str, worker: int, results: multiprocessing.Queue[list[str]]
) -> None:
    async def claim_all() -> list[str]:
        client: AsyncMongoClient[Doc] = AsyncMongoClient(uri)
        jobs = client[database]["claims"]

        async def task(n: int) -> list[str]:
            won: list[str] = []
            for i in range(JOBS):
                doc = await jobs.find_one_and_update(
                    {"_id": f"job-{i}", "state": "staged"},
                    {"$set": {"state": "running", "owner": f"{worker}.{n}"},
                     "$inc": {"lease_seq": 1}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    won.append(doc["_id"])
            return won

        try:
            chunks = await asyncio.gather(*(task(n) for n in range(TASKS)))
        finally:
            await client.close()
        return [j for chunk in chunks for j in chunk]

    results.put(asyncio.run(claim_all()))


def test_racing_claims_claim_every_job_exactly_once(runtime: Runtime) -> None:
    uri = runtime.settings.mongodb_uri
    database = runtime.store.db.name
    with MongoClient(uri) as client:
        client[database]["claims"].insert_many(
            [{"_id": f"job-{i}", "state": "staged", "lease_seq": 0} for i in range(JOBS)]
        )
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[list[str]] = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(uri, database, w, results))
             for w in range(PROCESSES)]
    for proc in procs:
        proc.start()
    claimed = [job for _ in procs for job in results.get(timeout=240)]
    for proc in procs:
        proc.join(30)
    assert len(claimed) == JOBS
    assert len(set(claimed)) == JOBS
    with MongoClient(uri) as client:
        docs = list(client[database]["claims"].find({}, {"lease_seq": 1, "state": 1}))
    assert all(d["state"] == "running" and d["lease_seq"] == 1 for d in docs)
