"""Fixtures of the cluster tests: Herald nodes as real processes (tools/localcluster.py) on the
session's servers, with timings shortened so failover and retries happen within seconds."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from shared.redis_client import cluster_url
from tests.redis_support import sync_redis
from tools.localcluster import Cluster

#: Election, lease and retry timings short enough for a test, long enough for a loaded machine.
FAST = {
    "HERALD_LEADER_TTL_SECONDS": "2",
    "HERALD_LEASE_TTL_SECONDS": "10",
    "HERALD_RETRY_BASE_SECONDS": "0.5",
    "HERALD_LIGHT_SWEEP_SECONDS": "10",
    # Logs are the post-mortem of a failed run; they go to files, not to the test output.
    "HERALD_LOG_LEVEL": "info",
}


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test failed, so the cluster fixture shows the logs only then."""
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture
def cluster_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **FAST}


@pytest.fixture
def cluster(
    cluster_env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """A cluster with no nodes yet, on the session's servers (see `managed_cluster`)."""
    with managed_cluster(cluster_env, tmp_path, request) as made:
        yield made


@contextlib.contextmanager
def managed_cluster(
    env: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    """A cluster with no nodes yet; afterwards every child is stopped by PID, the logs are shown
    if the test failed, and the test's database and Redis keys are removed. Fixtures that give
    a test servers of its own build their cluster with this, on their environment."""
    made = Cluster(env, workdir=tmp_path / "cluster")
    try:
        yield made
    finally:
        made.stop()
        if request.node.stash.get(FAILED, False):
            print(made.log_tails(60))
        _forget(env)
    if cluster_url(env["REDIS_URL"]) is not None:
        refused = _slot_errors(made)
        assert not refused, f"Redis Cluster refused keys outside one slot: {refused[:5]}"


#: How Redis Cluster (or redis-py's cluster client, before sending) refuses a command or a
#: script whose keys are not all in one slot, or not on the node asked.
SLOT_ERRORS = ("CROSSSLOT", "hash to the same slot", "non local key", "map to the same key slot")


def _slot_errors(made: Cluster) -> list[str]:
    """The lines of the nodes' logs where a slot error surfaced: the hash-tag claim (DESIGN §5)
    broken somewhere the tests passed over."""
    return [line for node in made.nodes if node.log_path.exists()
            for line in node.log_path.read_text(errors="replace").splitlines()
            if any(error in line for error in SLOT_ERRORS)]


def _forget(env: dict[str, str]) -> None:
    mongo: MongoClient[dict[str, object]] = MongoClient(env["MONGODB_URI"])
    try:
        mongo.drop_database(mongo.get_default_database().name)
    finally:
        mongo.close()
    client = sync_redis(env["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=f"herald:{{{env['HERALD_CLUSTER_NAME']}}}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
