"""The real platforms through a running cluster: every platform's emulator in a process of
its own, Herald nodes as processes, posts made through the admin API. The fault of a node
killed mid-publish on these platforms is in test_faults.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import FAST
from tests.cluster.support import (
    OAUTH_CLIENT_ENV,
    PlatformProcess,
    account_on,
    create_posts,
    job_ids,
    platform_processes,
    schedule,
    wait_settled,
)
from tools.localcluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180, method="signal")]

PLATFORMS = ["mastodon", "bluesky", "x", "linkedin", "facebook", "telegram", "discord", "slack"]
REFRESHING = ["bluesky", "x", "linkedin"]
TIMINGS = {**FAST, **OAUTH_CLIENT_ENV}


@pytest.fixture
def cluster_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **TIMINGS}


def wait_posts(emulator: PlatformProcess, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        posts: list[dict[str, Any]] = emulator.state()["posts"]
        if len(posts) >= count or time.monotonic() > deadline:
            return posts
        time.sleep(0.5)


def test_every_platform_publishes_through_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    with platform_processes(PLATFORMS, tmp_path) as emulators:
        cluster.add_node("all", node_id="node-a")
        cluster.add_node("executor", node_id="node-b")
        cluster.start()
        cluster.wait_leader(timeout=20)
        accounts = {p: account_on(cluster, e) for p, e in emulators.items()}
        posts = {p: create_posts(cluster, a, schedule(3, start=2, spread=1), workers=4)
                 for p, a in accounts.items()}
        for platform, emulator in emulators.items():
            made = wait_posts(emulator, 3, timeout=60)
            texts = sorted(p["text"] for p in made)
            assert texts == sorted(f"cluster test post {i}" for i in range(3)), (platform, made)
            jobs = wait_settled(cluster, accounts[platform], job_ids(posts[platform]), 30)
            assert {j["state"] for j in jobs} == {"succeeded"}, (platform, jobs)
            if platform != "slack":  # a Slack webhook answers without an id
                assert sorted(j["result"]["platform_post_id"] for j in jobs) == sorted(
                    str(p["id"]) for p in made), platform


def one_post(cluster: Cluster, account_id: str, text: str) -> str:
    post = cluster.api("POST", "/posts", {
        "account_ids": [account_id], "content": {"text": text},
        "schedule": {"at": (datetime.now(UTC) + timedelta(seconds=1)).isoformat()}})
    return str(post["jobs"][0]["id"])


def wait_job(cluster: Cluster, job_id: str, states: set[str], timeout: float = 60
             ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = cluster.api("GET", f"/jobs/{job_id}")
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job['state']}, not in {states}: {job}")
        time.sleep(0.5)


def test_platform_faults_through_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """Each platform's own 429 defers without an attempt (Meta's minutes and LinkedIn's
    midnight are left to the integration tests); an expired token is refreshed once; credentials
    refused for good wait for a PATCH, then publish."""
    with platform_processes(PLATFORMS, tmp_path) as emulators:
        cluster.add_node("all", node_id="node-a")
        cluster.add_node("executor", node_id="node-b")
        cluster.start()
        cluster.wait_leader(timeout=20)
        accounts = {p: account_on(cluster, e) for p, e in emulators.items()}

        limited = [p for p in PLATFORMS if p not in ("facebook", "linkedin")]
        jobs = {p: one_post(cluster, accounts[p], f"{p}: after a 429") for p in limited}
        for p in limited:
            emulators[p].control(rate_limit_next=1, retry_after=1)
        for p, job_id in jobs.items():
            done = wait_job(cluster, job_id, {"succeeded"})
            assert done["attempt_count"] == 0, (p, done)
            assert [a["outcome"] for a in done["attempts"]] == ["rate_limited", "succeeded"], p

        for p in REFRESHING:
            emulators[p].control(expire_tokens=True)
        jobs = {p: one_post(cluster, accounts[p], f"{p}: after a refresh") for p in REFRESHING}
        for p, job_id in jobs.items():
            wait_job(cluster, job_id, {"succeeded"})
            assert emulators[p].state()["refresh_calls"] == 1, p

        jobs = {p: one_post(cluster, accounts[p], f"{p}: once fixed") for p in PLATFORMS}
        for p in PLATFORMS:
            emulators[p].control(refuse_refresh=True, expire_next=1)
        for p, job_id in jobs.items():
            waiting = wait_job(cluster, job_id, {"retry_wait"})
            assert waiting["attempt_count"] == 0, (p, waiting)
            account = cluster.api("GET", f"/accounts/{accounts[p]}")
            assert account["status"] == "reauth_required", (p, account)
        for p, emulator in emulators.items():
            emulator.control(refuse_refresh=False)
            fresh = emulator.account()
            cluster.api("PATCH", f"/accounts/{accounts[p]}",
                        {"config": fresh["config"], "credentials": fresh["credentials"]})
        for job_id in jobs.values():
            wait_job(cluster, job_id, {"succeeded"})
        for p, emulator in emulators.items():
            texts = [post["text"] for post in emulator.state()["posts"]]
            assert sorted(set(texts)) == sorted(texts), (p, texts)
            assert f"{p}: once fixed" in texts, (p, texts)
