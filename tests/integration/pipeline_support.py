"""Arranging accounts, posts and jobs in the real store, and running a real executor."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from executor.publish import Publisher
from executor.worker import Worker
from scheduler.planning import materialise
from shared.models import Content, JobState, new_id
from shared.notify import Notifier
from shared.runtime import Runtime
from shared.store import Doc
from tests.emulators.webhook import WebhookReceiver

SECRET = "hook-secret"


class AdminHook:
    """Answers with the queued statuses in turn (then 204) and keeps every body."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/notify"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def make_account(rt: Runtime, receiver: WebhookReceiver, **extra: Any) -> Doc:
    now = rt.clock.now_dt()
    account = {
        "_id": new_id(), "platform": "webhook", "name": "hook",
        "config": {"url": receiver.hook_url}, "credentials_enc": rt.box.seal({"secret": SECRET}),
        "rate_limit": None, "on_unknown": "retry", "status": "active",
        "created_at": now, "updated_at": now, **extra,
    }
    await rt.store.accounts.insert_one(account)
    return account


async def make_post(rt: Runtime, accounts: list[Doc], at: datetime, text: str = "hello",
                    **extra: Any) -> tuple[Doc, list[Doc]]:
    """A one-off post with its jobs materialised and staged, as the API would leave them."""
    now = rt.clock.now_dt()
    post = {
        "_id": new_id(), "account_ids": [a["_id"] for a in accounts],
        "content": Content(text=text).model_dump(mode="json"), "schedule": {"at": at},
        "recurring": False, "priority": "normal", "status": "scheduled", "version": 1,
        "misfire_grace_seconds": 3600, "publish_late": False, "created_at": now,
        "updated_at": now, **extra,
    }
    await rt.store.posts.insert_one(post)
    jobs = await materialise(rt, post, accounts, now + timedelta(hours=1))
    for job in jobs:
        await rt.jobs.stage(job, source="test")
    return post, jobs


async def wait_state(rt: Runtime, job_id: str, states: set[JobState],
                     timeout: float = 15) -> Doc:
    async with asyncio.timeout(timeout):
        while True:
            doc = await rt.store.jobs.find_one({"_id": job_id})
            if doc is not None and doc["state"] in states:
                return doc
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_executor(rt: Runtime, concurrency: int = 8) -> AsyncIterator[Worker]:
    worker = Worker(rt, Publisher(rt, Notifier(rt.http, rt.settings.notify_webhook_url)),
                    concurrency)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.drain(5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
