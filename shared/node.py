"""A Herald process: one HTTP server, up before the databases answer; one runtime; the roles
it was started with; and an orderly stop on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol

from aiohttp import web

from shared.config import Settings
from shared.http import HttpServer, make_app, make_starting_app
from shared.logging import get_logger
from shared.runtime import Runtime, Startup, StartupStopped

log = get_logger(__name__)

HEARTBEAT_SECONDS = 5.0
#: Allocations between two young collections (CPython's default is 700); the older
#: generations keep their defaults.
YOUNG_COLLECTION_ALLOCATIONS = 10_000


def herald_version() -> str:
    try:
        return version("herald")
    except PackageNotFoundError:
        return "dev"


class Role(Protocol):
    name: str

    def add_routes(self, app: web.Application) -> None:
        """Register HTTP routes before the server starts."""

    async def run(self) -> None:
        """Work until cancelled."""

    async def stop(self) -> None:
        """Finish gracefully: hand over leadership, drain in-flight jobs."""


RolesFactory = Callable[[Runtime], list[Role]]


async def _heartbeat(runtime: Runtime, roles: list[str]) -> None:
    """Record this node in MongoDB so `/cluster` can list the live nodes."""
    while True:
        try:
            await runtime.store.nodes.update_one(
                {"_id": runtime.settings.node_id},
                {"$set": {"roles": roles, "last_seen": runtime.clock.now_dt(),
                          "version": herald_version()}},
                upsert=True,
            )
        except Exception as exc:
            log.warning("heartbeat_failed", error=type(exc).__name__)
        await asyncio.sleep(HEARTBEAT_SECONDS)


def _tune_collector() -> None:
    """A node's work allocates many short-lived containers (a batch of posts and their
    models, a job's documents and futures), and CPython's collector, run every 700
    allocations, kept walking them and everything the node made at startup: a third of an
    API node's CPU while it created posts in batches (docs/decisions.md, "Executor timing").
    What exists once the node is up (modules, schemas, clients) lives as long as the process,
    so it is frozen out of the collector's sight, and young collections come less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, older, oldest)


async def serve(
    settings: Settings, role_names: list[str], build_roles: RolesFactory, host: str, port: int
) -> int:
    """Run until signalled; the exit code is 1 when a role crashed, so a supervisor restarts us.

    The HTTP server starts first, so `/healthz` answers while the databases do not (a liveness
    probe must not restart a node waiting out an outage); the roles start once they answer, and
    a signal before then stops the node at once."""
    startup = Startup()
    server = HttpServer(make_starting_app(startup),
                        keepalive_timeout=settings.http_keepalive_seconds,
                        header_timeout=settings.http_header_timeout_seconds)
    await server.start(host, port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, startup.stopping.set)
    log.info("node_starting", roles=role_names, host=host, port=port)
    try:
        runtime = await Runtime.open(settings, startup)
    except StartupStopped:
        await server.stop()
        log.info("node_stopped")
        return 0
    roles = build_roles(runtime)
    app = make_app(runtime)
    for role in roles:
        role.add_routes(app)
    await server.serve(app)
    _tune_collector()
    log.info("node_started", roles=role_names)

    runtime.spawn(_heartbeat(runtime, role_names), "heartbeat")
    runtime.spawn(runtime.clock.run(), "clock")
    role_tasks = [asyncio.create_task(r.run(), name=r.name) for r in roles]
    stop_wait = asyncio.create_task(startup.stopping.wait())
    done, _ = await asyncio.wait([stop_wait, *role_tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = [t for t in done if t is not stop_wait]
    for task in crashed:
        log.error("role_crashed", role=task.get_name(), exc_info=task.exception())
    log.info("node_stopping")
    stops = [asyncio.create_task(r.stop(), name=f"stop {r.name}") for r in roles]
    # The roles get `stop_seconds` (the executor's whole drain) before the process closes
    # anyway; the manifests' grace period covers that and the runtime's close.
    _, late = await asyncio.wait(stops, timeout=settings.stop_seconds)
    if late:
        log.warning("roles_not_stopped", roles=sorted(t.get_name() for t in late))
    for task in role_tasks:
        task.cancel()
    await asyncio.gather(*role_tasks, return_exceptions=True)
    stop_wait.cancel()
    await server.stop()
    await runtime.close()
    log.info("node_stopped")
    return 1 if crashed else 0
