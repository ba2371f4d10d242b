"""Real servers for the whole suite: a redis-server and the MongoDB-compatible dev server
started on free loopback ports, or the real ones named by MONGODB_URI / REDIS_URL. With
TEST_REDIS_CLUSTER=1 the Redis started is a three-master Redis Cluster instead
(`make cluster-redis-cluster`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient

from shared.config import Settings, load_settings
from shared.runtime import Runtime
from tools import devservers

ADMIN_TOKEN = "test-admin-token"


@dataclass(frozen=True)
class ServerUrls:
    mongodb_uri: str
    redis_url: str


@pytest.fixture(scope="session")
def servers() -> Iterator[ServerUrls]:
    started: list[devservers.Server | devservers.RedisClusterServers] = []
    mongodb_uri = os.environ.get("MONGODB_URI")
    redis_url = os.environ.get("REDIS_URL")
    try:
        if not mongodb_uri:
            mongo = devservers.start_mongo()
            started.append(mongo)
            mongodb_uri = f"mongodb://127.0.0.1:{mongo.port}/"
        if not redis_url and os.environ.get("TEST_REDIS_CLUSTER") == "1":
            cluster = devservers.start_redis_cluster()
            started.append(cluster)
            redis_url = cluster.url
        elif not redis_url:
            redis = devservers.start_redis()
            started.append(redis)
            redis_url = f"redis://127.0.0.1:{redis.port}/0"
        yield ServerUrls(mongodb_uri, redis_url)
    finally:
        for server in started:
            server.stop()


def with_database(uri: str, name: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture
def isolation() -> str:
    """A fresh database and Redis key namespace per test, so tests never see each other."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def env(servers: ServerUrls, isolation: str) -> dict[str, str]:
    """The environment a Herald process of this test runs with."""
    return {
        "MONGODB_URI": with_database(servers.mongodb_uri, f"herald_test_{isolation}"),
        "REDIS_URL": servers.redis_url,
        "HERALD_ADMIN_TOKEN": ADMIN_TOKEN,
        "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
        "HERALD_CLUSTER_NAME": f"test-{isolation}",
        "HERALD_NODE_ID": f"test-node-{isolation}",
        "HERALD_LOG_LEVEL": os.environ.get("TEST_LOG_LEVEL", "warning"),
    }


@pytest.fixture
def settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in ("MONGODB_URI", "REDIS_URL", "HERALD_MONGODB_URI", "HERALD_REDIS_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_settings()


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(settings)
    try:
        yield rt
    finally:
        await rt.close()
        await _drop_database(settings.mongodb_uri)


async def _drop_database(uri: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    try:
        db = client.get_default_database()
        await client.drop_database(db.name)
    finally:
        await client.close()
