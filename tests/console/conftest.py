"""A running `herald all` node with a webhook receiver (and, for generated content, the language
model's emulator), and Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from pymongo import MongoClient

from tests.emulators.llm import API_KEY, LlmEmulator
from tools.localcluster import Cluster, Node, Receiver

CHROMIUM = Path("/usr/bin/chromium")
VIEWER_TOKEN = "console-viewer-token"
LLM_MODEL = "herald-test-model"
#: Hang guards only.
DEADLINE_SECONDS = 60.0


class Herald:
    """The node under test, its receiver, and the API calls that arrange data."""

    def __init__(self, cluster: Cluster, node: Node, receiver: Receiver) -> None:
        self.cluster = cluster
        self.node = node
        self.receiver = receiver
        self.url = node.url
        self.admin_token = cluster.token
        self.viewer_token = VIEWER_TOKEN

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.cluster.api(method, path, body, node=self.node)

    def webhook_account(self, name: str = "brand-hook") -> str:
        account = self.api("POST", "/accounts", {
            "platform": "webhook", "name": name, "config": {"url": self.receiver.hook_url},
            "credentials": {"secret": self.receiver.secret}})
        return str(account["id"])

    def wait_job(self, job_id: str, states: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.api("GET", f"/jobs/{job_id}")
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states}\n{self.cluster.log_tails(60)}")

    def wait_content(self, job_id: str, content_state: str) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.api("GET", f"/jobs/{job_id}")
            if job.get("content_state") == content_state:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} never {content_state}\n"
                             f"{self.cluster.log_tails(60)}")

    def awaiting_approval(self, account_id: str, prompt: str) -> dict[str, Any]:
        """A generated post (approval required, the default) due in two minutes, generated at
        once since it is within `generate_ahead_seconds`: its job, awaiting approval."""
        post = self.api("POST", "/posts", {
            "account_ids": [account_id], "content": {"generate": {"prompt": prompt}},
            "schedule": {"at": (datetime.now(UTC) + timedelta(seconds=120)).isoformat()},
            "generate_ahead_seconds": 3600})
        return self.wait_content(str(post["jobs"][0]["id"]), "awaiting_approval")

    def failed_job(self, account_id: str, text: str) -> str:
        """A post due now whose platform refuses it for good: its job fails at once."""
        self.receiver.control(permanent_next=1)
        post = self.api("POST", "/posts", {
            "account_ids": [account_id], "content": {"text": text},
            "schedule": {"at": _soon()}})
        job_id = str(post["jobs"][0]["id"])
        self.wait_job(job_id, {"failed"})
        return job_id


def sign_in(page: Page, token: str) -> None:
    expect(page.get_by_role("heading", name="Sign in to the Herald console")).to_be_visible()
    page.get_by_label("Admin or viewer token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def _soon() -> str:
    return (datetime.now(UTC) + timedelta(seconds=1)).isoformat()


@contextmanager
def _running(env: dict[str, str], workdir: Path,
             extra: dict[str, str] | None = None) -> Iterator[Herald]:
    cluster = Cluster({**env, "HERALD_VIEWER_TOKEN": VIEWER_TOKEN,
                       "HERALD_CONSOLE_SECURE_COOKIE": "false", "HERALD_LOG_LEVEL": "info",
                       **(extra or {})}, workdir=workdir)
    try:
        receiver = cluster.add_receiver("console-hook-secret")
        node = cluster.add_node("all")
        cluster.start()
        yield Herald(cluster, node, receiver)
    finally:
        cluster.stop()
        _forget(env)


@pytest.fixture
def herald(env: dict[str, str], tmp_path: Path) -> Iterator[Herald]:
    with _running(env, tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def llm() -> Iterator[LlmEmulator]:
    """The language model's emulator, served from a thread of its own: the browser tests are
    synchronous, and the node reaches it over loopback like any endpoint."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="llm-emulator", daemon=True)
    thread.start()
    emulator = LlmEmulator()
    try:
        asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(DEADLINE_SECONDS)
        yield emulator
    finally:
        asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(DEADLINE_SECONDS)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DEADLINE_SECONDS)
        loop.close()


@pytest.fixture
def herald_llm(env: dict[str, str], tmp_path: Path, llm: LlmEmulator) -> Iterator[Herald]:
    """A node whose generated content comes from the emulator."""
    with _running(env, tmp_path / "cluster", {
            "HERALD_LLM_BASE_URL": f"{llm.base_url}/v1", "HERALD_LLM_API_KEY": API_KEY,
            "HERALD_LLM_MODEL": LLM_MODEL}) as running:
        yield running


def _forget(env: dict[str, str]) -> None:
    mongo: MongoClient[dict[str, object]] = MongoClient(env["MONGODB_URI"])
    try:
        mongo.drop_database(mongo.get_default_database().name)
    finally:
        mongo.close()
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        keys = list(client.scan_iter(match=f"herald:{{{env['HERALD_CLUSTER_NAME']}}}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped: Playwright's synchronous API runs an event loop of its own while it is
    open, which the async tests of other modules must not find running."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make deps` installs Debian's chromium")
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                          args=["--no-sandbox"])
    try:
        yield launched
    finally:
        launched.close()
