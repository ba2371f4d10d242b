"""What the cluster tests share: a webhook account, posts created in bulk through the API,
waiting on the receiver, and reading every job back through the API."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from tools.localcluster import Cluster, Node, Receiver


def webhook_account(cluster: Cluster, receiver: Receiver, node: Node | None = None) -> str:
    account = cluster.api("POST", "/accounts", {
        "platform": "webhook", "name": "cluster-test-hook",
        "config": {"url": receiver.hook_url}, "credentials": {"secret": receiver.secret},
    }, node=node)
    return str(account["id"])


def schedule(count: int, start: float, spread: float) -> list[datetime]:
    """`count` times evenly spread over `spread` seconds, the first `start` seconds from now."""
    first = datetime.now(UTC) + timedelta(seconds=start)
    return [first + timedelta(seconds=spread * i / count) for i in range(count)]


def create_posts(
    cluster: Cluster, account_id: str, times: Sequence[datetime], *, node: Node | None = None,
    workers: int = 8, min_lead: float = 1.0,
) -> list[dict[str, Any]]:
    """One single-job post per time, `workers` requests in flight; the API's answers. A post
    is due at least `min_lead` seconds after its request, so a slow machine falling behind the
    planned times does not show up as Herald's lateness. Without `node` the requests go
    round-robin over every scheduler node, so each one's API stages jobs."""

    def create(i_at: tuple[int, datetime]) -> dict[str, Any]:
        i, at = i_at
        at = max(at, datetime.now(UTC) + timedelta(seconds=min_lead))
        post: dict[str, Any] = cluster.api("POST", "/posts", {
            "account_ids": [account_id], "content": {"text": f"cluster test post {i}"},
            "schedule": {"at": at.isoformat()},
        }, node=node)
        assert len(post["jobs"]) == 1, post
        return post

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(create, enumerate(times)))


def job_ids(posts: Sequence[dict[str, Any]]) -> list[str]:
    return [str(post["jobs"][0]["id"]) for post in posts]


def wait_delivered(
    receiver: Receiver, job_ids: Sequence[str], timeout: float, settle: float = 3.0
) -> dict[str, Any]:
    """Poll the receiver until every job was accepted, then keep listening `settle` seconds so a
    late duplicate still shows up; the receiver's final report. Fails naming what is missing."""
    deadline = time.monotonic() + timeout
    while True:
        report = receiver.deliveries()
        missing = sorted(set(job_ids) - set(report["accepted"]))
        if not missing:
            time.sleep(settle)
            return receiver.deliveries()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(job_ids)} jobs not delivered within {timeout:.0f}s: "
                f"{missing[:50]}{' ...' if len(missing) > 50 else ''}")
        time.sleep(1.0)


def assert_exactly_once(report: dict[str, Any], job_ids: Sequence[str]) -> None:
    """Every job accepted once, nothing else arrived, and no request was refused."""
    counts: dict[str, int] = report["counts"]
    repeated = {k: n for k, n in counts.items() if n != 1}
    assert not repeated, f"jobs delivered more than once: {repeated}"
    unexpected = sorted(set(counts) - set(job_ids))
    assert not unexpected, f"deliveries for unknown keys: {unexpected}"
    refused = [d for d in report["deliveries"] if d["outcome"] != "accepted"]
    assert not refused, f"requests the receiver did not accept: {refused[:10]}"
    assert sorted(report["accepted"]) == sorted(job_ids)


def all_jobs(cluster: Cluster, account_id: str, node: Node | None = None) -> list[dict[str, Any]]:
    """Every job of the account, page by page through `GET /jobs`."""
    jobs: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = f"/jobs?account_id={account_id}&limit=500" + (f"&after={after}" if after else "")
        page = cluster.api("GET", query, node=node)
        jobs += page["items"]
        after = page["next"]
        if after is None:
            return jobs


def wait_succeeded(
    cluster: Cluster, account_id: str, job_ids: Sequence[str], timeout: float,
    node: Node | None = None,
) -> list[dict[str, Any]]:
    """Poll until the record says every job succeeded (the write after a delivery may trail it
    by a moment); the jobs. Fails listing the jobs in any other state."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = all_jobs(cluster, account_id, node)
        unfinished = {j["id"]: j["state"] for j in jobs if j["state"] != "succeeded"}
        if sorted(j["id"] for j in jobs) == sorted(job_ids) and not unfinished:
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(jobs)} jobs listed for {len(job_ids)} created; not succeeded: "
                f"{dict(list(unfinished.items())[:50])}")
        time.sleep(1.0)


def assert_one_success_each(jobs: Sequence[dict[str, Any]]) -> None:
    """Herald's own record agrees: exactly one attempt per job ended in success."""
    twice = [j["id"] for j in jobs if sum(a["outcome"] == "succeeded" for a in j["attempts"]) != 1]
    assert not twice, f"jobs whose attempt history does not show exactly one success: {twice}"


def lateness(report: dict[str, Any]) -> list[float]:
    """Seconds from each accepted delivery's scheduled time to its arrival at the receiver."""
    return sorted(
        d["arrived_at"] - datetime.fromisoformat(d["scheduled_for"]).timestamp()
        for d in report["deliveries"] if d["outcome"] == "accepted"
    )


def describe_lateness(values: Sequence[float]) -> str:
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return (f"lateness over {len(values)} deliveries: p50 {statistics.median(values):.3f}s, "
            f"p99 {p99:.3f}s, max {values[-1]:.3f}s, min {values[0]:.3f}s")
