"""The executor role."""

from __future__ import annotations

from aiohttp import web

from executor.publish import Publisher
from executor.worker import Worker
from shared.notify import Notifier
from shared.runtime import Runtime


class ExecutorRole:
    name = "executor"

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        notifier = Notifier(rt.http, rt.settings.notify_webhook_url,
                            console_url=rt.settings.console_url)
        self._worker = Worker(rt, Publisher(rt, notifier), rt.settings.executor_concurrency)

    def add_routes(self, app: web.Application) -> None:
        """The executor adds nothing to the node's health and metrics endpoints."""

    async def run(self) -> None:
        await self._worker.run()

    async def stop(self) -> None:
        await self._worker.drain(self._rt.settings.drain_seconds)
