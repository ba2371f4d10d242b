"""Live job state changes as Server-Sent Events, relayed from the Redis channel every
transition is announced on (`JobBook.announce`) through the node's one subscription
(`EventHub`). A view, best effort: the jobs API is the record.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from scheduler.api.endpoint import Endpoint
from scheduler.api.errors import ApiError, error_response
from scheduler.api.wire import runtime
from shared.events import (
    StreamsExhausted,
    Subscription,
    SubscriptionEnded,
    SubscriptionUnavailable,
)
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
    the subscription is live, so a client knows no later change will be missed. Past the
    node's HERALD_EVENT_STREAMS_MAX open streams, a 503 with Retry-After."""
    hub = runtime(request).event_hub
    try:
        # Before the response starts, a refusal can still be answered in the error format.
        async with hub.subscription() as subscription:
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            })
            await response.prepare(request)
            try:
                await response.write(b": subscribed\n\n")
                await _relay(request, subscription, response)
            except (ConnectionResetError, SubscriptionEnded) as exc:
                log.debug("event_stream_ended", error=type(exc).__name__)
            return response
    except StreamsExhausted:
        return error_response(
            503, "too_many_streams",
            f"this node already serves {hub.capacity} event streams; retry later",
            headers={"Retry-After": "5"})
    except SubscriptionUnavailable:
        raise ApiError(503, "Redis is unreachable; retry later", code="unavailable") from None


async def _relay(
    request: web.Request, subscription: Subscription, response: web.StreamResponse
) -> None:
    """Until shutdown or the client leaves: a departed client is noticed within a poll rather
    than at the next failed write, so its place under the cap is freed soon."""
    closing = request.app[CLOSING]
    quiet_since = time.monotonic()
    while not closing.is_set() and request.transport is not None:
        try:
            async with asyncio.timeout(POLL_SECONDS):
                batch = await subscription.get()
        except TimeoutError:
            batch = []
        for data in batch:
            await response.write(sse_event(data))
        if batch:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            await response.write(b": keep-alive\n\n")
            quiet_since = time.monotonic()


ENDPOINTS = [
    Endpoint("GET", "/events", stream_events,
             "Job state changes as text/event-stream (`event: job`, JSON data)", None,
             media_type="text/event-stream"),
]
