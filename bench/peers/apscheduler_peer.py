"""APScheduler 4 on its MongoDB data store, as its documentation recommends for several
workers: each process a scheduler in the `both` role sharing the data store, a Redis event
broker to wake the others, the task's `max_running_jobs` lifted (its default, 1, would run one
job at a time cluster-wide) and `max_concurrent_jobs` per process for I/O-bound jobs. Each job
is a `DateTrigger` schedule; APScheduler has no bulk add, so schedules are added many at a time.

    python apscheduler_peer.py create --db URI --run R --count N --at EPOCH_MS [--spread S]
    python apscheduler_peer.py work --db URI --run R --concurrency C       (prints "ready")
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import signal
import time
from datetime import UTC, datetime

import aiohttp
from apscheduler import AsyncScheduler, SchedulerRole
from apscheduler.datastores.mongodb import MongoDBDataStore
from apscheduler.eventbrokers.redis import RedisEventBroker
from apscheduler.triggers.date import DateTrigger

IN_FLIGHT = 64
TASK = "publish"
_session: aiohttp.ClientSession | None = None


async def publish(job_id: str, scheduled_for: str) -> None:
    """The same signed POST as Herald's webhook provider (and bench/peers/deliver.mjs)."""
    assert _session is not None
    body = json.dumps({"post_id": job_id, "job_id": job_id, "account_id": "apscheduler",
                       "scheduled_for": scheduled_for, "text": "benchmark", "media": []})
    timestamp = str(int(time.time()))
    mac = hmac.new(os.environ["BENCH_SECRET"].encode(), f"{timestamp}.{body}".encode(),
                   hashlib.sha256)
    async with _session.post(os.environ["BENCH_RECEIVER_URL"], data=body, headers={
        "Content-Type": "application/json", "Idempotency-Key": job_id,
        "X-Herald-Timestamp": timestamp, "X-Herald-Signature": "sha256=" + mac.hexdigest(),
    }) as response:
        await response.read()
        response.raise_for_status()


def scheduler(args: argparse.Namespace, role: SchedulerRole) -> AsyncScheduler:
    return AsyncScheduler(
        MongoDBDataStore(args.db, database=f"apscheduler_{args.run}"),
        RedisEventBroker(os.environ["REDIS_URL"], channel=f"apscheduler-{args.run}"),
        role=role, max_concurrent_jobs=args.concurrency,
    )


async def configure(sched: AsyncScheduler) -> None:
    await sched.configure_task(TASK, func=publish, max_running_jobs=None,
                               misfire_grace_time=None)


async def create(args: argparse.Namespace) -> None:
    n, spread = args.count, args.spread * 1000
    times = [args.at + (spread * i / n if n > 1 else 0) for i in range(n)]
    async with scheduler(args, SchedulerRole.scheduler) as sched:
        await configure(sched)
        started = time.perf_counter()
        pending = iter(enumerate(times))

        async def adder() -> None:
            for i, due_ms in pending:
                due = datetime.fromtimestamp(due_ms / 1000, UTC)
                job_id = f"aps-{args.run}-{i}"
                await sched.add_schedule(
                    TASK, DateTrigger(due), id=job_id,
                    kwargs={"job_id": job_id,
                            "scheduled_for": due.isoformat(timespec="milliseconds")
                            .replace("+00:00", "Z")})

        await asyncio.gather(*(adder() for _ in range(IN_FLIGHT)))
        seconds = time.perf_counter() - started
    print(json.dumps({"created_per_s": n / seconds}), flush=True)


async def work(args: argparse.Namespace) -> None:
    global _session
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as _session, \
            scheduler(args, SchedulerRole.both) as sched:
        await configure(sched)
        await sched.start_in_background()
        print("ready", flush=True)
        await stop.wait()
        await sched.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["create", "work"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--at", type=float, default=0)
    parser.add_argument("--spread", type=float, default=0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    asyncio.run(create(args) if args.command == "create" else work(args))


if __name__ == "__main__":
    main()
