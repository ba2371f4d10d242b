"""The rendezvous that writes a claimed batch's outcomes together (shared.coalesce)."""

from __future__ import annotations

import asyncio

import pytest

from shared.coalesce import Rendezvous


class Calls:
    """A batch function that records each batch it was called with."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def __call__(self, keys: list[str]) -> list[str]:
        self.batches.append(list(keys))
        if self.fail:
            raise ConnectionError("the store went away")
        return [key.upper() for key in keys]


async def test_one_call_once_every_seat_has_asked_or_left() -> None:
    calls = Calls()
    rendezvous: Rendezvous[str, str] = Rendezvous(calls, wait=3600)
    seats = [rendezvous.seat() for _ in range(4)]
    first = seats[0].ask("a")
    await asyncio.sleep(0.01)
    second = seats[1].ask("b")
    seats[2].leave()
    assert calls.batches == [] and not first.done()
    last = seats[3].ask("d")
    async with asyncio.timeout(5):  # a liveness guard: with an hour's wait only the seats send
        assert await asyncio.gather(first, second, last) == ["A", "B", "D"]
    assert calls.batches == [["a", "b", "d"]]


async def test_a_seat_that_never_asks_holds_the_others_back_only_for_the_wait() -> None:
    calls = Calls()
    rendezvous: Rendezvous[str, str] = Rendezvous(calls, wait=0.05)
    fast = [rendezvous.seat() for _ in range(3)]
    slow = rendezvous.seat()
    answers = [seat.ask(key) for seat, key in zip(fast, "xyz", strict=True)]
    await asyncio.sleep(0)
    assert calls.batches == []
    async with asyncio.timeout(5):
        assert await asyncio.gather(*answers) == ["X", "Y", "Z"]
    assert await slow.ask("s") == "S"
    assert calls.batches == [["x", "y", "z"], ["s"]]


async def test_a_failed_call_fails_each_of_its_askers() -> None:
    calls = Calls(fail=True)
    rendezvous: Rendezvous[str, str] = Rendezvous(calls, wait=3600)
    seats = [rendezvous.seat() for _ in range(2)]
    answers = [seat.ask(key) for seat, key in zip(seats, "pq", strict=True)]
    for answer in answers:
        with pytest.raises(ConnectionError):
            await answer
    assert calls.batches == [["p", "q"]]


async def test_a_seat_asks_once() -> None:
    rendezvous: Rendezvous[str, str] = Rendezvous(Calls(), wait=3600)
    seat, other = rendezvous.seat(), rendezvous.seat()
    answer = seat.ask("a")
    seat.leave()  # after asking, leaving changes nothing: the other seat is still awaited
    await asyncio.sleep(0.01)
    assert not answer.done()
    with pytest.raises(RuntimeError):
        seat.ask("again")
    other.leave()
    assert await answer == "A"
