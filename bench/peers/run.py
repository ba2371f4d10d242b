#!/usr/bin/env python3
"""Herald side by side with BullMQ, Agenda and APScheduler 4 on the same machine, in one run.

Every system publishes each job by one signed HTTP POST to the same loopback receiver
(tests/emulators/webhook.py in a process of its own), which timestamps each arrival.
Workloads: (a) N jobs due at one instant; (b) the same N due evenly over 60 s. The order of
the systems alternates: (a) runs them in one order, (b) in the reverse. Per system and
workload: jobs/s (deliveries from the first due time to the last arrival), lateness
p50/p99/max (arrival - due), peak RSS of its processes (VmHWM) and how fast the work was
created (bulk where the system has it). For Herald also the ratio to the store's single-claim
ceiling, measured by bench/store_probe against the same server at the start of the run.

Servers: one development MongoDB server (memory backend; Herald, Agenda, APScheduler) and one
redis-server (Herald, BullMQ, APScheduler's event broker), started here on free loopback ports;
each run gets fresh databases and an emptied Redis. Node packages: `make bench-peers` installs
them from package-lock.json into bench/peers/node_modules.

Each workload runs in rounds (`--rounds`; by default three of (a) and one of (b)), the order
reversed each time; the ratios are given per round (the systems of a round ran back to back,
on the same minute of the machine) and as their median. One round is not enough on a machine
whose speed swings within minutes: a single round of (a) has put Herald anywhere from 2.2x to
3.5x Agenda in one afternoon.

usage: bench/peers/run.py [--jobs 5000] [--systems herald,bullmq,agenda,apscheduler]
                          [--workloads a,b] [--rounds a=3,b=1] [--spread 60] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from pymongo import MongoClient  # noqa: E402

from bench.common import (  # noqa: E402
    append_results,
    cpu_seconds,
    jit_seconds,
    load_average,
    machine,
    peak_rss_mib,
    percentile,
    settle,
)
from tools import devservers  # noqa: E402
from tools.localcluster import Cluster, Receiver  # noqa: E402

SECRET = "bench-peers-secret"
CONCURRENCY = 64
WORKERS = 2
#: Jobs created per request/call where the system has a bulk create.
BULK = 1000
#: Seconds a measurement waits at most for the stores to come to rest.
SETTLE_BOUND = 60.0
#: Far enough ahead that probe jobs never come due during the run.
PROBE_AHEAD = timedelta(hours=2)
READY_TIMEOUT = 120.0


@dataclass
class Env:
    """The servers and the receiver every system shares."""

    mongo_port: int
    redis_port: int
    receiver: Receiver
    workdir: Path
    #: The shared processes whose CPU time a run is charged for: "store" and "receiver".
    shared_pids: dict[str, list[int]] = field(default_factory=dict)

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.mongo_port}/"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def child_env(self) -> dict[str, str]:
        return {**os.environ, "REDIS_URL": self.redis_url, "BENCH_SECRET": SECRET,
                "BENCH_RECEIVER_URL": self.receiver.hook_url}


@dataclass
class Outcome:
    system: str
    workload: str
    jobs: int
    created_per_s: float
    round: int = 1
    delivered: int = 0
    repeats: int = 0
    jobs_per_s: float = 0.0
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    rss_max_mib: float = 0.0
    rss_total_mib: float = 0.0
    processes: str = ""
    #: CPU milliseconds per delivered job from the end of creation to the last arrival, by
    #: whose they were: the system's own processes, the stores, the receiver; "jit" is the
    #: part of the stores' that the development server's JIT compiler threads used.
    cpu_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Proc:
    """A worker or creator process of a peer, in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.proc = subprocess.Popen(
            args, cwd=HERE, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(self.log, "ab"), text=True, start_new_session=True)  # noqa: SIM115
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def expect(self, timeout: float) -> str:
        """The next line it prints (its "ready", or a creator's JSON answer)."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} said nothing within {timeout:.0f}s; see {self.log}:\n"
                               + self.log.read_text(errors="replace")[-2000:]) from None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to its process group (it closes its connections), SIGKILL if it lingers.
        Only while it runs: an unreaped child's PID cannot have been reused."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, None)):
            if self.proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(wait)


class System(ABC):
    name: str
    version: str
    setup: str

    def __init__(self, env: Env) -> None:
        self.env = env

    @abstractmethod
    def start(self, run: str) -> list[int]:
        """Start the workers for run `run`; their PIDs."""

    @abstractmethod
    def create(self, run: str, times: list[datetime]) -> float:
        """Create one job due at each of `times`; jobs created per second."""

    @abstractmethod
    def stop(self) -> None: ...

    def probe(self, count: int) -> float:
        """Creation rate on a side namespace no worker serves, to plan the due time."""
        at = datetime.now(UTC) + PROBE_AHEAD
        return self.create(f"probe{uuid.uuid4().hex[:6]}", [at] * count)


class Peer(System):
    """A peer driven through its script in bench/peers: `<command> create|work ...`."""

    command: tuple[str, ...]

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.workers: list[Proc] = []

    @abstractmethod
    def target(self, run: str) -> list[str]:
        """Where a run's jobs live (queue name or database), as arguments."""

    def start(self, run: str) -> list[int]:
        self.workers = [
            Proc(f"{self.name}-{run}-w{n}", [*self.command, "work", *self.target(run), "--run",
                                            run, "--concurrency", str(CONCURRENCY)],
                 self.env.child_env(), self.env.workdir)
            for n in range(WORKERS)]
        for worker in self.workers:
            if worker.expect(READY_TIMEOUT) != "ready":
                raise RuntimeError(f"{worker.name} did not start; see {worker.log}")
        return [w.proc.pid for w in self.workers]

    def create(self, run: str, times: list[datetime]) -> float:
        """Peers take an even spread: the first due time, the spread and the count."""
        first, last, count = times[0], times[-1], len(times)
        spread = (last - first).total_seconds() * count / max(1, count - 1)
        creator = Proc(f"{self.name}-{run}-create", [
            *self.command, "create", *self.target(run), "--run", run, "--count", str(count),
            "--at", str(int(first.timestamp() * 1000)), "--spread", f"{spread:.3f}"],
            self.env.child_env(), self.env.workdir)
        try:
            answer = json.loads(creator.expect(READY_TIMEOUT + count / 20))
        finally:
            creator.stop()
        return float(answer["created_per_s"])

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []


