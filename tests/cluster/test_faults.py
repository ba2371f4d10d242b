"""Faults while posts are due: a node killed or frozen, the leader killed in a window check,
Redis flushed or restarted, MongoDB restarted, a receiver failing or rate limiting, and a node
killed mid-publish on platforms without idempotency keys (checked against their emulators:
no post twice, unknown outcomes `unconfirmed` or found).

Every scenario checks the same promise (tests.cluster.support.check_deliveries): every post is
accepted by the receiver, each occurrence under exactly one key (its job's), each acceptance
within a lateness bound derived in the test's docstring from the timings below, and Herald's
record shows one success per job whose platform post id is the receiver's. Repeats of an
accepted key are the idempotent retries a fault may cause: they are counted and printed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.keys import Keys
from tests.cluster.conftest import FAST, managed_cluster
from tests.cluster.support import (
    OwnServer,
    account_on,
    assert_record_matches,
    check_deliveries,
    create_posts,
    due_times,
    job_ids,
    leader_with_standby,
    metric,
    paused,
    platform_processes,
    record,
    schedule,
    sleep_until,
    sweep_repairs,
    wait_delivered,
    wait_settled,
    wait_succeeded,
    webhook_account,
)
from tests.redis_support import sync_redis
from tools import devservers
from tools.localcluster import Cluster, Receiver, http_json

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(150, method="signal")]

#: FAST plus a lease and a sweep short enough that a lost lease is repaired within seconds.
TIMINGS = {**FAST, "HERALD_LEASE_TTL_SECONDS": "4", "HERALD_LIGHT_SWEEP_SECONDS": "2"}
LEASE_TTL = float(TIMINGS["HERALD_LEASE_TTL_SECONDS"])
SWEEP = float(TIMINGS["HERALD_LIGHT_SWEEP_SECONDS"])
LEADER_TTL = float(TIMINGS["HERALD_LEADER_TTL_SECONDS"])
RETRY_BASE = float(TIMINGS["HERALD_RETRY_BASE_SECONDS"])
#: What no timing setting covers on a loaded 2-core machine: a pop, a claim, the platform
#: call, a sweep's own run, and the second or so between our polls.
SLACK = 3.0
#: Herald's own constants the bounds rest on: the leader polls the Redis generation marker
#: every second (scheduler.role), a node retries Redis a second after an error
#: (executor.worker), and a MongoDB operation waits up to 5 s for a server (shared.store).
GENERATION_POLL = 1.0
REDIS_RETRY = 1.0
SERVER_SELECTION = 5.0


@pytest.fixture
def cluster_env(env: dict[str, str]) -> dict[str, str]:
    return {**env, **TIMINGS}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnServer]:
    """A redis-server of this test's own, which it may flush and restart."""
    server = OwnServer(lambda port: devservers.start_redis(port, log=tmp_path / "redis.log"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[OwnServer]:
    """A development MongoDB server of this test's own on the H2 backend, whose data outlives
    a restart."""
    server = OwnServer(lambda port: devservers.start_mongo(
        port, backend="h2", data=tmp_path / "db.h2", log=tmp_path / "mongo.log"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cluster(
    cluster_env: dict[str, str], own_redis: OwnServer, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    env = {**cluster_env, "REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0"}
    with managed_cluster(env, tmp_path, request) as made:
        yield made


@pytest.fixture
def mongo_cluster(
    cluster_env: dict[str, str], own_mongo: OwnServer, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    env = {**cluster_env, "MONGODB_URI": f"mongodb://127.0.0.1:{own_mongo.port}/herald_faults"}
    with managed_cluster(env, tmp_path, request) as made:
        yield made


def settle(
    cluster: Cluster, receiver: Receiver, account_id: str, posts: Sequence[dict[str, Any]], *,
    bound: float, outcomes: Sequence[str] = ("accepted", "repeat"),
) -> tuple[Counter[str], dict[str, Any], list[dict[str, Any]]]:
    """Wait until every job was accepted and the record says it succeeded; then check the
    receiver's report and the record (one transition to `succeeded` per job, too). Returns the
    repeats per key, the receiver's report and the jobs."""
    jobs = job_ids(posts)
    try:
        wait_delivered(receiver, jobs, timeout=bound + 30, settle=0)
    except AssertionError as exc:
        missing = sorted(set(jobs) - set(receiver.deliveries()["accepted"]))[:10]
        with record(cluster.env) as db:
            found = list(db["jobs"].find({"_id": {"$in": missing}},
                                         {"state": 1, "lease": 1, "due_at": 1, "transitions": 1}))
        raise AssertionError(f"{exc}\nwhat the record says of them: {found}") from None
    records = wait_succeeded(cluster, account_id, jobs, timeout=60)
    report = receiver.deliveries()
    repeats = check_deliveries(report, posts, lateness_bound=bound, outcomes=outcomes)
    assert_record_matches(records, report)
    with record(cluster.env) as db:
        successes = {j["_id"]: [t["state"] for t in j["transitions"]].count("succeeded")
                     for j in db["jobs"].find({"_id": {"$in": jobs}}, {"transitions": 1})}
    odd = {job: n for job, n in successes.items() if n != 1}
    assert not odd, f"jobs whose transitions show other than one success: {odd}"
    return repeats, report, records


def test_executor_killed_mid_publish(cluster: Cluster) -> None:
    """kill -9 of an executor while its requests are in flight (the receiver answers after
    2 s, and the kill comes 1 s after the first post is due). Its `publishing` jobs keep a
    lease nobody renews; once it expired, a light sweep on a surviving node reconciles them:
    the webhook honours idempotency keys, so each is retried under the same key, and the
    receiver answers a request that had arrived with a repeat.

    Lateness bound: a job the victim had claimed (due at most 1 s before the kill) but not yet
    sent waits for its lease to expire (LEASE_TTL) and the next sweep (SWEEP); one it had only
    popped is re-queued by a sweep but refused while its job lock lives (also LEASE_TTL), so
    it may take a second sweep (SWEEP); plus SLACK."""
    kill_after, bound = 1.0, 1.0 + LEASE_TTL + 2 * SWEEP + SLACK
    receiver = cluster.add_receiver()
    for n in range(2):
        cluster.add_node("all", node_id=f"survivor-{n}")
    victim = cluster.add_node("executor", node_id="victim")
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    receiver.control(delay=2.0)
    posts = create_posts(cluster, account_id, schedule(60, start=2, spread=2))

    sleep_until(due_times(posts)[0] + timedelta(seconds=kill_after))
    victim.kill()
    with record(cluster.env) as db:
        in_flight = db["jobs"].count_documents(
            {"state": "publishing", "lease.node_id": victim.node_id})
    arrived = len(receiver.deliveries()["deliveries"])
    print(f"\nkilled the victim with {in_flight} jobs publishing; {arrived} requests had "
          f"arrived at the receiver")
    assert in_flight > 0, "the victim had nothing in flight: nothing was tested"

    repeats, _, _ = settle(cluster, receiver, account_id, posts, bound=bound)
    repairs = sweep_repairs(cluster)
    print(f"sweep repairs: {dict(repairs)}")
    assert repairs["publishing_retried"] >= in_flight, repairs
    assert sum(repeats.values()) <= in_flight, "repeats of jobs the victim never held"


def test_executor_killed_mid_publish_on_platforms_without_idempotency_keys(
        cluster: Cluster, tmp_path: Path) -> None:
    """The webhook's retry under the same key is not open to Telegram, which can neither
    deduplicate nor be asked (its unknown outcomes become `unconfirmed`), nor to X, which can
    be searched (reconciliation finds the posts that landed and retries the rest). Either way
    no post appears twice.

    Both emulators hold each call 2 s before acting. The victim is the only executor while the
    posts are due, and it is killed once it has calls in flight on both platforms. Its
    `publishing` jobs are reconciled by the recovery node's sweep once their 4 s lease
    expired, and an executor started after the kill publishes what reconciliation queues."""
    with platform_processes(["telegram", "x"], tmp_path) as emulators:
        cluster.add_node("scheduler", node_id="survivor-scheduler")
        cluster.add_node("recovery", node_id="survivor-recovery")
        victim = cluster.add_node("executor", node_id="victim")
        cluster.start()
        cluster.wait_leader(timeout=20)
        # The operator's own pace replaces the platforms' cautious defaults, so a burst is
        # in flight at once.
        accounts = {p: account_on(cluster, e, rate_limit={"per_minute": 6000})
                    for p, e in emulators.items()}
        for emulator in emulators.values():
            emulator.control(delay=2.0)
        posts = {p: create_posts(cluster, a, schedule(12, start=2, spread=1), workers=4)
                 for p, a in accounts.items()}
        deadline = time.monotonic() + 30
        with record(cluster.env) as db:
            def publishing() -> dict[str, int]:
                return {p: db["jobs"].count_documents(
                    {"account_id": a, "state": "publishing", "lease.node_id": "victim"})
                    for p, a in accounts.items()}

            # A job is marked `publishing` a quarter of the executor's lead before its call
            # goes out, so the emulators are asked too: each counts the calls it holds.
            def in_flight_on_both() -> bool:
                return all(publishing().values()) and all(
                    e.state()["held"] > 0 for e in emulators.values())

            while not in_flight_on_both():
                assert time.monotonic() < deadline, (
                    f"the victim never had calls in flight on both platforms: {publishing()}")
                time.sleep(0.1)
            victim.kill()
            in_flight = publishing()
        print(f"\nkilled the victim with these jobs publishing: {in_flight}")
        for emulator in emulators.values():
            emulator.control(delay=0.0)
        cluster.add_node("executor", node_id="rescuer")
        cluster.start()

        telegram = wait_settled(cluster, accounts["telegram"], job_ids(posts["telegram"]), 90)
        x = wait_settled(cluster, accounts["x"], job_ids(posts["x"]), 90)
        for platform, emulator in emulators.items():
            texts = [p["text"] for p in emulator.state()["posts"]]
            twice = {t for t in texts if texts.count(t) > 1}
            assert not twice, f"{platform} posted twice: {twice}"
        unconfirmed = [j for j in telegram if j["state"] == "unconfirmed"]
        assert len(unconfirmed) == in_flight["telegram"], telegram
        assert {j["state"] for j in x} == {"succeeded"}, x
        assert sorted(p["text"] for p in emulators["x"].state()["posts"]) == sorted(
            f"cluster test post {i}" for i in range(12))
        repairs = sweep_repairs(cluster)
        print(f"sweep repairs: {dict(repairs)}")
        assert repairs["publishing_unconfirmed"] == in_flight["telegram"], repairs
        assert repairs["publishing_found"] + repairs["publishing_not_found"] == in_flight["x"]
        assert repairs["publishing_found"] > 0, "no post the victim made was found"


def test_leader_killed_during_window_check(cluster: Cluster) -> None:
    """kill -9 of a scheduler-only leader in the middle of a window check. The posts are due
    beyond the horizon (2 s interval + 1 s margin) when created, so the API leaves their jobs
    `pending` and only the leader's window check stages them: the test watches the record and
    kills the leader the moment its check has marked the first jobs staged, typically before
    it put them into Redis. A standby (`herald all`) wins within the leader ttl and its first
    check at once queues what the dead leader left half done; a light sweep would too.

    Lateness bound: a job left staged but not queued waits for the successor, which wins at
    most LEADER_TTL after the kill plus its retry interval (LEADER_TTL / 5) and checks at
    once; jobs were staged at most a horizon before they were due, so the wait overlaps the
    time before they are due; plus SLACK."""
    bound = LEADER_TTL * 1.2 + SLACK
    horizon = 3.0
    setup = leader_with_standby(
        cluster, {"HERALD_WINDOW_INTERVAL_SECONDS": "2", "HERALD_WINDOW_MARGIN_SECONDS": "1"})
    receiver, leader, standby = setup.receiver, setup.leader, setup.standby
    epoch, account_id = setup.epoch, setup.account_id
    posts = create_posts(cluster, account_id, schedule(150, start=horizon + 5, spread=1.5),
                         node=standby)
    assert {p["jobs"][0]["state"] for p in posts} == {"pending"}, "the API staged some jobs"

    keys = Keys(cluster.env["HERALD_CLUSTER_NAME"])
    client = sync_redis(cluster.env["REDIS_URL"])
    with record(cluster.env) as db:
        deadline = time.monotonic() + horizon + 10
        while not db["jobs"].find_one({"staged_epoch": epoch}, {"_id": 1}):
            assert time.monotonic() < deadline, "the leader never staged the posts' jobs"
            time.sleep(0.002)
        leader.kill()
        staged = [j["_id"] for j in db["jobs"].find({"staged_epoch": epoch}, {"_id": 1})]
    try:
        queued = sum(any(s is not None for s in scores) for scores in zip(
            *(client.zmscore(lane, staged) for lane in keys.lanes), strict=True))
    finally:
        client.close()
    print(f"\nthe leader died having staged {len(staged)} jobs in the record, {queued} of them "
          f"in Redis")

    assert cluster.wait_leader(timeout=LEADER_TTL + 10, not_in=("leader",)) == "standby"
    settle(cluster, receiver, account_id, posts, bound=bound)
    assert cluster.api("GET", "/cluster", node=standby)["leader"]["epoch"] > epoch


def two_nodes_two_seconds_into_due_posts(
    cluster: Cluster,
) -> tuple[Receiver, str, list[dict[str, Any]]]:
    """Two `herald all` nodes with 100 posts due over 6 s; returns 2 s after the first is due,
    the moment the Redis scenarios strike."""
    receiver = cluster.add_receiver()
    for n in range(2):
        cluster.add_node("all", node_id=f"node-{n}")
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    posts = create_posts(cluster, account_id, schedule(100, start=2, spread=6))
    sleep_until(due_times(posts)[0] + timedelta(seconds=2))
    return receiver, account_id, posts


def test_redis_flushall_while_posts_due(redis_cluster: Cluster, own_redis: OwnServer) -> None:
    """FLUSHALL on Redis (queue, locks, leader key, generation marker gone) 2 s into 6 s of
    due posts. DESIGN §2: nothing is lost and nothing published twice; the leader notices the
    missing generation marker within a second (or, when the flush cost it the leader key,
    steps down and a node wins again and checks at once) and its window check re-queues every
    waiting job.

    Lateness bound: the marker poll (GENERATION_POLL), or losing and regaining leadership
    (LEADER_TTL at most), then the window check; plus SLACK."""
    cluster, bound = redis_cluster, max(GENERATION_POLL, LEADER_TTL) + SLACK
    receiver, account_id, posts = two_nodes_two_seconds_into_due_posts(cluster)
    client = redis.Redis(port=own_redis.port)
    try:
        client.flushall()
    finally:
        client.close()
    done = len({d["key"] for d in receiver.deliveries()["deliveries"]})
    print(f"\nFLUSHALL with {done} of {len(posts)} posts delivered")

    settle(cluster, receiver, account_id, posts, bound=bound)
    resets = sum(metric(n, "herald_redis_resets_total") or 0 for n in cluster.nodes)
    print(f"herald_redis_resets_total over the nodes: {resets:g}")


def test_redis_restarted_while_posts_due(redis_cluster: Cluster, own_redis: OwnServer) -> None:
    """redis-server stopped 2 s into 6 s of due posts and started again on the same port
    1 s later, without persistence: every connection breaks, and Redis comes back empty.
    Nodes retry, the leader key is gone so a node wins it again and its first window check
    rebuilds the queue.

    Lateness bound: the outage (1 s plus the restart), a node's retry after a Redis error
    (REDIS_RETRY), the election (LEADER_TTL at most: the old leader steps down when a renewal
    fails, and anyone retries every LEADER_TTL / 5), then the check; plus SLACK."""
    cluster, down_for = redis_cluster, 1.0
    receiver, account_id, posts = two_nodes_two_seconds_into_due_posts(cluster)
    stopped = time.monotonic()
    with own_redis.down():
        time.sleep(down_for)
    outage = time.monotonic() - stopped
    print(f"\nRedis was down for {outage:.2f}s")
    assert all(n.alive for n in cluster.nodes), "a node died with Redis"

    settle(cluster, receiver, account_id, posts,
           bound=outage + REDIS_RETRY + LEADER_TTL + SLACK)


def test_mongodb_restarted_while_posts_due(mongo_cluster: Cluster, own_mongo: OwnServer) -> None:
    """The development MongoDB server (H2 backend, data kept) stopped 1 s into 5 s of due
    posts and started again on the same port 2 s later. Meanwhile nodes keep running, /readyz
    and the API answer 503, and executors stop claiming; a claim that failed puts its job back
    into the queue, and a job whose `publishing` or outcome write failed keeps a lease that
    expires and is repaired by a sweep (a retry under the same key: a repeat).

    Lateness bound: the outage (as measured, restart included), plus an operation begun just
    before it that waits for a server until SERVER_SELECTION ends, plus a job stranded in
    `running` whose lease expires (LEASE_TTL) and the sweep after (SWEEP); plus SLACK."""
    cluster, down_for = mongo_cluster, 2.0
    receiver = cluster.add_receiver()
    nodes = [cluster.add_node("all", node_id=f"node-{n}") for n in range(2)]
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    posts = create_posts(cluster, account_id, schedule(60, start=2, spread=5))

    sleep_until(due_times(posts)[0] + timedelta(seconds=1))
    stopped = time.monotonic()
    with own_mongo.down():
        ready, _ = http_json("GET", nodes[0].url + "/readyz", timeout=10)
        api, body = http_json("GET", nodes[1].url + "/api/v1/cluster", token=cluster.token,
                              timeout=30)
        time.sleep(max(0.0, down_for - (time.monotonic() - stopped)))
    outage = time.monotonic() - stopped
    print(f"\nMongoDB was down for {outage:.2f}s; meanwhile /readyz -> {ready}, "
          f"GET /api/v1/cluster -> {api}")
    assert ready == 503
    assert api == 503, body
    assert all(n.alive for n in cluster.nodes), "a node died with MongoDB"

    settle(cluster, receiver, account_id, posts,
           bound=outage + SERVER_SELECTION + LEASE_TTL + SWEEP + SLACK)


def test_receiver_fails_twice_then_accepts(cluster: Cluster) -> None:
    """The receiver answers 500 to the first two requests: both go to a lone first post (the
    other 60 are due 3 s later), which is retried with backoff and full jitter (waits drawn
    from [0, RETRY_BASE] and [0, 2 RETRY_BASE]) under the same key and then accepted. Its
    record shows two transient attempts that consumed retries, then the success.

    Lateness bound: the two backoffs (3 RETRY_BASE at most) plus SLACK."""
    bound = 3 * RETRY_BASE + SLACK
    receiver = cluster.add_receiver()
    for n in range(2):
        cluster.add_node("all", node_id=f"node-{n}")
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    receiver.control(fail_next=2, fail_status=500)
    first = schedule(1, start=2, spread=0)
    posts = create_posts(cluster, account_id, first + schedule(60, start=5, spread=1))

    _, report, jobs = settle(cluster, receiver, account_id, posts, bound=bound,
                             outcomes=("accepted", "repeat", "failed"))
    failed = [d["key"] for d in report["deliveries"] if d["outcome"] == "failed"]
    lone = posts[0]["jobs"][0]["id"]
    assert failed == [lone, lone], f"the 500s went to {failed}, not twice to {lone}"
    job = next(j for j in jobs if j["id"] == lone)
    assert [a["outcome"] for a in job["attempts"]] == ["transient", "transient", "succeeded"]
    assert job["attempt_count"] == 2
    assert report["counts"][lone] == 3


def test_receiver_rate_limits(cluster: Cluster) -> None:
    """The receiver answers 429 with `Retry-After: 2` to the first five requests (five jobs
    of 60 due within a second). Each is deferred to when the header allows, without consuming
    a retry, and accepted then, not earlier: the executor claims a job a little ahead of its
    due time but publishes only once it has come.

    Lateness bound: the Retry-After (2 s) plus SLACK."""
    retry_after, bound = 2.0, 2.0 + SLACK
    receiver = cluster.add_receiver()
    for n in range(2):
        cluster.add_node("all", node_id=f"node-{n}")
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    receiver.control(rate_limit_next=5, retry_after=int(retry_after))
    posts = create_posts(cluster, account_id, schedule(60, start=2, spread=1))

    _, report, jobs = settle(cluster, receiver, account_id, posts, bound=bound,
                             outcomes=("accepted", "repeat", "rate_limited"))
    limited: dict[str, float] = {}
    for d in report["deliveries"]:
        if d["outcome"] == "rate_limited":
            limited[d["key"]] = max(limited.get(d["key"], 0.0), d["arrived_at"])
    accepted = {d["key"]: d["arrived_at"] for d in report["deliveries"]
                if d["outcome"] == "accepted"}
    assert len(limited) == 5, limited
    waited = {k: round(accepted[k] - at, 3) for k, at in limited.items()}
    print(f"seconds from the 429 to the acceptance: {waited}")
    # 50 ms of tolerance: the node dates the deferral by its own clock after the answer, the
    # receiver its arrival; both are this machine's clock.
    assert min(waited.values()) >= retry_after - 0.05, waited
    assert all(j["attempt_count"] == 0 for j in jobs), "a 429 consumed a retry"
    outcomes = {j["id"]: [a["outcome"] for a in j["attempts"]] for j in jobs if j["id"] in limited}
    assert all(o == ["rate_limited", "succeeded"] for o in outcomes.values()), outcomes


def test_frozen_executor_is_fenced_off(cluster: Cluster) -> None:
    """An executor stopped with SIGSTOP in the middle of 60 publishes (the receiver answers
    after 6 s, longer than the 4 s lease) and continued only once a rescuer finished its
    jobs. While it is frozen its leases expire, a sweep reconciles the jobs (a retry under the
    same key) and a second executor started meanwhile publishes them: the receiver answers
    repeats with the first answer. When the frozen node continues it reads its own answers and
    tries to record them, but every write is fenced on the old `lease_seq` and matches
    nothing: each of its jobs ends `succeeded` once, by the rescuer, and its lease-loss
    counter rises by one per job.

    Lateness bound: the acceptances are the frozen node's own requests, sent on time; SLACK."""
    bound, delay = SLACK, 6.0
    receiver = cluster.add_receiver()
    cluster.add_node("scheduler", node_id="scheduler")
    cluster.add_node("recovery", node_id="recovery")
    frozen = cluster.add_node("executor", node_id="frozen", concurrency=100)
    cluster.start()
    cluster.wait_leader(timeout=20)
    account_id = webhook_account(cluster, receiver)
    receiver.control(delay=delay)
    posts = create_posts(cluster, account_id, schedule(60, start=2, spread=1))
    jobs = job_ids(posts)

    sleep_until(due_times(posts)[-1] + timedelta(seconds=1))
    with paused(frozen):
        frozen_at = time.monotonic()
        arrived = len(receiver.deliveries()["deliveries"])
        assert arrived == len(posts), f"{arrived} of {len(posts)} requests sent before the stop"
        receiver.control(delay=0)
        rescuer = cluster.add_node("executor", node_id="rescuer")
        cluster.start()
        wait_succeeded(cluster, account_id, jobs, timeout=30)
        frozen_for = time.monotonic() - frozen_at
    print(f"\nthe executor was frozen for {frozen_for:.1f}s with {arrived} requests in flight")
    # Its lease keeper last renewed at most a third of the TTL before the stop.
    assert frozen_for > LEASE_TTL * 2 / 3

    deadline = time.monotonic() + 15
    while (metric(frozen, "herald_lease_losses_total") or 0) < len(posts):
        assert time.monotonic() < deadline, (
            f"herald_lease_losses_total {metric(frozen, 'herald_lease_losses_total')}")
        time.sleep(0.5)
    print(f"herald_lease_losses_total of the frozen node: "
          f"{metric(frozen, 'herald_lease_losses_total'):g}")

    repeats, _, records = settle(cluster, receiver, account_id, posts, bound=bound)
    assert sum(repeats.values()) == len(posts), "every job was retried once, as a repeat"
    winners = {a["node_id"] for j in records for a in j["attempts"] if a["outcome"] == "succeeded"}
    assert winners == {rescuer.node_id}, winners
    with record(cluster.env) as db:
        last = {j["transitions"][-1]["node"] for j in db["jobs"].find({"_id": {"$in": jobs}})}
    assert last == {rescuer.node_id}, f"a write after the rescuer's success, by {last}"
