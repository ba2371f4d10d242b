"""A synchronous Redis client for tests that read or clean Herald's keys directly, on a single
server or on a Redis Cluster alike (the REDIS_URL forms of `shared/redis_client.py`)."""

from __future__ import annotations

from typing import cast

import redis

from shared.redis_client import cluster_url


def sync_redis(url: str) -> redis.Redis:
    plain = cluster_url(url)
    if plain is None:
        return redis.Redis.from_url(url)
    return cast(redis.Redis, redis.RedisCluster.from_url(plain))
