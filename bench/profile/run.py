#!/usr/bin/env python3
"""Where an executor's time goes under a burst: py-spy samples both executors of a
1-scheduler/2-executor cluster while N posts due at one instant are published to a loopback
webhook receiver.

Writes, under bench/profiles/ (LABEL names a before/after pair):
  LABEL-executor.speedscope.json   executor 0, for https://www.speedscope.app or `speedscope`
  LABEL-executor.svg               executor 1, a flame graph
  LABEL-top.txt                    the functions with the most samples (self and inclusive),
                                   from executor 0, with the run's throughput and job count

py-spy comes from PyPI into a tool environment of its own (`uv tool run`), not the project's.
Attaching needs ptrace: root, or CAP_SYS_PTRACE in a container.

usage: bench/profile/run.py --label before [--posts 5000] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from bench.common import commit, machine  # noqa: E402
from tools import devservers  # noqa: E402
from tools.localcluster import Cluster  # noqa: E402

PROFILES = ROOT / "bench" / "profiles"
PY_SPY = "py-spy==0.4.3"
SECRET = "bench-profile-secret"
BULK = 1000
TOP = 30
#: The interpreter's and site-packages' prefix, left out of file names.
LIBRARY = re.compile(r"^.*/lib/python3\.\d+/(site-packages/)?")


def py_spy() -> list[str]:
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    return [uv, "tool", "run", "--from", PY_SPY, "py-spy"]


def record(pid: int, out: Path, fmt: str, seconds: int, rate: int,
           gil: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--duration",
         str(seconds), "--format", fmt, "--output", str(out), *(["--gil"] if gil else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def top_functions(speedscope: Path) -> str:
    """Self and inclusive sample shares per function of the event loop's thread (where the
    executor's work runs; the other threads are resolver and pool threads, mostly waiting),
    from a speedscope 'sampled' profile. Lines of one function count together."""
    doc: dict[str, Any] = json.loads(speedscope.read_text())

    def function(frame: dict[str, Any]) -> str:
        where = str(frame.get("file", "")).replace(str(ROOT) + "/", "")
        return f"{frame['name']} ({LIBRARY.sub('', where)})"

    names = [function(frame) for frame in doc["shared"]["frames"]]
    main = [p for p in doc["profiles"] if "MainThread" in p["name"]] or doc["profiles"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total, samples = 0.0, 0
    for profile in main:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            total += weight
            samples += 1
            if stack:
                own[names[stack[-1]]] += weight
            for name in {names[i] for i in stack}:
                inclusive[name] += weight
    lines = [f"samples: {samples} ({total:.1f} s) of the main thread; time in "
             "EpollSelector.select is the event loop waiting for I/O", "",
             f"top {TOP} by self time:"]
    lines += [f"  {w / total:6.1%}  {name}" for name, w in own.most_common(TOP)]
    lines += ["", f"top {TOP} by inclusive time:"]
    lines += [f"  {w / total:6.1%}  {name}" for name, w in inclusive.most_common(TOP)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="file name prefix, e.g. before / after")
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true",
                        help="only samples holding the GIL: the Python code's own CPU time, "
                             "without the waits and the system calls (socket writes) that "
                             "release it, nor the time the machine's other processes take")
    args = parser.parse_args()
    PROFILES.mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-profile-"))
    mongo, rds = devservers.start_mongo(), devservers.start_redis()
    run_id = uuid.uuid4().hex[:8]
    cluster = Cluster({
        "MONGODB_URI": f"mongodb://127.0.0.1:{mongo.port}/herald_profile_{run_id}",
        "REDIS_URL": f"redis://127.0.0.1:{rds.port}/0", "HERALD_ADMIN_TOKEN": "bench-admin-token",
        "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
        "HERALD_CLUSTER_NAME": f"profile-{run_id}", "HERALD_LOG_LEVEL": "warning",
    }, workdir)
    try:
        receiver = cluster.add_receiver(SECRET)
        cluster.add_node("scheduler", node_id="profile-scheduler")
        executors = [cluster.add_node("executor", node_id=f"profile-executor-{n}",
                                      concurrency=args.concurrency) for n in range(2)]
        cluster.start()
        cluster.wait_leader(30)
        account = cluster.api("POST", "/accounts", {
            "platform": "webhook", "name": "profile", "config": {"url": receiver.hook_url},
            "credentials": {"secret": SECRET}})["id"]
        due = datetime.now(UTC) + timedelta(seconds=15 + args.posts / 500)
        for lo in range(0, args.posts, BULK):
            cluster.api("POST", "/posts/batch", {"posts": [
                {"account_ids": [account], "content": {"text": "profile"},
                 "schedule": {"at": due.isoformat()}, "misfire_grace_seconds": 3600}
                for _ in range(min(BULK, args.posts - lo))]}, timeout=120)
        lead = (due - datetime.now(UTC)).total_seconds() - 1
        if lead <= 0:
            raise SystemExit("creating the posts took longer than planned; nothing profiled")
        time.sleep(lead)
        seconds = max(10, int(args.posts / 100))  # generous; recording stops when the burst ends
        speedscope = PROFILES / f"{args.label}-executor.speedscope.json"
        svg = PROFILES / f"{args.label}-executor.svg"
        assert executors[0].pid and executors[1].pid
        spies = [record(executors[0].pid, speedscope, "speedscope", seconds, args.rate,
                        args.gil),
                 record(executors[1].pid, svg, "flamegraph", seconds, args.rate, args.gil)]
        deadline = time.monotonic() + seconds
        delivered = 0
        while time.monotonic() < deadline:
            delivered = len(receiver.deliveries()["accepted"])
            if delivered >= args.posts:
                break
            time.sleep(0.5)
        elapsed = (datetime.now(UTC) - due).total_seconds()
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        for spy in spies:
            _, err = spy.communicate(timeout=60)
            if spy.returncode not in (0, -2, 130) and err:
                print(err.decode(errors="replace"), file=sys.stderr)
    finally:
        cluster.stop()
        rds.stop()
        mongo.stop()
    header = (f"# {args.label}: executor 0 of 2 (concurrency {args.concurrency}), burst of "
              f"{args.posts} posts due at one instant; {delivered} delivered in about "
              f"{elapsed:.0f} s ({delivered / max(elapsed, 1e-9):.0f} jobs/s while sampled)\n"
              f"# commit {commit()}; {machine()}; py-spy {PY_SPY.split('==')[1]}, "
              f"{args.rate} Hz{', --gil (samples holding the GIL only)' if args.gil else ''}\n\n")
    summary = PROFILES / f"{args.label}-top.txt"
    summary.write_text(header + top_functions(speedscope) + "\n")
    print(summary.read_text())
    print(f"written: {speedscope.relative_to(ROOT)}, {svg.relative_to(ROOT)}, "
          f"{summary.relative_to(ROOT)}")
    return 0 if delivered >= args.posts else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
