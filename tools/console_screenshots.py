"""Screenshots of the console's main pages for docs/console.md (`make console-screenshots`).

Starts its own Redis, MongoDB dev server, webhook receiver and one `herald all` node on free
loopback ports, arranges a small history (published, failed, unconfirmed and upcoming posts,
generated content awaiting approval), photographs each page with Debian's Chromium through
Playwright at 1280 px (and two at 390 px), and stops everything it started.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from playwright.sync_api import Page, sync_playwright
from pymongo import MongoClient

from tools import devservers
from tools.localcluster import Cluster

OUT = devservers.ROOT / "docs" / "console"
CHROMIUM = "/usr/bin/chromium"
DEADLINE_SECONDS = 60.0


def _at(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


def _settle(cluster: Cluster, job_ids: list[str]) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        states = {cluster.api("GET", f"/jobs/{j}")["state"] for j in job_ids}
        if states <= {"succeeded", "failed"}:
            return
        time.sleep(0.2)
    raise RuntimeError(f"jobs did not settle: {states}")


def _settle_content(cluster: Cluster, job_id: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if cluster.api("GET", f"/jobs/{job_id}").get("content_state") == "awaiting_approval":
            return
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} was not generated")


def _arrange(cluster: Cluster, hook_url: str, secret: str, mongodb_uri: str) -> dict[str, Any]:
    """Accounts and posts in every state a page shows; the id of a failed job."""
    receiver = cluster.receiver
    assert receiver is not None

    def account(name: str) -> str:
        made = cluster.api("POST", "/accounts", {
            "platform": "webhook", "name": name, "config": {"url": hook_url},
            "credentials": {"secret": secret}})
        return str(made["id"])

    brand, support, press = account("brand-news"), account("support-updates"), account("press")
    published = [cluster.api("POST", "/posts", {
        "account_ids": [brand, support], "content": {"text": text},
        "schedule": {"at": _at(seconds=1)}})["jobs"] for text in (
            "Our spring collection is live: 40 new pieces, free shipping this week.",
            "Maintenance tonight 22:00-23:00 UTC: the app may be slow.")]
    _settle(cluster, [j["id"] for jobs in published for j in jobs])
    receiver.control(permanent_next=3)
    failed = [cluster.api("POST", "/posts", {
        "account_ids": [account_id], "content": {"text": text},
        "schedule": {"at": _at(seconds=1)}})["jobs"][0]["id"] for account_id, text in (
            (brand, "Launch day! Tickets at the door from 9:00, see you there."),
            (brand, "Last call for the early-bird price: ends at midnight."),
            (support, "We are back: all systems are working again."))]
    _settle(cluster, failed)
    for day, hour, text in ((1, 9, "Briefing: three things to know this week."),
                            (2, 14, "Webinar tomorrow at 15:00 UTC: save your seat."),
                            (3, 9, "Customer story: how a bakery doubled its orders."),
                            (4, 17, "Weekend opening hours: 10:00 to 16:00.")):
        when = (datetime.now(UTC) + timedelta(days=day)).replace(hour=hour, minute=0)
        cluster.api("POST", "/posts", {"account_ids": [brand, press], "content": {"text": text},
                                       "schedule": {"at": when.isoformat()}})
    # Made from a template at once (within generate_ahead_seconds), then held for approval.
    awaiting = cluster.api("POST", "/posts", {
        "account_ids": [brand], "content": {
            "template": "This week at {{ account.name }}: late opening on Thursday, and our "
                        "new delivery slots are live.", "approval": "required"},
        "schedule": {"at": _at(hours=5)}, "generate_ahead_seconds": 86400})["jobs"][0]["id"]
    _settle_content(cluster, awaiting)
    unconfirmed = cluster.api("POST", "/posts", {
        "account_ids": [press], "content": {"text": "Press release: Herald 1.0 is out."},
        "schedule": {"at": _at(days=6)}})["jobs"][0]["id"]
    # What a sweep leaves when a platform call's outcome cannot be known (DESIGN §7).
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_uri)
    try:
        db = mongo.get_default_database()
        db.jobs.update_one({"_id": unconfirmed}, {"$set": {
            "state": "unconfirmed", "unknown_reason": "connection reset after the request was "
                                                      "sent; the platform cannot be asked"}})
        db.accounts.update_one({"_id": press}, {"$set": {
            "status": "reauth_required", "status_reason": "refresh refused: invalid_grant"}})
    finally:
        mongo.close()
    cluster.api("POST", "/cluster/pause", {"reason": "checking the spring campaign"})
    cluster.api("POST", "/cluster/resume")
    return {"failed": failed[0], "unconfirmed": unconfirmed, "awaiting": awaiting}


def _shoot(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(600)  # the live panel connects
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/console/{name}.png", flush=True)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="herald-screenshots-"))
    mongo = devservers.start_mongo(log=work / "mongo.log")
    redis = devservers.start_redis(log=work / "redis.log")
    mongodb_uri = f"mongodb://127.0.0.1:{mongo.port}/herald_screenshots"
    env = {"MONGODB_URI": mongodb_uri, "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
           "HERALD_ADMIN_TOKEN": f"shots-{uuid.uuid4().hex}",
           "HERALD_SECRET_KEY": Fernet.generate_key().decode(),
           "HERALD_CLUSTER_NAME": "screenshots", "HERALD_CONSOLE_SECURE_COOKIE": "false",
           "HERALD_LOG_LEVEL": "warning"}
    cluster = Cluster(env, work / "cluster")
    try:
        receiver = cluster.add_receiver("screenshots-secret")
        node = cluster.add_node("all", node_id="herald-1")
        cluster.start()
        cluster.wait_leader(30)
        ids = _arrange(cluster, receiver.hook_url, receiver.secret, mongodb_uri)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                        args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{node.url}/console/login")
            page.get_by_label("Admin or viewer token").fill(env["HERALD_ADMIN_TOKEN"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/console/")
            _shoot(page, f"{node.url}/console/", "overview")
            _shoot(page, f"{node.url}/console/jobs?state=failed", "jobs-failed")
            _shoot(page, f"{node.url}/console/jobs/{ids['failed']}", "job-failed")
            _shoot(page, f"{node.url}/console/jobs/{ids['unconfirmed']}", "job-unconfirmed")
            _shoot(page, f"{node.url}/console/approvals", "approvals")
            _shoot(page, f"{node.url}/console/jobs/{ids['awaiting']}", "job-awaiting")
            _shoot(page, f"{node.url}/console/upcoming", "upcoming")
            _shoot(page, f"{node.url}/console/accounts", "accounts")
            _shoot(page, f"{node.url}/console/audit", "audit")
            page.set_viewport_size({"width": 390, "height": 844})
            _shoot(page, f"{node.url}/console/jobs?state=failed", "mobile-jobs-failed")
            _shoot(page, f"{node.url}/console/jobs/{ids['failed']}", "mobile-job-failed")
            browser.close()
    finally:
        cluster.stop()
        redis.stop()
        mongo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
