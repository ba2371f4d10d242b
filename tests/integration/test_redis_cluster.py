"""Herald on a three-master Redis Cluster (loopback, started for this module): every key it
writes sits in its cluster's one hash slot, every script touches only keys of that slot (the
server checks it), and pipelines, scripts in pipelines and pub/sub work through the cluster
client. DESIGN §5: "keys that one Lua script touches share a hash tag, so the same code runs
on Redis Cluster"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import redis
from redis.asyncio import RedisCluster
from redis.asyncio.lock import Lock
from redis.crc import key_slot

from shared.config import Settings, load_settings
from shared.keys import Keys
from shared.locks import RenewedLock
from shared.lua import NAMES, source
from shared.models import Priority
from shared.redis_client import cluster_url, connect
from shared.runtime import Runtime
from tools import devservers


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[devservers.RedisClusterServers]:
    made = devservers.start_redis_cluster(masters=3)
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
async def on_cluster(settings: Settings, redis_cluster: devservers.RedisClusterServers
                     ) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(settings.model_copy(update={"redis_url": redis_cluster.url}))
    try:
        yield rt
    finally:
        await rt.close()


def masters(made: devservers.RedisClusterServers) -> list[redis.Redis]:
    """A plain connection to each master: what one node holds, as that node answers."""
    return [redis.Redis(port=server.port) for server in made.servers]


def slot_owner(made: devservers.RedisClusterServers, key: str) -> int:
    """The port of the master serving `key`'s slot, as the cluster's slot map says."""
    client = redis.RedisCluster(host="127.0.0.1", port=made.servers[0].port)
    try:
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        assert node is not None
        return int(node.port)
    finally:
        client.close()


def every_key_name(keys: Keys) -> list[str]:
    return [keys.leader, keys.wake, keys.events, keys.generation, keys.sweep_lock,
            *keys.lanes, keys.generate_lane, keys.job_lock("j1"), keys.refresh_lock("a1"),
            keys.budget("account:a1"), keys.budget("account:a1:day"),
            keys.budget("hold:platform:x")]


def test_the_cluster_url_selects_the_cluster_client() -> None:
    assert cluster_url("redis+cluster://127.0.0.1:7000") == "redis://127.0.0.1:7000"
    assert cluster_url("rediss+cluster://u:p@h:7000") == "rediss://u:p@h:7000"
    assert cluster_url("redis://127.0.0.1:6379/0") is None
    assert cluster_url("unix:///run/redis.sock") is None
    assert isinstance(connect("redis+cluster://127.0.0.1:7000"), RedisCluster)
    assert not isinstance(connect("redis://127.0.0.1:6379/0"), RedisCluster)


def test_settings_take_a_cluster_url(env: dict[str, str], monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    for key, value in {**env, "REDIS_URL": "redis+cluster://127.0.0.1:7000"}.items():
        monkeypatch.setenv(key, value)
    assert load_settings().redis_url == "redis+cluster://127.0.0.1:7000"


@pytest.mark.parametrize("name", ["main", "prod-eu", "a{b", "x}y"])
def test_every_key_of_a_cluster_shares_one_slot(name: str) -> None:
    keys = Keys(name)
    slots = {key_slot(k.encode()) for k in every_key_name(keys)}
    assert slots == {key_slot(keys.prefix.encode())}


def test_keys_of_two_clusters_spread_over_the_slots() -> None:
    """The hash tag is the cluster's name, not a constant: two Herald clusters sharing one
    Redis Cluster need not share its busiest master."""
    slots = {key_slot(Keys(f"c{n}").leader.encode()) for n in range(20)}
    assert len(slots) == 20


def script_calls(keys: Keys) -> dict[str, tuple[list[str], list[str | int]]]:
    """Each script Herald runs, with the keys and arguments it is called with."""
    lock = keys.job_lock("j1")
    return {
        "pop_due": ([*keys.lanes, keys.generate_lane], [10, 0]),
        "stage": ([keys.lane(Priority.HIGH), keys.wake], [1, "j1"]),
        "stage_many": ([keys.generate_lane, keys.wake], [1, "generate:j1", 2, "generate:j2"]),
        "gcra": ([keys.budget("account:a1")], [1000, 1]),
        "daily_quota": ([keys.budget("account:a1:day")], [5]),
        "locks_acquire": ([lock, keys.job_lock("j2")], ["t1", 1000, "t2", 1000]),
        "locks_renew": ([lock, keys.job_lock("j2")], ["t1", 1000, "t2", 1000]),
        "locks_release": ([lock, keys.job_lock("j2")], ["t1", "t2"]),
        "lock_release": ([lock], ["token"]),
        "lock_extend": ([lock], ["token", 1000, "0"]),
        "lock_reacquire": ([lock], ["token", 1000]),
    }


def script_sources() -> dict[str, str]:
    return {**{n: source(n) for n in NAMES}, "lock_release": Lock.LUA_RELEASE_SCRIPT,
            "lock_extend": Lock.LUA_EXTEND_SCRIPT, "lock_reacquire": Lock.LUA_REACQUIRE_SCRIPT}


def test_every_script_touches_one_slot_as_the_cluster_checks_it(
        redis_cluster: devservers.RedisClusterServers) -> None:
    """Each script runs with a `#!lua` shebang on the master of Herald's slot: Redis ≥ 7 then
    refuses any key a script touches outside the slot of its declared keys, declared or not
    (an undeclared key elsewhere would also be "non local"). The control script, which
    touches a key of another slot, shows the check is live."""
    keys = Keys("hash-tag-check")
    owner = redis.Redis(port=slot_owner(redis_cluster, keys.prefix))
    try:
        calls = script_calls(keys)
        assert set(calls) == set(script_sources())
        for name, text in script_sources().items():
            names, args = calls[name]
            owner.eval("#!lua\n" + text, len(names), *names, *args)
        control = "#!lua\nredis.call('GET', KEYS[1]) return redis.call('GET', ARGV[1])"
        with pytest.raises(redis.ResponseError, match="same slot"):
            owner.eval(control, 1, keys.leader, "herald:{elsewhere}:x")
    finally:
        owner.flushall()
        owner.close()


async def test_herald_on_a_redis_cluster_keeps_every_key_in_its_slot(
        on_cluster: Runtime, redis_cluster: devservers.RedisClusterServers) -> None:
    """Herald's Redis work through the cluster client, each path once: staging (alone and in a
    pipeline, the first script use on a fresh node being a pipeline's), popping, the queue's
    pipelines, budgets, the leader lock and generation marker, events over pub/sub.
    Afterwards every key Herald left is on one master, in its cluster's slot; no CROSSSLOT or
    MOVED error surfaced on the way."""
    rt = on_cluster
    now = rt.clock.now_dt()
    async with rt.redis.pipeline(transaction=False) as pipe:
        for n in range(5):
            await rt.queue.stage(f"p{n}", now - timedelta(seconds=1), Priority.NORMAL,
                                 client=pipe)
        await pipe.execute()
    await rt.queue.stage("later", now + timedelta(hours=1), Priority.HIGH)
    assert await rt.queue.depth() == {"high": 1, "normal": 5}
    assert await rt.queue.contains(["p0", "later", "absent"]) == {"p0", "later"}
    assert (await rt.queue.overdue(rt.clock.now_ms()))[0] == 5
    popped = await rt.queue.pop(3)
    assert len(popped.job_ids) == 3 and popped.next_due_ms is not None
    await rt.queue.remove("later")

    assert await rt.budgets.take("account:a1", per_minute=60) == 0
    assert await rt.budgets.take_daily("account:a1", per_day=1) == 0
    assert await rt.budgets.take_daily("account:a1", per_day=1) > 0
    await rt.budgets.hold("account:a1", now + timedelta(minutes=1), now)
    assert (await rt.budgets.held_for_many([["account:a1", "platform:x"]]))[0] > 0

    leader = RenewedLock(rt.redis, rt.keys.leader, 5)
    assert await leader.acquire()
    assert await rt.redis.get(rt.keys.leader) == leader.token.encode()
    await leader.release()
    await rt.redis.set(rt.keys.generation, "g1", nx=True)

    async with rt.event_hub.subscription() as subscription:
        rt.events.emit({"type": "job.staged", "job_id": "p0"})
        await rt.events.flush()
        async with asyncio.timeout(10):
            assert await subscription.get() == [b'{"type":"job.staged","job_id":"p0"}']

    found = keys_in_one_slot(redis_cluster, rt.keys)
    assert len(found) >= 5  # lanes, budgets, daily quota, hold, generation


async def test_batch_locks_on_a_redis_cluster(
        on_cluster: Runtime, redis_cluster: devservers.RedisClusterServers) -> None:
    """The executor's batch of job locks, taken, renewed and released in one script call each."""
    rt = on_cluster
    locks = [RenewedLock(rt.redis, rt.keys.job_lock(f"j{n}"), 5) for n in range(3)]
    assert await RenewedLock.acquire_all(rt.scripts, locks) == [True, True, True]
    assert len(keys_in_one_slot(redis_cluster, rt.keys)) == 3
    await rt.redis.pexpire(locks[0].name, 1000)
    await RenewedLock.renew_all(rt.scripts, locks)
    assert await rt.redis.pttl(locks[0].name) > 4000
    assert all(lock.held for lock in locks)
    await RenewedLock.release_all(rt.scripts, locks)
    assert await rt.redis.exists(*(lock.name for lock in locks)) == 0


