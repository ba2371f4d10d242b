"""The Redis client a `REDIS_URL` names: one server (`redis://`, `rediss://`, `unix://`) or a
Redis Cluster (`redis+cluster://host:port`, `rediss+cluster://…`, any node; the client finds
the others and follows the slots as they move).

Herald uses the part of the client API that redis-py's standalone and cluster clients share
(single-slot commands and scripts, non-transactional pipelines, pub/sub), so the cluster client
stands in for `Redis` everywhere; `make cluster-redis-cluster` runs the cluster tests on a real
three-master cluster to hold that claim. Every key a Herald cluster writes carries its name as
the hash tag (`shared/keys.py`), so all of them live in one slot, on one master.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

#: Herald's cluster URL schemes, and the redis-py scheme each stands for.
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

#: What a Redis outage raises. The cluster client's own errors (a slot no master serves, a
#: cluster it cannot map) are not `RedisError`s, yet are outages all the same.
REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def cluster_url(url: str) -> str | None:
    """The plain `redis://` URL redis-py's cluster client takes when `url` names a cluster;
    None for a single server."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    return f"{plain}://{rest}" if plain else None


def connect(url: str, **options: Any) -> Redis:
    """A client for the server or cluster `url` names (connections are opened on first use)."""
    plain = cluster_url(url)
    if plain is None:
        return Redis.from_url(url, **options)
    return cast(Redis, RedisCluster.from_url(plain, **options))


async def pin_to_slot(client: Redis, key: str) -> None:
    """On a cluster, send the keyless commands (TIME, PING) to the master serving `key`'s slot:
    the clock Herald reads is then the clock its scripts run on, and `/readyz` pings the node
    Herald depends on. Nothing to do on a single server."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        node = client.get_node_from_key(key)
        if node is not None:
            client.set_default_node(node)
