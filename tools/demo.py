"""`make run`: a local three-node cluster, a webhook receiver that prints what it receives,
a feed served by the demo itself, and a few demo posts, so a newcomer sees Herald publish within
seconds: one-off posts, a templated post every minute, and each new feed item. Ctrl-C stops it
all."""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tools import devservers
from tools.demo_feed import DemoFeed, Item
from tools.localcluster import Cluster

STATE = devservers.STATE_DIR
PORTS = (8081, 8082, 8083)
RECEIVER_PORT = 9000
FEED_PORT = 9001
#: A new feed item this often: every other minute's occurrence of the feed post has one.
FEED_EVERY_SECONDS = 120
SECRET = "demo-webhook-secret"
ACCOUNT_NAME = "demo receiver"


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def _secrets() -> dict[str, str]:
    """The admin token and Fernet key, kept next to the H2 data so stored credentials stay
    readable from one run to the next."""
    path = STATE / "secrets.env"
    if not path.exists():
        path.write_text(f"HERALD_ADMIN_TOKEN=demo-{Fernet.generate_key().decode()[:24]}\n"
                        f"HERALD_SECRET_KEY={Fernet.generate_key().decode()}\n")
        path.chmod(0o600)
    return _env_file(path)


def _at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _demo_account(cluster: Cluster, hook_url: str) -> dict[str, str]:
    """The demo's account, reused across runs (the data is kept between `make run`s); the
    scheduled posts of earlier runs are cancelled, on every demo account, so each run shows
    one of each."""
    accounts = [a for a in cluster.api("GET", "/accounts?limit=500")["items"]
                if a["name"] == ACCOUNT_NAME]
    for account in accounts:
        posts = cluster.api("GET", f"/posts?account_id={account['id']}&status=scheduled"
                            "&limit=500")["items"]
        for post in posts:
            cluster.api("POST", f"/posts/{post['id']}/cancel")
    if accounts:
        updated: dict[str, str] = cluster.api("PATCH", f"/accounts/{accounts[0]['id']}", {
            "config": {"url": hook_url}, "credentials": {"secret": SECRET}})
        return updated
    created: dict[str, str] = cluster.api("POST", "/accounts", {
        "platform": "webhook", "name": ACCOUNT_NAME, "config": {"url": hook_url},
        "credentials": {"secret": SECRET},
    })
    return created


def demo_posts(account_id: str, feed_url: str) -> list[dict[str, Any]]:
    """The POST /posts bodies: three one-off posts within seconds, a templated post every
    minute, and a post of each new item of the demo's feed (no language model needed). Content
    made per occurrence is generated a minute ahead (the least allowed), not the default hour."""
    once = [
        ("Hello from Herald! Scheduled through the admin API three seconds ago.", 3, "normal"),
        ("A second post, five seconds later.", 8, "normal"),
        ("Priority lane: high.", 10, "high"),
    ]
    every_minute = {"cron": "* * * * *", "timezone": "UTC"}
    greeting = ("Good morning from Herald — {{ occurrence.strftime('%A %H:%M') }} "
                "on {{ account.platform }}")
    return [
        *({"account_ids": [account_id], "content": {"text": text},
           "schedule": {"at": _at(delay)}, "priority": priority}
          for text, delay, priority in once),
        {"account_ids": [account_id], "schedule": every_minute, "generate_ahead_seconds": 60,
         "content": {"template": greeting}},
        {"account_ids": [account_id], "schedule": every_minute, "generate_ahead_seconds": 60,
         "content": {"template": "New: {{ item.title }} {{ item.link }}",
                     "source": {"feed": feed_url}}},
    ]


def _describe(body: dict[str, Any]) -> str:
    content, schedule = body["content"], body["schedule"]
    when = f"at {schedule['at'][11:19]} UTC" if "at" in schedule else f"cron {schedule['cron']!r}"
    what = json.dumps(content.get("text") or content["template"], ensure_ascii=False)
    feed = f" from {content['source']['feed']}" if "source" in content else ""
    return f"{when}: {what}{feed}"


def _schedule_demo_posts(cluster: Cluster, hook_url: str, feed_url: str) -> None:
    account = _demo_account(cluster, hook_url)
    for body in demo_posts(account["id"], feed_url):
        post = cluster.api("POST", "/posts", body)
        print(f"  post {post['id']} {_describe(body)}", flush=True)


def _announce(items: list[Item]) -> None:
    for item in items:
        print(f"feed      new item {item.title!r} {item.link} "
              "(published by the next occurrence generated after it)", flush=True)


def main() -> int:
    env = {**_env_file(STATE / "env"), **_secrets(), "HERALD_CLUSTER_NAME": "demo",
           "HERALD_LEADER_TTL_SECONDS": "5", "HERALD_LOG_LEVEL": "warning",
           # The console is reached over plain HTTP on a laptop.
           "HERALD_CONSOLE_SECURE_COOKIE": "false",
           # The demo's feed is on loopback, which the address guard refuses by default.
           "HERALD_ALLOW_PRIVATE_URLS": "true"}
    env = {k: v for k, v in env.items() if not k.endswith("_PID")}
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = Cluster(env, STATE / "demo")
    feed: DemoFeed | None = None
    try:
        feed = DemoFeed(FEED_PORT, every=FEED_EVERY_SECONDS)
        feed.start()
        receiver = cluster.add_receiver(SECRET, port=RECEIVER_PORT, print_deliveries=True)
        for n, port in enumerate(PORTS, 1):
            cluster.add_node("all", node_id=f"demo-node-{n}", http_port=port)
        print("starting redis, the MongoDB dev server and three herald nodes ...", flush=True)
        cluster.start()
        leader = cluster.wait_leader(30)
        print(f"admin API: http://127.0.0.1:{PORTS[0]}/api/v1 "
              f"(token in {STATE / 'secrets.env'}); leader: {leader}")
        print(f"metrics: http://127.0.0.1:{PORTS[0]}/metrics; logs in {cluster.workdir}")
        print(f"console: http://127.0.0.1:{PORTS[0]}/console/ (sign in with the admin token)")
        print(f"demo feed: {feed.url} ({len(feed.items())} items, "
              f"a new one every {FEED_EVERY_SECONDS} s)")
        print("demo posts scheduled:", flush=True)
        _schedule_demo_posts(cluster, receiver.hook_url, feed.url)
        print("deliveries print below as they arrive (Ctrl-C stops):", flush=True)
        with open(receiver.log_path, errors="replace") as log:
            log.seek(0, 2)
            while not stop:
                _announce(feed.add_due_items())
                line = log.readline()
                if line:
                    print(line.rstrip(), flush=True)
                else:
                    time.sleep(0.2)
    finally:
        print("\nstopping the cluster and the services ...", flush=True)
        cluster.stop()
        if feed is not None:
            feed.stop()
        devservers.services_down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
