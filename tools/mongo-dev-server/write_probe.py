"""Herald's writes against one fresh dev server, with the server's CPU per document by thread group.

    .venv/bin/python tools/mongo-dev-server/write_probe.py [--jar JAR] [--backend memory|h2]
        [--rounds N] [--batches K] [-- SERVER FLAGS...]

Creation, per round: K x (1,000 posts by `insert_many`, their 1,000 jobs by unordered
`insert_many`, 1,000 marker `update_one`s by `bulk_write`), documents and indexes shaped as
Herald's (shared/store.py). Then staging (`update_many` of 2,000 ids, `$set` and `$push`) and
finds by `_id` `$in` (200 ids) over the jobs. Prints, per round, the CPU of the server's request
threads (`work`), garbage collector and JIT compilers per post, and the wall time per document
seen by PyMongo; then medians of the later half. `-- --inserts library` (or `--updates library`)
measures the library's own path. Figures, not asserts; the machine's other work shows in them.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import MongoClient, UpdateOne

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from shared.store import JOB_INDEXES, POST_INDEXES
from tools import devservers

HERE = Path(__file__).resolve().parent
BATCH = 1000

def post(at: datetime, account: str, now: datetime) -> dict[str, Any]:
    return {"_id": str(ObjectId()), "account_ids": [account],
            "content": {"text": "benchmark", "media": [], "thread": []}, "schedule": {"at": at},
            "recurring": False, "priority": "normal", "status": "scheduled", "version": 1,
            "misfire_grace_seconds": 3600, "publish_late": False, "generate_ahead_seconds": 3600,
            "created_at": now, "updated_at": now}


def job(of: dict[str, Any], now: datetime) -> dict[str, Any]:
    at = of["schedule"]["at"]
    return {"_id": str(ObjectId()), "post_id": of["_id"], "account_id": of["account_ids"][0],
            "platform": "webhook", "scheduled_for": at, "due_at": at, "state": "pending",
            "priority": "normal", "attempts": [], "attempt_count": 0, "lease_seq": 0,
            "lease": None, "result": None, "next_attempt_at": None, "created_at": now,
            "updated_at": now,
            "transitions": [{"state": "pending", "at": now, "node": None,
                             "reason": "materialised"}]}


def cpu_by_group(pid: int) -> Counter[str]:
    """CPU seconds of the JVM's threads: request threads, GC, JIT compilers, the rest."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: Counter[str] = Counter()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        if name.startswith("mongo-server-wo"):
            group = "work"
        elif "Compiler" in name:
            group = "jit"
        elif re.match(r"GC Thread|G1 |VM Thread", name):
            group = "gc"
        else:
            group = "other"
        out[group] += (int(fields[11]) + int(fields[12])) / ticks
    return out


def start(jar: Path, backend: str, flags: list[str]) -> tuple[subprocess.Popen[str], int]:
    port = devservers.free_port()
    args = ["java", "-Xmx2g", "-jar", str(jar), "--port", str(port), "--backend", backend]
    if backend == "h2":
        args += ["--data", str(Path(tempfile.mkdtemp(prefix="write-probe-")) / "store.h2")]
    proc = subprocess.Popen([*args, *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    if not proc.stdout.readline().startswith("ready"):
        raise RuntimeError(f"dev server did not start: {' '.join(args)}")
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jar", type=Path, default=HERE / "target" / "herald-mongo-dev-server.jar")
    parser.add_argument("--backend", choices=["memory", "h2"], default="memory")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batches", type=int, default=4, help="creation batches per round")
    parser.add_argument("flags", nargs="*", help="server flags, after --")
    args = parser.parse_args()
    if args.jar == HERE / "target" / "herald-mongo-dev-server.jar":
        subprocess.run(["bash", str(devservers.MONGO_LAUNCHER), "--build-only"], check=True)
    proc, port = start(args.jar, args.backend, args.flags)
    try:
        db = MongoClient(f"mongodb://127.0.0.1:{port}/", tz_aware=True).herald
        for coll, indexes in ((db.posts, POST_INDEXES), (db.jobs, JOB_INDEXES)):
            coll.create_indexes(indexes)
        now, account = datetime.now(UTC), str(ObjectId())
        rows: list[dict[str, float]] = []
        job_ids: list[str] = []
        for round_ in range(args.rounds):
            batches = []
            for k in range(args.batches):
                first = (round_ * args.batches + k) * BATCH
                posts = [post(now + timedelta(seconds=first + i), account, now)
                         for i in range(BATCH)]
                batches.append((posts, [job(p, now) for p in posts]))
            before, wall = cpu_by_group(proc.pid), Counter[str]()
            for posts, jobs in batches:
                started = time.perf_counter()
                db.posts.insert_many(posts)
                wall["posts"] += time.perf_counter() - started
                started = time.perf_counter()
                db.jobs.insert_many(jobs, ordered=False)
                wall["jobs"] += time.perf_counter() - started
                started = time.perf_counter()
                db.posts.bulk_write([UpdateOne({"_id": p["_id"]}, {"$set": {
                    "materialised_until": p["schedule"]["at"]}}) for p in posts], ordered=False)
                wall["markers"] += time.perf_counter() - started
                job_ids += [j["_id"] for j in jobs]
            used = cpu_by_group(proc.pid) - before
            n = BATCH * args.batches
            row = {k: used[k] * 1e6 / n for k in ("work", "gc", "jit")}
            row.update({k: v * 1e6 / n for k, v in wall.items()})
            rows.append(row)
            print(f"round {round_:2d} CPU per post: work {row['work']:4.0f} gc {row['gc']:3.0f} "
                  f"jit {row['jit']:4.0f} µs | wall per document: posts {row['posts']:4.0f} "
                  f"jobs {row['jobs']:4.0f} markers {row['markers']:4.0f} µs", flush=True)
        later = rows[len(rows) // 2:]
        print("median of the later half: " + ", ".join(
            f"{k} {statistics.median(r[k] for r in later):.0f}" for k in rows[0]) + " µs")

        before = cpu_by_group(proc.pid)["work"]
        staged = job_ids[:10 * 2000]
        for i in range(0, len(staged), 2000):
            db.jobs.update_many({"_id": {"$in": staged[i:i + 2000]}, "state": "pending"},
                                {"$set": {"state": "staged", "updated_at": now},
                                 "$push": {"transitions": {"state": "staged", "at": now,
                                                           "node": "n1", "reason": "due"}}})
        middle = cpu_by_group(proc.pid)["work"]
        for i in range(30):
            list(db.jobs.find({"_id": {"$in": job_ids[i * 200:(i + 1) * 200]}}))
        after = cpu_by_group(proc.pid)["work"]
        staging = (middle - before) * 1e6 / len(staged)
        print(f"request-thread CPU per document: staging {staging:.0f} µs, "
              f"finds by _id $in {(after - middle) * 1e6 / 6000:.0f} µs")
    finally:
        proc.terminate()
        proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