def keys_in_one_slot(made: devservers.RedisClusterServers, keys: Keys) -> list[bytes]:
    """Every key of the Herald cluster `keys` names, read from each master in turn; fails
    unless all of them are on one master and in the cluster's slot."""
    holders: dict[int, list[bytes]] = {}
    for server, node in zip(made.servers, masters(made), strict=True):
        try:
            found = list(node.scan_iter(match=f"{keys.prefix}:*"))
        finally:
            node.close()
        if found:
            holders[server.port] = found
    assert len(holders) == 1, f"Herald's keys on several masters: {holders}"
    (found,) = holders.values()
    assert {key_slot(k) for k in found} == {key_slot(keys.prefix.encode())}
    return found


async def test_a_publish_reaches_subscribers_on_every_master(
        on_cluster: Runtime, redis_cluster: devservers.RedisClusterServers) -> None:
    """Staging publishes on the wake channel from inside a script; a subscriber connected to
    any master hears it, so a node's subscription need not follow the slot."""
    rt = on_cluster
    subscribers = []
    for server in redis_cluster.servers:
        client = redis.asyncio.Redis(port=server.port)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(rt.keys.wake)
        subscribers.append((client, pubsub))
    try:
        await rt.queue.stage("first", rt.clock.now_dt() + timedelta(minutes=5), Priority.HIGH)
        for _, pubsub in subscribers:
            async with asyncio.timeout(10):
                message = None
                while message is None:
                    message = await pubsub.get_message(timeout=1.0)
            assert message["channel"] == rt.keys.wake.encode()
    finally:
        for client, pubsub in subscribers:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            await client.aclose()
