"""What the cluster tests share: a webhook account, a leader with a standby, posts created in
bulk through the API,
waiting on the receiver, reading every job back through the API, and for the fault tests:
checking deliveries that may include idempotent repeats, servers a test owns, signals."""

from __future__ import annotations

import contextlib
import signal
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from shared.config import OAUTH_PLATFORMS
from tools.devservers import Server, free_port, wait_for_port
from tools.localcluster import Cluster, ClusterError, Node, Receiver, _Child, http_json

#: The installation's OAuth client on every platform that needs one, which the OAuth emulators
#: register: the nodes' environment for tests that connect or refresh such accounts.
OAUTH_CLIENT_ENV = {f"HERALD_{p.upper()}_CLIENT_{k}": v for p in OAUTH_PLATFORMS
                    for k, v in (("ID", "herald-test-client"), ("SECRET", "herald-test-secret"))}

class PlatformProcess(_Child):
    """A platform emulator (tests/emulators/<platform>.py) in a process of its own, scripted
    and read through its /_control, /_state and /_account endpoints."""

    def __init__(self, platform: str, workdir: Path) -> None:
        super().__init__(workdir / f"emulator-{platform}.log")
        self.name = f"{platform} emulator"
        self.platform = platform
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        self._spawn([sys.executable, "-m", "tests.emulators", self.platform,
                     "--port", str(self.port)])
        assert self.proc is not None
        try:
            wait_for_port(self.port, self.proc, timeout, self.name)
        except RuntimeError as exc:
            raise self._failure(str(exc)) from None

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        status, answer = http_json(method, self.url + path, body, timeout=30)
        if status != 200:
            raise ClusterError(f"{self.name}: {method} {path} -> {status}: {answer}")
        return dict(answer)

    def control(self, **script: Any) -> dict[str, Any]:
        return self._call("POST", "/_control", script)

    def faults(self, **script: Any) -> dict[str, Any]:
        """The platform's own faults (`tests/emulators/scripted.py`)."""
        return self._call("POST", "/_faults", script)

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/_state")

    def account(self) -> dict[str, Any]:
        """A `POST /api/v1/accounts` body with working credentials."""
        return self._call("POST", "/_account")


@contextlib.contextmanager
def platform_processes(platforms: Sequence[str], workdir: Path) -> Iterator[
        dict[str, PlatformProcess]]:
    """Each platform's emulator started; every one stopped by PID afterwards."""
    started: dict[str, PlatformProcess] = {}
    try:
        for platform in platforms:
            started[platform] = PlatformProcess(platform, workdir)
            started[platform].start()
        yield started
    finally:
        for emulator in started.values():
            emulator.stop()


def account_on(cluster: Cluster, emulator: PlatformProcess, **extra: Any) -> str:
    """An account on the emulator's platform, through the API; its id."""
    return str(cluster.api("POST", "/accounts", {**emulator.account(), **extra})["id"])


def wait_settled(cluster: Cluster, account_id: str, jobs: list[str], timeout: float
                 ) -> list[dict[str, Any]]:
    """Poll until no job of the account is waiting or in flight; the jobs."""
    deadline = time.monotonic() + timeout
    while True:
        listed = all_jobs(cluster, account_id)
        if sorted(j["id"] for j in listed) == sorted(jobs) and all(
                j["state"] in ("succeeded", "unconfirmed", "failed") for j in listed):
            return listed
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {[(j['id'], j['state']) for j in listed]}")
        time.sleep(1.0)


def webhook_account(cluster: Cluster, receiver: Receiver, node: Node | None = None) -> str:
    account = cluster.api("POST", "/accounts", {
        "platform": "webhook", "name": "cluster-test-hook",
        "config": {"url": receiver.hook_url}, "credentials": {"secret": receiver.secret},
    }, node=node)
    return str(account["id"])


@dataclass(frozen=True)
class LeaderSetup:
    receiver: Receiver
    leader: Node
    standby: Node
    #: The epoch `leader` was elected with.
    epoch: int
    #: A webhook account made through the standby, which outlives the leader.
    account_id: str


def leader_with_standby(cluster: Cluster, env: dict[str, str]) -> LeaderSetup:
    """A scheduler-only node `leader`, elected before the others start, then an `all` node
    `standby` and an executor: killing the leader leaves one candidate and the executors."""
    receiver = cluster.add_receiver()
    leader = cluster.add_node("scheduler", node_id="leader", env=env)
    cluster.start()
    assert cluster.wait_leader(timeout=20) == "leader"
    epoch = int(cluster.api("GET", "/cluster")["leader"]["epoch"])
    standby = cluster.add_node("all", node_id="standby", env=env)
    cluster.add_node("executor", node_id="executor", env=env)
    cluster.start()
    return LeaderSetup(receiver, leader, standby, epoch,
                       webhook_account(cluster, receiver, node=standby))


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


# --- fault tests --------------------------------------------------------------------------