class BullMQ(Peer):
    name = "BullMQ"
    command = ("node", "bullmq.mjs")
    setup = (f"{WORKERS} worker processes x concurrency {CONCURRENCY}; delayed jobs by "
             f"`addBulk` ({BULK} per call), `removeOnComplete`")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.version = node_version("bullmq") + f" (ioredis {node_version('ioredis')})"

    def target(self, run: str) -> list[str]:
        return ["--queue", f"bench-{run}"]


class Agenda(Peer):
    name = "Agenda"
    command = ("node", "agenda.mjs")
    setup = (f"{WORKERS} processes, maxConcurrency = job concurrency = {CONCURRENCY}, no lock "
             "limit, processEvery 1 s; jobs saved one by one, 64 in flight (no bulk API)")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.version = (node_version("agenda") + " + @agendajs/mongo-backend "
                        + node_version("@agendajs/mongo-backend"))

    def target(self, run: str) -> list[str]:
        return ["--db", f"{self.env.mongo_uri}agenda_{run}"]


class APScheduler(Peer):
    name = "APScheduler"
    command = (sys.executable, "apscheduler_peer.py")
    setup = (f"{WORKERS} AsyncScheduler processes (role both) x max_concurrent_jobs "
             f"{CONCURRENCY}, MongoDB data store, Redis event broker, task max_running_jobs "
             "unlimited; DateTrigger schedules added one by one, 64 in flight (no bulk API)")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.version = metadata.version("apscheduler")

    def target(self, run: str) -> list[str]:
        return ["--db", self.env.mongo_uri]  # the database is named after the run


