"""Lua scripts, each in its own file, registered once per Redis client."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, KeyT

NAMES = ("pop_due", "stage", "stage_many", "gcra", "daily_quota", "locks_acquire", "locks_renew",
         "locks_release")


@cache
def source(name: str) -> str:
    return files(__package__).joinpath(f"{name}.lua").read_text()


class Script(AsyncScript):
    """redis-py's script, which may also be queued in a Redis Cluster pipeline. redis-py's
    cluster pipeline refuses EVALSHA (it cannot load a missing script mid-pipeline), and since
    Redis 7 a replica promoted by a failover has none of the scripts its master loaded, so
    there the script travels whole, as EVAL; the command is routed by its keys like any other.
    Everywhere else it is EVALSHA, loading the script when the server lacks it."""

    async def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | RedisCluster | Pipeline | ClusterPipeline | None = None,
    ) -> Any:
        if isinstance(client, ClusterPipeline):
            keys = list(keys or [])
            return client.execute_command("EVAL", self.script, len(keys), *keys, *(args or []))
        return await super().__call__(keys, args, client)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self.pop_due = Script(redis, source("pop_due"))
        self.stage = Script(redis, source("stage"))
        self.stage_many = Script(redis, source("stage_many"))
        self.gcra = Script(redis, source("gcra"))
        self.daily_quota = Script(redis, source("daily_quota"))
        self.locks_acquire = Script(redis, source("locks_acquire"))
        self.locks_renew = Script(redis, source("locks_renew"))
        self.locks_release = Script(redis, source("locks_release"))
