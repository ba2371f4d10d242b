"""Leader election on a real Redis, with the epoch in a real MongoDB store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from scheduler.election import LEADER_DOC, Election, Term
from shared.config import Settings
from shared.runtime import Runtime

TTL = 1.0


class Candidate:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.epochs: list[int] = []
        #: How each term's work ended: "returned" when it saw the term end, or "cancelled".
        self.endings: list[str] = []
        self.leading = asyncio.Event()
        #: How many of the next terms crash at once.
        self.crashes = 0
        self.election = Election(rt, self._lead)
        self.task: asyncio.Task[None] | None = None

    async def _lead(self, term: Term) -> None:
        self.epochs.append(term.epoch)
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("leader work crashed")
        self.leading.set()
        try:
            while await term.pause(60):
                pass
            self.endings.append("returned")
        except asyncio.CancelledError:
            self.endings.append("cancelled")
            raise
        finally:
            self.leading.clear()

    def start(self) -> None:
        self.task = asyncio.create_task(self.election.run())

    async def stop(self) -> None:
        await self.election.stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@pytest.fixture
async def candidates(settings: Settings) -> AsyncIterator[list[Candidate]]:
    made: list[Candidate] = []
    for name in ("a", "b"):
        rt = await Runtime.open(settings.model_copy(
            update={"node_id": f"node-{name}", "leader_ttl_seconds": TTL}))
        made.append(Candidate(rt))
    yield made
    for c in made:
        await c.stop()
        await c.rt.close()


async def wait_leader(candidates: list[Candidate], timeout: float = 5) -> Candidate:
    async with asyncio.timeout(timeout):
        while True:
            leaders = [c for c in candidates if c.leading.is_set()]
            if leaders:
                assert len(leaders) == 1
                return leaders[0]
            await asyncio.sleep(0.01)


async def test_one_leader_and_handover_on_stop(candidates: list[Candidate]) -> None:
    for c in candidates:
        c.start()
    first = await wait_leader(candidates)
    await asyncio.sleep(TTL * 1.5)  # renewals keep the same leader
    assert first.leading.is_set() and sum(c.leading.is_set() for c in candidates) == 1
    key = await first.rt.redis.get(first.rt.keys.leader)
    assert key is not None and key.decode().startswith(f"{first.rt.settings.node_id}:")

    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    await first.stop()
    second = await wait_leader([c for c in candidates if c is not first], timeout=TTL * 2)
    # The key was deleted on stop: the successor did not wait out the ttl.
    assert loop.time() - stopped_at < TTL
    assert second.epochs[0] == first.epochs[0] + 1
    doc = await second.rt.store.cluster.find_one({"_id": LEADER_DOC})
    assert doc is not None and doc["epoch"] == second.epochs[0]
    assert doc["node_id"] == second.rt.settings.node_id
    # The work saw its term end and returned: it was not cancelled (docs/decisions.md).
    assert first.endings == ["returned"]


async def test_leader_steps_down_when_its_key_is_taken(candidates: list[Candidate]) -> None:
    leader = candidates[0]
    leader.start()
    await wait_leader([leader])
    # Another holder overwrote the key (e.g. after a Redis failover lost it): renewal fails.
    await leader.rt.redis.set(leader.rt.keys.leader, "intruder:token", px=60_000)
    async with asyncio.timeout(TTL * 2):
        while leader.leading.is_set():
            await asyncio.sleep(0.01)
    assert await leader.rt.redis.get(leader.rt.keys.leader) == b"intruder:token"
    assert leader.endings == ["returned"]


async def test_a_crashed_term_lets_another_node_lead(candidates: list[Candidate]) -> None:
    """A leader whose work crashes waits a ttl before standing again, instead of raising the
    epoch in a loop: the other node takes over."""
    first, second = candidates
    first.crashes = 1
    first.start()
    async with asyncio.timeout(5):
        while not first.epochs:
            await asyncio.sleep(0.01)
    second.start()
    assert await wait_leader(candidates, timeout=TTL * 3) is second
    assert first.epochs == [second.epochs[0] - 1]