class Herald(System):
    name = "Herald"
    setup = (f"1 scheduler + {WORKERS} executors x concurrency {CONCURRENCY}; webhook account; "
             f"`POST /api/v1/posts/batch` ({BULK} posts per request)")

    def __init__(self, env: Env) -> None:
        super().__init__(env)
        self.version = "this tree"
        self.cluster: Cluster | None = None
        self.account_id = ""

    def start(self, run: str) -> list[int]:
        cluster = Cluster({
            "MONGODB_URI": f"{self.env.mongo_uri}herald_{run}", "REDIS_URL": self.env.redis_url,
            "HERALD_ADMIN_TOKEN": "bench-admin-token",
            "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
            "HERALD_CLUSTER_NAME": f"bench-{run}", "HERALD_LOG_LEVEL": "warning",
        }, self.env.workdir / f"herald-{run}")
        self.cluster = cluster
        cluster.add_node("scheduler", node_id=f"{run}-scheduler")
        for n in range(WORKERS):
            cluster.add_node("executor", node_id=f"{run}-executor-{n}", concurrency=CONCURRENCY)
        cluster.start()
        cluster.wait_leader(30)
        self.account_id = cluster.api("POST", "/accounts", {
            "platform": "webhook", "name": "bench", "config": {"url": self.env.receiver.hook_url},
            "credentials": {"secret": SECRET}})["id"]
        return [n.pid for n in cluster.nodes if n.pid is not None]

    def probe(self, count: int) -> float:
        # Herald's posts live in the run's database; probe posts are due long after the run.
        return self.create("probe", [datetime.now(UTC) + PROBE_AHEAD] * count)

    def create(self, run: str, times: list[datetime]) -> float:
        assert self.cluster is not None
        started = time.perf_counter()
        for lo in range(0, len(times), BULK):
            posts = [{"account_ids": [self.account_id], "content": {"text": "benchmark"},
                      "schedule": {"at": at.isoformat()}, "misfire_grace_seconds": 3600}
                     for at in times[lo:lo + BULK]]
            answer = self.cluster.api("POST", "/posts/batch", {"posts": posts}, timeout=120)
            refused = [r for r in answer["results"] if r["status"] != 201]
            if refused:
                raise RuntimeError(f"POST /posts/batch refused {len(refused)}: {refused[0]}")
        return len(times) / (time.perf_counter() - started)

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None


def node_version(package: str) -> str:
    manifest = HERE / "node_modules" / package / "package.json"
    return str(json.loads(manifest.read_text())["version"])


def reset_stores(env: Env) -> None:
    """Drop every database a run left and empty Redis, so runs do not weigh on each other."""
    client: MongoClient[dict[str, Any]] = MongoClient(env.mongo_uri,
                                                      serverSelectionTimeoutMS=5000)
    with client:
        for name in client.list_database_names():
            if name not in ("admin", "local", "config"):
                client.drop_database(name)
    redis.Redis.from_url(env.redis_url).flushall()


class Arrivals:
    """The receiver's lines written since `offset`, read as they come: each poll parses only
    the complete lines added since the last, so waiting costs the machine next to nothing
    while the system under test runs."""

    def __init__(self, state_file: Path, offset: int) -> None:
        self.state_file = state_file
        self.offset = offset
        self.rows: list[dict[str, Any]] = []
        self.accepted = 0

    def poll(self) -> None:
        if not self.state_file.exists():
            return
        with self.state_file.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data.rfind(b"\n") + 1
        self.offset += complete
        for line in data[:complete].decode().split("\n"):
            if line.strip():
                row = json.loads(line)
                self.rows.append(row)
                self.accepted += row["outcome"] == "accepted"