def check_deliveries(
    report: dict[str, Any], posts: Sequence[dict[str, Any]], *, lateness_bound: float,
    outcomes: Sequence[str] = ("accepted", "repeat"),
) -> Counter[str]:
    """The receiver's view of a run with faults: every job accepted; every accepted key one of
    our jobs, and each (post, account) occurrence accepted under exactly one key, its job's (two
    keys for one occurrence would be two jobs, i.e. a duplicate post no idempotency key can
    catch); no outcome outside `outcomes`; every acceptance within `lateness_bound` seconds of
    its scheduled time. Repeats of an accepted key are allowed (the idempotent retries a fault
    may cause): they are printed, and returned counted per key."""
    expected = {(p["id"], j["account_id"]): j["id"] for p in posts for j in p["jobs"]}
    jobs = set(expected.values())
    deliveries: list[dict[str, Any]] = report["deliveries"]
    odd = [(d["key"], d["outcome"], d["status"]) for d in deliveries
           if d["outcome"] not in outcomes]
    assert not odd, f"{len(odd)} deliveries with an outcome outside {outcomes}: {odd[:20]}"
    accepted = [d for d in deliveries if d["outcome"] == "accepted"]
    missing = sorted(jobs - {d["key"] for d in accepted})
    assert not missing, (f"{len(missing)} of {len(jobs)} jobs never accepted by the receiver: "
                         f"{missing[:50]}{' ...' if len(missing) > 50 else ''}")
    unknown = sorted({d["key"] for d in accepted} - jobs)
    assert not unknown, f"accepted under keys that are none of our jobs: {unknown[:20]}"
    keys: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for d in accepted:
        keys[(d["post_id"], d["body"]["account_id"])].add(d["key"])
    wrong = {pair: sorted(found) for pair, found in keys.items() if found != {expected[pair]}}
    assert not wrong, f"occurrences accepted under another key than their job's: {wrong}"

    repeats = Counter(d["key"] for d in deliveries if d["outcome"] == "repeat")
    most = repeats.most_common(1)
    print(f"{len(accepted)} accepted; {sum(repeats.values())} repeats under the same key "
          f"({len(repeats)} jobs{f', at most {most[0][1]} for one' if most else ''})")
    print(describe_lateness(lateness(report)))
    over = sorted((round(d["arrived_at"] - _scheduled(d), 3), d["key"]) for d in accepted
                  if d["arrived_at"] - _scheduled(d) > lateness_bound)
    assert not over, f"{len(over)} deliveries later than {lateness_bound:.1f}s: {over[-20:]}"
    return repeats


def _scheduled(delivery: dict[str, Any]) -> float:
    return datetime.fromisoformat(delivery["scheduled_for"]).timestamp()


def assert_record_matches(jobs: Sequence[dict[str, Any]], report: dict[str, Any]) -> None:
    """Herald's record agrees with the receiver: one successful attempt per job, and the
    platform post id it kept is the one the receiver gave the key's first (accepted) request."""
    assert_one_success_each(jobs)
    answers: dict[str, dict[str, Any]] = report["accepted"]
    kept = {j["id"]: (j["result"] or {}).get("platform_post_id") for j in jobs}
    wrong = {k: (v, answers[k]["id"]) for k, v in kept.items() if v != answers[k]["id"]}
    assert not wrong, f"platform post ids kept differ from the receiver's (ours, its): {wrong}"


def sweep_repairs(cluster: Cluster) -> Counter[str]:
    """Repairs by reason, summed over every sweep report `GET /sweeps` lists."""
    repairs: Counter[str] = Counter()
    after: str | None = None
    while True:
        page = cluster.api("GET", "/sweeps?limit=500" + (f"&after={after}" if after else ""))
        for sweep in page["items"]:
            repairs.update(sweep.get("repairs") or {})
        after = page["next"]
        if after is None:
            return repairs


def metric(node: Node, name: str) -> float | None:
    """The sum of a metric's samples in the node's `/metrics`; None when it has none."""
    status, text = http_json("GET", node.url + "/metrics", timeout=5)
    assert status == 200 and isinstance(text, str), f"{node.name} /metrics -> {status}"
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.split("{", 1)[0].split(" ", 1)[0] == name]
    return sum(values) if values else None


@contextlib.contextmanager
def paused(node: Node) -> Iterator[None]:
    """SIGSTOP the node's process group for the block; SIGCONT however the block ends (a
    stopped node would not even hear the SIGTERM of the cluster's stop)."""
    node.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        node.send_signal(signal.SIGCONT)


@contextlib.contextmanager
def record(env: dict[str, str]) -> Iterator[Database[dict[str, Any]]]:
    """Herald's MongoDB database, for what the API does not show (leases, transitions)."""
    client: MongoClient[dict[str, Any]] = MongoClient(env["MONGODB_URI"], tz_aware=True)
    try:
        yield client.get_default_database()
    finally:
        client.close()


class OwnServer:
    """A development server one test owns, so that it may flush, stop and restart it. A
    restart keeps the port, so the nodes keep their URL; `start(port)` starts one (a free port
    when None)."""

    def __init__(self, start: Callable[[int | None], Server]) -> None:
        self._start = start
        self.server = start(None)

    @property
    def port(self) -> int:
        return self.server.port

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Stopped for the block, started again on the same port however the block ends."""
        self.server.stop()
        try:
            yield
        finally:
            self.server = self._start(self.port)

    def stop(self) -> None:
        self.server.stop()


def due_times(posts: Sequence[dict[str, Any]]) -> list[datetime]:
    """The posts' scheduled times as the API answered them, sorted."""
    return sorted(datetime.fromisoformat(p["schedule"]["at"]) for p in posts)


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))
