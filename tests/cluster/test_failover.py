"""The leader dies (SIGKILL, no handover) while posts are due: a standby takes over within the
leader ttl and every post is still published exactly once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.cluster.support import (
    assert_exactly_once,
    assert_one_success_each,
    create_posts,
    describe_lateness,
    job_ids,
    lateness,
    leader_with_standby,
    schedule,
    wait_delivered,
    wait_succeeded,
)
from tools.localcluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180, method="signal")]

POSTS = 100
LEADER_TTL = 2.0
#: Slack on top of the ttl for the standby's retry interval (ttl/5) and our polling.
TAKEOVER_SLACK = 1.0


def test_leader_killed_while_posts_due(cluster: Cluster) -> None:
    """Nodes: `herald scheduler` alone (the leader: started first and elected before anyone
    else runs), `herald all` (the standby scheduler, an executor, recovery) and `herald
    executor`. The window check runs every second with a 1.5 s horizon, so posts due later than
    that at creation are left to the leader's window check: the ones due after the kill depend
    on the successor's (or, late, on a light sweep). A new leader must be named by `GET
    /cluster` within ttl + 1 s of the kill (the key expires at most one ttl after the last
    renewal, and a standby retries every ttl/5); every post must then arrive exactly once, and
    the epoch must have risen."""
    assert cluster.env["HERALD_LEADER_TTL_SECONDS"] == str(int(LEADER_TTL))
    setup = leader_with_standby(
        cluster, {"HERALD_WINDOW_INTERVAL_SECONDS": "1", "HERALD_WINDOW_MARGIN_SECONDS": "0.5"})
    receiver, leader, standby = setup.receiver, setup.leader, setup.standby
    first_epoch, account_id = setup.epoch, setup.account_id
    posts = create_posts(cluster, account_id, schedule(POSTS, start=1, spread=6), node=standby)
    jobs = job_ids(posts)
    assert cluster.leader() == "leader"

    time.sleep(1.0)  # some posts were published by now; most are still due
    killed_at = time.monotonic()
    leader.kill()
    now = datetime.now(UTC)
    still_due = sum(datetime.fromisoformat(p["schedule"]["at"]) > now for p in posts)
    assert still_due > 0, "the leader died after every post was due: nothing was tested"
    successor = cluster.wait_leader(timeout=LEADER_TTL + 10, not_in=("leader",), interval=0.05)
    takeover = time.monotonic() - killed_at
    print(f"\n{successor} leads {takeover:.2f}s after the leader was killed, "
          f"{still_due} of {POSTS} posts were still due then")
    assert successor == "standby"
    assert takeover <= LEADER_TTL + TAKEOVER_SLACK, f"takeover took {takeover:.2f}s"

    report = wait_delivered(receiver, jobs, timeout=60)
    assert_exactly_once(report, jobs)
    print(describe_lateness(lateness(report)))
    assert_one_success_each(wait_succeeded(cluster, account_id, jobs, timeout=30, node=standby))
    assert cluster.api("GET", "/cluster", node=standby)["leader"]["epoch"] > first_epoch