def parse_due(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def measure(system: System, workload: str, jobs: int, spread: float, timeout: float) -> Outcome:
    env = system.env
    run = f"{workload}{uuid.uuid4().hex[:6]}"
    reset_stores(env)
    # Every system starts on stores at rest, not on the collection and compiling the previous
    # system left the development server doing.
    settled = settle(env.shared_pids.get("store", []), bound=SETTLE_BOUND)
    try:
        # Inside the try: a system that fails half-way through starting is stopped too.
        pids = system.start(run)
        rate = system.probe(max(100, jobs // 50))
        lead = jobs / rate * 2.5 + 10
        first = datetime.now(UTC) + timedelta(seconds=lead)
        step = spread / jobs if workload == "b" else 0.0
        times = [first + timedelta(seconds=step * i) for i in range(jobs)]
        offset = env.receiver.state_file.stat().st_size if env.receiver.state_file.exists() else 0
        print(f"  {system.name} ({workload}): creating {jobs} jobs due from {first:%H:%M:%S} "
              f"(probe: {rate:.0f}/s; stores at rest after {settled:.0f} s)", flush=True)
        created = system.create(run, times)
        charged = {"system": pids, **env.shared_pids}
        cpu_before = {who: cpu_seconds(p) for who, p in charged.items()}
        jit_before = jit_seconds(env.shared_pids.get("store", []))
        outcome = Outcome(system.name, workload, jobs, created)
        if settled >= SETTLE_BOUND:
            outcome.notes.append(f"the stores were still busy after {SETTLE_BOUND:.0f} s")
        if datetime.now(UTC) >= first:
            outcome.notes.append("creation overran the planned due time")
        deadline = time.monotonic() + (times[-1] - datetime.now(UTC)).total_seconds() + timeout
        arrived = Arrivals(env.receiver.state_file, offset)
        while time.monotonic() < deadline:
            arrived.poll()
            if arrived.accepted >= jobs:
                break
            time.sleep(0.5)
        else:
            outcome.notes.append(f"stopped waiting {timeout:.0f} s after the last due time")
        peaks = [peak_rss_mib(pid) for pid in pids]
        cpu_used = {who: cpu_seconds(p) - cpu_before[who] for who, p in charged.items()}
        cpu_used["jit"] = jit_seconds(env.shared_pids.get("store", [])) - jit_before
    finally:
        system.stop()
    rows = arrived.rows
    accepted = [r for r in rows if r["outcome"] == "accepted"]
    outcome.delivered = len(accepted)
    outcome.repeats = sum(r["outcome"] == "repeat" for r in rows)
    outcome.rss_max_mib, outcome.rss_total_mib = max(peaks), sum(peaks)
    outcome.processes = f"{len(pids)}"
    outcome.cpu_ms = {who: used * 1000 / max(1, len(accepted)) for who, used in cpu_used.items()}
    if accepted:
        late = [r["arrived_at"] - parse_due(r["scheduled_for"]) for r in accepted]
        last = max(r["arrived_at"] for r in accepted)
        outcome.jobs_per_s = len(accepted) / max(1e-9, last - first.timestamp())
        outcome.p50, outcome.p99, outcome.max = (
            percentile(late, 0.5), percentile(late, 0.99), max(late))
    return outcome


def store_ceiling(env: Env) -> dict[str, Any]:
    """bench/store_probe's single-claim rate at 10,000 documents on this run's server."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_probe"), "--json", "--sizes", "10000",
         "--ops", "3000"], env={**os.environ, "MONGODB_URI": env.mongo_uri},
        capture_output=True, text=True, check=True, timeout=600)
    return dict(json.loads(out.stdout)["results"][0])


@contextlib.contextmanager
def servers(workdir: Path) -> Iterator[Env]:
    mongo = devservers.start_mongo(log=workdir / "mongo.log")
    rds = devservers.start_redis(log=workdir / "redis.log")
    receiver = Receiver(SECRET, workdir / "receiver.log", workdir / "deliveries.jsonl")
    try:
        receiver.start()
        assert receiver.proc is not None
        yield Env(mongo.port, rds.port, receiver, workdir,
                  {"store": [mongo.proc.pid, rds.proc.pid], "receiver": [receiver.proc.pid]})
    finally:
        receiver.stop()
        rds.stop()
        mongo.stop()


SYSTEMS: dict[str, type[System]] = {
    "herald": Herald, "bullmq": BullMQ, "agenda": Agenda, "apscheduler": APScheduler}


def versions(env: Env, systems: list[System]) -> str:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    redis_version = redis.Redis.from_url(env.redis_url).info("server")["redis_version"]
    parts = [f"{s.name} {s.version}" for s in systems]
    return (", ".join(parts) + f"; Node {node}; redis-server {redis_version}; "
            "MongoDB: tools/mongo-dev-server (mongo-java-server 1.47.0, memory backend)")


def table(outcomes: list[Outcome], ceiling: dict[str, Any]) -> str:
    lines = [
        "| workload | system | delivered | jobs/s | lateness p50 / p99 / max (s) | "
        "peak RSS max / total (MiB) | CPU ms per job: system / stores (of it JIT) / receiver | "
        "created/s | note |",
        "|---|---|---:|---:|---|---|---|---:|---|",
    ]
    claim = float(ceiling["claim_per_s"])
    for o in outcomes:
        notes = list(o.notes)
        if o.repeats:
            notes.append(f"{o.repeats} repeats")
        if o.system == "Herald" and o.workload == "a":
            notes.append(f"{o.jobs_per_s / claim:.2f}x the store's {claim:,.0f} claims/s")
        workload = f"({o.workload})" if o.round == 1 else f"({o.workload}) round {o.round}"
        lines.append(
            f"| {workload} | {o.system} | {o.delivered}/{o.jobs} | {o.jobs_per_s:,.0f} | "
            f"{o.p50:.3f} / {o.p99:.3f} / {o.max:.3f} | "
            f"{o.rss_max_mib:.0f} / {o.rss_total_mib:.0f} ({o.processes} proc) | "
            f"{o.cpu_ms.get('system', 0):.2f} / {o.cpu_ms.get('store', 0):.2f} "
            f"({o.cpu_ms.get('jit', 0):.2f}) / "
            f"{o.cpu_ms.get('receiver', 0):.2f} | "
            f"{o.created_per_s:,.0f} | {'; '.join(notes)} |")
    return "\n".join(lines)


def ratios(outcomes: list[Outcome]) -> list[str]:
    """The issue's targets as ratios, for the reader; figures, not asserts. Each ratio pairs
    the outcomes of one round; with several rounds, their median leads."""
    by = {(o.system, o.workload, o.round): o for o in outcomes}
    rounds = sorted({o.round for o in outcomes})

    def line(label: str, figures: list[float], show: Callable[[float], str]) -> str | None:
        if not figures:
            return None
        if len(figures) == 1:
            return f"{label}: {show(figures[0])}"
        each = ", ".join(show(f) for f in figures)
        return f"{label}: median {show(statistics.median(figures))} (rounds: {each})"

    def ratio(figure: float) -> str:
        return f"{figure:.2f}x"

    def paired(peer: str, workload: str, value: Callable[[Outcome], float]) -> list[float]:
        found = []
        for n in rounds:
            herald, other = by.get(("Herald", "a", n)), by.get((peer, workload, n))
            if herald and other and value(other):
                found.append(value(herald) / value(other))
        return found

    lines = [line(f"Herald / {peer} jobs/s in (a)", paired(peer, "a", lambda o: o.jobs_per_s),
                  ratio) for peer in ("BullMQ", "Agenda", "APScheduler")]
    created = paired("BullMQ", "a", lambda o: o.created_per_s) or paired(
        "BullMQ", "b", lambda o: o.created_per_s)
    lines.append(line("Herald `POST /posts/batch` / BullMQ `addBulk` creation rate", created,
                      ratio))
    late = [by[("Herald", "b", n)].p99 * 1000 for n in rounds if ("Herald", "b", n) in by]
    lines.append(line("Herald lateness p99 in (b)", late, lambda ms: f"{ms:.0f} ms"))
    return [text for text in lines if text is not None]


DEV_SERVER_NOTE = """\
- the development MongoDB server against real MongoDB: mongo-java-server with Herald's
  indexes (tools/mongo-dev-server/README.md, "Indexes"): a filter is read from a unique index
  when it pins one, else from the secondary index whose bounds (equality or `$in` on a prefix,
  then one range) hold the fewest entries, in the index's order when it serves the sort, as
  MongoDB plans it; what neither serves is a full scan. Updates made of operators copy and
  compare only the fields they name, maintain only the indexes on those, and apply top-level
  `$set`, `$unset`, `$inc` and `$push` without the library's path handling ("Writes");
  inserts check and build each unique key once and count sizes without encoding ("Writes");
  replacements and findAndModify keep the library's path, slower than MongoDB's, for every
  system here that uses it; `count_documents` and aggregations still scan. Its JIT compiles
  its paths for minutes after it starts, hence the warm-up. Agenda's find-and-lock and
  APScheduler's acquire queries are read from their own indexes where those have the shapes
  above. BullMQ does not use MongoDB."""


def parse_rounds(text: str) -> Callable[[str], int]:
    """`--rounds`: `N` for every workload, or `a=3,b=1` (a workload not named runs once)."""
    if text.strip().isdigit():
        every = int(text)
        return lambda workload: every
    counts: dict[str, int] = {}
    for part in text.split(","):
        workload, _, count = part.partition("=")
        if not count.strip().isdigit():
            raise argparse.ArgumentTypeError(f"not N or workload=N: {part!r}")
        counts[workload.strip()] = int(count)
    return lambda workload: counts.get(workload, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--systems", default="herald,bullmq,agenda,apscheduler")
    parser.add_argument("--workloads", default="a,b")
    parser.add_argument("--spread", type=float, default=60.0,
                        help="seconds over which workload (b) spreads the jobs")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds after the last due time to wait for deliveries")
    parser.add_argument("--warmup", type=int, default=None,
                        help="jobs of an unrecorded burst each system runs first, so that no "
                             "system pays alone for the servers' start (the development "
                             "MongoDB server's JIT compiles its paths over the first tens of "
                             "thousands of writes); default: as many as --jobs; 0: none")
    parser.add_argument("--rounds", type=parse_rounds, default=parse_rounds("a=3,b=1"),
                        help="times each workload runs, the order reversed each time: one "
                             "count for every workload (`2`) or one per workload (`a=3,b=1`)")
    parser.add_argument("--no-record", action="store_true", help="do not append to results.md")
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = args.jobs
    names = [s.strip().lower() for s in args.systems.split(",") if s.strip()]
    unknown = set(names) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {sorted(SYSTEMS)}")
    if not (HERE / "node_modules").exists() and {"bullmq", "agenda"} & set(names):
        parser.error("bench/peers/node_modules is missing: run `make bench-peers`")
    if "apscheduler" in names and importlib.util.find_spec("apscheduler") is None:
        parser.error("APScheduler is not installed: run `make bench-peers` (the bench group)")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-peers-"))
    started = time.monotonic()
    load_before = load_average()
    outcomes: list[Outcome] = []
    with servers(workdir) as env:
        systems = [SYSTEMS[n](env) for n in names]
        print(f"store ceiling (bench/store_probe, 10,000 documents) … logs in {workdir}",
              flush=True)
        ceiling = store_ceiling(env)
        if args.warmup:
            print(f"warm-up: an unrecorded burst of {args.warmup} jobs per system", flush=True)
            for system in systems:
                measure(system, "a", args.warmup, args.spread, args.timeout)
        order = list(systems)
        for workload in workloads:
            for n in range(1, args.rounds(workload) + 1):
                print(f"workload ({workload}), round {n}:", flush=True)
                for system in order:
                    outcome = measure(system, workload, args.jobs, args.spread, args.timeout)
                    outcome.round = n
                    print(f"    {outcome.delivered}/{outcome.jobs} delivered, "
                          f"{outcome.jobs_per_s:,.0f} jobs/s, lateness p99 "
                          f"{outcome.p99:.3f} s, created {outcome.created_per_s:,.0f}/s",
                          flush=True)
                    outcomes.append(outcome)
                order.reverse()
        version_line = versions(env, systems)
        reset_stores(env)
    summary = table(outcomes, ceiling)
    body = "\n".join([
        f"- machine: {machine()}; load average before the run {load_before}, "
        f"after {load_average()}",
        f"- versions: {version_line}",
        f"- workloads: (a) {args.jobs} jobs due at one instant; (b) {args.jobs} jobs due evenly "
        f"over {args.spread:.0f} s; first an unrecorded burst of {args.warmup} jobs per "
        f"system (warm-up); each measurement starts once MongoDB and Redis have used under "
        f"5 % of a core for 2 s (at most {SETTLE_BOUND:.0f} s); systems in alternating order ((a) "
        f"{', '.join(s.name for s in systems)}, then the reverse each time; rounds: "
        f"{', '.join(f'({w}) {args.rounds(w)}' for w in workloads)}); every job one signed "
        "HTTP POST to the same loopback receiver (tests/emulators/webhook.py), which answers "
        "at once",
        *[f"- {s.name}: {s.setup}" for s in systems],
        f"- store ceiling (bench/store_probe, same server, 10,000 documents): "
        f"{ceiling['claim_per_s']:,} single claims/s, {ceiling['fenced_update_per_s']:,} "
        "fenced updates/s",
        "- jobs/s: deliveries from the first due time to the last arrival ((b) is bounded by "
        "its spread); lateness: arrival - due; peak RSS: VmHWM of each of the system's "
        "processes (Herald: scheduler and executors; stores and receiver not counted); "
        "created/s: the whole N, bulk where the system has it; CPU per job: user + system time "
        "from the end of creation to the last arrival over the jobs delivered, of the system's "
        "processes, of MongoDB and Redis together (in brackets the part the development "
        "server's JIT compiler threads took), of the receiver",
        f"- run took {time.monotonic() - started:.0f} s",
        "",
        summary,
        "",
        *[f"- {line}" for line in ratios(outcomes)],
        DEV_SERVER_NOTE,
    ])
    print("\n" + body)
    if not args.no_record:
        append_results("peers — `bench/peers`", body)
    return 0 if all(o.delivered == o.jobs for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
