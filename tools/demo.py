"""`make run`: a local three-node cluster, a webhook receiver that prints what it receives,
and a few demo posts, so a newcomer sees Herald publish within seconds. Ctrl-C stops it all."""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet

from tools import devservers
from tools.localcluster import Cluster

STATE = devservers.STATE_DIR
PORTS = (8081, 8082, 8083)
RECEIVER_PORT = 9000
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


def _schedule_demo_posts(cluster: Cluster, hook_url: str) -> None:
    account = _demo_account(cluster, hook_url)
    posts = [
        ("Hello from Herald! Scheduled through the admin API three seconds ago.", 3),
        ("A second post, five seconds later.", 8),
        ("Priority lane: high.", 10),
    ]
    for text, delay in posts:
        cluster.api("POST", "/posts", {
            "account_ids": [account["id"]], "content": {"text": text},
            "schedule": {"at": _at(delay)}, "priority": "high" if "high" in text else "normal",
        })
    cluster.api("POST", "/posts", {
        "account_ids": [account["id"]], "content": {"text": "Every minute, on the minute."},
        "schedule": {"cron": "* * * * *", "timezone": "UTC"},
    })


def main() -> int:
    env = {**_env_file(STATE / "env"), **_secrets(), "HERALD_CLUSTER_NAME": "demo",
           "HERALD_LEADER_TTL_SECONDS": "5", "HERALD_LOG_LEVEL": "warning",
           # The console is reached over plain HTTP on a laptop.
           "HERALD_CONSOLE_SECURE_COOKIE": "false"}
    env = {k: v for k, v in env.items() if not k.endswith("_PID")}
    stop = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = Cluster(env, STATE / "demo")
    try:
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
        _schedule_demo_posts(cluster, receiver.hook_url)
        print("demo posts scheduled; deliveries print below as they arrive (Ctrl-C stops):",
              flush=True)
        with open(receiver.log_path, errors="replace") as log:
            log.seek(0, 2)
            while not stop:
                line = log.readline()
                if line:
                    print(line.rstrip(), flush=True)
                else:
                    time.sleep(0.2)
    finally:
        print("\nstopping the cluster and the services ...", flush=True)
        cluster.stop()
        devservers.services_down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
