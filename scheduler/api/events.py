"""Live job state changes as Server-Sent Events, relayed from the Redis channel every
transition is announced on (`JobBook.announce`). A view, best effort: the jobs API is the record.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from scheduler.api.endpoint import Endpoint
from scheduler.api.wire import runtime
from shared.logging import get_logger

log = get_logger(__name__)

POLL_SECONDS = 1.0
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
#: Set on shutdown, so open streams end instead of holding the server's graceful stop.
CLOSING = web.AppKey("events_closing", asyncio.Event)


def install(api: web.Application) -> None:
    api[CLOSING] = asyncio.Event()

    async def close_streams(app: web.Application) -> None:
        app[CLOSING].set()

    api.on_shutdown.append(close_streams)


def sse_event(data: bytes) -> bytes:
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return b"event: job\n" + lines + b"\n"


async def stream_events(request: web.Request) -> web.StreamResponse:
    """`event: job` with the JSON change as data. A `: subscribed` comment comes first, once
    the subscription is live, so a client knows no later change will be missed."""
    rt = runtime(request)
    pubsub = rt.redis.pubsub()
    try:
        # Before the response starts, a Redis failure can still be answered with a 503.
        await pubsub.subscribe(rt.keys.events)
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        await response.prepare(request)
        try:
            await response.write(b": subscribed\n\n")
            await _relay(pubsub, response, request.app[CLOSING])
        except (ConnectionResetError, RedisError) as exc:
            log.debug("event_stream_ended", error=type(exc).__name__)
        return response
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py


async def _relay(pubsub: PubSub, response: web.StreamResponse, closing: asyncio.Event) -> None:
    quiet_since = time.monotonic()
    while not closing.is_set():
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
        if message is not None and message["type"] == "message":
            await response.write(sse_event(message["data"]))
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            await response.write(b": keep-alive\n\n")
            quiet_since = time.monotonic()


ENDPOINTS = [
    Endpoint("GET", "/events", stream_events,
             "Job state changes as text/event-stream (`event: job`, JSON data)", None,
             media_type="text/event-stream"),
]
