"""One node's connections and shared services, opened once and handed to every role."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pymongo
from pymongo.errors import PyMongoError
from redis.asyncio import Redis

from shared.clock import ClusterClock
from shared.config import Settings
from shared.crypto import CredentialBox
from shared.due_queue import DueQueue
from shared.events import EventFeed, EventHub
from shared.generation.compose import Composer
from shared.generation.feed_items import FeedItems
from shared.jobs import JobBook
from shared.keys import Keys
from shared.logging import get_logger
from shared.lua import Scripts
from shared.media import open_media_store
from shared.media.store import MediaStore
from shared.providers.base import Provider
from shared.providers.registry import provider_for
from shared.rate_limit import Budgets
from shared.redis_client import REDIS_ERRORS, connect, pin_to_slot
from shared.store import Store, database_name

log = get_logger(__name__)

#: /readyz's own bound; the readiness probes (deploy/k8s/base) wait 3 s, so it answers first.
READY_TIMEOUT_SECONDS = 2.0
CLOSE_TIMEOUT_SECONDS = 5.0
#: The longest pause between two attempts to reach a service that is not up yet.
RETRY_MAX_SECONDS = 5.0
#: What a database that is down or unreachable raises.
OUTAGES: tuple[type[Exception], ...] = (PyMongoError, *REDIS_ERRORS)


class StartupStopped(Exception):
    """A stop was asked for before the databases answered; nothing is left open."""


@dataclass
class Startup:
    """A node's wait for its databases, shared with its HTTP server so `/readyz` can say which
    service is not up yet, and so a signal ends the wait instead of waiting out an outage."""

    #: Per service: "waiting" before the first answer, then "unreachable: <error>" or "ok".
    services: dict[str, str] = field(
        default_factory=lambda: {"mongodb": "waiting", "redis": "waiting"})
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    redis: Redis
    keys: Keys
    scripts: Scripts
    clock: ClusterClock
    queue: DueQueue
    jobs: JobBook
    box: CredentialBox
    budgets: Budgets
    events: EventFeed
    http: aiohttp.ClientSession
    #: Uploaded and fetched media (GridFS or S3, HERALD_MEDIA_STORE).
    media: MediaStore
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    providers: dict[str, Provider] = field(default_factory=dict)
    #: The node's one subscription the event streams share, started by the first stream.
    event_hub: EventHub = field(init=False)
    #: The feed items each post has seen and claimed (generated content, DESIGN §10).
    feed_items: FeedItems = field(init=False)
    #: Generated content: the language model and the feed session, opened once per node.
    composer: Composer = field(init=False)

    def __post_init__(self) -> None:
        self.event_hub = EventHub(
            self.redis, self.keys.events, self.settings.event_streams_max, self.spawn
        )
        self.feed_items = FeedItems(self.store.db)
        self.composer = Composer(self)

    @classmethod
    async def open(cls, settings: Settings, startup: Startup | None = None) -> Runtime:
        """Connect, waiting for Redis and MongoDB to answer: a node that starts before its
        databases waits for them instead of crash-looping. StartupStopped when
        `startup.stopping` is set first; the wait is never cancelled mid-call (a cancelled
        AsyncMongoClient call in server selection can wedge the client), so it ends within
        one attempt."""
        startup = startup or Startup()
        redis = connect(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=3,
            health_check_interval=15,
        )
        keys = Keys(settings.cluster_name)
        scripts = Scripts(redis)
        clock = ClusterClock(redis)
        database = database_name(settings.mongodb_uri, settings.mongodb_db)
        store = Store(settings.mongodb_uri, database, now=clock.now_dt)

        async def redis_up() -> None:
            await pin_to_slot(redis, keys.prefix)
            await clock.sync()

        async def mongodb_up() -> None:
            await store.ensure_indexes()
            await FeedItems(store.db).ensure_indexes()

        up = await asyncio.gather(
            _retry_until_up("redis", redis_up, startup),
            _retry_until_up("mongodb", mongodb_up, startup),
        )
        if not all(up):
            await store.close()
            await redis.aclose()
            raise StartupStopped
        queue = DueQueue(redis, keys, scripts)
        events = EventFeed(redis, keys.events)
        rt = cls(
            settings=settings,
            store=store,
            redis=redis,
            keys=keys,
            scripts=scripts,
            clock=clock,
            queue=queue,
            jobs=JobBook(store, redis, queue, events, settings.node_id),
            box=CredentialBox(settings.secret_key),
            budgets=Budgets(redis, keys, scripts),
            events=events,
            # One session for every account: a cookie one account's answer sets must not
            # ride along with another account's calls (nor cost a jar lookup per call).
            http=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                       cookie_jar=aiohttp.DummyCookieJar()),
            media=await open_media_store(store, settings),
        )
        rt.spawn(events.run(), "events")
        return rt

    def provider(self, platform: str) -> Provider:
        """The node's one provider per platform, so what a provider caches (an instance's
        limits) is read once per node; UnknownPlatform for a platform this build lacks."""
        if platform not in self.providers:
            provider = provider_for(platform, self.http)
            provider.public_media_urls = self.media.public_urls
            self.providers[platform] = provider
        return self.providers[platform]

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a background task that lives as long as the node; a crash is logged loudly."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_crashed", task=task.get_name(), exc_info=task.exception())

    async def readiness(self) -> dict[str, str]:
        """Reachability of MongoDB and Redis, each bounded so /readyz always answers."""
        async def check(probe: Awaitable[Any]) -> str:
            try:
                await probe
            except OUTAGES as exc:  # a TimeoutError is an OSError
                return f"unreachable: {type(exc).__name__}"
            return "ok"

        async def ping_mongo() -> None:
            # pymongo's own deadline, never a cancellation: cancelling an AsyncMongoClient
            # call that waits in server selection can wedge the client's topology lock.
            with pymongo.timeout(READY_TIMEOUT_SECONDS):
                await self.store.ping()

        mongo, redis = await asyncio.gather(
            check(ping_mongo()),
            check(asyncio.wait_for(self.redis.ping(), READY_TIMEOUT_SECONDS)),
        )
        return {"mongodb": mongo, "redis": redis}

    async def close(self) -> None:
        """Stop background tasks (bounded: a stuck task must not hold the process), send the
        last live events, and close the connections."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            _, stuck = await asyncio.wait(set(self.tasks), timeout=CLOSE_TIMEOUT_SECONDS)
            if stuck:
                log.warning("tasks_not_stopped", tasks=sorted(t.get_name() for t in stuck))
        await self.events.flush()
        await self.http.close()
        await self.composer.close()
        await self.media.close()
        await self.store.close()
        await self.redis.aclose()


async def _retry_until_up(
    name: str, probe: Callable[[], Awaitable[None]], startup: Startup
) -> bool:
    """Probe until the service answers (True) or a stop is asked for (False), recording each
    outcome in `startup.services`."""
    delay = 0.2
    while not startup.stopping.is_set():
        try:
            await probe()
        except OUTAGES as exc:
            startup.services[name] = f"unreachable: {type(exc).__name__}"
            log.warning("waiting_for_service", service=name, error=type(exc).__name__,
                        retry_in=delay)
            try:
                await asyncio.wait_for(startup.stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        else:
            startup.services[name] = "ok"
            return True
    return False
