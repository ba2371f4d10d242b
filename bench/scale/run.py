#!/usr/bin/env python3
"""Herald with a large record: 1,000,000 posts (and their jobs) in the store.

1. Growth: one scheduler, one executor and a webhook receiver run while raw post and job
   documents, shaped as the API writes them, are inserted with `insert_many` in steps (10,000,
   100,000, 1,000,000 posts). After each step a small burst goes through the API and the
   executor; then the executor's and the scheduler's RSS (now and peak) are read. Flat figures
   mean neither holds anything in proportion to the store.
2. Window check: of the posts, `--due` have a job due within the horizon (the rest are due
   days later). Once the store has settled after the load (its server's CPU idle), a fresh
   scheduler takes over; from its start to the moment the due queue holds
   them all is the window check's duration; its peak RSS (VmHWM) is read after.
3. Lists: p99 latency of `GET /posts` and `GET /jobs` with each filter the API has, at full size.

Starts its own development MongoDB server (memory backend, with a heap sized for the record)
and redis-server unless MONGODB_URI / REDIS_URL are set; then it uses a throwaway database.

usage: bench/scale/run.py [--posts 1000000] [--due 100000] [--steps 10000,100000]
                          [--requests 100] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from bson import ObjectId  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bench.common import (  # noqa: E402
    append_results,
    load_average,
    machine,
    peak_rss_mib,
    percentile,
    rss_mib,
    settle,
)
from scheduler.planning import new_job  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.models import JobState  # noqa: E402
from tools import devservers  # noqa: E402
from tools.localcluster import Cluster, Node, http_json  # noqa: E402

JAR = ROOT / "tools" / "mongo-dev-server" / "target" / "herald-mongo-dev-server.jar"
INSERT_BATCH = 10_000
ACCOUNTS = 1_000
BURST = 200
SECRET = "bench-scale-secret"
TOKEN = "bench-admin-token"


@contextlib.contextmanager
def mongo_server(workdir: Path) -> Iterator[tuple[str, int | None]]:
    """The dev server with a heap for the record: tools/mongo-dev-server.sh fixes -Xmx2g, which
    2,000,000 documents in the memory backend outgrow. Built by `make deps`. Yields its URI and
    its PID (None for MONGODB_URI's server, which is not ours to watch)."""
    if os.environ.get("MONGODB_URI"):
        yield os.environ["MONGODB_URI"], None
        return
    if not JAR.exists():
        subprocess.run(["bash", str(ROOT / "tools" / "mongo-dev-server.sh"), "--build-only"],
                       check=True)
    ram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    heap = max(2, min(12, int(ram_gib * 0.5)))
    log = open(workdir / "mongo.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["java", f"-Xmx{heap}g", "-jar", str(JAR), "--port", "0", "--backend", "memory"],
        stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
        start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()  # type: ignore[union-attr]
    try:
        line = lines.get(timeout=120)
        if not line.startswith("ready port="):
            raise RuntimeError(f"dev server did not start: {line!r}; see {workdir / 'mongo.log'}")
        yield f"mongodb://127.0.0.1:{int(line.split()[1].split('=', 1)[1])}/", proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = devservers.start_redis(log=workdir / "redis.log")
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


class Filler:
    """Raw posts and jobs as `POST /posts` writes them (one account per post, one-off
    schedule, the job materialised): a mix of states, ids in creation order."""

    def __init__(self, db: Any, account_id: str, due: int, now: datetime) -> None:
        self.db = db
        self.accounts = [account_id] + [str(ObjectId()) for _ in range(ACCOUNTS - 1)]
        self.due_left = due
        self.now = now
        self.count = 0
        self.rng = random.Random(7)
        self.sample_posts: list[str] = []

    def _pair(self) -> tuple[dict[str, Any], dict[str, Any]]:
        account = {"_id": self.accounts[self.count % ACCOUNTS], "platform": "webhook"}
        kind = self.rng.random()
        if self.due_left > 0:
            # Within the horizon but not due during the benchmark: staged, never run.
            self.due_left -= 1
            at = self.now + timedelta(seconds=self.rng.uniform(900, 3000))
            status, state = "scheduled", JobState.PENDING
        elif kind < 0.10:
            at = self.now - timedelta(days=self.rng.uniform(1, 60))
            status, state = "completed", JobState.SUCCEEDED
        elif kind < 0.15:
            at = self.now + timedelta(days=self.rng.uniform(2, 60))
            status, state = "cancelled", JobState.CANCELLED
        else:
            at = self.now + timedelta(days=self.rng.uniform(2, 60))
            status, state = "scheduled", JobState.PENDING
        post = {
            "_id": str(ObjectId()), "account_ids": [account["_id"]],
            "content": {"text": f"scale post {self.count}", "media": []},
            "schedule": {"at": at}, "recurring": False, "priority": "normal", "status": status,
            "version": 1, "misfire_grace_seconds": 3600, "publish_late": False,
            "created_at": self.now, "updated_at": self.now, "materialised_until": at,
        }
        job = new_job(post, account, at, state, self.now, "created")
        self.count += 1
        return post, job

    def fill_to(self, total: int) -> float:
        """Insert posts (and jobs) until there are `total`; documents inserted per second."""
        started, inserted = time.perf_counter(), 0
        while self.count < total:
            pairs = [self._pair() for _ in range(min(INSERT_BATCH, total - self.count))]
            self.db.posts.insert_many([p for p, _ in pairs], ordered=False)
            self.db.jobs.insert_many([j for _, j in pairs], ordered=False)
            inserted += 2 * len(pairs)
            if len(self.sample_posts) < 1000:
                self.sample_posts += [p["_id"] for p, _ in pairs[:: max(1, len(pairs) // 100)]]
        return inserted / max(1e-9, time.perf_counter() - started)


def burst(cluster: Cluster, account_id: str, received: int) -> int:
    """BURST posts due in 3 s through the API; waits until the receiver has them all."""
    at = datetime.now(UTC) + timedelta(seconds=3)
    cluster.api("POST", "/posts/batch", {"posts": [
        {"account_ids": [account_id], "content": {"text": "scale burst"},
         "schedule": {"at": at.isoformat()}} for _ in range(BURST)]}, timeout=300)
    assert cluster.receiver is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        accepted = len(cluster.receiver.deliveries()["accepted"])
        if accepted >= received + BURST:
            return accepted
        time.sleep(0.5)
    raise RuntimeError(f"the burst was not delivered within 300 s ({accepted - received})")


def queued(client: redis.Redis, keys: Keys) -> int:
    return sum(int(client.zcard(key)) for key in keys.lanes)


def window_check(cluster: Cluster, old: Node, rds: redis.Redis, keys: Keys,
                 expected: int) -> tuple[float, float, float, int]:
    """Replace the scheduler with a fresh one and empty the queue; (seconds from its start to
    its leadership, seconds from its leadership until the queue holds `expected`, its peak
    RSS in MiB, how many were queued)."""
    old.stop()
    rds.delete(*keys.lanes)
    fresh = cluster.add_node("scheduler", node_id="scale-scheduler-2")
    started = time.monotonic()
    fresh.start()  # not cluster.start(), which would start the stopped one again too
    fresh.wait_ready(120)
    cluster.wait_leader(60, not_in=(old.node_id,), interval=0.02)
    elected = time.monotonic()
    count = 0
    while time.monotonic() - elected < 600:
        count = queued(rds, keys)
        if count >= expected:
            break
        time.sleep(0.02)
    staged = time.monotonic() - elected
    time.sleep(1)  # the check's last batch settles before its high-water mark is read
    assert fresh.pid is not None
    return elected - started, staged, peak_rss_mib(fresh.pid), count


def list_queries(filler: Filler, db: Any) -> list[tuple[str, str]]:
    account = filler.accounts[1]
    post = filler.sample_posts[len(filler.sample_posts) // 2]
    middle_job = db.jobs.find_one({}, {"_id": 1}, skip=db.jobs.estimated_document_count() // 2)
    return [
        ("posts, no filter", "/posts?limit=50"),
        ("posts by status", "/posts?status=scheduled&limit=50"),
        ("posts by status, page in the middle", f"/posts?status=completed&limit=50"
                                                f"&after={post}"),
        ("posts by account", f"/posts?account_id={account}&limit=50"),
        ("posts by account and status", f"/posts?account_id={account}&status=cancelled&limit=50"),
        ("jobs by state", "/jobs?state=pending&limit=50"),
        ("jobs by state, page in the middle",
         f"/jobs?state=succeeded&limit=50&after={middle_job['_id']}"),
        ("jobs by post", f"/jobs?post_id={post}"),
        ("jobs by account", f"/jobs?account_id={account}&limit=50"),
        ("jobs by account and state", f"/jobs?account_id={account}&state=cancelled&limit=50"),
    ]


def latencies(url: str, path: str, requests: int, budget: float) -> list[float]:
    """Sequential requests until `requests` or `budget` seconds; each latency in seconds."""
    out: list[float] = []
    deadline = time.monotonic() + budget
    while len(out) < requests and time.monotonic() < deadline:
        started = time.perf_counter()
        status, body = http_json("GET", url + "/api/v1" + path, token=TOKEN, timeout=120)
        out.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body}")
    return out


def run(args: argparse.Namespace, workdir: Path) -> str:
    sizes = sorted({*(int(s) for s in args.steps.split(",") if s), args.posts})
    lines: list[str] = []
    with mongo_server(workdir) as (mongo_uri, mongo_pid), redis_server(workdir) as redis_url:
        run_id = uuid.uuid4().hex[:8]
        db_name = f"herald_scale_{run_id}"
        env = {"MONGODB_URI": mongo_uri.rstrip("/") + f"/{db_name}", "REDIS_URL": redis_url,
               "HERALD_ADMIN_TOKEN": TOKEN, "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
               "HERALD_CLUSTER_NAME": f"scale-{run_id}", "HERALD_LOG_LEVEL": "warning"}
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
        rds = redis.Redis.from_url(redis_url)
        keys = Keys(env["HERALD_CLUSTER_NAME"])
        with Cluster(env, workdir / "cluster") as cluster:
            cluster.add_receiver(SECRET)
            scheduler = cluster.add_node("scheduler", node_id="scale-scheduler")
            executor = cluster.add_node("executor", node_id="scale-executor", concurrency=64)
            cluster.start()
            cluster.wait_leader(30)
            assert cluster.receiver is not None and executor.pid and scheduler.pid
            account_id = cluster.api("POST", "/accounts", {
                "platform": "webhook", "name": "scale",
                "config": {"url": cluster.receiver.hook_url},
                "credentials": {"secret": SECRET}})["id"]
            filler = Filler(client[db_name], account_id, args.due, datetime.now(UTC))
            received = 0
            peaks: list[float] = []
            lines += ["| posts in the store | insert docs/s | executor RSS now / peak (MiB) | "
                      "scheduler RSS now / peak (MiB) |", "|---:|---:|---|---|"]
            for size in sizes:
                print(f"filling to {size:,} posts …", flush=True)
                rate = filler.fill_to(size)
                received = burst(cluster, account_id, received)
                lines.append(
                    f"| {size:,} | {rate:,.0f} | {rss_mib(executor.pid):.0f} / "
                    f"{peak_rss_mib(executor.pid):.0f} | {rss_mib(scheduler.pid):.0f} / "
                    f"{peak_rss_mib(scheduler.pid):.0f} |")
                peaks += [peak_rss_mib(executor.pid), peak_rss_mib(scheduler.pid)]
                print("  " + lines[-1], flush=True)
            # The bulk load of 2,000,000 documents leaves the server's JVM collecting and
            # compiling for a while; an hourly window check meets a store at rest.
            print("waiting for the store to settle …", flush=True)
            waited = settle([mongo_pid] if mongo_pid is not None else [], bound=120)
            print("window check with a fresh scheduler …", flush=True)
            to_leader, seconds, peak, count = window_check(cluster, scheduler, rds, keys,
                                                           args.due)
            lines += ["", f"- window check on a fresh scheduler, from its leadership to "
                          f"{count:,} of the {args.due:,} jobs due within the horizon in the "
                          f"due queue: {seconds:.1f} s (start to leadership {to_leader:.1f} s "
                          f"before that); scheduler peak RSS {peak:.0f} MiB; started once the "
                          f"store had settled after the load ({waited:.0f} s)",
                      f"- executor RSS after the window check: {rss_mib(executor.pid):.0f} MiB "
                      f"(peak {peak_rss_mib(executor.pid):.0f} MiB)", ""]
            peaks += [peak, peak_rss_mib(executor.pid)]
            p99s: list[float] = []
            api = next(n for n in cluster.nodes if n.alive and n.serves_api).url
            lines += ["| list query (limit 50) | requests | p50 (ms) | p99 (ms) | max (ms) |",
                      "|---|---:|---:|---:|---:|"]
            for name, path in list_queries(filler, client[db_name]):
                took = latencies(api, path, args.requests, args.query_budget)
                lines.append(f"| {name}: `GET {path.split('?')[0]}?{path.split('?')[1][:60]}` | "
                             f"{len(took)} | {percentile(took, 0.5) * 1000:.1f} | "
                             f"{percentile(took, 0.99) * 1000:.1f} | {max(took) * 1000:.1f} |")
                p99s.append(percentile(took, 0.99))
                print("  " + lines[-1], flush=True)
        client.drop_database(db_name)
        client.close()
    lines += ["", f"- against issue 10's targets: window check {seconds:.1f} s (target "
                  f"<= 10 s); highest peak RSS of a node {max(peaks):.0f} MiB (target <= 200 MB, "
                  f"flat in the store's size); worst list p99 {max(p99s) * 1000:.0f} ms "
                  "(target <= 50 ms)"]
    return "\n".join(lines)


INDEX_NOTE = """\
- indexes these queries need (shared/store.py): `posts` `{status, _id}` and
  `{account_ids, _id}` (the list filters, in the `_id` order pages follow), `jobs`
  `{state, _id}`, `{account_id, _id}` and `{account_id, state, _id}`; `jobs` by `post_id` is
  served by `one_job_per_occurrence` and the window check's `{state, due_at}` by `state_due`.
  The development server reads each of them as MongoDB would (equality and `$in` on a
  prefix, then one range, in the index's order when it serves the sort; see
  tools/mongo-dev-server/README.md); updates made of operators copy and compare only the
  fields they name and maintain only the indexes on those, inserts build and check each
  unique key once ("Writes"); with MONGODB_URI pointing at a real MongoDB the same run
  measures MongoDB."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100_000,
                        help="posts whose job is due within the horizon")
    parser.add_argument("--steps", default="10000,100000,500000",
                        help="store sizes below --posts at which RSS is read")
    parser.add_argument("--requests", type=int, default=100, help="requests per list query")
    parser.add_argument("--query-budget", type=float, default=30.0,
                        help="seconds per list query at most (fewer requests when slow)")
    parser.add_argument("--no-record", action="store_true", help="do not append to results.md")
    args = parser.parse_args()
    if args.due > args.posts:
        parser.error("--due cannot exceed --posts")
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-scale-"))
    print(f"logs in {workdir}", flush=True)
    started, load_before = time.monotonic(), load_average()
    table = run(args, workdir)
    store = ("real MongoDB (MONGODB_URI)" if os.environ.get("MONGODB_URI")
             else "dev server (memory backend)")
    body = "\n".join([
        f"- machine: {machine()}; load average before {load_before}, after {load_average()}",
        f"- setup: {args.posts:,} posts with one job each ({args.due:,} due within the "
        f"horizon, the rest days away or finished), {ACCOUNTS:,} accounts' worth of ids, "
        f"inserted raw with insert_many ({INSERT_BATCH:,} per call); 1 scheduler, 1 executor "
        f"(concurrency 64); a burst of {BURST} posts through the API and the executor after "
        f"each step; store: {store}",
        f"- run took {time.monotonic() - started:.0f} s",
        "", table, "", INDEX_NOTE])
    print("\n" + body)
    if not args.no_record:
        append_results("scale — `bench/scale`", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
