"""The due queue on a real Redis: many jobs staged per script call, the wake-up message sent
only when a lane's earliest entry changes, and generation entries popped after publishes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from shared.runtime import Runtime


async def wake_messages(rt: Runtime, staging: Callable[[], Awaitable[None]]) -> list[int]:
    """The due times published on the wake channel while `staging` runs."""
    pubsub = rt.redis.pubsub()
    await pubsub.subscribe(rt.keys.wake)
    try:
        confirmed = await pubsub.get_message(timeout=5)
        assert confirmed is not None and confirmed["type"] == "subscribe"
        await staging()
        heard: list[int] = []
        while (message := await pubsub.get_message(timeout=0.3)) is not None:
            heard.append(int(message["data"]))
        return heard
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_many_jobs_are_staged_in_their_lanes_and_wake_only_for_a_new_head(
        runtime: Runtime) -> None:
    rt = runtime
    now = rt.clock.now_dt()
    later = [(f"n{i}", now + timedelta(seconds=10 + i), "normal") for i in range(2500)]
    heard = await wake_messages(rt, lambda: rt.queue.stage_many(
        [*later, ("h1", now + timedelta(seconds=30), "high")]))
    depth = await rt.queue.depth()
    assert depth == {"high": 1, "normal": 2500}
    # One message per lane whose head changed: the first of the 2,500 (in the first of three
    # calls) and the high lane's only entry.
    assert sorted(heard) == sorted([int((now + timedelta(seconds=10)).timestamp() * 1000),
                                    int((now + timedelta(seconds=30)).timestamp() * 1000)])
    # Entries behind the head wake nobody; one in front does.
    quiet = await wake_messages(rt, lambda: rt.queue.stage_many(
        [("n9999", now + timedelta(hours=1), "normal")]))
    assert quiet == []
    earlier = now + timedelta(seconds=1)
    heard = await wake_messages(rt, lambda: rt.queue.stage_many(
        [("n-first", earlier, "normal")]))
    assert heard == [int(earlier.timestamp() * 1000)]


async def test_generations_are_popped_after_publishes_and_apart_from_them(
        runtime: Runtime) -> None:
    rt = runtime
    due = rt.clock.now_dt() - timedelta(seconds=1)
    await rt.queue.stage_generations([("g1", due), ("g2", due)])
    await rt.queue.stage_many([("p1", due, "normal"), ("p2", due, "high")])
    popped = await rt.queue.pop(3)
    assert popped.job_ids == ["p2", "p1"]
    assert popped.generations == ["g1"]
    assert await rt.queue.generations_queued(["g1", "g2"]) == {"g2"}
    await rt.queue.remove("g2")
    assert await rt.queue.generations_queued(["g2"]) == set()
