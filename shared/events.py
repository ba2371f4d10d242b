"""Live job events (`/api/v1/events`), published on Redis pub/sub in batches, and relayed to a
node's open streams from one subscription.

A job makes three or four state changes; publishing each one as it happens would cost a Redis
round trip apiece on the executor's hot path. Events are a view, not the record, so they are
buffered for a few milliseconds and sent together, many to a message (EVENTS_PER_MESSAGE);
losing a batch loses nothing.

A subscription holds its Redis connection for as long as it lasts, so one per stream would let
the streams drain the connection pool every role and `/readyz` depend on. A node subscribes
once (`EventHub`) and fans each message out in memory to at most `capacity` streams.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from pydantic_core import to_json
from redis.asyncio import Redis

from shared.logging import get_logger
from shared.redis_client import REDIS_ERRORS

log = get_logger(__name__)

FLUSH_SECONDS = 0.02
MAX_BUFFER = 10_000
#: Events per pub/sub message, one JSON document a line (JSON text holds no raw newline): a
#: burst of job changes is a few messages for Redis to deliver and the nodes to read.
EVENTS_PER_MESSAGE = 500
#: How long a new stream waits for the node's subscription before it is refused with a 503.
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
#: Messages a stream may fall behind by; a client that slow is dropped rather than buffered for.
MAX_PENDING = 1_000
POLL_SECONDS = 1.0
RETRY_MAX_SECONDS = 5.0

Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


class EventFeed:
    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._buffer: list[bytes] = []

    def emit(self, event: dict[str, Any]) -> None:
        """Compact JSON, by pydantic's serializer: a fifth of `json.dumps`'s cost, paid three
        or four times a job."""
        if len(self._buffer) < MAX_BUFFER:
            self._buffer.append(to_json(event))

    async def run(self) -> None:
        """Flush every few milliseconds until cancelled (an idle tick costs microseconds)."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if self._buffer:
                await self.flush()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for start in range(0, len(batch), EVENTS_PER_MESSAGE):
                    # Not `pipe.publish`: redis-py's cluster pipeline refuses it by name, while
                    # the command itself works there (a PUBLISH reaches every node).
                    pipe.execute_command("PUBLISH", self._channel, b"\n".join(
                        batch[start:start + EVENTS_PER_MESSAGE]))
                await pipe.execute()
        except REDIS_ERRORS:
            return


class StreamsExhausted(Exception):
    """The node already serves as many streams as it may."""


class SubscriptionUnavailable(Exception):
    """Redis could not be subscribed to within SUBSCRIBE_TIMEOUT_SECONDS."""


class SubscriptionEnded(Exception):
    """The stream may have missed messages (the subscription was lost, or it fell behind):
    it must end, so its client reconnects and rereads the jobs API for what it missed."""


class Subscription:
    """One stream's share of the node's subscription: the messages it has yet to send."""

    def __init__(self) -> None:
        self._pending: deque[bytes] = deque()
        self._wakeup = asyncio.Event()
        self._ended = False

    def push(self, message: bytes) -> None:
        if self._ended:
            return
        if len(self._pending) >= MAX_PENDING:
            self.end()
            return
        self._pending.append(message)
        self._wakeup.set()

    def end(self) -> None:
        self._ended = True
        self._pending.clear()
        self._wakeup.set()

    async def get(self) -> list[bytes]:
        """The messages received since the last call, waiting for one; SubscriptionEnded once
        the hub ended this subscription. Safe to cancel: nothing is taken until it returns."""
        await self._wakeup.wait()
        self._wakeup.clear()
        if self._ended:
            raise SubscriptionEnded
        batch = list(self._pending)
        self._pending.clear()
        return batch


class EventHub:
    """The node's one subscription to `channel`, opened with the first stream and kept (one
    connection of the pool) until the node stops, relaying to every open stream."""

    def __init__(self, redis: Redis, channel: str, capacity: int, spawn: Spawn) -> None:
        self.capacity = capacity
        self._redis = redis
        self._channel = channel
        self._spawn = spawn
        self._task: asyncio.Task[None] | None = None
        self._live = asyncio.Event()
        self._subscriptions: set[Subscription] = set()
        #: Open streams, counting those still waiting for the subscription.
        self._streams = 0

    @asynccontextmanager
    async def subscription(self) -> AsyncIterator[Subscription]:
        """A subscription that receives every message published once it is yielded.
        StreamsExhausted at capacity; SubscriptionUnavailable when Redis cannot be subscribed to
        soon."""
        if self._streams >= self.capacity:
            raise StreamsExhausted
        self._streams += 1
        try:
            if self._task is None or self._task.done():
                self._task = self._spawn(self._listen(), "event hub")
            try:
                async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                    while not self._live.is_set():  # it may be lost again before we resume
                        await self._live.wait()
            except TimeoutError:
                raise SubscriptionUnavailable from None
            subscription = Subscription()
            self._subscriptions.add(subscription)
            try:
                yield subscription
            finally:
                self._subscriptions.discard(subscription)
        finally:
            self._streams -= 1

    async def _listen(self) -> None:
        """Subscribe, relay until the connection fails, end the streams that may have missed
        messages, and subscribe again after a backoff; until cancelled."""
        delay = 0.2
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    # Bounded: a blocking read would hit the client's socket timeout when idle.
                    message = await pubsub.get_message(timeout=POLL_SECONDS)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Confirmed by Redis: from here on, no message published is missed. A
                        # later confirmation is redis-py subscribing again on a new connection,
                        # so the streams opened before it may have missed some.
                        self._end_subscriptions()
                        self._live.set()
                        delay = 0.2
                    elif message["type"] == "message":
                        for event in message["data"].split(b"\n"):
                            for subscription in self._subscriptions:
                                subscription.push(event)
            except REDIS_ERRORS as exc:
                log.warning("event_subscription_lost", error=type(exc).__name__, retry_in=delay)
            finally:
                self._live.clear()
                self._end_subscriptions()
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)

    def _end_subscriptions(self) -> None:
        for subscription in self._subscriptions:
            subscription.end()
        self._subscriptions.clear()
